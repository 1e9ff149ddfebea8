#!/bin/bash
# bench/proxy_ipt_floor.sh [N] [BACKENDS] - the floor of the iptables mode, measured without ckube:
# a hand-written restore file in upstream's layout (KUBE-SERVICES -> KUBE-SVC-* with statistic
# rules -> KUBE-SEP-* with the masquerade + DNAT rules; N services x 5 endpoints, no comments),
# loaded by iptables-restore itself in a scratch network namespace.  Prints the CPU time
# (user+sys of the restore process) of:
#   full     the whole nat table (no --noflush)
#   one-unlinked  --noflush: one new service (1 SVC + 5 SEP chains, 12 rules, one KUBE-SERVICES
#                 rule) while KUBE-SERVICES is not yet jumped to from PREROUTING/OUTPUT
#   one-linked    the same once the base chains jump to KUBE-SERVICES (what a live proxy does)
#   one-linked-1chain  --noflush: one unreferenced chain with one DNAT rule, nothing else
# for each backend installed (nf_tables, legacy), and "netlink": the same files programmed by the
# iptables mode's own netlink writer (build/bench/iptnl_tool, src/proxy/iptnl.c: the rules
# iptables-nft-restore would make, without the tool).  Default N=10000.
set -u
N=${1:-10000}
BACKENDS=${2:-"nft legacy netlink"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) TOOL=$BUILD/bench/iptnl_tool ;; *) TOOL=$ROOT/$BUILD/bench/iptnl_tool ;; esac
[ "$(id -u)" = 0 ] || { echo "bench/proxy_ipt_floor.sh: needs root (network namespaces)"; exit 0; }
tmp=$(mktemp -d /tmp/ckube-ipt-floor.XXXXXX)
ns=ckif$$
cleanup() { ip netns del $ns 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# chain names: upstream-like 16-character suffixes, derived from the index
awk -v n="$N" 'function h(p, i) { return sprintf("%s%016X", p, i) }
BEGIN {
    print "*nat"
    print ":KUBE-SERVICES - [0:0]"; print ":KUBE-MARK-MASQ - [0:0]"
    for (i = 0; i < n; i++) {
        print ":" h("KUBE-SVC-", i) " - [0:0]"
        for (j = 0; j < 5; j++) print ":" h("KUBE-SEP-", i * 5 + j) " - [0:0]"
    }
    print "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"
    for (i = 0; i < n; i++) {
        ip = sprintf("10.96.%d.%d", 1 + int(i / 250), 1 + i % 250)
        printf "-A KUBE-SERVICES -d %s/32 -p tcp -m tcp --dport 80 -j %s\n", ip, h("KUBE-SVC-", i)
        for (j = 0; j < 5; j++) {
            k = i * 5 + j; pod = sprintf("10.%d.%d.%d", 128 + int(k / 65536) % 64, int(k / 256) % 256, k % 256)
            if (j < 4) printf "-A %s -m statistic --mode random --probability %.10f -j %s\n", h("KUBE-SVC-", i), 1 / (5 - j), h("KUBE-SEP-", k)
            else printf "-A %s -j %s\n", h("KUBE-SVC-", i), h("KUBE-SEP-", k)
            printf "-A %s -s %s/32 -j KUBE-MARK-MASQ\n", h("KUBE-SEP-", k), pod
            printf "-A %s -p tcp -m tcp -j DNAT --to-destination %s:8080\n", h("KUBE-SEP-", k), pod
        }
    }
    print "COMMIT"
}' >"$tmp/full.txt"
awk -v i="$N" 'function h(p, i) { return sprintf("%s%016X", p, i) }
BEGIN {
    print "*nat"; print ":" h("KUBE-SVC-", i) " - [0:0]"
    for (j = 0; j < 5; j++) print ":" h("KUBE-SEP-", i * 5 + j) " - [0:0]"
    printf "-I KUBE-SERVICES 1 -d 10.111.0.1/32 -p tcp -m tcp --dport 80 -j %s\n", h("KUBE-SVC-", i)
    for (j = 0; j < 5; j++) {
        k = i * 5 + j
        if (j < 4) printf "-A %s -m statistic --mode random --probability %.10f -j %s\n", h("KUBE-SVC-", i), 1 / (5 - j), h("KUBE-SEP-", k)
        else printf "-A %s -j %s\n", h("KUBE-SVC-", i), h("KUBE-SEP-", k)
        printf "-A %s -s 10.200.0.%d/32 -j KUBE-MARK-MASQ\n", h("KUBE-SEP-", k), j
        printf "-A %s -p tcp -m tcp -j DNAT --to-destination 10.200.0.%d:8080\n", h("KUBE-SEP-", k), j
    }
    print "COMMIT"
}' >"$tmp/one.txt"
printf '*nat\n:KUBE-FLOOR-ONE - [0:0]\n-A KUBE-FLOOR-ONE -p tcp -j DNAT --to-destination 10.200.1.1:8080\nCOMMIT\n' >"$tmp/chain.txt"

# CPU ms (user+sys) of one restore run, from bash's times of its child
cpu_ms() { # restore-binary args... < file
    local out
    out=$( { TIMEFORMAT='%U %S'; time ip netns exec $ns "$@" >/dev/null 2>&1; } 2>&1 )
    awk -v t="$out" 'BEGIN { split(t, a, " "); printf "%d", (a[1] + a[2]) * 1000 }'
}
echo "# iptables floor: $N services x 5 endpoints, $(wc -l <"$tmp/full.txt") lines; CPU ms of the restore process; load $(cut -d' ' -f1 /proc/loadavg)"
for b in $BACKENDS; do
    restore=iptables-$b-restore; ipt=iptables-$b; noflush="-w --noflush"; flush=-w
    if [ $b = netlink ]; then
        restore=$TOOL; ipt=iptables-nft; noflush=apply; flush="apply --full"
        [ -x "$TOOL" ] || { echo "netlink: $TOOL not built"; continue; }
    fi
    command -v $restore >/dev/null || { echo "$b: $restore not installed"; continue; }
    ip netns add $ns
    full=$(cpu_ms $restore $flush <"$tmp/full.txt")
    unlinked=$(cpu_ms $restore $noflush <"$tmp/one.txt")
    ip netns exec $ns $ipt -t nat -I PREROUTING -j KUBE-SERVICES
    ip netns exec $ns $ipt -t nat -I OUTPUT -j KUBE-SERVICES
    # another new service (other chain names)
    sed 's/KUBE-SVC-/KUBE-SVZ-/g; s/KUBE-SEP-/KUBE-SEQ-/g' "$tmp/one.txt" >"$tmp/one2.txt"
    linked=$(cpu_ms $restore $noflush <"$tmp/one2.txt")
    chain=$(cpu_ms $restore $noflush <"$tmp/chain.txt")
    echo "$b full_cpu_ms=$full one_unlinked_cpu_ms=$unlinked one_linked_cpu_ms=$linked one_linked_1chain_cpu_ms=$chain"
    ip netns del $ns
done

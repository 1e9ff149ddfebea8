#!/bin/bash
# tests/e2e/proxy.sh - `ckube proxy` end to end, per mode (iptables, nftables, userspace; ipvs must
# refuse), entirely inside network namespaces this script creates:
#   node ns   : bridge cbr0 10.244.0.1/24, the API server (ckube server, loopback), the proxy
#   pod1..3   : busybox httpd on :8080 answering "podN", veths on cbr0 (hairpin on)
#   client    : another pod, 10.244.0.20
# A selector-less Service (cluster IP 10.96.100.10:80, node port 30080) with a hand-written
# EndpointSlice (no controller needed).  Checks: cluster IP from the node and from a pod, node
# port, spread over all 3 backends, hairpin, unready endpoint leaves the rotation, a killed backend
# costs no request (userspace), 0 endpoints -> connection refused, a removed UDP endpoint's
# conntrack entries are flushed (iptables, nftables), --cleanup leaves nothing.  iptables-legacy:
# the iptables mode on a node whose only rules are in the legacy backend (a kubelet canary chain
# made here) must program legacy and leave nft alone.
# IPv6 (ULA, in the same namespaces: bridge fd00:10::1/64, pods fd00:10::1N, client fd00:10::20;
# the API server's service range is dual-stack 10.96.0.0/12,fd00:96::/108): an IPv6-only Service
# (cluster IP fd00:96::10) and a RequireDualStack one reached on both of its cluster IPs.
# Service CIDR 10.96.0.0/12 and pod CIDR 10.244.0.0/16 exist only in these namespaces.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) CK=$BUILD/ckube ;; *) CK=$ROOT/$BUILD/ckube ;; esac
IPTNL_TOOL=$(dirname "$CK")/bench/iptnl_tool
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
MODES=${MODES:-"iptables nftables userspace iptables-legacy"}
fails=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; fails=$((fails + 1)); }
skip() { echo "skip - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }

if [ "$(id -u)" != 0 ] || ! ip netns list >/dev/null 2>&1; then
    skip "proxy e2e (needs root and network namespaces)"; exit 0
fi
for b in iptables-restore nft busybox curl; do
    command -v $b >/dev/null || { skip "proxy e2e (no $b)"; exit 0; }
done

S=$$
NODE=ckpn$S CLIENT=ckpc$S
PODS="ckpa$S ckpb$S ckpc2$S"
tmp=$(mktemp -d /tmp/ckube-e2e-proxy.XXXXXX)
data=$tmp/data
spid= ppid_=
RT=ckrt$S   # iptables: a scratch namespace for the netlink writer's round-trip check
cleanup() {
    ip netns del $RT 2>/dev/null
    [ -n "$ppid_" ] && kill -TERM "$ppid_" 2>/dev/null && wait "$ppid_" 2>/dev/null
    [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null && sleep 1
    for ns in $NODE $CLIENT $PODS; do
        # every process left in our namespaces (httpd, proxy, server children)
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    [ -n "$spid" ] && wait "$spid" 2>/dev/null
    [ -n "${KEEP:-}" ] && inn $NODE iptables-save >$tmp/iptables-final.txt 2>&1
    for ns in $NODE $CLIENT $PODS; do ip netns del "$ns" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && echo "# kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

inn() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
kc() { inn $NODE "$KUBECTL" --kubeconfig "$data/kubeconfig" --request-timeout=5s "$@"; }
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.1
    done
}

# ---- the network ----
ip netns add $NODE
inn $NODE ip link set lo up
inn $NODE ip link add cbr0 type bridge
inn $NODE ip addr add 10.244.0.1/24 dev cbr0
inn $NODE ip link set cbr0 up
inn $NODE sysctl -qw net.ipv4.ip_forward=1
inn $NODE sysctl -qw net.ipv6.conf.all.forwarding=1
inn $NODE ip -6 addr add fd00:10::1/64 dev cbr0 nodad
# locally generated traffic to cluster IPs needs a route before DNAT (upstream nodes have a default)
inn $NODE ip route add 10.96.0.0/12 dev cbr0
inn $NODE ip -6 route add fd00:96::/108 dev cbr0
i=0
addpod() { # ns ip
    local ns=$1 ip=$2 h=v$S$i
    ip netns add "$ns"
    ip link add "$h" type veth peer name eth0 netns "$ns"
    ip link set "$h" netns $NODE
    inn $NODE ip link set "$h" master cbr0 up
    inn $NODE bridge link set dev "$h" hairpin on
    inn "$ns" ip link set lo up
    inn "$ns" ip addr add "$ip/24" dev eth0
    inn "$ns" ip -6 addr add "fd00:10::${ip##*.}/64" dev eth0 nodad
    inn "$ns" ip link set eth0 up
    inn "$ns" ip route add default via 10.244.0.1
    inn "$ns" ip -6 route add default via fd00:10::1
    i=$((i + 1))
}
n=1
for p in $PODS; do
    addpod $p 10.244.0.1$n
    mkdir -p $tmp/www$n && echo "pod$n" >$tmp/www$n/index.html
    inn $p busybox httpd -p 8080 -h $tmp/www$n
    n=$((n + 1))
done
addpod $CLIENT 10.244.0.20

# ---- the API server (inside the node namespace, on its loopback) ----
port=6443
# (ip netns exec directly, not through a function: $! must be the process itself)
# the server runs its components through CKUBE_SELF_EXE: this wrapper gives the API server a
# dual-stack service range (`ckube server` has no flag for it)
cat >$tmp/ckube-wrap <<SH
#!/bin/sh
[ "\$1" = apiserver ] && { shift; exec "$CK" apiserver --service-cluster-ip-range=10.96.0.0/12,fd00:96::/108 "\$@"; }
exec "$CK" "\$@"
SH
chmod +x $tmp/ckube-wrap
CKUBE_SELF_EXE=$tmp/ckube-wrap ip netns exec $NODE "$CK" server --data-dir "$data" --secure-port $port \
    --bind-address 127.0.0.1 --disable-agent >$tmp/server.log 2>&1 &
spid=$!
ready() { [ -f "$data/kubeconfig" ] && [ "$(kc get --raw /readyz 2>/dev/null)" = ok ]; }
if ! wait_for 60 ready; then
    notok "API server ready"; tail -20 $tmp/server.log; exit 1
fi

slice() { # ready flags for pod1..3 ("true true true"), or "none"
    local eps="" n=1
    if [ "$1" != none ]; then
        for r in $1; do
            eps="$eps{\"addresses\":[\"10.244.0.1$n\"],\"conditions\":{\"ready\":$r},\"nodeName\":\"node1\"},"
            n=$((n + 1))
        done
    fi
    cat <<JSON | kc apply -f - >/dev/null
{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
 "metadata":{"name":"web-1","namespace":"default","labels":{"kubernetes.io/service-name":"web",
   "endpointslice.kubernetes.io/managed-by":"e2e.ckube.io"}},
 "addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],
 "endpoints":[${eps%,}]}
JSON
}
cat <<JSON | kc apply -f - >/dev/null
{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},
 "spec":{"type":"NodePort","clusterIP":"10.96.100.10",
   "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP","nodePort":30080}]}}
JSON
# a UDP Service for the stale-conntrack check (no server needed: the DNAT entry is enough)
cat <<JSON | kc apply -f - >/dev/null
{"apiVersion":"v1","kind":"Service","metadata":{"name":"dns","namespace":"default"},
 "spec":{"clusterIP":"10.96.100.53","ports":[{"name":"dns","port":53,"targetPort":5353,"protocol":"UDP"}]}}
JSON
dns_slice() { # endpoint IP
    cat <<JSON | kc apply -f - >/dev/null
{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
 "metadata":{"name":"dns-1","namespace":"default","labels":{"kubernetes.io/service-name":"dns",
   "endpointslice.kubernetes.io/managed-by":"e2e.ckube.io"}},
 "addressType":"IPv4","ports":[{"name":"dns","port":5353,"protocol":"UDP"}],
 "endpoints":[{"addresses":["$1"],"conditions":{"ready":true},"nodeName":"node1"}]}
JSON
}
NFT_HAS_DNS="(iptables-save; nft list ruleset) 2>/dev/null | grep -q 10.96.100.53"
check "Service web with cluster IP 10.96.100.10 and node port 30080" \
    test "$(kc get svc web -o jsonpath='{.spec.clusterIP}/{.spec.ports[0].nodePort}')" = "10.96.100.10/30080"
slice "true true true"

get() { inn "$1" curl -gs --max-time 2 "http://$2/"; }
# spread N FROM URL: the distinct answers of N requests, sorted, space-separated
spread() {
    local out="" k
    for k in $(seq "$1"); do out="$out $(get "$2" "$3")"; done
    echo $out | tr ' ' '\n' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
all_ok() { # N FROM URL: every request answered
    local k r
    for k in $(seq "$1"); do r=$(get "$2" "$3"); local rc=$?; case $r in pod*) ;; *) echo "# request $k to $3 from $2 failed: [$r] curl exit $rc"; return 1 ;; esac; done
}
no_proxy_left() {
    local p
    for p in $(ip netns pids $NODE); do
        tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | grep -q -- "proxy --kubeconfig" && return 1
    done
    return 0
}
refused() { inn "$1" curl -s --max-time 2 "http://$2/" >/dev/null 2>&1; local rc=$?; [ $rc = 7 ] || echo "# curl $2 from $1: exit $rc" >>$tmp/refused.log; [ $rc = 7 ]; }

# ---- IPv6: an IPv6-only Service and a dual-stack one ----
v6slice() { # name service addressType IP-prefix
    local eps="" n
    for n in 1 2 3; do
        eps="$eps{\"addresses\":[\"$4$n\"],\"conditions\":{\"ready\":true},\"nodeName\":\"node1\"},"
    done
    cat <<JSON | kc apply -f - >/dev/null
{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
 "metadata":{"name":"$1","namespace":"default","labels":{"kubernetes.io/service-name":"$2",
   "endpointslice.kubernetes.io/managed-by":"e2e.ckube.io"}},
 "addressType":"$3","ports":[{"name":"http","port":8080,"protocol":"TCP"}],
 "endpoints":[${eps%,}]}
JSON
}
cat <<JSON | kc apply -f - >/dev/null
{"apiVersion":"v1","kind":"Service","metadata":{"name":"web6","namespace":"default"},
 "spec":{"ipFamilies":["IPv6"],"clusterIP":"fd00:96::10",
   "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"}]}}
JSON
cat <<JSON | kc apply -f - >/dev/null
{"apiVersion":"v1","kind":"Service","metadata":{"name":"dual","namespace":"default"},
 "spec":{"ipFamilyPolicy":"RequireDualStack","ipFamilies":["IPv4","IPv6"],
   "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"}]}}
JSON
v6slice web6-1 web6 IPv6 fd00:10::1
v6slice dual-4 dual IPv4 10.244.0.1
v6slice dual-6 dual IPv6 fd00:10::1
check "Service web6 has the IPv6 cluster IP fd00:96::10" \
    test "$(kc get svc web6 -o jsonpath='{.spec.clusterIPs[0]}/{.spec.ipFamilies[0]}')" = "fd00:96::10/IPv6"
DUAL4=$(kc get svc dual -o jsonpath='{.spec.clusterIPs[0]}')
DUAL6=$(kc get svc dual -o jsonpath='{.spec.clusterIPs[1]}')
check "Service dual has an IPv4 and an IPv6 cluster IP ($DUAL4, $DUAL6)" \
    bash -c "[[ '$DUAL4' == 10.* && '$DUAL6' == fd00:96::* ]]"

# iptables-nft-save without comments and counters, and without the built-in chains that have no
# rule (it lists every one, made or not; restoring the listing would make them)
save_norm() {
    grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/' |
        awk '/^\*/ { t = $0 } { line[NR] = $0; tab[NR] = t } /^-A / { used[t " " $2] = 1 }
             END { for (i = 1; i <= NR; i++) { split(line[i], w, " ")
                   if (line[i] ~ /^:[A-Z]+ (ACCEPT|DROP)/ && !used[tab[i] " " substr(w[1], 2)]) continue
                   print line[i] } }'
}

# the legacy tables, when the node namespace has any (listing them would create them)
legacy_save() { [ -n "$(inn $NODE cat /proc/net/ip_tables_names 2>/dev/null)" ] || return 0; inn $NODE iptables-legacy-save 2>/dev/null; }
for label in $MODES; do
    mode=${label%-legacy}
    if [ $label = iptables-legacy ]; then
        command -v iptables-legacy >/dev/null || { skip "iptables-legacy (not installed)"; continue; }
        inn $NODE iptables-legacy -t filter -N KUBE-KUBELET-CANARY
    fi
    slice "true true true"
    ip netns exec $NODE "$CK" proxy --kubeconfig "$data/kubeconfig" --proxy-mode $mode --hostname-override node1 \
        --min-sync-period 100ms --cluster-cidr 10.244.0.0/16 >$tmp/proxy-$mode.log 2>&1 &
    ppid_=$!
    if ! wait_for 20 get $NODE 10.96.100.10; then
        notok "$mode: proxy programs the service"; tail -20 $tmp/proxy-$mode.log
        kill $ppid_; wait $ppid_ 2>/dev/null; ppid_=; continue
    fi
    ok "$mode: cluster IP reachable from the node"
    check "$mode: cluster IP reachable from another pod" all_ok 5 $CLIENT 10.96.100.10
    check "$mode: node port on the node address from a pod" all_ok 5 $CLIENT 10.244.0.1:30080
    check "$mode: node port on 127.0.0.1 from the node" all_ok 3 $NODE 127.0.0.1:30080
    s=$(spread 40 $CLIENT 10.96.100.10)
    check "$mode: spread over all 3 backends ($s)" test "$s" = "pod1 pod2 pod3"
    check "$mode: IPv6 cluster IP [fd00:96::10] reachable from the node" wait_for 5 get $NODE "[fd00:96::10]"
    check "$mode: IPv6 cluster IP reachable from another pod" all_ok 5 $CLIENT "[fd00:96::10]"
    s=$(spread 40 $CLIENT "[fd00:96::10]")
    check "$mode: IPv6 spread over all 3 backends ($s)" test "$s" = "pod1 pod2 pod3"
    check "$mode: dual-stack service on its IPv4 cluster IP" all_ok 3 $CLIENT "$DUAL4"
    check "$mode: dual-stack service on its IPv6 cluster IP" all_ok 3 $CLIENT "[$DUAL6]"
    check "$mode: hairpin (pod1 -> its own service, 20 requests)" all_ok 20 ckpa$S 10.96.100.10
    slice "true false true"
    sleep 0.5
    s=$(spread 30 $CLIENT 10.96.100.10)
    check "$mode: unready pod2 leaves the rotation ($s)" test "$s" = "pod1 pod3"
    slice "true true true"
    sleep 0.5
    if [ $mode = userspace ]; then
        # pod3's server dies while the slice still says ready: the proxy retries the next endpoint
        for p in $(ip netns pids ckpc2$S); do kill -9 $p; done
        check "userspace: a killed backend costs no failed request (30 requests)" all_ok 30 $CLIENT 10.96.100.10
        inn ckpc2$S busybox httpd -p 8080 -h $tmp/www3
    fi
    slice none
    check "$mode: 0 endpoints -> connection refused" wait_for 5 refused $CLIENT 10.96.100.10
    [ -f $tmp/refused.log ] && sed 's/^/# /' $tmp/refused.log && rm -f $tmp/refused.log
    check "$mode: 0 endpoints -> node port refused" wait_for 5 refused $CLIENT 10.244.0.1:30080
    slice "true true true"
    check "$mode: endpoints back -> reachable again" wait_for 5 get $CLIENT 10.96.100.10
    check "$mode: syncs were partial after the first" grep -q "partial sync" $tmp/proxy-$mode.log
    if [ $label = iptables-legacy ]; then
        check "iptables-legacy: the proxy's rules are in the legacy backend" \
            bash -c "ip netns exec $NODE iptables-legacy-save -t nat | grep -q ':KUBE-SERVICES '"
        check "iptables-legacy: and none in nft" \
            bash -c "! ip netns exec $NODE iptables-nft-save 2>/dev/null | grep -q KUBE-"
    fi
    if [ $mode != userspace ] && command -v conntrack >/dev/null; then
        # a UDP flow to the dns Service is DNATed to pod1; pod1 leaves the slice: its conntrack
        # entry must go (else the flow keeps going to the removed endpoint)
        dns_slice 10.244.0.11
        wait_for 5 inn $NODE bash -c "$NFT_HAS_DNS" || true
        udp_flow() { inn $CLIENT bash -c 'echo x >/dev/udp/10.96.100.53/53' 2>/dev/null;
                     inn $NODE conntrack -L -p udp --dst-nat 10.244.0.11 2>/dev/null | grep -q 10.96.100.53; }
        check "$mode: a UDP flow to the dns service has a conntrack entry to pod1" wait_for 20 udp_flow
        dns_slice 10.244.0.12
        check "$mode: pod1 left the UDP service -> its conntrack entry is flushed" \
            wait_for 20 bash -c "! ip netns exec $NODE conntrack -L -p udp --dst-nat 10.244.0.11 2>/dev/null | grep -q 10.96.100.53"
    fi
    if [ $label = iptables ] && iptables --version | grep -q nf_tables; then
        # the netlink writer (src/proxy/iptnl.c) must leave exactly what iptables-nft-restore
        # would: what iptables-nft-save lists of the live node, restored by the tool itself into
        # a scratch namespace, must list the same and be the same expressions, byte for byte
        check "iptables: rules written over netlink" grep -q "written over netlink" $tmp/proxy-$mode.log
        ip netns add $RT
        for f in "" 6; do
            inn $NODE ip${f}tables-nft-save | save_norm >$tmp/live$f.txt
            inn $RT ip${f}tables-nft-restore <$tmp/live$f.txt
            inn $RT ip${f}tables-nft-save | save_norm >$tmp/rt$f.txt
            check "ip${f}tables: netlink-written rules ($(grep -c '^-A' $tmp/live$f.txt)) list as iptables-nft-restore's" \
                cmp -s $tmp/live$f.txt $tmp/rt$f.txt
            if [ -x "$IPTNL_TOOL" ]; then
                inn $NODE "$IPTNL_TOOL" dump ${f:+-6} | sort >$tmp/live$f.raw
                inn $RT "$IPTNL_TOOL" dump ${f:+-6} | sort >$tmp/rt$f.raw
                check "ip${f}tables: and are the same nf_tables expressions ($(grep -c ^rule $tmp/live$f.raw) rules)" \
                    cmp -s $tmp/live$f.raw $tmp/rt$f.raw
                cmp -s $tmp/live$f.raw $tmp/rt$f.raw || diff $tmp/live$f.raw $tmp/rt$f.raw | head -6 | cut -c1-200 | sed 's/^/# /'
            fi
        done
        ip netns del $RT
    fi
    [ -n "${KEEP:-}" ] && inn $NODE iptables-save >$tmp/iptables-$mode.txt 2>&1
    kill -TERM $ppid_; wait $ppid_; rc=$?
    check "$mode: proxy exits 0 on SIGTERM (rc=$rc)" test $rc = 0
    check "$mode: no proxy process left in the node namespace" no_proxy_left
    ppid_=
    inn $NODE "$CK" proxy --cleanup >>$tmp/proxy-$mode.log 2>&1
    # TIME_WAIT conntrack entries keep their DNAT binding when a SYN reuses the tuple: the next
    # mode would inherit this mode's choices (one of them a pod killed below).  Switching modes on
    # a live node has the same effect; this namespace's table only.
    command -v conntrack >/dev/null && inn $NODE conntrack -F >/dev/null 2>&1
    left=$( (inn $NODE iptables-save; inn $NODE ip6tables-save; inn $NODE nft list tables; legacy_save) 2>/dev/null |
            grep -E 'KUBE-|kube-proxy' | grep -v KUBE-KUBELET-CANARY | head -3)
    check "$label: --cleanup leaves no rule behind" test -z "$left"
    [ $label = iptables-legacy ] && inn $NODE iptables-legacy -t filter -X KUBE-KUBELET-CANARY
    check "$mode: after cleanup the cluster IP is gone" wait_for 3 bash -c "! ip netns exec $NODE curl -s --max-time 1 http://10.96.100.10/"
done

# ipvs: the kernel has no ip_vs here -> one clear line, exit non-zero, nothing programmed
if [ ! -e /proc/net/ip_vs ]; then
    out=$(inn $NODE "$CK" proxy --kubeconfig "$data/kubeconfig" --proxy-mode ipvs 2>&1); rc=$?
    check "ipvs: refuses to start without ip_vs (rc=$rc)" test $rc -ne 0
    check "ipvs: says so in one line" test "$(echo "$out" | wc -l)" = 1 -a -n "$(echo "$out" | grep ip_vs)"
    left=$( (inn $NODE iptables-save; inn $NODE nft list tables) 2>/dev/null | grep -E 'KUBE-|kube-proxy' | head -3)
    check "ipvs: nothing programmed" test -z "$left"
else
    skip "ipvs refusal (this kernel has ip_vs)"
fi
check "bad --proxy-mode is exit 2" bash -c "'$CK' proxy --proxy-mode bogus >/dev/null 2>&1; [ \$? = 2 ]"
[ $fails = 0 ]

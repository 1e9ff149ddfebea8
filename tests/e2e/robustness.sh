#!/bin/bash
# tests/e2e/robustness.sh - a dead or hung API server peer: the scheduler, controller-manager,
# hollow-node and proxy keep running while it is away (hung: SIGSTOP; dead: SIGKILL, its port
# refusing), retry, and serve again once it is back (a scale-up is scheduled and run, a new
# Service is programmed).  A leader that cannot renew its lease exits 1 with one clear line, as
# upstream's components do.  Bad flag values of the node components are one error, exit 2.
# Everything runs in a network namespace of its own (the proxy's rules stay there); loopback
# only; the trap stops every process and removes the namespace.
set -u
. "$(dirname "$0")/lib/common.sh"
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
skip() { echo "skip - $*"; }
if [ "$(id -u)" != 0 ] || ! ip netns list >/dev/null 2>&1; then
    skip "robustness e2e (needs root and network namespaces)"; exit 0
fi
command -v nft >/dev/null || { skip "robustness e2e (no nft for the proxy)"; exit 0; }
NS=ckrb$$
tmp=$(mktemp -d /tmp/ckube-e2e-robust.XXXXXX)
data=$tmp/data
declare -A PID=()

cleanup() {
    [ -n "${PID[api]:-}" ] && kill -CONT "${PID[api]}" 2>/dev/null
    for n in "${!PID[@]}"; do e2e_kill "${PID[$n]}"; done
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "# kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

# (started in the background with ip netns exec itself, not through inn: $! must be the process)
inn() { ip netns exec "$NS" "$@"; }
kc() { inn "$KUBECTL" --kubeconfig "$data/kubeconfig" --request-timeout=5s "$@"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }
# The deadlines are for a quiet machine; a loaded one (CI on 2 cores, the sanitizer build) gets
# E2E_WAIT_SCALE (default 3) times as long.  A passing check returns as soon as it holds.
wait_for() {
    local end=$((SECONDS + $1 * ${E2E_WAIT_SCALE:-3})); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}
alive() { for n in "$@"; do kill -0 "${PID[$n]}" 2>/dev/null || return 1; done; }

ip netns add "$NS"
inn ip link set lo up

# ---- bad flag values of the node components: one error, exit 2, nothing started -------------
# (in the namespace, and the kubelet with a root dir of its own: a value wrongly taken would
# start a component, which must not meet the host's ports or state)
kcfg=$tmp/none.kubeconfig
printf 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n' >"$kcfg"
bad_value() {
    local out rc
    out=$(cd "$tmp" && timeout 10 ip netns exec "$NS" "$CKUBE" "$@" 2>&1 </dev/null); rc=$?
    if [ "$rc" -eq 2 ] && [ "$(grep -c '^Error:' <<<"$out")" -eq 1 ] &&
        ! grep -qE 'Sanitizer|runtime error' <<<"$out"; then
        return 0
    fi
    echo "# ckube $*: exit $rc"; head -n 3 <<<"$out" | sed 's/^/#   /'
    return 1
}
value_cases=(
    "kubelet --root-dir $tmp/x --kubeconfig $kcfg --port 99999" "kubelet --root-dir $tmp/x --kubeconfig $kcfg --node-ip bogus"
    "kubelet --root-dir $tmp/x --kubeconfig $kcfg --pod-cidr bogus" "kubelet --root-dir $tmp/x --kubeconfig $kcfg --pod-cidr 10.0.0.0/33"
    "kubelet --root-dir $tmp/x --kubeconfig $kcfg --tls-cert-file x"
    "proxy --kubeconfig $kcfg --cluster-cidr bogus" "proxy --kubeconfig $kcfg --userspace-workers -1"
    "proxy --kubeconfig $kcfg --sync-period nans"
    "hollow-node --kubeconfig $kcfg --cpu abc" "hollow-node --kubeconfig $kcfg --memory 4Zz"
    "hollow-node --kubeconfig $kcfg --max-pods -1" "hollow-node --kubeconfig $kcfg --ephemeral-storage x"
    "scheduler --kubeconfig $kcfg --leader-elect-lease-duration 1e300h"
    "apiserver --data-dir $tmp/x --service-cluster-ip-range bogus"
    "apiserver --data-dir $tmp/x --advertise-address nowhere" "apiserver --data-dir $tmp/x --v abc"
)
value_fails=0
for c in "${value_cases[@]}"; do
    # shellcheck disable=SC2086 # each case is a word list
    bad_value $c || value_fails=$((value_fails + 1))
done
check "bad flag values (${#value_cases[@]} cases): one Error: line, exit 2" [ "$value_fails" -eq 0 ]
check "bad flag values started nothing" [ ! -e "$tmp/x" ]

# ---- the cluster's certificates and kubeconfigs, from one short `ckube server` run -----------
port=6443
ip netns exec "$NS" "$CKUBE" server --data-dir "$data" --secure-port $port --bind-address 127.0.0.1 --disable-agent \
    >"$tmp/server.log" 2>&1 &
PID[server]=$!
if ! wait_for 60 kc get --raw /readyz; then
    notok "setup: a first server run makes the PKI"; tail -n 20 "$tmp/server.log"; exit 1
fi
e2e_stop_checked "setup server" "${PID[server]}" "$tmp/server.log"
unset 'PID[server]'

start_api() {
    ip netns exec "$NS" "$CKUBE" apiserver --data-dir="$data" --secure-port=$port --bind-address=127.0.0.1 \
        --tls-cert-file="$data/pki/apiserver.crt" --tls-private-key-file="$data/pki/apiserver.key" \
        --client-ca-file="$data/pki/ca.crt" --token-auth-file="$data/pki/tokens.csv" \
        >>"$tmp/api.log" 2>&1 &
    PID[api]=$!
    wait_for 60 kc get --raw /readyz
}
check "API server starts" start_api
# the components, standalone: the scheduler and controller-manager without leader election (the
# retry paths alone), the proxy for the node hollow-node-0 in nftables mode
ip netns exec "$NS" "$CKUBE" scheduler --kubeconfig "$data/kubeconfigs/scheduler.kubeconfig" --leader-elect=false \
    >"$tmp/sched.log" 2>&1 &
PID[sched]=$!
ip netns exec "$NS" "$CKUBE" controller-manager --kubeconfig "$data/kubeconfigs/controller-manager.kubeconfig" \
    --leader-elect=false >"$tmp/cm.log" 2>&1 &
PID[cm]=$!
ip netns exec "$NS" "$CKUBE" hollow-node --kubeconfig "$data/kubeconfig" --count 2 >"$tmp/hollow.log" 2>&1 &
PID[hollow]=$!
proxy_mode=nftables
ip netns exec "$NS" "$CKUBE" proxy --kubeconfig "$data/kubeconfig" --proxy-mode $proxy_mode \
    --hostname-override hollow-node-0 --cluster-cidr 10.244.0.0/16 --min-sync-period 200ms \
    >"$tmp/proxy.log" 2>&1 &
PID[proxy]=$!
# a leader with a short lease: it must give up (exit 1, one line) when it cannot renew
ip netns exec "$NS" "$CKUBE" scheduler --kubeconfig "$data/kubeconfigs/scheduler.kubeconfig" \
    --leader-elect-lease-name robust-leader --leader-elect-lease-duration 4s \
    --leader-elect-renew-deadline 3s --leader-elect-retry-period 500ms \
    >"$tmp/leader.log" 2>&1 &
PID[leader]=$!

nodes_ready() { [ "$(kc get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" -eq 2 ]; }
running() { [ "$(kc get pods -l app=rb --no-headers 2>/dev/null | grep -c ' Running ')" -eq "$1" ]; }
svc_programmed() { inn nft list table ip kube-proxy 2>/dev/null | grep -q "$1"; }
cluster_ip() { kc get svc "$1" -o jsonpath='{.spec.clusterIP}' 2>/dev/null; }
check "two hollow nodes Ready" wait_for 60 nodes_ready
kc create deployment rb --image=img:1 --replicas=2 >/dev/null 2>&1
check "a 2-replica deployment runs (controller-manager, scheduler, hollow-node)" wait_for 60 running 2
kc create service clusterip rb1 --tcp=80:8080 >/dev/null 2>&1
ip1=$(cluster_ip rb1)
check "the proxy programs a Service ($proxy_mode)" wait_for 30 svc_programmed "$ip1"
check "the short-lease scheduler leads" wait_for 30 grep -q "became leader" "$tmp/leader.log"

# ---- a hung peer: the API server stopped (connections accepted, nothing answered) ------------
kill -STOP "${PID[api]}"
sleep 8
check "hung API server: every component still runs" alive sched cm hollow proxy
kill -CONT "${PID[api]}"
check "hung API server resumed: ready" wait_for 30 kc get --raw /readyz

# ---- a dead peer: SIGKILL, the port refuses for 10 s, then a new API server on the same data --
kill -KILL "${PID[api]}"; wait "${PID[api]}" 2>/dev/null
sleep 10
check "dead API server: scheduler, controller-manager, hollow-node and proxy still run" \
    alive sched cm hollow proxy
leader_gone() { ! kill -0 "${PID[leader]}" 2>/dev/null; }
if wait_for 20 leader_gone; then
    wait "${PID[leader]}"; rc=$?
    check "dead API server: the leader that cannot renew exits 1 (got $rc), saying why" \
        [ "$rc" -eq 1 -a -n "$(grep 'leader election lost' "$tmp/leader.log")" ]
else
    notok "dead API server: the leader that cannot renew exits"
fi
unset 'PID[leader]'
check "API server back" start_api
check "after the outage: both nodes stay Ready" wait_for 60 nodes_ready
kc scale deployment rb --replicas=4 >/dev/null 2>&1
check "after the outage: a scale-up is made, scheduled and run" wait_for 60 running 4
kc create service clusterip rb2 --tcp=80:8080 >/dev/null 2>&1
ip2=$(cluster_ip rb2)
check "after the outage: the proxy programs a new Service" wait_for 60 svc_programmed "$ip2"
check "no component was restarted or exited" alive sched cm hollow proxy

# ---- clean stops, no sanitizer report -----------------------------------------------------
for n in proxy hollow cm sched api; do
    e2e_stop_checked "$n" "${PID[$n]}" "$tmp/$n.log"
    unset "PID[$n]"
done
e2e_sanitizer_check "$tmp"/*.log
[ "$FAILED" -eq 0 ]

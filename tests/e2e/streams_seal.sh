#!/bin/bash
# tests/e2e/streams_seal.sh - the sealing hand-off (docs/podproxy.md, "Sealing hand-off (session
# 9)") with the real kubectl 1.27/1.29/1.30/1.33 through the API server to the stand-in node
# (bench/streams_node: commands and ports on this host, no containers, so no host lock): exec
# output (50 MiB, counted), stdin echoed back, an exit code, port-forward (20 MiB x 3, compared),
# first with the hand-off on (every session's end line must say "seal hand-off used"), then a
# second API server with CKUBE_RELAY_SEAL=0 (every session "not used", the same results).
# Loopback only; everything it starts is stopped by the trap.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
VERSIONS=${VERSIONS:-"1.27 1.29 1.30 1.33"}
tmp=$(mktemp -d /tmp/ckube-e2e-seal.XXXXXX)
pids=()
fails=0
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; fails=$((fails + 1)); }
. "$ROOT/tests/e2e/lib/standin_node.sh"

[ -x "$B/bench/streams_node" ] || { echo "not ok - $B/bench/streams_node missing (make)"; exit 1; }
cd "$tmp"
standin_node_start
mkdir www
head -c 20971520 /dev/urandom >www/blob
web=$(free_port)
python3 -m http.server "$web" --bind 127.0.0.1 --directory www >web.log 2>&1 &
pids+=($!)

# phase NAME [ENV=VALUE]: an API server (with ENV), the stand-in's Node and a pod on it, and
# every kubectl through it; sets $log to its server log
phase() {
    local name=$1 api d=$tmp/$1
    shift
    standin_server_start "$d" "$@"
    log=$d/server.log
    K0=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
    kc() { timeout "${T:-30}" "$K" --kubeconfig "$d/data/kubeconfig" "$@"; }
    K=$K0
    standin_ready "$d" || { notok "$name: server ready"; return; }
    standin_objects "$d/objs.yaml"
    kc create --validate=false -f "$d/objs.yaml" >/dev/null || notok "$name: create objects"
    standin_node_status || notok "$name: node status"
    standin_setstatus pod sp '{"phase":"Running"}' || notok "$name: pod status"
    for v in $VERSIONS; do
        K=/usr/lib/google-cloud-sdk/bin/kubectl.$v
        [ -x "$K" ] || { notok "kubectl $v missing"; continue; }
        n=$(kc exec sp -- head -c 52428800 /dev/zero | wc -c)
        [ "$n" = 52428800 ] && ok "$name: kubectl $v: exec: 50 MiB" || notok "$name: kubectl $v: exec: $n bytes"
        e=$(echo "hi-$v" | kc exec -i sp -- cat)
        [ "$e" = "hi-$v" ] && ok "$name: kubectl $v: exec -i: stdin echoed" || notok "$name: kubectl $v: exec -i: got '$e'"
        kc exec sp -- sh -c 'exit 3' >/dev/null 2>&1
        rc=$?
        [ $rc = 3 ] && ok "$name: kubectl $v: exit code 3" || notok "$name: kubectl $v: exit code $rc"
        lp=$(free_port)
        : >"$d/pf.log"
        "$K" --kubeconfig "$d/data/kubeconfig" port-forward pod/sp "$lp:$web" >>"$d/pf.log" 2>&1 &
        local pf=$! good=0
        for _ in $(seq 100); do grep -q Forwarding "$d/pf.log" && break; sleep 0.1; done
        for _ in 1 2 3; do curl -s --max-time 30 "http://127.0.0.1:$lp/blob" | cmp -s - www/blob && good=$((good + 1)); done
        kill $pf 2>/dev/null
        wait $pf 2>/dev/null
        [ $good = 3 ] && ok "$name: kubectl $v: port-forward 3/3 intact" || notok "$name: kubectl $v: port-forward $good/3 intact"
    done
    sleep 0.5   # the last session's end line
}

phase on
nu=$(grep -ac 'seal hand-off used' "$log")
nn=$(grep -ac 'seal hand-off not used' "$log")
[ "$nu" -ge $(( $(echo $VERSIONS | wc -w) * 4 )) ] && [ "$nn" = 0 ] &&
    ok "hand-off on: used in all $nu sessions" || notok "hand-off on: used in $nu sessions, not used in $nn"
grep -aq 'secret=' "$log" node.log && notok "the hand-off's value in a log" || ok "the hand-off's value in no log"

phase off CKUBE_RELAY_SEAL=0
nu=$(grep -ac 'seal hand-off used' "$log")
nn=$(grep -ac 'seal hand-off not used' "$log")
[ "$nu" = 0 ] && [ "$nn" -ge $(( $(echo $VERSIONS | wc -w) * 4 )) ] &&
    ok "CKUBE_RELAY_SEAL=0: not used in all $nn sessions" || notok "CKUBE_RELAY_SEAL=0: used in $nu sessions, not used in $nn"

[ $fails = 0 ] && echo "# streams_seal: all passed" || echo "# streams_seal: $fails failed"
exit $((fails > 0))

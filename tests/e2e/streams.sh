#!/bin/bash
# tests/e2e/streams.sh - exec, attach, cp and port-forward with the real kubectl 1.27/1.29/1.30/1.33
# through the real API server (its pods/exec|attach|portforward relay) to a node.
#
# The node is the STAND-IN bench/streams_node (src/streams on an HTTPS port, running commands
# on this host, no containers): every test name says "stand-in node".  It checks the whole
# protocol stack (websocket v5 and SPDY/3.1 negotiation and fallback, the relay, the node-side
# protocols) end to end; real pods are covered once the kubelet serves these endpoints.
# Loopback only; everything it starts is stopped by the trap.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
CK=$B/ckube
NODE=$B/bench/streams_node
VERSIONS=${VERSIONS:-"1.27 1.29 1.30 1.33"}
tmp=$(mktemp -d /tmp/ckube-e2e-streams.XXXXXX)
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
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

[ -x "$NODE" ] || { echo "not ok - $NODE missing (make)"; exit 1; }
cd "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout node.key \
    -out node.crt -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
"$NODE" 0 node.crt node.key nodeport >node.log 2>&1 &
pids+=($!)
api=$(free_port)
"$CK" server --data-dir "$tmp/data" --secure-port "$api" --disable-agent >server.log 2>&1 &
pids+=($!)
K0=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
for i in $(seq 100); do
    [ -f nodeport ] && [ -f data/kubeconfig ] && \
        $K0 --kubeconfig data/kubeconfig get --raw /readyz >/dev/null 2>&1 && break
    sleep 0.2
done
$K0 --kubeconfig data/kubeconfig get --raw /readyz >/dev/null 2>&1 || { notok "server ready"; exit 1; }
np=$(cat nodeport)

# a Node pointing at the stand-in, a running pod on it, a completed pod
cat >objs.yaml <<EOY
apiVersion: v1
kind: Node
metadata: {name: standin}
---
apiVersion: v1
kind: Pod
metadata: {name: sp, namespace: default}
spec:
  nodeName: standin
  containers: [{name: main, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: default}
spec:
  nodeName: standin
  containers: [{name: main, image: busybox}]
EOY
kc() { timeout "${T:-20}" "$K" --kubeconfig "$tmp/data/kubeconfig" "$@"; }
K=$K0
kc create --validate=false -f objs.yaml >/dev/null || notok "create objects"
setstatus() {   # KIND NAME JSON
    kc get "$1" "$2" -o json | python3 -c "import json,sys; o=json.load(sys.stdin); o['status']=json.loads(sys.argv[1]); print(json.dumps(o))" "$3" |
        kc replace --validate=false --subresource=status -f - >/dev/null
}
setstatus node standin "{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"}],\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":$np}}}" ||
    notok "node status"
setstatus pod sp '{"phase":"Running"}' || notok "pod status"
setstatus pod done '{"phase":"Succeeded"}' || notok "pod status"

head -c 5242880 /dev/urandom >big.bin
mkdir -p www cp
head -c 1048576 /dev/urandom >www/blob
web=$(free_port)
python3 -m http.server "$web" --bind 127.0.0.1 --directory www >web.log 2>&1 &
pids+=($!)
sum() { sha256sum "$1" | cut -d' ' -f1; }

for v in $VERSIONS; do
    K=/usr/lib/google-cloud-sdk/bin/kubectl.$v
    [ -x "$K" ] || { notok "kubectl $v missing"; continue; }
    # exec: stdout, stderr, exit code
    kc exec sp -- sh -c 'echo to-out; echo to-err >&2; exit 3' >out 2>err
    rc=$?
    if [ $rc = 3 ] && grep -qx to-out out && grep -qx to-err err; then
        ok "kubectl $v: stand-in node: exec stdout/stderr, exit code 3"
    else notok "kubectl $v: stand-in node: exec stdout/stderr, exit code 3 (rc=$rc)"; fi
    # stdin piped
    got=$(echo hi | kc exec -i sp -- cat)
    [ "$got" = hi ] && ok "kubectl $v: stand-in node: echo hi | exec -i cat" ||
        notok "kubectl $v: stand-in node: exec -i cat gave '$got'"
    # a tty under script: prompt, window size from the client, exit code
    (sleep 1.5; echo 'stty size; echo PROMPT-$((6*7)); exit 4'; sleep 1) |
        T=20 timeout 20 script -qec "stty cols 77 rows 33; $K --kubeconfig $tmp/data/kubeconfig exec -it sp -- sh" /dev/null >tty.out 2>&1
    rc=$?
    if [ $rc = 4 ] && grep -aq '^PROMPT-42' tty.out && grep -aq '^33 77' tty.out; then
        ok "kubectl $v: stand-in node: exec -it under script (prompt, resize, exit 4)"
    else notok "kubectl $v: stand-in node: exec -it (rc=$rc: $(tr -d '\r' <tty.out | tail -3 | tr '\n' '|'))"; fi
    # attach: the running process' output
    T=3 kc attach sp >att.out 2>&1
    grep -q '^attached-output' att.out && ok "kubectl $v: stand-in node: attach" ||
        notok "kubectl $v: stand-in node: attach: $(head -3 att.out | tr '\n' '|')"
    # cp both ways, 5 MiB
    rm -f cp/*
    kc cp "$tmp/big.bin" "sp:$tmp/cp/up.bin" >/dev/null 2>&1
    kc cp "sp:$tmp/big.bin" "$tmp/cp/down.bin" >/dev/null 2>&1
    if [ -f cp/up.bin ] && [ -f cp/down.bin ] && [ "$(sum cp/up.bin)" = "$(sum big.bin)" ] &&
        [ "$(sum cp/down.bin)" = "$(sum big.bin)" ]; then
        ok "kubectl $v: stand-in node: cp 5 MiB both ways, same sha256"
    else notok "kubectl $v: stand-in node: cp 5 MiB both ways"; fi
    # port-forward with 10 parallel requests
    lp=$(free_port)
    "$K" --kubeconfig "$tmp/data/kubeconfig" port-forward pod/sp "$lp:$web" >pf.log 2>&1 &
    pf=$!
    for i in $(seq 50); do grep -q Forwarding pf.log && break; sleep 0.1; done
    rm -f got.*
    cpids=()
    for i in $(seq 10); do curl -s -m 20 -o "got.$i" "http://127.0.0.1:$lp/blob" & cpids+=($!); done
    wait "${cpids[@]}"
    good=0
    for i in $(seq 10); do cmp -s "got.$i" www/blob && good=$((good + 1)); done
    kill $pf 2>/dev/null; wait $pf 2>/dev/null
    [ $good = 10 ] && ok "kubectl $v: stand-in node: port-forward, 10 parallel 1 MiB downloads" ||
        notok "kubectl $v: stand-in node: port-forward: $good/10 intact"
    # errors: missing container, completed pod, missing binary; none hangs
    msg=$(kc exec sp -c nope -- true 2>&1)
    [[ $msg == *'container nope is not valid for pod sp'* ]] &&
        ok "kubectl $v: exec into a missing container: upstream's message" ||
        notok "kubectl $v: missing container: '$msg'"
    msg=$(kc exec done -- true 2>&1)
    [[ $msg == *'cannot exec into a container in a completed pod; current phase is Succeeded'* ]] &&
        ok "kubectl $v: exec into a completed pod: upstream's message" ||
        notok "kubectl $v: completed pod: '$msg'"
    msg=$(kc exec sp -- /no/such/binary 2>&1)
    rc=$?
    [[ $rc != 0 && $rc != 124 && $msg == *'executable file not found'* ]] &&
        ok "kubectl $v: stand-in node: exec of a missing binary fails with a message" ||
        notok "kubectl $v: missing binary: rc=$rc '$msg'"
done

# a slow client does not grow the server: read 100 MiB of output at 1 MiB/s for 3 s, check RSS
K=$K0
api_pid=$(pgrep -f -- "ckube apiserver.*$tmp/data" | head -1)
if [ -n "$api_pid" ]; then
    rss0=$(awk '/VmRSS/{print $2}' /proc/$api_pid/status)
    timeout 4 "$K" --kubeconfig data/kubeconfig exec sp -- head -c 104857600 /dev/zero |
        python3 -c 'import sys,time
t=time.time()
while time.time()-t<3:
    sys.stdin.buffer.read(65536); time.sleep(0.06)' 2>/dev/null
    rss1=$(awk '/VmRSS/{print $2}' /proc/$api_pid/status)
    [ $((rss1 - rss0)) -lt 65536 ] && ok "slow exec reader: API server RSS grew $(( (rss1 - rss0) / 1024 )) MiB (< 64)" ||
        notok "slow exec reader: API server RSS grew $(( (rss1 - rss0) / 1024 )) MiB"
else
    notok "find the API server process"
fi

[ $fails = 0 ] && echo "# streams: all passed" || echo "# streams: $fails failed"
exit $((fails > 0))

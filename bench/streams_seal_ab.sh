#!/bin/bash
# bench/streams_seal_ab.sh - the API server's and the node's CPU per 100 MiB of exec output
# through the relay, without kubectl, containers or the host lock: `ckube server
# --disable-agent`, the stand-in node (bench/streams_node: commands run on this host) and
# bench/streams_client (websocket v5) through the API server, RUNS x `head -c 100MiB /dev/zero`.
# Prints one line per run: "mib_s=.. apiserver_ms=.. node_ms=.." (CPU from /proc ticks, the
# node's incl. the `head` it waited for).  For A/B: run it alternately with two builds.
# Usage: bench/streams_seal_ab.sh [BUILD] [RUNS]   (loopback only; everything stopped at exit)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
RUNS=${2:-5}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
tmp=$(mktemp -d /tmp/ckube-seal-ab.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cd "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout node.key \
    -out node.crt -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
"$B/bench/streams_node" 0 node.crt node.key nodeport >node.log 2>&1 &
NP=$!; pids+=($NP)
api=$(free_port)
"$B/ckube" server --data-dir "$tmp/data" --secure-port "$api" --disable-agent >server.log 2>&1 &
pids+=($!)
K=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
kc() { timeout 20 "$K" --kubeconfig "$tmp/data/kubeconfig" "$@"; }
for _ in $(seq 100); do
    [ -f nodeport ] && [ -f data/kubeconfig ] && kc get --raw /readyz >/dev/null 2>&1 && break
    sleep 0.2
done
np=$(cat nodeport)
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
  tolerations: [{operator: Exists}]
EOY
kc create --validate=false -f objs.yaml >/dev/null
setstatus() {
    kc get "$1" "$2" -o json | python3 -c "import json,sys; o=json.load(sys.stdin); o['status']=json.loads(sys.argv[1]); print(json.dumps(o))" "$3" |
        kc replace --validate=false --subresource=status -f - >/dev/null
}
setstatus node standin "{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"}],\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":$np}}}"
setstatus pod sp '{"phase":"Running"}'
python3 -c "
import yaml, base64
u = yaml.safe_load(open('data/kubeconfig'))['users'][0]['user']
open('adm.crt','wb').write(base64.b64decode(u['client-certificate-data'])); open('adm.key','wb').write(base64.b64decode(u['client-key-data']))"
AP=$(pgrep -f -- "ckube apiserver.*$tmp/data" | head -1)
EX="/api/v1/namespaces/default/pods/sp/exec?container=main&command=head&command=-c&command=104857600&command=/dev/zero&stdout=true"
"$B/bench/streams_client" 127.0.0.1 "$api" "$EX" adm.crt adm.key >/dev/null 2>&1   # warm-up
for _ in $(seq "$RUNS"); do
    a0=$(ticks "$AP"); n0=$(ticks "$NP")
    out=$("$B/bench/streams_client" 127.0.0.1 "$api" "$EX" adm.crt adm.key 2>&1)
    a1=$(ticks "$AP"); n1=$(ticks "$NP")
    tck=$(getconf CLK_TCK)
    echo "$(echo "$out" | grep -o 'mib_s=[0-9.]*') bytes=$(echo "$out" | grep -o 'bytes=[0-9]*' | head -1 | cut -d= -f2) apiserver_ms=$(( (a1 - a0) * 1000 / tck )) node_ms=$(( (n1 - n0) * 1000 / tck ))"
done
echo "# hand-off sessions: $(grep -ac 'seal hand-off used' server.log), not: $(grep -ac 'seal hand-off not used' server.log)"

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
. "$ROOT/tests/e2e/lib/standin_node.sh"
ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cd "$tmp"
standin_node_start
NP=$standin_pid
standin_server_start "$tmp"
K=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
kc() { timeout 20 "$K" --kubeconfig "$tmp/data/kubeconfig" "$@"; }
standin_ready "$tmp"
standin_objects objs.yaml
kc create --validate=false -f objs.yaml >/dev/null
standin_node_status
standin_setstatus pod sp '{"phase":"Running"}'
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

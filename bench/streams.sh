#!/bin/bash
# bench/streams.sh - streaming throughput and exec latency through the whole path:
#   kubectl -> API server relay -> kubelet -> runc exec / pod netns.
# Measures, in one run on one machine (a real kubelet and a busybox pod made from
# busybox-static, as tests/e2e/streams.sh does):
#   exec:  `kubectl exec pod -- cat /www/blob` (100 MiB) vs `runc exec cat` of the same file
#          (direct, on the node) vs `cat` of the same bytes from a local file into a pipe;
#   port-forward: curl of the 100 MiB file through `kubectl port-forward` vs curl straight
#          to the pod IP;
#   exec start: kubectl wall time, the kubelet's own figure (request received -> first
#          output byte, from its log), and bench/streams_client's connect -> first byte through
#          the API server (server side, no kubectl), p50/p90 over N runs.
# Usage: bench/streams.sh [N]  (root; BUILD=build; KUBECTL=kubectl.1.33)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
CK=$B/ckube
K0=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
N=${1:-20}
tmp=$(mktemp -d /tmp/ckube-bench-streams.XXXXXX)
pids=()
cleanup() {
    timeout 20 "$K0" --kubeconfig "$tmp/data/kubeconfig" delete pod rp --grace-period=1 >/dev/null 2>&1
    R=$tmp/kubelet/runtime
    for id in $(runc --root "$R" list -q 2>/dev/null); do
        runc --root "$R" kill "$id" KILL 2>/dev/null; sleep 0.2; runc --root "$R" delete -f "$id" 2>/dev/null
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for p in $(pgrep -f -- "kubelet-shim .*$tmp/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    mount | awk -v t="$tmp/" 'index($3, t) == 1 {print $3}' | sort -r | while read -r m; do umount -l "$m"; done
    ip link del ckst1 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; print('%.0f' % (104857600 / (float(sys.argv[2]) - float(sys.argv[1])) / 1048576))" "$1" "$2"; }

cd "$tmp"
BLOB_MB=100 python3 "$ROOT/tests/e2e/streams_image.py" busybox.tar blob
"$CK" images --root-dir "$tmp/kubelet" import busybox.tar --name docker.io/library/busybox:latest >/dev/null
api=$(free_port)
"$CK" server --data-dir "$tmp/data" --secure-port "$api" --disable-agent >server.log 2>&1 &
pids+=($!)
kc() { "$K0" --kubeconfig "$tmp/data/kubeconfig" "$@"; }
for i in $(seq 100); do [ -f data/kubeconfig ] && kc get --raw /readyz >/dev/null 2>&1 && break; sleep 0.2; done
"$CK" kubelet --kubeconfig data/kubeconfig --root-dir "$tmp/kubelet" --node-name streams-bench \
    --port "$(free_port)" --pod-cidr 10.244.232.0/24 --cni-bridge ckst1 >kubelet.log 2>&1 &
pids+=($!)
cat >rp.yaml <<EOY
apiVersion: v1
kind: Pod
metadata: {name: rp, namespace: default}
spec:
  nodeName: streams-bench
  containers:
  - {name: main, image: busybox, imagePullPolicy: Never, command: ["sh", "-c", "httpd -p 8080 -h /www; sleep 100000"]}
EOY
kc create --validate=false -f rp.yaml >/dev/null
for i in $(seq 100); do [ "$(kc get pod rp -o jsonpath='{.status.phase}')" = Running ] && break; sleep 0.3; done
ip=$(kc get pod rp -o jsonpath='{.status.podIP}')
id=$(runc --root "$tmp/kubelet/runtime" list -q | head -1)
sum=$(sha256sum blob | cut -d' ' -f1)

echo "# 100 MiB, MiB/s (best of 3)"
best() { sort -n | tail -1; }
r_local=$(for i in 1 2 3; do t0=$(now); cat blob | cat >/dev/null; t1=$(now); rate $t0 $t1; done | best)
r_runc=$(for i in 1 2 3; do t0=$(now); runc --root "$tmp/kubelet/runtime" exec "$id" cat /www/blob >/dev/null; t1=$(now); rate $t0 $t1; done | best)
r_exec=$(for i in 1 2 3; do t0=$(now); kc exec rp -- cat /www/blob >out.bin; t1=$(now); rate $t0 $t1; done | best)
[ "$(sha256sum out.bin | cut -d' ' -f1)" = "$sum" ] || echo "WARNING: exec output differs"
r_pod=$(for i in 1 2 3; do t0=$(now); curl -s -o /dev/null "http://$ip:8080/blob"; t1=$(now); rate $t0 $t1; done | best)
lp=$(free_port)
kc port-forward pod/rp "$lp:8080" >pf.log 2>&1 &
pf=$!
for i in $(seq 50); do grep -q Forwarding pf.log && break; sleep 0.1; done
r_pf=$(for i in 1 2 3; do t0=$(now); curl -s -o pf.bin "http://127.0.0.1:$lp/blob"; t1=$(now); rate $t0 $t1; done | best)
[ "$(sha256sum pf.bin | cut -d' ' -f1)" = "$sum" ] || echo "WARNING: port-forward output differs"
kill $pf; wait $pf 2>/dev/null
# the same exec without kubectl: bench/streams_client (websocket v5) through the API server
python3 -c "
import yaml, base64
u = yaml.safe_load(open('data/kubeconfig'))['users'][0]['user']
open('adm.crt','wb').write(base64.b64decode(u['client-certificate-data'])); open('adm.key','wb').write(base64.b64decode(u['client-key-data']))"
CL="$B/bench/streams_client 127.0.0.1 $api"
EX=/api/v1/namespaces/default/pods/rp/exec?container=main
r_client=$(for i in 1 2 3; do $CL "$EX&command=cat&command=/www/blob&stdout=true" adm.crt adm.key |
    sed -n 's/.*mib_s=\([0-9]*\).*/\1/p'; done | best)
printf "local cat | cat              %6s\n" "$r_local"
printf "runc exec cat (node, direct) %6s\n" "$r_runc"
printf "kubectl exec cat             %6s   (%.2fx runc exec, %.2fx local)\n" "$r_exec" \
    "$(echo "$r_exec / $r_runc" | bc -l)" "$(echo "$r_exec / $r_local" | bc -l)"
printf "exec cat, our client (no kubectl) %6s   (%.2fx runc exec)\n" "$r_client" "$(echo "$r_client / $r_runc" | bc -l)"
printf "curl pod IP (direct)         %6s\n" "$r_pod"
printf "curl via port-forward        %6s   (%.2fx direct)\n" "$r_pf" "$(echo "$r_pf / $r_pod" | bc -l)"

echo "# exec start latency over $N runs (kubectl $(basename "$K0")), ms"
: >lat
for i in $(seq "$N"); do
    t0=$(now); kc exec rp -- echo x >/dev/null; t1=$(now)
    python3 -c "import sys; print('%.1f' % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$t0" "$t1" >>lat
done
for i in $(seq "$N"); do
    $CL "$EX&command=echo&command=x&stdout=true" adm.crt adm.key | sed -n 's/first_byte_ms=\([0-9.]*\).*/\1/p'
done >cl
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int(NR*p/100+0.5); if (i<1) i=1; print a[i]}'; }
grep -o 'first output [0-9.]* ms' kubelet.log | awk '{print $3}' | tail -n "$N" >srv
echo "kubectl exec echo, wall (incl. kubectl start): p50 $(pct lat 50)  p90 $(pct lat 90)"
echo "kubelet: request -> first output byte:        p50 $(pct srv 50)  p90 $(pct srv 90)"
echo "API server + kubelet (our client: connect -> first byte): p50 $(pct cl 50)  p90 $(pct cl 90)"

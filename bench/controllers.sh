#!/bin/bash
# bench/controllers.sh - controller-manager at scale: a Deployment of REPLICAS (3000) pods on NODES
# (300) hollow nodes, timed from `kubectl apply` to status.availableReplicas == REPLICAS, then a
# rolling update of it (25% surge / 25% unavailable) to a complete rollout; the controller-manager's
# peak RSS (VmHWM) and CPU seconds over each phase.  Runs `ckube server` (API server, scheduler,
# controller-manager) on loopback; everything it starts is killed by the trap.
#   REPLICAS=3000 NODES=300 bench/controllers.sh [BUILD-DIR]   (default $BUILD, else build)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${BUILD:-build}}
case $BUILD in /*) CK=$BUILD/ckube ;; *) CK=$ROOT/$BUILD/ckube ;; esac
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
REPLICAS=${REPLICAS:-3000}
NODES=${NODES:-300}
tmp=$(mktemp -d /tmp/ckube-bench-controllers.XXXXXX)
data=$tmp/data
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 1
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for p in $(pgrep -f -- "$tmp/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
kc() { "$KUBECTL" --kubeconfig "$data/kubeconfig" --request-timeout=20s "$@"; }
now() { date +%s.%N; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 --disable-agent \
    >"$tmp/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ "$(kc get --raw /readyz 2>/dev/null)" = ok ] && break; sleep 0.2; done
"$CK" hollow-node --kubeconfig "$data/kubeconfig" --count "$NODES" --workers 16 >"$tmp/hollow.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
    [ "$(kc get nodes --no-headers 2>/dev/null | grep -c ' Ready')" -ge "$NODES" ] && break
    sleep 0.5
done
cm=$(pgrep -f -- "controller-manager --kubeconfig=$data/" | head -n 1)
[ -n "$cm" ] || { echo "no controller-manager"; exit 1; }
echo "# $NODES hollow nodes Ready; controller-manager pid $cm"
# PROF_HOOK: shell code run here with $cm set (e.g. a sampler of /proc/$cm/smaps)
[ -n "${PROF_HOOK:-}" ] && eval "$PROF_HOOK"

cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# wait_status EXPR: poll the deployment until the jsonpath text equals EXPR's expansion
wait_status() {
    local want=$1 path=$2 limit=${3:-300} end=$((SECONDS + ${3:-300}))
    while [ $SECONDS -lt $end ]; do
        [ "$(kc get deploy bench -o "jsonpath=$path" 2>/dev/null)" = "$want" ] && return 0
        sleep 0.1
    done
    echo "timed out; have: $(kc get deploy bench -o "jsonpath=$path")"
    return 1
}

cat >"$tmp/dep.yaml" <<Y
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench}
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec: {containers: [{name: c, image: "img:1", resources: {requests: {cpu: 1m, memory: 1Mi}}}]}
Y
cpu0=$(cpu_s "$cm")
t0=$(now)
kc apply -f "$tmp/dep.yaml" >/dev/null
wait_status "$REPLICAS $REPLICAS" '{.status.availableReplicas} {.status.updatedReplicas}'
t1=$(now)
cpu1=$(cpu_s "$cm")
printf "create:  %d replicas available in %.2f s; controller-manager CPU %.2f s, RSS %s MB (peak %s MB)\n" \
    "$REPLICAS" "$(echo "$t1 - $t0" | bc)" "$(echo "$cpu1 - $cpu0" | bc)" "$(rss_mb "$cm")" "$(hwm_mb "$cm")"

t2=$(now)
kc set image deploy/bench c=img:2 >/dev/null
gen=$(kc get deploy bench -o jsonpath='{.metadata.generation}')
wait_status "$gen $REPLICAS $REPLICAS $REPLICAS" '{.status.observedGeneration} {.status.updatedReplicas} {.status.availableReplicas} {.status.replicas}' 600
t3=$(now)
cpu2=$(cpu_s "$cm")
printf "rolling: update of %d replicas complete in %.2f s; controller-manager CPU %.2f s, RSS %s MB (peak %s MB)\n" \
    "$REPLICAS" "$(echo "$t3 - $t2" | bc)" "$(echo "$cpu2 - $cpu1" | bc)" "$(rss_mb "$cm")" "$(hwm_mb "$cm")"
echo "# apiserver CPU: $(cpu_s "$(pgrep -f -- "apiserver --data-dir=$data" | head -n1)") s total; load: $(cut -d' ' -f1-3 /proc/loadavg)"

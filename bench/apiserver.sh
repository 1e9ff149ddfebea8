#!/bin/bash
# bench/apiserver.sh [BUILD] - API server throughput over HTTPS keep-alive, measured with wrk
# (bearer-token auth; wrk cannot present client certificates):
#   creates/s and p50/p99 with 1/16/64 connections (ConfigMaps, unique names per request),
#   gets/s, the time to list 10,000 pods (JSON and Table), idle RSS and RSS with the pods stored.
# STORE=etcd uses a throwaway etcd on loopback instead of SQLite.  Prints one line per measurement.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CKUBE=$ROOT/$BUILD/ckube
SECS=${SECS:-5}
PODS=${PODS:-10000}
command -v wrk >/dev/null || { echo "apiserver bench: wrk not installed"; exit 2; }
T=$(mktemp -d /tmp/ckube-bench-apiserver.XXXXXX)
PID= EPID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [ -n "$EPID" ] && kill "$EPID" 2>/dev/null && wait "$EPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
    -out ca.crt -days 1 -subj /CN=bench-ca -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
echo 'benchtoken,bench,uid-1,"system:masters"' >tokens.csv
ETCD_FLAG=()
if [ "${STORE:-sqlite}" = etcd ]; then
    etcd --data-dir "$T/etcd" --listen-client-urls http://127.0.0.1:23791 \
        --advertise-client-urls http://127.0.0.1:23791 --listen-peer-urls http://127.0.0.1:23801 \
        >etcd.log 2>&1 &
    EPID=$!
    sleep 2
    ETCD_FLAG=(--etcd-servers http://127.0.0.1:23791)
fi
"$CKUBE" apiserver --data-dir "$T/data" --secure-port 0 --bind-address 127.0.0.1 \
    --tls-cert-file ca.crt --tls-private-key-file ca.key --token-auth-file tokens.csv \
    "${ETCD_FLAG[@]}" >apiserver.log 2>&1 &
PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/.*serving HTTPS on 127.0.0.1:\([0-9]*\).*/\1/p' apiserver.log)
    [ -n "$PORT" ] && curl -sk "https://127.0.0.1:$PORT/readyz" | grep -q ok && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "apiserver did not start"; cat apiserver.log; exit 1; }
URL=https://127.0.0.1:$PORT
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$PID/status"; }
echo "store=${STORE:-sqlite} idle RSS: $(rss)"

cat >create.lua <<'EOF'
counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local n = 0
request = function()
    n = n + 1
    local body = string.format('{"metadata":{"name":"b-%d-%d-%d"},"data":{"k":"v"}}', id, n, os.time())
    return wrk.format("POST", "/api/v1/namespaces/default/configmaps", nil, body)
end
EOF
H=(-H "Authorization: Bearer benchtoken" -H "Content-Type: application/json")
summary() {
    local label=$1 file=$2
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$file")
    p50=$(awk '$1=="50%" {print $2}' "$file")
    p99=$(awk '$1=="99%" {print $2}' "$file")
    errs=$(awk '/Non-2xx/ {print $NF}' "$file")
    echo "store=${STORE:-sqlite} $label: ${rps} req/s p50=${p50} p99=${p99}${errs:+ non-2xx=$errs}"
}
for c in 1 16 64; do
    th=$((c < 4 ? c : 4))
    wrk -t "$th" -c "$c" -d "${SECS}s" --latency -s create.lua "${H[@]}" "$URL" >"create-$c.txt" 2>&1
    summary "creates c=$c" "create-$c.txt"
done
curl -sk "${H[@]}" -X POST "$URL/api/v1/namespaces/default/configmaps" -d '{"metadata":{"name":"get-me"},"data":{"k":"v"}}' >/dev/null
for c in 1 16 64; do
    th=$((c < 4 ? c : 4))
    wrk -t "$th" -c "$c" -d "${SECS}s" --latency "${H[@]}" "$URL/api/v1/namespaces/default/configmaps/get-me" >"get-$c.txt" 2>&1
    summary "gets c=$c" "get-$c.txt"
done

# watch fan-out (bench/watch_fanout.c): needs ~2 fds per watcher on each side
ulimit -n 65536 2>/dev/null
WATCHERS=${WATCHERS:-1000}
"$ROOT/$BUILD/bench/watch_fanout" "$URL" ca.crt benchtoken "$WATCHERS" 20 | sed "s/^/store=${STORE:-sqlite} /"
echo "store=${STORE:-sqlite} RSS with the watches gone: $(rss)"

# PODS small pods, then list them
cat >pods.lua <<'EOF'
counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local n = 0
request = function()
    n = n + 1
    local body = string.format('{"metadata":{"name":"p-%d-%d-%d","labels":{"app":"bench"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}', id, n, os.time())
    return wrk.format("POST", "/api/v1/namespaces/default/pods", nil, body)
end
EOF
start=$(date +%s.%N)
for _ in $(seq 200); do
    have=$(curl -sk "${H[@]}" "$URL/api/v1/namespaces/default/pods?limit=1" | sed -n 's/.*"remainingItemCount":\([0-9]*\).*/\1/p')
    have=$(( ${have:-0} + 1 ))
    [ "$have" -ge "$PODS" ] && break
    wrk -t 4 -c 32 -d 2s -s pods.lua "${H[@]}" "$URL" >/dev/null 2>&1
done
echo "store=${STORE:-sqlite} stored ${have} pods in $(echo "$(date +%s.%N) - $start" | bc) s; RSS $(rss)"
for accept in "application/json" "application/json;as=Table;v=v1;g=meta.k8s.io"; do
    t=$(curl -sk "${H[@]}" -H "Accept: $accept" -o list.json -w '%{time_total}' "$URL/api/v1/namespaces/default/pods")
    echo "store=${STORE:-sqlite} list ${have} pods (${accept%%;*}${accept#application/json}): ${t} s, $(stat -c %s list.json) bytes"
done
echo "store=${STORE:-sqlite} RSS after lists: $(rss)"

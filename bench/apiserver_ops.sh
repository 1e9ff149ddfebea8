#!/bin/bash
# bench/apiserver_ops.sh [BUILD] - the standalone API server's CPU per write, by kind of write
# (pod create, pods/binding, pods/status merge PATCH, Lease merge PATCH), with pod watchers
# reading every event; see bench/apiserver_ops.py.  Env: N THREADS WATCHERS LEASES, and
# WRAP (a command prefix for the API server, e.g. "valgrind --tool=callgrind").
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) CKUBE=$BUILD/ckube ;; *) CKUBE=$ROOT/$BUILD/ckube ;; esac
T=$(mktemp -d /tmp/ckube-bench-apiops.XXXXXX)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/ca.key" \
    -out "$T/ca.crt" -days 1 -subj /CN=bench-ca -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
echo 'benchtoken,bench,uid-1,"system:masters"' >"$T/tokens.csv"
# shellcheck disable=SC2086
${WRAP:-} "$CKUBE" apiserver --data-dir "$T/data" --secure-port 0 --bind-address 127.0.0.1 \
    --tls-cert-file "$T/ca.crt" --tls-private-key-file "$T/ca.key" --token-auth-file "$T/tokens.csv" \
    >"$T/apiserver.log" 2>&1 &
PID=$!
PORT=
for _ in $(seq 600); do
    PORT=$(sed -n 's/.*serving HTTPS on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/apiserver.log")
    [ -n "$PORT" ] && curl -sk "https://127.0.0.1:$PORT/readyz" | grep -q ok && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "apiserver did not start"; cat "$T/apiserver.log"; exit 1; }
# under a wrapper (valgrind) the measured process is the wrapper's child or itself
python3 "$ROOT/bench/apiserver_ops.py" "https://127.0.0.1:$PORT" benchtoken "$PID"
rc=$?
[ -n "${KEEP_LOG:-}" ] && cp "$T/apiserver.log" "$KEEP_LOG"
exit $rc

#!/bin/bash
# tests/e2e/apiserver_badinput.sh - the API server against bad input (issue 3): malformed
# JSON/YAML/protobuf, > 3 MiB bodies, 10,000-deep nesting, invalid UTF-8, huge headers, garbage
# request lines, a slow-loris client and stalled half requests.  Each must get a 4xx Status or a
# closed connection, and the server must keep answering /readyz and a create + get afterwards
# (tests/e2e/badinput_probe.py does the probing).  Finally the API server child must never have
# exited or been restarted.  Loopback only; the trap stops the server and removes the temp dir.
set -u
. "$(dirname "$0")/lib/common.sh"
CK=$CKUBE
tmp=$(mktemp -d /tmp/ckube-e2e-badinput.XXXXXX)
data=$tmp/data
log=$tmp/server.log
spid=

cleanup() {
    if [ -n "$spid" ]; then
        kill -TERM "$spid" 2>/dev/null
        local end=$((SECONDS + 20))
        while kill -0 "$spid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
        kill -KILL "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
    fi
    # children of this test's server only (matched by its private data dir)
    pkill -9 -f -- "--data-dir[= ]$data" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT


free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
apiserver_pid() { pgrep -f -- "apiserver --data-dir=$data" | head -n 1; }

port=$(free_port)
"$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 \
    --disable-agent >>"$log" 2>&1 &
spid=$!

ready() {
    [ -f "$data/kubeconfig" ] && [ -s "$data/pki/admin.crt" ] &&
        [ "$(curl -s --max-time 5 --cacert "$data/pki/ca.crt" --cert "$data/pki/admin.crt" \
            --key "$data/pki/admin.key" "https://127.0.0.1:$port/readyz")" = ok ]
}
end=$((SECONDS + 90))
until ready; do
    if [ $SECONDS -ge $end ] || ! kill -0 "$spid" 2>/dev/null; then
        notok "server ready within 90s"; tail -n 30 "$log" | sed 's/^/# /'; exit 1
    fi
    sleep 0.3
done
ok "server ready"
pid_before=$(apiserver_pid)

python3 "$ROOT/tests/e2e/badinput_probe.py" 127.0.0.1 "$port" "$data/pki/ca.crt" \
    "$data/pki/admin.crt" "$data/pki/admin.key"
rc=$?
[ "$rc" -eq 0 ] || fails=$((fails + 1))

pid_after=$(apiserver_pid)
if [ -n "$pid_before" ] && [ "$pid_before" = "$pid_after" ] &&
    ! grep -Eq 'exited|restarting|killed by|AddressSanitizer|runtime error' "$log"; then
    ok "the API server child was never restarted (pid $pid_before) and logged no sanitizer report"
else
    notok "the API server child was never restarted (pid $pid_before -> $pid_after)"
    grep -E -A30 'exited|restarting|killed by|AddressSanitizer|runtime error' "$log" | head -n 80 | sed 's/^/# /'
fi
exit $((fails > 0))

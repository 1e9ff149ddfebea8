#!/bin/bash
# tests/e2e/apiserver_errors.sh - malformed requests through the real API, each answer compared
# with upstream's status code, reason and message word for word (tests/e2e/errors_probe.py has
# the table and cites the upstream source of each wording): bad JSON, wrong kinds and versions,
# missing names, a body over 3 MiB, bad content types, bad query parameters, and the parameters
# upstream accepts although they look wrong (limit=-1, watch=maybe).  Finally the API server
# child must never have been restarted and its log must hold no sanitizer report.  Loopback
# only; the trap stops the server and removes the temp dir.
set -u
. "$(dirname "$0")/lib/common.sh"
CK=$CKUBE
tmp=$(mktemp -d /tmp/ckube-e2e-errors.XXXXXX)
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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
pid_before=$(pgrep -f -- "apiserver --data-dir=$data" | head -n 1)

python3 "$ROOT/tests/e2e/errors_probe.py" 127.0.0.1 "$port" "$data/pki/ca.crt" \
    "$data/pki/admin.crt" "$data/pki/admin.key" || fails=$((fails + 1))

pid_after=$(pgrep -f -- "apiserver --data-dir=$data" | head -n 1)
if [ -n "$pid_before" ] && [ "$pid_before" = "$pid_after" ] &&
    ! grep -Eq 'exited|restarting|killed by|AddressSanitizer|LeakSanitizer|runtime error' "$log"; then
    ok "the API server child was never restarted (pid $pid_before) and logged no sanitizer report"
else
    notok "the API server child was never restarted (pid $pid_before -> $pid_after)"
    grep -E -A30 'exited|restarting|killed by|AddressSanitizer|LeakSanitizer|runtime error' "$log" |
        head -n 80 | sed 's/^/# /'
fi
exit $((fails > 0))

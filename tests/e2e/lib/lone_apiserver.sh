# tests/e2e/lib/lone_apiserver.sh - one `ckube server --disable-agent` on loopback for the scripts
# that throw requests at the API server alone (apiserver_badinput.sh, apiserver_errors.sh);
# sourced after lib/common.sh, never run.
#   lone_apiserver_start NAME  temp dir /tmp/ckube-e2e-NAME.*, a trap that stops the server and
#                              removes it, the server on a free port; waits up to 90 s for /readyz
#                              (a failure is a notok and exit 1). Sets tmp data log port spid and
#                              pid_before (the API server child's pid).
#   lone_apiserver_kept        the check every such script ends with: the same API server child
#                              (never restarted) and no sanitizer report in the server's log.

lone_apiserver_cleanup() {
    if [ -n "${spid:-}" ]; then
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

lone_apiserver_pid() { pgrep -f -- "apiserver --data-dir=$data" | head -n 1; }

lone_apiserver_ready() {
    [ -f "$data/kubeconfig" ] && [ -s "$data/pki/admin.crt" ] &&
        [ "$(curl -s --max-time 5 --cacert "$data/pki/ca.crt" --cert "$data/pki/admin.crt" \
            --key "$data/pki/admin.key" "https://127.0.0.1:$port/readyz")" = ok ]
}

lone_apiserver_start() {
    tmp=$(mktemp -d "/tmp/ckube-e2e-$1.XXXXXX")
    data=$tmp/data
    log=$tmp/server.log
    spid=
    trap lone_apiserver_cleanup EXIT
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$CKUBE" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 \
        --disable-agent >>"$log" 2>&1 &
    spid=$!
    local end=$((SECONDS + 90))
    until lone_apiserver_ready; do
        if [ $SECONDS -ge $end ] || ! kill -0 "$spid" 2>/dev/null; then
            notok "server ready within 90s"; tail -n 30 "$log" | sed 's/^/# /'; exit 1
        fi
        sleep 0.3
    done
    ok "server ready"
    pid_before=$(lone_apiserver_pid)
}

lone_apiserver_kept() {
    local pid_after bad='exited|restarting|killed by|AddressSanitizer|LeakSanitizer|runtime error'
    pid_after=$(lone_apiserver_pid)
    if [ -n "$pid_before" ] && [ "$pid_before" = "$pid_after" ] && ! grep -Eq "$bad" "$log"; then
        ok "the API server child was never restarted (pid $pid_before) and logged no sanitizer report"
    else
        notok "the API server child was never restarted (pid $pid_before -> $pid_after)"
        grep -E -A30 "$bad" "$log" | head -n 80 | sed 's/^/# /'
    fi
}

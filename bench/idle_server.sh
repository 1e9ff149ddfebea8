# bench/idle_server.sh - sourced by bench/idle_rss.sh and bench/idle_wakeups.sh: an idle
# `ckube server --disable-agent` on loopback in a temp dir that is removed on exit.
# Sets B (the build dir), CK, tmp; start_server NAME starts one (its log: $tmp/NAME.log, pid:
# $spid); stop_server ends it (SIGTERM, then SIGKILL after 10 s).
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
CK=$B/ckube
[ -x "$CK" ] || { echo "$0: $CK missing; run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/ckube-bench-idle.XXXXXX)
spid=
stop_server() {
    [ -n "$spid" ] || return 0
    kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    spid=
}
trap 'stop_server; rm -rf "$tmp"' EXIT
start_server() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$CK" server --data-dir "$tmp/data-$1" --secure-port "$port" --bind-address 127.0.0.1 \
        --disable-agent >"$tmp/$1.log" 2>&1 &
    spid=$!
}

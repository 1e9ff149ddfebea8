#!/bin/bash
# bench/idle_wakeups.sh [BUILD_DIR] - how often an idle cluster wakes: context switches (voluntary
# + involuntary, summed over every thread) of each process of `ckube server --disable-agent`
# (loopback, a temp data dir it removes) over WINDOW (10) seconds, SETTLE (8) seconds after start.
# An idle component should only wake for its timers (Lease renewals, resyncs), not to poll.
set -u
SETTLE=${SETTLE:-8}
WINDOW=${WINDOW:-10}
. "$(dirname "$0")/idle_server.sh"
# switches PID: the process's context switches so far, all threads
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {n += $2} END {print n + 0}'
}
start_server server
sleep "$SETTLE"
pids="$spid $(sed -n 's/.*started \([a-z-]*\) (pid \([0-9]*\)).*/\2/p' "$tmp/server.log" | tr '\n' ' ')"
declare -A before name
for p in $pids; do
    [ -r "/proc/$p/status" ] || continue
    name[$p]=$(sed -n 's/.*started \([a-z-]*\) (pid '"$p"').*/\1/p' "$tmp/server.log" | tail -n 1)
    [ -n "${name[$p]}" ] || name[$p]=server
    before[$p]=$(switches "$p")
done
sleep "$WINDOW"
total=0
for p in "${!before[@]}"; do
    d=$(( $(switches "$p") - before[$p] ))
    total=$((total + d))
    printf '%-26s %6d switches in %d s (%s threads)\n' "${name[$p]}" "$d" "$WINDOW" \
        "$(ls "/proc/$p/task" 2>/dev/null | wc -l)"
done
echo "idle wakeups: $total context switches in $WINDOW s, all processes (load $(cut -d' ' -f1-3 /proc/loadavg))"

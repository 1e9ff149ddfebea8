#!/bin/bash
# bench/proxy_relay.sh [BUILD] - the userspace mode's data path in alternating rounds, with each
# process's CPU per request, so relay variants can be compared on a shared machine.
#
# Same layout as bench/proxy.sh (a "node" namespace with a bridge, build/bench/proxy_httpd in a
# pod namespace, wrk -t1 -c32 keep-alive from the node).  Per variant, ROUNDS rounds of: wrk
# straight to the pod, then through the variant; a line per round with requests/s, the ratio
# and the CPU per request (us) of wrk, the HTTP server and the relay (schedstat, ns-exact).
# Variants (VARIANTS, default all):
#   uring        ckube's userspace proxy (proxy_bench userspace serve), io_uring relay, a thread
#                per CPU, through the cluster IP (iptables REDIRECT)
#   uring-1      the same, one relay thread
#   uring-nonat  the same proxy's listener dialled directly (127.0.0.1:port): no NAT on the
#                client leg, the REDIRECT's share of the cost
#   epoll        the proxy with --userspace-epoll-relay
#   bare-uring   bench/proxy_relay.c's stripped io_uring relay (no REDIRECT, no retry logic)
#   bare-ms      the stripped relay with multishot recv into a provided-buffer ring
# Knobs: ROUNDS (3), WRK_SECS (3), RT (0; 1: wrk, the server and the relay run SCHED_FIFO 1, so
# the run is CPU-bound on our three processes whatever else the machine does - a stable figure
# on a shared machine, but it starves every other process for the run's length, and FIFO tasks
# do not preempt each other, so it is not the quiet machine's CFS schedule; the epoll variant is
# left out with RT=1: it once spun both CPUs at FIFO priority for minutes).
# Traffic stays inside the namespaces made here; the trap removes them.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
. "$ROOT/bench/proxy_netns.sh"
VARIANTS=${VARIANTS:-"uring uring-1 uring-nonat epoll bare-uring bare-ms"}
ROUNDS=${ROUNDS:-3}
WRK_SECS=${WRK_SECS:-3}
RT=${RT:-0}
S=$$
node=ckrn$S pod=ckrp$S
RELAY_PID=
COPROC=
cleanup() {
    stop_relay
    for ns in $node $pod; do
        for p in $(ip netns pids $ns 2>/dev/null); do kill $p 2>/dev/null; done
    done
    sleep 0.3
    for ns in $node $pod; do
        for p in $(ip netns pids $ns 2>/dev/null); do kill -9 $p 2>/dev/null; done
        ip netns del $ns 2>/dev/null
    done
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "bench/proxy_relay.sh: needs root (network namespaces)"; exit 0; }
command -v wrk >/dev/null || { echo "bench/proxy_relay.sh: needs wrk"; exit 0; }

proxy_bench_netns $node $pod vr$S
ip netns exec $pod "$B/bench/proxy_httpd" 8080 &
sleep 0.3
SRV=$(ip netns pids $pod | head -1)

rt() { [ "$RT" = 1 ] || return 0; for t in /proc/$1/task/*; do chrt -f -p 1 "${t##*/}"; done; }
rt "$SRV"
cpu_ns() { cat /proc/$1/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.0f", t}'; }

# the proxy exits (and removes its rules) when its stdin closes; the bare relay is killed
stop_relay() {
    if [ -n "$COPROC" ]; then
        exec {PB[1]}>&-
    elif [ -n "$RELAY_PID" ]; then
        kill "$RELAY_PID" 2>/dev/null
    fi
    [ -n "$RELAY_PID" ] && wait "$RELAY_PID" 2>/dev/null
    RELAY_PID= COPROC=
}

# start_relay VARIANT: sets RELAY_PID and URL
start_relay() {
    local v=$1 port
    case $v in
    bare-*)
        port=20000
        ip netns exec $node "$B/bench/proxy_relay" $port 10.244.0.10 8080 \
            "$([ $v = bare-ms ] && echo uring-ms || echo uring)" 1 >/dev/null &
        RELAY_PID=$!
        sleep 0.5
        URL=http://127.0.0.1:$port/
        ;;
    *)
        local workers=0 epoll=
        [ $v = uring-1 ] && workers=1
        [ $v = epoll ] && epoll=1
        coproc PB { exec ip netns exec $node env PROXY_BENCH_WORKERS=$workers ${epoll:+PROXY_BENCH_EPOLL=1} \
            "$B/bench/proxy_bench" userspace serve 10.244.0.10 8080; }
        RELAY_PID=$PB_PID COPROC=1
        local line
        read -r line <&"${PB[0]}"
        [ "$line" = ready ] || { echo "$v: proxy did not start"; return 1; }
        URL=http://10.96.0.50/
        if [ $v = uring-nonat ]; then
            port=$(ip netns exec $node ss -ltnH | awk '$4 !~ /:8080$/ {n = split($4, a, ":"); print a[n]; exit}')
            URL=http://127.0.0.1:$port/
        fi
        ;;
    esac
    # ip netns exec execs the program, so $! is the relay itself
    rt "$RELAY_PID"
}

# run URL [RELAYPID] -> "rps wrk_us srv_us relay_us" (wrk's CPU: the shell's `times` for its
# children, user + sys)
run() {
    local s0 r0=0 s1 r1=0 out pri=
    [ "$RT" = 1 ] && pri="chrt -f 1"
    s0=$(cpu_ns "$SRV"); [ -n "${2:-}" ] && r0=$(cpu_ns "$2")
    out=$(ip netns exec $node $pri bash -c 'wrk -t1 -c32 -d'"$WRK_SECS"'s "$1"; times' _ "$1" 2>/dev/null)
    s1=$(cpu_ns "$SRV"); [ -n "${2:-}" ] && r1=$(cpu_ns "$2")
    echo "$out" | awk -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v secs="$WRK_SECS" '
        function sec(x) { split(x, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
        /^Requests\/sec/ {rps = $2}
        /^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$/ {w = sec($1) + sec($2)}
        END {n = rps * secs; if (!n) n = 1; printf "%d %.2f %.2f %.2f", rps, w * 1e6 / n, s / 1e3 / n, r / 1e3 / n}'
}

echo "# userspace data path, rounds of direct then via (wrk -t1 -c32 -d${WRK_SECS}s; RT=$RT); us = CPU per request"
for v in $VARIANTS; do
    [ "$RT" = 1 ] && [ $v = epoll ] && { echo "epoll: not run with RT=1"; continue; }
    start_relay "$v" || { stop_relay; continue; }
    for i in $(seq "$ROUNDS"); do
        d=($(run http://10.244.0.10:8080/))
        x=($(run "$URL" "$RELAY_PID"))
        printf "%-12s direct_rps=%d via_rps=%d ratio=%.2f  us/req direct: wrk %.2f server %.2f  via: wrk %.2f server %.2f relay %.2f  load=%s\n" \
            "$v" "${d[0]}" "${x[0]}" "$(awk -v a="${x[0]}" -v b="${d[0]}" 'BEGIN {print b ? a / b : 0}')" \
            "${d[1]}" "${d[2]}" "${x[1]}" "${x[2]}" "${x[3]}" "$(cut -d' ' -f1 /proc/loadavg)"
    done
    stop_relay
done

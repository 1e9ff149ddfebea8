#!/bin/bash
# bench/proxy.sh [BUILD] - the proxy benchmark, every mode, in scratch network namespaces:
#  1. rule sync time for 1,000 and 10,000 services x 5 endpoints: full sync, one service's
#     endpoints changed, one service added, one deleted (build/bench/proxy_bench);
#  2. requests/s with wrk from a "node" namespace to a pod (build/bench/proxy_httpd, keep-alive)
#     through the cluster IP vs straight to the pod IP, per mode, the same wrk settings for both;
#     the userspace rows also give the proxy's CPU per request: its io_uring relay (a thread per
#     CPU, and one thread), the epoll relay (--userspace-epoll-relay, the previous design) and the
#     sockmap kernel relay;
#  3. (FLOOR=1, default) bench/proxy_ipt_floor.sh: iptables-restore's own cost for the same
#     10,000-service layout written by hand, without ckube, and the iptables mode's netlink
#     writer on the same input.
# Knobs: MODES="iptables" SIZES="10000" FLOOR=0 WRK_SECS=5 (e.g. only the iptables sync times:
# MODES=iptables FLOOR=0, the data-path rows still run for the modes given).
# Traffic stays inside the namespaces made here; the trap removes them.
# Knobs: MODES (default "iptables nftables userspace"), SIZES (default "1000 10000"; empty: no
# sync rows), WRK_SECS (5), FLOOR (1; 0: skip 3), US_ROWS (the userspace data-path rows, default
# "userspace userspace+1-thread userspace+epoll userspace+epoll-1-thread userspace+kernel-relay").
# Only the userspace data path: MODES=userspace SIZES= FLOOR=0 bench/proxy.sh build
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
. "$ROOT/bench/proxy_netns.sh"
MODES=${MODES:-"iptables nftables userspace"}
SIZES=${SIZES-"1000 10000"}
US_ROWS=${US_ROWS:-"userspace userspace+1-thread userspace+epoll userspace+epoll-1-thread userspace+kernel-relay"}
WRK_SECS=${WRK_SECS:-5}
S=$$
NS_LIST=()
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for ns in "${NS_LIST[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "bench/proxy.sh: needs root (network namespaces)"; exit 0; }

echo "# sync time (ms): full = every rule; change = one service's endpoints; add/delete = one service"
for mode in $MODES; do
    for n in $SIZES; do
        ns=ckbs$S-$mode-$n
        ip netns add $ns; NS_LIST+=($ns)
        ip netns exec $ns ip link set lo up
        ip netns exec $ns timeout 900 "$B/bench/proxy_bench" $mode $n 5 || echo "$mode services=$n: failed or timed out"
        ip netns del $ns
    done
done

echo "# data path: wrk -t1 -c32 -d${WRK_SECS}s from the node namespace"
node=ckbn$S pod=ckbp$S
NS_LIST+=($node $pod)
proxy_bench_netns $node $pod vb$S
ip netns exec $pod "$B/bench/proxy_httpd" 8080 &
PIDS+=($!)
sleep 0.3
rps() { ip netns exec $node wrk -t1 -c32 -d${WRK_SECS}s "$1" 2>/dev/null | awk '/Requests\/sec/ {printf "%d", $2}'; }
DP_MODES=""
for mode in $MODES; do
    if [ $mode = userspace ]; then DP_MODES="$DP_MODES $US_ROWS"; else DP_MODES="$DP_MODES $mode"; fi
done
for label in $DP_MODES; do
    mode=${label%%+*}
    relay=; case $label in *kernel-relay) relay=1 ;; esac
    epoll=; case $label in *epoll*) epoll=1 ;; esac
    workers=0; case $label in *1-thread) workers=1 ;; esac
    coproc PB { ip netns exec $node env PROXY_BENCH_WORKERS=$workers ${relay:+PROXY_BENCH_KERNEL_RELAY=1} ${epoll:+PROXY_BENCH_EPOLL=1} "$B/bench/proxy_bench" $mode serve 10.244.0.10 8080; }
    pbpid=$PB_PID
    PIDS+=($pbpid)
    read -r line <&"${PB[0]}"
    if [ "$line" != ready ]; then echo "$label: proxy did not start"; continue; fi
    ppid=$(pgrep -x proxy_bench | tail -1)
    direct=$(rps http://10.244.0.10:8080/)
    t0=$(awk '{print $14 + $15}' /proc/$ppid/stat 2>/dev/null || echo 0)
    via=$(rps http://10.96.0.50/)
    t1=$(awk '{print $14 + $15}' /proc/$ppid/stat 2>/dev/null || echo 0)
    direct2=$(rps http://10.244.0.10:8080/)
    d=$(( (direct + direct2) / 2 ))
    cpu=; [ $mode = userspace ] && cpu=" proxy_cpu_us_per_req=$(awk -v t=$((t1 - t0)) -v n=$via -v s=$WRK_SECS -v hz=$(getconf CLK_TCK) 'BEGIN {printf "%.1f", n ? t * 1e6 / hz / (n * s) : 0}')"
    echo "$label direct_rps=$d cluster_ip_rps=$via ratio=$(awk -v a=$via -v b=$d 'BEGIN {printf "%.2f", b ? a / b : 0}')$cpu load=$(cut -d' ' -f1 /proc/loadavg)"
    exec {PB[1]}>&-
    wait $pbpid 2>/dev/null
done

if [ "${FLOOR:-1}" = 1 ]; then
    BUILD=$BUILD "$ROOT/bench/proxy_ipt_floor.sh" 10000
fi

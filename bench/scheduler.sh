#!/bin/bash
# bench/scheduler.sh [BUILD_DIR] - scheduler throughput on a real cluster (`ckube server` on
# loopback, in a temp dir it removes) with hollow nodes, numbers for docs/benchmarks.md
# ("Scheduler"):
#   basic:  NODES (5000) hollow nodes, PODS (10000) pods created as fast as the API accepts
#   anti:   ANTI_NODES (1000) nodes, the same PODS with required pod anti-affinity on hostname
#           (ANTI_GROUPS (20) groups, so every node ends with one pod of each group)
# For each: pods bound/s from first create to last bind, per-pod latency p50/p99, scheduler RSS
# (peak), the CPU seconds every process used meanwhile (API server, scheduler, hollow nodes,
# controller-manager, the bench client), the API server's idle CPU (Lease renewals) just before,
# and the API requests it served during the run (from /metrics).
# CASES="basic anti" selects cases.
# HOOK=perf-stat: `perf stat` attached to the API server for the bench client's run prints its
# system calls (by kind), context switches and CPU per pod (the per-pod figures count every
# thread; Lease renewals and hollow status PATCHes of the window are included), plus the same per
# thread name (http-io, http-worker, sqlite-*, ...) with PERF_THREADS=1.
# HOOK=perf-record: `perf record -g` of the API server (or of PERF_PID) for the bench client's
# run, into PERF_OUT (set it: the default lies in the run's temporary directory, removed at exit).
# PERF_ARGS replaces `-g` (e.g. "--call-graph dwarf -F 999": the build has no frame pointers).
# PERF_PID=clients records the scheduler, the hollow nodes and the controller-manager together
# (split them with `perf report --sort pid`); PERF_BENCH_OUT=FILE also records the bench client.
# PERF_CLIENTS=1 (any HOOK or none): `perf stat` of the scheduler, hollow nodes, controller-manager
# and bench client for the run: CPU and context switches (wakeups) a pod.  (This VM exposes no
# hardware counters, so no instruction counts.)
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
CK=$B/ckube
BENCH=$B/bench/sched_bench
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
NODES=${NODES:-5000}
PODS=${PODS:-10000}
ANTI_NODES=${ANTI_NODES:-1000}
ANTI_GROUPS=${ANTI_GROUPS:-20}
# creates in flight (chains in sched_bench): with 8 the creator waited on commits while the CPUs
# idled, so "as fast as the API accepts" needs more (docs/benchmarks.md, session 7)
THREADS=${THREADS:-24}
CASES=${CASES:-"basic anti"}
[ -x "$BENCH" ] || { echo "bench/scheduler.sh: $BENCH missing; run make" >&2; exit 1; }
tmp=$(mktemp -d /tmp/ckube-bench-scheduler.XXXXXX)
spid= hpid=

stop_all() {
    [ -n "$hpid" ] && kill -TERM "$hpid" 2>/dev/null
    [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 100); do
        { [ -n "$hpid" ] && kill -0 "$hpid" 2>/dev/null; } || { [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; } || break
        sleep 0.1
    done
    [ -n "$hpid" ] && kill -KILL "$hpid" 2>/dev/null
    [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null
    hpid= spid=
}
trap 'stop_all; rm -rf "$tmp"' EXIT

cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# apiserver_request_total summed by verb+resource, "VERB resource count" lines
req_counts() {
    $1 get --raw /metrics 2>/dev/null | sed -n 's/^apiserver_request_total{verb="\([^"]*\)",resource="\([^"]*\)",code="[0-9]*"} \([0-9]*\)$/\1 \2 \3/p' |
        awk '{n[$1" "$2]+=$3} END {for (k in n) print k, n[k]}' | sort
}

# the watch path's counters: store deliveries by the writer / by watch threads, watch cache
# rounds on the store's thread / on the dispatch thread
watch_counts() {
    $1 get --raw /metrics 2>/dev/null | awk '/^ckube_store_watch_deliveries_total\{thread="writer"/ {a = $2}
        /^ckube_store_watch_deliveries_total\{thread="watch"/ {b = $2}
        /^ckube_watch_cache_rounds_total\{thread="store"/ {c = $2}
        /^ckube_watch_cache_rounds_total\{thread="dispatch"/ {d = $2}
        END {print a + 0, b + 0, c + 0, d + 0}'
}

# one line a thread of process $1: "tid name voluntary involuntary" (context switches so far)
ctxsw() {
    for t in /proc/$1/task/*; do
        awk -v tid="${t##*/}" -v n="$(tr ' ' _ < "$t/comm" 2>/dev/null)" '/^voluntary_ctxt_switches/ {v = $2}
            /^nonvoluntary_ctxt_switches/ {nv = $2} END {print tid, n, v + 0, nv + 0}' "$t/status" 2>/dev/null
    done
}

# the SQLite store's "writes commits" counters
store_counts() {
    $1 get --raw /metrics 2>/dev/null | awk '$1 == "ckube_store_writes_total" {w = $2} $1 == "ckube_store_commits_total" {c = $2} END {print w + 0, c + 0}'
}

run_case() {
    local name=$1 nodes=$2 groups=$3 data=$tmp/$1
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 --disable-agent \
        >"$tmp/$name-server.log" 2>&1 &
    spid=$!
    for _ in $(seq 150); do [ -f "$data/kubeconfig" ] && break; sleep 0.2; done
    local kc="$KUBECTL --kubeconfig $data/kubeconfig"
    for _ in $(seq 150); do [ "$($kc get --raw /readyz 2>/dev/null)" = ok ] && break; sleep 0.2; done
    local sched api
    for _ in $(seq 100); do
        sched=$(sed -n 's/.*started scheduler (pid \([0-9]*\)).*/\1/p' "$tmp/$name-server.log" | tail -n 1)
        [ -n "$sched" ] && break; sleep 0.1
    done
    api=$(sed -n 's/.*started apiserver (pid \([0-9]*\)).*/\1/p' "$tmp/$name-server.log" | tail -n 1)
    cm=$(sed -n 's/.*started controller-manager (pid \([0-9]*\)).*/\1/p' "$tmp/$name-server.log" | tail -n 1)
    "$CK" hollow-node --kubeconfig "$data/kubeconfig" --count "$nodes" >"$tmp/$name-hollow.log" 2>&1 &
    hpid=$!
    local t0=$SECONDS
    until grep -q "registered $nodes hollow nodes" "$tmp/$name-hollow.log" 2>/dev/null; do
        [ $((SECONDS - t0)) -gt 600 ] && { echo "$name: nodes not registered in 600s"; stop_all; return 1; }
        sleep 1
    done
    echo "== $name: $nodes hollow nodes registered in $((SECONDS - t0))s; scheduler RSS $(grep VmRSS /proc/$sched/status | awk '{print $2/1024 " MB"}')"
    sleep 12    # past the first round of Leases (created, not renewed): idle is steady state
    local i0 i1 ih0 ih1 is0 is1 ic0 ic1 r0 r1 per_renewal
    r0=$(req_counts "$kc" | awk '$1 == "patch" && $2 == "leases" {print $3}')
    i0=$(cpu_s "$api"); ih0=$(cpu_s "$hpid"); is0=$(cpu_s "$sched"); ic0=$(cpu_s "$cm")
    sleep 5
    i1=$(cpu_s "$api"); ih1=$(cpu_s "$hpid"); is1=$(cpu_s "$sched"); ic1=$(cpu_s "$cm")
    r1=$(req_counts "$kc" | awk '$1 == "patch" && $2 == "leases" {print $3}')
    # the hollow node's CPU per Lease renewal when idle, to tell its pod work apart below
    per_renewal=$(echo "scale=6; ($ih1 - $ih0) / (${r1:-1} - ${r0:-0} + 1)" | bc)
    echo "$name: idle (Lease renewals of $nodes nodes, $(( ${r1:-0} - ${r0:-0} )) in 5 s): apiserver $(echo "scale=2; ($i1 - $i0) / 5" | bc) CPU s/s, hollow-node $(echo "scale=3; ($ih1 - $ih0) / 5" | bc) CPU s/s ($(echo "scale=3; $per_renewal * 1000" | bc) ms a renewal), scheduler $(echo "scale=3; ($is1 - $is0) / 5" | bc), controller-manager $(echo "scale=3; ($ic1 - $ic0) / 5" | bc) CPU s/s"
    local a0 s0 h0 c0 a1 s1 h1 c1
    req_counts "$kc" >"$tmp/$name-req0"
    local st0 wc0
    st0=$(store_counts "$kc")
    wc0=$(watch_counts "$kc")
    ctxsw "$api" >"$tmp/$name-cs0"
    a0=$(cpu_s "$api"); s0=$(cpu_s "$sched"); h0=$(cpu_s "$hpid"); c0=$(cpu_s "$cm")
    local w0=$(date +%s.%N)
    local args=(--kubeconfig "$data/kubeconfig" --pods "$PODS" --threads "$THREADS")
    [ "$groups" -gt 0 ] && args+=(--anti-affinity-groups "$groups")
    local ppid=
    if [ "${HOOK:-}" = perf-stat ]; then
        local ev=task-clock,context-switches,raw_syscalls:sys_enter
        for sc in read write writev readv futex epoll_wait epoll_ctl pread64 pwrite64 fcntl fdatasync \
            sendmsg recvfrom sendto eventfd2 ppoll poll; do
            ev=$ev,syscalls:sys_enter_$sc
        done
        perf stat -x, -e "$ev" -p "$api" ${PERF_THREADS:+--per-thread} -o "$tmp/$name-perf" &
        ppid=$!
        sleep 0.3
    elif [ "${HOOK:-}" = perf-record ]; then
        local who=${PERF_PID:-$api}
        [ "$who" = clients ] && who=$sched,$hpid,$cm
        perf record -q ${PERF_ARGS:--g} -p "$who" -o "${PERF_OUT:-$tmp/$name-perf.data}" 2>/dev/null &
        ppid=$!
        sleep 0.3
    fi
    local cpids=()
    if [ -n "${PERF_CLIENTS:-}" ]; then
        local role pid
        for role in scheduler:$sched hollow-node:$hpid controller-manager:$cm; do
            pid=${role#*:}; role=${role%%:*}
            perf stat -x, -e task-clock,context-switches -p "$pid" -o "$tmp/$name-$role.stat" &
            cpids+=($!)
        done
        sleep 0.3
    fi
    local bench=("$BENCH")
    [ -n "${PERF_CLIENTS:-}" ] && bench=(perf stat -x, -e task-clock,context-switches -o "$tmp/$name-bench-client.stat" -- "$BENCH")
    [ "${HOOK:-}" = perf-record ] && [ -n "${PERF_BENCH_OUT:-}" ] &&
        bench=(perf record -q ${PERF_ARGS:--g} -o "$PERF_BENCH_OUT" -- "$BENCH")
    /usr/bin/time -f "%U %S" -o "$tmp/$name-bench.time" "${bench[@]}" "${args[@]}" | sed "s/^/$name: /"
    if [ -n "$ppid" ] && [ "${HOOK:-}" = perf-record ]; then
        kill -INT "$ppid"; wait "$ppid" 2>/dev/null
        echo "$name: perf record of ${PERF_PID:-the API server} in ${PERF_OUT:-$tmp/$name-perf.data}"
    elif [ -n "$ppid" ]; then
        kill -INT "$ppid"; wait "$ppid" 2>/dev/null
        # -x, lines: value,unit,event,... (per thread: thread,value,unit,event,...)
        if [ -n "${PERF_THREADS:-}" ]; then
            awk -F, -v pods="$PODS" -v n="$name" '$4 != "" && $2 ~ /^[0-9.]+$/ {
                t = $1; sub(/-[0-9]+$/, "", t); e = $4; sub(/^syscalls:sys_enter_/, "", e); sub(/^raw_syscalls:sys_enter/, "syscalls", e)
                v[t " " e] += $2; tot[e] += $2 } END { for (k in v) if (v[k] / pods >= 0.05) printf "%s perf per thread: %s %.2f a pod\n", n, k, v[k] / pods
                for (e in tot) printf "%s perf: all threads: %s %.3f a pod\n", n, e, tot[e] / pods }' \
                "$tmp/$name-perf" | sort
        else
            awk -F, -v pods="$PODS" -v n="$name" '$3 != "" && $1 ~ /^[0-9.]+$/ {
                e = $3; sub(/^syscalls:sys_enter_/, "", e); sub(/^raw_syscalls:sys_enter/, "syscalls", e)
                if (e == "task-clock") printf "%s perf: task-clock %.3f ms a pod\n", n, $1 / pods
                else printf "%s perf: %s %.2f a pod\n", n, e, $1 / pods }' "$tmp/$name-perf"
        fi
    fi
    if [ ${#cpids[@]} -gt 0 ]; then
        kill -INT "${cpids[@]}"; wait "${cpids[@]}" 2>/dev/null
        local f
        for f in scheduler hollow-node controller-manager bench-client; do
            awk -F, -v pods="$PODS" -v n="$name" -v r="$f" '$1 ~ /^[0-9.]+$/ {v[$3] = $1}
                END {printf "%s perf %s: %.3f ms of CPU, %.2f context switches a pod\n", n, r,
                     v["task-clock"] / pods, v["context-switches"] / pods}' "$tmp/$name-$f.stat"
        done
    fi
    a1=$(cpu_s "$api"); s1=$(cpu_s "$sched"); h1=$(cpu_s "$hpid"); c1=$(cpu_s "$cm")
    # the API server's context switches by kind: voluntary ones are sleeps (each a wake-up
    # later), involuntary ones preemptions (they follow the machine's load); threads that ended
    # meanwhile are missing, new ones count from 0
    ctxsw "$api" >"$tmp/$name-cs1"
    awk -v pods="$PODS" -v n="$name" 'NR == FNR {v0[$1] = $3; nv0[$1] = $4; next}
        {dv = $3 - v0[$1]; dn = $4 - nv0[$1]; V += dv; N += dn; byv[$2] += dv}
        END {printf "%s: API server context switches a pod: voluntary %.2f, involuntary %.2f; voluntary by thread:", n, V / pods, N / pods
             for (t in byv) if (byv[t] / pods >= 0.01) printf " %s %.2f", t, byv[t] / pods; printf "\n"}' \
        "$tmp/$name-cs0" "$tmp/$name-cs1"
    local w1=$(date +%s.%N)
    req_counts "$kc" >"$tmp/$name-req1"
    # the SQLite store's group commit during the run (absent with etcd)
    echo "$wc0 $(watch_counts "$kc")" | awk '{printf "'"$name"': watch path: store deliveries %d by the writer, %d by watch threads; watch cache rounds %d on the store thread, %d on the dispatch thread\n", $5 - $1, $6 - $2, $7 - $3, $8 - $4}'
    echo "$st0 $(store_counts "$kc")" | awk 'NF == 4 && $4 > $2 {printf "'"$name"': store: %d writes in %d commits (%.1f a commit)\n", $3 - $1, $4 - $2, ($3 - $1) / ($4 - $2)}'
    sleep 11     # the scheduler trims freed memory every 10 s: steady state after the burst
    echo "$name: scheduler RSS steady $(grep VmRSS /proc/$sched/status | awk '{printf "%.1f MB", $2/1024}'), peak $(grep VmHWM /proc/$sched/status | awk '{printf "%.1f MB", $2/1024}')"
    echo "$name: CPU seconds during the run: apiserver $(echo "$a1 - $a0" | bc), scheduler $(echo "$s1 - $s0" | bc), hollow-node $(echo "$h1 - $h0" | bc), controller-manager $(echo "$c1 - $c0" | bc), bench client $(awk '{print $1 + $2}' "$tmp/$name-bench.time")"
    # the same less what each process spends idle (the Lease renewals, their watchers), scaled
    # by the renewals made during the run (fewer a second than idle when the machine is
    # loaded): the part that is per pod
    local renewals scale
    renewals=$(join <(awk '{print $1"/"$2, $3}' "$tmp/$name-req0" | sort) <(awk '{print $1"/"$2, $3}' "$tmp/$name-req1" | sort) | awk '$1 == "patch/leases" {print $3 - $2}')
    scale=$(echo "scale=6; ${renewals:-0} / (${r1:-1} - ${r0:-0} + 1)" | bc)
    net() { printf "%.2f" "$(echo "scale=4; ($2 - $1) - ($4 - $3) * $scale" | bc)"; }
    echo "$name: CPU seconds for the pods (less the idle CPU of as many renewals): apiserver $(net "$a0" "$a1" "$i0" "$i1"), scheduler $(net "$s0" "$s1" "$is0" "$is1"), hollow-node $(net "$h0" "$h1" "$ih0" "$ih1"), controller-manager $(net "$c0" "$c1" "$ic0" "$ic1"), bench client $(awk '{print $1 + $2}' "$tmp/$name-bench.time")"
    # the hollow node's pod work alone: its CPU less its renewals at the idle cost each
    echo "$name: hollow-node CPU for pods ~ $(echo "scale=2; $h1 - $h0 - $per_renewal * ${renewals:-0}" | bc) s (less ${renewals:-0} renewals at the idle cost); window $(echo "scale=1; ($w1 - $w0) / 1" | bc) s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$name: API requests during the run: $(join -a 2 -e 0 -o 0,1.2,2.2 <(awk '{print $1"/"$2, $3}' "$tmp/$name-req0" | sort) <(awk '{print $1"/"$2, $3}' "$tmp/$name-req1" | sort) | awk '{d = $3 - $2; if (d >= 100) printf "%s %d, ", $1, d}')"
    if [ "${PRELOAD:-1}" = 1 ]; then
        # the scheduler alone: pods created first for a scheduler that is not running, then a
        # fresh `ckube scheduler` started (its informer sync included) binds them all
        "$BENCH" "${args[@]}" --namespace preload --scheduler-name bench-sched --phase create | sed "s/^/$name preload: /"
        "$BENCH" "${args[@]}" --namespace preload --scheduler-name bench-sched --phase bind >"$tmp/$name-bind.out" &
        local bpid=$!
        sleep 0.5
        "$CK" scheduler --kubeconfig "$data/kubeconfig" --scheduler-name bench-sched --leader-elect=false \
            >"$tmp/$name-sched2.log" 2>&1 &
        local s2=$!
        wait "$bpid"
        sed "s/^/$name preload: /" "$tmp/$name-bind.out"
        local peak2
        peak2=$(grep VmHWM /proc/$s2/status | awk '{printf "%.1f MB", $2/1024}')
        sleep 11
        echo "$name preload: standalone scheduler RSS $(grep VmRSS /proc/$s2/status | awk '{printf "%.1f MB", $2/1024}'), peak $peak2, CPU $(cpu_s $s2) s"
        kill -TERM "$s2"; wait "$s2" 2>/dev/null
        grep -E 'cycles took' "$tmp/$name-sched2.log" | sed "s/^/$name preload: /"
    fi
    stop_all
    grep -E 'scheduled [0-9]+ pods' "$tmp/$name-server.log" | tail -n 1 | sed "s/^/$name: /"
    return 0
}

for c in $CASES; do
    case $c in
    basic) run_case basic "$NODES" 0 ;;
    anti) run_case anti "$ANTI_NODES" "$ANTI_GROUPS" ;;
    esac
done

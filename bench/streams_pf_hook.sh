#!/bin/bash
# bench/streams_pf_hook.sh - the kubelet's side of port-forward, measured inside bench/streams.sh:
#   PROF_HOOK='source "$ROOT/bench/streams_pf_hook.sh"' RUNS=0 FLOOR=0 KUBECTL_VERSIONS=1.33 \
#       flock /tmp/ckube-host.lock bench/streams.sh build
# Prints, with HOOK in front, per 100 MiB over HOOK_RUNS (4) `curl` of the pod's blob through the
# bench's `kubectl port-forward` (the last version in KUBECTL_VERSIONS) and, for comparison, as
# many `kubectl exec rp -- cat /www/blob` (HOOK_EXEC=0 skips them):
#   the kubelet's task-clock (incl. children), context switches, and its syscalls: readv (pod
#   socket / pipe reads), poll (pump rounds), sendto (records to the client), recvfrom.
# HOOK_PERF=FILE: instead, `perf record -g` of the kubelet (HOOK_CG=dwarf for user stacks) over
#   the port-forward downloads into FILE (read it with perf report -i FILE); HOOK_WHAT=exec: over
#   the execs instead.
# HOOK_KNOBS="A;B;...": exploration (session 9): the kubelet reads its port-forward knobs from
#   the file $CKUBE_PF_KNOBS at each connect (a build with the knobs); each config is written there
#   in turn, HOOK_PAIRS (4) times alternated, and each line prints the kubelet's task-clock and
#   the pod's httpd and the API server's CPU ticks per 100 MiB.
# Variables from bench/streams.sh: tmp, KD, KL, B, pfport (per version), KUBECTL_VERSIONS.
if [ -z "${KL:-}" ] || [ -z "${tmp:-}" ]; then
    echo "streams_pf_hook.sh: source it from bench/streams.sh through PROF_HOOK (see its header)" >&2
    return 2 2>/dev/null || exit 2
fi
hv=${KUBECTL_VERSIONS##* }
hk=$KD/kubectl.$hv
[ -x "$hk" ] || hk=$K0
hr=${HOOK_RUNS:-4}
hport=${pfport[$hv]}
hev=task-clock,context-switches,syscalls:sys_enter_readv,syscalls:sys_enter_poll,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read
hook_pf() {
    for _ in $(seq "$hr"); do
        curl -s "http://127.0.0.1:$hport/blob" | "$B/bench/streams_sink" 0 >/dev/null
    done
}
hook_exec() {
    for _ in $(seq "$hr"); do
        "$hk" --kubeconfig "$tmp/data/kubeconfig" exec rp -- cat /www/blob | "$B/bench/streams_sink" 0 >/dev/null
    done
}
hook_print() {   # NAME STATFILE
    awk -v n="$hr" -v name="$1" '
        {gsub(",", "", $1)}
        / task-clock/ {tc = $1} / context-switches/ {cs = $1} /sys_enter_readv/ {rv = $1}
        /sys_enter_poll/ {po = $1} /sys_enter_sendto/ {se = $1} /sys_enter_recvfrom/ {rf = $1}
        /sys_enter_read / {rd = $1}
        END {printf "HOOK %s kubelet per 100 MiB: task-clock %.1f ms, cs %d, readv %d, read %d, poll %d, sendto %d, recvfrom %d\n",
             name, tc / n, cs / n, rv / n, rd / n, po / n, se / n, rf / n}' "$2"
}
hook_pf   # warm
# the pod's CPU (httpd forks a child per connection and ignores SIGCHLD: its ticks miss them)
hcp=$(runc --root "$tmp/kubelet/runtime" state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
hcg=/sys/fs/cgroup/cpuacct$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/ {print $3}' "/proc/$hcp/cgroup")/cpuacct.usage
podns() { cat "$hcg" 2>/dev/null || echo 0; }
if [ -n "${HOOK_KNOBS:-}" ]; then
    IFS=';' read -r -a hkn <<<"$HOOK_KNOBS"
    for pr in $(seq "${HOOK_PAIRS:-4}"); do
        for k in "${hkn[@]}"; do
            echo "$k" >"$CKUBE_PF_KNOBS"
            h0=$(podns); a0=$(ticks "$AP")
            perf stat -e "$hev" -p "$KL" -o "$tmp/hook.stat" &
            hps=$!
            sleep 0.3
            hook_pf
            kill -INT "$hps"
            wait "$hps"
            sleep 0.2
            echo "HOOK pair $pr knobs [$k] pod $(( ($(podns) - h0) / 1000000 / hr )) ms apiserver $(( ($(ticks "$AP") - a0) * 10 / hr )) ms load $(cut -d' ' -f1 /proc/loadavg)"
            hook_print "  [$k]" "$tmp/hook.stat"
        done
    done
elif [ -n "${HOOK_PERF:-}" ]; then
    perf record -o "$HOOK_PERF" ${HOOK_CG:+--call-graph $HOOK_CG} ${HOOK_CG:--g} -p "$KL" 2>/dev/null &
    hpr=$!
    sleep 0.3
    if [ "${HOOK_WHAT:-pf}" = exec ]; then hook_exec; else hook_pf; fi
    kill -INT "$hpr"
    wait "$hpr"
else
    for m in $(for _ in $(seq "${HOOK_PAIRS:-1}"); do echo pf "${HOOK_EXEC:-1}"; done); do
        [ "$m" = 0 ] && continue
        perf stat -e "$hev" -p "$KL" -o "$tmp/hook.stat" &
        hps=$!
        sleep 0.3
        if [ "$m" = pf ]; then hook_pf; else hook_exec; fi
        kill -INT "$hps"
        wait "$hps"
        hook_print "$([ "$m" = pf ] && echo port-forward || echo exec)" "$tmp/hook.stat"
    done
fi

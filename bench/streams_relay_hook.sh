#!/bin/bash
# bench/streams_relay_hook.sh - the API server's relay, measured inside bench/streams.sh:
#   PROF_HOOK='source "$ROOT/bench/streams_relay_hook.sh"' RUNS=0 FLOOR=0 KUBECTL_VERSIONS=1.33 \
#       flock /tmp/ckube-host.lock bench/streams.sh build
# Prints, with HOOK in front, per round (HOOK_ROUNDS, 3) of HOOK_RUNS (5) 100 MiB execs each:
#   - kubectl: `kubectl exec rp -- cat /www/blob` into the bench's sink: wall ms per run, the
#     whole machine's busy and idle ms per run (/proc/stat), the API server's CPU ms per run
#     (user+sys of all its threads) and its context switches per run;
#   - client: the same through bench/streams_client (websocket v5, no kubectl): MiB/s, API server
#     CPU ms and context switches per run;
#   HOOK_PERF=FILE: also `perf record -g` of the API server over HOOK_RUNS kubectl execs into FILE.
# Variables from bench/streams.sh: tmp, KD (kubectl dir), AP (API server pid), B, CL, EX.
if [ -z "${AP:-}" ] || [ -z "${tmp:-}" ]; then
    echo "streams_relay_hook.sh: source it from bench/streams.sh through PROF_HOOK (see its header)" >&2
    return 2 2>/dev/null || exit 2
fi
hk=$KD/kubectl.${KUBECTL_VERSIONS##* }
[ -x "$hk" ] || hk=$K0
hn=${HOOK_RUNS:-5}
hst() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
hcs() { cat /proc/"$AP"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }
hround() {   # hround NAME SINK CMD...: HOOK_RUNS runs of CMD | SINK (prints a ..._mib_s=N)
    local name=$1 sink=$2 b0 i0 b1 i1 t0 t1 a0 a1 c0 c1 rates=""
    shift 2
    local l0
    l0=$(grep -c "podproxy: .*relayed" "$tmp/server.log")
    read -r b0 i0 < <(hst); t0=$(date +%s%N); a0=$(ticks "$AP"); c0=$(hcs)
    for _ in $(seq "$hn"); do
        r=$("$@" 2>/dev/null | $sink | sed -n 's/.*\(stream_\| \)mib_s=\([0-9]*\).*/\2/p')
        rates="$rates ${r:-0}"
    done
    read -r b1 i1 < <(hst); t1=$(date +%s%N); a1=$(ticks "$AP"); c1=$(hcs)
    echo "HOOK $name: wall $(( (t1 - t0) / hn / 1000000 )) ms/run, machine busy $(( (b1 - b0) * 10 / hn ))" \
        "idle $(( (i1 - i0) * 10 / hn )) ms/run; apiserver $(( (a1 - a0) * 10 / hn )) ms CPU/run," \
        "$(( (c1 - c0) / hn )) ctx switches/run; stream MiB/s:$rates"
    sleep 0.2   # (the relay logs its line as it ends)
    grep "podproxy: .*relayed" "$tmp/server.log" | tail -n +$((l0 + 1)) | awk -v n="$name" '
        {for (i = 1; i < NF; i++) {
            if ($i == "cpu") c += $(i + 1); if ($i == "(user") u += $(i + 1) + 0
            if ($i == "switches") { split($(i + 1), w, "+"); sv += w[1]; si += w[2] }
            if ($i == "polls") p += $(i + 1) + 0
            if ($i == "reads") { split($(i + 1), w, "+"); rk += w[1] }
            if ($i == "sends") { split($(i + 1), w, "+"); sc += w[1] }
            if ($i == "opened") ro += $(i + 1); if ($i == "sealed") rs += $(i + 1) }
         m++}
        END {if (m) printf "HOOK %s relay thread: %.1f ms CPU (user %.1f) per session, switches %.0f+%.0f, polls %.0f, kubelet reads %.0f, client sends %.0f, records opened %.0f sealed %.0f by the relay (n=%d)\n", n, c / m, u / m, sv / m, si / m, p / m, rk / m, sc / m, ro / m, rs / m, m}'
}
for _ in $(seq "${HOOK_ROUNDS:-3}"); do
    hround kubectl "$B/bench/streams_sink 0" "$hk" --kubeconfig "$tmp/data/kubeconfig" exec rp -- cat /www/blob
    hround client cat $CL "$EX&command=cat&command=/www/blob&stdout=true" adm.crt adm.key
done
if [ -n "${HOOK_PERF:-}" ]; then
    perf record -g -p "$AP" -o "$HOOK_PERF" 2>/dev/null &
    hpp=$!
    sleep 0.5
    for _ in $(seq "$hn"); do
        "$hk" --kubeconfig "$tmp/data/kubeconfig" exec rp -- cat /www/blob | "$B/bench/streams_sink" 0 >/dev/null
    done
    kill -INT "$hpp"
    wait "$hpp"
    echo "HOOK perf data in $HOOK_PERF"
fi

#!/bin/bash
# bench/streams_kubelet_hook.sh - the kubelet's side of exec, measured inside bench/streams.sh:
#   PROF_HOOK='source "$ROOT/bench/streams_kubelet_hook.sh"' RUNS=0 FLOOR=0 KUBECTL_VERSIONS=1.33 \
#       flock /tmp/ckube-host.lock bench/streams.sh build
# Prints, with HOOK in front:
#   - exec start: HOOK_N (15) `kubectl exec rp -- echo x` HOOK_PAUSE (0.7) s apart, the kubelet's
#     own "first output N ms after the request" (request complete -> first output byte) p50/p90;
#   - CPU: `perf stat -p KUBELET` (task-clock of the kubelet and its children, incl. the container's
#     cat), page faults and context switches per 100 MiB over HOOK_RUNS (4) `kubectl exec rp --
#     cat /www/blob` into the bench's sink.
# Variables from bench/streams.sh: tmp, KD (kubectl dir), KL (kubelet pid), B (build dir).
if [ -z "${KL:-}" ] || [ -z "${tmp:-}" ]; then
    echo "streams_kubelet_hook.sh: source it from bench/streams.sh through PROF_HOOK (see its header)" >&2
    return 2 2>/dev/null || exit 2
fi
hk=$KD/kubectl.${KUBECTL_VERSIONS##* }
[ -x "$hk" ] || hk=$K0
hn0=$(grep -c "first output" "$tmp/kubelet.log")
for _ in $(seq "${HOOK_N:-15}"); do
    sleep "${HOOK_PAUSE:-0.7}"
    "$hk" --kubeconfig "$tmp/data/kubeconfig" exec rp -- echo x >/dev/null
done
grep -o "first output [0-9.]* ms" "$tmp/kubelet.log" | tail -n +$((hn0 + 1)) | awk '{print $3}' | sort -n |
    awk '{a[NR] = $1} END {if (NR) printf "HOOK kubelet first output p50 %s p90 %s min %s max %s ms (n=%d)\n", a[int(NR / 2 + 0.5)], a[int(NR * 0.9 + 0.5)], a[1], a[NR], NR}'
hr=${HOOK_RUNS:-4}
perf stat -e task-clock,page-faults,context-switches -p "$KL" -o "$tmp/hook.stat" &
hps=$!
sleep 0.3
for _ in $(seq "$hr"); do
    "$hk" --kubeconfig "$tmp/data/kubeconfig" exec rp -- cat /www/blob | "$B/bench/streams_sink" 0 >/dev/null
done
kill -INT "$hps"
wait "$hps"
awk -v n="$hr" '/task-clock/ {gsub(",", "", $1); printf "HOOK kubelet task-clock per 100 MiB %.1f ms", $1 / n}
    /page-faults/ {gsub(",", "", $1); printf ", page faults %d", $1 / n}
    /context-switches/ {gsub(",", "", $1); printf ", context switches %d", $1 / n} END {print ""}' "$tmp/hook.stat"

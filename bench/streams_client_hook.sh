#!/bin/bash
# bench/streams_client_hook.sh - exec throughput and CPU without kubectl, inside bench/streams.sh:
#   PROF_HOOK='source "$ROOT/bench/streams_client_hook.sh"' RUNS=0 FLOOR=0 KUBECTL_VERSIONS=1.33 \
#       flock /tmp/ckube-host.lock bench/streams.sh build
# Runs CLN (6) x 100 MiB `cat /www/blob` through bench/streams_client (websocket v5, through the
# API server's relay to the kubelet) and prints, with CLHOOK in front, each run's MiB/s and the
# CPU of the API server and of the kubelet with its reaped children (incl. `cat`) per 100 MiB,
# from /proc ticks (10 ms: compare several runs).
# Variables from bench/streams.sh: AP, KL (pids), CL, EX (our client and its exec path), B.
if [ -z "${KL:-}" ] || [ -z "${CL:-}" ]; then
    echo "streams_client_hook.sh: source it from bench/streams.sh through PROF_HOOK (see its header)" >&2
    return 2 2>/dev/null || exit 2
fi
cpu_() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
cln=${CLN:-6}
ca0=$(cpu_ "$AP"); ck0=$(cpu_ "$KL")
crs=""
for _ in $(seq "$cln"); do
    cr=$($CL "$EX&command=cat&command=/www/blob&stdout=true" adm.crt adm.key | sed 's/.*mib_s=\([0-9]*\).*/\1/')
    crs="$crs $cr"
done
ca1=$(cpu_ "$AP"); ck1=$(cpu_ "$KL")
echo "CLHOOK $B: MiB/s:$crs; per 100 MiB: API server $(( (ca1 - ca0) * 10 / cln )) ms, kubelet (+children) $(( (ck1 - ck0) * 10 / cln )) ms; load $(cut -d' ' -f1 /proc/loadavg)"

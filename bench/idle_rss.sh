#!/bin/bash
# bench/idle_rss.sh [BUILD_DIR] - the API server's idle RSS as issue 3 measures it: VmRSS of the
# `ckube apiserver` child of `ckube server --disable-agent` (loopback, a temp data dir it
# removes), SETTLE (6) seconds after start, RUNS (3) starts; also its thread count.  WORKERS=N
# passes `--workers N` to the API server (through CKUBE_SELF_EXE and a wrapper in the temp dir).
set -u
RUNS=${RUNS:-3}
SETTLE=${SETTLE:-6}
. "$(dirname "$0")/idle_server.sh"
if [ -n "${WORKERS:-}" ]; then
    printf '#!/bin/sh\nif [ "$1" = apiserver ]; then shift; exec "%s" apiserver --workers %s "$@"; fi\nexec "%s" "$@"\n' \
        "$CK" "$WORKERS" "$CK" >"$tmp/wrap.sh"
    chmod +x "$tmp/wrap.sh"
    export CKUBE_SELF_EXE=$tmp/wrap.sh
fi
all=
for i in $(seq "$RUNS"); do
    start_server "server$i"
    sleep "$SETTLE"
    api=$(sed -n 's/.*started apiserver (pid \([0-9]*\)).*/\1/p' "$tmp/server$i.log" | tail -n 1)
    if [ -z "$api" ] || [ ! -r "/proc/$api/status" ]; then
        echo "run $i: no API server"; cat "$tmp/server$i.log"; exit 1
    fi
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$api/status")
    echo "run $i: API server idle RSS $rss kB, $(ls "/proc/$api/task" | wc -l) threads"
    all="$all $rss"
    stop_server
done
echo "idle RSS:$(echo "$all" | tr ' ' '\n' | sort -n | awk 'NF {v[n++] = $1} END {printf " %d - %d kB over %d starts", v[0], v[n-1], n}') (load $(cut -d' ' -f1-3 /proc/loadavg))"

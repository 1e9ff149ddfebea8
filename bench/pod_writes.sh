#!/bin/bash
# bench/pod_writes.sh BUILD: instructions per operation of the API server's per-object work
# (bench/pod_writes.c) under callgrind, one case at a time; load-proof, unlike ns/op.
# Each case runs N and 2N times (N=100 by default); the difference over N is the steady cost of
# one operation, without one-time setup.  Needs valgrind (else only ns/op, said so).
set -euo pipefail
BUILD=${1:-${BUILD:-build}}
N=${N:-100}
BIN=$BUILD/bench/pod_writes
[ -x "$BIN" ] || { echo "pod_writes.sh: $BIN not built" >&2; exit 1; }
if ! command -v valgrind >/dev/null; then
    echo "pod_writes.sh: valgrind not installed: only ns/op"
    "$BIN" 20000
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total() {   # total(case, n): instructions inside <case>_one over a run of n iterations
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1.$2" --toggle-collect="${1}_one*" \
        "$BIN" "$2" >/dev/null 2>"$tmp/log.$1.$2"
    callgrind_annotate "$tmp/cg.$1.$2" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
}
for c in ${CASES:-create bind status lease leasetree watch}; do
    a=$(total "$c" "$N")
    b=$(total "$c" $((2 * N)))
    printf '%-8s %9d instructions/op\n' "$c" $(((b - a) / N))
done

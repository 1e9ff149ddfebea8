#!/bin/bash
# bench/store.sh [BUILD_DIR] [store_bench flags...] - SQLite vs a real etcd (started by the
# benchmark on loopback, in a temp dir it removes) in one run; prints the table that
# docs/benchmarks.md ("Store") records.  Needs etcd-server (`make deps`).
set -eu
BUILD=${1:-build}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/$BUILD/bench/store_bench
[ -x "$BIN" ] || { echo "bench/store.sh: $BIN missing; run make" >&2; exit 1; }
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || { echo "bench/store.sh: etcd not installed (make deps)" >&2; exit 1; }
exec "$BIN" "$@"

#!/bin/bash
# tests/run.sh BUILD_DIR - run every test tier, one process a test with a timeout (as libuv's
# runner does), and print "N passed, N failed[, N skipped]".  Exit non-zero on any failure.
#
# Unit tier: each build/tests/<name> binary (cmocka); its per-test PASSED/FAILED counts are summed.
# E2E tier: each tests/e2e/*.sh script; it prints TAP-ish lines "ok - ..." / "not ok - ..." /
# "skip - ... (reason)".  A binary or script that crashes, times out or exits non-zero without a
# "not ok" line counts as one failure.  TIERS="unit e2e" selects tiers; ONLY=regex selects tests.
set -u
BUILD=${1:-build}
TIERS=${TIERS:-"unit e2e"}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
E2E_TIMEOUT=${E2E_TIMEOUT:-900}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGDIR=$ROOT/$BUILD/test-logs
mkdir -p "$LOGDIR"
passed=0 failed=0 skipped=0
failures=()

run_unit() {
    local bin=$1 name log rc p f
    name=$(basename "$bin")
    log=$LOGDIR/unit-$name.log
    timeout -k 10 "$UNIT_TIMEOUT" "$bin" >"$log" 2>&1
    rc=$?
    p=$(grep -Eo '\[  PASSED  \] [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
    f=$(grep -Eo '\[  FAILED  \] [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
    s=$(grep -Eo '\[  SKIPPED \] [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
    passed=$((passed + p)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        failures+=("unit/$name (rc=$rc, log $log)")
        echo "FAIL unit/$name ($p passed, $f failed, rc=$rc)"; tail -n 30 "$log" | sed 's/^/    /'
    else
        echo "ok   unit/$name ($p passed, $s skipped)"
    fi
}

# A sanitizer build (make asan): the components' own logs live in the scripts' temp dirs, which
# their traps delete, and UBSan always reports on stderr.  So each script gets a ckube that tees
# every process's stderr to $LOGDIR/stderr-NAME.log (kept), and a report there fails the script.
case $BUILD in /*) BUILD_ABS=$BUILD ;; *) BUILD_ABS=$ROOT/$BUILD ;; esac
SAN_BUILD=0
grep -qa "__asan_init" "$BUILD_ABS/ckube" 2>/dev/null && SAN_BUILD=1
SAN_PATTERN='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'

# The build dir a script gets in a sanitizer build: ckube wrapped, tests/ and bench/ linked.
# Relative when BUILD is (some scripts run $ROOT/$BUILD/tests/...).
san_wrap() {
    local name=$1 wrap
    wrap=$BUILD/test-logs/wrap-$name
    mkdir -p "$BUILD_ABS/test-logs/wrap-$name"
    ln -sfn "$BUILD_ABS/tests" "$BUILD_ABS/test-logs/wrap-$name/tests"
    ln -sfn "$BUILD_ABS/bench" "$BUILD_ABS/test-logs/wrap-$name/bench"
    printf '#!/bin/bash\nexec %q "$@" 2> >(tee -a %q >&2)\n' "$BUILD_ABS/ckube" \
        "$LOGDIR/stderr-$name.log" >"$BUILD_ABS/test-logs/wrap-$name/ckube"
    chmod +x "$BUILD_ABS/test-logs/wrap-$name/ckube"
    : >"$LOGDIR/stderr-$name.log"
    echo "$wrap"
}

run_e2e() {
    local script=$1 name log rc p f s build=$BUILD
    name=$(basename "$script" .sh)
    log=$LOGDIR/e2e-$name.log
    [ "$SAN_BUILD" = 1 ] && build=$(san_wrap "$name")
    (cd "$ROOT" && BUILD="$build" timeout -k 10 "$E2E_TIMEOUT" "$script") >"$log" 2>&1
    rc=$?
    p=$(grep -c '^ok - ' "$log")
    f=$(grep -c '^not ok - ' "$log")
    s=$(grep -c '^skip - ' "$log")
    if [ "$SAN_BUILD" = 1 ] && grep -qaE "$SAN_PATTERN" "$LOGDIR/stderr-$name.log"; then
        echo "not ok - sanitizer reports in the stderr of ckube processes" >>"$log"
        grep -aE -A12 "$SAN_PATTERN" "$LOGDIR/stderr-$name.log" | head -n 40 | sed 's/^/# /' >>"$log"
        f=$((f + 1))
    fi
    passed=$((passed + p)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        failures+=("e2e/$name (rc=$rc, log $log)")
        echo "FAIL e2e/$name ($p passed, $f failed, rc=$rc)"
        grep -E '^(not ok|#)' "$log" | head -n 40 | sed 's/^/    /'
        tail -n 20 "$log" | sed 's/^/    /'
    else
        echo "ok   e2e/$name ($p passed, $s skipped)"
    fi
    grep '^skip - ' "$log" | sed 's/^/    /'
}

for tier in $TIERS; do
    case $tier in
    unit)
        for bin in "$ROOT/$BUILD"/tests/*; do
            [ -x "$bin" ] || continue
            [ -n "${ONLY:-}" ] && ! [[ $(basename "$bin") =~ $ONLY ]] && continue
            run_unit "$bin"
        done ;;
    e2e)
        for script in "$ROOT"/tests/e2e/*.sh; do
            [ -x "$script" ] || continue
            [ -n "${ONLY:-}" ] && ! [[ $(basename "$script") =~ $ONLY ]] && continue
            run_e2e "$script"
        done ;;
    esac
done

if [ ${#failures[@]} -gt 0 ]; then
    echo "failures:"; printf '  %s\n' "${failures[@]}"
fi
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ] && [ $((passed + failed)) -gt 0 ]

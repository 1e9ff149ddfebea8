# tests/e2e/lib/common.sh - what the e2e scripts share, sourced (never run) by them.
#
# It lives below tests/e2e/lib/ so that tests/run.sh, which runs every tests/e2e/*.sh, does not
# take it for a test.  Source it after `set -u`; it sets:
#   ROOT     the checkout             CKUBE  the binary under test ($BUILD, default build)
#   FAILED   1 once any check failed  fails  how many checks failed
# and gives ok/notok, expect/expect_not (a check on a command's output), e2e_pki (throwaway
# certificates made with the openssl CLI), e2e_apiserver_port (the port a started API server
# reports in its log), e2e_stop_checked (SIGTERM must end a process cleanly) and
# e2e_sanitizer_check (ASan/UBSan reports in a log are failures).
# Every helper writes only below the directory it is given; nothing here touches the network.

BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
case $BUILD in /*) CKUBE=$BUILD/ckube ;; *) CKUBE=$ROOT/$BUILD/ckube ;; esac
FAILED=0
fails=0

ok() { echo "ok - ${EXPECT_PREFIX:-}$*"; }
notok() { echo "not ok - ${EXPECT_PREFIX:-}$*"; FAILED=1; fails=$((fails + 1)); }

# expect DESC SUBSTRING CMD...: CMD's combined output must contain SUBSTRING
expect() {
    local desc=$1 want=$2 out
    shift 2
    out=$("$@" 2>&1)
    if [[ "$out" == *"$want"* ]]; then
        ok "$desc"
    else
        notok "$desc"
        echo "#   wanted: $want"
        printf '%s\n' "$out" | head -n 6 | sed 's/^/#   got: /'
    fi
}

# expect_not DESC SUBSTRING CMD...: CMD's combined output must NOT contain SUBSTRING
expect_not() {
    local desc=$1 bad=$2 out
    shift 2
    out=$("$@" 2>&1)
    if [[ "$out" != *"$bad"* ]]; then
        ok "$desc"
    else
        notok "$desc"
        printf '%s\n' "$out" | head -n 6 | sed 's/^/#   got: /'
    fi
}

# e2e_pki DIR [client]: a CA, an API server certificate for 127.0.0.1/localhost and an EC
# service-account key pair (sa.key, sa.pub) in DIR; with "client" also an x509 client
# certificate admin.crt for system:masters.  Returns non-zero (log in DIR/openssl.log) on failure.
e2e_pki() {
    local dir=$1 client=${2:-}
    mkdir -p "$dir" || return 1
    (
        cd "$dir" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=e2e-ca"
        openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >srv.ext
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt \
            -days 2 -extfile srv.ext
        if [ "$client" = client ]; then
            openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
                -subj "/O=system:masters/CN=kubernetes-admin"
            printf 'extendedKeyUsage=clientAuth\n' >cl.ext
            openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt \
                -days 2 -extfile cl.ext
        fi
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sa.key
        openssl pkey -in sa.key -pubout -out sa.pub
    ) >"$dir/openssl.log" 2>&1
}

# e2e_apiserver_port PID LOG: print the port an `ckube apiserver --secure-port 0` reports in LOG,
# waiting up to 10 s; prints nothing if PID exits or the time is up.
e2e_apiserver_port() {
    local pid=$1 log=$2 port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*serving HTTPS on 127.0.0.1:\([0-9]*\).*/\1/p' "$log" 2>/dev/null)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    printf '%s' "$port"
}

# e2e_stop_checked NAME PID LOG: PID must still run, then stop within 10 s of SIGTERM with status
# 0; each is a check.  Stopping here (not in the trap) puts sanitizer leak reports, written at
# exit, into LOG before e2e_sanitizer_check reads it.  Returns 0 once PID is gone.
e2e_stop_checked() {
    local name=$1 pid=$2 log=$3 rc
    if ! kill -0 "$pid" 2>/dev/null; then
        notok "$name still running at the end"
        tail -n 30 "$log"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        notok "$name stops on SIGTERM within 10s"
        return 1
    fi
    wait "$pid"
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "$name stops cleanly on SIGTERM"; else notok "$name exit status $rc on SIGTERM"; fi
    return 0
}

# e2e_sanitizer_check LOG...: an AddressSanitizer, LeakSanitizer or UBSan report is a failure.
e2e_sanitizer_check() {
    if grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$@" 2>/dev/null; then
        notok "sanitizer reports"
        grep -hE -A12 "AddressSanitizer|LeakSanitizer|runtime error" "$@" | head -60
    fi
}

# e2e_kill PID: SIGTERM, up to 5 s to exit, then SIGKILL (for traps, where no check is wanted).
e2e_kill() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

#!/bin/bash
# tests/e2e/server.sh - `ckube server` end to end: flag and data-dir errors, first start (PKI,
# kubeconfig, /readyz, kubectl), bad usage of every subcommand, the data-dir lock, SIGKILLed
# components restarted, SIGTERM -> exit 0 with nothing left behind, a second start keeping all
# state, no orphans when the server itself is SIGKILLed, and on etcd: an outage, a dead peer.  Loopback only; everything it starts is killed by the trap.
set -u
. "$(dirname "$0")/lib/common.sh"
CK=$CKUBE
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
tmp=$(mktemp -d /tmp/ckube-e2e-server.XXXXXX)
data=$tmp/data
log=$tmp/server.log
spid=

etcd_pid=
cleanup() {
    [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null && sleep 1
    [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
    # anything still running from this test's data dir
    pkill -9 -f -- "--data-dir[= ]$tmp/" 2>/dev/null
    [ -n "$spid" ] && wait "$spid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

skip() { echo "skip - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

kc() { "$KUBECTL" --kubeconfig "$data/kubeconfig" --request-timeout=5s "$@"; }

# wait_for SECONDS CMD...: retry CMD every 0.2s until it succeeds or time runs out.  The deadlines
# are for a quiet machine; a loaded one gets E2E_WAIT_SCALE (default 3) times as long.
wait_for() {
    local end=$((SECONDS + $1 * ${E2E_WAIT_SCALE:-3})); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

ready() { [ -f "$data/kubeconfig" ] && [ "$(kc get --raw /readyz 2>/dev/null)" = ok ]; }
apiserver_pid() { pgrep -f -- "apiserver --data-dir=$data" | head -n 1; }
ckube_procs() { pgrep -f -- "--data-dir[= ]$data"; }
no_procs() { [ -z "$(ckube_procs)" ]; }

start_server() {
    "$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 \
        --disable-agent >>"$log" 2>&1 &
    spid=$!
}

# stop_server SIGNAL: the server must exit 0 within 20s and leave no ckube process behind.
stop_server() {
    kill -"$1" "$spid"
    local end=$((SECONDS + 20))
    while kill -0 "$spid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    wait "$spid"
    local rc=$?
    spid=
    [ "$rc" -eq 0 ] || { echo "# server exit status $rc"; return 1; }
    wait_for 5 no_procs || { echo "# left behind: $(ckube_procs)"; return 1; }
    return 0
}

# --- flags and data dir: no cluster needed ---------------------------------------------------
out=$("$CK" server --bogus-flag 2>&1); rc=$?
check "bad flag: exit 2" [ "$rc" -eq 2 ]
check "bad flag: one error line naming the flag" \
    [ "$(grep -c '^Error:' <<<"$out")" -eq 1 -a -n "$(grep -- '--bogus-flag' <<<"$out")" ]
out=$("$CK" server 2>&1); rc=$?
check "missing --data-dir: exit 2 with one line" [ "$rc" -eq 2 -a "$(wc -l <<<"$out")" -eq 1 ]
out=$("$CK" server --data-dir "$tmp/x" --secure-port 70000 2>&1); rc=$?
check "bad --secure-port: exit 2 with one line" [ "$rc" -eq 2 -a "$(wc -l <<<"$out")" -eq 1 ]
out=$("$CK" server --data-dir "$tmp/x" --bind-address nowhere 2>&1); rc=$?
check "bad --bind-address: exit 2 with one line" [ "$rc" -eq 2 -a "$(wc -l <<<"$out")" -eq 1 ]
check "flag errors created nothing" [ ! -e "$tmp/x" ]

# every subcommand: a bad flag, a missing value, a stray argument or a bad kubeconfig is one
# "Error:" line and exit 2 (docs/design.md), with no sanitizer report
bad_usage() {
    local out rc
    out=$(cd "$tmp" && timeout 20 "$CK" "$@" 2>&1 </dev/null); rc=$?
    if [ "$rc" -eq 2 ] && [ "$(grep -c '^Error:' <<<"$out")" -eq 1 ] &&
        ! grep -qE 'Sanitizer|runtime error' <<<"$out"; then
        return 0
    fi
    echo "# ckube $*: exit $rc"; head -n 5 <<<"$out" | sed 's/^/#   /'
    return 1
}
lport=$(free_port)
usage_cases=(
    "version --bogus" "version extra" "apiserver --bogus" "apiserver --data-dir"
    "apiserver --secure-port abc" "apiserver --secure-port 99999999999999999999"
    "apiserver --bind-address 127.0.0.1 --secure-port $lport --data-dir=" "apiserver extra"
    "server --bogus" "server --data-dir" "images --bogus" "images import" "kubelet-shim"
    "scheduler --kubeconfig x --leader-elect=maybe"
    "scheduler --kubeconfig x --leader-elect-lease-duration 5q"
    "controller-manager --kubeconfig x --controllers nosuch"
    "hollow-node --kubeconfig x --count 0"
)
for c in hollow-node kubelet scheduler controller-manager proxy; do
    usage_cases+=("$c --bogus" "$c --kubeconfig" "$c" "$c --kubeconfig=" "$c --kubeconfig x extra"
                  "$c --kubeconfig /dev/null" "$c --kubeconfig $tmp/no-such-file")
done
usage_fails=0
for c in "${usage_cases[@]}"; do
    # shellcheck disable=SC2086 # each case is a word list
    bad_usage $c || usage_fails=$((usage_fails + 1))
done
check "bad usage of every subcommand (${#usage_cases[@]} cases): one Error: line, exit 2" \
    [ "$usage_fails" -eq 0 ]
check "an empty --data-dir made nothing at /db" [ ! -e /db/state.db ]

echo "precious" >"$tmp/afile"
out=$("$CK" server --data-dir "$tmp/afile/sub" 2>&1); rc=$?
check "data dir under a file: exit 1, one clear line" \
    [ "$rc" -eq 1 -a "$(wc -l <<<"$out")" -eq 1 -a -n "$(grep 'data dir.*Not a directory' <<<"$out")" ]
out=$("$CK" server --data-dir "$tmp/afile" 2>&1); rc=$?
check "data dir is a file: exit 1, one clear line" \
    [ "$rc" -eq 1 -a "$(wc -l <<<"$out")" -eq 1 -a -n "$(grep 'not a directory' <<<"$out")" ]
check "data dir errors overwrote nothing" [ "$(cat "$tmp/afile")" = precious ]
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
    mkdir -p "$tmp/ro"
    out=$(unshare -m sh -c "mount -t tmpfs -o ro tmpfs '$tmp/ro' && exec '$CK' server --data-dir '$tmp/ro'" 2>&1)
    rc=$?
    check "read-only data dir: exit 1, one clear line" \
        [ "$rc" -eq 1 -a "$(wc -l <<<"$out")" -eq 1 -a -n "$(grep 'not writable' <<<"$out")" ]
else
    skip "read-only data dir (needs root and mount namespaces)"
fi

if [ -z "${CKUBE_SELF_EXE:-}" ] && ! "$CK" apiserver --help >/dev/null 2>&1; then
    skip "cluster tests: this ckube has no apiserver command yet"
    exit $((fails > 0))
fi
if [ ! -x "$KUBECTL" ]; then
    notok "kubectl not found at $KUBECTL"
    exit 1
fi

# --- first start ---------------------------------------------------------------------------
port=$(free_port)
start_server
if wait_for 60 ready; then ok "first start: kubeconfig written and /readyz ok"; else
    notok "first start: kubeconfig written and /readyz ok"; tail -n 30 "$log" | sed 's/^/# /'
    exit 1
fi
check "kubeconfig is mode 0600" [ "$(stat -c %a "$data/kubeconfig")" = 600 ]
check "PKI laid out as agreed" test -s "$data/pki/ca.crt" -a -s "$data/pki/ca.key" \
    -a -s "$data/pki/apiserver.crt" -a -s "$data/pki/admin.crt" -a -s "$data/pki/tokens.csv"
check "keys are mode 0600" [ "$(stat -c %a "$data/pki/ca.key" "$data/pki/apiserver.key" \
    "$data/pki/admin.key" | sort -u)" = 600 ]
check "admin cert verifies against the CA" \
    sh -c "openssl verify -CAfile $data/pki/ca.crt $data/pki/admin.crt >/dev/null"
ca_sum=$(sha256sum <"$data/pki/ca.crt")

# served PATH: false only if the API server says 404 for PATH (not built yet); any other failure
# counts as served, so the test that follows fails loudly.
served() { local out; out=$(kc get --raw "$1" 2>&1) && return 0; ! grep -q 'NotFound' <<<"$out"; }
has_ns() { local ns; ns=$(kc get ns -o name 2>/dev/null); grep -qx namespace/default <<<"$ns" &&
           grep -qx namespace/kube-system <<<"$ns"; }
if served /api/v1/namespaces; then
    if wait_for 30 has_ns; then ok "kubectl get ns lists default and kube-system"; else
        notok "kubectl get ns lists default and kube-system"; kc get ns 2>&1 | sed 's/^/# /'; fi
else
    skip "kubectl get ns (this apiserver does not serve namespaces yet)"
fi
if served /api/v1/namespaces/default/configmaps; then
    cm_served=1
    check "create a configmap" sh -c "echo '{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",
        \"metadata\":{\"name\":\"e2e-keep\",\"namespace\":\"default\"},\"data\":{\"k\":\"v\"}}' |
        '$KUBECTL' --kubeconfig '$data/kubeconfig' create --validate=false -f - >/dev/null"
else
    cm_served=
    skip "create a configmap (this apiserver does not serve configmaps yet)"
fi

# --- the lock --------------------------------------------------------------------------------
out=$("$CK" server --data-dir "$data" --secure-port "$(free_port)" --bind-address 127.0.0.1 \
      --disable-agent 2>&1); rc=$?
check "second server on the same data dir refused (exit 1, one line)" \
    [ "$rc" -eq 1 -a "$(wc -l <<<"$out")" -eq 1 -a -n "$(grep 'in use by another ckube server' <<<"$out")" ]
check "the refused server did not disturb the first" ready

# --- crash and restart -----------------------------------------------------------------------
old=$(apiserver_pid)
if [ -n "$old" ]; then
    kill -9 "$old"
    restarted() { local p; p=$(apiserver_pid); [ -n "$p" ] && [ "$p" != "$old" ] && ready; }
    check "SIGKILLed apiserver restarted and ready again" wait_for 60 restarted
    check "the death was logged with its signal" grep -q "apiserver (pid $old) killed by signal 9" "$log"
else
    notok "find the apiserver child"
fi

# the other components are supervised the same way
for comp in scheduler controller-manager; do
    comp_pid() { pgrep -f -- "$comp --kubeconfig=$data/kubeconfigs/$comp.kubeconfig" | head -n 1; }
    old=$(comp_pid)
    if [ -n "$old" ]; then
        kill -9 "$old"
        comp_back() { local p; p=$(comp_pid); [ -n "$p" ] && [ "$p" != "$old" ]; }
        check "SIGKILLed $comp restarted" wait_for 60 comp_back
        check "$comp death logged with its signal" grep -q "$comp (pid $old) killed by signal 9" "$log"
    else
        notok "find the $comp child"
    fi
done
check "API server still ready after the component restarts" ready

# --- clean stop ------------------------------------------------------------------------------
check "SIGTERM: server exits 0 and no ckube process is left" stop_server TERM

# --- second start keeps state ----------------------------------------------------------------
start_server
check "second start: ready again" wait_for 60 ready
check "second start: same CA" [ "$(sha256sum <"$data/pki/ca.crt")" = "$ca_sum" ]
if [ -n "$cm_served" ]; then
    cm_kept() { [ "$(kc get configmap e2e-keep -n default -o jsonpath='{.data.k}')" = v ]; }
    check "second start: the configmap is still there" wait_for 20 cm_kept
else
    skip "second start: object kept (configmaps not served yet)"
fi
check "SIGINT: server exits 0 and no ckube process is left" stop_server INT

# --- a SIGKILLed server leaves no orphans (PR_SET_PDEATHSIG) ----------------------------------
start_server
if wait_for 60 ready; then
    child=$(apiserver_pid)
    kill -9 "$spid"; wait "$spid" 2>/dev/null; spid=
    check "SIGKILLed server: its apiserver child exits too" wait_for 15 no_procs
else
    notok "third start: ready"
fi

# --- --etcd-servers: the same cluster on a real etcd -----------------------------------------
if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
    cport=$(free_port); pport=$(free_port)
    start_etcd() {
        etcd --name e2e --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$cport" \
            --advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
            --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
            --initial-cluster "e2e=http://127.0.0.1:$pport" >>"$tmp/etcd.log" 2>&1 &
        etcd_pid=$!
    }
    start_etcd
    etcd_up() { ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$cport" endpoint health; }
    if wait_for 30 etcd_up; then
        data=$tmp/data-etcd
        port=$(free_port)
        "$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 \
            --disable-agent --etcd-servers "http://127.0.0.1:$cport" >>"$log" 2>&1 &
        spid=$!
        check "etcd: ready" wait_for 60 ready
        in_etcd() { ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$cport" get --keys-only \
                    /registry/namespaces/default | grep -q /registry/namespaces/default; }
        check "etcd: the API server's objects are in etcd" wait_for 30 in_etcd
        # etcd dies under a running server: requests fail cleanly, nothing crashes, and the
        # cluster serves again once etcd is back
        kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null; etcd_pid=
        down() { ! ready; }
        check "etcd down: /readyz fails" wait_for 60 down
        out=$(kc get ns default 2>&1); rc=$?
        check "etcd down: a read fails with an error" [ "$rc" -ne 0 -a -n "$out" ]
        check "etcd down: the server keeps running" kill -0 "$spid"
        start_etcd
        check "etcd back: ready again" wait_for 90 ready
        check "etcd outage: no sanitizer report in the server log" \
            bash -c "! grep -qE 'Sanitizer|runtime error' '$log'"
        check "etcd: server stops cleanly" stop_server TERM
        # a dead peer first in --etcd-servers: the live one is used
        dead=$(free_port)
        "$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 \
            --disable-agent --etcd-servers "http://127.0.0.1:$dead,http://127.0.0.1:$cport" >>"$log" 2>&1 &
        spid=$!
        check "etcd: a dead first peer is skipped, ready" wait_for 60 ready
        check "etcd (dead peer): server stops cleanly" stop_server TERM
        # only dead peers: the API server says why and is restarted, the server does not crash
        elog=$tmp/etcd-dead.log
        "$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 \
            --disable-agent --etcd-servers "http://127.0.0.1:$dead" >"$elog" 2>&1 &
        spid=$!
        said_why() { grep -q 'Error: etcd open: .*127.0.0.1:'"$dead" "$elog" && grep -q 'restarting in' "$elog"; }
        check "etcd: only a dead peer -> one clear error, apiserver restarted" wait_for 30 said_why
        check "etcd (all dead): server stops cleanly" stop_server TERM
    else
        notok "etcd: start a local etcd"; tail -n 5 "$tmp/etcd.log" | sed 's/^/# /'
    fi
    kill "$etcd_pid" 2>/dev/null; wait "$etcd_pid" 2>/dev/null; etcd_pid=
else
    skip "--etcd-servers (no etcd binary)"
fi

exit $((fails > 0))

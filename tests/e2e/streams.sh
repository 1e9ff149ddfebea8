#!/bin/bash
# tests/e2e/streams.sh - exec, attach, cp and port-forward with the real kubectl 1.27/1.29/1.30/1.33
# through the real API server (its pods/exec|attach|portforward relay) to a node.
#
# Two nodes: a real kubelet (`ckube kubelet`, own root dir, bridge ckst0 and pod CIDR
# 10.244.231.0/24, runc) running a busybox pod built here from busybox-static ("real pod" in
# the test names), and the STAND-IN bench/streams_node (src/streams on an HTTPS port running
# commands on this host, no containers; "stand-in node" in the names).  attach on the real
# kubelet goes through the container shims' sockets: output of a running container, `attach -i`
# to a container with stdin, `run -i --rm` (stdinOnce), `attach -it` to a shell with a tty, and
# again after the kubelet was killed and restarted (it re-connects to the shims).
# Loopback and the test's own pod network only; everything it starts is stopped by the trap.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
CK=$B/ckube
NODE=$B/bench/streams_node
VERSIONS=${VERSIONS:-"1.27 1.29 1.30 1.33"}
tmp=$(mktemp -d /tmp/ckube-e2e-streams.XXXXXX)
pids=()
fails=0

cleanup() {
    # the real pod first (the kubelet stops its containers), then everything else
    if [ -n "${klpid:-}" ] && kill -0 "$klpid" 2>/dev/null; then
        timeout 20 "$K0" --kubeconfig "$tmp/data/kubeconfig" delete pod rp rin rtty --grace-period=1 --wait=true >/dev/null 2>&1
    fi
    R=$tmp/kubelet/runtime
    for id in $(runc --root "$R" list -q 2>/dev/null); do
        runc --root "$R" kill "$id" KILL 2>/dev/null; sleep 0.2; runc --root "$R" delete -f "$id" 2>/dev/null
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for p in $(pgrep -f -- "kubelet-shim .*$tmp/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    mount | awk -v t="$tmp/" 'index($3, t) == 1 {print $3}' | sort -r | while read -r m; do umount -l "$m"; done
    ip link del ckst0 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; fails=$((fails + 1)); }
. "$ROOT/tests/e2e/lib/standin_node.sh"

[ -x "$NODE" ] || { echo "not ok - $NODE missing (make)"; exit 1; }
cd "$tmp"
standin_node_start
standin_server_start "$tmp"
K0=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
standin_ready "$tmp" || { notok "server ready"; exit 1; }

# the real kubelet, with an image made from busybox-static
real=0
if [ "$(id -u)" = 0 ] && command -v runc >/dev/null && [ -x /bin/busybox ]; then
    python3 "$ROOT/tests/e2e/streams_image.py" "$tmp/busybox.tar" "$tmp/www-blob"
    "$CK" images --root-dir "$tmp/kubelet" import "$tmp/busybox.tar" \
        --name docker.io/library/busybox:latest >/dev/null && real=1
    kport=$(free_port)
    "$CK" kubelet --kubeconfig "$tmp/data/kubeconfig" --root-dir "$tmp/kubelet" --node-name streams-e2e \
        --port "$kport" --pod-cidr 10.244.231.0/24 --cni-bridge ckst0 >kubelet.log 2>&1 &
    klpid=$!
    pids+=($klpid)
else
    notok "real pod: needs root, runc and /bin/busybox"
fi

# a Node pointing at the stand-in, a running pod on it, a completed pod
standin_objects objs.yaml
cat >>objs.yaml <<EOY
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: default}
spec:
  nodeName: standin
  containers: [{name: main, image: busybox}]
  tolerations: [{operator: Exists}]
EOY
# (the stand-in node renews no Lease: the node lifecycle controller taints it unreachable after
# 40 s, and pods without a toleration would be evicted mid-test)
kc() { timeout "${T:-20}" "$K" --kubeconfig "$tmp/data/kubeconfig" "$@"; }
K=$K0
kc create --validate=false -f objs.yaml >/dev/null || notok "create objects"
standin_node_status || notok "node status"
standin_setstatus pod sp '{"phase":"Running"}' || notok "pod status"
standin_setstatus pod done '{"phase":"Succeeded"}' || notok "pod status"
if [ $real = 1 ]; then
    cat >rp.yaml <<EOY
apiVersion: v1
kind: Pod
metadata: {name: rp, namespace: default}
spec:
  nodeName: streams-e2e
  containers:
  - name: main
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "httpd -p 8080 -h /www; i=0; while :; do i=\$((i+1)); echo attached-output \$i; sleep 0.3; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: rin, namespace: default}
spec:
  nodeName: streams-e2e
  containers: [{name: main, image: busybox, imagePullPolicy: Never, stdin: true, command: [cat]}]
---
apiVersion: v1
kind: Pod
metadata: {name: rtty, namespace: default}
spec:
  nodeName: streams-e2e
  containers: [{name: main, image: busybox, imagePullPolicy: Never, stdin: true, tty: true, command: [sh]}]
EOY
    kc create --validate=false -f rp.yaml >/dev/null || notok "real pod: create"
    running() { [ "$(kc get pod rp rin rtty -o jsonpath='{.items[*].status.phase}' 2>/dev/null)" = "Running Running Running" ]; }
    for i in $(seq 100); do running && break; sleep 0.3; done
    if running; then ok "real pods: running"
    else notok "real pods: not running: $(tail -3 kubelet.log | tr '\n' '|')"; real=0; fi
fi

head -c 5242880 /dev/urandom >big.bin
mkdir -p www cp
head -c 1048576 /dev/urandom >www/blob
web=$(free_port)
python3 -m http.server "$web" --bind 127.0.0.1 --directory www >web.log 2>&1 &
pids+=($!)
sum() { sha256sum "$1" | cut -d' ' -f1; }

# suite WHERE POD DIR WEBPORT BLOBPATH: DIR is a writable directory in the pod's filesystem
suite() {
    local where=$1 pod=$2 dir=$3 webport=$4 blobpath=$5 blob=$6
    # exec: stdout, stderr, exit code
    kc exec $pod -- sh -c 'echo to-out; echo to-err >&2; exit 3' >out 2>err
    rc=$?
    if [ $rc = 3 ] && grep -qx to-out out && grep -qx to-err err; then
        ok "kubectl $v: $where: exec stdout/stderr, exit code 3"
    else notok "kubectl $v: $where: exec stdout/stderr, exit code 3 (rc=$rc)"; fi
    # stdin piped
    got=$(echo hi | kc exec -i $pod -- cat)
    [ "$got" = hi ] && ok "kubectl $v: $where: echo hi | exec -i cat" ||
        notok "kubectl $v: $where: exec -i cat gave '$got'"
    # a tty under script: prompt, window size from the client, exit code
    (sleep 1.5; echo 'stty size; echo PROMPT-$((6*7)); exit 4'; sleep 1) |
        T=20 timeout 20 script -qec "stty cols 77 rows 33; $K --kubeconfig $tmp/data/kubeconfig exec -it $pod -- sh" /dev/null >tty.out 2>&1
    rc=$?
    if [ $rc = 4 ] && grep -aq '^PROMPT-42' tty.out && grep -aq '^33 77' tty.out; then
        ok "kubectl $v: $where: exec -it under script (prompt, resize, exit 4)"
    else notok "kubectl $v: $where: exec -it (rc=$rc: $(tr -d '\r' <tty.out | tail -3 | tr '\n' '|'))"; fi
    # attach: the running process' output
    T=4 kc attach $pod >att.out 2>&1
    grep -q '^attached-output' att.out && ok "kubectl $v: $where: attach (output of a running container)" ||
        notok "kubectl $v: $where: attach: $(head -3 att.out | tr '\n' '|')"
    [ "$where" = "real pod" ] && real_attach
    # cp both ways, 5 MiB
    rm -f cp/*
    kc exec $pod -- rm -f "$dir/up.bin"
    kc cp "$tmp/big.bin" "$pod:$dir/up.bin" >/dev/null 2>&1
    inpod=$(kc exec $pod -- sha256sum "$dir/up.bin" | cut -d' ' -f1)
    kc cp "$pod:$dir/up.bin" "$tmp/cp/down.bin" >/dev/null 2>&1
    if [ -f cp/down.bin ] && [ "$inpod" = "$(sum big.bin)" ] && [ "$(sum cp/down.bin)" = "$(sum big.bin)" ]; then
        ok "kubectl $v: $where: cp 5 MiB both ways, same sha256"
    else notok "kubectl $v: $where: cp 5 MiB both ways"; fi
    # port-forward with 10 parallel requests
    lp=$(free_port)
    # empty the log first: the background job truncates it only once it runs, and the wait below
    # used to find the previous suite's "Forwarding from" in it and start the downloads before
    # this kubectl listened (the "0/10 intact, pf.log empty" flake)
    : >pf.log
    "$K" --kubeconfig "$tmp/data/kubeconfig" port-forward pod/$pod "$lp:$webport" >>pf.log 2>&1 &
    pf=$!
    local pft0=$SECONDS
    # (loaded hosts: kubectl's own start has been seen to take seconds; wait up to 40 s)
    for i in $(seq 400); do grep -q Forwarding pf.log && break; kill -0 $pf 2>/dev/null || break; sleep 0.1; done
    local pfwait="ready after $((SECONDS - pft0)) s"
    grep -q Forwarding pf.log || pfwait="not ready after $((SECONDS - pft0)) s, kubectl $(kill -0 $pf 2>/dev/null && echo running || echo exited); server: $(grep -a "podproxy: portforward" server.log | tail -2 | tr '\n' '|'); node: $(tail -2 node.log | tr '\n' '|')"
    rm -f got.*
    cpids=()
    for i in $(seq 10); do curl -s -m 20 -o "got.$i" "http://127.0.0.1:$lp/$blobpath" & cpids+=($!); done
    wait "${cpids[@]}"
    good=0
    for i in $(seq 10); do cmp -s "got.$i" "$blob" && good=$((good + 1)); done
    kill $pf 2>/dev/null; wait $pf 2>/dev/null
    [ $good = 10 ] && ok "kubectl $v: $where: port-forward, 10 parallel 1 MiB downloads" ||
        notok "kubectl $v: $where: port-forward: $good/10 intact ($pfwait; $(tail -3 pf.log | tr '\n' '|'); curl: $(for i in $(seq 10); do [ -f got.$i ] && wc -c <got.$i || echo none; done | tr '\n' ' '))"
    # errors: missing container, completed pod, missing binary; none hangs
    msg=$(kc exec $pod -c nope -- true 2>&1)
    [[ $msg == *"container nope is not valid for pod $pod"* ]] &&
        ok "kubectl $v: $where: exec into a missing container: upstream's message" ||
        notok "kubectl $v: $where: missing container: '$msg'"
    if [ "$where" != "real pod" ]; then
        msg=$(kc exec done -- true 2>&1)
        [[ $msg == *'cannot exec into a container in a completed pod; current phase is Succeeded'* ]] &&
            ok "kubectl $v: exec into a completed pod: upstream's message" ||
            notok "kubectl $v: completed pod: '$msg'"
    fi
    msg=$(kc exec $pod -- /no/such/binary 2>&1)
    rc=$?
    [[ $rc != 0 && $rc != 124 && ( $msg == *'executable file not found'* || $msg == *'no such file'* ) ]] &&
        ok "kubectl $v: $where: exec of a missing binary fails with a message" ||
        notok "kubectl $v: missing binary: rc=$rc '$msg'"
}

# wait (10 s at most) until FILE has a line matching RE
wait_for() { for i in $(seq 50); do grep -aq "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done; return 1; }

# attach to the real kubelet's containers with stdin and a tty
real_attach() {
    # stdin: true (not stdinOnce): the line reaches cat, its echo comes back and is logged; the
    # container's stdin stays open after kubectl's ends, so kubectl keeps waiting (as upstream's
    # does): stopped here
    : >atti.out
    echo "hi-$v" | "$K" --kubeconfig "$tmp/data/kubeconfig" attach -i rin >atti.out 2>&1 &
    local ap=$!
    wait_for atti.out "^hi-$v\$"; local seen=$?
    kill $ap 2>/dev/null; wait $ap 2>/dev/null
    local logged=1
    for i in $(seq 20); do kc logs rin | grep -qx "hi-$v" && { logged=0; break; }; sleep 0.2; done
    [ $seen = 0 ] && [ $logged = 0 ] && ok "kubectl $v: real pod: echo | attach -i to cat: echoed back and logged" ||
        notok "kubectl $v: real pod: attach -i: seen=$seen logged=$logged $(head -3 atti.out | tr '\n' '|')"
    # a tty: a shell's prompt, the client's window size, a command's output
    rm -f feed; mkfifo feed
    : >attt.out   # (not the previous version's prompt: the job truncates it only once it runs)
    script -qec "stty cols 77 rows 33; $K --kubeconfig $tmp/data/kubeconfig attach -it rtty" /dev/null <feed >attt.out 2>&1 &
    local sp=$!
    exec 7>feed
    sleep 1.5; printf '\n' >&7; sleep 0.5
    echo 'stty size; echo PROMPT-$((6*7))' >&7
    wait_for attt.out '^PROMPT-42'; local got=$?
    kill $sp 2>/dev/null; exec 7>&-; wait $sp 2>/dev/null
    [ $got = 0 ] && grep -aq '^33 77' attt.out && grep -aq '/ # ' attt.out &&
        ok "kubectl $v: real pod: attach -it to a tty shell (prompt, resize, command output)" ||
        notok "kubectl $v: real pod: attach -it: $(tr -d '\r' <attt.out | tail -4 | tr '\n' '|')"
    # run -i --rm: stdinOnce, so cat ends when kubectl's stdin does; the pod is removed
    local rn=run-${v/./-}
    out=$(echo "run-hi" | T=60 kc run $rn -i --rm --restart=Never --image=busybox --image-pull-policy=Never \
        --overrides='{"apiVersion":"v1","spec":{"nodeName":"streams-e2e"}}' -- cat 2>&1)
    rc=$?
    gone=1
    for i in $(seq 30); do kc get pod $rn >/dev/null 2>&1 || { gone=0; break; }; sleep 0.3; done
    [ $rc = 0 ] && [[ $out == *run-hi* ]] && [ $gone = 0 ] &&
        ok "kubectl $v: real pod: echo | run -i --rm -- cat (stdinOnce): output, exit 0, pod removed" ||
        notok "kubectl $v: real pod: run -i --rm: rc=$rc gone=$gone '$(echo "$out" | tail -3 | tr '\n' '|')'"
}

for v in $VERSIONS; do
    K=/usr/lib/google-cloud-sdk/bin/kubectl.$v
    [ -x "$K" ] || { notok "kubectl $v missing"; continue; }
    suite "stand-in node" sp "$tmp" "$web" blob www/blob
    [ $real = 1 ] && suite "real pod" rp /tmp 8080 blob "$tmp/www-blob"
done
# the relay keeps a TLS session per kubelet: after the first upgrade to each, handshakes resume
# (also the spare connections it dials ahead), and most upgrades find a spare
nres=$(grep -ac 'kubelet answered 101 .*(TLS resumed[;,]' server.log)
nfull=$(grep -ac 'kubelet answered 101 .*(TLS full handshake[;,]' server.log)
nspare=$(grep -ac 'kubelet answered 101 .*, dialed ahead;' server.log)
[ "$nres" -gt 0 ] && [ "$nres" -gt "$nfull" ] &&
    ok "relay to the kubelets: $nres upgrades over resumed TLS sessions, $nfull full handshakes" ||
    notok "relay TLS resumption: $nres resumed, $nfull full handshakes"
[ "$nspare" -gt $(( (nres + nfull) / 2 )) ] &&
    ok "relay: $nspare of $((nres + nfull)) upgrades over a connection dialed ahead" ||
    notok "relay spares: $nspare of $((nres + nfull)) upgrades over a connection dialed ahead"
# the sealing hand-off (docs/podproxy.md): every relayed session had the kubelet seal the
# client's records itself (our kubelets and the stand-in node accept it; CKUBE_RELAY_SEAL=0
# in the environment turns it off, then every session must say so)
nhand=$(grep -ac 'seal hand-off used' server.log)
nnot=$(grep -ac 'seal hand-off not used' server.log)
if [ "${CKUBE_RELAY_SEAL:-1}" = 0 ]; then
    [ "$nhand" = 0 ] && [ "$nnot" -gt 0 ] && ok "relay: seal hand-off off: $nnot sessions through the relay's own records" ||
        notok "relay: seal hand-off off but used in $nhand sessions ($nnot not)"
else
    [ "$nhand" -gt 0 ] && [ "$nnot" = 0 ] && ok "relay: seal hand-off used in all $nhand sessions" ||
        notok "relay: seal hand-off used in $nhand sessions, not used in $nnot"
fi

# the kubelet is killed and restarted: it adopts the running containers and attaches to their
# shims again (same container, same stdin)
if [ $real = 1 ]; then
    K=$K0; v=${K0##*.}
    kill -9 $klpid; wait $klpid 2>/dev/null
    "$CK" kubelet --kubeconfig "$tmp/data/kubeconfig" --root-dir "$tmp/kubelet" --node-name streams-e2e \
        --port "$kport" --pod-cidr 10.244.231.0/24 --cni-bridge ckst0 >>kubelet.log 2>&1 &
    klpid=$!
    pids+=($klpid)
    for i in $(seq 50); do curl -sk "https://127.0.0.1:$kport/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    T=4 kc attach rp >att.out 2>&1
    grep -q '^attached-output' att.out && ok "kubelet restarted: attach to an adopted container" ||
        notok "kubelet restarted: attach: $(head -3 att.out | tr '\n' '|')"
    : >atti.out
    echo "hi-again" | "$K" --kubeconfig "$tmp/data/kubeconfig" attach -i rin >atti.out 2>&1 &
    ap=$!
    wait_for atti.out '^hi-again$'; seen=$?
    kill $ap 2>/dev/null; wait $ap 2>/dev/null
    [ $seen = 0 ] && [ "$(kc get pod rin -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 0 ] &&
        ok "kubelet restarted: echo | attach -i to the same cat (no restart)" ||
        notok "kubelet restarted: attach -i: seen=$seen $(head -3 atti.out | tr '\n' '|')"
fi

# a slow client does not grow the server: read 100 MiB of output at 1 MiB/s for 3 s, check RSS
K=$K0
api_pid=$(pgrep -f -- "ckube apiserver.*$tmp/data" | head -1)
if [ -n "$api_pid" ]; then
    rss0=$(awk '/VmRSS/{print $2}' /proc/$api_pid/status)
    timeout 4 "$K" --kubeconfig data/kubeconfig exec sp -- head -c 104857600 /dev/zero |
        python3 -c 'import sys,time
t=time.time()
while time.time()-t<3:
    sys.stdin.buffer.read(65536); time.sleep(0.06)' 2>/dev/null
    rss1=$(awk '/VmRSS/{print $2}' /proc/$api_pid/status)
    [ $((rss1 - rss0)) -lt 65536 ] && ok "slow exec reader: API server RSS grew $(( (rss1 - rss0) / 1024 )) MiB (< 64)" ||
        notok "slow exec reader: API server RSS grew $(( (rss1 - rss0) / 1024 )) MiB"
else
    notok "find the API server process"
fi

# the client vanishes mid-exec (SIGKILL): the node kills the process it started
K=$K0
timeout -s KILL 3 "$K" --kubeconfig data/kubeconfig exec -i sp -- sleep 4242.17 </dev/zero >/dev/null 2>&1
sleep 1
n=$(pgrep -fc 'sleep 4242.17')
[ "$n" = 0 ] && ok "stand-in node: kubectl killed mid-exec: the process is stopped" ||
    notok "stand-in node: kubectl killed mid-exec: $n process(es) left"
# the node dies mid-exec: kubectl ends with an error instead of hanging (last: the node is gone)
(sleep 1.5; kill -9 "${pids[0]}") &
t0=$SECONDS
T=20 kc exec sp -- sleep 4243.17 >/dev/null 2>&1
rc=$?
[ $rc != 0 ] && [ $rc != 124 ] && ok "stand-in node killed mid-exec: kubectl exits (rc=$rc) after $((SECONDS - t0))s" ||
    notok "stand-in node killed mid-exec: rc=$rc"
for p in $(pgrep -f 'sleep 4243.17'); do kill "$p"; done   # orphaned by the killed node

[ $fails = 0 ] && echo "# streams: all passed" || echo "# streams: $fails failed"
exit $((fails > 0))

#!/bin/bash
# bench/streams.sh - streaming throughput and exec latency through the whole path:
#   kubectl -> API server relay -> kubelet -> runc exec / pod netns.
# Measures, in one run on one machine (a real kubelet and a busybox pod made from
# busybox-static, as tests/e2e/streams.sh does), 100 MiB from the pod to the client:
#   exec:  `kubectl exec pod -- cat /www/blob` for each kubectl in KUBECTL_VERSIONS vs
#          `runc exec ID cat /www/blob` on the node (direct) vs `cat` of the same local file;
#          and bench/streams_client (websocket v5, no kubectl) through the same API server;
#   port-forward: curl of the file through `kubectl port-forward` (each version) vs curl
#          straight to the pod IP;
#   all into the same sink (bench/streams_sink), RUNS interleaved rounds, wall rate (incl. the client's
#   start), stream rate (first byte -> last byte), first byte, CPU-s of the client (for
#   port-forward: curl + the kubectl port-forward process), the API server and the kubelet;
#   floor (FLOOR=1, the default): the same kubectl commands against bench/streams_floor, a
#          server that answers kubectl's GET and upgrade itself and sends 100 MiB from memory
#          (no relay, no kubelet, no process): kubectl's own ceiling on this machine, in the
#          same rounds (docs/streams.md, "kubectl's ceiling");
#   exec start: kubectl wall time, the kubelet's own figure (request received -> first
#          output byte, from its log), and bench/streams_client's connect -> first byte through
#          the API server (server side, no kubectl), p50/p90 over N runs.
# Usage: bench/streams.sh [BUILD] [N]  (root; BUILD=build; RUNS=3; FLOOR=0 skips the floor server; KUBECTL_VERSIONS="1.27 1.30 1.33",
#        or KUBECTL=/path/kubectl.1.33 for one version; the latency part uses the last one;
#        CKUBE_EXEC_VIA_RUNC=1: the kubelet runs every exec through `runc exec -d` as before
#        session 5, instead of joining the container itself (docs/streams.md, "Exec without runc"))
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
N=20
case ${1:-} in     # `bench/streams.sh build [N]` or `bench/streams.sh [N]`
    '') ;;
    *[!0-9]*) BUILD=$1; N=${2:-20} ;;
    *) N=$1 ;;
esac
case $BUILD in /*) B=$BUILD ;; *) B=$ROOT/$BUILD ;; esac
CK=$B/ckube
KVL=${KUBECTL_VERSIONS:-1.33}
K0=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.${KVL##* }}
tmp=$(mktemp -d /tmp/ckube-bench-streams.XXXXXX)
pids=()
cleanup() {
    timeout 20 "$K0" --kubeconfig "$tmp/data/kubeconfig" delete pod rp --grace-period=1 >/dev/null 2>&1
    R=$tmp/kubelet/runtime
    for id in $(runc --root "$R" list -q 2>/dev/null); do
        runc --root "$R" kill "$id" KILL 2>/dev/null; sleep 0.2; runc --root "$R" delete -f "$id" 2>/dev/null
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for p in $(pgrep -f -- "kubelet-shim .*$tmp/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    mount | awk -v t="$tmp/" 'index($3, t) == 1 {print $3}' | sort -r | while read -r m; do umount -l "$m"; done
    ip link del ckst1 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; print('%.0f' % (104857600 / (float(sys.argv[2]) - float(sys.argv[1])) / 1048576))" "$1" "$2"; }

cd "$tmp"
BLOB_MB=100 python3 "$ROOT/tests/e2e/streams_image.py" busybox.tar blob
"$CK" images --root-dir "$tmp/kubelet" import busybox.tar --name docker.io/library/busybox:latest >/dev/null
api=$(free_port)
"$CK" server --data-dir "$tmp/data" --secure-port "$api" --disable-agent >server.log 2>&1 &
pids+=($!)
kc() { "$K0" --kubeconfig "$tmp/data/kubeconfig" "$@"; }
for i in $(seq 100); do [ -f data/kubeconfig ] && kc get --raw /readyz >/dev/null 2>&1 && break; sleep 0.2; done
"$CK" kubelet --kubeconfig data/kubeconfig --root-dir "$tmp/kubelet" --node-name streams-bench \
    --port "$(free_port)" --pod-cidr 10.244.232.0/24 --cni-bridge ckst1 >kubelet.log 2>&1 &
pids+=($!)
cat >rp.yaml <<EOY
apiVersion: v1
kind: Pod
metadata: {name: rp, namespace: default}
spec:
  nodeName: streams-bench
  containers:
  - {name: main, image: busybox, imagePullPolicy: Never, command: ["sh", "-c", "httpd -p 8080 -h /www; sleep 100000"]}
EOY
kc create --validate=false -f rp.yaml >/dev/null
for i in $(seq 100); do [ "$(kc get pod rp -o jsonpath='{.status.phase}')" = Running ] && break; sleep 0.3; done
ip=$(kc get pod rp -o jsonpath='{.status.podIP}')
id=$(runc --root "$tmp/kubelet/runtime" list -q | head -1)
sum=$(sha256sum blob | cut -d' ' -f1)

# Every path ends in the same sink (bench/streams_sink: a pipe read in 1 MiB reads), so direct
# and relayed copies pay the same last hop.  Per run it reports the wall rate (command start ->
# last byte, so it includes the client's own start: kubectl is a 60 MB Go binary that GETs the
# pod before it upgrades) and the stream rate (first byte -> last byte).
SINK=$B/bench/streams_sink
AP=$(pgrep -P "${pids[0]}" -f "ckube apiserver" | head -1)
KL=${pids[1]}
ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# one KEY CMD...: one run of CMD | sink; appends "wall stream first-byte cpu-client cpu-apiserver
# cpu-kubelet" (MiB/s, MiB/s, ms, CPU-s: user+sys of CMD (+ of XPID, kubectl port-forward), of
# the API server, of the kubelet incl. the runc it waited for) to res/KEY, or "0 0 0 0 0 0" for a
# short output.  Runs are interleaved (each round runs every path once), so a direct path and
# the relayed ones see the same moment's load; ratios are medians of per-round ratios.
R=${RUNS:-3}
mkdir -p res
one() {
    local key=$1; shift
    local x0=0 xc=0 a0 k0 t0 line c AP=${APS:-$AP} KL=${KLS:-$KL}
    [ -n "${XPID:-}" ] && x0=$(ticks "$XPID")
    a0=$(ticks "$AP"); k0=$(ticks "$KL"); t0=$(date +%s%N)
    line=$( { /usr/bin/time -f "%U %S" -o time.out "$@" | "$SINK" "$t0"; } 2>/dev/null)
    [ -n "${XPID:-}" ] && xc=$(( $(ticks "$XPID") - x0 ))
    c="$(awk -v x="$xc" '{printf "%.2f", $1 + $2 + x / 100}' time.out) $(echo "($(ticks "$AP") - $a0) / 100" | bc -l | xargs printf %.2f) $(echo "($(ticks "$KL") - $k0) / 100" | bc -l | xargs printf %.2f)"
    if [ "$(echo "$line" | sed -n 's/bytes=\([0-9]*\).*/\1/p')" != 104857600 ]; then
        echo "WARNING: $key: short output: $line"
        echo "0 0 0 0 0 0" >>"res/$key"
        return
    fi
    echo "$(echo "$line" | sed -n 's/.*total_mib_s=\([0-9]*\).*/\1/p') $(echo "$line" |
        sed -n 's/.*stream_mib_s=\([0-9]*\).*/\1/p') $(echo "$line" |
        sed -n 's/.*first_byte_ms=\([0-9.]*\).*/\1/p') $c" >>"res/$key"
}
# show KEY NAME: the best wall rate's line, with the best stream rate
show() {
    sort -k1,1n "res/$1" | tail -1 | awk -v n="$2" -v bs="$(sort -k2,2n "res/$1" | tail -1 | cut -d' ' -f2)" \
        '{printf "%-34s %6s %6s %8s   %s %s %s\n", n, $1, bs, $3, $4, $5, $6}'
}
# ratio A B COL: median over rounds of A's COL / B's COL (1 wall, 2 stream)
ratio() {
    paste -d' ' "res/$1" "res/$2" | awk -v c="$3" '$(c + 6) > 0 && $c > 0 {print $c / $(c + 6)}' |
        sort -n | awk '{a[NR] = $1} END {if (NR) printf "%.2f", (a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2; else print "-"}'
}
KVERS=${KUBECTL_VERSIONS:-"1.27 1.30 1.33"}
[ -n "${KUBECTL:-}" ] && KVERS=${KUBECTL##*kubectl.}
KD=$(dirname "$K0")
# the same exec without kubectl: bench/streams_client (websocket v5) through the API server
python3 -c "
import yaml, base64
u = yaml.safe_load(open('data/kubeconfig'))['users'][0]['user']
open('adm.crt','wb').write(base64.b64decode(u['client-certificate-data'])); open('adm.key','wb').write(base64.b64decode(u['client-key-data']))"
CL="$B/bench/streams_client 127.0.0.1 $api"
EX=/api/v1/namespaces/default/pods/rp/exec?container=main
declare -A pfport pfpid fpfport fpfpid
FL=${FLOOR:-1}
if [ "$FL" = 1 ]; then
    "$B/bench/streams_floor" data/pki/apiserver.crt data/pki/apiserver.key floor.port >floor.log 2>&1 &
    FLPID=$!
    pids+=($!)
    for i in $(seq 50); do [ -s floor.port ] && break; sleep 0.1; done
    sed "s#^\( *server: \).*#\1https://127.0.0.1:$(cat floor.port)#" data/kubeconfig >floor.kubeconfig
    grep -q "server: https://127.0.0.1:$(cat floor.port)\$" floor.kubeconfig || { echo "floor kubeconfig not made"; exit 1; }
    for v in $KVERS; do
        fpfport[$v]=$(free_port)
        "$KD/kubectl.$v" --kubeconfig floor.kubeconfig port-forward pod/rp "${fpfport[$v]}:8080" >"fpf$v.log" 2>&1 &
        fpfpid[$v]=$!
        pids+=($!)
        for i in $(seq 50); do grep -qs Forwarding "fpf$v.log" && break; sleep 0.1; done
    done
fi
for v in $KVERS; do
    pfport[$v]=$(free_port)
    "$KD/kubectl.$v" --kubeconfig "$tmp/data/kubeconfig" port-forward pod/rp "${pfport[$v]}:8080" >"pf$v.log" 2>&1 &
    pfpid[$v]=$!
    pids+=($!)
    for i in $(seq 50); do grep -qs Forwarding "pf$v.log" && break; sleep 0.1; done
done
# PROF_HOOK: shell code run here, after the setup (variables: tmp, id (the container), AP (API
# server pid), KL (kubelet pid), KD (kubectl dir), CL/EX (our client and its exec path), B), e.g.
# a `perf record -a -g` around a few execs; RUNS=0 then skips the rounds and the latency part.
[ -n "${PROF_HOOK:-}" ] && eval "$PROF_HOOK"
[ "$R" = 0 ] && exit 0
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$R"); do
    one local cat blob
    one runc runc --root "$tmp/kubelet/runtime" exec "$id" cat /www/blob
    for v in $KVERS; do
        one "exec$v" "$KD/kubectl.$v" --kubeconfig "$tmp/data/kubeconfig" exec rp -- cat /www/blob
        [ "$FL" = 1 ] && APS=$FLPID KLS=0 one "floor$v" "$KD/kubectl.$v" --kubeconfig floor.kubeconfig exec rp -- cat /www/blob
    done
    $CL "$EX&command=cat&command=/www/blob&stdout=true" adm.crt adm.key |
        sed -n 's/.*mib_s=\([0-9]*\).*/\1 0 0 0 0 0/p' >>res/client
    one pod curl -s "http://$ip:8080/blob"
    for v in $KVERS; do
        XPID=${pfpid[$v]} one "pf$v" curl -s "http://127.0.0.1:${pfport[$v]}/blob"
        [ "$FL" = 1 ] && XPID=${fpfpid[$v]} APS=$FLPID KLS=0 one "fpf$v" curl -s "http://127.0.0.1:${fpfport[$v]}/blob"
    done
done
echo "# 100 MiB from the pod to the client; $R interleaved rounds, best of them; load: $load0 -> $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# path                              wall stream first-byte  CPU-s: client apiserver kubelet"
echo "#                                  MiB/s  MiB/s       ms"
show local "local cat blob"
show runc "runc exec cat (node, direct)"
for v in $KVERS; do show "exec$v" "kubectl $v exec cat"; done
if [ "$FL" = 1 ]; then for v in $KVERS; do show "floor$v" "kubectl $v exec, floor server"; done; fi
show pod "curl pod IP (direct)"
for v in $KVERS; do show "pf$v" "curl via kubectl $v port-forward"; done
if [ "$FL" = 1 ]; then for v in $KVERS; do show "fpf$v" "kubectl $v port-forward, floor"; done; fi
echo "# (port-forward's client CPU: curl + the kubectl port-forward process; floor rows: the"
echo "#  apiserver column is the floor server's CPU, the kubelet column 0)"
echo "# ratios to the direct path, median of per-round ratios (wall / stream); target >= 0.5"
for v in $KVERS; do
    echo "kubectl $v exec cat:        $(ratio "exec$v" runc 1) / $(ratio "exec$v" runc 2) of runc exec cat"
done
echo "exec cat, our client (no kubectl): $(sort -n res/client | tail -1 | cut -d' ' -f1) MiB/s best, $(ratio client runc 1) of runc exec cat (wall)"
for v in $KVERS; do
    echo "kubectl $v port-forward:    $(ratio "pf$v" pod 1) / $(ratio "pf$v" pod 2) of curl to the pod IP"
done
if [ "$FL" = 1 ]; then
    echo "# kubectl's ceiling: the same commands against bench/streams_floor (wall / stream)"
    for v in $KVERS; do
        echo "kubectl $v exec, floor:      $(ratio "floor$v" runc 1) / $(ratio "floor$v" runc 2) of runc exec cat;  ckube = $(ratio "exec$v" "floor$v" 1) / $(ratio "exec$v" "floor$v" 2) of the floor"
    done
    for v in $KVERS; do
        echo "kubectl $v port-fwd, floor:  $(ratio "fpf$v" pod 1) / $(ratio "fpf$v" pod 2) of curl to the pod IP;  ckube = $(ratio "pf$v" "fpf$v" 1) / $(ratio "pf$v" "fpf$v" 2) of the floor"
    done
    for v in $KVERS; do kill "${fpfpid[$v]}" 2>/dev/null; wait "${fpfpid[$v]}" 2>/dev/null; done
fi
for v in $KVERS; do kill "${pfpid[$v]}" 2>/dev/null; wait "${pfpid[$v]}" 2>/dev/null; done
# the bytes are the pod's (one untimed run each, to files)
kc exec rp -- cat /www/blob >out.bin
[ "$(sha256sum out.bin | cut -d' ' -f1)" = "$sum" ] || echo "WARNING: exec output differs"
lp=$(free_port)
kc port-forward pod/rp "$lp:8080" >pf.log 2>&1 &
pf=$!
for i in $(seq 50); do grep -q Forwarding pf.log && break; sleep 0.1; done
curl -s -o pf.bin "http://127.0.0.1:$lp/blob"
kill $pf; wait $pf 2>/dev/null
[ "$(sha256sum pf.bin | cut -d' ' -f1)" = "$sum" ] || echo "WARNING: port-forward output differs"
rm -f out.bin pf.bin

echo "# exec start latency over $N runs (kubectl $(basename "$K0")), ms"
: >lat
for i in $(seq "$N"); do
    t0=$(now); kc exec rp -- echo x >/dev/null; t1=$(now)
    python3 -c "import sys; print('%.1f' % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$t0" "$t1" >>lat
done
for i in $(seq "$N"); do
    $CL "$EX&command=echo&command=x&stdout=true" adm.crt adm.key | sed -n 's/first_byte_ms=\([0-9.]*\).*/\1/p'
done >cl
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int(NR*p/100+0.5); if (i<1) i=1; print a[i]}'; }
grep -o 'first output [0-9.]* ms' kubelet.log | awk '{print $3}' | tail -n "$N" >srv
echo "kubectl exec echo, wall (incl. kubectl start): p50 $(pct lat 50)  p90 $(pct lat 90)"
echo "kubelet: request -> first output byte:        p50 $(pct srv 50)  p90 $(pct srv 90)"
echo "API server + kubelet (our client: connect -> first byte): p50 $(pct cl 50)  p90 $(pct cl 90)"

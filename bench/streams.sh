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
#        Session 10 (docs/streams.md, "Is the floor a ceiling?"), all unset by default:
#        PATHS="runc floor": only these paths in the rounds (words: local runc exec floor client
#          pod pf fpf latency; default all); FLOOR_VARIANTS="name=ENV=v ENV2=v;name2=...": one
#          more streams_floor per variant, with those FLOOR_* knobs, its exec rows "floor-NAME"
#          run next to the default floor's in every round (order reversed every other round);
#          FLOOR_CLIENTS="name=PREFIX;...": kubectl against the default floor run under PREFIX
#          (e.g. "gmp1=env GOMAXPROCS=1;ts1=taskset 0x1"), rows "fcl-NAME", for the record;
#          SINK_FILE=1: runc, kubectl through ckube and each floor's kubectl also write to a file on tmpfs (/dev/shm),
#          wall only, rows "*-file"; RES_KEEP=DIR: the per-round results copied there.  With
#          any of these set, a table of medians (wall, stream, kubectl CPU-s, voluntary /
#          involuntary context switches) follows the usual output.
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
    [ -n "${shm:-}" ] && rm -rf "$shm"
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
PATHS=${PATHS:-"local runc exec floor client pod pf fpf latency"}
want() { case " $PATHS " in *" $1 "*) return 0 ;; esac; return 1; }
shm=
[ "${SINK_FILE:-0}" = 1 ] && shm=$(mktemp -d /dev/shm/ckube-bench-file.XXXXXX)
# onefile KEY CMD...: CMD > a tmpfs file, wall only: "wall 0 0 cpu-client 0 0" to res/KEY
onefile() {
    local key=$1; shift
    local t0 t1 sz
    t0=$(date +%s%N)
    /usr/bin/time -f "%U %S %w %c" -o time.out "$@" >"$shm/out" 2>/dev/null
    t1=$(date +%s%N)
    sz=$(stat -c %s "$shm/out"); rm -f "$shm/out"
    if [ "$sz" != 104857600 ]; then echo "WARNING: $key: short output: $sz"; echo "0 0 0 0 0 0" >>"res/$key"; return; fi
    awk -v t="$((t1 - t0))" '{printf "%.0f 0 0 %.2f 0 0\n", 104857600 / 1048576 / (t / 1e9), $1 + $2}' time.out >>"res/$key"
    awk '{print $3, $4}' time.out >>"res/$key.cs"
}
one() {
    local key=$1; shift
    local x0=0 xc=0 a0 k0 t0 line c AP=${APS:-$AP} KL=${KLS:-$KL}
    [ -n "${XPID:-}" ] && x0=$(ticks "$XPID")
    a0=$(ticks "$AP"); k0=$(ticks "$KL"); t0=$(date +%s%N)
    line=$( { /usr/bin/time -f "%U %S %w %c" -o time.out "$@" | "$SINK" "$t0"; } 2>/dev/null)
    awk '{print $3, $4}' time.out >>"res/$key.cs"
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
    [ -s "res/$1" ] || return 0
    sort -k1,1n "res/$1" | tail -1 | awk -v n="$2" -v bs="$(sort -k2,2n "res/$1" | tail -1 | cut -d' ' -f2)" \
        '{printf "%-34s %6s %6s %8s   %s %s %s\n", n, $1, bs, $3, $4, $5, $6}'
}
# ratio A B COL: median over rounds of A's COL / B's COL (1 wall, 2 stream)
ratio() {
    [ -s "res/$1" ] && [ -s "res/$2" ] || { printf -- -; return; }
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
# floor variants (FLOOR_VARIANTS) and client wrappers (FLOOR_CLIENTS): "name=rest;..."
declare -A fvenv fvpid fcl
fvnames=() fclnames=()
IFS=';' read -r -a _fv <<<"${FLOOR_VARIANTS:-}"
for x in "${_fv[@]}"; do [ -n "$x" ] && { fvnames+=("${x%%=*}"); fvenv[${x%%=*}]=${x#*=}; }; done
IFS=';' read -r -a _fc <<<"${FLOOR_CLIENTS:-}"
for x in "${_fc[@]}"; do [ -n "$x" ] && { fclnames+=("${x%%=*}"); fcl[${x%%=*}]=${x#*=}; }; done
# start_floor NAME ENV...: a streams_floor with those knobs and its kubeconfig NAME.kubeconfig
start_floor() {
    local n=$1; shift
    env "$@" "$B/bench/streams_floor" data/pki/apiserver.crt data/pki/apiserver.key "$n.port" >"$n.log" 2>&1 &
    pids+=($!)
    FLPID_LAST=$!
    for i in $(seq 50); do [ -s "$n.port" ] && break; sleep 0.1; done
    sed "s#^\( *server: \).*#\1https://127.0.0.1:$(cat "$n.port")#" data/kubeconfig >"$n.kubeconfig"
    grep -q "server: https://127.0.0.1:$(cat "$n.port")\$" "$n.kubeconfig" || { echo "floor kubeconfig not made"; exit 1; }
}
if [ "$FL" = 1 ]; then
    start_floor floor
    FLPID=$FLPID_LAST
    for n in "${fvnames[@]}"; do
        # shellcheck disable=SC2086
        start_floor "fv-$n" ${fvenv[$n]}
        fvpid[$n]=$FLPID_LAST
    done
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
# the floor rows of one round: the default floor and each variant, in list order on odd rounds
# and reversed on even ones, so no variant always runs first; then the client wrappers
floor_round() {
    local v=$1 r=$2 order=(- "${fvnames[@]}") n i
    if [ $((r % 2)) = 0 ]; then
        order=(); for ((i = ${#fvnames[@]} - 1; i >= 0; i--)); do order+=("${fvnames[$i]}"); done; order+=(-)
    fi
    for n in "${order[@]}"; do
        if [ "$n" = - ]; then
            APS=$FLPID KLS=0 one "floor$v" "$KD/kubectl.$v" --kubeconfig floor.kubeconfig exec rp -- cat /www/blob
        else
            APS=${fvpid[$n]} KLS=0 one "floor-$n$v" "$KD/kubectl.$v" --kubeconfig "fv-$n.kubeconfig" exec rp -- cat /www/blob
        fi
    done
    for n in "${fclnames[@]}"; do
        # shellcheck disable=SC2086
        APS=$FLPID KLS=0 one "fcl-$n$v" ${fcl[$n]} "$KD/kubectl.$v" --kubeconfig floor.kubeconfig exec rp -- cat /www/blob
    done
    if [ -n "$shm" ]; then
        onefile "floor$v-file" "$KD/kubectl.$v" --kubeconfig floor.kubeconfig exec rp -- cat /www/blob
        for n in "${fvnames[@]}"; do
            onefile "floor-$n$v-file" "$KD/kubectl.$v" --kubeconfig "fv-$n.kubeconfig" exec rp -- cat /www/blob
        done
    fi
}
for r in $(seq "$R"); do
    want local && one local cat blob
    want runc && one runc runc --root "$tmp/kubelet/runtime" exec "$id" cat /www/blob
    [ -n "$shm" ] && onefile runc-file runc --root "$tmp/kubelet/runtime" exec "$id" cat /www/blob
    for v in $KVERS; do
        want exec && one "exec$v" "$KD/kubectl.$v" --kubeconfig "$tmp/data/kubeconfig" exec rp -- cat /www/blob
        [ -n "$shm" ] && want exec && onefile "exec$v-file" "$KD/kubectl.$v" --kubeconfig "$tmp/data/kubeconfig" exec rp -- cat /www/blob
        [ "$FL" = 1 ] && want floor && floor_round "$v" "$r"
    done
    want client && $CL "$EX&command=cat&command=/www/blob&stdout=true" adm.crt adm.key |
        sed -n 's/.*mib_s=\([0-9]*\).*/\1 0 0 0 0 0/p' >>res/client
    want pod && one pod curl -s "http://$ip:8080/blob"
    for v in $KVERS; do
        want pf && XPID=${pfpid[$v]} one "pf$v" curl -s "http://127.0.0.1:${pfport[$v]}/blob"
        [ "$FL" = 1 ] && want fpf && XPID=${fpfpid[$v]} APS=$FLPID KLS=0 one "fpf$v" curl -s "http://127.0.0.1:${fpfport[$v]}/blob"
    done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# 100 MiB from the pod to the client; $R interleaved rounds, best of them; load: $load0 -> $load1"
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
want client && echo "exec cat, our client (no kubectl): $(sort -n res/client | tail -1 | cut -d' ' -f1) MiB/s best, $(ratio client runc 1) of runc exec cat (wall)"
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
# session 10's table of medians (only with its knobs set)
med() { sort -n | awk '{a[NR] = $1} END {if (NR) printf "%s", (a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2; else printf "-"}'; }
if [ -n "${FLOOR_VARIANTS:-}${FLOOR_CLIENTS:-}${SINK_FILE:-}${RES_KEEP:-}" ] || [ "$PATHS" != "local runc exec floor client pod pf fpf latency" ]; then
    echo "# medians over $R rounds: wall stream MiB/s, first byte ms, client CPU-s, server CPU-s, client context switches vol/invol; ratio to runc (wall/stream; *-file rows: to runc-file, wall); to the default floor of the same version"
    for f in res/*; do
        k=${f#res/}
        case $k in *.cs) continue ;; esac
        ref=runc; case $k in *-file) ref=runc-file ;; esac
        fl=-
        case $k in floor-*[0-9]|fcl-*[0-9]) for v in $KVERS; do
            case $k in *"$v") fl="$(ratio "$k" "floor$v" 1) / $(ratio "$k" "floor$v" 2)" ;; esac
        done ;; esac
        printf "%-22s %5s %5s %6s %5s %5s %6s %5s   %s / %s   %s\n" "$k" \
            "$(cut -d' ' -f1 "$f" | med)" "$(cut -d' ' -f2 "$f" | med)" "$(cut -d' ' -f3 "$f" | med)" \
            "$(cut -d' ' -f4 "$f" | med)" "$(cut -d' ' -f5 "$f" | med)" \
            "$( [ -s "$f.cs" ] && cut -d' ' -f1 "$f.cs" | med)" "$( [ -s "$f.cs" ] && cut -d' ' -f2 "$f.cs" | med)" \
            "$(ratio "$k" "$ref" 1)" "$(ratio "$k" "$ref" 2)" "$fl"
    done
    [ -n "${RES_KEEP:-}" ] && mkdir -p "$RES_KEEP" && cp res/* "$RES_KEEP/"
fi
for v in $KVERS; do kill "${pfpid[$v]}" 2>/dev/null; wait "${pfpid[$v]}" 2>/dev/null; done
want latency || exit 0
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

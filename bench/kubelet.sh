#!/bin/bash
# bench/kubelet.sh [BUILD] - 100 pods created at once on one node with a present image (as root):
# create -> Running latency p50/p99/max (from each create call's return to the watch event that
# shows phase Running), throughput (pods Running per second over the burst), the kubelet's RSS
# with the pods running, and the time to delete them all.  N=100 by default.  Uses `ckube
# server` (its kubelet) and python3-kubernetes for the client side.  Cleans up everything.
# PERF=FILE records the server's whole process tree (kubelet, shims, runc, CNI plugins, API
# server) with `perf record -g` into FILE; CPU per process tree is printed either way.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CK=$ROOT/$BUILD/ckube
N=${N:-100}
[ "$(id -u)" = 0 ] || { echo "kubelet bench: needs root"; exit 2; }
ip link show ckube0 >/dev/null 2>&1 && { echo "kubelet bench: bridge ckube0 in use"; exit 2; }
T=$(mktemp -d /tmp/ckube-bench-kubelet.XXXXXX)
data=$T/data
spid=
CG=
KUBECTL=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
kc() { "$KUBECTL" --kubeconfig "$data/kubeconfig" --request-timeout=30s "$@"; }
cleanup() {
    if [ -n "$spid" ]; then
        kc delete pods --all --grace-period=1 --wait=true --timeout=60s >/dev/null 2>&1
        kill -TERM "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
    fi
    pkill -9 -f -- "--data-dir[= ]$T/" 2>/dev/null
    local rt=$data/kubelet/runtime
    for id in $(runc --root "$rt" list -q 2>/dev/null); do
        runc --root "$rt" delete --force "$id" 2>/dev/null
    done
    grep " $data/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
    ip link del ckube0 2>/dev/null
    for c in /sys/fs/cgroup/*/ckube/pod* /sys/fs/cgroup/*/ckube/kubepods/pod* /sys/fs/cgroup/*/ckube/kubepods/*/pod*; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    [ -n "${KEEP_LOG:-}" ] && cp "$T/server.log" "$KEEP_LOG"
    rm -rf "$T"
    if [ -n "$CG" ]; then  # shims of deleted containers leave it within a few seconds
        for _ in $(seq 20); do rmdir "$CG" 2>/dev/null && break; sleep 0.5; done
    fi
}
trap cleanup EXIT
(
    set -e
    cd "$T"
    umoci init --layout img >/dev/null
    umoci new --image img:t >/dev/null
    umoci unpack --image img:t bundle >/dev/null 2>&1
    mkdir -p bundle/rootfs/bin
    cp "$(command -v busybox)" bundle/rootfs/bin/busybox
    for c in sh sleep; do ln -sf busybox "bundle/rootfs/bin/$c"; done
    umoci repack --image img:t bundle >/dev/null
) || { echo "kubelet bench: image build failed"; exit 1; }
"$CK" images import --root-dir "$data/kubelet" --name ckube.test/bench:1 "$T/img" >/dev/null || exit 1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# the server tree runs in its own cpuacct cgroup: its CPU per pod start is the figure that does
# not depend on how loaded the machine is (containers' own cgroups are under /ckube)
CG=/sys/fs/cgroup/cpuacct/ckbench.$$
mkdir -p "$CG" 2>/dev/null || CG=
incg() { [ -n "$CG" ] && echo "$BASHPID" >"$CG/cgroup.procs"; exec "$@"; }
# no service proxy: it would program the host's own iptables (and, as upstream's, leave its
# rules behind when stopped); pod starts do not need it
if [ -n "${PERF:-}" ]; then
    (incg perf record -q -g -o "$PERF" -- "$CK" server --data-dir "$data" --secure-port "$port" \
        --bind-address 127.0.0.1 --disable-kube-proxy) >"$T/server.log" 2>&1 &
else
    (incg "$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 \
        --disable-kube-proxy) >"$T/server.log" 2>&1 &
fi
spid=$!
node=$(hostname | tr 'A-Z' 'a-z')
for _ in $(seq 150); do
    [ "$(kc get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && break
    sleep 0.2
done
kpid=$(pgrep -f -- "kubelet --kubeconfig=$data/" | head -n 1)
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/"$kpid"/status)
cpu_ns() { cat "$CG/cpuacct.usage" /sys/fs/cgroup/cpuacct/ckube/cpuacct.usage 2>/dev/null | python3 -c 'import sys; print(sum(int(x) for x in sys.stdin.read().split()))'; }
cpu0=$(cpu_ns)
KUBECTL=$KUBECTL KUBECONFIG=$data/kubeconfig NODE=$node N=$N /usr/bin/python3 - <<'EOF'
import os, subprocess, threading, time
from kubernetes import client, config
config.load_kube_config(os.environ["KUBECONFIG"])
v1 = client.CoreV1Api()
n, node = int(os.environ["N"]), os.environ["NODE"]
created, running = {}, {}
done = threading.Event()
def watcher():
    # kubectl's watch, each line stamped on arrival
    cmd = [os.environ["KUBECTL"], "--kubeconfig", os.environ["KUBECONFIG"], "get", "pods", "-w",
           "-o", "jsonpath={.metadata.name} {.status.phase}{\"\\n\"}"]
    pr = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for line in pr.stdout:
        now = time.monotonic()
        parts = line.split()
        if len(parts) == 2 and parts[1] == "Running" and parts[0] not in running:
            running[parts[0]] = now
            if len(running) >= n:
                break
    pr.kill()
    pr.wait()
    done.set()
t = threading.Thread(target=watcher, daemon=True)
t.start()
time.sleep(0.5)
start = time.monotonic()
def make(i):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"b-{i}"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "ckube.test/bench:1",
                                     "command": ["sleep", "3600"]}]}}
    v1.create_namespaced_pod("default", body)
    created[f"b-{i}"] = time.monotonic()
threads = [threading.Thread(target=lambda k=k: [make(i) for i in range(k, n, 8)]) for k in range(8)]
for th in threads: th.start()
for th in threads: th.join()
done.wait(120)
lat = sorted((running[k] - created[k]) * 1000 for k in created if k in running)
if len(lat) < n:
    print(f"kubelet bench: only {len(lat)}/{n} pods Running within 120 s")
if lat:
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    span = max(running.values()) - start
    print(f"pods={n} create->Running p50={p(0.50):.0f}ms p99={p(0.99):.0f}ms max={lat[-1]:.0f}ms "
          f"all-running={span:.2f}s throughput={len(lat)/span:.1f} pods/s")
EOF
[ -n "$CG" ] && echo "ckube CPU (server tree + pod cgroups) from the burst's start to all Running: $(( ($(cpu_ns) - cpu0) / 1000000 / N )) ms/pod"
# the kubelet's own share: a worker first syncs the pod -> its container started (the log line)
grep -o 'pod default/b-[0-9]*: started container c (attempt 0, pid [0-9]*) [0-9]* ms after' "$T/server.log" |
    awk '{print $(NF-2)}' | python3 -c '
import sys
v = sorted(int(x) for x in sys.stdin)
if v:
    p = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    print(f"kubelet first sync->started p50={p(0.5)}ms p99={p(0.99)}ms max={v[-1]}ms")' 
rss=$(awk '/VmRSS/ {print $2}' /proc/"$kpid"/status)
# a shim: forked by the launcher (the kubelet's child), so any match whose parent is not the kubelet
shims=$(for p in $(pgrep -f -- "kubelet-shim .*$data/"); do
    [ "$(awk '{print $4}' /proc/"$p"/stat 2>/dev/null)" != "$kpid" ] && echo "$p"; done | head -n 1)
shim_rss=$( [ -n "$shims" ] && awk '/VmRSS/ {print $2}' /proc/"$shims"/status)
echo "kubelet RSS idle=$((rss_idle / 1024))MB with-$N-pods=$((rss / 1024))MB (one shim: ${shim_rss:-?}kB)"
# deletes: all N at once from 8 client threads (kubectl delete --all issues them one by one and
# its client-side rate limit, not the kubelet, then sets the pace)
KUBECONFIG=$data/kubeconfig /usr/bin/python3 - <<'EOF' || echo "kubelet bench: the delete run failed"
import os, threading, time
from kubernetes import client, config
config.load_kube_config(os.environ["KUBECONFIG"])
v1 = client.CoreV1Api()
names = [p.metadata.name for p in v1.list_namespaced_pod("default").items]
gone, issued = {}, {}
start = time.monotonic()
def rm(k):
    for name in names[k::8]:
        v1.delete_namespaced_pod(name, "default", grace_period_seconds=1)
        issued[name] = time.monotonic()
ths = [threading.Thread(target=rm, args=(k,)) for k in range(8)]
for th in ths: th.start()
# gone = no longer listed (polled every 50 ms)
while len(gone) < len(names) and time.monotonic() - start < 120:
    left = {p.metadata.name for p in v1.list_namespaced_pod("default").items}
    now = time.monotonic()
    for name in names:
        if name not in left and name not in gone and name in issued:
            gone[name] = now
    time.sleep(0.05)
for th in ths: th.join()
lat = sorted((gone[k] - issued[k]) * 1000 for k in issued if k in gone)
if lat:
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"delete {len(names)} pods at once (grace 1 s, pid 1 ignores SIGTERM): delete->gone "
          f"p50={p(0.5):.0f}ms p99={p(0.99):.0f}ms, all gone {max(gone.values()) - start:.2f}s after the first delete"
          + ("" if len(lat) == len(names) else f" (only {len(lat)} gone)"))
EOF

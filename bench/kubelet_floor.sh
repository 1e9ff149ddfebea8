#!/bin/bash
# bench/kubelet_floor.sh [BUILD] - the floor under bench/kubelet.sh (as root): N pods started
# with no ckube at all by build/bench/kubelet_floor (netns + CNI bridge/host-local ADD + overlay
# + `runc run --detach`, P threads), also split into CNI-only and runc-only runs.  N=100,
# P="2 4 8" by default; MODES="all" skips the CNI-only and runc-only runs.  Uses bridge ckfloor0 (10.244.200.0/24) and cgroups /ckfloor/*; removes
# everything it made.  Run it under `flock /tmp/ckube-host.lock` like the other kubelet benches.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FLOOR=$ROOT/$BUILD/bench/kubelet_floor
N=${N:-100}
P=${P:-"2 4 8"}
[ "$(id -u)" = 0 ] || { echo "kubelet floor: needs root"; exit 2; }
ip link show ckfloor0 >/dev/null 2>&1 && { echo "kubelet floor: bridge ckfloor0 in use"; exit 2; }
T=$(mktemp -d /tmp/ckube-floor.XXXXXX)
cleanup() {
    for id in $(runc --root "$T/w/runc" list -q 2>/dev/null); do
        runc --root "$T/w/runc" delete --force "$id" >/dev/null 2>&1
    done
    grep " $T/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
    ip link del ckfloor0 2>/dev/null
    for c in /sys/fs/cgroup/*/ckfloor; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
(
    set -e
    cd "$T"
    umoci init --layout img >/dev/null
    umoci new --image img:t >/dev/null
    umoci unpack --image img:t tmpl >/dev/null 2>&1
    mkdir -p tmpl/rootfs/bin
    cp "$(command -v busybox)" tmpl/rootfs/bin/busybox
    ln -sf busybox tmpl/rootfs/bin/sleep
    python3 - tmpl/config.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "3600"]
json.dump(c, open(sys.argv[1], "w"))
PY
) || { echo "kubelet floor: template build failed"; exit 1; }
uptime
for mode in ${MODES:-all cni runc}; do
    for p in $P; do
        [ "$mode" != all ] && [ "$p" != "${P##* }" ] && continue
        rm -rf "$T/w"; mkdir -p "$T/w"
        "$FLOOR" "$N" "$p" "$mode" "$T/tmpl" "$T/w" /usr/lib/cni
        ip link del ckfloor0 2>/dev/null
        for c in /sys/fs/cgroup/*/ckfloor; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
    done
done
uptime

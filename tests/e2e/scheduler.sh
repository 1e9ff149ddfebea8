#!/bin/bash
# tests/e2e/scheduler.sh - `ckube scheduler` end to end: a real cluster (`ckube server`, which runs
# the scheduler as a supervised component) with hollow nodes, driven by the real kubectl.
# Requests respected, unschedulable -> FailedScheduling text in `kubectl describe pod`, a pod
# scheduled once a node is added, taints, pod affinity and anti-affinity, topology spread,
# preemption (nominatedNodeName, a lingering victim, PodDisruptionBudgets), schedulerName
# filtering, and leader failover between two extra replicas.
# Loopback only; everything it starts is stopped by the trap.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) CK=$BUILD/ckube ;; *) CK=$ROOT/$BUILD/ckube ;; esac
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
tmp=$(mktemp -d /tmp/ckube-e2e-scheduler.XXXXXX)
data=$tmp/data
pids=()
spid=
fails=0

cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 50); do
        alive=
        for p in "${pids[@]}" $spid; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.2
    done
    for p in "${pids[@]}" $spid; do kill -KILL "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && cp -r "$tmp" /tmp/sched-e2e-keep; rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; fails=$((fails + 1)); }
kc() { "$KUBECTL" --kubeconfig "$data/kubeconfig" --request-timeout=10s "$@"; }

# wait_for SECONDS CMD...: retry CMD every 0.2s until it succeeds or time runs out.
# The deadlines are for a quiet machine; a loaded one (CI on 2 cores, the sanitizer build) gets
# E2E_WAIT_SCALE (default 3) times as long.  A passing check returns as soon as it holds.
wait_for() {
    local end=$((SECONDS + $1 * ${E2E_WAIT_SCALE:-3})); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }

node_of() { kc get pod "$1" -o jsonpath='{.spec.nodeName}' 2>/dev/null; }
bound() { [ -n "$(node_of "$1")" ]; }
on_node() { [ "$(node_of "$1")" = "$2" ]; }
same_node() { [ -n "$(node_of "$1")" ] && [ "$(node_of "$1")" = "$(node_of "$2")" ]; }
all_bound() { for p in "$@"; do bound "$p" || return 1; done; }
described() { kc describe pod "$1" 2>/dev/null | grep -qF -- "$2"; }
hollow() { "$CK" hollow-node --kubeconfig "$data/kubeconfig" "$@" >>"$tmp/hollow.log" 2>&1 & pids+=($!); }
nodes_ready() { [ "$(kc get nodes --no-headers 2>/dev/null | grep -c " Ready ")" -ge "$1" ]; }

# pod NAME REQUEST_CPU [extra spec yaml lines...]
pod() {
    local name=$1 cpu=$2; shift 2
    {
        printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels: {%s}\nspec:\n' "$name" "${LABELS:-}"
        for line in "$@"; do printf '  %s\n' "$line"; done
        printf '  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: "%s"}}\n' "$cpu"
    } | kc apply -f - >/dev/null
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 --disable-agent \
    >"$tmp/server.log" 2>&1 &
spid=$!
if ! wait_for 30 test -f "$data/kubeconfig" || ! wait_for 30 kc get --raw /readyz; then
    notok "cluster starts"; tail -n 20 "$tmp/server.log"; exit 1
fi
ok "cluster starts"
check "scheduler runs under ckube server" wait_for 20 grep -q "scheduling as" "$tmp/server.log"

# ---- requests respected; unschedulable -> event; node added -> scheduled ----
hollow --count 2 --name-prefix small- --cpu 2 --memory 4Gi
check "two hollow nodes Ready" wait_for 30 nodes_ready 2
for i in 1 2 3 4; do pod "r$i" 1; done
check "four 1-cpu pods bound to two 2-cpu nodes" wait_for 20 all_bound r1 r2 r3 r4
per_node=$(for i in 1 2 3 4; do node_of "r$i"; echo; done | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
check "two pods per node (requests respected: got $per_node)" test "$per_node" = "2 2 "
pod r5 1
check "fifth pod: FailedScheduling with upstream's message in kubectl describe" \
    wait_for 20 described r5 "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
sched_reason() { [ "$(kc get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="PodScheduled")].reason}')" = "$2" ]; }
check "fifth pod: PodScheduled=False Unschedulable" wait_for 10 sched_reason r5 Unschedulable
hollow --count 1 --name-prefix extra- --cpu 2 --memory 4Gi
check "fifth pod scheduled once a node is added" wait_for 20 on_node r5 extra-0
kc delete pod r1 r2 r3 r4 r5 --wait=true --timeout=30s >/dev/null 2>&1

# ---- taints ----
kc taint node small-0 dedicated=gpu:NoSchedule >/dev/null
pod t1 100m "nodeSelector: {kubernetes.io/hostname: small-0}"
check "untolerated taint reported" wait_for 20 described t1 "node(s) had untolerated taint {dedicated: gpu}"
pod t2 100m "nodeSelector: {kubernetes.io/hostname: small-0}" \
    "tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]"
check "tolerating pod lands on the tainted node" wait_for 20 on_node t2 small-0
for i in 1 2 3 4 5 6; do pod "t-any$i" 10m; done
check "other pods avoid the tainted node" wait_for 20 all_bound t-any1 t-any2 t-any3 t-any4 t-any5 t-any6
on_tainted=$(for i in 1 2 3 4 5 6; do node_of "t-any$i"; echo; done | grep -c '^small-0$')
check "no untolerating pod on the tainted node (got $on_tainted)" test "$on_tainted" = 0
kc taint node small-0 dedicated- >/dev/null
check "t1 scheduled after the taint is removed" wait_for 20 on_node t1 small-0
kc delete pod --all --wait=true --timeout=30s >/dev/null 2>&1

# ---- pod affinity and anti-affinity ----
LABELS="app: db" pod db 10m
wait_for 20 bound db
LABELS="app: api" pod api 10m "affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{labelSelector: {matchLabels: {app: db}}, topologyKey: kubernetes.io/hostname}]}}"
check "pod affinity: api placed with db" wait_for 20 same_node api db
anti="affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname}]}}"
for i in 1 2 3; do LABELS="app: web" pod "web$i" 10m "$anti"; done
check "anti-affinity: three web pods bound" wait_for 20 all_bound web1 web2 web3
distinct=$(for i in 1 2 3; do node_of "web$i"; echo; done | sort -u | wc -l)
check "anti-affinity: on three different nodes (got $distinct)" test "$distinct" = 3
LABELS="app: web" pod web4 10m "$anti"
check "anti-affinity: a fourth is unschedulable with the reason" \
    wait_for 20 described web4 "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
kc delete pod --all --wait=true --timeout=30s >/dev/null 2>&1

# ---- topology spread ----
kc label node small-0 small-1 zone=a --overwrite >/dev/null
kc label node extra-0 zone=b --overwrite >/dev/null
spread="topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: s}}}]"
for i in 1 2 3 4; do LABELS="app: s" pod "s$i" 10m "$spread"; sleep 0.3; done
check "spread: four pods bound" wait_for 20 all_bound s1 s2 s3 s4
zb=$(for i in 1 2 3 4; do node_of "s$i"; echo; done | grep -c '^extra-0$')
check "spread: zone b (one node) holds half of them (got $zb of 4)" test "$zb" = 2
kc delete pod --all --wait=true --timeout=30s >/dev/null 2>&1

# ---- preemption ----
kc apply -f - >/dev/null <<'EOF'
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: e2e-high}
value: 100000
EOF
pod low 2 "nodeSelector: {kubernetes.io/hostname: extra-0}"
wait_for 20 bound low
pod vip 2 "nodeSelector: {kubernetes.io/hostname: extra-0}" "priorityClassName: e2e-high"
check "preemption: high-priority pod bound where the low one ran" wait_for 30 on_node vip extra-0
check "preemption: the low-priority pod was deleted" wait_for 20 bash -c \
    "! '$KUBECTL' --kubeconfig '$data/kubeconfig' get pod low >/dev/null 2>&1"
check "preemption: Preempted event" wait_for 10 bash -c \
    "'$KUBECTL' --kubeconfig '$data/kubeconfig' get events --field-selector reason=Preempted | grep -q 'Preempted by pod'"
nominated() { [ "$(kc get pod "$1" -o jsonpath='{.status.nominatedNodeName}')" = "$2" ]; }
check "preemption: status.nominatedNodeName set on the preemptor" wait_for 10 nominated vip extra-0
kc delete pod --all --wait=true --timeout=30s >/dev/null 2>&1

# a victim that lingers (a finalizer holds it): the preemptor waits, nominated; a lower-priority
# pod that arrives meanwhile does not get the room when it frees up
kc apply -f - >/dev/null <<'EOF2'
apiVersion: v1
kind: Pod
metadata: {name: slow, finalizers: [e2e.ckube.io/hold]}
spec:
  nodeSelector: {kubernetes.io/hostname: extra-0}
  containers: [{name: c, image: busybox, resources: {requests: {cpu: "2"}}}]
EOF2
wait_for 20 bound slow
pod vip2 2 "nodeSelector: {kubernetes.io/hostname: extra-0}" "priorityClassName: e2e-high"
check "lingering victim: preemptor pending and nominated to extra-0" wait_for 20 nominated vip2 extra-0
check "lingering victim: kubectl get -o wide shows the nominated node" wait_for 10 bash -c \
    "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pod vip2 -o wide --no-headers | grep -q 'Pending .*extra-0'"
pod sneak 2 "nodeSelector: {kubernetes.io/hostname: extra-0}"
sleep 1
kc patch pod slow --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
check "lingering victim gone: the preemptor gets the node" wait_for 30 on_node vip2 extra-0
check "... and the lower-priority pod that came meanwhile does not" test -z "$(node_of sneak)"
kc delete pod --all --wait=true --timeout=30s >/dev/null 2>&1

# PodDisruptionBudgets: of two equal victims on two nodes, the unprotected one goes
LABELS="app: pa" pod pa 2 "nodeSelector: {kubernetes.io/hostname: small-0}"
LABELS="app: pb" pod pb 2 "nodeSelector: {kubernetes.io/hostname: small-1}"
wait_for 20 all_bound pa pb
kc apply -f - >/dev/null <<'EOF2'
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pa}
spec: {minAvailable: 1, selector: {matchLabels: {app: pa}}}
EOF2
sleep 1
pod vip3 2 "priorityClassName: e2e-high" \
    "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [small-0, small-1]}]}]}}}"
check "PDB: the preemptor lands where the unprotected pod ran" wait_for 30 on_node vip3 small-1
check "PDB: the protected pod is still running" bound pa
check "PDB: the unprotected pod was preempted" wait_for 20 bash -c \
    "! '$KUBECTL' --kubeconfig '$data/kubeconfig' get pod pb >/dev/null 2>&1"
kc delete pdb pa >/dev/null 2>&1
kc delete pod --all --wait=true --timeout=30s >/dev/null 2>&1

# ---- schedulerName ----
pod other 10m "schedulerName: someone-else"
sleep 2
check "a pod for another scheduler is left alone" test -z "$(node_of other)"
check "... and gets no event from us" bash -c \
    "! '$KUBECTL' --kubeconfig '$data/kubeconfig' describe pod other | grep -q FailedScheduling"
kc delete pod other --wait=false >/dev/null 2>&1

# ---- the status write path the hollow kubelets use: merge PATCH of pods/status ----
LABELS="app: st" pod st 10m "schedulerName: nobody"
kc patch pod st --subresource=status --type=merge \
    -p '{"metadata":{"labels":{"app":"changed"}},"spec":{"nodeName":"x"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}' >/dev/null
check "status patch: phase and conditions written" test \
    "$(kc get pod st -o jsonpath='{.status.phase}/{.status.conditions[0].type}')" = "Running/Ready"
check "status patch: spec and labels untouched" test \
    "$(kc get pod st -o jsonpath='{.spec.nodeName}/{.metadata.labels.app}')" = "/st"
kc patch pod st --subresource=status --type=merge -p '{"status":{"conditions":null}}' >/dev/null
check "status patch: null removes a status field" test -z "$(kc get pod st -o jsonpath='{.status.conditions}')"
check "status patch: a stale resourceVersion is a conflict" bash -c \
    "'$KUBECTL' --kubeconfig '$data/kubeconfig' patch pod st --subresource=status --type=merge -p '{\"metadata\":{\"resourceVersion\":\"1\"},\"status\":{\"phase\":\"Failed\"}}' 2>&1 | grep -q Conflict"
check "status patch: ... and changed nothing" test "$(kc get pod st -o jsonpath='{.status.phase}')" = Running
kc delete pod st --wait=false >/dev/null 2>&1

# ---- leader failover: two replicas of a second scheduler on their own Lease ----
for i in 1 2; do
    "$CK" scheduler --kubeconfig "$data/kubeconfig" --scheduler-name e2e-sched \
        --leader-elect-lease-name e2e-sched --leader-elect-identity "replica-$i" \
        --leader-elect-lease-duration 4s --leader-elect-renew-deadline 3s --leader-elect-retry-period 500ms \
        >"$tmp/replica-$i.log" 2>&1 &
    pids+=($!)
    eval "replica_$i=\$!"
done
holder() { kc -n kube-system get lease e2e-sched -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
check "one replica holds the Lease" wait_for 20 bash -c "[ -n \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' -n kube-system get lease e2e-sched -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)\" ]"
leader=$(holder)
pod f1 10m "schedulerName: e2e-sched"
check "the leader ($leader) schedules" wait_for 20 bound f1
if [ "$leader" = replica-1 ]; then victim=$replica_1; standby=replica-2; else victim=$replica_2; standby=replica-1; fi
kill -KILL "$victim"; wait "$victim" 2>/dev/null
t0=$SECONDS
pod f2 10m "schedulerName: e2e-sched"
if wait_for 30 bound f2; then
    ok "standby $standby took over and scheduled within $((SECONDS - t0))s of the leader's death"
else
    notok "standby took over after leader death"; tail -n 5 "$tmp"/replica-*.log
fi
check "the Lease names the standby" test "$(holder)" = "$standby"
check "only the leader logged scheduling for f1/f2 (standby started once)" \
    test "$(grep -c 'scheduling as' "$tmp/replica-1.log" "$tmp/replica-2.log" | awk -F: '{s+=$2} END {print s}')" = 2

[ $fails -eq 0 ] || { echo "# server log tail:"; tail -n 20 "$tmp/server.log" | sed 's/^/# /'; }
exit $((fails > 0))

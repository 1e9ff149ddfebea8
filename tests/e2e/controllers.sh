#!/bin/bash
# tests/e2e/controllers.sh - the controller-manager end to end: `ckube server` (API server,
# scheduler, controller-manager under its supervisor) plus hollow nodes, driven with the real
# kubectl.  ReplicaSet/ReplicationController, Deployment rollouts (history, undo, pause/resume,
# restart, scale, Recreate), a kill -9 of the controller-manager mid-rollout, two replicas with one
# leader, ServiceAccount, root-ca-cert-publisher, Namespace deletion, garbage collection (background/foreground/orphan),
# Endpoints/EndpointSlice, Job, CronJob, StatefulSet, DaemonSet, and node lifecycle (lease grace, taints, eviction).
# Loopback only; everything it starts is killed by the trap.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) CK=$BUILD/ckube ;; *) CK=$ROOT/$BUILD/ckube ;; esac
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
# every component's local zone (the controller-manager replicas started below too) is
# Asia/Kolkata (+05:30): CronJobs without timeZone follow it
export TZ=Asia/Kolkata
K127=${K127:-/usr/lib/google-cloud-sdk/bin/kubectl.1.27}   # rollout commands are checked with it too
tmp=$(mktemp -d /tmp/ckube-e2e-controllers.XXXXXX)
data=$tmp/data
fails=0
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    sleep 1
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    # components the server supervises carry our data dir in their command line
    for p in $(pgrep -f -- "$tmp/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }
kc() { "$KUBECTL" --kubeconfig "$data/kubeconfig" --request-timeout=10s "$@"; }
jp() { kc get "$@" 2>/dev/null; }

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
out_is() { local want=$1; shift; [ "$("$@" 2>/dev/null)" = "$want" ]; }   # out_is TEXT CMD...
field_is() { local want=$1; shift; [ "$(jp "$@")" = "$want" ]; }   # field_is VALUE get-args...
count_is() { local want=$1; shift; [ "$(kc get "$@" --no-headers 2>/dev/null | wc -l)" = "$want" ]; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port=$(free_port)
"$CK" server --data-dir "$data" --secure-port "$port" --bind-address 127.0.0.1 --disable-agent \
    >"$tmp/server.log" 2>&1 &
pids+=($!)
if ! wait_for 60 out_is ok kc get --raw /readyz; then
    notok "cluster ready"; cat "$tmp/server.log"; exit 1
fi
"$CK" hollow-node --kubeconfig "$data/kubeconfig" --count 3 >"$tmp/hollow.log" 2>&1 &
pids+=($!)
check "3 hollow nodes Ready" wait_for 30 count_is 3 nodes --field-selector=metadata.name!=x
cm_pid() { pgrep -f -- "controller-manager --kubeconfig=$data/" | head -n 1; }
check "server runs the controller-manager" wait_for 20 pgrep -f -- "controller-manager --kubeconfig=$data/"

apply() { kc apply -f - >/dev/null; }
# spec.replicas of the sets of app=$1, ascending, space separated
rs_sizes() { jp rs -l "app=$1" -o 'jsonpath={.items[*].spec.replicas}' | tr ' ' '\n' | sort -n | paste -sd' '; }
# "COUNT IMAGE" lines of the pods of app=$1
images() {
    jp pods -l "app=$1" -o 'jsonpath={range .items[*]}{.spec.containers[0].image}{"\n"}{end}' |
        sort | uniq -c | awk '{print $1, $2}'
}

# ---------------------------------------------------------------- CronJob (checked near the end)
apply <<'Y'
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    metadata: {labels: {cron: cj}}
    spec:
      manualSelector: true
      selector: {matchLabels: {cron: cj}}
      template:
        metadata: {labels: {cron: cj}}
        spec: {restartPolicy: Never, containers: [{name: c, image: x}]}
Y
cj_start=$SECONDS
# no timeZone: the schedule is read in the manager's zone.  The hour field names this hour and
# the next in Kolkata (cjlocal runs) or in UTC (cjutc never does: the zones are 5.5 h apart).
cronjob() {   # cronjob NAME SCHEDULE [SPEC LINES...]
    local n=$1 sched=$2; shift 2
    { printf 'apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: %s}\nspec:\n  schedule: "%s"\n' "$n" "$sched"
      for l in "$@"; do printf '  %s\n' "$l"; done
      printf '  jobTemplate:\n    metadata: {labels: {cron: %s}}\n    spec:\n      template:\n' "$n"
      printf '        spec: {restartPolicy: Never, containers: [{name: c, image: x}]}\n'; } | apply
}
kh=$(TZ=Asia/Kolkata date +%-H); uh=$(date -u +%-H)
cronjob cjlocal "* $kh,$(( (kh + 1) % 24 )) * * *" 'concurrencyPolicy: Forbid'
cronjob cjutc "* $uh,$(( (uh + 1) % 24 )) * * *" 'concurrencyPolicy: Forbid'
# an unknown zone is refused by the API server (as upstream validates it); the controller's own
# UnknownTimeZone event is left for zones its tzdata lacks
cjbad_out=$(apply() { kc apply -f - 2>&1; }; cronjob cjbad "* * * * *" 'timeZone: Mars/Olympus')
# 180 minutes since the last run: too many missed; with a 30 s startingDeadlineSeconds window, not
for n in cjmiss cjwin; do
    extra=""; [ $n = cjwin ] && extra="startingDeadlineSeconds: 30"
    cronjob $n "* * * * *" 'suspend: true' 'concurrencyPolicy: Forbid' "$extra"
    kc patch cronjob $n --subresource=status --type=merge -p "{\"status\":{\"lastScheduleTime\":\"$(date -u -d '-3 hours' +%Y-%m-%dT%H:%M:%SZ)\"}}" >/dev/null
    kc patch cronjob $n --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
done

# ---------------------------------------------------------------- ServiceAccount
check "serviceaccount: default SA in every namespace" wait_for 20 field_is default sa default -n kube-system -o 'jsonpath={.metadata.name}'
echo '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"e2e"}}' | apply
check "serviceaccount: default SA in a new namespace" wait_for 20 field_is default sa default -n e2e -o 'jsonpath={.metadata.name}'
kc delete sa default -n e2e >/dev/null 2>&1
check "serviceaccount: a deleted default SA comes back" wait_for 20 field_is default sa default -n e2e -o 'jsonpath={.metadata.name}'

# ---------------------------------------------------------------- root-ca-cert-publisher
ca_is() { [ "$(jp cm kube-root-ca.crt -n "$1" -o 'jsonpath={.data.ca\.crt}')" = "$(cat "$data/pki/ca.crt")" ]; }
check "root-ca: kube-root-ca.crt holds the cluster CA in kube-system" wait_for 20 ca_is kube-system
check "root-ca: kube-root-ca.crt in a new namespace" wait_for 20 ca_is e2e
kc delete cm kube-root-ca.crt -n e2e >/dev/null 2>&1
check "root-ca: a deleted kube-root-ca.crt comes back" wait_for 20 ca_is e2e
kc patch cm kube-root-ca.crt -n e2e --type=merge -p '{"data":{"ca.crt":"bogus","extra":"x"}}' >/dev/null 2>&1
check "root-ca: an edited kube-root-ca.crt is put back" wait_for 20 ca_is e2e
check "root-ca: only ca.crt is kept" wait_for 20 field_is "" cm kube-root-ca.crt -n e2e -o 'jsonpath={.data.extra}'

# ---------------------------------------------------------------- ReplicaSet / RC
apply <<'Y'
apiVersion: v1
kind: Pod
metadata: {name: orphan, labels: {app: rs1}}
spec: {containers: [{name: c, image: x}]}
Y
apply <<'Y'
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs1}
spec:
  replicas: 3
  selector: {matchLabels: {app: rs1}}
  template:
    metadata: {labels: {app: rs1}}
    spec: {containers: [{name: c, image: x}]}
Y
check "replicaset: 3 replicas ready" wait_for 30 field_is 3 rs rs1 -o 'jsonpath={.status.readyReplicas}'
check "replicaset: status replicas/fullyLabeled/available/observedGeneration" \
    field_is "3 3 3 1" rs rs1 -o 'jsonpath={.status.replicas} {.status.fullyLabeledReplicas} {.status.availableReplicas} {.status.observedGeneration}'
check "replicaset: matching orphan pod adopted (3 pods total, not 4)" count_is 3 pods -l app=rs1
check "replicaset: adopted pod has the controller reference" field_is rs1 pod orphan -o 'jsonpath={.metadata.ownerReferences[0].name}'
kc scale rs rs1 --replicas=1 >/dev/null
check "replicaset: scale down to 1" wait_for 30 count_is 1 pods -l app=rs1
kc label pod -l app=rs1 app=other --overwrite >/dev/null
check "replicaset: relabelled pod released and replaced" wait_for 30 count_is 1 pods -l app=rs1
check "replicaset: released pod has no controller" wait_for 10 out_is "" jp pods -l app=other -o 'jsonpath={.items[0].metadata.ownerReferences[0].name}'
check "replicaset: SuccessfulCreate events (kubectl describe)" wait_for 10 bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' describe rs rs1 | grep -q 'SuccessfulCreate.*Created pod: rs1-'"
kc delete pods -l app=other --wait=false >/dev/null
apply <<'Y'
apiVersion: v1
kind: ReplicationController
metadata: {name: rc1}
spec:
  replicas: 2
  selector: {app: rc1}
  template:
    metadata: {labels: {app: rc1}}
    spec: {containers: [{name: c, image: x}]}
Y
check "replicationcontroller: 2 replicas ready" wait_for 30 field_is 2 rc rc1 -o 'jsonpath={.status.readyReplicas}'

# ---------------------------------------------------------------- Deployment
dep() {   # dep NAME REPLICAS IMAGE [STRATEGY]
    apply <<Y
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1}
spec:
  replicas: $2
  strategy: {type: ${4:-RollingUpdate}}
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec: {containers: [{name: c, image: $3}]}
Y
}
rollout() { kc rollout status "deploy/$1" --timeout="${2:-60}s" >/dev/null 2>&1; }
dep web 4 img:1
check "deployment: rollout status (create)" rollout web
check "deployment: 4 pods, 1 replica set" test "$(kc get rs -l app=web --no-headers | wc -l) $(kc get pods -l app=web --no-headers | wc -l)" = "1 4"
check "deployment: revision annotation 1" field_is 1 deploy web -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}'
check "deployment: Available and Progressing conditions" \
    field_is "True NewReplicaSetAvailable" deploy web -o 'jsonpath={.status.conditions[?(@.type=="Available")].status} {.status.conditions[?(@.type=="Progressing")].reason}'
kc set image deploy/web c=img:2 >/dev/null
check "deployment: rollout status (set image)" rollout web
check "deployment: old set scaled to 0, new set 4" wait_for 10 out_is "0 4" rs_sizes web
check "deployment: rollout history has 2 revisions" test "$(kc rollout history deploy/web | grep -cE '^[0-9]+ ')" = 2
kc rollout undo deploy/web >/dev/null
check "deployment: rollout undo" rollout web
check "deployment: undo reuses the revision-1 set (still 2 sets) as revision 3" \
    test "$(kc get rs -l app=web --no-headers | wc -l) $(jp deploy web -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}')" = "2 3"
check "deployment: image back to img:1" field_is img:1 deploy web -o 'jsonpath={.spec.template.spec.containers[0].image}'
kc rollout pause deploy/web >/dev/null
kc set image deploy/web c=img:3 >/dev/null
sleep 2
check "deployment: paused rollout creates no new set" count_is 2 rs -l app=web
check "deployment: paused condition" wait_for 20 field_is DeploymentPaused deploy web -o 'jsonpath={.status.conditions[?(@.type=="Progressing")].reason}'
kc rollout resume deploy/web >/dev/null
check "deployment: resume rolls out" rollout web
check "deployment: 3 sets after resume" count_is 3 rs -l app=web
kc rollout restart deploy/web >/dev/null
check "deployment: rollout restart" rollout web
check "deployment: restart made a 4th set" count_is 4 rs -l app=web
kc scale deploy/web --replicas=7 >/dev/null
check "deployment: scale to 7" rollout web
check "deployment: 7 pods" wait_for 20 count_is 7 pods -l app=web
check "deployment: ScalingReplicaSet events" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' describe deploy web | grep -q 'ScalingReplicaSet.*Scaled up replica set web-'"
dep rec 3 img:1 Recreate
check "deployment (Recreate): rollout" rollout rec
kc set image deploy/rec c=img:2 >/dev/null
check "deployment (Recreate): rollout of a new image" rollout rec
check "deployment (Recreate): 3 pods all of the new template" wait_for 20 out_is "3 img:2" images rec
apply <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: hist}
spec:
  replicas: 1
  revisionHistoryLimit: 1
  selector: {matchLabels: {app: hist}}
  template:
    metadata: {labels: {app: hist}}
    spec: {containers: [{name: c, image: img:1}]}
Y
rollout hist
for i in 2 3 4; do kc set image deploy/hist c=img:$i >/dev/null; rollout hist; done
check "deployment: revisionHistoryLimit 1 keeps 2 sets" wait_for 20 count_is 2 rs -l app=hist

# ---------------------------------------------------------------- kill -9 mid-rollout
# minReadySeconds makes each rollout step wait (3 s: 1 s let a quick rollout end before the kill),
# so the kill lands in the middle of it
# MaxUncountedPods: 600 job pods that finish while the manager is stopped (and then killed) are
# listed in uncountedTerminatedPods at most 500 at a time by the restarted one, all counted in the
# end.  They stay Pending (no node matches), which a status write to Succeeded does not mind.
apply <<'Y'
apiVersion: batch/v1
kind: Job
metadata: {name: jbig}
spec:
  completions: 600
  parallelism: 600
  template:
    spec: {restartPolicy: Never, nodeSelector: {e2e: nowhere}, containers: [{name: c, image: x}]}
Y
check "job (600 pods): all created" wait_for 60 count_is 600 pods -l job-name=jbig
apply <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 30
  minReadySeconds: 3
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: c, image: img:1}]}
Y
check "kill -9: 30-replica deployment rolled out" rollout big 90
kc set image deploy/big c=img:2 >/dev/null
check "kill -9: rollout under way" wait_for 10 count_is 2 rs -l app=big
sleep 1
mid=$(rs_sizes big)
old=$(cm_pid)
kill -STOP "$old"
/usr/bin/python3 - "$data/kubeconfig" >"$tmp/jbig.out" 2>&1 <<'PY' &
import sys, threading
from kubernetes import client, config, watch
config.load_kube_config(sys.argv[1])
core, batch = client.CoreV1Api(), client.BatchV1Api()
most, done = [0], threading.Event()
def watcher():
    try:
        for ev in watch.Watch().stream(batch.list_namespaced_job, "default",
                                       field_selector="metadata.name=jbig", timeout_seconds=170):
            st = ev["object"].status
            unc = st.uncounted_terminated_pods
            most[0] = max(most[0], len(unc.succeeded or []) if unc else 0)
            if (st.succeeded or 0) == 600 and any(c.type == "Complete" and c.status == "True" for c in st.conditions or []):
                break
    except Exception as e:
        print("watch: %r" % e, flush=True)
    done.set()
threading.Thread(target=watcher, daemon=True).start()
for p in core.list_namespaced_pod("default", label_selector="job-name=jbig").items:
    core.patch_namespaced_pod_status(p.metadata.name, "default", {"status": {"phase": "Succeeded"}})
print("patched", flush=True)
done.wait(175)
print("most=%d" % most[0])
PY
jbig_py=$!
wait_for 60 grep -q patched "$tmp/jbig.out"
kill -9 "$old" 2>/dev/null
check "kill -9: controller-manager killed mid-rollout (set sizes then: $mid)" test -n "$old" -a "$mid" != "0 30"
check "kill -9: supervisor restarted it" wait_for 30 bash -c "p=\$(pgrep -f -- 'controller-manager --kubeconfig=$data/' | head -n1); [ -n \"\$p\" ] && [ \"\$p\" != $old ]"
check "kill -9: the restarted one takes the lease over (after 15 s)" wait_for 40 bash -c "[ \$(grep -c 'controllers running' '$tmp/server.log') -ge 2 ]"
check "kill -9: rollout finishes after the restart" rollout big 120
check "kill -9: exactly 30 pods, all img:2" wait_for 30 out_is "30 img:2" images big
check "kill -9: old set at 0 replicas" wait_for 10 out_is "0 30" rs_sizes big
check "job (600 pods): Complete with succeeded 600" wait_for 60 out_is "600 SuccessCriteriaMet Complete" \
    jp job jbig -o 'jsonpath={.status.succeeded} {.status.conditions[?(@.status=="True")].type}'
wait "$jbig_py"
check "job (600 pods): at most 500 UIDs in uncountedTerminatedPods at once ($(tail -n 1 "$tmp/jbig.out"))" \
    grep -qx 'most=500' "$tmp/jbig.out"
grep -q 'most=500' "$tmp/jbig.out" || cat "$tmp/jbig.out"
kc delete job jbig --wait=false >/dev/null

# ---------------------------------------------------------------- two replicas, one leader
"$CK" controller-manager --kubeconfig "$data/kubeconfig" --leader-elect-identity=standby-2 \
    --leader-elect-lease-duration=6s --leader-elect-renew-deadline=4s --leader-elect-retry-period=1s \
    >"$tmp/cm2.log" 2>&1 &
cm2=$!
pids+=($cm2)
holder() { jp lease kube-controller-manager -n kube-system -o 'jsonpath={.spec.holderIdentity}'; }
sleep 3
first=$(holder)
check "two replicas: the lease has one holder, the server's replica (not the new standby)" test -n "$first" -a "$first" != standby-2
check "two replicas: the standby waits" wait_for 20 grep -q "waiting to become leader" "$tmp/cm2.log"
check "two replicas: the standby runs no controller" bash -c "! grep -q 'controllers running' '$tmp/cm2.log'"
# Stop the server's replica for good (SIGSTOP: the supervisor sees it alive), so the standby leads.
sup=$(cm_pid)
kill -STOP "$sup"
check "two replicas: standby takes over after the lease expires" wait_for 40 field_is standby-2 lease kube-controller-manager -n kube-system -o 'jsonpath={.spec.holderIdentity}'
check "two replicas: the new leader runs the controllers" wait_for 20 grep -q "controllers running" "$tmp/cm2.log"
kc scale deploy/web --replicas=2 >/dev/null
check "two replicas: the new leader acts (scale 7 -> 2)" rollout web
kill -CONT "$sup"
check "two replicas: the old leader, resumed, steps down (exits on lost lease)" wait_for 30 bash -c "! kill -0 $sup 2>/dev/null || grep -q 'lost leadership\|leader election lost' '$tmp/server.log'"
sleep 2
check "two replicas: still one holder, standby-2" field_is standby-2 lease kube-controller-manager -n kube-system -o 'jsonpath={.spec.holderIdentity}'

# ---------------------------------------------------------------- garbage collector
dep gcb 2 img:1; rollout gcb
kc delete deploy gcb --wait=false >/dev/null
check "gc background: sets and pods of a deleted deployment go" wait_for 30 bash -c "[ -z \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get rs,pods -l app=gcb --no-headers 2>/dev/null)\" ]"
dep gcf 2 img:1; rollout gcf
kc delete deploy gcf --cascade=foreground --wait=false >/dev/null
check "gc foreground: owner carries foregroundDeletion while dependents go" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get deploy gcf -o jsonpath='{.metadata.finalizers}' 2>/dev/null | grep -q foregroundDeletion || ! '$KUBECTL' --kubeconfig '$data/kubeconfig' get deploy gcf >/dev/null 2>&1"
check "gc foreground: deployment, sets and pods all gone" wait_for 30 bash -c "[ -z \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get deploy,rs,pods -l app=gcf --no-headers 2>/dev/null)\" ] && ! '$KUBECTL' --kubeconfig '$data/kubeconfig' get deploy gcf >/dev/null 2>&1"
dep gco 2 img:1; rollout gco
kc delete deploy gco --cascade=orphan >/dev/null
sleep 2
check "gc orphan: the set survives its deployment" count_is 1 rs -l app=gco
check "gc orphan: the set has no owner left" test -z "$(jp rs -l app=gco -o 'jsonpath={.items[0].metadata.ownerReferences[*].name}')"
check "gc orphan: its pods keep running" count_is 2 pods -l app=gco
apply <<'Y'
apiVersion: v1
kind: ConfigMap
metadata:
  name: dangling
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: nobody, uid: 00000000-0000-0000-0000-000000000000}]
Y
check "gc: an object whose owner never existed is collected" wait_for 30 bash -c "! '$KUBECTL' --kubeconfig '$data/kubeconfig' get cm dangling >/dev/null 2>&1"

# ---------------------------------------------------------------- Endpoints / EndpointSlice
dep svcweb 3 img:1; rollout svcweb
apply <<'Y'
apiVersion: v1
kind: Service
metadata: {name: svcweb}
spec:
  selector: {app: svcweb}
  ports: [{name: http, port: 80, targetPort: 8080}]
Y
check "endpoints: 3 ready addresses on port 8080" wait_for 30 field_is "3 8080" endpoints svcweb -o go-template='{{len (index .subsets 0).addresses}} {{(index (index .subsets 0).ports 0).port}}'
check "endpointslice: one slice with 3 ready endpoints, owned by the service" wait_for 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get endpointslices -l kubernetes.io/service-name=svcweb -o go-template='{{range .items}}{{len .endpoints}} {{(index .metadata.ownerReferences 0).kind}}{{end}}')\" = '3 Service' ]"
kc scale deploy/svcweb --replicas=1 >/dev/null
check "endpoints: follow a scale down" wait_for 30 field_is 1 endpoints svcweb -o go-template='{{len (index .subsets 0).addresses}}'
check "endpointslice: follow a scale down" wait_for 30 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get endpointslices -l kubernetes.io/service-name=svcweb -o go-template='{{range .items}}{{len .endpoints}}{{end}}')\" = 1 ]"
# packing: a Service that finds 250 ready pods at once gets slices of 100/100/50; scaling then
# keeps the same slices (updated in place, no new ones while the rest fits)
slice_sizes() { jp endpointslices -l kubernetes.io/service-name=svcpack -o go-template='{{range .items}}{{len .endpoints}}{{"\n"}}{{end}}' | sort -n | paste -sd' '; }
slice_names() { jp endpointslices -l kubernetes.io/service-name=svcpack -o 'jsonpath={.items[*].metadata.name}' | tr ' ' '\n' | sort | paste -sd' '; }
slice_total() { jp endpointslices -l kubernetes.io/service-name=svcpack -o go-template='{{range .items}}{{len .endpoints}}{{"\n"}}{{end}}' | awk '{t += $1; if ($1 > 100) big = 1} END {print (big ? "over100" : t)}'; }
kc scale deploy/svcweb --replicas=250 >/dev/null
wait_for 120 field_is 250 endpoints svcweb -o go-template='{{len (index .subsets 0).addresses}}'
apply <<'Y'
apiVersion: v1
kind: Service
metadata: {name: svcpack}
spec:
  selector: {app: svcweb}
  ports: [{name: http, port: 80, targetPort: 8080}]
Y
check "endpointslice: 250 endpoints packed 50 100 100" wait_for 60 out_is "50 100 100" slice_sizes
names250=$(slice_names)
kc scale deploy/svcweb --replicas=240 >/dev/null
check "endpointslice: scale 250 -> 240 updates the slices in place" wait_for 60 out_is 240 slice_total
check "endpointslice: ... same three slices (names unchanged)" out_is "$names250" slice_names
kc scale deploy/svcweb --replicas=270 >/dev/null
check "endpointslice: scale 240 -> 270 fills the existing slices" wait_for 90 out_is 270 slice_total
check "endpointslice: ... still the same three slices, none over 100" out_is "$names250" slice_names
kc scale deploy/svcweb --replicas=1 >/dev/null
check "endpointslice: scale to 1 -> emptied slices deleted, one left" wait_for 60 out_is 1 slice_sizes
kc delete svc svcpack >/dev/null
kc delete svc svcweb >/dev/null
check "endpoints and slices go with the service" wait_for 30 bash -c "! '$KUBECTL' --kubeconfig '$data/kubeconfig' get endpoints svcweb >/dev/null 2>&1 && [ -z \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get endpointslices -l kubernetes.io/service-name=svcweb --no-headers 2>/dev/null)\" ]"

# ---------------------------------------------------------------- Namespace
kc -n e2e apply -f - >/dev/null <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 2
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
Y
check "namespace: workload in e2e running" wait_for 30 count_is 2 pods -n e2e
kc delete ns e2e --wait=false >/dev/null
check "namespace: deleting empties it and removes it" wait_for 60 bash -c "! '$KUBECTL' --kubeconfig '$data/kubeconfig' get ns e2e >/dev/null 2>&1"

# ---------------------------------------------------------------- Job
# Hollow pods run forever; a test finishes one by writing its status as a kubelet would.
finish() { kc patch pod "$1" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"$2\"}}" >/dev/null; }
job_pods() { jp pods -l "job-name=$1" -o 'jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name}{"\n"}{end}'; }
njob_pods() { job_pods "$1" | grep -c .; }
# kfail POD: Failed as a kubelet reports it (Ready=False from now: the failure's time)
kfail() {
    kc patch pod "$1" --subresource=status --type=strategic -p "{\"status\":{\"phase\":\"Failed\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"lastTransitionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]}}" >/dev/null
}
# job NAME [SPEC LINES...]: a Job with a manual selector (job-name=NAME).  (The API server's generated
# selector is not used: it adds it on the first status write and then calls the template changed.)
job() {
    local n=$1; shift
    { printf 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: %s}\nspec:\n  manualSelector: true\n' "$n"
      printf '  selector: {matchLabels: {job-name: %s}}\n' "$n"
      for l in "$@"; do printf '  %s\n' "$l"; done
      printf '  template:\n    metadata: {labels: {job-name: %s}}\n' "$n"
      printf '    spec: {restartPolicy: Never, containers: [{name: c, image: x}]}\n'; } | apply
}
# "TYPES REASONS" of the job's true conditions (1.33: the interim SuccessCriteriaMet/FailureTarget first)
jobcond() { jp job "$1" -o 'jsonpath={.status.conditions[?(@.status=="True")].type} {.status.conditions[?(@.status=="True")].reason}'; }
# pod backoff: the replacement of a failed pod waits 10 s, the next one 20 s (started first: it takes a while)
job jbo 'backoffLimit: 3'
job j3 'completions: 3' 'parallelism: 2'
# spec.managedBy naming another controller: the job controller leaves the job alone
job jext 'managedBy: example.com/custom-controller'
check "job: parallelism 2 -> 2 running pods" wait_for 30 out_is 2 njob_pods j3
check "job tracking: pods are created with the batch.kubernetes.io/job-tracking finalizer" \
    out_is "batch.kubernetes.io/job-tracking batch.kubernetes.io/job-tracking" jp pods -l job-name=j3 -o 'jsonpath={.items[*].metadata.finalizers[*]}'
check "job: status active 2, ready 2, terminating 0, uncountedTerminatedPods {}" wait_for 20 out_is "2 2 0 {}" \
    jp job j3 -o 'jsonpath={.status.active} {.status.ready} {.status.terminating} {.status.uncountedTerminatedPods}'
first=$(job_pods j3 | head -n 1)
for p in $(job_pods j3); do finish "$p" Succeeded; done
check "job: a third pod for the last completion" wait_for 30 out_is 1 njob_pods j3
check "job: managedBy another controller -> no pods, no status from the job controller" \
    out_is "0 " bash -c "echo \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get pods -l job-name=jext --no-headers 2>/dev/null | wc -l) \$('$KUBECTL' --kubeconfig '$data/kubeconfig' get job jext -o jsonpath='{.status.startTime}')\""
check "job tracking: a finished pod loses its finalizer once counted (succeeded 2)" wait_for 20 out_is "/2" \
    bash -c "echo \$('$KUBECTL' --kubeconfig '$data/kubeconfig' get pod $first -o jsonpath='{.metadata.finalizers[*]}')/\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get job j3 -o jsonpath='{.status.succeeded}')"
kc delete pod "$first" --wait=false >/dev/null
for p in $(job_pods j3); do finish "$p" Succeeded; done
check "job: Complete after 3 successes (kubectl wait)" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' wait --for=condition=complete job/j3 --timeout=30s >/dev/null"
check "job: SuccessCriteriaMet (CompletionsReached) before Complete" wait_for 10 out_is "SuccessCriteriaMet Complete CompletionsReached CompletionsReached" jobcond j3
check "job: status succeeded=3 (a deleted finished pod still counts), completionTime set" wait_for 10 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get job j3 -o jsonpath='{.status.succeeded} {.status.completionTime}' | cut -c1-4)\" = '3 20' ]"
job jidx 'completions: 2' 'parallelism: 2' 'completionMode: Indexed'
check "job (Indexed): pods carry completion indexes 0 and 1" wait_for 30 out_is "0 1" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pods -l job-name=jidx -o jsonpath='{.items[*].metadata.annotations.batch\.kubernetes\.io/job-completion-index}' | tr ' ' '\n' | sort | paste -sd' '"
for p in $(job_pods jidx); do finish "$p" Succeeded; done
jobidx() { jp job "$1" -o 'jsonpath={.status.conditions[?(@.status=="True")].type} {.status.completedIndexes}'; }
check "job (Indexed): Complete with completedIndexes 0-1" wait_for 30 out_is "SuccessCriteriaMet Complete 0-1" jobidx jidx
# successPolicy: index 0 alone makes the job succeed; the other pods are removed
job jsp 'completions: 3' 'parallelism: 3' 'completionMode: Indexed' 'successPolicy: {rules: [{succeededIndexes: "0"}]}'
wait_for 30 out_is 3 njob_pods jsp
finish "$(jp pods -l job-name=jsp,batch.kubernetes.io/job-completion-index=0 -o 'jsonpath={.items[0].metadata.name}')" Succeeded
check "job successPolicy: Complete (SuccessPolicy) once index 0 succeeded" wait_for 30 out_is "SuccessCriteriaMet Complete SuccessPolicy SuccessPolicy" jobcond jsp
check "job successPolicy: the remaining pods were deleted" wait_for 30 out_is 0 njob_pods jsp
check "job successPolicy: message names the rule" out_is "Matched rules at index 0" jp job jsp -o 'jsonpath={.status.conditions[?(@.type=="Complete")].message}'
job jfail 'backoffLimit: 1'
for round in 1 2; do
    wait_for 30 out_is 1 njob_pods jfail
    for p in $(job_pods jfail); do finish "$p" Failed; done
done
check "job: FailureTarget then Failed (BackoffLimitExceeded) after backoffLimit+1 failures" wait_for 30 out_is "FailureTarget Failed BackoffLimitExceeded BackoffLimitExceeded" jobcond jfail
check "job: status failed=2, nothing left uncounted" wait_for 10 out_is "2 {}" jp job jfail -o 'jsonpath={.status.failed} {.status.uncountedTerminatedPods}'
# restartPolicy OnFailure: container restarts count against backoffLimit (2 here)
apply <<'Y'
apiVersion: batch/v1
kind: Job
metadata: {name: jrst}
spec:
  backoffLimit: 2
  manualSelector: true
  selector: {matchLabels: {job-name: jrst}}
  template:
    metadata: {labels: {job-name: jrst}}
    spec: {restartPolicy: OnFailure, containers: [{name: c, image: x}]}
Y
restarts() {   # restarts POD N: the kubelet reports container c restarted N times
    kc patch pod "$1" --subresource=status --type=merge -p "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"restartCount\":$2,\"ready\":true,\"image\":\"x\",\"imageID\":\"\",\"state\":{\"running\":{}}}]}}" >/dev/null
}
wait_for 30 out_is 1 njob_pods jrst
restarts "$(job_pods jrst)" 1
sleep 2
check "job OnFailure: 1 restart < backoffLimit 2, still running" out_is " " jobcond jrst
restarts "$(job_pods jrst)" 2
check "job OnFailure: 2 restarts -> Failed (BackoffLimitExceeded)" wait_for 30 out_is "FailureTarget Failed BackoffLimitExceeded BackoffLimitExceeded" jobcond jrst
# podFailurePolicy: a disruption is ignored (a new pod, nothing counted), exit code 42 fails the job
fail_with() {   # fail_with POD STATUS-JSON-FIELDS
    kc patch pod "$1" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Failed\",$2}}" >/dev/null
}
job jpfp 'backoffLimit: 0' 'podFailurePolicy: {rules: [{action: FailJob, onExitCodes: {containerName: c, operator: In, values: [42]}}, {action: Ignore, onPodConditions: [{type: DisruptionTarget, status: "True"}]}]}'
wait_for 30 out_is 1 njob_pods jpfp
first=$(job_pods jpfp)
fail_with "$first" '"conditions":[{"type":"DisruptionTarget","status":"True","reason":"EvictionByEvictionAPI"}]'
check "job podFailurePolicy: Ignore -> a replacement pod" wait_for 30 bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pods -l job-name=jpfp --field-selector=status.phase=Running -o name | grep -v '$first' | grep -q ."
check "job podFailurePolicy: the ignored failure is not counted (backoffLimit 0, still running)" out_is " " jobcond jpfp
fail_with "$(job_pods jpfp)" '"containerStatuses":[{"name":"c","image":"x","imageID":"","ready":false,"restartCount":0,"state":{"terminated":{"exitCode":42,"reason":"Error"}}}]'
check "job podFailurePolicy: exit code 42 -> Failed (PodFailurePolicy)" wait_for 30 out_is "FailureTarget Failed PodFailurePolicy PodFailurePolicy" jobcond jpfp
check "job podFailurePolicy: the message names the container and rule" wait_for 5 bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get job jpfp -o jsonpath='{.status.conditions[?(@.type==\"Failed\")].message}' | grep -q 'Container c for pod default/.* failed with exit code 42 matching FailJob rule at index 0'"
# backoffLimitPerIndex: index 0 fails once and is given up on, index 1 succeeds -> FailedIndexes
job jpi 'completions: 2' 'parallelism: 2' 'completionMode: Indexed' 'backoffLimitPerIndex: 0'
idx_pod() { jp pods -l "job-name=$1,batch.kubernetes.io/job-completion-index=$2" -o 'jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name}{end}'; }
wait_for 30 out_is 2 njob_pods jpi
fail_with "$(idx_pod jpi 0)" '"containerStatuses":[{"name":"c","image":"x","imageID":"","ready":false,"restartCount":0,"state":{"terminated":{"exitCode":1}}}]'
check "job backoffLimitPerIndex: index 0 marked failed, not retried" wait_for 30 out_is "0" jp job jpi -o 'jsonpath={.status.failedIndexes}'
finish "$(idx_pod jpi 1)" Succeeded
check "job backoffLimitPerIndex: Failed (FailedIndexes) once index 1 succeeded" wait_for 30 out_is "FailureTarget Failed FailedIndexes FailedIndexes" jobcond jpi
check "job backoffLimitPerIndex: no pod was made again for index 0" out_is 1 bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pods -l job-name=jpi,batch.kubernetes.io/job-completion-index=0 --no-headers | wc -l"
# backoffLimitPerIndex 1: index 0 is retried once (failure count 1 on the new pod), then maxFailedIndexes 0 fails the job
job jpm 'completions: 2' 'parallelism: 2' 'completionMode: Indexed' 'backoffLimitPerIndex: 1' 'maxFailedIndexes: 0'
wait_for 30 out_is 2 njob_pods jpm
fail_with "$(idx_pod jpm 0)" '"containerStatuses":[{"name":"c","image":"x","imageID":"","ready":false,"restartCount":0,"state":{"terminated":{"exitCode":1}}}]'
check "job backoffLimitPerIndex: index 0 retried, the new pod counts one failure" wait_for 30 out_is 1 \
    jp pods -l job-name=jpm,batch.kubernetes.io/job-completion-index=0 -o 'jsonpath={.items[?(@.status.phase=="Running")].metadata.annotations.batch\.kubernetes\.io/job-index-failure-count}'
fail_with "$(idx_pod jpm 0)" '"containerStatuses":[{"name":"c","image":"x","imageID":"","ready":false,"restartCount":0,"state":{"terminated":{"exitCode":1}}}]'
check "job maxFailedIndexes: Failed (MaxFailedIndexesExceeded), index 1 stopped" wait_for 40 out_is "FailureTarget Failed MaxFailedIndexesExceeded MaxFailedIndexesExceeded" jobcond jpm
check "job maxFailedIndexes: no pod left running" wait_for 20 out_is 0 njob_pods jpm
job jdead 'activeDeadlineSeconds: 2'
check "job: Failed (DeadlineExceeded) after activeDeadlineSeconds" wait_for 30 out_is "FailureTarget Failed DeadlineExceeded DeadlineExceeded" jobcond jdead
check "job: its running pod deleted at the deadline" wait_for 30 out_is "" job_pods jdead
job jttl 'ttlSecondsAfterFinished: 1'
wait_for 30 out_is 1 njob_pods jttl
for p in $(job_pods jttl); do finish "$p" Succeeded; done
check "job: ttlSecondsAfterFinished deletes the finished job" wait_for 30 bash -c "! '$KUBECTL' --kubeconfig '$data/kubeconfig' get job jttl >/dev/null 2>&1"
# suspend: pods go, Suspended=True; resume: pods again, Suspended=False (JobResumed)
job jsus 'parallelism: 2' 'completions: 4'
wait_for 30 out_is 2 njob_pods jsus
kc patch job jsus --type=merge -p '{"spec":{"suspend":true}}' >/dev/null
check "job suspend: active pods deleted" wait_for 30 count_is 0 pods -l job-name=jsus
check "job suspend: Suspended=True (JobSuspended), active 0" wait_for 20 out_is "True JobSuspended " jp job jsus -o 'jsonpath={.status.conditions[?(@.type=="Suspended")].status} {.status.conditions[?(@.type=="Suspended")].reason} {.status.active}'
check "job suspend: the deleted pods are not failures" out_is "" jp job jsus -o 'jsonpath={.status.failed}'
kc patch job jsus --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
check "job resume: pods again" wait_for 30 out_is 2 njob_pods jsus
check "job resume: Suspended=False (JobResumed)" wait_for 20 out_is "False JobResumed" jp job jsus -o 'jsonpath={.status.conditions[?(@.type=="Suspended")].status} {.status.conditions[?(@.type=="Suspended")].reason}'
# terminating: a job pod deleted while another finalizer holds it is terminating and (no
# podFailurePolicy) counted failed
job jterm 'backoffLimit: 5'
wait_for 30 out_is 1 njob_pods jterm
held=$(job_pods jterm)
kc patch pod "$held" --type=json -p '[{"op":"add","path":"/metadata/finalizers/-","value":"e2e.ckube.io/hold"}]' >/dev/null
kc delete pod "$held" --wait=false >/dev/null
check "job: a held deleted pod is terminating 1, counted failed 1" wait_for 20 out_is "1 1" jp job jterm -o 'jsonpath={.status.terminating} {.status.failed}'
kc patch pod "$held" --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
check "job: released, terminating 0" wait_for 20 out_is "0" jp job jterm -o 'jsonpath={.status.terminating}'
# deleting a job: its pods lose the tracking finalizer and go
kc delete job jsus jterm --wait=false >/dev/null
check "job tracking: a deleted job's pods go (finalizers removed)" wait_for 30 count_is 0 pods -l 'job-name in (jsus,jterm)'
# the backoff: measured from the failure to the replacement's creation
wait_for 30 out_is 1 njob_pods jbo
t_fail=$(date +%s); kfail "$(job_pods jbo)"
wait_for 40 out_is 1 njob_pods jbo
gap1=$(( $(date -d "$(jp pods -l job-name=jbo -o 'jsonpath={.items[?(@.status.phase=="Running")].metadata.creationTimestamp}')" +%s) - t_fail ))
check "job backoff: first replacement after ~10 s ($gap1 s)" test "$gap1" -ge 9 -a "$gap1" -le 14
t_fail=$(date +%s); kfail "$(job_pods jbo)"
wait_for 50 out_is 1 njob_pods jbo
gap2=$(( $(date -d "$(jp pods -l job-name=jbo -o 'jsonpath={.items[?(@.status.phase=="Running")].metadata.creationTimestamp}')" +%s) - t_fail ))
check "job backoff: second replacement after ~20 s ($gap2 s)" test "$gap2" -ge 19 -a "$gap2" -le 25

# ---------------------------------------------------------------- StatefulSet
apply <<'Y'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: img:1}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
Y
check "statefulset: rollout status" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout status sts/db --timeout=60s >/dev/null"
check "statefulset: stable names db-0 db-1 db-2" wait_for 20 out_is "db-0 db-1 db-2" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pods -l app=db -o jsonpath='{.items[*].metadata.name}' | tr ' ' '\n' | sort | paste -sd' '"
check "statefulset: PVCs from volumeClaimTemplates" wait_for 20 out_is "data-db-0 data-db-1 data-db-2" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pvc -o jsonpath='{.items[*].metadata.name}' | tr ' ' '\n' | grep db | sort | paste -sd' '"
sts_mu() {
    kc create --dry-run=server -o 'jsonpath={.spec.updateStrategy.rollingUpdate}' -f - <<'Y'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: stsmu}
spec:
  selector: {matchLabels: {app: stsmu}}
  serviceName: stsmu
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}
  template:
    metadata: {labels: {app: stsmu}}
    spec: {containers: [{name: c, image: img:1}]}
Y
}
check "statefulset: maxUnavailable (alpha gate, off as in 1.33) is dropped by the API server" out_is '{"partition":0}' sts_mu
check "statefulset: hostname and subdomain" out_is "db-1 db" jp pod db-1 -o 'jsonpath={.spec.hostname} {.spec.subdomain}'
kc patch sts db --type=merge -p '{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":1}}}}' >/dev/null
kc set image sts/db c=img:2 >/dev/null
check "statefulset: partitioned update replaces ordinals >= 1 only" wait_for 60 out_is "db-0=img:1 db-1=img:2 db-2=img:2" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pods -l app=db -o jsonpath='{range .items[*]}{.metadata.name}={.spec.containers[0].image}{\"\\n\"}{end}' | sort | paste -sd' '"
old_uid=$(jp pod db-0 -o 'jsonpath={.metadata.uid}')
kc delete pod db-0 --wait=false >/dev/null
db0_again() { [ "$(jp pod db-0 -o 'jsonpath={.metadata.uid} {.spec.containers[0].image}')" != "" ] && [ "$(jp pod db-0 -o 'jsonpath={.metadata.uid}')" != "$old_uid" ] && [ "$(jp pod db-0 -o 'jsonpath={.spec.containers[0].image}')" = img:1 ]; }
check "statefulset: a pod below the partition comes back from the current revision (img:1)" wait_for 60 db0_again
hist_revs() { kc rollout history "$1" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {print $1}' | paste -sd' '; }
check "statefulset: rollout history lists revisions 1 2 (ControllerRevisions)" wait_for 20 out_is "1 2" hist_revs sts/db
check "statefulset: rollout history --revision=1 shows img:1" wait_for 5 bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout history sts/db --revision=1 | grep -q 'Image:.*img:1'"
kc patch sts db --type=merge -p '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}' >/dev/null
check "statefulset: partition 0 finishes the update" wait_for 60 out_is "3 img:2" images db
check "statefulset: rollout undo" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout undo sts/db | grep -q 'rolled back'"
check "statefulset: undo brings img:1 back to every pod" wait_for 90 out_is "3 img:1" images db
check "statefulset: revision 1 renumbered to 3 (history 2 3)" wait_for 20 out_is "2 3" hist_revs sts/db
sts_revs_match() {
    local want
    want=$(jp controllerrevisions -l app=db -o 'jsonpath={range .items[?(@.revision==3)]}{.metadata.name}{end}')
    [ -n "$want" ] && [ "$(jp sts db -o 'jsonpath={.status.currentRevision} {.status.updateRevision}')" = "$want $want" ]
}
check "statefulset: status currentRevision = updateRevision = the undone revision" wait_for 30 sts_revs_match
check "statefulset (kubectl 1.27): rollout history lists 2 3" out_is "2 3" bash -c "'$K127' --kubeconfig '$data/kubeconfig' rollout history sts/db | awk '\$1 ~ /^[0-9]+\$/ {print \$1}' | paste -sd' '"
check "statefulset (kubectl 1.27): rollout undo" bash -c "'$K127' --kubeconfig '$data/kubeconfig' rollout undo sts/db | grep -q 'rolled back'"
check "statefulset (kubectl 1.27): rollout status" bash -c "'$K127' --kubeconfig '$data/kubeconfig' rollout status sts/db --timeout=90s >/dev/null"
check "statefulset (kubectl 1.27): undo brought img:2 back" wait_for 90 out_is "3 img:2" images db
kc scale sts db --replicas=1 >/dev/null
check "statefulset: scale down removes the highest ordinals" wait_for 60 out_is "db-0" jp pods -l app=db -o 'jsonpath={.items[*].metadata.name}'
check "statefulset: PVCs are kept on scale down" wait_for 5 out_is 3 bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get pvc --no-headers | grep -c db"
kc delete sts db >/dev/null
# the rollout commands of kubectl 1.27 on a StatefulSet
sts() {   # sts NAME [SPEC LINES...]: a StatefulSet of img:1 with a volumeClaimTemplate "data"
    local n=$1; shift
    { printf 'apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: %s}\nspec:\n  serviceName: %s\n' "$n" "$n"
      printf '  selector: {matchLabels: {app: %s}}\n' "$n"
      for l in "$@"; do printf '  %s\n' "$l"; done
      printf '  template:\n    metadata: {labels: {app: %s}}\n' "$n"
      printf '    spec: {containers: [{name: c, image: img:1}]}\n'
      printf '  volumeClaimTemplates:\n  - metadata: {name: data}\n'
      printf '    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n'; } | apply
}
pod_names() { jp pods -l "app=$1" -o 'jsonpath={.items[*].metadata.name}' | tr ' ' '\n' | sort | paste -sd' '; }
pvc_names() { jp pvc -o 'jsonpath={.items[*].metadata.name}' | tr ' ' '\n' | grep -- "-$1-" | sort | paste -sd' '; }
# persistentVolumeClaimRetentionPolicy Delete/Delete: claims owned by the set; a scaled-down pod's
# claim goes with it; the rest go with the set
sts sret 'replicas: 2' 'persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}'
check "statefulset retention: 2 pods, 2 claims" wait_for 60 out_is "data-sret-0 data-sret-1" pvc_names sret
check "statefulset retention: whenDeleted=Delete -> the set is the claims' controller" wait_for 20 out_is "StatefulSet sret true" \
    jp pvc data-sret-0 -o 'jsonpath={.metadata.ownerReferences[0].kind} {.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller}'
wait_for 60 out_is "sret-0 sret-1" pod_names sret
kc scale sts sret --replicas=1 >/dev/null
check "statefulset retention: whenScaled=Delete -> the scaled-down pod's claim goes" wait_for 60 out_is "data-sret-0" pvc_names sret
kc delete sts sret >/dev/null
check "statefulset retention: whenDeleted=Delete -> the claims go with the set" wait_for 60 out_is "" pvc_names sret
# a claim still being deleted holds its pod back; the claim is made again before the pod
apply <<'Y'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data-swait-0, finalizers: [e2e.ckube.io/hold]}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
Y
kc delete pvc data-swait-0 --wait=false >/dev/null
sts swait 'replicas: 1'
sleep 3
check "statefulset claims: no pod while its claim is being deleted" out_is "" pod_names swait
kc patch pvc data-swait-0 --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
check "statefulset claims: claim made again, then the pod" wait_for 60 out_is "swait-0" pod_names swait
check "statefulset claims: the new claim is older than the pod" bash -c "[ \$(date -d \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get pvc data-swait-0 -o jsonpath='{.metadata.creationTimestamp}')\" +%s) -le \$(date -d \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get pod swait-0 -o jsonpath='{.metadata.creationTimestamp}')\" +%s) ]"
# minReadySeconds: availableReplicas lags readyReplicas, and OrderedReady waits for availability
sts smr 'replicas: 2' 'minReadySeconds: 3'
check "statefulset minReadySeconds: ready 1, available 0 at first" wait_for 30 out_is "1 0" jp sts smr -o 'jsonpath={.status.readyReplicas} {.status.availableReplicas}'
check "statefulset minReadySeconds: availableReplicas 2 in the end" wait_for 60 out_is "2 2" jp sts smr -o 'jsonpath={.status.readyReplicas} {.status.availableReplicas}'
gap=$(( $(date -d "$(jp pod smr-1 -o 'jsonpath={.metadata.creationTimestamp}')" +%s) - $(date -d "$(jp pod smr-0 -o 'jsonpath={.metadata.creationTimestamp}')" +%s) ))
check "statefulset minReadySeconds: smr-1 made only once smr-0 was available ($gap s)" test "$gap" -ge 3
# OnDelete: the template change waits for the user's deletions
sts sod 'replicas: 2' 'updateStrategy: {type: OnDelete}'
wait_for 60 out_is "2 img:1" images sod
kc set image sts/sod c=img:2 >/dev/null
sleep 3
check "statefulset OnDelete: nothing replaced by the template change" out_is "2 img:1" images sod
kc delete pod sod-1 --wait=false >/dev/null
check "statefulset OnDelete: the deleted pod comes back with the new template" wait_for 60 out_is "$(printf '1 img:1\n1 img:2')" images sod
check "statefulset OnDelete: updatedReplicas 1, currentRevision still the old one" wait_for 20 bash -c "s=\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get sts sod -o jsonpath='{.status.updatedReplicas} {.status.currentReplicas} {.status.currentRevision} {.status.updateRevision}'); set -- \$s; [ \"\$1 \$2\" = '1 1' ] && [ \"\$3\" != \"\$4\" ]"
# ordinals.start
sts sord 'replicas: 2' 'ordinals: {start: 5}'
check "statefulset ordinals.start: pods sord-5 sord-6" wait_for 60 out_is "sord-5 sord-6" pod_names sord
check "statefulset ordinals.start: pod-index label and claim follow the ordinal" out_is "6 data-sord-6" \
    jp pod sord-6 -o 'jsonpath={.metadata.labels.apps\.kubernetes\.io/pod-index} {.spec.volumes[?(@.name=="data")].persistentVolumeClaim.claimName}'
kc scale sts sord --replicas=1 >/dev/null
check "statefulset ordinals.start: scale down removes sord-6" wait_for 60 out_is "sord-5" pod_names sord
kc delete sts swait smr sod sord >/dev/null

# ---------------------------------------------------------------- DaemonSet
evmsg() { jp events --field-selector "involvedObject.name=$1,reason=$2" -o 'jsonpath={.items[0].message}'; }
ds() {   # ds NAME IMAGE [NODESELECTOR-LINE]
    apply <<Y
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: $1}
spec:
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      ${3:-}
      containers: [{name: c, image: $2}]
Y
}
ds dsall img:1
check "daemonset: rollout status (one pod per node)" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout status ds/dsall --timeout=60s >/dev/null"
ds_nodes() { jp pods -l "app=$1" -o 'jsonpath={.items[*].spec.nodeName}' | tr ' ' '\n' | sort -u | grep -c .; }
check "daemonset: 3 pods on 3 distinct nodes" wait_for 20 out_is 3 ds_nodes dsall
check "daemonset: status desired/current/ready 3/3/3" field_is "3 3 3" ds dsall -o 'jsonpath={.status.desiredNumberScheduled} {.status.currentNumberScheduled} {.status.numberReady}'
kc set image ds/dsall c=img:2 >/dev/null
check "daemonset: rolling update" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout status ds/dsall --timeout=60s >/dev/null"
check "daemonset: all 3 pods run the new image" wait_for 20 out_is "3 img:2" images dsall
check "daemonset: rollout history lists revisions 1 2 (ControllerRevisions)" wait_for 20 out_is "1 2" hist_revs ds/dsall
check "daemonset: rollout history --revision=1 shows img:1" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout history ds/dsall --revision=1 | grep -q 'Image:.*img:1'"
check "daemonset: rollout undo" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout undo ds/dsall | grep -q 'rolled back'"
check "daemonset: undo brings img:1 back to every pod" wait_for 60 out_is "3 img:1" images dsall
check "daemonset: revision 1 renumbered to 3 (history 2 3)" wait_for 20 out_is "2 3" hist_revs ds/dsall
check "daemonset: rollout undo --to-revision=2" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout undo ds/dsall --to-revision=2 | grep -q 'rolled back'"
ds_back_on_2() { out_is "3 img:2" images dsall && out_is "3 4" hist_revs ds/dsall; }
check "daemonset: back on img:2 (history 3 4)" wait_for 60 ds_back_on_2
# the rollout commands of kubectl 1.27 (older client code paths) on the same daemon set
check "daemonset (kubectl 1.27): rollout history lists 3 4" out_is "3 4" bash -c "'$K127' --kubeconfig '$data/kubeconfig' rollout history ds/dsall | awk '\$1 ~ /^[0-9]+\$/ {print \$1}' | paste -sd' '"
check "daemonset (kubectl 1.27): rollout undo" bash -c "'$K127' --kubeconfig '$data/kubeconfig' rollout undo ds/dsall | grep -q 'rolled back'"
check "daemonset (kubectl 1.27): rollout status" bash -c "'$K127' --kubeconfig '$data/kubeconfig' rollout status ds/dsall --timeout=60s >/dev/null"
check "daemonset (kubectl 1.27): undo brought img:1 back" wait_for 60 out_is "3 img:1" images dsall
# maxSurge: the new pod starts next to the old one, which goes once the new one is available;
# nodes never lack an available pod (maxUnavailable 0)
apply <<'Y'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: dsurge}
spec:
  minReadySeconds: 2
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  selector: {matchLabels: {app: dsurge}}
  template:
    metadata: {labels: {app: dsurge}}
    spec: {containers: [{name: c, image: img:1}]}
Y
check "daemonset maxSurge: rollout status" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout status ds/dsurge --timeout=60s >/dev/null"
check "daemonset: numberAvailable 3 after minReadySeconds" wait_for 20 out_is "3 3" jp ds dsurge -o 'jsonpath={.status.numberAvailable} {.status.updatedNumberScheduled}'
kc set image ds/dsurge c=img:2 >/dev/null
surge_max=0; surge_min_avail=3
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
    n=$(jp pods -l app=dsurge -o 'jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.metadata.name}{"\n"}{end}' | grep -c '^|')
    [ "$n" -gt "$surge_max" ] && surge_max=$n
    a=$(jp ds dsurge -o 'jsonpath={.status.numberAvailable}')
    [ -n "$a" ] && [ "$a" -lt "$surge_min_avail" ] && surge_min_avail=$a
    [ "$(images dsurge)" = "3 img:2" ] && [ "$n" = 3 ] && break
    sleep 0.3
done
check "daemonset maxSurge: all 3 nodes moved to img:2" out_is "3 img:2" images dsurge
check "daemonset maxSurge: one node at a time ran old and new side by side (max $surge_max pods not being deleted)" test "$surge_max" = 4
check "daemonset maxSurge: numberAvailable never dropped below 3 ($surge_min_avail)" test "$surge_min_avail" = 3
check "daemonset maxSurge: rollout status completes" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' rollout status ds/dsurge --timeout=60s >/dev/null"
# OnDelete: a template change replaces nothing until a pod is deleted
apply <<'Y'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: dsod}
spec:
  updateStrategy: {type: OnDelete}
  selector: {matchLabels: {app: dsod}}
  template:
    metadata: {labels: {app: dsod}}
    spec: {containers: [{name: c, image: img:1}]}
Y
check "daemonset OnDelete: 3 pods" wait_for 30 out_is "3 img:1" images dsod
kc set image ds/dsod c=img:2 >/dev/null
sleep 3
check "daemonset OnDelete: nothing replaced by the template change" out_is "3 img:1" images dsod
check "daemonset OnDelete: updatedNumberScheduled 0" wait_for 10 out_is "0" jp ds dsod -o 'jsonpath={.status.updatedNumberScheduled}'
kc delete pod "$(jp pods -l app=dsod -o 'jsonpath={.items[0].metadata.name}')" --wait=false >/dev/null
check "daemonset OnDelete: the deleted pod comes back with the new template" wait_for 30 out_is "$(printf '2 img:1\n1 img:2')" images dsod
check "daemonset OnDelete: updatedNumberScheduled 1" wait_for 10 out_is "1" jp ds dsod -o 'jsonpath={.status.updatedNumberScheduled}'
kc delete ds dsurge dsod >/dev/null
# taints: an untolerated NoSchedule taint keeps the running pod (misscheduled) but no new one is
# made; an untolerated NoExecute taint removes it; the automatic daemon tolerations let pods onto
# unschedulable nodes, and onto network-unavailable ones only with hostNetwork
ds dstol img:1
check "daemonset taints: 3 pods before tainting" wait_for 30 out_is 3 ds_nodes dstol
kc taint node hollow-node-2 e2e=x:NoSchedule >/dev/null
check "daemonset taints: NoSchedule keeps the pod, numberMisscheduled 1, desired 2" wait_for 20 out_is "1 2 2" \
    jp ds dstol -o "jsonpath={.status.numberMisscheduled} {.status.desiredNumberScheduled} {.status.currentNumberScheduled}"
check "daemonset taints: the pod on the NoSchedule node still runs" out_is 3 ds_nodes dstol
ds dsnew img:1
check "daemonset taints: a new daemon set skips the NoSchedule node" wait_for 30 out_is "2" jp ds dsnew -o 'jsonpath={.status.desiredNumberScheduled}'
check "daemonset taints: ...and has 2 pods" wait_for 30 out_is 2 ds_nodes dsnew
kc taint node hollow-node-2 e2e=x:NoExecute >/dev/null
check "daemonset taints: NoExecute removes the pod" wait_for 30 out_is 2 ds_nodes dstol
check "daemonset taints: ...numberMisscheduled 0" wait_for 10 out_is 0 jp ds dstol -o 'jsonpath={.status.numberMisscheduled}'
kc taint node hollow-node-2 e2e- >/dev/null
kc taint node hollow-node-1 node.kubernetes.io/unschedulable:NoSchedule node.kubernetes.io/network-unavailable:NoSchedule >/dev/null
check "daemonset taints: back to 3 pods once untainted" wait_for 30 out_is 3 ds_nodes dstol
ds dsnet img:1
apply <<'Y'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: dshost}
spec:
  selector: {matchLabels: {app: dshost}}
  template:
    metadata: {labels: {app: dshost}}
    spec: {hostNetwork: true, containers: [{name: c, image: img:1}]}
Y
check "daemonset tolerations: network-unavailable keeps a pod-network daemon off (desired 2)" wait_for 30 out_is "2" jp ds dsnet -o 'jsonpath={.status.desiredNumberScheduled}'
check "daemonset tolerations: a hostNetwork daemon runs on unschedulable + network-unavailable nodes (3)" wait_for 30 out_is 3 ds_nodes dshost
check "daemonset tolerations: the pods carry the automatic tolerations" out_is "NoSchedule" \
    jp pods -l app=dshost -o 'jsonpath={.items[0].spec.tolerations[?(@.key=="node.kubernetes.io/network-unavailable")].effect}'
kc taint node hollow-node-1 node.kubernetes.io/unschedulable:NoSchedule- node.kubernetes.io/network-unavailable:NoSchedule- >/dev/null
kc delete ds dstol dsnew dsnet dshost >/dev/null
check "daemonset: the test daemon sets' pods go (gc)" wait_for 30 count_is 0 pods -l 'app in (dstol,dsnew,dsnet,dshost)'
ds dsone img:1 'nodeSelector: {kubernetes.io/hostname: hollow-node-1}'
check "daemonset: nodeSelector -> one pod, on hollow-node-1" wait_for 30 out_is hollow-node-1 jp pods -l app=dsone -o 'jsonpath={.items[*].spec.nodeName}'
# finished daemon pods: Succeeded -> deleted and replaced; Failed -> killed with a per-node backoff
# (upstream's failedPodsBackoff: 1 s, doubling) so a failing pod is not recreated in a hot loop
dsone_pod() { jp pods -l app=dsone -o 'jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name}{"\n"}{end}' | head -1; }
replaced() { local p; p=$(dsone_pod); [ -n "$p" ] && [ "$p" != "$1" ]; }
gone() { ! kc get pod "$1" >/dev/null 2>&1; }
p1=$(dsone_pod)
finish "$p1" Succeeded
check "daemonset: a Succeeded pod is deleted and replaced" wait_for 20 replaced "$p1"
check "daemonset: ...with upstream's SucceededDaemonPod event" out_is "Found succeeded daemon pod default/$p1 on node hollow-node-1, will try to delete it" evmsg dsone SucceededDaemonPod
p2=$(dsone_pod)
kfail "$p2"
check "daemonset: a Failed pod is killed and replaced" wait_for 20 replaced "$p2"
check "daemonset: ...with upstream's FailedDaemonPod event" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get events --field-selector involvedObject.name=dsone,reason=FailedDaemonPod -o jsonpath='{.items[*].message}' | grep -q 'Found failed daemon pod default/$p2 on node hollow-node-1, will try to kill it'"
# the next failures on that node wait: 1 s after the first kill, then 2 s after the second
p3=$(dsone_pod); kfail "$p3"; wait_for 20 gone "$p3"; t0=$(date +%s%N)
p4=""; wait_for 20 replaced "$p3" && p4=$(dsone_pod)
t1=$(date +%s%N); kfail "$p4"; wait_for 20 gone "$p4"; t2=$(date +%s%N)
dt=$(((t2 - t0) / 1000000)); df=$(((t1 - t0) / 1000000))
check "daemonset: the third kill in a row on a node comes 2 s after the second (${dt} ms >= 1400; failed at ${df} ms)" test "$dt" -ge 1400
check "daemonset: ...and replaced after it" wait_for 20 replaced "$p4"
kc delete ds dsall dsone >/dev/null
check "daemonset: pods go with the daemon set (gc)" wait_for 30 count_is 0 pods -l 'app in (dsall,dsone)'
check "daemonset: its ControllerRevisions go with it (gc)" wait_for 30 count_is 0 controllerrevisions -l 'app in (dsall,dsone)'

# ---------------------------------------------------------------- CronJob
check "cronjob: a job made on schedule (within a minute)" wait_for $((75 - (SECONDS - cj_start))) count_is 1 jobs -l cron=cj
check "cronjob: job named <cronjob>-<minute>, owned by it" wait_for 5 out_is "CronJob" jp jobs -l cron=cj -o 'jsonpath={.items[0].metadata.ownerReferences[0].kind}'
check "cronjob: status lastScheduleTime and active" wait_for 10 out_is "1" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get cronjob cj -o jsonpath='{.status.lastScheduleTime} {.status.active[*].name}' | awk '{print NF-1}'"
if [ $((SECONDS - cj_start)) -lt 125 ]; then sleep $((125 - (SECONDS - cj_start))); fi
check "cronjob: Forbid - no second job while the first runs (after 2 minutes)" count_is 1 jobs -l cron=cj
njobs() { kc get jobs -l "cron=$1" --no-headers 2>/dev/null | wc -l; }
check "cronjob (no timeZone): runs on the manager's local zone (TZ=Asia/Kolkata)" wait_for 10 test "$(njobs cjlocal)" -ge 1
check "cronjob (no timeZone): a schedule of the UTC hour did not run" count_is 0 jobs -l cron=cjutc
check "cronjob (no timeZone): the scheduled-timestamp annotation is UTC" bash -c "'$KUBECTL' --kubeconfig '$data/kubeconfig' get jobs -l cron=cjlocal -o jsonpath='{.items[0].metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp}' | grep -q 'Z\$'"
check "cronjob: an unknown timeZone is refused with upstream's 422" \
    grep -q 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' <<<"$cjbad_out"
check "cronjob: 180 missed minutes -> TooManyMissedTimes" out_is "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew" evmsg cjmiss TooManyMissedTimes
check "cronjob: ...and the latest missed time ran" test "$(njobs cjmiss)" -ge 1
check "cronjob: startingDeadlineSeconds bounds the look-back (no TooManyMissedTimes)" out_is "" evmsg cjwin TooManyMissedTimes
check "cronjob: startingDeadlineSeconds: runs on schedule" test "$(njobs cjwin)" -ge 1
kc delete cronjob cj cjlocal cjutc cjbad cjmiss cjwin >/dev/null
check "cronjob: its jobs go with it (gc)" wait_for 30 count_is 0 jobs -l 'cron in (cj,cjlocal,cjmiss,cjwin)'

if [ -n "${CONTROLLERS_E2E_EXTRA:-}" ]; then . "$CONTROLLERS_E2E_EXTRA"; fi

# ---------------------------------------------------------------- node lifecycle (last: it waits 40 s)
"$CK" hollow-node --kubeconfig "$data/kubeconfig" --count 1 --name-prefix lost- >"$tmp/lost.log" 2>&1 &
lost=$!
pids+=($lost)
check "node lifecycle: extra node lost-0 Ready" wait_for 30 field_is True node lost-0 -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
apply <<'Y'
apiVersion: v1
kind: Pod
metadata: {name: short}
spec:
  nodeName: lost-0
  tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}]
  containers: [{name: c, image: x}]
---
apiVersion: v1
kind: Pod
metadata: {name: forever}
spec:
  nodeName: lost-0
  tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}]
  containers: [{name: c, image: x}]
Y
check "node lifecycle: pods on lost-0 running" wait_for 30 field_is "Running Running" pods short forever -o 'jsonpath={.items[*].status.phase}'
kill -STOP "$lost"
t0=$SECONDS
check "node lifecycle: Ready=Unknown after the 40 s lease grace" wait_for 70 field_is Unknown node lost-0 -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
renew=$(jp lease lost-0 -n kube-node-lease -o 'jsonpath={.spec.renewTime}')
went=$(jp node lost-0 -o 'jsonpath={.status.conditions[?(@.type=="Ready")].lastTransitionTime}')
gap=$(( $(date -d "$went" +%s) - $(date -d "$renew" +%s) ))
check "node lifecycle: Unknown only after 40 s without renewal ($gap s)" test "$gap" -ge 39 -a "$gap" -le 50
check "node lifecycle: unreachable NoExecute taint" field_is "node.kubernetes.io/unreachable" node lost-0 -o 'jsonpath={.spec.taints[?(@.effect=="NoExecute")].key}'
check "node lifecycle: pods marked not ready" wait_for 10 field_is False pod forever -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
check "node lifecycle: pod tolerating 5 s evicted" wait_for 20 bash -c "[ -n \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get pod short -o jsonpath='{.metadata.deletionTimestamp}' 2>/dev/null)\" ] || ! '$KUBECTL' --kubeconfig '$data/kubeconfig' get pod short >/dev/null 2>&1"
check "node lifecycle: pod tolerating forever stays" test -z "$(jp pod forever -o 'jsonpath={.metadata.deletionTimestamp}')"
kill -CONT "$lost"
check "node lifecycle: node back -> Ready and untainted" wait_for 40 bash -c "[ \"\$('$KUBECTL' --kubeconfig '$data/kubeconfig' get node lost-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}/{.spec.taints}')\" = 'True/' ]"

if [ $fails -ne 0 ]; then
    echo "# $fails failure(s); the server log ends:"; tail -40 "$tmp/server.log" | sed 's/^/# /'
    exit 1
fi
echo "# all controller tests passed"

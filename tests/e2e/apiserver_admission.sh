#!/bin/bash
# tests/e2e/apiserver_admission.sh - the admission plugins, Secret stringData and the namespace
# finalize subresource of `ckube apiserver`, driven with the real kubectl 1.33 (and curl for the
# raw subresource): DefaultTolerationSeconds, Priority, ServiceAccount (incl. the kube-api-access
# token volume), LimitRanger, ResourceQuota; TokenRequest (`kubectl create token`, kubectl 1.27
# and 1.33) and pod-bound tokens.  The API server runs alone (no controller manager), so no serviceaccount
# controller makes `default` accounts in new namespaces.  Prints "ok - ..." / "not ok - ...";
# exits non-zero on failure.  Loopback only; the trap stops the server and removes the temp dir.
set -u
. "$(dirname "$0")/lib/common.sh"
K=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
T=$(mktemp -d /tmp/ckube-e2e-admission.XXXXXX)
PID=

cleanup() {
    e2e_kill "$PID"
    rm -rf "$T"
}
trap cleanup EXIT

[ -x "$K" ] || { echo "skip - admission e2e ($K not installed)"; exit 0; }

e2e_pki "$T/pki" || { notok "generate test certificates"; cat "$T/pki/openssl.log"; exit 1; }
echo 'e2e-admin-token,admin,uid-1,"system:masters"' >"$T/pki/tokens.csv"

"$CKUBE" apiserver --data-dir "$T/data" --secure-port 0 --bind-address 127.0.0.1 \
    --tls-cert-file "$T/pki/apiserver.crt" --tls-private-key-file "$T/pki/apiserver.key" \
    --token-auth-file "$T/pki/tokens.csv" --service-account-signing-key-file "$T/pki/sa.key" \
    --workers 2 >"$T/apiserver.log" 2>&1 &
PID=$!
PORT=$(e2e_apiserver_port "$PID" "$T/apiserver.log")
[ -n "$PORT" ] || { notok "apiserver starts"; cat "$T/apiserver.log"; exit 1; }
URL=https://127.0.0.1:$PORT
AC=(curl -s --cacert "$T/pki/ca.crt" -H "Authorization: Bearer e2e-admin-token")
for _ in $(seq 50); do [ "$("${AC[@]}" "$URL/readyz")" = ok ] && break; sleep 0.1; done
cat >"$T/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority: $T/pki/ca.crt, server: "$URL"}
  name: e2e
contexts:
- context: {cluster: e2e, user: admin}
  name: e2e
current-context: e2e
users:
- name: admin
  user: {token: e2e-admin-token}
EOF
export KUBECONFIG=$T/kubeconfig HOME=$T/home
mkdir -p "$HOME"
k() { "$K" "$@"; }
jp() { "$K" get "$@" 2>&1; }

# pod NAME [spec lines...]: a pod manifest on stdout
pod() {
    local name=$1; shift
    printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n' "$name"
    local l
    for l in "$@"; do printf '  %s\n' "$l"; done
    printf '  containers:\n  - name: c\n    image: busybox:1.36\n%s' "${CTR:-}"
}

# ---- DefaultTolerationSeconds, ServiceAccount, Priority (defaults) ----
expect "bootstrap made the default service account" "default" jp sa default -n default -o name
pod plain | k create -f - >/dev/null 2>&1
expect "DefaultTolerationSeconds: not-ready and unreachable for 300s" \
    "node.kubernetes.io/not-ready:NoExecute:300 node.kubernetes.io/unreachable:NoExecute:300" \
    jp pod plain -o 'jsonpath={range .spec.tolerations[*]}{.key}:{.effect}:{.tolerationSeconds} {end}'
expect "ServiceAccount: serviceAccountName defaults to default" "default/default" \
    jp pod plain -o 'jsonpath={.spec.serviceAccountName}/{.spec.serviceAccount}'
expect "Priority: no class and no globalDefault -> 0, PreemptLowerPriority" "0/PreemptLowerPriority" \
    jp pod plain -o 'jsonpath={.spec.priority}/{.spec.preemptionPolicy}'
pod tolerant "tolerations:" "- operator: Exists" | k create -f - >/dev/null 2>&1
expect "a pod tolerating every taint gets no extra tolerations" "1" \
    jp pod tolerant -o 'jsonpath={.spec.tolerations[*].operator}' -o go-template='{{len .spec.tolerations}}'
pod partial "tolerations:" "- {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}" | k create -f - >/dev/null 2>&1
expect "an existing unreachable toleration is kept, not-ready added" "node.kubernetes.io/unreachable:5 node.kubernetes.io/not-ready:300" \
    jp pod partial -o 'jsonpath={range .spec.tolerations[*]}{.key}:{.tolerationSeconds} {end}'
expect "an update keeps priority and tolerations" "pod/plain labeled" k label pod plain x=y

# ---- ServiceAccount: the token volume; TokenRequest ----
expect "ServiceAccount: a kube-api-access-* volume" "kube-api-access-" jp pod plain -o 'jsonpath={.spec.volumes[0].name}'
expect "ServiceAccount: it projects token, kube-root-ca.crt and namespace" ":token:kube-root-ca.crt:namespace" \
    jp pod plain -o 'jsonpath=:{.spec.volumes[0].projected.sources[0].serviceAccountToken.path}:{.spec.volumes[0].projected.sources[1].configMap.name}:{.spec.volumes[0].projected.sources[2].downwardAPI.items[0].path}'
expect "ServiceAccount: mounted read-only at the token path" "/var/run/secrets/kubernetes.io/serviceaccount:true" \
    jp pod plain -o 'jsonpath={.spec.containers[0].volumeMounts[0].mountPath}:{.spec.containers[0].volumeMounts[0].readOnly}'
pod noauto "automountServiceAccountToken: false" | k create -f - >/dev/null 2>&1
expect "ServiceAccount: automountServiceAccountToken false: no volume" "none" \
    jp pod noauto -o 'jsonpath={.spec.volumes[*].name}none'
for KV in 1.27 1.33; do
    KK=/usr/lib/google-cloud-sdk/bin/kubectl.$KV
    [ -x "$KK" ] || { echo "skip - create token with kubectl $KV (not installed)"; continue; }
    TOK=$("$KK" create token default 2>&1)
    expect "kubectl $KV create token default gives a JWT" "eyJ" echo "$TOK"
    expect "kubectl $KV --token=<it> auth whoami: the service account" "system:serviceaccount:default:default" \
        "$KK" --token="$TOK" auth whoami
    expect "kubectl $KV auth whoami shows the service account groups" "system:serviceaccounts:default" \
        "$KK" --token="$TOK" auth whoami
done
pod bound | k create -f - >/dev/null 2>&1
BTOK=$(k create token default --bound-object-kind Pod --bound-object-name bound 2>&1)
expect "a token bound to a pod authenticates" "system:serviceaccount:default:default" k --token="$BTOK" auth whoami
expect "binding to a missing pod is 404" 'pods "ghost" not found' k create token default --bound-object-kind Pod --bound-object-name ghost
expect "binding to a pod's wrong uid is 409" "does not match the UID in record" \
    k create token default --bound-object-kind Pod --bound-object-name bound --bound-object-uid 00000000-0000-0000-0000-000000000000
k delete pod bound --grace-period=0 --force >/dev/null 2>&1
expect "the bound token is refused once its pod is deleted" "Unauthorized" k --token="$BTOK" auth whoami
pod bound | k create -f - >/dev/null 2>&1
expect "and stays refused when a pod of that name is re-created" "Unauthorized" k --token="$BTOK" auth whoami

# ---- Priority ----
expect "create priorityclass" "priorityclass.scheduling.k8s.io/high created" k create priorityclass high --value=1000 --preemption-policy=Never
pod vip "priorityClassName: high" | k create -f - >/dev/null 2>&1
expect "Priority: spec.priority and preemptionPolicy from the class" "1000/Never" \
    jp pod vip -o 'jsonpath={.spec.priority}/{.spec.preemptionPolicy}'
expect "Priority: unknown class is Forbidden" \
    'Error from server (Forbidden): error when creating "STDIN": pods "lost" is forbidden: no PriorityClass with name nope was found' \
    k create -f - < <(pod lost "priorityClassName: nope")
pod crit "priorityClassName: system-node-critical" | k -n kube-system create -f - >/dev/null 2>&1
expect "Priority: system-node-critical is built in" "2000001000" jp pod crit -n kube-system -o 'jsonpath={.spec.priority}'
expect "Priority: a priority that disagrees with the class is Forbidden" \
    "the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name" \
    k create -f - < <(pod bad-prio "priorityClassName: high" "priority: 7")
expect "create a globalDefault class" "created" k create priorityclass dflt --value=50 --global-default=true
pod defaulted | k create -f - >/dev/null 2>&1
expect "Priority: the globalDefault class applies when none is named" "dflt/50" \
    jp pod defaulted -o 'jsonpath={.spec.priorityClassName}/{.spec.priority}'
expect "a second globalDefault class is Forbidden" \
    'priorityclasses.scheduling.k8s.io "dflt2" is forbidden: PriorityClass dflt is already marked as default. Only one default can exist' \
    k create priorityclass dflt2 --value=60 --global-default=true
k delete priorityclass dflt >/dev/null 2>&1

# ---- ServiceAccount ----
k create ns sa-less >/dev/null 2>&1
expect "ServiceAccount: no default account in the namespace is Forbidden" \
    'pods "orphan" is forbidden: error looking up service account sa-less/default: serviceaccounts "default" not found' \
    k -n sa-less create -f - < <(pod orphan)
# the wait for a default account does not hold a request thread (--workers 2): three creates
# wait at once, the server still answers, the pool did not grow for them, and the account that
# appears meanwhile is taken
retries() { "${AC[@]}" "$URL/metrics" | awk '$1 == "ckube_apiserver_retries_total" {print $2}'; }
k create ns sa-late >/dev/null 2>&1
r0=$(retries)
for i in 1 2 3; do k -n sa-late create -f - < <(pod "late$i") >"$T/late$i.out" 2>&1 & done
# once a create is waiting (served again later), the account appears (well within the ~1.4 s
# the lookups last), by curl: kubectl takes too long to start on a loaded machine
for _ in $(seq 200); do [ "$(retries)" -gt "${r0:-0}" ] && break; sleep 0.05; done
expect "ServiceAccount: the server answers while creates wait for an account" '"name":"sa-late"' \
    "${AC[@]}" -m 2 "$URL/api/v1/namespaces/sa-late"
"${AC[@]}" -H 'Content-Type: application/json' -d '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}' \
    "$URL/api/v1/namespaces/sa-late/serviceaccounts" >/dev/null
[ "$(retries)" -gt "${r0:-0}" ] && ok "ServiceAccount: a create found no account and waits off its worker" ||
    notok "ServiceAccount: a create found no account and waits off its worker"
wait_ok=1
for i in 1 2 3; do
    for _ in $(seq 150); do grep -q . "$T/late$i.out" && break; sleep 0.1; done
    grep -q "pod/late$i created" "$T/late$i.out" || { wait_ok=0; cat "$T/late$i.out"; }
done
[ $wait_ok = 1 ] && ok "ServiceAccount: pods created before their default account appeared get it" ||
    notok "ServiceAccount: pods created before their default account appeared get it"
expect "ServiceAccount: the waiting pod names the account" "default" \
    jp pod late2 -n sa-late -o 'jsonpath={.spec.serviceAccountName}'
nworkers=$(grep -l '^http-worker$' /proc/"$PID"/task/*/comm 2>/dev/null | wc -l)
[ "$nworkers" = 2 ] && ok "ServiceAccount: the waits held no worker (2 http-worker threads)" ||
    notok "ServiceAccount: the waits held no worker (2 http-worker threads, saw $nworkers)"
k -n sa-less create sa robot >/dev/null 2>&1
k -n sa-less patch sa robot -p '{"imagePullSecrets":[{"name":"regcred"}]}' >/dev/null 2>&1
expect "ServiceAccount: a named account that exists is fine" "pod/robotic created" \
    k -n sa-less create -f - < <(pod robotic "serviceAccountName: robot")
expect "ServiceAccount: the account's imagePullSecrets are copied" "regcred" \
    jp pod robotic -n sa-less -o 'jsonpath={.spec.imagePullSecrets[*].name}'

# ---- LimitRanger ----
k create ns limited >/dev/null 2>&1
k -n limited create sa default >/dev/null 2>&1
k -n limited create -f - >/dev/null 2>&1 <<EOF
apiVersion: v1
kind: LimitRange
metadata: {name: lr}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 128Mi}
    defaultRequest: {cpu: 250m}
    max: {cpu: "1"}
EOF
pod dflt-res | k -n limited create -f - >/dev/null 2>&1
expect "LimitRanger: default limits and requests" "250m/500m/128Mi/128Mi" \
    jp pod dflt-res -n limited -o 'jsonpath={.spec.containers[0].resources.requests.cpu}/{.spec.containers[0].resources.limits.cpu}/{.spec.containers[0].resources.requests.memory}/{.spec.containers[0].resources.limits.memory}'
expect "LimitRanger: the QoS class sees the defaults" "Burstable" jp pod dflt-res -n limited -o 'jsonpath={.status.qosClass}'
CTR=$'    resources: {limits: {cpu: "2"}}\n' expect "LimitRanger: over max is Forbidden" \
    'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' \
    k -n limited create -f - < <(CTR=$'    resources: {limits: {cpu: "2"}}\n' pod big)

# ---- ResourceQuota ----
k create ns quoted >/dev/null 2>&1
k -n quoted create sa default >/dev/null 2>&1
expect "create quota" "resourcequota/q created" k -n quoted create quota q --hard=pods=2,configmaps=20
expect "quota status: hard and used filled at create" "2/0" jp quota q -n quoted -o 'jsonpath={.status.hard.pods}/{.status.used.pods}'
pod q1 | k -n quoted create -f - >/dev/null 2>&1
pod q2 | k -n quoted create -f - >/dev/null 2>&1
expect "quota status.used counts created pods" "2" jp quota q -n quoted -o 'jsonpath={.status.used.pods}'
expect "ResourceQuota: exceeding it is Forbidden" \
    'pods "q3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2' \
    k -n quoted create -f - < <(pod q3)
expect "kubectl describe quota shows used and hard" "pods        2     2" k -n quoted describe quota q
k -n quoted delete pod q1 --wait=false >/dev/null 2>&1
expect "quota status.used drops after a delete" "1" jp quota q -n quoted -o 'jsonpath={.status.used.pods}'
expect "room again after the delete" "pod/q3 created" k -n quoted create -f - < <(pod q3)
expect "dry run is charged nothing" "created (server dry run)" k -n quoted create cm dry --from-literal=a=b --dry-run=server
k -n quoted create cm real --from-literal=a=b >/dev/null 2>&1
expect "configmaps counted" "1" jp quota q -n quoted -o 'jsonpath={.status.used.configmaps}'
k create ns cpuq >/dev/null 2>&1
k -n cpuq create sa default >/dev/null 2>&1
k -n cpuq create quota cpu --hard=requests.cpu=1,limits.memory=1Gi >/dev/null 2>&1
expect "ResourceQuota: a pod that does not state what the quota tracks is Forbidden" \
    'pods "nores" is forbidden: failed quota: cpu: must specify limits.memory for: c; requests.cpu for: c' \
    k -n cpuq create -f - < <(pod nores)
R=$'    resources: {requests: {cpu: 600m}, limits: {memory: 512Mi}}\n'
CTR=$R pod c1 | k -n cpuq create -f - >/dev/null 2>&1
expect "quota sums requests" "600m/512Mi" jp quota cpu -n cpuq -o 'jsonpath={.status.used.requests\.cpu}/{.status.used.limits\.memory}'
expect "ResourceQuota: cpu over the hard limit" \
    'pods "c2" is forbidden: exceeded quota: cpu, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1' \
    k -n cpuq create -f - < <(CTR=$R pod c2)

# ---- Secret stringData ----
k create -f - >/dev/null 2>&1 <<EOF
apiVersion: v1
kind: Secret
metadata: {name: sd}
data: {keep: a2VlcA==, over: b2xk}
stringData: {over: new, plain: hello}
EOF
expect "stringData merged into data as base64" "a2VlcA==/bmV3/aGVsbG8=" jp secret sd -o 'jsonpath={.data.keep}/{.data.over}/{.data.plain}'
expect_not "stringData is not stored" "stringData" jp secret sd -o json
expect "stringData on update" "secret/sd patched" k patch secret sd --type=merge -p '{"stringData":{"plain":"again"}}'
expect "update merged stringData" "YWdhaW4=" jp secret sd -o 'jsonpath={.data.plain}'

# ---- namespace finalize ----
k create ns doomed >/dev/null 2>&1
k create cm -n doomed x --from-literal=a=b >/dev/null 2>&1
k delete ns doomed --wait=false >/dev/null 2>&1
expect "namespace waits for its finalizer" "Terminating" k get ns doomed
printf '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"},"spec":{"finalizers":[]}}' >"$T/fin.json"
expect "PUT finalize with no finalizers answers the namespace" '"name":"doomed"' k replace --raw /api/v1/namespaces/doomed/finalize -f "$T/fin.json"
expect "the finalized namespace is gone" 'namespaces "doomed" not found' k get ns doomed
k create ns held >/dev/null 2>&1
k patch ns held --type=merge -p '{"metadata":{"finalizers":["e2e/hold"]}}' >/dev/null 2>&1
k delete ns held --wait=false >/dev/null 2>&1
sed 's/doomed/held/' "$T/fin.json" >"$T/fin2.json"
k replace --raw /api/v1/namespaces/held/finalize -f "$T/fin2.json" >/dev/null 2>&1
expect "a metadata finalizer still holds a finalized namespace" "Terminating" k get ns held
k patch ns held --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
expect "removing the last metadata finalizer removes it" 'namespaces "held" not found' k get ns held

e2e_stop_checked apiserver "$PID" "$T/apiserver.log" && PID=
e2e_sanitizer_check "$T/apiserver.log"
exit $FAILED

#!/bin/bash
# tests/e2e/apiserver_kubectl.sh - drive `ckube apiserver` with the REAL kubectl (1.27 and 1.33,
# each with a fresh HOME so the discovery cache is clean) and the official Python client, over
# HTTPS with x509 client certificates made here with the openssl CLI.  Asserts output texts and
# upstream error messages.  Prints "ok - ..." / "not ok - ..." lines; exits non-zero on failure.
set -u
. "$(dirname "$0")/lib/common.sh"
KBIN=/usr/lib/google-cloud-sdk/bin
VERSIONS=${KUBECTL_VERSIONS:-"1.27 1.33"}
T=$(mktemp -d /tmp/ckube-e2e-apiserver.XXXXXX)
PID=
WATCHPID=
ETCDPID=

cleanup() {
    [ -n "$WATCHPID" ] && kill "$WATCHPID" 2>/dev/null
    e2e_kill "$PID"
    if [ -n "$ETCDPID" ]; then
        kill "$ETCDPID" 2>/dev/null
        wait "$ETCDPID" 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT

# every check is named after the client that made it: "server", a kubectl version or "python"
setv() { V=$1; EXPECT_PREFIX="$V "; }

# ---- certificates ----
e2e_pki "$T/pki" client || { notok "generate test certificates"; cat "$T/pki/openssl.log"; exit 1; }
echo 'e2e-token-1,token-user,uid-7,"team-a,team-b"' >"$T/pki/tokens.csv"

# ---- start the apiserver on a free loopback port (STORE=etcd: on a throwaway etcd) ----
STORE_FLAGS=()
if [ "${STORE:-sqlite}" = etcd ]; then
    # ports the kernel just handed out (a random pick could be in use: etcd then exits at once),
    # and up to 60 s for etcd to answer on a loaded machine; a new pair if it died anyway
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    for _ in 1 2 3; do
        EP=$(free_port) PP=$(free_port)
        etcd --data-dir "$T/etcd" --listen-client-urls "http://127.0.0.1:$EP" \
            --advertise-client-urls "http://127.0.0.1:$EP" --listen-peer-urls "http://127.0.0.1:$PP" \
            --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
            --initial-cluster "default=http://127.0.0.1:$PP" >>"$T/etcd.log" 2>&1 &
        ETCDPID=$!
        for _ in $(seq 300); do
            curl -s "http://127.0.0.1:$EP/health" | grep -q true && break 2
            kill -0 "$ETCDPID" 2>/dev/null || break
            sleep 0.2
        done
        kill "$ETCDPID" 2>/dev/null; wait "$ETCDPID" 2>/dev/null; ETCDPID=
        rm -rf "$T/etcd"
    done
    [ -n "$ETCDPID" ] || { notok "etcd starts"; tail -n 20 "$T/etcd.log"; exit 1; }
    STORE_FLAGS=(--etcd-servers "http://127.0.0.1:$EP")
fi
"$CKUBE" apiserver --data-dir "$T/data" --secure-port 0 --bind-address 127.0.0.1 \
    --tls-cert-file "$T/pki/apiserver.crt" --tls-private-key-file "$T/pki/apiserver.key" \
    --client-ca-file "$T/pki/ca.crt" --token-auth-file "$T/pki/tokens.csv" "${STORE_FLAGS[@]}" \
    --service-account-signing-key-file "$T/pki/sa.key" --service-account-key-file "$T/pki/sa.pub" \
    >"$T/apiserver.log" 2>&1 &
PID=$!
PORT=$(e2e_apiserver_port "$PID" "$T/apiserver.log")
if [ -z "$PORT" ]; then
    notok "apiserver starts"; cat "$T/apiserver.log"; exit 1
fi
URL=https://127.0.0.1:$PORT
CURL=(curl -s --cacert "$T/pki/ca.crt")
setv server
expect "readyz answers ok" "ok" "${CURL[@]}" "$URL/readyz"
expect "readyz?verbose lists checks" "[+]etcd ok" "${CURL[@]}" "$URL/readyz?verbose"
expect "anonymous /version allowed" '"gitVersion"' "${CURL[@]}" "$URL/version"
expect "anonymous API request is 401" '"code":401' "${CURL[@]}" "$URL/api/v1/namespaces"
expect "bearer token authenticates" '"kind":"NamespaceList"' "${CURL[@]}" -H "Authorization: Bearer e2e-token-1" "$URL/api/v1/namespaces"
expect "bad bearer token is 401" '"reason":"Unauthorized"' "${CURL[@]}" -H "Authorization: Bearer nope" "$URL/api/v1/namespaces"
ADMIN=(--cert "$T/pki/admin.crt" --key "$T/pki/admin.key")
expect "metrics exposes request counts" "apiserver_request_total" "${CURL[@]}" "${ADMIN[@]}" "$URL/metrics"
expect "bootstrap: kubernetes service at 10.96.0.1" '"clusterIP":"10.96.0.1"' "${CURL[@]}" "${ADMIN[@]}" "$URL/api/v1/namespaces/default/services/kubernetes"
expect "bootstrap: priority classes" "system-node-critical" "${CURL[@]}" "${ADMIN[@]}" "$URL/apis/scheduling.k8s.io/v1/priorityclasses"
expect "unknown path is a 404 Status" '"reason":"NotFound"' "${CURL[@]}" "${ADMIN[@]}" "$URL/api/v1/nosuchthings"
expect "malformed JSON is a 400 Status" '"code":400' "${CURL[@]}" "${ADMIN[@]}" -X POST -H 'Content-Type: application/json' --data-binary '{"metadata":' "$URL/api/v1/namespaces/default/configmaps"
head -c 4000000 /dev/zero | tr '\0' 'a' >"$T/big.json"
expect "body over 3 MiB is refused with 413" "413" "${CURL[@]}" "${ADMIN[@]}" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @"$T/big.json" "$URL/api/v1/namespaces/default/configmaps"
python3 -c 'print("{\"a\":" * 5000 + "1" + "}" * 5000)' >"$T/deep.json"
expect "deep nesting is a 4xx Status" '"status":"Failure"' "${CURL[@]}" "${ADMIN[@]}" -X POST -H 'Content-Type: application/json' --data-binary @"$T/deep.json" "$URL/api/v1/namespaces/default/configmaps"
printf '{"metadata":{"name":"u\xff\xfe"}}' >"$T/badutf8.json"
expect "bad UTF-8 is a 400 Status" '"code":400' "${CURL[@]}" "${ADMIN[@]}" -X POST -H 'Content-Type: application/json' --data-binary @"$T/badutf8.json" "$URL/api/v1/namespaces/default/configmaps"
printf 'k8s\000\012\377\377\377\377\017garbage' >"$T/bad.pb"
expect "malformed protobuf is a 400 Status" '"code":400' "${CURL[@]}" "${ADMIN[@]}" -X POST -H 'Content-Type: application/vnd.kubernetes.protobuf' --data-binary @"$T/bad.pb" "$URL/api/v1/namespaces/default/configmaps"
printf 'a: [b\n  - : {' >"$T/bad.yaml"
expect "malformed YAML is a 400 Status" '"code":400' "${CURL[@]}" "${ADMIN[@]}" -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @"$T/bad.yaml" "$URL/api/v1/namespaces/default/configmaps/x?fieldManager=e2e"
expect "unsupported patch type is 415" '"code":415' "${CURL[@]}" "${ADMIN[@]}" -X PATCH -H 'Content-Type: text/plain' --data-binary 'x' "$URL/api/v1/namespaces/default/configmaps/x"
expect "server still alive after bad input" "ok" "${CURL[@]}" "$URL/healthz"

# ---- watch semantics over the wire ----
AC=("${CURL[@]}" "${ADMIN[@]}")
CM=$URL/api/v1/namespaces/default/configmaps
JSON=(-H 'Content-Type: application/json')
RV=$("${AC[@]}" "$CM" | sed -n 's/.*"resourceVersion":"\([0-9]*\)".*/\1/p' | head -n 1)
"${AC[@]}" -N "$CM?watch=true&resourceVersion=$RV&labelSelector=sel%3Dyes&timeoutSeconds=4" >"$T/w1.out" &
W1=$!
"${AC[@]}" -N "$CM?watch=true&resourceVersion=$RV&timeoutSeconds=4&allowWatchBookmarks=true" >"$T/w2.out" &
W2=$!
sleep 0.5
"${AC[@]}" "${JSON[@]}" -X POST "$CM" -d '{"metadata":{"name":"wsel","labels":{"sel":"yes"}}}' >/dev/null
"${AC[@]}" -X PATCH -H 'Content-Type: application/merge-patch+json' "$CM/wsel" -d '{"metadata":{"labels":{"sel":"no"}}}' >/dev/null
"${AC[@]}" -X PATCH -H 'Content-Type: application/merge-patch+json' "$CM/wsel" -d '{"metadata":{"labels":{"sel":"yes"}}}' >/dev/null
"${AC[@]}" -X DELETE "$CM/wsel" >/dev/null
WSTART=$SECONDS
wait "$W1" "$W2"
WTOOK=$((SECONDS - WSTART))
types() { sed -n 's/^{"type":"\([A-Z]*\)".*/\1/p' "$1" | tr '\n' ' '; }
expect "watch with a label selector: leaving = DELETED, entering = ADDED" "ADDED DELETED ADDED DELETED" types "$T/w1.out"
expect "watch without selector: ADDED MODIFIED MODIFIED DELETED" "ADDED MODIFIED MODIFIED DELETED" types "$T/w2.out"
[ "$WTOOK" -le 8 ] && ok "watch ends at timeoutSeconds" || notok "watch ends at timeoutSeconds (took ${WTOOK}s)"
# a short watch behind a long one: the server's reaper sleeps until the soonest deadline, and a
# new watch with a sooner one must wake it
"${AC[@]}" -N --max-time 40 "$CM?watch=true&timeoutSeconds=30" >/dev/null &
WATCHPID=$!
sleep 0.5
WSTART=$SECONDS
"${AC[@]}" -N "$CM?watch=true&timeoutSeconds=1" >/dev/null
WTOOK=$((SECONDS - WSTART))
[ "$WTOOK" -le 3 ] && ok "a watch ends at its timeoutSeconds behind a longer one" || notok "a watch ends at its timeoutSeconds behind a longer one (took ${WTOOK}s)"
kill "$WATCHPID" 2>/dev/null; wait "$WATCHPID" 2>/dev/null; WATCHPID=
expect "watch with sendInitialEvents ends the initial list with a bookmark" '"k8s.io/initial-events-end":"true"' "${AC[@]}" -N "$CM?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
expect "watch with sendInitialEvents sends ADDED for existing objects" '{"type":"ADDED"' "${AC[@]}" -N "$URL/api/v1/namespaces?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
expect "watch from a compacted revision: ERROR 410 Expired" '"code":410' "${AC[@]}" -N "$CM?watch=true&resourceVersion=1&timeoutSeconds=2"
expect "watch as Table for kubectl get -w" '"kind":"Table"' "${AC[@]}" -N -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io' "$URL/api/v1/namespaces?watch=true&timeoutSeconds=1"
for i in 1 2 3 4 5; do "${AC[@]}" "${JSON[@]}" -X POST "$CM" -d "{\"metadata\":{\"name\":\"page$i\",\"labels\":{\"page\":\"x\"}}}" >/dev/null; done
expect "list limit returns a continue token" '"continue":"' "${AC[@]}" "$CM?limit=2&labelSelector=page%3Dx"
TOK=$("${AC[@]}" "$CM?limit=2&labelSelector=page%3Dx" | sed -n 's/.*"continue":"\([^"]*\)".*/\1/p')
expect "continue returns the next page" '"name":"page3"' "${AC[@]}" "$CM?limit=2&labelSelector=page%3Dx&continue=$TOK"
expect "a bad continue token is 400" '"code":400' "${AC[@]}" "$CM?limit=2&continue=bogus"
PM='Accept: application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json'
expect "metadata-only list (PartialObjectMetadataList)" '"kind":"PartialObjectMetadataList"' "${AC[@]}" -H "$PM" "$URL/api/v1/namespaces"
expect "metadata-only get (PartialObjectMetadata)" '"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"default"' "${AC[@]}" -H 'Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1' "$URL/api/v1/namespaces/default"
expect "metadata-only watch" '"object":{"kind":"PartialObjectMetadata"' "${AC[@]}" -N -H 'Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1' "$URL/api/v1/namespaces?watch=1&timeoutSeconds=1"
expect "list as Table" '"columnDefinitions"' "${AC[@]}" -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io' "$CM"
expect "stale update: 409 Conflict" '"reason":"Conflict"' "${AC[@]}" "${JSON[@]}" -X PUT "$CM/page1" -d '{"metadata":{"name":"page1","resourceVersion":"2"}}'
expect "PUT creates a missing Lease (AllowCreateOnUpdate)" '"kind":"Lease"' "${AC[@]}" "${JSON[@]}" -X PUT "$URL/apis/coordination.k8s.io/v1/namespaces/default/leases/l1" -d '{"metadata":{"name":"l1"},"spec":{"holderIdentity":"a"}}'
expect "PUT of a missing ConfigMap is 404" '"code":404' "${AC[@]}" "${JSON[@]}" -X PUT "$CM/missing-cm" -d '{"metadata":{"name":"missing-cm"}}'
"${AC[@]}" -X PATCH -H 'Content-Type: application/apply-patch+yaml' "$CM/ssa1?fieldManager=e2e-ssa" --data-binary $'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa1\ndata:\n  a: "1"\n' >/dev/null
mf() { "${AC[@]}" "$CM/ssa1" | /usr/bin/python3 -c 'import json,sys; print(" ".join(e["manager"]+":"+e["operation"] for e in json.load(sys.stdin)["metadata"]["managedFields"]))'; }
expect "server-side apply records one Apply entry" "e2e-ssa:Apply" mf
expect_not "server-side apply leaves no Update entry" "Update" mf
"${AC[@]}" -X PATCH -H 'Content-Type: application/merge-patch+json' "$CM/ssa1?fieldManager=e2e-edit" -d '{"data":{"b":"2"}}' >/dev/null
expect "a later merge patch adds its Update entry" "e2e-ssa:Apply e2e-edit:Update" mf
expect "deletecollection by label" '"kind":"ConfigMapList"' "${AC[@]}" -X DELETE "$CM?labelSelector=page%3Dx"
expect "deletecollection removed them" '"items":[]' "${AC[@]}" "$CM?labelSelector=page%3Dx"
expect "generateName" '"name":"gen-' "${AC[@]}" "${JSON[@]}" -X POST "$CM" -d '{"metadata":{"generateName":"gen-"}}'
# finalizers keep an object until they are removed
"${AC[@]}" "${JSON[@]}" -X POST "$CM" -d '{"metadata":{"name":"fin","finalizers":["e2e/hold"]}}' >/dev/null
expect "delete with a finalizer sets deletionTimestamp" '"deletionTimestamp"' "${AC[@]}" -X DELETE "$CM/fin"
expect "object with finalizer still there" '"name":"fin"' "${AC[@]}" "$CM/fin"
"${AC[@]}" -X PATCH -H 'Content-Type: application/merge-patch+json' "$CM/fin" -d '{"metadata":{"finalizers":null}}' >/dev/null
expect "removing the last finalizer deletes it" '"code":404' "${AC[@]}" "$CM/fin"
# ObjectMeta's lists are omitempty: the last finalizer removed leaves no "finalizers": []
"${AC[@]}" "${JSON[@]}" -X POST "$CM" -d '{"metadata":{"name":"fin2","finalizers":["e2e/hold"]}}' >/dev/null
"${AC[@]}" -X PATCH -H 'Content-Type: application/json-patch+json' "$CM/fin2" -d '[{"op":"remove","path":"/metadata/finalizers/0"}]' >/dev/null
expect_not "no empty finalizers list after the last is removed" '"finalizers"' "${AC[@]}" "$CM/fin2"
expect "an unknown CronJob timeZone: 422 as upstream" 'spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus' \
    "${AC[@]}" "${JSON[@]}" -X POST "$URL/apis/batch/v1/namespaces/default/cronjobs" \
    -d '{"metadata":{"name":"tz"},"spec":{"schedule":"0 * * * *","timeZone":"Mars/Olympus","jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"i"}]}}}}}}'
# pods: binding, graceful delete
PODS=$URL/api/v1/namespaces/default/pods
POD='{"metadata":{"name":"p1"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}'
"${AC[@]}" "${JSON[@]}" -X POST "$PODS" -d "$POD" >/dev/null
expect "bind a pod" '"code":201' "${AC[@]}" "${JSON[@]}" -X POST "$PODS/p1/binding" -d '{"metadata":{"name":"p1"},"target":{"kind":"Node","name":"n1"}}'
expect "binding set spec.nodeName" '"nodeName":"n1"' "${AC[@]}" "$PODS/p1"
expect "binding twice: 409" '"code":409' "${AC[@]}" "${JSON[@]}" -X POST "$PODS/p1/binding" -d '{"metadata":{"name":"p1"},"target":{"kind":"Node","name":"n2"}}'
expect "deleting a bound pod is graceful" '"deletionGracePeriodSeconds":30' "${AC[@]}" -X DELETE "$PODS/p1"
expect "delete with gracePeriodSeconds=0 removes it" '"status":"Success"' "${AC[@]}" -X DELETE "$PODS/p1?gracePeriodSeconds=0"
# service allocation
SVCS=$URL/api/v1/namespaces/default/services
expect "NodePort service gets a node port" '"nodePort":3' "${AC[@]}" "${JSON[@]}" -X POST "$SVCS" -d '{"metadata":{"name":"np1"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}'
expect "duplicate node port: 422" 'provided port is already allocated' "${AC[@]}" "${JSON[@]}" -X POST "$SVCS" -d '{"metadata":{"name":"np2"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}'
expect "duplicate cluster IP: 422" 'provided IP is already allocated' "${AC[@]}" "${JSON[@]}" -X POST "$SVCS" -d '{"metadata":{"name":"ip2"},"spec":{"clusterIP":"10.96.0.1","ports":[{"port":80}]}}'
"${AC[@]}" -X DELETE "$SVCS/np1" >/dev/null
expect "node port released on delete" '"nodePort":30080' "${AC[@]}" "${JSON[@]}" -X POST "$SVCS" -d '{"metadata":{"name":"np3"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}'
expect "dryRun=All create answers as if written" '"name":"dry1"' "${AC[@]}" "${JSON[@]}" -X POST "$CM?dryRun=All" -d '{"metadata":{"name":"dry1"}}'
expect "dryRun=All wrote nothing" '"code":404' "${AC[@]}" "$CM/dry1"
expect "fieldValidation=Strict rejects unknown fields" 'strict decoding error: unknown field \"spec.foo\"' "${AC[@]}" "${JSON[@]}" -X POST "$URL/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict" -d '{"metadata":{"name":"d1"},"spec":{"foo":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}'
expect "fieldValidation=Warn warns" 'Warning: 299 - "unknown field \"spec.foo\""' "${AC[@]}" -i "${JSON[@]}" -X POST "$URL/apis/apps/v1/namespaces/default/deployments?fieldValidation=Warn" -d '{"metadata":{"name":"d2"},"spec":{"foo":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}'
expect "scale subresource" '"kind":"Scale"' "${AC[@]}" "$URL/apis/apps/v1/namespaces/default/deployments/d2/scale"
expect "selfsubjectreview answers the token user" '"username":"token-user"' "${CURL[@]}" -H "Authorization: Bearer e2e-token-1" "${JSON[@]}" -X POST "$URL/apis/authentication.k8s.io/v1/selfsubjectreviews" -d '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}'
expect "metrics count watchers" "apiserver_registered_watchers" "${AC[@]}" "$URL/metrics"

cat >"$T/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: $T/pki/ca.crt
    server: $URL
  name: e2e
contexts:
- context: {cluster: e2e, user: admin}
  name: e2e
current-context: e2e
users:
- name: admin
  user:
    client-certificate: $T/pki/admin.crt
    client-key: $T/pki/admin.key
EOF
export KUBECONFIG=$T/kubeconfig

for V in $VERSIONS; do
    setv "$V"
    K=$KBIN/kubectl.$V
    if [ ! -x "$K" ]; then
        echo "skip - kubectl $V (not installed)"
        continue
    fi
    export HOME=$T/home-$V
    mkdir -p "$HOME"
    NS=e2e-${V/./-}
    k() { "$K" "$@"; }
    kn() { "$K" -n "$NS" "$@"; }

    expect "version" "v1.30.0-ckube" k version
    expect "api-resources lists deployments" "deployments" k api-resources
    expect "api-resources shows short names" "deploy" k api-resources --api-group=apps
    expect "cluster-info" "is running at" k cluster-info
    expect "create ns" "namespace/$NS created" k create ns "$NS"
    expect "create ns again: AlreadyExists" "Error from server (AlreadyExists): namespaces \"$NS\" already exists" k create ns "$NS"
    expect "create deployment" "deployment.apps/web created" kn create deployment web --image=nginx:1.25
    expect "create configmap" "configmap/cm1 created" kn create configmap cm1 --from-literal=a=b
    expect "create secret" "secret/s1 created" kn create secret generic s1 --from-literal=pw=x
    expect "create service" "service/svc1 created" kn create service clusterip svc1 --tcp=80:8080
    expect "create job" "job.batch/j1 created" kn create job j1 --image=busybox
    expect "service got a cluster IP" "10." kn get svc svc1 -o 'jsonpath={.spec.clusterIP}'
    # kinds 1.32+ send as protobuf too (wire doc section 3)
    VN=${V/./-}
    expect "create role" "role.rbac.authorization.k8s.io/r1 created" kn create role r1 --verb=get,list --resource=pods,deployments.apps
    expect "create rolebinding" "rolebinding.rbac.authorization.k8s.io/rb1 created" kn create rolebinding rb1 --role=r1 --user=alice --serviceaccount="$NS:robot"
    expect "create clusterrole" "clusterrole.rbac.authorization.k8s.io/e2e-cr-$VN created" k create clusterrole "e2e-cr-$VN" --verb=get --resource=nodes
    expect "create clusterrolebinding" "clusterrolebinding.rbac.authorization.k8s.io/e2e-crb-$VN created" k create clusterrolebinding "e2e-crb-$VN" --clusterrole="e2e-cr-$VN" --group=devs
    expect "create quota" "resourcequota/q1 created" kn create quota q1 --hard=pods=50,services=20
    expect "create priorityclass" "priorityclass.scheduling.k8s.io/e2e-pc-$VN created" k create priorityclass "e2e-pc-$VN" --value=0 --description=zero
    expect "create poddisruptionbudget" "poddisruptionbudget.policy/pdb1 created" kn create poddisruptionbudget pdb1 --selector=app=web --min-available=50%
    expect "role rules stored" "get list/pods deployments" kn get role r1 -o 'jsonpath={.rules[0].verbs[*]}/{.rules[*].resources[0]}'
    expect "rolebinding subjects and roleRef stored" "alice robot/Role r1" kn get rolebinding rb1 -o 'jsonpath={.subjects[*].name}/{.roleRef.kind} {.roleRef.name}'
    expect "priorityclass value 0 kept" "0/zero" k get priorityclass "e2e-pc-$VN" -o 'jsonpath={.value}/{.description}'
    expect "pdb minAvailable stored" "50%" kn get pdb pdb1 -o 'jsonpath={.spec.minAvailable}'
    expect "quota status.used counts the service" "services:1" kn get quota q1 -o 'jsonpath=services:{.status.used.services}'
    expect "get clusterrolebinding columns" "ROLE" k get clusterrolebinding "e2e-crb-$VN"
    expect "secret stored" "eA==" kn get secret s1 -o 'jsonpath={.data.pw}'
    expect "get all -A shows the deployment" "deployment.apps/web" k get all -A
    expect "get all -A shows the kubernetes service" "service/kubernetes" k get all -A
    expect "get missing: NotFound" "Error from server (NotFound): configmaps \"nope\" not found" kn get cm nope
    expect "invalid name: 422 with the field and upstream's message" "is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123" kn create configmap Bad_Name --from-literal=a=b
    BAD='{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bad"},"spec":{"replicas":-1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c"}]}}}}'
    expect "invalid deployment: a cause for the replicas" "spec.replicas: Invalid value: -1: must be greater than or equal to 0" kn create -f - <<<"$BAD"
    expect "invalid deployment: a cause for the image" "spec.template.spec.containers[0].image: Required value" kn create -f - <<<"$BAD"
    expect "create in missing namespace: NotFound" "namespaces \"no-such-ns\" not found" k -n no-such-ns create configmap x --from-literal=a=b

    cat >"$T/multi-$V.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: applied-cm
  namespace: $NS
  labels:
    tier: backend
data:
  key: value
---
apiVersion: v1
kind: Service
metadata:
  name: applied-svc
  namespace: $NS
spec:
  selector:
    app: applied
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
  namespace: $NS
  labels:
    app: applied
spec:
  replicas: 2
  selector:
    matchLabels:
      app: applied
  template:
    metadata:
      labels:
        app: applied
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports:
        - containerPort: 80
EOF
    expect "apply -f multi-doc: created" "deployment.apps/applied created" k apply -f "$T/multi-$V.yaml"
    expect "apply -f twice: unchanged" "configmap/applied-cm unchanged" k apply -f "$T/multi-$V.yaml"
    sed -i 's/key: value/key: value2/' "$T/multi-$V.yaml"
    expect "apply -f changed: configured" "configmap/applied-cm configured" k apply -f "$T/multi-$V.yaml"
    expect "apply --server-side" "serverside-applied" k apply --server-side --force-conflicts -f "$T/multi-$V.yaml"
    expect "server-side apply recorded managedFields" "manager" kn get cm applied-cm -o yaml --show-managed-fields
    expect "get -o wide shows images" "nginx:1.25" kn get deploy -o wide
    expect "get -o yaml has resourceVersion" "resourceVersion:" kn get deploy web -o yaml
    expect "get -o yaml has generation" "generation: 1" kn get deploy web -o yaml
    expect "get --show-labels" "tier=backend" kn get cm --show-labels
    expect "get -l" "applied-cm" kn get cm -l tier=backend
    expect_not "get -l filters" "cm1" kn get cm -l tier=backend
    expect "get --field-selector" "cm1" kn get cm --field-selector metadata.name=cm1
    expect_not "get --field-selector filters" "applied-cm" kn get cm --field-selector metadata.name=cm1
    expect "describe deployment" "Replicas:" kn describe deployment web
    expect "describe configmap" "Name:         cm1" kn describe cm cm1
    expect "label" "configmap/cm1 labeled" kn label cm cm1 env=prod
    expect "label visible to -l" "cm1" kn get cm -l env=prod
    expect "annotate" "configmap/cm1 annotate" kn annotate cm cm1 note=hello
    expect "patch (strategic)" "configmap/cm1 patched" kn patch cm cm1 -p '{"data":{"s":"1"}}'
    expect "patch (merge)" "configmap/cm1 patched" kn patch cm cm1 --type=merge -p '{"data":{"m":"2"}}'
    expect "patch (json)" "configmap/cm1 patched" kn patch cm cm1 --type=json -p '[{"op":"add","path":"/data/j","value":"3"}]'
    expect "patches applied" "1 2 3" kn get cm cm1 -o 'jsonpath={.data.s} {.data.m} {.data.j}'
    expect "json patch test op failure" "The request is invalid: testing value" kn patch cm cm1 --type=json -p '[{"op":"test","path":"/data/j","value":"nope"}]'
    expect "scale" "deployment.apps/web scaled" kn scale deploy web --replicas=3
    expect "scale set spec.replicas" "3" kn get deploy web -o 'jsonpath={.spec.replicas}'
    expect "scale bumped generation" "2" kn get deploy web -o 'jsonpath={.metadata.generation}'
    expect "set image" "deployment.apps/web image updated" kn set image deploy/web nginx=nginx:1.26
    expect "set image changed the template" "nginx:1.26" kn get deploy web -o 'jsonpath={.spec.template.spec.containers[0].image}'
    expect "rollout restart" "deployment.apps/web restarted" kn rollout restart deploy/web
    expect "rollout restart annotation" "restartedAt" kn get deploy web -o 'jsonpath={.spec.template.metadata.annotations}'
    kn get cm cm1 -o yaml >"$T/cm1-$V.yaml"
    sed -i 's/^  a: b$/  a: replaced/' "$T/cm1-$V.yaml"
    expect "replace" "configmap/cm1 replaced" kn replace -f "$T/cm1-$V.yaml"
    expect "replace with a stale resourceVersion: Conflict" "Operation cannot be fulfilled on configmaps \"cm1\": the object has been modified; please apply your changes to the latest version and try again" kn replace -f "$T/cm1-$V.yaml"
    expect "edit via KUBE_EDITOR" "configmap/cm1 edited" env KUBE_EDITOR="sed -i s/replaced/edited/" "$K" -n "$NS" edit cm cm1
    expect "edit took effect" "edited" kn get cm cm1 -o 'jsonpath={.data.a}'
    expect "--dry-run=server create" "configmap/dry created (server dry run)" kn create cm dry --from-literal=a=b --dry-run=server
    expect "--dry-run=server wrote nothing" "NotFound" kn get cm dry
    expect "auth can-i" "yes" k auth can-i create pods
    if [ "$V" = "1.27" ]; then
        expect "auth whoami" "kubernetes-admin" k auth whoami
    else
        expect "auth whoami" "kubernetes-admin" k auth whoami
    fi
    expect "explain" "containers" k explain pods.spec.containers
    expect "create serviceaccount" "serviceaccount/robot created" kn create sa robot
    SATOK=$("$K" -n "$NS" create token robot 2>&1)
    expect "create token gives a JWT" "eyJ" echo "$SATOK"
    expect "the token authenticates as the service account" "\"username\":\"system:serviceaccount:$NS:robot\"" "${CURL[@]}" -H "Authorization: Bearer $SATOK" -H 'Content-Type: application/json' -X POST "$URL/apis/authentication.k8s.io/v1/selfsubjectreviews" -d '{}'
    expect "TokenReview accepts the service account token" '"authenticated":true' "${AC[@]}" -H 'Content-Type: application/json' -X POST "$URL/apis/authentication.k8s.io/v1/tokenreviews" -d "{\"spec\":{\"token\":\"$SATOK\"}}"
    expect "create token with too short a duration: 422" "may not specify a duration less than 10 minutes" kn create token robot --duration=5m
    kn delete sa robot >/dev/null 2>&1
    expect "a deleted service account's token is refused" '"code":401' "${CURL[@]}" -H "Authorization: Bearer $SATOK" "$URL/api/v1/namespaces"

    # get -w sees a change
    "$K" -n "$NS" get cm -w >"$T/watch-$V.out" 2>&1 &
    WATCHPID=$!
    sleep 1.5
    kn create cm watched --from-literal=a=b >/dev/null 2>&1
    for _ in $(seq 30); do grep -q watched "$T/watch-$V.out" && break; sleep 0.2; done
    kill "$WATCHPID" 2>/dev/null; wait "$WATCHPID" 2>/dev/null; WATCHPID=
    expect "get -w sees a create" "watched" cat "$T/watch-$V.out"

    expect "delete" "configmap \"watched\" deleted" kn delete cm watched
    expect "delete -l" "configmap \"applied-cm\" deleted" kn delete cm -l tier=backend
    expect "delete --all" "deleted" kn delete cm --all
    expect "delete --all emptied the namespace" "No resources found" kn get cm
    expect "delete ns (Terminating)" "namespace \"$NS\" deleted" k delete ns "$NS" --wait=false
    expect "namespace is Terminating" "Terminating" k get ns "$NS"
    expect "create in terminating namespace: Forbidden" "because it is being terminated" kn create cm late --from-literal=a=b
done

# ---- the official Python client over HTTPS with the admin certificate ----
setv python
if /usr/bin/python3 -c 'import kubernetes' 2>/dev/null; then
    expect "python3-kubernetes: list namespaces, create and read a configmap" "PYTHON-OK" /usr/bin/python3 - "$T/kubeconfig" <<'EOF'
import sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
names = [n.metadata.name for n in v1.list_namespace().items]
assert "kube-system" in names, names
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"), data={"k": "v"})
v1.create_namespaced_config_map("default", cm)
got = v1.read_namespaced_config_map("py-cm", "default")
assert got.data == {"k": "v"}, got.data
try:
    v1.read_namespaced_config_map("missing", "default")
    raise SystemExit("no 404")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
print("PYTHON-OK")
EOF
    # the client writes booleans as Python does (watch=True): upstream reads any value but 0/false
    # as true, so its watch helper streams events (with watch=true only, it would get a list)
    expect "python3-kubernetes: watch (watch=True) streams ADDED and MODIFIED events" "PYWATCH-OK" /usr/bin/python3 - "$T/kubeconfig" <<'EOF'
import sys, threading, time
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
seen = []
def later():
    time.sleep(1)
    v1.patch_namespaced_config_map("py-cm", "default", {"data": {"k": "v2"}})
threading.Thread(target=later, daemon=True).start()
w = watch.Watch()
for ev in w.stream(v1.list_namespaced_config_map, "default", field_selector="metadata.name=py-cm",
                   timeout_seconds=10):
    seen.append((ev["type"], (ev["object"].data or {}).get("k")))
    if ev["type"] == "MODIFIED":
        w.stop()
assert seen == [("ADDED", "v"), ("MODIFIED", "v2")], seen
print("PYWATCH-OK")
EOF
    # concurrent merge patches of one object, none pinned to a resourceVersion: each lands (the
    # server retries its read-modify-write on a conflict), never a 500
    expect "python3-kubernetes: 4 threads x 40 concurrent merge patches of one configmap all land" "PYPATCH-OK" /usr/bin/python3 - "$T/kubeconfig" <<'EOF'
import sys, threading
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-race")))
errors = []
def worker(t):
    api = client.CoreV1Api(client.ApiClient())
    for i in range(40):
        try:
            api.patch_namespaced_config_map("py-race", "default", {"data": {"t%d-%d" % (t, i): "x"}})
        except client.exceptions.ApiException as e:
            errors.append(e.status)
threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
for th in threads: th.start()
for th in threads: th.join()
n = len(v1.read_namespaced_config_map("py-race", "default").data or {})
assert not errors and n == 160, (errors[:5], n)
print("PYPATCH-OK")
EOF
else
    echo "skip - python3-kubernetes (not installed)"
fi

setv server
e2e_stop_checked apiserver "$PID" "$T/apiserver.log" && PID=
e2e_sanitizer_check "$T/apiserver.log"
exit $FAILED

#!/bin/bash
# discovery_kubectl.sh - the real kubectl against ckube's discovery and OpenAPI documents, served by
# a tiny python stub on loopback (tests/e2e/discovery_stub.py) from files the unit-test binaries
# dump (CK_DISCOVERY_DUMP / CK_OPENAPI_DUMP).  Checks api-resources (aggregated and legacy),
# explain (OpenAPI v3), and that create -f enables server-side field validation.
set -u
. "$(dirname "$0")/lib/common.sh"
KDIR=/usr/lib/google-cloud-sdk/bin
TMP=$(mktemp -d)
STUB_PID=
cleanup() {
    [ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null && wait "$STUB_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/docs"
CK_DISCOVERY_DUMP=$TMP/docs "$ROOT/$BUILD/tests/test_discovery" >/dev/null 2>&1 || { notok "dump discovery"; exit 1; }
CK_OPENAPI_DUMP=$TMP/docs "$ROOT/$BUILD/tests/test_openapi" >/dev/null 2>&1 || { notok "dump openapi"; exit 1; }
CK_TABLE_DUMP=$TMP/docs "$ROOT/$BUILD/tests/test_table" >/dev/null 2>&1 || { notok "dump tables"; exit 1; }

start_stub() {
    [ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null && wait "$STUB_PID" 2>/dev/null
    rm -f "$TMP/port"
    env "$@" python3 "$ROOT/tests/e2e/discovery_stub.py" "$TMP/docs" "$TMP/port" 2>"$TMP/stub.log" &
    STUB_PID=$!
    for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
    PORT=$(cat "$TMP/port")
}

kc() {   # kc VERSION args...: a fresh discovery cache per call
    local v=$1; shift
    rm -rf "$TMP/home"
    HOME=$TMP/home timeout 60 "$KDIR/kubectl.$v" --server "http://127.0.0.1:$PORT" "$@"
}

for v in 1.27 1.33; do
    if [ ! -x "$KDIR/kubectl.$v" ]; then echo "skip - kubectl $v (not installed)"; continue; fi
    for mode in aggregated legacy; do
        if [ $mode = legacy ]; then start_stub STUB_LEGACY=1; else start_stub STUB_X=0; fi
        out=$(kc $v api-resources 2>&1)
        if echo "$out" | grep -Eq '^pods +po +v1 +true +Pod' &&
           echo "$out" | grep -Eq '^deployments +deploy +apps/v1 +true +Deployment' &&
           echo "$out" | grep -Eq '^storageclasses +sc +storage.k8s.io/v1 +false +StorageClass' &&
           [ "$(echo "$out" | wc -l)" -ge 40 ]; then
            ok "kubectl $v api-resources ($mode discovery)"
        else
            notok "kubectl $v api-resources ($mode discovery): $out"
        fi
        if [ $mode = legacy ]; then
            grep -aq 'GET /apis/apps/v1' "$TMP/stub.log" && ok "kubectl $v read legacy APIResourceLists" ||
                notok "kubectl $v did not read /apis/apps/v1 in legacy mode"
        else
            grep -aq 'GET /apis/apps/v1' "$TMP/stub.log" && notok "kubectl $v fell back to legacy discovery" ||
                ok "kubectl $v used aggregated discovery"
        fi
        out=$(kc $v api-resources --categories=all -o name 2>&1 | sort | tr '\n' ' ')
        want="cronjobs.batch daemonsets.apps deployments.apps jobs.batch pods replicasets.apps replicationcontrollers services statefulsets.apps "
        [ "$out" = "$want" ] && ok "kubectl $v category all ($mode)" || notok "kubectl $v category all ($mode): $out"
    done
    start_stub STUB_X=0
    out=$(kc $v explain pod.spec.containers 2>&1)
    if echo "$out" | grep -q 'FIELD: containers <\[\]Container>' && echo "$out" | grep -q 'imagePullPolicy' &&
       echo "$out" | grep -q 'livenessProbe'; then
        ok "kubectl $v explain pod.spec.containers"
    else
        notok "kubectl $v explain pod.spec.containers: $out"
    fi
    out=$(kc $v explain deployment.spec.strategy 2>&1)
    echo "$out" | grep -q 'rollingUpdate' && ok "kubectl $v explain deployment.spec.strategy" ||
        notok "kubectl $v explain deployment.spec.strategy: $out"
    out=$(kc $v get pods 2>&1)
    if echo "$out" | grep -Eq '^NAME +READY +STATUS +RESTARTS +AGE$' &&
       echo "$out" | grep -Eq '^web-1 +1/1 +Running +2 \(2m[0-9]*s? ago\) +5m' &&
       echo "$out" | grep -Eq '^job-x +0/1 +Completed +0 +5m'; then
        ok "kubectl $v get pods prints the server's Table"
    else
        notok "kubectl $v get pods: $out"
    fi
    out=$(kc $v get pods -o wide 2>&1)
    echo "$out" | grep -Eq '^NAME +READY +STATUS +RESTARTS +AGE +IP +NODE +NOMINATED NODE +READINESS GATES$' &&
        echo "$out" | grep -Eq '^web-1 .* 10\.244\.0\.5 +node-1 +<none> +<none>$' &&
        ok "kubectl $v get pods -o wide" || notok "kubectl $v get pods -o wide: $out"
    out=$(kc $v get svc -o wide --show-labels 2>&1)
    echo "$out" | grep -Eq '^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE +SELECTOR +LABELS$' &&
        echo "$out" | grep -Eq '^web +NodePort +10\.96\.0\.20 +<none> +80:30080/TCP +5m +app=web +<none>$' &&
        ok "kubectl $v get svc -o wide --show-labels" || notok "kubectl $v get svc -o wide: $out"
    printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n' >"$TMP/d.yaml"
    : >"$TMP/stub.log"
    kc $v create -f "$TMP/d.yaml" >/dev/null 2>&1
    grep -aq 'POST /apis/apps/v1/namespaces/default/deployments?.*fieldValidation=Strict' "$TMP/stub.log" &&
        ok "kubectl $v create -f asks fieldValidation=Strict" ||
        notok "kubectl $v create -f did not enable server-side validation: $(grep -a POST "$TMP/stub.log")"
    # client-side apply twice: 1.30+ compute the patch from the v3 schema's patch merge keys
    sed 's/name: d$/name: ap/; s/image: busybox/image: busybox\n        env:\n        - {name: A, value: "1"}/' "$TMP/d.yaml" >"$TMP/a1.yaml"
    sed 's/value: "1"/value: "2"/' "$TMP/a1.yaml" >"$TMP/a2.yaml"
    kc $v apply -f "$TMP/a1.yaml" >/dev/null 2>&1
    : >"$TMP/stub.log"
    HOME=$TMP/home timeout 60 "$KDIR/kubectl.$v" --server "http://127.0.0.1:$PORT" apply -f "$TMP/a2.yaml" >/dev/null 2>&1
    body=$(grep -a '^BODY' "$TMP/stub.log")
    if echo "$body" | grep -q '"$setElementOrder/containers":\[{"name":"c"}\]' &&
       echo "$body" | grep -q '"$setElementOrder/env":\[{"name":"A"}\]'; then
        ok "kubectl $v apply computes a strategic merge patch with merge keys"
    else
        notok "kubectl $v apply patch: $body"
    fi
done
exit $FAILED

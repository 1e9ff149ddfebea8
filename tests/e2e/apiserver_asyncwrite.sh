#!/bin/bash
# tests/e2e/apiserver_asyncwrite.sh - writes answered by the SQLite store's completion
# (src/apiserver/writedefer.c): a create and a status merge patch answer the stored object with
# its resourceVersion spliced in, byte for byte as the synchronous path, a binding its Status;
# AlreadyExists, Conflict (a pinned patch) and NotFound keep upstream's texts; concurrent
# unpinned patches of one object all land (a conflict reruns the request, counted in /metrics);
# concurrent bindings each land once; SIGTERM during a write storm stops the server cleanly.
# Deletes: the Status or the kept object (finalizers, a graceful pod delete) as the synchronous
# path printed them, 404 and precondition texts as before, concurrent deletes each land once.
# ASYNC_PROBE_MODE=checks-sync runs the same checks against a build without asynchronous writes
# (checks-sync-deletes: against one whose deletes are synchronous).
# Loopback only; the trap stops the server and removes the temp dir.
set -u
. "$(dirname "$0")/lib/common.sh"
T=$(mktemp -d /tmp/ckube-e2e-asyncwrite.XXXXXX)
PID=
STORM=

cleanup() {
    [ -n "$STORM" ] && kill "$STORM" 2>/dev/null && wait "$STORM" 2>/dev/null
    e2e_kill "$PID"
    rm -rf "$T"
}
trap cleanup EXIT

e2e_pki "$T/pki" || { notok "generate test certificates"; cat "$T/pki/openssl.log"; exit 1; }
echo 'e2e-admin-token,admin,uid-1,"system:masters"' >"$T/pki/tokens.csv"
"$CKUBE" apiserver --data-dir "$T/data" --secure-port 0 --bind-address 127.0.0.1 \
    --tls-cert-file "$T/pki/apiserver.crt" --tls-private-key-file "$T/pki/apiserver.key" \
    --token-auth-file "$T/pki/tokens.csv" >"$T/apiserver.log" 2>&1 &
PID=$!
PORT=$(e2e_apiserver_port "$PID" "$T/apiserver.log")
[ -n "$PORT" ] || { notok "apiserver starts"; cat "$T/apiserver.log"; exit 1; }
for _ in $(seq 100); do
    [ "$(curl -s --cacert "$T/pki/ca.crt" -H "Authorization: Bearer e2e-admin-token" \
        "https://127.0.0.1:$PORT/readyz")" = ok ] && break
    sleep 0.1
done

cat >"$T/probe.py" <<'PY'
import http.client, json, ssl, sys, threading
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
H = {"Authorization": "Bearer e2e-admin-token"}
fails = 0

def conn():
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)

def req(c, method, path, body=None, ctype="application/json"):
    h = dict(H)
    if body is not None:
        h["Content-Type"] = ctype
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()

def check(what, good, detail=""):
    global fails
    print(("ok - " if good else "not ok - ") + what)
    if not good:
        fails += 1
        if detail:
            print("#   " + str(detail)[:4000])

MERGE = "application/merge-patch+json"
P = "/api/v1/namespaces/default/pods"
L = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
def as_written(got):
    # GET prints resourceVersion last in metadata; a write's answer is the stored text with it
    # spliced in first (rest.c, ck_json_splice_rv), synchronous or not
    rv = json.loads(got)["metadata"]["resourceVersion"]
    field = b'"resourceVersion":"%s"' % rv.encode()
    return got.replace(b"," + field, b"", 1).replace(b'"metadata":{', b'"metadata":{' + field + b",", 1)

def pod(name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}

if mode == "storm":
    # writes until the server goes away (the script stops it meanwhile)
    def storm(i):
        try:
            c = conn()
            for k in range(100000):
                req(c, "POST", P, pod("storm-%d-%d" % (i, k)))
        except Exception:
            pass
    ts = [threading.Thread(target=storm, args=(i,)) for i in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    sys.exit(0)

c = conn()
st, created = req(c, "POST", P, pod("p1"))
check("create answers 201", st == 201, created)
st, got = req(c, "GET", P + "/p1")
check("the create's answer is byte for byte the stored object with its resourceVersion",
      created == as_written(got), (created, got))
rv1 = int(json.loads(created)["metadata"]["resourceVersion"])
gp = pod("x")
del gp["metadata"]["name"]
gp["metadata"]["generateName"] = "gen-"
st, gen = req(c, "POST", P, gp)
gname = json.loads(gen)["metadata"]["name"] if st == 201 else ""
st2, got = req(c, "GET", P + "/" + gname) if gname else (0, b"")
check("a create with generateName: 201, a gen-xxxxx name, the stored object byte for byte",
      st == 201 and gname.startswith("gen-") and len(gname) == 9 and gen == as_written(got), gen)
st, dup = req(c, "POST", P, pod("p1"))
d = json.loads(dup)
check("a second create: 409 AlreadyExists with upstream's text",
      st == 409 and d.get("reason") == "AlreadyExists" and d.get("message") == 'pods "p1" already exists'
      and d.get("details", {}).get("name") == "p1", dup)
st, patched = req(c, "PATCH", P + "/p1/status", {"status": {"phase": "Running"}}, MERGE)
st2, got = req(c, "GET", P + "/p1")
check("a status merge patch answers the stored object, byte for byte",
      st == 200 and patched == as_written(got), (patched, got))
rv2 = int(json.loads(patched)["metadata"]["resourceVersion"])
check("its resourceVersion is newer", rv2 > rv1, (rv1, rv2))
st, body = req(c, "PATCH", P + "/p1", {"metadata": {"resourceVersion": str(rv1), "labels": {"a": "b"}}}, MERGE)
d = json.loads(body)
check("a patch pinned to an old resourceVersion: 409 Conflict, upstream's text",
      st == 409 and d.get("reason") == "Conflict" and "the object has been modified" in d.get("message", ""), body)
st, body = req(c, "PATCH", P + "/nope/status", {"status": {"phase": "Running"}}, MERGE)
check("a patch of a missing pod: 404 with upstream's text",
      st == 404 and json.loads(body).get("message") == 'pods "nope" not found', body)
st, body = req(c, "POST", P + "/p1/binding", {"apiVersion": "v1", "kind": "Binding",
          "metadata": {"name": "p1"}, "target": {"kind": "Node", "name": "n1"}})
d = json.loads(body)
check("a binding answers 201 Status Success", st == 201 and d.get("status") == "Success", body)
st, body = req(c, "POST", P + "/p1/binding", {"apiVersion": "v1", "kind": "Binding",
          "metadata": {"name": "p1"}, "target": {"kind": "Node", "name": "n2"}})
check("a second binding: 409, already assigned", st == 409 and b'already assigned to node \\"n1\\"' in body, body)
st, body = req(c, "POST", L, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
          "metadata": {"name": "l1"}, "spec": {"holderIdentity": "x"}})
check("create a Lease", st == 201, body)

# concurrent unpinned patches of one Lease: every one lands (conflicts rerun the request)
N, M = 12, 8
codes = []
lock = threading.Lock()
def patcher(i):
    cc = conn()
    for k in range(M):
        s, b = req(cc, "PATCH", L + "/l1", {"metadata": {"labels": {"k%d-%d" % (i, k): "v"}}}, MERGE)
        with lock:
            codes.append(s)
ts = [threading.Thread(target=patcher, args=(i,)) for i in range(N)]
[t.start() for t in ts]
[t.join() for t in ts]
check("%d concurrent unpinned Lease patches all answer 200" % (N * M),
      codes.count(200) == N * M, sorted(set(codes)))
st, body = req(c, "GET", L + "/l1")
labels = json.loads(body)["metadata"].get("labels", {})
check("and every one of their labels is in the Lease", len(labels) == N * M, len(labels))
st, body = req(c, "GET", "/metrics")
m = dict(l.split(" ", 1) for l in body.decode().splitlines() if l.startswith("ckube_apiserver_async"))
nasync, nrerun = int(m.get("ckube_apiserver_async_writes_total", 0)), int(m.get("ckube_apiserver_async_reruns_total", -1))
if mode == "checks-sync":
    check("(a synchronous build: no async counters)", True)
else:
    check("writes were answered by the store (%d), conflicts rerun (%d)" % (nasync, nrerun),
          nasync >= 100 and nrerun >= 1, m)

# concurrent status patches and bindings of many pods: each lands once
for i in range(24):
    req(c, "POST", P, pod("b%d" % i))
res = {}
def binder(i):
    cc = conn()
    s1, _ = req(cc, "PATCH", P + "/b%d/status" % i, {"status": {"phase": "Pending"}}, MERGE)
    s2, _ = req(cc, "POST", P + "/b%d/binding" % i, {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": "b%d" % i}, "target": {"kind": "Node", "name": "n%d" % (i % 3)}})
    with lock:
        res[i] = (s1, s2)
ts = [threading.Thread(target=binder, args=(i,)) for i in range(24)]
[t.start() for t in ts]
[t.join() for t in ts]
check("24 concurrent status patches and bindings answer 200 and 201",
      all(v == (200, 201) for v in res.values()) and len(res) == 24, res)
st, body = req(c, "GET", P)
items = {p["metadata"]["name"]: p for p in json.loads(body)["items"]}
check("every bound pod has its node",
      all(items["b%d" % i]["spec"].get("nodeName") == "n%d" % (i % 3) for i in range(24)))

# ---- a Lease renewal on the stored text (leasetext.c), answered by the completion too ----
st, body = req(c, "GET", "/metrics")
m0 = dict(l.split(" ", 1) for l in body.decode().splitlines() if l.startswith("ckube_apiserver_async"))
st, body = req(c, "POST", L + "?fieldManager=renewer", {"apiVersion": "coordination.k8s.io/v1",
          "kind": "Lease", "metadata": {"name": "l2"},
          "spec": {"holderIdentity": "n1", "renewTime": "2026-01-01T00:00:00.000000Z"}})
check("create a Lease to renew", st == 201, body)
ok_renew = True
for k in range(5):
    st, renewed = req(c, "PATCH", L + "/l2?fieldManager=renewer",
                      {"spec": {"renewTime": "2026-01-01T00:00:0%d.000000Z" % (k + 1)}}, MERGE)
    st2, got = req(c, "GET", L + "/l2")
    ok_renew = ok_renew and st == 200 and renewed == as_written(got) and b"00:00:0%d" % (k + 1) in got
check("Lease renewals answer the stored Lease byte for byte", ok_renew, (renewed, got))
st, body = req(c, "GET", "/metrics")
m1 = dict(l.split(" ", 1) for l in body.decode().splitlines() if l.startswith("ckube_apiserver_async"))
if mode in ("checks-sync", "checks-sync-deletes"):
    check("(a synchronous build: no async counters)", True)
else:
    check("and were answered by the store",
          int(m1.get("ckube_apiserver_async_writes_total", 0)) - int(m0.get("ckube_apiserver_async_writes_total", 0)) >= 6,
          (m0, m1))

# ---- deletes (answered by the store's completion too) ----
def async_count():
    st, body = req(c, "GET", "/metrics")
    m = dict(l.split(" ", 1) for l in body.decode().splitlines() if l.startswith("ckube_apiserver_async"))
    return int(m.get("ckube_apiserver_async_writes_total", 0))
a0 = async_count()
st, body = req(c, "POST", P, pod("d1"))
uid = json.loads(body)["metadata"]["uid"]
st, body = req(c, "DELETE", P + "/d1")
d = json.loads(body)
check("a delete answers 200 Status Success with the name, kind and uid",
      st == 200 and d.get("kind") == "Status" and d.get("status") == "Success"
      and d.get("details") == {"name": "d1", "kind": "pods", "uid": uid}, body)
st, body = req(c, "GET", P + "/d1")
check("the deleted pod is gone", st == 404, body)
st, body = req(c, "DELETE", P + "/d1")
check("a second delete: 404 with upstream's text",
      st == 404 and json.loads(body).get("message") == 'pods "d1" not found', body)
st, body = req(c, "POST", P, pod("d2"))
uid2, rvd2 = json.loads(body)["metadata"]["uid"], json.loads(body)["metadata"]["resourceVersion"]
st, body = req(c, "DELETE", P + "/d2", {"kind": "DeleteOptions", "apiVersion": "v1",
               "preconditions": {"uid": "not-it"}})
check("a delete with another uid as precondition: 409, upstream's text",
      st == 409 and json.loads(body).get("message") ==
      "Precondition failed: UID in precondition: not-it, UID in object meta: " + uid2, body)
st, body = req(c, "DELETE", P + "/d2", {"kind": "DeleteOptions", "apiVersion": "v1",
               "preconditions": {"resourceVersion": "1"}})
check("a delete with an old resourceVersion as precondition: 409, upstream's text",
      st == 409 and json.loads(body).get("message") ==
      "Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: " + rvd2, body)
st, body = req(c, "DELETE", P + "/d2", {"kind": "DeleteOptions", "apiVersion": "v1",
               "preconditions": {"uid": uid2, "resourceVersion": rvd2}})
check("a delete whose preconditions hold: 200", st == 200 and json.loads(body).get("status") == "Success", body)
fp = pod("f1")
fp["metadata"]["finalizers"] = ["example.com/hold"]
req(c, "POST", P, fp)
st, body = req(c, "DELETE", P + "/f1")
st2, got = req(c, "GET", P + "/f1")
check("a delete of a pod with a finalizer answers the kept object, printed as GET prints it",
      st == 200 and b"deletionTimestamp" in body and body == got, (body, got))
st, body = req(c, "PATCH", P + "/f1", {"metadata": {"finalizers": None}}, MERGE)
st2, got = req(c, "GET", P + "/f1")
check("removing the finalizer removes it", st == 200 and st2 == 404, (st, st2, got))
st, body = req(c, "DELETE", P + "/b0")
st2, got = req(c, "GET", P + "/b0")
g = json.loads(body).get("metadata", {})
check("a bound pod's delete is graceful (30 s), the answer printed as GET prints it",
      st == 200 and g.get("deletionGracePeriodSeconds") == 30 and body == got, (body, got))
st, body = req(c, "DELETE", P + "/b0", {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
st2, got = req(c, "GET", P + "/b0")
check("then a grace-0 delete removes it", st == 200 and json.loads(body).get("status") == "Success"
      and st2 == 404, (body, got))
req(c, "POST", "/api/v1/namespaces/default/configmaps",
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}})
st, body = req(c, "DELETE", "/api/v1/namespaces/default/configmaps/cm1",
               {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"})
check("a foreground delete keeps the object with its finalizer",
      st == 200 and b'"foregroundDeletion"' in body, body)
# concurrent deletes: of one pod, exactly one succeeds; of many, each once
req(c, "POST", P, pod("c1"))
dres = []
def deleter(path):
    cc = conn()
    s, b = req(cc, "DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
    with lock:
        dres.append(s)
ts = [threading.Thread(target=deleter, args=(P + "/c1",)) for i in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
check("8 concurrent deletes of one pod: one 200, seven 404", sorted(dres) == [200] + [404] * 7, dres)
dres = []
ts = [threading.Thread(target=deleter, args=(P + "/b%d" % i,)) for i in range(1, 24)]
[t.start() for t in ts]
[t.join() for t in ts]
st, body = req(c, "GET", P)
left = [p["metadata"]["name"] for p in json.loads(body)["items"] if p["metadata"]["name"].startswith("b")]
check("23 concurrent deletes of as many pods: all 200, none left", dres == [200] * 23 and not left, (dres, left))
a1 = async_count()
if mode in ("checks-sync", "checks-sync-deletes"):
    check("(a synchronous build: no async counters)", True)
else:
    check("the deletes were answered by the store (%d)" % (a1 - a0), a1 - a0 >= 30, (a0, a1))
sys.exit(1 if fails else 0)
PY

python3 "$T/probe.py" "$PORT" "$T/pki/ca.crt" "${ASYNC_PROBE_MODE:-checks}" || FAILED=1
python3 "$T/probe.py" "$PORT" "$T/pki/ca.crt" storm &
STORM=$!
sleep 1.5
e2e_stop_checked "apiserver (SIGTERM during a create storm)" "$PID" "$T/apiserver.log" && PID=
wait "$STORM" 2>/dev/null
STORM=
e2e_sanitizer_check "$T/apiserver.log"
exit $FAILED

#!/usr/bin/env python3
"""apiserver_ops.py URL TOKEN PID - the API server's CPU per write, by kind of write.

Drives the writes a scheduler benchmark makes, one kind at a time, over THREADS keep-alive
HTTPS connections (bearer token), while WATCHERS pod watches (and one Lease watch) read and
discard every event, as the scheduler, hollow nodes, controller-manager and bench client do:

  create   POST pods (the sched_bench pod)
  binding  POST pods/NAME/binding
  status   PATCH pods/NAME/status, merge patch (the hollow node's Running/Ready status)
  lease    PATCH leases/NAME, merge patch (the hollow node's renewal), over LEASES Leases
           (created with a renewTime, as the hollow node creates them)

For each it prints the count, the wall time and the API server's CPU (user+sys of PID, from
/proc) per request.  Env: N (2000), THREADS (8), WATCHERS (4), LEASES (500), CALLGRIND_DUMP=1
(the API server runs under callgrind: one dump per phase).
"""
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

URL, TOKEN, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
N = int(os.environ.get("N", "2000"))
THREADS = int(os.environ.get("THREADS", "8"))
WATCHERS = int(os.environ.get("WATCHERS", "4"))
LEASES = int(os.environ.get("LEASES", "500"))
DUMP = os.environ.get("CALLGRIND_DUMP") == "1"   # zero/dump callgrind counters around each phase
NS = "bench"
u = urllib.parse.urlparse(URL)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
HDR = {"Authorization": "Bearer " + TOKEN}
tick = os.sysconf("SC_CLK_TCK")


def cpu():
    with open("/proc/%d/stat" % PID) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / tick, int(fields[12]) / tick   # user, sys


def conn(timeout=60):
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=timeout)


def call(c, method, path, body=None, ctype="application/json"):
    h = dict(HDR)
    if body is not None:
        h["Content-Type"] = ctype
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:200]))
    return data


def watcher(path, stop):
    c = conn(None)
    c.request("GET", path, headers=HDR)
    r = c.getresponse()
    while not stop.is_set():
        if not r.read1(65536):
            break


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def pod(i):
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "bench-%d" % i, "namespace": NS, "labels": {"app": "g0"}}, "spec": {"containers": [{
            "name": "c", "image": "registry.k8s.io/pause:3.9",
            "resources": {"requests": {"cpu": "10m", "memory": "50Mi"}}}]}})


def binding(i):
    return json.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bench-%d" % i},
                       "target": {"kind": "Node", "name": "node-%d" % (i % 100)}})


def status(i):
    t = now() + "Z"
    return json.dumps({"status": {
        "phase": "Running", "conditions": [{"type": k, "status": "True", "lastTransitionTime": t} for k in
                                           ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
        "containerStatuses": [{"name": "c", "ready": True, "started": True, "restartCount": 0,
                               "image": "registry.k8s.io/pause:3.9", "imageID": "registry.k8s.io/pause:3.9",
                               "containerID": "hollow://0", "state": {"running": {"startedAt": t}}}],
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1", "startTime": t, "qosClass": "BestEffort"}})


def lease_patch(i):
    return json.dumps({"spec": {"holderIdentity": "node-%d" % (i % LEASES), "leaseDurationSeconds": 40,
                                "renewTime": "%s.%06dZ" % (now(), i % 1000000)}})


def phase(name, n, fn):
    nxt = [0]
    lock = threading.Lock()
    errs = []

    def worker():
        c = conn()
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            try:
                fn(c, i)
            except Exception as e:  # noqa: BLE001 - counted and shown
                errs.append(str(e))
                c = conn()

    if DUMP:
        subprocess.run(["callgrind_control", "-z", str(PID)], stdout=subprocess.DEVNULL)
    c0, t0 = cpu(), time.time()
    ts = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    time.sleep(0.3)   # the watch deliveries of the last writes
    c1, t1 = cpu(), time.time()
    if DUMP:
        subprocess.run(["callgrind_control", "-d", name, str(PID)], stdout=subprocess.DEVNULL)
    u, k = (c1[0] - c0[0]) * 1000 / n, (c1[1] - c0[1]) * 1000 / n
    print("%-8s %6d in %5.2f s (%6.0f/s), apiserver CPU %6.3f ms/request (user %.3f, sys %.3f)%s" % (
        name, n, t1 - t0, n / (t1 - t0), u + k, u, k,
        (", %d errors, first: %s" % (len(errs), errs[0])) if errs else ""), flush=True)


def main():
    c = conn()
    call(c, "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": NS}}))
    # no controller-manager here: the ServiceAccount admission needs the default account
    call(c, "POST", "/api/v1/namespaces/%s/serviceaccounts" % NS, json.dumps({"metadata": {"name": "default"}}))
    for i in range(LEASES):
        call(c, "POST", "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % NS, json.dumps({
            "metadata": {"name": "node-%d" % i}, "spec": {"holderIdentity": "node-%d" % i,
                                                          "leaseDurationSeconds": 40,
                                                          "renewTime": "%s.000000Z" % now()}}))
    stop = threading.Event()
    ws = [threading.Thread(target=watcher, args=("/api/v1/pods?watch=1&allowWatchBookmarks=true", stop), daemon=True)
          for _ in range(WATCHERS)]
    if WATCHERS:
        ws.append(threading.Thread(target=watcher, args=(
            "/apis/coordination.k8s.io/v1/leases?watch=1", stop), daemon=True))
    for w in ws:
        w.start()
    # under callgrind the watches' initial events (500 Leases) take seconds: let them finish
    # before the first phase, or the create phase counts them
    time.sleep(5 if DUMP else 0.5)
    base = "/api/v1/namespaces/%s/pods" % NS
    phase("create", N, lambda c, i: call(c, "POST", base, pod(i)))
    phase("binding", N, lambda c, i: call(c, "POST", "%s/bench-%d/binding" % (base, i), binding(i)))
    phase("status", N, lambda c, i: call(c, "PATCH", "%s/bench-%d/status" % (base, i), status(i),
                                          "application/merge-patch+json"))
    phase("lease", N, lambda c, i: call(
        c, "PATCH", "/apis/coordination.k8s.io/v1/namespaces/%s/leases/node-%d" % (NS, i % LEASES),
        lease_patch(i), "application/merge-patch+json"))
    stop.set()


main()

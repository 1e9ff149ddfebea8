#!/usr/bin/env python3
"""Serve dumped discovery/openapi documents on loopback, negotiating like the API server, so the
real kubectl can be pointed at them.  Usage: discovery_stub.py DIR PORTFILE.  Logs requests to stderr.  STUB_LEGACY=1 answers
legacy discovery whatever the Accept header asks.  Writes (POST/PUT/PATCH) echo the body back."""
import http.server, json, os, sys, urllib.parse

DIR = sys.argv[1]


def load(name):
    p = os.path.join(DIR, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        return f.read()


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *a):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        path = u.path.strip("/")
        accept = self.headers.get("Accept", "")
        if path in ("api", "apis"):
            fmt = None
            for part in ([] if os.environ.get("STUB_LEGACY") else accept.split(",")):
                p = part.replace(" ", "")
                if "as=APIGroupDiscoveryList" in p and p.startswith("application/json"):
                    if "v=v2;" in p + ";":
                        fmt = "v2"; break
                    if "v=v2beta1" in p:
                        fmt = "v2beta1"; break
                elif p.split(";")[0] in ("application/json", "*/*"):
                    break
            if fmt:
                return self.send(200, load("agg_%s_%s" % (path, fmt)),
                                 "application/json;g=apidiscovery.k8s.io;v=%s;as=APIGroupDiscoveryList" % fmt)
            return self.send(200, load(path))
        if path == "version":
            return self.send(200, json.dumps({"major": "1", "minor": "30", "gitVersion": "v1.30.0",
                                              "platform": "linux/amd64"}).encode())
        if path == "openapi/v2":
            return self.send(200, b"", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        if path == "openapi/v3":
            return self.send(200, load("openapi_v3"))
        if path.startswith("openapi/v3/"):
            b = load("openapi_v3_" + path[len("openapi/v3/"):].replace("/", "_"))
            if b:
                return self.send(200, b)
        if "as=Table" in accept:
            b = load(path.replace("/", "_") + ".table")
            if b:
                return self.send(200, b, "application/json;as=Table;v=v1;g=meta.k8s.io")
        if "/" + path in STORE:
            return self.send(200, json.dumps(STORE["/" + path]).encode())
        b = load(path.replace("/", "_"))
        if b:
            return self.send(200, b)
        self.send(404, json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": "NotFound", "code": 404, "message": "not found"}).encode())


STORE = {}   # object path -> object, so apply's GET-then-PATCH sees what it created


def _echo(self):
    n = int(self.headers.get("Content-Length", "0") or 0)
    body = self.rfile.read(n) if n else b"{}"
    sys.stderr.write("BODY %s\n" % body.decode("utf-8", "replace"))
    path = urllib.parse.urlparse(self.path).path.rstrip("/")
    try:
        obj = json.loads(body)
    except ValueError:
        obj = {}
    if self.command == "POST":
        obj.setdefault("metadata", {}).setdefault("name", "x")
        path = path + "/" + obj["metadata"]["name"]
        STORE[path] = obj
    elif self.command == "PATCH":
        obj = STORE.get(path, obj)
    self.send(201 if self.command == "POST" else 200, json.dumps(obj).encode())


H.do_POST = _echo
H.do_PUT = _echo
H.do_PATCH = _echo

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[2], "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()

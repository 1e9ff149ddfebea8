#!/usr/bin/env python3
"""tests/e2e/badinput_probe.py HOST PORT CA CERT KEY - throw bad input at a running API server.

Each probe sends something malformed over TLS (admin client cert) and checks the answer: a 4xx
metav1.Status, or a closed connection where that is the right answer.  After every probe the
server must still answer /readyz and a normal configmap create + get.  Prints "ok - ..." /
"not ok - ..." lines (TAP-ish, as tests/run.sh reads them); exits 1 if any probe failed.
Loopback only: HOST is expected to be 127.0.0.1.
"""
import json
import socket
import ssl
import sys
import threading
import time

HOST, PORT, CA, CERT, KEY = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
fails = 0
seq = 0


def ok(msg):
    print("ok - " + msg, flush=True)


def notok(msg, why=""):
    global fails
    fails += 1
    print("not ok - " + msg, flush=True)
    if why:
        for line in str(why).splitlines()[:10]:
            print("# " + line, flush=True)


def tls_ctx():
    ctx = ssl.create_default_context(cafile=CA)
    ctx.load_cert_chain(CERT, KEY)
    ctx.check_hostname = False
    return ctx


CTX = tls_ctx()


def connect(timeout=20):
    raw = socket.create_connection((HOST, PORT), timeout=timeout)
    return CTX.wrap_socket(raw)


def read_response(s):
    """One HTTP/1.1 response: (status, headers dict, body bytes).  Raises on EOF before a status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response (%d bytes)" % len(buf))
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:n]
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed inside a chunked body")
                rest += chunk
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed inside a chunk")
                rest += chunk
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
    else:
        body = rest
    return status, hdrs, body


def request(method, path, body=b"", ctype="application/json", extra=b"", timeout=20):
    s = connect(timeout)
    try:
        req = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
               "Content-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n"
               % (method, path, ctype, len(body))).encode() + extra + b"\r\n"
        s.sendall(req + body)
        return read_response(s)
    finally:
        s.close()


def request_head(method, path, timeout=20):
    """Status of a request whose body may stream for long (a watch): headers only."""
    s = connect(timeout)
    try:
        s.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
                   "Connection: close\r\n\r\n" % (method, path)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed before a response (%d bytes)" % len(buf))
            buf += chunk
        return int(buf.split(b"\r\n", 1)[0].split()[1]), buf
    finally:
        s.close()


def send_then_read(data, timeout=20):
    """Send raw bytes (a send error is fine: the server may close early), then read a response.
    Returns (status, body) or (None, reason) when the connection was closed without one."""
    s = connect(timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
            sent_err = e
        else:
            sent_err = None
        try:
            st, _, body = read_response(s)
            return st, body
        except (ConnectionError, ssl.SSLError, OSError) as e:
            return None, "closed (%s; send error %s)" % (e, sent_err)
    finally:
        s.close()


def is_status(body, code):
    try:
        o = json.loads(body)
    except ValueError:
        return False
    return o.get("kind") == "Status" and o.get("status") == "Failure" and o.get("code") == code


def still_healthy(after):
    """/readyz answers ok and a configmap create + get round-trips."""
    global seq
    seq += 1
    name = "badinput-check-%d" % seq
    try:
        st, _, body = request("GET", "/readyz")
        if st != 200 or body.strip() != b"ok":
            return notok("after %s: /readyz ok" % after, "%s %r" % (st, body[:200]))
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": name, "namespace": "default"}, "data": {"k": after}}
        st, _, body = request("POST", "/api/v1/namespaces/default/configmaps",
                              json.dumps(cm).encode())
        if st != 201:
            return notok("after %s: create a configmap" % after, "%s %r" % (st, body[:300]))
        st, _, body = request("GET", "/api/v1/namespaces/default/configmaps/" + name)
        if st != 200 or json.loads(body).get("data", {}).get("k") != after:
            return notok("after %s: get the configmap back" % after, "%s %r" % (st, body[:300]))
        ok("after %s: /readyz ok, create + get work" % after)
    except Exception as e:  # any exception here means the server did not answer
        notok("after %s: server still answers" % after, repr(e))


def expect_4xx(what, st, body, want=None):
    if st is None:
        return notok(what + ": a 4xx Status", body)
    good = 400 <= st < 500 and (want is None or st == want) and is_status(body, st)
    if good:
        ok("%s: %d Status" % (what, st))
    else:
        notok(what + ": a 4xx Status", "%s %r" % (st, body[:300]))


CM_PATH = "/api/v1/namespaces/default/configmaps"

# 1. malformed JSON, YAML, protobuf bodies
for what, body, ctype in [
    ("malformed JSON", b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":', "application/json"),
    ("JSON with trailing garbage", b'{"apiVersion":"v1","kind":"ConfigMap"} xx', "application/json"),
    ("JSON that is not an object", b'[1,2,3]', "application/json"),
    ("empty JSON body", b'', "application/json"),
    ("NUL bytes as JSON", b'\x00' * 64, "application/json"),
    ("malformed YAML", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n  : : -\n\t", "application/yaml"),
    ("YAML alias bomb", b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n", "application/yaml"),
    ("malformed protobuf (bad magic)", b"k8z\x00\x0a\x02\x08\x01", "application/vnd.kubernetes.protobuf"),
    ("malformed protobuf (truncated)", b"k8s\x00\x0a\x7f\x0a\x02v1", "application/vnd.kubernetes.protobuf"),
    ("malformed protobuf (huge length)", b"k8s\x00\x0a\x02\x0a\x00\x12\xff\xff\xff\xff\x0f", "application/vnd.kubernetes.protobuf"),
    ("unsupported content type", b"<xml/>", "application/xml"),
]:
    try:
        st, _, rb = request("POST", CM_PATH, body, ctype)
        expect_4xx(what, st, rb)
    except Exception as e:
        notok(what + ": a 4xx Status", repr(e))
    still_healthy(what)

# 2. protobuf nested deeply: field 1 (TypeMeta) holding itself 10,000 times is malformed anyway;
# a Unknown envelope whose raw holds a deeply nested ObjectMeta.ownerReferences chain.
def pb_len(field, payload):
    n = len(payload)
    v = b""
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            v += bytes([b | 0x80])
        else:
            v += bytes([b])
            break
    return bytes([(field << 3) | 2]) + v + payload


deep = b""
for _ in range(10000):
    deep = pb_len(1, deep)
pb_body = b"k8s\x00" + pb_len(1, pb_len(1, b"v1") + pb_len(2, b"ConfigMap")) + pb_len(2, deep)
try:
    st, _, rb = request("POST", CM_PATH, pb_body, "application/vnd.kubernetes.protobuf")
    expect_4xx("protobuf nested 10,000 deep", st, rb)
except Exception as e:
    notok("protobuf nested 10,000 deep: a 4xx Status", repr(e))
still_healthy("protobuf nested 10,000 deep")

# 3. 10,000-deep nesting in JSON and YAML, in a field and as the whole body
depth = 10000
for what, body, ctype in [
    ("JSON nested 10,000 deep in a field",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":' + b"[" * depth + b"]" * depth + b"}",
     "application/json"),
    ("JSON objects nested 10,000 deep",
     b'{"a":' * depth + b"1" + b"}" * depth, "application/json"),
    ("JSON nested 10,000 deep, unterminated", b"[" * depth, "application/json"),
    ("YAML flow nested 10,000 deep", b"x: " + b"[" * depth + b"]" * depth + b"\n", "application/yaml"),
    ("YAML block nested 10,000 deep",
     b"".join(b" " * i + b"a:\n" for i in range(2000)) + b" " * 2000 + b"b: 1\n", "application/yaml"),
    ("JSON merge patch nested 10,000 deep",
     b'{"data":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}", "application/merge-patch+json"),
]:
    try:
        method, path = ("PATCH", CM_PATH + "/badinput-check-1") if "patch" in what else ("POST", CM_PATH)
        st, _, rb = request(method, path, body, ctype)
        expect_4xx(what, st, rb)
    except Exception as e:
        notok(what + ": a 4xx Status", repr(e))
    still_healthy(what)

# 4. invalid UTF-8 inside a string (and an overlong encoding, and a lone surrogate escape)
for what, raw in [
    ("invalid UTF-8 in a string", b"\xff\xfe bad"),
    ("overlong UTF-8 in a string", b"\xc0\xaf"),
    ("truncated UTF-8 in a string", b"\xe2\x82"),
]:
    body = (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"utf8-bad"},"data":{"k":"'
            + raw + b'"}}')
    try:
        st, _, rb = request("POST", CM_PATH, body)
        expect_4xx(what, st, rb)
    except Exception as e:
        notok(what + ": a 4xx Status", repr(e))
    still_healthy(what)
# a lone surrogate escape is valid JSON syntax; upstream (Go) stores U+FFFD.  Any answer is fine
# as long as it is a well-formed HTTP response and the server survives.
try:
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"utf8-surrogate"},"data":{"k":"\\ud800"}}'
    st, _, rb = request("POST", CM_PATH, body)
    if st in (201, 400, 422):
        ok("lone surrogate escape: answered %d" % st)
    else:
        notok("lone surrogate escape: 201 or a 4xx", "%s %r" % (st, rb[:300]))
except Exception as e:
    notok("lone surrogate escape: answered", repr(e))
still_healthy("lone surrogate escape")
# invalid UTF-8 in the URL path and in a header value
for what, data in [
    # a list in a namespace that does not exist is 200 with no items upstream; a get or create
    # there must fail
    ("invalid UTF-8 in the path (get)", b"GET /api/v1/namespaces/\xff\xfe/configmaps/x HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("invalid UTF-8 in the path (create)", b"POST /api/v1/namespaces/\xff\xfe/configmaps HTTP/1.1\r\nHost: x\r\n"
     b"Content-Type: application/json\r\nContent-Length: 72\r\n\r\n"
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"utf8-path-x"}}'),
    ("invalid UTF-8 in a header", b"GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
     b"Accept: application/\xff\xfe\r\nUser-Agent: \xc0\xaf\r\n\r\n"),
]:
    st, rb = send_then_read(data)
    if st is None:
        ok("%s: connection closed (%s)" % (what, rb))
    elif 400 <= st < 500 or (st == 200 and "header" in what):
        ok("%s: %d" % (what, st))
    else:
        notok(what + ": a 4xx", "%s %r" % (st, rb[:300]))
    still_healthy(what)

# 5. a body over 3 MiB: 413 (possibly before the body was read, then the connection closes)
big = (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"'
       + b"x" * (3 * 1024 * 1024 + 100) + b'"}}')
for what, extra, body in [
    ("a 3 MiB+ body with Content-Length", b"", big),
]:
    s = connect(60)
    try:
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (CM_PATH, len(body))).encode()
        st, rb = None, "no answer"
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        try:
            st, _, rb = read_response(s)
        except Exception as e:
            rb = repr(e)
        expect_4xx(what, st, rb, 413)
    finally:
        s.close()
    still_healthy(what)
# chunked, no length up front
s = connect(60)
try:
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % CM_PATH).encode()
    chunks = b""
    for i in range(0, len(big), 65536):
        part = big[i:i + 65536]
        chunks += b"%x\r\n" % len(part) + part + b"\r\n"
    chunks += b"0\r\n\r\n"
    st, rb = None, "no answer"
    try:
        s.sendall(head + chunks)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    try:
        st, _, rb = read_response(s)
    except Exception as e:
        rb = repr(e)
    expect_4xx("a 3 MiB+ chunked body", st, rb, 413)
finally:
    s.close()
still_healthy("a 3 MiB+ chunked body")
# a Content-Length announcing 10 GiB
st, rb = send_then_read(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: 10737418240\r\n\r\n{" % CM_PATH).encode())
expect_4xx("Content-Length of 10 GiB", st, rb, 413)
still_healthy("Content-Length of 10 GiB")
st, rb = send_then_read(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: -5\r\n\r\n{" % CM_PATH).encode())
expect_4xx("negative Content-Length", st, rb)
still_healthy("negative Content-Length")
st, rb = send_then_read(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\nzzzz\r\n" % CM_PATH).encode())
expect_4xx("bad chunk size", st, rb)
still_healthy("bad chunk size")

# 6. huge headers: one 1 MiB header, and 1,000 small ones
for what, extra in [
    ("a 1 MiB header", b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n"),
    ("1,000 header lines", b"".join(b"X-H%d: v\r\n" % i for i in range(1000))),
    ("a 100 KiB URL", None),
]:
    if extra is None:
        data = b"GET /api/v1/namespaces/default/configmaps?x=" + b"a" * (100 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        data = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"
    st, rb = send_then_read(data)
    if st is None:
        ok("%s: connection closed (%s)" % (what, rb))
    elif 400 <= st < 500:
        ok("%s: %d" % (what, st))
    else:
        notok(what + ": a 4xx or a closed connection", "%s %r" % (st, rb[:300]))
    still_healthy(what)

# 7. garbage request lines
for what, data in [
    ("garbage request line", b"GARBAGE\r\n\r\n"),
    ("binary request line", bytes(range(256)) + b"\r\n\r\n"),
    ("HTTP/9.9", b"GET /readyz HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("header without a colon", b"GET /readyz HTTP/1.1\r\nHost x\r\n\r\n"),
    ("bare LF line endings", b"GET /readyz HTTP/1.1\nHost: x\n\n"),
    ("Content-Length and chunked together", ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % CM_PATH).encode()),
    ("two Content-Length headers", ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                    "Content-Length: 3\r\n\r\n{}" % CM_PATH).encode()),
]:
    st, rb = send_then_read(data)
    if st is None:
        ok("%s: connection closed (%s)" % (what, rb))
    elif 400 <= st < 500 or (what == "bare LF line endings" and st == 200) or \
            (what == "HTTP/9.9" and st == 505):  # Go's net/http answers 505 too
        ok("%s: %d" % (what, st))
    else:
        notok(what + ": a 4xx or a closed connection", "%s %r" % (st, rb[:300]))
    still_healthy(what)
# plain HTTP (no TLS) to the TLS port, and a TLS handshake that stops half way
try:
    raw = socket.create_connection((HOST, PORT), timeout=20)
    raw.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        got = raw.recv(4096)
    except OSError as e:
        got = repr(e).encode()
    raw.close()
    ok("plain HTTP on the TLS port: answered %r" % got[:40])
except Exception as e:
    notok("plain HTTP on the TLS port: no hang", repr(e))
still_healthy("plain HTTP on the TLS port")


# 7b. bad query parameters, paths and patch bodies: answered below 500, server survives.
# (upstream answers most with 400; some it ignores, so only "no 5xx, no hang" is asserted for those)
for what, method, path, body, ctype, want in [
    ("limit=-1 (upstream ignores a negative limit)", "GET", CM_PATH + "?limit=-1", b"", "application/json", 200),
    ("limit not a number", "GET", CM_PATH + "?limit=abc", b"", "application/json", 400),
    ("garbage continue token", "GET", CM_PATH + "?limit=1&continue=%%%%%%", b"", "application/json", None),
    ("base64 garbage continue token", "GET", CM_PATH + "?limit=1&continue=eyJ2IjoiIiwicnYiOi0xLCJzdGFydCI6IiJ9", b"", "application/json", None),
    ("resourceVersion not a number", "GET", CM_PATH + "?resourceVersion=abc", b"", "application/json", 400),
    ("resourceVersion not a number on watch", "GET", CM_PATH + "?watch=1&resourceVersion=abc", b"", "application/json", 400),
    ("resourceVersionMatch without resourceVersion", "GET", CM_PATH + "?resourceVersionMatch=NotOlderThan", b"", "application/json", 422),
    ("resourceVersionMatch on a watch without sendInitialEvents", "GET", CM_PATH + "?watch=1&resourceVersionMatch=NotOlderThan", b"", "application/json", 422),
    ("sendInitialEvents on a list", "GET", CM_PATH + "?sendInitialEvents=true", b"", "application/json", 422),
    ("resourceVersion huge", "GET", CM_PATH + "?resourceVersion=99999999999999999999999", b"", "application/json", 400),
    ("resourceVersionMatch bogus", "GET", CM_PATH + "?resourceVersion=1&resourceVersionMatch=Bogus", b"", "application/json", 422),
    ("bad label selector", "GET", CM_PATH + "?labelSelector=a%20in%20(b", b"", "application/json", 400),
    ("bad field selector", "GET", CM_PATH + "?fieldSelector=no.such.field%3Dx", b"", "application/json", 400),
    ("label selector 100 KiB", "GET", CM_PATH + "?labelSelector=" + "a" * 60000, b"", "application/json", None),
    ("invalid percent-encoding", "GET", "/api/v1/namespaces/%zz/configmaps", b"", "application/json", None),
    ("NUL in the path", "GET", "/api/v1/namespaces/default/configmaps/a%00b", b"", "application/json", None),
    ("dot-dot path", "GET", "/api/v1/namespaces/../../../etc/passwd", b"", "application/json", None),
    ("very long name", "GET", CM_PATH + "/" + "a" * 5000, b"", "application/json", None),
    ("empty name segment", "GET", "/api/v1/namespaces//configmaps/", b"", "application/json", None),
    ("unknown group", "GET", "/apis/no.such.group/v1/things", b"", "application/json", 404),
    ("timeoutSeconds not a number", "GET", CM_PATH + "?watch=1&timeoutSeconds=abc", b"", "application/json", 400),
    ("merge patch giving data a list", "PATCH", CM_PATH + "/badinput-check-1", b'{"data":[1]}',
     "application/merge-patch+json", 422),
    ("strategic patch giving data a number value", "PATCH", CM_PATH + "/badinput-check-1", b'{"data":{"a":5}}',
     "application/strategic-merge-patch+json", 422),
    ("JSON patch giving data a string", "PATCH", CM_PATH + "/badinput-check-1",
     b'[{"op":"add","path":"/data","value":"x"}]', "application/json-patch+json", 422),
    ("apply with data a list", "PATCH", CM_PATH + "/badinput-check-1?fieldManager=x&force=true",
     b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: badinput-check-1\ndata: [1]\n",
     "application/apply-patch+yaml", 400),
    ("pod with a malformed quantity", "POST", "/api/v1/namespaces/default/pods",
     b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pqty"},"spec":{"containers":[{"name":"a","image":"b","resources":{"limits":{"cpu":"lots"}}}]}}',
     "application/json", 400),
    ("unknown verb", "BREW", CM_PATH, b"", "application/json", None),
    ("dryRun bogus", "POST", CM_PATH + "?dryRun=Bogus",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dry-bogus"}}', "application/json", 422),
    ("fieldValidation bogus", "POST", CM_PATH + "?fieldValidation=Bogus",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv-bogus"}}', "application/json", 422),
    ("fieldManager 1000 chars", "POST", CM_PATH + "?fieldManager=" + "m" * 1000,
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fm-long"}}', "application/json", 422),
    ("fieldManager with a control character", "POST", CM_PATH + "?fieldManager=a%01b",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fm-ctl"}}', "application/json", 422),
    ("force on a merge patch", "PATCH", CM_PATH + "/badinput-check-1?force=true", b"{}",
     "application/merge-patch+json", 422),
    ("kind mismatch", "POST", CM_PATH,
     b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"kind-mismatch"}}', "application/json", 400),
    ("metadata not an object", "POST", CM_PATH,
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":"x"}', "application/json", 400),
    ("data not an object", "POST", CM_PATH,
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"data-bad"},"data":[1]}', "application/json", 400),
    ("labels with a non-string value", "POST", CM_PATH,
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"lbl-bad","labels":{"a":{"b":1}}}}', "application/json", 400),
    ("name with a number type", "POST", CM_PATH,
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":12}}', "application/json", 400),
    ("huge integer", "POST", CM_PATH,
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bigint","generation":1' + b"0" * 400 + b'}}', "application/json", None),
    ("pod with garbage spec", "POST", "/api/v1/namespaces/default/pods",
     b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pg"},"spec":{"containers":"x","volumes":{"a":1}}}', "application/json", 400),
    ("pod with null containers entries", "POST", "/api/v1/namespaces/default/pods",
     b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pn"},"spec":{"containers":[null,1,"s",[]]}}', "application/json", 400),
    ("service with garbage ports", "POST", "/api/v1/namespaces/default/services",
     b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"sg"},"spec":{"ports":[{"port":"x"},null,{"port":70000,"nodePort":-1}],"clusterIP":"999.1.1.1","type":"NodePort"}}', "application/json", 400),
    ("deployment with garbage selector", "POST", "/apis/apps/v1/namespaces/default/deployments",
     b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"dg"},"spec":{"selector":{"matchExpressions":[{"key":1,"operator":"Bogus","values":"x"}]},"replicas":-1,"template":7}}', "application/json", 400),
    ("JSON patch with garbage ops", "PATCH", CM_PATH + "/badinput-check-1",
     b'[{"op":"bogus"},{"op":"add","path":5},{"op":"move","from":"/metadata","path":"/metadata/x"},null]',
     "application/json-patch+json", None),
    ("JSON patch not an array", "PATCH", CM_PATH + "/badinput-check-1", b'{"op":"add"}',
     "application/json-patch+json", 400),
    ("JSON patch 20,000 ops", "PATCH", CM_PATH + "/badinput-check-1",
     b"[" + b",".join([b'{"op":"test","path":"/kind","value":"ConfigMap"}'] * 20000) + b"]",
     "application/json-patch+json", None),
    ("strategic patch with bogus directives", "PATCH", CM_PATH + "/badinput-check-1",
     b'{"$patch":"bogus","data":{"$patch":"delete"},"metadata":{"$setElementOrder/finalizers":5,"$retainKeys":7}}',
     "application/strategic-merge-patch+json", None),
    ("merge patch that is a string", "PATCH", CM_PATH + "/badinput-check-1", b'"x"',
     "application/merge-patch+json", None),
    ("apply patch that is a list", "PATCH", CM_PATH + "/badinput-check-1?fieldManager=x", b"- 1\n- 2\n",
     "application/apply-patch+yaml", None),
    ("apply patch without fieldManager", "PATCH", CM_PATH + "/badinput-check-1",
     b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: badinput-check-1\n", "application/apply-patch+yaml", 422),
    ("status patch with garbage", "PATCH", "/api/v1/namespaces/default/pods/nope/status", b'{"status":5}',
     "application/merge-patch+json", None),
    ("scale with garbage", "PUT", "/apis/apps/v1/namespaces/default/deployments/nope/scale",
     b'{"apiVersion":"autoscaling/v1","kind":"Scale","spec":{"replicas":"x"}}', "application/json", None),
    ("binding with garbage", "POST", "/api/v1/namespaces/default/pods/nope/binding",
     b'{"apiVersion":"v1","kind":"Binding","target":5}', "application/json", None),
    ("deletecollection with garbage body", "DELETE", CM_PATH + "?labelSelector=nomatch%3D1",
     b'{"kind":"DeleteOptions","propagationPolicy":"Bogus","gracePeriodSeconds":"x","preconditions":5}', "application/json", None),
    ("delete with garbage body", "DELETE", CM_PATH + "/nope", b"{{{", "application/json", None),
]:
    try:
        st, _, rb = request(method, path, body, ctype, timeout=60)
        if want is None:
            if st < 500:
                ok("%s: %d" % (what, st))
            else:
                notok(what + ": below 500", "%s %r" % (st, rb[:300]))
        elif want == 200:
            if st == 200:
                ok("%s: 200" % what)
            else:
                notok(what + ": 200", "%s %r" % (st, rb[:300]))
        else:
            expect_4xx(what, st, rb, want)
    except Exception as e:
        notok(what + ": answered", repr(e))
    still_healthy(what)

# the type errors name the field as upstream's decoder does
for what, method, path, body, ctype, want in [
    ("ConfigMap data a list", "POST", CM_PATH, b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m1"},"data":[1]}',
     "application/json", 'ConfigMap in version \\"v1\\" cannot be handled as a ConfigMap: json: cannot unmarshal array '
     'into Go struct field ConfigMap.data of type map[string]string'),
    ("Pod containers a string", "POST", "/api/v1/namespaces/default/pods",
     b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"m2"},"spec":{"containers":"x"}}', "application/json",
     "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container"),
    ("dryRun bogus", "POST", CM_PATH + "?dryRun=Bogus", b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m3"}}',
     "application/json", 'CreateOptions.meta.k8s.io \\"\\" is invalid: dryRun: Unsupported value: []string{\\"Bogus\\"}'),
    ("limit not a number", "GET", CM_PATH + "?limit=abc", b"", "application/json",
     'strconv.ParseInt: parsing \\"abc\\": invalid syntax'),
    ("delete with gracePeriodSeconds not a number", "DELETE", CM_PATH + "/m-none?gracePeriodSeconds=abc", b"",
     "application/json", 'strconv.ParseInt: parsing \\"abc\\": invalid syntax'),
    ("delete with a bogus propagationPolicy", "DELETE", CM_PATH + "/m-none?propagationPolicy=Bogus", b"",
     "application/json", 'DeleteOptions.meta.k8s.io \\"\\" is invalid: propagationPolicy: Unsupported value: '
     '\\"Bogus\\": supported values: \\"Foreground\\", \\"Background\\", \\"Orphan\\", \\"nil\\"'),
    ("delete with orphanDependents and propagationPolicy", "DELETE", CM_PATH + "/m-none",
     b'{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":true,"propagationPolicy":"Orphan"}',
     "application/json", 'propagationPolicy: Invalid value: \\"Orphan\\": orphanDependents and deletionPropagation '
     'cannot be both set'),
    ("deletecollection with dryRun bogus", "DELETE", CM_PATH + "?dryRun=Bogus", b"", "application/json",
     'DeleteOptions.meta.k8s.io \\"\\" is invalid: dryRun: Unsupported value: []string{\\"Bogus\\"}'),
]:
    try:
        st, _, rb = request(method, path, body, ctype, timeout=60)
        if st is not None and 400 <= st < 500 and want.encode() in rb:
            ok("%s: %d names it as upstream" % (what, st))
        else:
            notok(what + ": upstream's message", "%s %r" % (st, rb[:400]))
    except Exception as e:
        notok(what + ": answered", repr(e))
still_healthy("type error messages")

# watches with odd timeouts: the stream must start (200) or be refused (4xx); it may stay open.
for what, q in [("timeoutSeconds huge on watch", "timeoutSeconds=99999999999999999999"),
                ("timeoutSeconds 2^62 on watch", "timeoutSeconds=4611686018427387904"),
                ("timeoutSeconds negative on watch", "timeoutSeconds=-5"),
                ("timeoutSeconds not a number on watch", "timeoutSeconds=abc")]:
    try:
        st, head = request_head("GET", CM_PATH + "?watch=1&" + q)
        if st == 200 or 400 <= st < 500:
            ok("%s: %d" % (what, st))
        else:
            notok(what + ": 200 or a 4xx", "%s %r" % (st, head[:300]))
    except Exception as e:
        notok(what + ": answered", repr(e))
    still_healthy(what)

# 8. slow loris: one header byte a second.  The server must close the connection (its header
# deadline is 30 s) while serving everyone else meanwhile.
def loris(result):
    s = connect(120)
    start = time.time()
    try:
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for b in b"X-Slow: " + b"a" * 200:
            s.sendall(bytes([b]))
            s.settimeout(1.0)
            try:
                got = s.recv(4096)
                result["closed_after"] = time.time() - start
                result["got"] = got[:200]
                return
            except socket.timeout:
                pass
            except (ConnectionError, ssl.SSLError, OSError) as e:
                result["closed_after"] = time.time() - start
                result["got"] = repr(e)
                return
        result["closed_after"] = None
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
        result["closed_after"] = time.time() - start
        result["got"] = repr(e)
    finally:
        s.close()


res = {}
t = threading.Thread(target=loris, args=(res,))
t.start()
time.sleep(3)
still_healthy("slow loris started")
t.join(150)
ca = res.get("closed_after")
if ca is not None and ca < 100:
    ok("slow loris: connection closed after %.0fs (%r)" % (ca, res.get("got")))
else:
    notok("slow loris: connection closed within 100s", repr(res))
still_healthy("slow loris")

# 9. ten concurrent connections that send half a request and stop: others are still served,
# and the server closes the stalled ones in the end (header or body deadline).
halves = []
for i in range(10):
    s = connect(120)
    if i % 2 == 0:
        s.sendall(b"GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAcc")
    else:
        s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: 100\r\n\r\n{\"apiVersion\"" % CM_PATH).encode())
    halves.append(s)
still_healthy("10 half requests open")
# the stalled connections must not block a burst of ordinary requests either
errs = []


def burst():
    try:
        st, _, _ = request("GET", "/readyz")
        if st != 200:
            errs.append(st)
    except Exception as e:
        errs.append(repr(e))


ths = [threading.Thread(target=burst) for _ in range(20)]
for th in ths:
    th.start()
for th in ths:
    th.join(60)
if not errs:
    ok("20 concurrent /readyz while 10 half requests are open")
else:
    notok("20 concurrent /readyz while 10 half requests are open", repr(errs[:5]))
deadline = time.time() + 130
open_ = list(halves)
closed_hdr, closed_body = 0, 0
while open_ and time.time() < deadline:
    for s in list(open_):
        s.settimeout(0.2)
        try:
            got = s.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            got = b""
        open_.remove(s)
if not open_:
    ok("10 half requests: the server closed every one of them")
else:
    notok("10 half requests: the server closed every one of them", "%d still open after 130s" % len(open_))
for s in halves:
    s.close()
still_healthy("10 half requests")

# 10. framing and protocol oddities: a 4xx or a closed connection, never a 5xx or a crash
def answered_not_5xx(what, st, rb, allowed=None):
    if st is None:
        ok("%s: connection closed (%s)" % (what, rb))
    elif (allowed and st in allowed) or (allowed is None and 400 <= st < 500):
        ok("%s: %d" % (what, st))
    else:
        notok(what + ": %s or closed" % (allowed or "a 4xx"), "%s %r" % (st, rb[:300]))


CHUNKED_HEAD = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n" % CM_PATH).encode()
for what, data in [
    ("chunk size not hex", CHUNKED_HEAD + b"zz\r\n{}\r\n0\r\n\r\n"),
    ("chunk size overflowing 64 bits", CHUNKED_HEAD + b"f" * 18 + b"\r\n{}\r\n0\r\n\r\n"),
    ("chunk size negative", CHUNKED_HEAD + b"-1\r\n{}\r\n0\r\n\r\n"),
    ("chunk data without its CRLF", CHUNKED_HEAD + b"2\r\n{}XX0\r\n\r\n"),
    ("chunk size line 100 KiB long", CHUNKED_HEAD + b"0" * 102400 + b"1\r\n{\r\n0\r\n\r\n"),
    ("HTTP/2 preface on the HTTP/1 port", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64),
    ("Expect: 100-continue with 10 GiB", ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
     "Content-Type: application/json\r\nExpect: 100-continue\r\n"
     "Content-Length: 10737418240\r\n\r\n" % CM_PATH).encode()),
    ("protobuf with wire type 7", b"POST " + CM_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
     b"Content-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: 8\r\n\r\n"
     b"k8s\x00\x0f\x01\x02\x03"),
    ("protobuf with an 11-byte varint", b"POST " + CM_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
     b"Content-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: 17\r\n\r\n"
     b"k8s\x00\x0a" + b"\xff" * 11 + b"\x01"),
]:
    try:
        st, rb = send_then_read(data)
        answered_not_5xx(what, st, rb, {100, 400, 411, 413, 415, 417, 422, 505} if "Expect" in what
                         or "preface" in what else None)
    except Exception as e:
        notok(what + ": answered or closed", repr(e))
    still_healthy(what)

for what, body in [
    ("YAML with two documents", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two-docs}\n"
     b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: two-docs-b}\n"),
    ("YAML with a bad !!binary", b"apiVersion: v1\nkind: Secret\nmetadata: {name: bin}\n"
     b"data: {k: !!binary '@@@'}\n"),
    ("YAML with a merge key of a scalar", b"apiVersion: v1\nkind: ConfigMap\n<<: 5\n"
     b"metadata: {name: merge-scalar}\n"),
]:
    try:
        st, _, rb = request("POST", CM_PATH, body, "application/yaml")
        # upstream takes the first document of a multi-document body; any 201 or 4xx is fine
        answered_not_5xx(what, st, rb, {201, 400, 415, 422})
    except Exception as e:
        notok(what + ": answered", repr(e))
    still_healthy(what)

for what, accept in [("Accept with a bad q", "application/json;q=abc"),
                     ("Accept of a Table as protobuf",
                      "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"),
                     ("Accept nothing known", "text/x-nothing"),
                     ("Accept 200 media ranges", ",".join(["a/b%d" % i for i in range(200)]))]:
    st, rb = send_then_read(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: %s\r\n"
                             "Connection: close\r\n\r\n" % (CM_PATH, accept)).encode())
    if what == "Accept nothing known":
        # upstream: 406 NotAcceptable naming the media types it serves
        answered_not_5xx(what, st, rb, {406})
        if b"only the following media types are accepted" in rb:
            ok(what + ": upstream's NotAcceptable message")
        else:
            notok(what + ": upstream's NotAcceptable message", rb[:200])
    else:
        answered_not_5xx(what, st, rb, {200, 406})
    still_healthy(what)

# upgrades the server does not expect, and a websocket handshake without its key
for what, path, hdrs, allowed in [
    ("websocket upgrade on a list", CM_PATH, "Connection: Upgrade\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n", {200, 400}),
    ("SPDY upgrade on a list", CM_PATH, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n", {200, 400}),
    ("h2c upgrade", "/readyz", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
     "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", {200}),
    ("websocket exec without a key", "/api/v1/namespaces/default/pods/nosuch/exec?command=ls",
     "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", {400, 403, 404}),
    ("exec upgrade to an unknown protocol", "/api/v1/namespaces/default/pods/nosuch/exec?command=ls",
     "Connection: Upgrade\r\nUpgrade: gopher/1\r\n", {400, 403, 404}),
]:
    st, rb = send_then_read(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n"
                             % (path, hdrs)).encode())
    answered_not_5xx(what, st, rb, allowed)
    still_healthy(what)

# twenty clients that hang up in the middle of a body
for i in range(20):
    s = connect(20)
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: 1000\r\n\r\n{\"apiVersion\":" % CM_PATH).encode())
    finally:
        s.close()
still_healthy("20 clients hung up mid-body")

sys.exit(1 if fails else 0)

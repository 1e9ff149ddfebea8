#!/usr/bin/env python3
"""tests/e2e/errors_probe.py HOST PORT CA CERT KEY - malformed requests to a running API server,
each answer compared with upstream's: HTTP status, Status reason and the message word for word
(the wording each case cites comes from the upstream source named in its comment).  Prints
"ok - ..." / "not ok - ..." lines; exits 1 on any failure.  Loopback only."""
import http.client
import json
import ssl
import sys

host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
failed = 0


def ok(what):
    print("ok - " + what)


def notok(what, why):
    global failed
    failed += 1
    print("not ok - " + what)
    for line in str(why).splitlines()[:6]:
        print("#   " + line)


def request(method, path, body=b"", ctype="application/json", head_only=False):
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
    try:
        hdrs = {"Accept": "application/json"}
        if ctype is not None:
            hdrs["Content-Type"] = ctype
        c.request(method, path, body=body if (body or method in ("POST", "PUT", "PATCH")) else None,
                  headers=hdrs)
        r = c.getresponse()
        if head_only:
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), b""
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


CM = "/api/v1/namespaces/default/configmaps"
OBJ = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s"}}'
UNSTRUCT = ('couldn\'t get version/kind; json parse error: json: cannot unmarshal %s into Go value of '
            'type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
            '"json:\\"kind,omitempty\\"" }')
SCHEME = ' in scheme "pkg/api/legacyscheme/scheme.go:30"'
BODY_415 = ("the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml, application/vnd.kubernetes.protobuf")
PATCH_415 = ("the body of the request was in an unknown format - accepted media types include: "
             "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
             "application/strategic-merge-patch+json")

# set up: one configmap to update and patch
st, _, rb = request("POST", CM, OBJ % b"err-target")
if st != 201:
    notok("set-up: create err-target", "%s %r" % (st, rb[:300]))
    sys.exit(1)

big = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"' + \
    b"a" * (3 * 1024 * 1024 + 10) + b'"}}'

# (what, method, path, content type, body, status, reason, message)
cases = [
    # handlers/rest.go transformDecodeError: apiVersion/kind unreadable -> type, Go's
    # encoding/json error (serializer/json/meta.go Interpret), the body's first 30 bytes
    ("create: truncated JSON", "POST", CM, "application/json",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":', 400, "BadRequest",
     'the object provided is unrecognized (must be of type ConfigMap): couldn\'t get version/kind; '
     'json parse error: unexpected end of JSON input ({"apiVersion":"v1","kind":"Con ...)'),
    ("create: JSON syntax error", "POST", CM, "application/json", b'{"a" 1}', 400, "BadRequest",
     "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
     "json parse error: invalid character '1' after object key ({\"a\" 1})"),
    ("create: trailing garbage", "POST", CM, "application/json", b'{"a":1} x', 400, "BadRequest",
     "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
     "json parse error: invalid character 'x' after top-level value ({\"a\":1} x)"),
    ("create: empty body", "POST", CM, "application/json", b"", 400, "BadRequest",
     "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
     "json parse error: unexpected end of JSON input (<empty>)"),
    ("create: a NUL byte after a literal", "POST", CM, "application/json",
     b'{"metadata":{"name":"nul"},"x":null\x00,"b":1}', 400, "BadRequest",
     "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
     "json parse error: invalid character '\\x00' after object key:value pair "
     "({\"metadata\":{\"name\":\"nul\"},\"x\" ...)"),
    ("create: a JSON array", "POST", CM, "application/json", b"[1,2]", 400, "BadRequest",
     "the object provided is unrecognized (must be of type ConfigMap): " + UNSTRUCT % "array" +
     " (5b312c325d)"),
    # serializer/protobuf/protobuf.go Decode, then transformDecodeError as above
    ("create: JSON sent as protobuf", "POST", CM, "application/vnd.kubernetes.protobuf",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}', 400, "BadRequest",
     "the object provided is unrecognized (must be of type ConfigMap): provided data does not "
     "appear to be a protobuf message, expected prefix [107 56 115 0] "
     "({\"apiVersion\":\"v1\",\"kind\":\"Con ...)"),
    ("create: empty protobuf body", "POST", CM, "application/vnd.kubernetes.protobuf", b"", 400,
     "BadRequest", "the object provided is unrecognized (must be of type ConfigMap): empty data "
     "(<empty>)"),
    ("create: protobuf envelope alone", "POST", CM, "application/vnd.kubernetes.protobuf", b"k8s\x00",
     400, "BadRequest", "the object provided is unrecognized (must be of type ConfigMap): empty body "
     "(6b387300)"),
    ("create: kind a number", "POST", CM, "application/json", b'{"kind":5,"metadata":{"name":"k1"}}',
     400, "BadRequest", "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
     "version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type "
     "string ({\"kind\":5,\"metadata\":{\"name\":\" ...)"),
    # the codec converts what apiVersion/kind name into the resource's internal type
    # (conversion/converter.go, runtime/scheme.go notRegisteredErr)
    ("create: another kind of the same version", "POST", CM, "application/json",
     b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}', 400, "BadRequest",
     'Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to '
     '(core.ConfigMap): unknown conversion'),
    ("create: a kind of another group", "POST", CM, "application/json",
     b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}', 400, "BadRequest",
     'Deployment in version "v1" cannot be handled as a ConfigMap: converting (v1.Deployment) to '
     '(core.ConfigMap): unknown conversion'),
    ("create: Deployment sent to replicasets", "POST", "/apis/apps/v1/namespaces/default/replicasets",
     "application/json", b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}', 400,
     "BadRequest", 'Deployment in version "v1" cannot be handled as a ReplicaSet: converting '
     '(v1.Deployment) to (apps.ReplicaSet): unknown conversion'),
    ("create: a lower-case kind", "POST", CM, "application/json",
     b'{"apiVersion":"v1","kind":"configmap","metadata":{"name":"x"}}', 400, "BadRequest",
     'configmap in version "v1" cannot be handled as a ConfigMap: no kind "configmap" is registered '
     'for version "v1"' + SCHEME),
    ("create: an unknown version", "POST", CM, "application/json",
     b'{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}', 400, "BadRequest",
     'ConfigMap in version "v2" cannot be handled as a ConfigMap: no kind "ConfigMap" is registered '
     'for version "v2"' + SCHEME),
    ("create: Deployment with apiVersion v1", "POST", "/apis/apps/v1/namespaces/default/deployments",
     "application/json", b'{"apiVersion":"v1","kind":"Deployment","metadata":{"name":"x"}}', 400,
     "BadRequest", 'Deployment in version "v1" cannot be handled as a Deployment: no kind '
     '"Deployment" is registered for version "v1"' + SCHEME),
    # handlers/create.go: the same kind of another group converts, then AcceptsGroupVersion
    ("create: events.k8s.io Event sent to core events", "POST", "/api/v1/namespaces/default/events",
     "application/json", b'{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"x"}}',
     400, "BadRequest", "the API version in the data (events.k8s.io/v1) does not match the expected "
     "API version (v1)"),
    # core/v1 validation, rest.BeforeCreate
    ("create: no name", "POST", CM, "application/json",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}', 422, "Invalid",
     'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'),
    ("create: namespace of the body differs", "POST", CM, "application/json",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"kube-system"}}', 400,
     "BadRequest", "the namespace of the provided object does not match the namespace sent on the "
     "request"),
    # handlers/rest.go limitedReadBody: 3 MiB
    ("create: a body over 3 MiB", "POST", CM, "application/json", big, 413, "RequestEntityTooLarge",
     "Request entity too large: limit is 3145728"),
    # negotiation.NegotiateInputSerializer
    ("create: text/plain", "POST", CM, "text/plain", OBJ % b"x", 415, "UnsupportedMediaType", BODY_415),
    ("create: a patch media type", "POST", CM, "application/merge-patch+json", OBJ % b"x", 415,
     "UnsupportedMediaType", BODY_415),
    ("patch: application/json", "PATCH", CM + "/err-target", "application/json", b'{"data":{}}', 415,
     "UnsupportedMediaType", PATCH_415),
    # handlers/update.go checkName (namer.go errEmptyName)
    ("update: no name", "PUT", CM + "/err-target", "application/json",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}', 400, "BadRequest",
     "the name of the object (err-target based on URL) was undeterminable: name must be provided"),
    ("update: another name", "PUT", CM + "/err-target", "application/json", OBJ % b"other", 400,
     "BadRequest", "the name of the object (other) does not match the name on the URL (err-target)"),
    ("update: another namespace", "PUT", CM + "/err-target", "application/json",
     b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"err-target","namespace":"kube-system"}}',
     400, "BadRequest", "the namespace of the object (kube-system) does not match the namespace on "
     "the request (default)"),
    ("update: truncated JSON", "PUT", CM + "/err-target", "application/json", b'{"apiVersion":"v1",', 400,
     "BadRequest", "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
     "version/kind; json parse error: unexpected end of JSON input ({\"apiVersion\":\"v1\",)"),
    # query parameters: metainternalversion conversion (strconv), fields/labels parsers
    ("list: limit=abc", "GET", CM + "?limit=abc", None, b"", 400, "BadRequest",
     'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("watch: timeoutSeconds=abc", "GET", CM + "?watch=1&timeoutSeconds=abc", None, b"", 400,
     "BadRequest", 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("list: fieldSelector garbage", "GET", CM + "?fieldSelector=garbage", None, b"", 400, "BadRequest",
     "invalid selector: 'garbage'; can't understand 'garbage'"),
    ("list: labelSelector garbage", "GET", CM + "?labelSelector=a%20b", None, b"", 400, "BadRequest",
     "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("list: resourceVersion=abc", "GET", CM + "?resourceVersion=abc", None, b"", 400, "BadRequest",
     None),
    ("get: a missing object", "GET", CM + "/no-such", None, b"", 404, "NotFound",
     'configmaps "no-such" not found'),
    ("get: an unknown resource", "GET", "/api/v1/namespaces/default/nosuchthings", None, b"", 404,
     "NotFound", "the server could not find the requested resource"),
]

for what, method, path, ctype, body, want_st, want_reason, want_msg in cases:
    try:
        st, _, rb = request(method, path, body, ctype)
        o = json.loads(rb)
        got = (st, o.get("kind"), o.get("reason"), o.get("code"))
        if got != (want_st, "Status", want_reason, want_st):
            notok(what, "got %r, want %r; %r" % (got, (want_st, "Status", want_reason, want_st), rb[:300]))
        elif want_msg is not None and o.get("message") != want_msg:
            notok(what, "message %r\nwant    %r" % (o.get("message"), want_msg))
        else:
            ok("%s: %d %s%s" % (what, st, want_reason, ", upstream's words" if want_msg else ""))
    except Exception as e:
        notok(what, repr(e))

# query parameters that are not errors upstream
# limit=-1: a negative limit is no limit (storage only pages for limit > 0)
st, _, rb = request("GET", CM + "?limit=-1", b"", None)
items = json.loads(rb).get("items") if st == 200 else None
if st == 200 and items is not None and not json.loads(rb)["metadata"].get("continue"):
    ok("list: limit=-1 is a whole list (200, %d items)" % len(items))
else:
    notok("list: limit=-1 is a whole list", "%s %r" % (st, rb[:300]))
# watch=maybe: conversion.Convert_Slice_string_To_bool - only "0" and "false" are false
for q, watch in [("watch=maybe", True), ("watch=f", True), ("watch=FALSE", False), ("watch=0", False)]:
    try:
        st, hdrs, _ = request("GET", CM + "?" + q + "&timeoutSeconds=1", b"", None, head_only=True)
        is_watch = hdrs.get("transfer-encoding") == "chunked" and "content-length" not in hdrs
        if st == 200 and is_watch == watch:
            ok("%s is %s (as upstream's bool parameters)" % (q, "a watch" if watch else "a list"))
        else:
            notok("%s is %s" % (q, "a watch" if watch else "a list"), "%s %r" % (st, hdrs))
    except Exception as e:
        notok(q, repr(e))

# an apiVersion that is no group/version (two slashes): ParseGroupVersion fails and upstream
# takes the resource's own (schema.FromAPIVersionAndKind)
st, _, rb = request("POST", CM, b'{"apiVersion":"a/b/c","kind":"ConfigMap","metadata":{"name":"gv-odd"}}')
if st == 201 and json.loads(rb).get("apiVersion") == "v1":
    ok("create: apiVersion a/b/c is taken as the resource's (201, v1)")
else:
    notok("create: apiVersion a/b/c is taken as the resource's", "%s %r" % (st, rb[:300]))

# the server is still there
st, _, rb = request("GET", "/readyz", b"", None)
if st == 200:
    ok("server still ready after the malformed requests")
else:
    notok("server still ready after the malformed requests", "%s %r" % (st, rb[:200]))
sys.exit(1 if failed else 0)

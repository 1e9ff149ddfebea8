#!/usr/bin/env python3
"""Build a docker-archive image (busybox:latest) from the host's busybox-static, for e2e tests:
/bin/busybox plus a symlink per applet, /tmp, and /www/blob ($BLOB_MB MiB random, default 1, also written to
BLOBFILE so tests can compare).  Usage: streams_image.py OUT.tar BLOBFILE"""
import hashlib, io, json, os, subprocess, sys, tarfile

out, blobfile = sys.argv[1], sys.argv[2]
applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split()
data = os.urandom(int(os.environ.get("BLOB_MB", "1")) << 20)
with open(blobfile, "wb") as f:
    f.write(data)
lb = io.BytesIO()
with tarfile.open(fileobj=lb, mode="w") as t:
    for d in ["bin", "tmp", "www", "etc"]:
        ti = tarfile.TarInfo(d)
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o1777 if d == "tmp" else 0o755
        t.addfile(ti)
    t.add("/bin/busybox", "bin/busybox")
    for a in applets:
        if a != "busybox":
            ti = tarfile.TarInfo("bin/" + a)
            ti.type = tarfile.SYMTYPE
            ti.linkname = "busybox"
            t.addfile(ti)
    ti = tarfile.TarInfo("www/blob")
    ti.size = len(data)
    ti.mode = 0o644
    t.addfile(ti, io.BytesIO(data))
layer = lb.getvalue()
cfg = json.dumps({"architecture": "amd64", "os": "linux",
                  "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                  "rootfs": {"type": "layers",
                             "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
man = json.dumps([{"Config": "config.json", "RepoTags": ["busybox:latest"],
                   "Layers": ["layer.tar"]}]).encode()
with tarfile.open(out, "w") as t:
    for name, b in [("layer.tar", layer), ("config.json", cfg), ("manifest.json", man)]:
        ti = tarfile.TarInfo(name)
        ti.size = len(b)
        t.addfile(ti, io.BytesIO(b))

#!/bin/bash
# tests/e2e/apiserver_badinput.sh - the API server against bad input (issue 3): malformed
# JSON/YAML/protobuf, > 3 MiB bodies, 10,000-deep nesting, invalid UTF-8, huge headers, garbage
# request lines, a slow-loris client and stalled half requests.  Each must get a 4xx Status or a
# closed connection, and the server must keep answering /readyz and a create + get afterwards
# (tests/e2e/badinput_probe.py does the probing).  Finally the API server child must never have
# exited or been restarted.  Loopback only; the trap stops the server and removes the temp dir.
set -u
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/lone_apiserver.sh"
lone_apiserver_start badinput

python3 "$ROOT/tests/e2e/badinput_probe.py" 127.0.0.1 "$port" "$data/pki/ca.crt" \
    "$data/pki/admin.crt" "$data/pki/admin.key" || fails=$((fails + 1))

lone_apiserver_kept
exit $((fails > 0))

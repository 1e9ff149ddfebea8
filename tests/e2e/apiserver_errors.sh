#!/bin/bash
# tests/e2e/apiserver_errors.sh - malformed requests through the real API, each answer compared
# with upstream's status code, reason and message word for word (tests/e2e/errors_probe.py has
# the table and cites the upstream source of each wording): bad JSON, wrong kinds and versions,
# missing names, a body over 3 MiB, bad content types, bad query parameters, and the parameters
# upstream accepts although they look wrong (limit=-1, watch=maybe).  Finally the API server
# child must never have been restarted and its log must hold no sanitizer report.  Loopback
# only; the trap stops the server and removes the temp dir.
set -u
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/lone_apiserver.sh"
lone_apiserver_start errors

python3 "$ROOT/tests/e2e/errors_probe.py" 127.0.0.1 "$port" "$data/pki/ca.crt" \
    "$data/pki/admin.crt" "$data/pki/admin.key" || fails=$((fails + 1))

lone_apiserver_kept
exit $((fails > 0))

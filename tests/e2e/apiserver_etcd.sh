#!/bin/bash
# tests/e2e/apiserver_etcd.sh - the apiserver e2e (apiserver_kubectl.sh) on a real etcd instead of
# SQLite, with kubectl 1.33 and the Python client.
command -v etcd >/dev/null || { echo "skip - apiserver on etcd (etcd not installed)"; exit 0; }
STORE=etcd KUBECTL_VERSIONS=${KUBECTL_VERSIONS:-1.33} exec "$(dirname "$0")/apiserver_kubectl.sh"

# tests/e2e/lib/standin_node.sh - the stand-in node (bench/streams_node: src/streams on an HTTPS
# port running commands and ports on this host, no containers) and an API server without an
# agent in front of it, for the scripts that drive exec/attach/port-forward through the relay
# (tests/e2e/streams.sh, tests/e2e/streams_seal.sh, bench/streams_seal_ab.sh); sourced, never
# run.  The caller sets B (the build directory), keeps an array `pids` that its trap stops, and
# runs in its temp directory (the certificate, node.log and ./nodeport go there).  Loopback only.
#   free_port                    a free TCP port on 127.0.0.1
#   standin_node_start           a throwaway certificate and the stand-in on a free port (written
#                                to ./nodeport); sets standin_pid
#   standin_server_start DIR [ENV=VALUE...]
#                                `ckube server --disable-agent` (ENV in its environment), data in
#                                DIR/data, log DIR/server.log; sets api (its port)
#   standin_ready DIR            waits up to ~20 s for ./nodeport and the server's /readyz through
#                                DIR/data/kubeconfig; returns 1 if they did not come
#   standin_objects FILE         the Node "standin" and a pod "sp" on it, as YAML into FILE
#   standin_setstatus KIND NAME JSON
#                                the object's status replaced, through the caller's `kc`
#   standin_node_status          the Node's address and kubelet port: the stand-in's (via kc)

STANDIN_KUBECTL=${STANDIN_KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

standin_node_start() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout node.key \
        -out node.crt -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
    "$B/bench/streams_node" 0 node.crt node.key nodeport >node.log 2>&1 &
    standin_pid=$!
    pids+=("$standin_pid")
}

standin_server_start() {
    local dir=$1
    shift
    api=$(free_port)
    mkdir -p "$dir"
    env "$@" "$B/ckube" server --data-dir "$dir/data" --secure-port "$api" --disable-agent \
        >"$dir/server.log" 2>&1 &
    pids+=($!)
}

standin_ready() {
    local i cfg=$1/data/kubeconfig
    for i in $(seq 100); do
        [ -f nodeport ] && [ -f "$cfg" ] &&
            timeout 20 "$STANDIN_KUBECTL" --kubeconfig "$cfg" get --raw /readyz >/dev/null 2>&1 &&
            return 0
        sleep 0.2
    done
    return 1
}

standin_objects() {
    cat >"$1" <<EOY
apiVersion: v1
kind: Node
metadata: {name: standin}
---
apiVersion: v1
kind: Pod
metadata: {name: sp, namespace: default}
spec:
  nodeName: standin
  containers: [{name: main, image: busybox}]
  tolerations: [{operator: Exists}]
EOY
}

standin_setstatus() {
    kc get "$1" "$2" -o json | python3 -c "import json,sys; o=json.load(sys.stdin); o['status']=json.loads(sys.argv[1]); print(json.dumps(o))" "$3" |
        kc replace --validate=false --subresource=status -f - >/dev/null
}

standin_node_status() {
    standin_setstatus node standin "{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"}],\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":$(cat nodeport)}}}"
}

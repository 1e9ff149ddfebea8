# bench/proxy_netns.sh - sourced by bench/proxy.sh and bench/proxy_relay.sh: the data-path
# layout both measure.  proxy_bench_netns NODE POD VETH makes a "node" namespace with a bridge
# cbr0 (10.244.0.1/24, forwarding on, the service range 10.96.0.0/12 routed to the bridge) and a
# "pod" namespace at 10.244.0.10 wired to it by the veth pair VETH/eth0.  The caller adds both
# namespaces to its own cleanup before calling (traffic stays inside them).
proxy_bench_netns() {
    local node=$1 pod=$2 veth=$3
    ip netns add "$node"
    ip netns add "$pod"
    ip netns exec "$node" ip link set lo up
    ip netns exec "$node" ip link add cbr0 type bridge
    ip netns exec "$node" ip addr add 10.244.0.1/24 dev cbr0
    ip netns exec "$node" ip link set cbr0 up
    ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$node" ip route add 10.96.0.0/12 dev cbr0
    ip link add "$veth" type veth peer name eth0 netns "$pod"
    ip link set "$veth" netns "$node"
    ip netns exec "$node" ip link set "$veth" master cbr0 up
    ip netns exec "$pod" ip link set lo up
    ip netns exec "$pod" ip addr add 10.244.0.10/24 dev eth0
    ip netns exec "$pod" ip link set eth0 up
    ip netns exec "$pod" ip route add default via 10.244.0.1
}

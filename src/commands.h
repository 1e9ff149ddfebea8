/* commands.h - every `ckube <command>`: name, entry point, one-line summary.  Each entry point
 * takes (argc, argv) with argv[0] = the command name and returns the process exit status. */
#ifndef CK_COMMANDS_H
#define CK_COMMANDS_H

int cmd_version(int argc, char **argv);
int cmd_apiserver(int argc, char **argv);
int cmd_server(int argc, char **argv);
int cmd_hollow_node(int argc, char **argv);
int cmd_kubelet(int argc, char **argv);
int cmd_images(int argc, char **argv);
int cmd_kubelet_shim(int argc, char **argv);
int cmd_scheduler(int argc, char **argv);
int cmd_controller_manager(int argc, char **argv);
int cmd_proxy(int argc, char **argv);

#define CK_COMMANDS(X) \
    X("version", cmd_version, "Print the ckube version") \
    X("apiserver", cmd_apiserver, "Run the Kubernetes API server") \
    X("server", cmd_server, "Run a single-node cluster (every component supervised)") \
    X("hollow-node", cmd_hollow_node, "Simulate N kubelets that run no containers (scale tests)") \
    X("kubelet", cmd_kubelet, "Run the node agent (registers the Node, runs its pods)") \
    X("images", cmd_images, "The node's image store (import, list)") \
    X("kubelet-shim", cmd_kubelet_shim, "Container shim (internal, started by the kubelet)") \
    X("scheduler", cmd_scheduler, "Assign pods to nodes (kube-scheduler)") \
    X("controller-manager", cmd_controller_manager, \
      "Run the controllers that turn desired state into actual state (kube-controller-manager)") \
    X("proxy", cmd_proxy, "Run the network proxy (Service virtual IPs and node ports)")

#endif

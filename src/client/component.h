/* component.h - start-up steps shared by the components that talk to the API server as clients
 * (controller-manager, scheduler, kubelet, hollow-node, proxy), so each answers bad usage the
 * same way: one "Error: ..." line and exit status 2 (docs/design.md), never a crash.
 *
 * Typical use, after ck_flags_parse returned npos:
 *     if (ck_component_check_args(npos, argv, kubeconfig) < 0) return 2;
 *     ...
 *     ck_client *c = ck_component_client(kubeconfig, "ckube-x/" CK_VERSION);
 *     if (!c) return 2;
 *     sigset_t sigs; ck_component_block_signals(&sigs, (int[]){SIGUSR1, 0}); ... sigwait(&sigs) */
#ifndef CK_COMPONENT_H
#define CK_COMPONENT_H

#include <signal.h>

#include "client/client.h"
#include "lib/flags.h"

/* The leader-election flags of the components that run active/standby (upstream's names);
 * entries of a ck_flag array.  Defaults are the callers': 15s, 10s, 2s, <hostname>_<random>. */
#define CK_COMPONENT_LEADER_FLAGS(lease_ms, renew_ms, retry_ms, identity)                          \
    {"leader-elect-lease-duration", CK_FLAG_DURATION_MS, (lease_ms),                             \
     "How long a standby waits after the last renewal before taking over (default 15s)"},        \
    {"leader-elect-renew-deadline", CK_FLAG_DURATION_MS, (renew_ms),                             \
     "How long the leader retries renewing before giving up (default 10s)"},                     \
    {"leader-elect-retry-period", CK_FLAG_DURATION_MS, (retry_ms),                               \
     "Interval between acquire/renew attempts (default 2s)"},                                    \
    {"leader-elect-identity", CK_FLAG_STRING, (identity),                                        \
     "Identity in the Lease (default <hostname>_<random>)"}

/* No positional argument left and --kubeconfig given; else prints the one error line and
 * returns -1. */
int ck_component_check_args(int npos, char **argv, const char *kubeconfig);

/* The client for --kubeconfig; NULL after printing the one error line (unreadable or invalid
 * kubeconfig). */
ck_client *ck_component_client(const char *kubeconfig, const char *user_agent);

/* Block SIGTERM, SIGINT and the 0-terminated extra signals (may be NULL) in this thread and so
 * in every thread started later, fill *set with them for sigwait, and ignore SIGPIPE. */
void ck_component_block_signals(sigset_t *set, const int *extra);

#endif

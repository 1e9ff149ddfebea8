/* leader.h - leader election on a coordination.k8s.io/v1 Lease (client-go's leaderelection with a
 * LeaseLock, our code), so that of several replicas of a component exactly one acts.
 *
 * A candidate takes the Lease when it is missing or its holder has not renewed it for
 * lease_duration (measured on OUR clock from when we last saw the record change, as upstream does,
 * so clock skew between machines does not matter), then renews it every retry period.  A leader
 * that cannot renew for renew_deadline stops being leader (on_stopped runs; upstream components
 * exit then, and so should ours).  Writes are compare-and-swap on resourceVersion, so two
 * candidates never both win.  Defaults: 15 s lease, 10 s renew deadline, 2 s retry.
 */
#ifndef CK_LEADER_H
#define CK_LEADER_H

#include <stdbool.h>

#include "client/client.h"

typedef struct ck_leader_config {
    const char *lease_namespace;    /* "kube-system" */
    const char *lease_name;         /* "kube-scheduler" */
    const char *identity;           /* unique per replica: "<hostname>_<random>" if NULL */
    int lease_duration_ms, renew_deadline_ms, retry_period_ms;   /* 0 = defaults */
    void (*on_started_leading)(void *ctx);
    void (*on_stopped_leading)(void *ctx);
    void *ctx;
} ck_leader_config;

typedef struct ck_leader ck_leader;

ck_leader *ck_leader_start(ck_client *c, const ck_leader_config *cfg);
bool ck_leader_is_leader(ck_leader *l);
const char *ck_leader_identity(ck_leader *l);
/* Stops campaigning; a leader releases the Lease (empty holder) so a standby takes over at once. */
void ck_leader_stop(ck_leader *l);

/* MicroTime text "2026-11-25T16:50:52.123456Z" for a wall time in ns; out holds 48 bytes. */
void ck_micro_time(int64_t wall_ns, char out[48]);

#endif

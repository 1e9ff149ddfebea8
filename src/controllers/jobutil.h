/* jobutil.h - the pure parts of the Job controller (jobutil.c), kept apart so unit tests reach
 * them: the pod failure backoff record, pod finish times, completed/failed index ranges and the
 * successPolicy match.  cm_job_failure_rule (podFailurePolicy) is declared in cm.h. */
#ifndef CK_JOBUTIL_H
#define CK_JOBUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CM_JOB_BACKOFF_BASE_MS 10000L     /* upstream DefaultJobPodFailureBackOff */
#define CM_JOB_BACKOFF_MAX_MS 600000L     /* upstream MaxJobPodFailureBackOff (10 min) */

/* What the controller remembers per Job between syncs (in memory, as upstream's backoffStore):
 * failed pods since the last success and when the latest of them finished. */
typedef struct cm_job_backoff {
    int failures;
    int64_t last_failure_ms;
} cm_job_backoff;

/* Fold the finish times (ms) of newly finished pods into b, as upstream's newBackoffRecord: no
 * new success adds the failures; a new success keeps only failures that finished after the
 * latest success.  The arrays are sorted in place. */
void cm_job_backoff_update(cm_job_backoff *b, int64_t *succeeded, size_t ns, int64_t *failed, size_t nf);
/* How long (ms) to wait before creating a replacement after `failures` consecutive failures, the
 * latest at last_ms: 10 s doubled per further failure, capped at 10 min, minus time elapsed. */
int64_t cm_job_backoff_remaining_ms(int failures, int64_t last_ms, int64_t now_ms);
/* When a finished pod finished (ms): its containers' latest terminated.finishedAt when every
 * container terminated, else the Ready=False transition, else deletionTimestamp minus the grace
 * period, else its creation (now if even that is unknown). */
int64_t cm_job_pod_finish_ms(const json_t *pod, int64_t now_ms);

/* "0-2,5" from bits[0..n) (caller frees), and back (indexes >= n ignored). */
char *cm_job_ranges_format(const unsigned char *bits, long n);
void cm_job_ranges_parse(const char *s, unsigned char *bits, long n);

/* spec.successPolicy against the succeeded indexes: true with upstream's message ("Matched
 * rules at index N") when a rule is met. */
bool cm_job_success_policy(const json_t *job, const unsigned char *succeeded, long n, char *msg,
                           size_t msglen);

#endif

/* jobutil.c - the Job controller's pure logic (see jobutil.h and cm_job_failure_rule in cm.h):
 * podFailurePolicy rule matching, the pod failure backoff record, pod finish times, index ranges
 * and successPolicy.  No I/O: job.c feeds it cached objects. */
#include "controllers/jobutil.h"

#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/util.h"

/* ---------------------------------------------------------------- pod failure policy */

/* onExitCodes: the first container (init containers too, as upstream) whose non-zero exit code
 * is In / NotIn the values, optionally only the named one. */
static bool exit_codes_match(const json_t *req, const json_t *pod, const char **ctr, long long *code)
{
    const char *want_ctr = cm_str(req, "containerName");
    bool in = !strcmp(cm_str(req, "operator") ?: "In", "In");
    static const char *const lists[] = {"status.containerStatuses", "status.initContainerStatuses"};
    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        size_t i, j;
        json_t *cs, *v;
        json_array_foreach(cm_get(pod, lists[l]), i, cs) {
            if (want_ctr && *want_ctr && strcmp(cm_str(cs, "name") ?: "", want_ctr))
                continue;
            json_t *ec = cm_get(cs, "state.terminated.exitCode");
            if (!json_is_integer(ec) || json_integer_value(ec) == 0)   /* 0 never matches */
                continue;
            bool listed = false;
            json_array_foreach(json_object_get(req, "values"), j, v)
                listed |= json_integer_value(v) == json_integer_value(ec);
            if (listed == in) {
                *ctr = cm_str(cs, "name") ?: "";
                *code = json_integer_value(ec);
                return true;
            }
        }
    }
    return false;
}

static const char *condition_match(const json_t *patterns, const json_t *pod)
{
    size_t i;
    json_t *pat;
    json_array_foreach(patterns, i, pat) {
        json_t *c = cm_pod_condition(pod, cm_str(pat, "type") ?: "");
        if (c && !strcmp(cm_str(c, "status") ?: "", cm_str(pat, "status") ?: "True"))
            return cm_str(pat, "type");
    }
    return NULL;
}

int cm_job_failure_rule(const json_t *job, const json_t *pod, const char **action, char *msg, size_t msglen)
{
    size_t i;
    json_t *rule;
    json_array_foreach(cm_get(job, "spec.podFailurePolicy.rules"), i, rule) {
        const char *ctr = NULL, *cond = NULL;
        long long code = 0;
        json_t *ec = json_object_get(rule, "onExitCodes");
        json_t *pc = json_object_get(rule, "onPodConditions");
        if (ec ? !exit_codes_match(ec, pod, &ctr, &code) : !(cond = condition_match(pc, pod)))
            continue;
        *action = cm_str(rule, "action") ?: "Count";
        if (ctr)
            snprintf(msg, msglen, "Container %s for pod %s/%s failed with exit code %lld matching %s rule at index %zu",
                     ctr, cm_ns(pod) ?: "", cm_name(pod), code, *action, i);
        else
            snprintf(msg, msglen, "Pod %s/%s has condition %s matching %s rule at index %zu",
                     cm_ns(pod) ?: "", cm_name(pod), cond, *action, i);
        return (int)i;
    }
    *action = "Count";
    if (msglen)
        msg[0] = 0;
    return -1;
}

/* ---------------------------------------------------------------- backoff */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void cm_job_backoff_update(cm_job_backoff *b, int64_t *succeeded, size_t ns, int64_t *failed, size_t nf)
{
    /* the arrays may be NULL when empty: qsort(NULL, 0, ...) is undefined behaviour */
    if (ns > 1)
        qsort(succeeded, ns, sizeof *succeeded, cmp_i64);
    if (nf > 1)
        qsort(failed, nf, sizeof *failed, cmp_i64);
    if (!ns) {
        if (!nf)
            return;
        b->failures += (int)nf;
        b->last_failure_ms = failed[nf - 1];
        return;
    }
    b->failures = 0;
    b->last_failure_ms = 0;
    int64_t last_success = succeeded[ns - 1];
    for (size_t i = nf; i-- > 0 && failed[i] > last_success;) {
        if (!b->failures)
            b->last_failure_ms = failed[i];
        b->failures++;
    }
}

int64_t cm_job_backoff_remaining_ms(int failures, int64_t last_ms, int64_t now_ms)
{
    if (failures <= 0)
        return 0;
    int64_t d = CM_JOB_BACKOFF_BASE_MS;
    for (int i = 1; i < failures; i++) {
        d *= 2;
        if (d >= CM_JOB_BACKOFF_MAX_MS) {
            d = CM_JOB_BACKOFF_MAX_MS;
            break;
        }
    }
    int64_t elapsed = now_ms - last_ms;
    return d < elapsed ? 0 : d - elapsed;
}

int64_t cm_job_pod_finish_ms(const json_t *pod, int64_t now_ms)
{
    int64_t latest = 0;
    bool all = json_array_size(cm_get(pod, "status.containerStatuses")) > 0;
    size_t i;
    json_t *cs;
    json_array_foreach(cm_get(pod, "status.containerStatuses"), i, cs) {
        int64_t t = cm_time(cs, "state.terminated.finishedAt");
        if (!t) {
            all = false;
            break;
        }
        if (t > latest)
            latest = t;
    }
    if (all && latest)
        return latest * 1000;
    json_t *ready = cm_pod_condition(pod, "Ready");
    if (ready && !strcmp(cm_str(ready, "status") ?: "", "False") && cm_time(ready, "lastTransitionTime"))
        return cm_time(ready, "lastTransitionTime") * 1000;
    if (cm_deleting(pod))
        return (cm_time(pod, "metadata.deletionTimestamp") -
                cm_int(pod, "metadata.deletionGracePeriodSeconds", 0)) * 1000;
    int64_t created = cm_time(pod, "metadata.creationTimestamp");
    return created ? created * 1000 : now_ms;
}

/* ---------------------------------------------------------------- index ranges */

char *cm_job_ranges_format(const unsigned char *bits, long n)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    for (long i = 0; i < n; i++) {
        if (!bits[i])
            continue;
        long j = i;
        while (j + 1 < n && bits[j + 1])
            j++;
        if (b.len)
            ck_buf_addstr(&b, ",");
        if (j > i)
            ck_buf_printf(&b, "%ld-%ld", i, j);
        else
            ck_buf_printf(&b, "%ld", i);
        i = j;
    }
    return ck_buf_steal(&b);
}

void cm_job_ranges_parse(const char *s, unsigned char *bits, long n)
{
    while (s && *s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s || a < 0)
            return;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1 || b < a)
                return;
            s = end;
        }
        for (long i = a; i <= b && i < n; i++)
            bits[i] = 1;
        if (*s == ',')
            s++;
        else if (*s)
            return;
    }
}

/* ---------------------------------------------------------------- success policy */

bool cm_job_success_policy(const json_t *job, const unsigned char *succeeded, long n, char *msg,
                           size_t msglen)
{
    long total = 0;
    for (long i = 0; i < n; i++)
        total += succeeded[i];
    if (!total)
        return false;
    size_t r;
    json_t *rule;
    json_array_foreach(cm_get(job, "spec.successPolicy.rules"), r, rule) {
        json_t *count = json_object_get(rule, "succeededCount");
        const char *idx = cm_str(rule, "succeededIndexes");
        bool met = false;
        if (idx) {
            unsigned char *want = xcalloc((size_t)(n > 0 ? n : 1), 1);
            cm_job_ranges_parse(idx, want, n);
            long required = 0, have = 0;
            for (long i = 0; i < n; i++) {
                required += want[i];
                have += want[i] && succeeded[i];
            }
            free(want);
            if (required)
                met = json_is_integer(count) ? have >= json_integer_value(count) : have == required;
        } else if (json_is_integer(count)) {
            met = total >= json_integer_value(count);
        }
        if (met) {
            snprintf(msg, msglen, "Matched rules at index %zu", r);
            return true;
        }
    }
    return false;
}

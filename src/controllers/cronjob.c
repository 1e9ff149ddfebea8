/* cronjob.c - the CronJob controller: Jobs from a cron schedule.
 *
 * The schedule is standard 5-field cron (minute hour day-of-month month day-of-week; lists,
 * ranges, steps, month/day names, `?`, and @yearly/@monthly/@weekly/@daily/@hourly), evaluated in
 * spec.timeZone (an IANA name read from /usr/share/zoneinfo by lib/tz.c; without one, the
 * manager's local zone - TZ or /etc/localtime - as upstream's time.Local): each UTC
 * minute is tested against the wall clock of the zone at that instant, so across a DST change a
 * time that does not exist that day (02:30 when clocks jump 02:00 -> 03:00) does not run and one
 * that happens twice (falling back) runs twice.  A sync finds the most recent scheduled time not yet run (since status.lastScheduleTime,
 * or creation); if it is older than startingDeadlineSeconds it is skipped (missed), else a Job
 * `<cronjob>-<minutes since epoch>` is made from jobTemplate - unless concurrencyPolicy Forbid
 * and a job still runs, or Replace, which deletes the running ones first.  With
 * startingDeadlineSeconds nothing older than that window is considered; more than 100 missed
 * times are reported (TooManyMissedTimes) as upstream does, and only the latest is run.  Finished jobs beyond
 * successfulJobsHistoryLimit / failedJobsHistoryLimit are deleted, oldest first.  The key is
 * re-queued for the next scheduled time.
 *
 * An unknown zone is reported (Warning event UnknownTimeZone) and nothing is scheduled.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/tz.h"
#include "lib/util.h"

#define COMPONENT "cronjob-controller"

typedef struct cjc {
    cm *m;
    ck_informer *cjs, *jobs;
    ck_workqueue *q;
    ck_tz *local;    /* the manager's own zone, for schedules without timeZone (NULL = UTC) */
} cjc;

/* ---------------------------------------------------------------- cron expressions */

typedef struct cron {
    uint64_t minute;       /* bit i = value i */
    uint32_t hour, dom, month;
    uint8_t dow;
    bool dom_star, dow_star;
} cron;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                          "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int value_of(const char *s, size_t n, const char *const *names, int nnames, int base)
{
    if (n == 3 && names)
        for (int i = 0; i < nnames; i++)
            if (!strncasecmp(s, names[i], 3))
                return i + base;
    if (!n || n > 3)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* One field into bits; false on syntax or range errors. */
static bool parse_field(const char *f, int lo, int hi, const char *const *names, int nnames,
                        uint64_t *bits, bool *star)
{
    *bits = 0;
    *star = !strcmp(f, "*") || !strcmp(f, "?");
    cleanup_free char *copy = xstrdup(f);
    char *save = NULL;
    for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        int step = 1, a, b;
        char *slash = strchr(part, '/');
        if (slash) {
            *slash = 0;
            step = value_of(slash + 1, strlen(slash + 1), NULL, 0, 0);
            if (step <= 0)
                return false;
        }
        if (!strcmp(part, "*") || !strcmp(part, "?")) {
            a = lo;
            b = hi;
        } else {
            char *dash = strchr(part, '-');
            a = value_of(part, dash ? (size_t)(dash - part) : strlen(part), names, nnames, lo);
            b = dash ? value_of(dash + 1, strlen(dash + 1), names, nnames, lo) : (slash ? hi : a);
            if (names == day_names && b == 7) {   /* 7 = Sunday too */
                *bits |= 1;
                if (a == 7)
                    continue;
                b = 6;
            }
        }
        if (a < lo || b > hi || a > b)
            return false;
        for (int v = a; v <= b; v += step)
            *bits |= 1ull << v;
    }
    return *bits != 0;
}

static bool cron_parse(const char *spec, cron *c)
{
    static const struct { const char *name, *expr; } macros[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(macros); i++)
        if (!strcmp(spec, macros[i].name))
            spec = macros[i].expr;
    cleanup_free char *copy = xstrdup(spec);
    char *f[6];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, " \t", &save); t && n < 6; t = strtok_r(NULL, " \t", &save))
        f[n++] = t;
    if (n != 5)
        return false;
    uint64_t bits;
    bool star;
    if (!parse_field(f[0], 0, 59, NULL, 0, &c->minute, &star))
        return false;
    if (!parse_field(f[1], 0, 23, NULL, 0, &bits, &star))
        return false;
    c->hour = (uint32_t)bits;
    if (!parse_field(f[2], 1, 31, NULL, 0, &bits, &c->dom_star))
        return false;
    c->dom = (uint32_t)bits;
    if (!parse_field(f[3], 1, 12, month_names, 12, &bits, &star))
        return false;
    c->month = (uint32_t)bits;
    if (!parse_field(f[4], 0, 6, day_names, 7, &bits, &c->dow_star))
        return false;
    c->dow = (uint8_t)bits;
    return true;
}

/* Whether the minute starting at instant t is scheduled, on tz's wall clock (NULL = UTC). */
static bool cron_matches(const cron *c, const ck_tz *tz, int64_t t)
{
    time_t tt = (time_t)(tz ? t + ck_tz_offset(tz, t, NULL) : t);
    struct tm tm;
    gmtime_r(&tt, &tm);
    if (!(c->minute >> tm.tm_min & 1) || !(c->hour >> tm.tm_hour & 1) || !(c->month >> (tm.tm_mon + 1) & 1))
        return false;
    bool dom = c->dom >> tm.tm_mday & 1, dow = c->dow >> tm.tm_wday & 1;
    /* classic cron: when both day fields are restricted, either may match */
    if (!c->dom_star && !c->dow_star)
        return dom || dow;
    return dom && dow;
}

/* The latest scheduled minute in (after, until], or 0; *missed counts them all (capped). */
static int64_t last_due(const cron *c, const ck_tz *tz, int64_t after, int64_t until, int *missed)
{
    int64_t last = 0;
    *missed = 0;
    int64_t start = after - after % 60 + 60;
    /* bound the scan: a year of minutes at most */
    if (until - start > 366LL * 24 * 3600)
        start = until - 366LL * 24 * 3600 - (until % 60);
    for (int64_t t = start; t <= until; t += 60)
        if (cron_matches(c, tz, t)) {
            last = t;
            if (*missed < 1000)
                (*missed)++;
        }
    return last;
}

static int64_t next_due(const cron *c, const ck_tz *tz, int64_t now)
{
    int64_t start = now - now % 60 + 60;
    for (int64_t t = start; t < start + 366LL * 24 * 3600; t += 60)
        if (cron_matches(c, tz, t))
            return t;
    return 0;
}

/* The process's local zone, found as Go's time.Local is: TZ unset -> /etc/localtime; TZ empty
 * or "UTC" -> UTC; TZ=":name" or "name" -> that zone (an absolute path: that file); anything
 * that does not load -> UTC. */
static ck_tz *local_zone(void)
{
    const char *tz = getenv("TZ");
    const char *path = NULL;
    if (!tz)
        path = "/etc/localtime";
    else {
        if (*tz == ':')
            tz++;
        if (!*tz || !strcmp(tz, "UTC"))
            return NULL;
        if (*tz == '/')
            path = tz;
    }
    ck_error *e = NULL;
    ck_tz *z = NULL;
    if (path) {
        cleanup_free char *data = NULL;
        size_t len = 0;
        if (ck_read_file(path, 1 << 20, &data, &len) == 0)
            z = ck_tz_parse((const unsigned char *)data, len, &e);
    } else {
        z = ck_tz_load(tz, NULL, &e);
    }
    if (e) {
        log_warn("local time zone (TZ=%s): %s; schedules without timeZone use UTC", tz ? tz : "", e->msg);
        ck_error_free(e);
    }
    return z;
}

/* ---------------------------------------------------------------- controller */

static void on_cj(void *ctx, json_t *cj)
{
    cjc *c = ctx;
    cleanup_free char *k = ck_informer_key(cj);
    ck_workqueue_add(c->q, k);
}

static void on_cj_update(void *ctx, json_t *old, json_t *cj)
{
    (void)old;
    on_cj(ctx, cj);
}

static void on_job(void *ctx, json_t *job)
{
    cjc *c = ctx;
    json_t *ref = cm_controller_ref(job);
    if (!ref || strcmp(json_string_value(json_object_get(ref, "kind")) ?: "", "CronJob"))
        return;
    cleanup_free char *k = xasprintf("%s/%s", cm_ns(job), json_string_value(json_object_get(ref, "name")));
    ck_workqueue_add(c->q, k);
}

static void on_job_update(void *ctx, json_t *old, json_t *job)
{
    (void)old;
    on_job(ctx, job);
}

static const char *finished(const json_t *job)
{
    size_t i;
    json_t *cd;
    json_array_foreach(cm_get(job, "status.conditions"), i, cd)
        if (!strcmp(cm_str(cd, "status") ?: "", "True") &&
            (!strcmp(cm_str(cd, "type") ?: "", "Complete") || !strcmp(cm_str(cd, "type") ?: "", "Failed")))
            return cm_str(cd, "type");
    return NULL;
}

static int by_start(const void *a, const void *b)
{
    int64_t x = cm_time(*(json_t *const *)a, "metadata.creationTimestamp");
    int64_t y = cm_time(*(json_t *const *)b, "metadata.creationTimestamp");
    return x < y ? -1 : x > y;
}

/* Delete finished jobs beyond the history limit of their kind, oldest first. */
static void prune(cjc *c, json_t *done, long limit)
{
    size_t n = json_array_size(done);
    if ((long)n <= limit)
        return;
    json_t **v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(done, i);
    qsort(v, n, sizeof *v, by_start);
    for (size_t i = 0; i + (size_t)limit < n; i++)
        cm_delete(c->m, cm_res("batch", "jobs"), cm_ns(v[i]), cm_name(v[i]), cm_uid(v[i]), "Background", NULL);
    free(v);
}

static json_t *job_ref(const json_t *job)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", "Job", "apiVersion", "batch/v1",
                     "name", cm_name(job), "namespace", cm_ns(job), "uid", cm_uid(job) ?: "",
                     "resourceVersion", cm_str(job, "metadata.resourceVersion") ?: "");
}

static int sync_cj(void *self, const char *key, ck_error **err)
{
    cjc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    json_t *cj = ck_informer_get(c->cjs, ns, name);
    if (!cj)
        return 0;
    int rc = 0;
    const char *tzname = cm_str(cj, "spec.timeZone");
    cron sched;
    ck_tz *tz = NULL, *own = NULL;   /* own: loaded here, freed here */
    if (!tzname) {
        tz = c->local;
    } else if (strcmp(tzname, "UTC") && strcmp(tzname, "Etc/UTC")) {
        ck_error *e = NULL;
        if (!(tz = own = ck_tz_load(tzname, NULL, &e))) {
            cm_event(c->m, cj, COMPONENT, "Warning", "UnknownTimeZone", "invalid timeZone: \"%s\": %s",
                     tzname, e->msg);
            ck_error_free(e);
            json_decref(cj);
            return 0;
        }
    }
    if (!cron_parse(cm_str(cj, "spec.schedule") ?: "", &sched)) {
        cm_event(c->m, cj, COMPONENT, "Warning", "UnparseableSchedule", "unparseable schedule: \"%s\"",
                 cm_str(cj, "spec.schedule") ?: "");
        ck_tz_free(own);
        json_decref(cj);
        return 0;
    }
    /* our jobs: running and finished */
    json_t *all = ck_informer_list(c->jobs), *active = json_array(), *ok = json_array(), *bad = json_array();
    size_t i;
    json_t *job;
    int64_t last_success = cm_time(cj, "status.lastSuccessfulTime");
    json_array_foreach(all, i, job) {
        json_t *ref = cm_controller_ref(job);
        if (!ref || strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(cj)))
            continue;
        const char *f = finished(job);
        if (!f) {
            json_array_append(active, job);
        } else if (!strcmp(f, "Complete")) {
            json_array_append(ok, job);
            int64_t t = cm_time(job, "status.completionTime");
            if (t > last_success)
                last_success = t;
        } else {
            json_array_append(bad, job);
        }
    }
    json_decref(all);
    prune(c, ok, (long)cm_int(cj, "spec.successfulJobsHistoryLimit", 3));
    prune(c, bad, (long)cm_int(cj, "spec.failedJobsHistoryLimit", 1));

    int64_t now = cm_now();
    json_t *st = cm_copy_object(cj, "status");
    json_t *refs = json_array();
    json_array_foreach(active, i, job)
        json_array_append_new(refs, job_ref(job));
    if (json_array_size(refs))
        json_object_set_new(st, "active", refs);
    else {
        json_object_del(st, "active");
        json_decref(refs);
    }
    if (last_success) {
        char ts[32];
        ck_rfc3339(last_success, ts);
        json_object_set_new(st, "lastSuccessfulTime", json_string(ts));
    }

    bool suspended = cm_bool(cj, "spec.suspend", false);
    int64_t since = cm_time(cj, "status.lastScheduleTime") ?: cm_time(cj, "metadata.creationTimestamp");
    json_t *deadline = cm_get(cj, "spec.startingDeadlineSeconds");
    /* nothing older than startingDeadlineSeconds is considered (nor counted as missed) */
    if (json_is_integer(deadline) && now - json_integer_value(deadline) > since)
        since = now - json_integer_value(deadline);
    int missed = 0;
    int64_t due = suspended ? 0 : last_due(&sched, tz, since, now, &missed);
    if (due && missed > 100)
        cm_event(c->m, cj, COMPONENT, "Warning", "TooManyMissedTimes",
                 "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew");
    if (due && json_is_integer(deadline) && due + json_integer_value(deadline) < now) {
        char when[64];
        time_t tt = (time_t)due;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(when, sizeof when, "%a, %d %b %Y %H:%M:%S +0000", &tm);   /* Go's RFC1123Z */
        cm_event(c->m, cj, COMPONENT, "Warning", "MissSchedule", "Missed scheduled time to start a job: %s", when);
        due = 0;
    }
    const char *policy = cm_str(cj, "spec.concurrencyPolicy") ?: "Allow";
    if (due && json_array_size(active) && !strcmp(policy, "Forbid")) {
        log_debug("cronjob %s: a job is still running; skipping %lld", key, (long long)due);
        due = 0;
    }
    if (due && json_array_size(active) && !strcmp(policy, "Replace")) {
        json_array_foreach(active, i, job) {
            if (cm_delete(c->m, cm_res("batch", "jobs"), ns, cm_name(job), cm_uid(job), "Background", err) < 0) {
                rc = -1;
                break;
            }
            cm_event(c->m, cj, COMPONENT, "Normal", "SuccessfulDelete", "Deleted job %s", cm_name(job));
        }
        json_object_del(st, "active");
    }
    if (due && rc == 0) {
        cleanup_free char *jname = xasprintf("%s-%lld", name, (long long)(due / 60));
        json_t *tmpl = cm_get(cj, "spec.jobTemplate");
        json_t *md = json_pack("{s:s, s:s, s:[o]}", "name", jname, "namespace", ns, "ownerReferences",
                               cm_owner_ref(cj, true));
        if (cm_get(tmpl, "metadata.labels"))
            json_object_set_new(md, "labels", json_deep_copy(cm_get(tmpl, "metadata.labels")));
        json_t *ann = cm_copy_object(tmpl, "metadata.annotations");
        char ts[32], local[32];
        ck_rfc3339(due, ts);
        if (own)   /* as upstream: the scheduled time in spec.timeZone (UTC without one) */
            ck_tz_rfc3339(own, due, local);
        json_object_set_new(ann, "batch.kubernetes.io/cronjob-scheduled-timestamp",
                            json_string(own ? local : ts));
        json_object_set_new(md, "annotations", ann);
        json_t *obj = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "batch/v1", "kind", "Job",
                                "metadata", md, "spec", cm_copy_object(tmpl, "spec"));
        ck_error *e = NULL;
        json_t *out = ck_client_create(cm_client(c->m), cm_res("batch", "jobs"), ns, obj, &e);
        json_decref(obj);
        if (out || e->code == CK_E_EXISTS) {   /* exists: made by an earlier sync of ours */
            if (out) {
                cm_event(c->m, cj, COMPONENT, "Normal", "SuccessfulCreate", "Created job %s", jname);
                json_t *a = json_object_get(st, "active");
                if (!a) {
                    a = json_array();
                    json_object_set_new(st, "active", a);
                }
                json_array_append_new(a, job_ref(out));
            }
            json_object_set_new(st, "lastScheduleTime", json_string(ts));
            ck_error_free(e);
        } else {
            cm_event(c->m, cj, COMPONENT, "Warning", "FailedCreate", "Error creating job: %s", e->msg);
            *err = e;
            rc = -1;
        }
        json_decref(out);
    }
    ck_error *e = NULL;
    if (cm_write_status(c->m, cm_res("batch", "cronjobs"), cj, st, &e) < 0 && rc == 0) {
        *err = e;
        rc = -1;
    } else {
        ck_error_free(e);
    }
    if (!suspended) {
        int64_t next = next_due(&sched, tz, now);
        if (next)
            ck_workqueue_add_after(c->q, key, (next - now) * 1000 + 100);
    }
    json_decref(st);
    json_decref(active);
    json_decref(ok);
    json_decref(bad);
    ck_tz_free(own);
    json_decref(cj);
    return rc;
}

int cm_cronjob_init(cm *m)
{
    cjc *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->local = local_zone();
    ck_informer_handlers ch = {on_cj, on_cj_update, NULL};
    c->cjs = cm_informer(m, "batch", "cronjobs", &ch, c);
    ck_informer_handlers jh = {on_job, on_job_update, on_job};
    c->jobs = cm_informer(m, "batch", "jobs", &jh, c);
    c->q = cm_queue(m, COMPONENT, 2, sync_cj, c);
    return 0;
}

/* For tests: whether spec parses, and the first scheduled time after t (0 if none/invalid). */
int64_t cm_cron_next(const char *spec, int64_t t)
{
    return cm_cron_next_tz(spec, NULL, t);
}

int64_t cm_cron_next_tz(const char *spec, const ck_tz *tz, int64_t t)
{
    cron c;
    if (!cron_parse(spec, &c))
        return 0;
    return next_due(&c, tz, t);
}

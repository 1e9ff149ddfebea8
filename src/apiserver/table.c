/* table.c - server-side printing (see table.h): one column set and one cell function per kind,
 * after upstream's printers (pkg/printers/internalversion), always with the wide columns (the
 * server fills every column; kubectl hides priority>0 ones unless -o wide).  Kinds with no
 * printer get upstream's default table: Name and Created At. */
#include "apiserver/table.h"
#include "lib/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct col {
    const char *name, *type, *format;
    int priority;
    const char *desc;
} col;

typedef void (*cells_fn)(const json_t *obj, int64_t now, json_t *cells);

/* ---- small JSON helpers ---- */

/* Dotted path lookup ("spec.template.spec"); NULL if any step is missing. */
static const json_t *jget(const json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        o = json_object_get(o, key);
        path += n + (dot ? 1 : 0);
    }
    return o;
}

static const char *jstr(const json_t *o, const char *path)
{
    const char *s = json_string_value(jget(o, path));
    return s ? s : "";
}

static json_int_t jint(const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    return json_is_integer(v) ? json_integer_value(v) : json_is_real(v) ? (json_int_t)json_real_value(v) : 0;
}

static size_t jsize(const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    return json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : 0;
}

static void add_str(json_t *cells, const char *s) { json_array_append_new(cells, json_string(s ? s : "")); }
static void add_int(json_t *cells, json_int_t v) { json_array_append_new(cells, json_integer(v)); }
static void add_buf(json_t *cells, ck_buf *b)
{
    add_str(cells, b->data ? b->data : "");
    ck_buf_free(b);
}

/* An int-or-string value as text ("25%", "1"); dflt when absent. */
static void int_or_string(const json_t *v, char *out, size_t cap, const char *dflt)
{
    if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else
        snprintf(out, cap, "%s", dflt);
}

/* ---- time ---- */

void ck_table_age(int64_t seconds, char out[32])
{
    if (seconds < -1) {
        snprintf(out, 32, "<invalid>");
        return;
    }
    if (seconds < 0)
        seconds = 0;
    if (seconds < 120) {
        snprintf(out, 32, "%llds", (long long)seconds);
        return;
    }
    long long minutes = seconds / 60;
    if (minutes < 10) {
        long long s = seconds % 60;
        if (s)
            snprintf(out, 32, "%lldm%llds", minutes, s);
        else
            snprintf(out, 32, "%lldm", minutes);
        return;
    }
    if (minutes < 180) {
        snprintf(out, 32, "%lldm", minutes);
        return;
    }
    long long hours = seconds / 3600;
    if (hours < 8) {
        long long m = minutes % 60;
        if (m)
            snprintf(out, 32, "%lldh%lldm", hours, m);
        else
            snprintf(out, 32, "%lldh", hours);
    } else if (hours < 48) {
        snprintf(out, 32, "%lldh", hours);
    } else if (hours < 24 * 8) {
        long long h = hours % 24;
        if (h)
            snprintf(out, 32, "%lldd%lldh", hours / 24, h);
        else
            snprintf(out, 32, "%lldd", hours / 24);
    } else if (hours < 24 * 365 * 2) {
        snprintf(out, 32, "%lldd", hours / 24);
    } else if (hours < 24 * 365 * 8) {
        long long dy = (hours / 24) % 365;
        if (dy)
            snprintf(out, 32, "%lldy%lldd", hours / 24 / 365, dy);
        else
            snprintf(out, 32, "%lldy", hours / 24 / 365);
    } else {
        snprintf(out, 32, "%lldy", hours / 24 / 365);
    }
}

/* Age of a timestamp field; "<unknown>" when absent or unparsable (upstream's
 * translateTimestampSince).  Fractional seconds (MicroTime) are accepted. */
static void since(const char *ts, int64_t now, char out[32])
{
    int64_t t;
    char buf[40];
    snprintf(buf, sizeof buf, "%s", ts ? ts : "");
    char *dot = strchr(buf, '.');
    if (dot) {   /* drop ".123456" before the zone */
        char *z = dot + 1;
        while (isdigit((unsigned char)*z))
            z++;
        memmove(dot, z, strlen(z) + 1);
    }
    if (!buf[0] || ck_parse_rfc3339(buf, &t) < 0) {
        snprintf(out, 32, "<unknown>");
        return;
    }
    ck_table_age(now - t, out);
}

static void add_age(json_t *cells, const json_t *obj, int64_t now)
{
    char a[32];
    since(jstr(obj, "metadata.creationTimestamp"), now, a);
    add_str(cells, a);
}

/* ---- shared formatting ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Selector requirements order by key (upstream sorts them ByKey), not by their text. */
static int cmp_req(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    x += *x == '!';
    y += *y == '!';
    size_t nx = strcspn(x, "= "), ny = strcspn(y, "= ");
    int c = strncmp(x, y, nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

/* labels.FormatLabels: sorted "k=v,k2=v2", "<none>" when empty. */
static void format_labels(const json_t *m, ck_buf *b)
{
    ck_buf_init(b, 0);
    size_t n = json_is_object(m) ? json_object_size(m) : 0;
    if (!n) {
        ck_buf_addstr(b, "<none>");
        return;
    }
    const char **keys = xcalloc(n, sizeof *keys);
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    for (i = 0; i < n; i++)
        ck_buf_printf(b, "%s%s=%s", i ? "," : "", keys[i], json_string_value(json_object_get(m, keys[i])) ?: "");
    free(keys);
}

/* A metav1.LabelSelector as upstream's selector String(): requirements sorted by key, values
 * sorted; "k=v", "k in (a,b)", "k notin (a,b)", "k", "!k".  An empty or missing selector prints
 * as `none` ("" for deployments, "<none>" where upstream uses FormatLabelSelector). */
static void format_selector(const json_t *sel, ck_buf *b, const char *none)
{
    ck_buf_init(b, 0);
    if (!json_is_object(sel)) {
        ck_buf_addstr(b, none);
        return;
    }
    const json_t *ml = json_object_get(sel, "matchLabels");
    const json_t *me = json_object_get(sel, "matchExpressions");
    size_t n = (json_is_object(ml) ? json_object_size(ml) : 0) + (json_is_array(me) ? json_array_size(me) : 0);
    char **reqs = xcalloc(n + 1, sizeof *reqs);
    size_t i = 0;
    const char *k;
    json_t *v;
    if (json_is_object(ml))
        json_object_foreach((json_t *)ml, k, v) reqs[i++] = xasprintf("%s=%s", k, json_string_value(v) ?: "");
    size_t j;
    json_array_foreach(me, j, v) {
        const char *key = jstr(v, "key"), *op = jstr(v, "operator");
        ck_buf vals;
        ck_buf_init(&vals, 0);
        const json_t *va = json_object_get(v, "values");
        size_t nv = json_is_array(va) ? json_array_size(va) : 0, x;
        const char **sv = xcalloc(nv + 1, sizeof *sv);
        for (x = 0; x < nv; x++)
            sv[x] = json_string_value(json_array_get(va, x)) ?: "";
        qsort(sv, nv, sizeof *sv, cmp_str);
        for (x = 0; x < nv; x++)
            if (!x || strcmp(sv[x], sv[x - 1]))
                ck_buf_printf(&vals, "%s%s", vals.len ? "," : "", sv[x]);
        free(sv);
        if (!strcmp(op, "In"))
            reqs[i++] = xasprintf("%s in (%s)", key, vals.data ? vals.data : "");
        else if (!strcmp(op, "NotIn"))
            reqs[i++] = xasprintf("%s notin (%s)", key, vals.data ? vals.data : "");
        else if (!strcmp(op, "Exists"))
            reqs[i++] = xasprintf("%s", key);
        else
            reqs[i++] = xasprintf("!%s", key);
        ck_buf_free(&vals);
    }
    qsort(reqs, i, sizeof *reqs, cmp_req);
    for (j = 0; j < i; j++) {
        ck_buf_printf(b, "%s%s", j ? "," : "", reqs[j]);
        free(reqs[j]);
    }
    free(reqs);
    if (!b->len)
        ck_buf_addstr(b, none);
}

/* Containers and images of a pod spec, comma-joined. */
static void add_containers(json_t *cells, const json_t *podspec)
{
    ck_buf names, images;
    ck_buf_init(&names, 0);
    ck_buf_init(&images, 0);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(podspec, "containers"), i, c) {
        ck_buf_printf(&names, "%s%s", i ? "," : "", jstr(c, "name"));
        ck_buf_printf(&images, "%s%s", i ? "," : "", jstr(c, "image"));
    }
    add_buf(cells, &names);
    add_buf(cells, &images);
}

static void add_selector(json_t *cells, const json_t *sel)
{
    ck_buf b;
    format_selector(sel, &b, "<none>");
    add_buf(cells, &b);
}

static void add_labels(json_t *cells, const json_t *m)
{
    ck_buf b;
    format_labels(m, &b);
    add_buf(cells, &b);
}

static bool has_condition(const json_t *obj, const char *path, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(jget(obj, path), i, c)
        if (!strcmp(jstr(c, "type"), type) && !strcmp(jstr(c, "status"), "True"))
            return true;
    return false;
}

/* ---- pods ---- */

static const col pod_cols[] = {
    {"Name", "string", "name", 0, "Name of the pod."},
    {"Ready", "string", "", 0, "Ready containers out of all containers."},
    {"Status", "string", "", 0, "Aggregate status of the pod's containers."},
    {"Restarts", "string", "", 0, "Container restarts, and how long ago the last one was."},
    {"Age", "string", "", 0, "Time since the pod was created."},
    {"IP", "string", "", 1, "The pod's IP address."},
    {"Node", "string", "", 1, "The node the pod is bound to."},
    {"Nominated Node", "string", "", 1, "The node the scheduler nominated for preemption."},
    {"Readiness Gates", "string", "", 1, "Readiness gates that are true out of all."},
};

static const json_t *find_named(const json_t *arr, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
        if (!strcmp(jstr(e, "name"), name))
            return e;
    return NULL;
}

static int64_t ts_of(const char *s)
{
    int64_t t = 0;
    if (s && *s)
        ck_parse_rfc3339(s, &t);
    return t;
}

static void pod_cells(const json_t *pod, int64_t now, json_t *cells)
{
    const json_t *spec = json_object_get(pod, "spec"), *st = json_object_get(pod, "status");
    const json_t *init_specs = json_object_get(spec, "initContainers");
    long restarts = 0, sidecar_restarts = 0;
    int64_t last_restart = 0, last_sidecar_restart = 0;
    size_t total = jsize(spec, "containers"), ready = 0;
    char reason[160];
    const char *phase = jstr(st, "phase");
    snprintf(reason, sizeof reason, "%s", *jstr(st, "reason") ? jstr(st, "reason") : phase);

    size_t i;
    json_t *c;
    json_array_foreach(jget(st, "conditions"), i, c)
        if (!strcmp(jstr(c, "type"), "PodScheduled") && !strcmp(jstr(c, "reason"), "SchedulingGated"))
            snprintf(reason, sizeof reason, "SchedulingGated");

    /* restartable (sidecar) init containers count as regular containers */
    json_array_foreach(init_specs, i, c)
        if (!strcmp(jstr(c, "restartPolicy"), "Always"))
            total++;

    bool initializing = false;
    json_array_foreach(jget(st, "initContainerStatuses"), i, c) {
        long rc = (long)jint(c, "restartCount");
        restarts += rc;
        int64_t fin = ts_of(jstr(c, "lastState.terminated.finishedAt"));
        if (fin > last_restart)
            last_restart = fin;
        const json_t *ispec = find_named(init_specs, jstr(c, "name"));
        bool sidecar = ispec && !strcmp(jstr(ispec, "restartPolicy"), "Always");
        if (sidecar) {
            sidecar_restarts += rc;
            if (fin > last_sidecar_restart)
                last_sidecar_restart = fin;
        }
        const json_t *term = jget(c, "state.terminated");
        const char *wreason = jstr(c, "state.waiting.reason");
        if (term && jint(term, "exitCode") == 0)
            continue;
        if (sidecar && json_is_true(json_object_get(c, "started"))) {
            if (json_is_true(json_object_get(c, "ready")))
                ready++;
            continue;
        }
        if (term) {
            if (*jstr(term, "reason"))
                snprintf(reason, sizeof reason, "Init:%s", jstr(term, "reason"));
            else if (jint(term, "signal"))
                snprintf(reason, sizeof reason, "Init:Signal:%lld", (long long)jint(term, "signal"));
            else
                snprintf(reason, sizeof reason, "Init:ExitCode:%lld", (long long)jint(term, "exitCode"));
        } else if (*wreason && strcmp(wreason, "PodInitializing")) {
            snprintf(reason, sizeof reason, "Init:%s", wreason);
        } else {
            snprintf(reason, sizeof reason, "Init:%zu/%zu", i, jsize(spec, "initContainers"));
        }
        initializing = true;
        break;
    }

    if (!initializing || has_condition(st, "conditions", "Initialized")) {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        bool has_running = false;
        const json_t *cs = json_object_get(st, "containerStatuses");
        for (size_t k = json_array_size(cs); k-- > 0;) {
            c = json_array_get(cs, k);
            restarts += (long)jint(c, "restartCount");
            int64_t fin = ts_of(jstr(c, "lastState.terminated.finishedAt"));
            if (fin > last_restart)
                last_restart = fin;
            const json_t *term = jget(c, "state.terminated");
            if (*jstr(c, "state.waiting.reason"))
                snprintf(reason, sizeof reason, "%s", jstr(c, "state.waiting.reason"));
            else if (term && *jstr(term, "reason"))
                snprintf(reason, sizeof reason, "%s", jstr(term, "reason"));
            else if (term && jint(term, "signal"))
                snprintf(reason, sizeof reason, "Signal:%lld", (long long)jint(term, "signal"));
            else if (term)
                snprintf(reason, sizeof reason, "ExitCode:%lld", (long long)jint(term, "exitCode"));
            else if (json_is_true(json_object_get(c, "ready")) && jget(c, "state.running")) {
                has_running = true;
                ready++;
            }
        }
        if (!strcmp(reason, "Completed") && has_running)
            snprintf(reason, sizeof reason, "%s", has_condition(st, "conditions", "Ready") ? "Running" : "NotReady");
    }

    bool terminal = !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
    if (jget(pod, "metadata.deletionTimestamp") && !strcmp(jstr(st, "reason"), "NodeLost"))
        snprintf(reason, sizeof reason, "Unknown");
    else if (jget(pod, "metadata.deletionTimestamp") && !terminal)
        snprintf(reason, sizeof reason, "Terminating");

    char buf[64], age[32];
    add_str(cells, jstr(pod, "metadata.name"));
    snprintf(buf, sizeof buf, "%zu/%zu", ready, total);
    add_str(cells, buf);
    add_str(cells, reason);
    if (restarts && last_restart) {
        ck_table_age(now - last_restart, age);
        snprintf(buf, sizeof buf, "%ld (%s ago)", restarts, age);
    } else {
        snprintf(buf, sizeof buf, "%ld", restarts);
    }
    add_str(cells, buf);
    add_age(cells, pod, now);

    const char *ip = jstr(json_array_get(json_object_get(st, "podIPs"), 0), "ip");
    if (!*ip)
        ip = jstr(st, "podIP");
    add_str(cells, *ip ? ip : "<none>");
    add_str(cells, *jstr(spec, "nodeName") ? jstr(spec, "nodeName") : "<none>");
    add_str(cells, *jstr(st, "nominatedNodeName") ? jstr(st, "nominatedNodeName") : "<none>");
    size_t ngates = jsize(spec, "readinessGates");
    if (!ngates) {
        add_str(cells, "<none>");
    } else {
        size_t ntrue = 0;
        json_t *g;
        json_array_foreach(json_object_get(spec, "readinessGates"), i, g) {
            size_t k;
            json_t *cond;
            json_array_foreach(json_object_get(st, "conditions"), k, cond)
                if (!strcmp(jstr(cond, "type"), jstr(g, "conditionType"))) {
                    ntrue += !strcmp(jstr(cond, "status"), "True");
                    break;
                }
        }
        snprintf(buf, sizeof buf, "%zu/%zu", ntrue, ngates);
        add_str(cells, buf);
    }
}

/* ---- workloads ---- */

static const col deploy_cols[] = {
    {"Name", "string", "name", 0, "Name of the deployment."},
    {"Ready", "string", "", 0, "Ready pods out of desired."},
    {"Up-to-date", "string", "", 0, "Pods running the newest template."},
    {"Available", "string", "", 0, "Pods available to serve."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images of each container in the template."},
    {"Selector", "string", "", 1, "Label selector of the pods."},
};

static void deploy_cells(const json_t *o, int64_t now, json_t *cells)
{
    char buf[64];
    add_str(cells, jstr(o, "metadata.name"));
    snprintf(buf, sizeof buf, "%lld/%lld", (long long)jint(o, "status.readyReplicas"), (long long)jint(o, "spec.replicas"));
    add_str(cells, buf);
    add_int(cells, jint(o, "status.updatedReplicas"));
    add_int(cells, jint(o, "status.availableReplicas"));
    add_age(cells, o, now);
    add_containers(cells, jget(o, "spec.template.spec"));
    ck_buf b;
    format_selector(jget(o, "spec.selector"), &b, "");   /* Deployment prints selector.String() */
    add_buf(cells, &b);
}

static const col rs_cols[] = {
    {"Name", "string", "name", 0, "Name of the object."},
    {"Desired", "integer", "", 0, "Desired number of pods."},
    {"Current", "integer", "", 0, "Pods that exist."},
    {"Ready", "integer", "", 0, "Pods that are ready."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images of each container in the template."},
    {"Selector", "string", "", 1, "Label selector of the pods."},
};

/* ReplicaSet and ReplicationController: the RC selector is a plain map (sorted k=v). */
static void rs_like(const json_t *o, int64_t now, json_t *cells, bool map_selector)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_int(cells, jint(o, "spec.replicas"));
    add_int(cells, jint(o, "status.replicas"));
    add_int(cells, jint(o, "status.readyReplicas"));
    add_age(cells, o, now);
    add_containers(cells, jget(o, "spec.template.spec"));
    if (map_selector)
        add_labels(cells, jget(o, "spec.selector"));
    else
        add_selector(cells, jget(o, "spec.selector"));
}

static void rs_cells(const json_t *o, int64_t now, json_t *cells) { rs_like(o, now, cells, false); }
static void rc_cells(const json_t *o, int64_t now, json_t *cells) { rs_like(o, now, cells, true); }

static const col sts_cols[] = {
    {"Name", "string", "name", 0, "Name of the statefulset."},
    {"Ready", "string", "", 0, "Ready pods out of desired."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images of each container in the template."},
};

static void sts_cells(const json_t *o, int64_t now, json_t *cells)
{
    char buf[64];
    add_str(cells, jstr(o, "metadata.name"));
    snprintf(buf, sizeof buf, "%lld/%lld", (long long)jint(o, "status.readyReplicas"), (long long)jint(o, "spec.replicas"));
    add_str(cells, buf);
    add_age(cells, o, now);
    add_containers(cells, jget(o, "spec.template.spec"));
}

static const col ds_cols[] = {
    {"Name", "string", "name", 0, "Name of the daemonset."},
    {"Desired", "integer", "", 0, "Nodes that should run the pod."},
    {"Current", "integer", "", 0, "Nodes running at least one pod."},
    {"Ready", "integer", "", 0, "Nodes whose pod is ready."},
    {"Up-to-date", "integer", "", 0, "Nodes running the newest template."},
    {"Available", "integer", "", 0, "Nodes whose pod is available."},
    {"Node Selector", "string", "", 0, "Node labels the pods require."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images of each container in the template."},
    {"Selector", "string", "", 1, "Label selector of the pods."},
};

static void ds_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_int(cells, jint(o, "status.desiredNumberScheduled"));
    add_int(cells, jint(o, "status.currentNumberScheduled"));
    add_int(cells, jint(o, "status.numberReady"));
    add_int(cells, jint(o, "status.updatedNumberScheduled"));
    add_int(cells, jint(o, "status.numberAvailable"));
    add_labels(cells, jget(o, "spec.template.spec.nodeSelector"));
    add_age(cells, o, now);
    add_containers(cells, jget(o, "spec.template.spec"));
    add_selector(cells, jget(o, "spec.selector"));
}

static const col job_cols[] = {
    {"Name", "string", "name", 0, "Name of the job."},
    {"Status", "string", "", 0, "Status of the job."},
    {"Completions", "string", "", 0, "Succeeded pods out of the completions wanted."},
    {"Duration", "string", "", 0, "Time the job took (or has taken so far)."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Containers", "string", "", 1, "Names of each container in the template."},
    {"Images", "string", "", 1, "Images of each container in the template."},
    {"Selector", "string", "", 1, "Label selector of the pods."},
};

static void job_cells(const json_t *o, int64_t now, json_t *cells)
{
    const json_t *st = json_object_get(o, "status");
    const char *status = "Running";
    if (has_condition(st, "conditions", "Complete"))
        status = "Complete";
    else if (has_condition(st, "conditions", "Failed"))
        status = "Failed";
    else if (jget(o, "metadata.deletionTimestamp"))
        status = "Terminating";
    else if (has_condition(st, "conditions", "Suspended"))
        status = "Suspended";
    else if (has_condition(st, "conditions", "FailureTarget"))
        status = "FailureTarget";
    else if (has_condition(st, "conditions", "SuccessCriteriaMet"))
        status = "SuccessCriteriaMet";

    char comp[64];
    long long succeeded = jint(st, "succeeded");
    if (jget(o, "spec.completions"))
        snprintf(comp, sizeof comp, "%lld/%lld", succeeded, (long long)jint(o, "spec.completions"));
    else if (jint(o, "spec.parallelism") > 1)
        snprintf(comp, sizeof comp, "%lld/1 of %lld", succeeded, (long long)jint(o, "spec.parallelism"));
    else
        snprintf(comp, sizeof comp, "%lld/1", succeeded);

    char dur[32] = "";
    int64_t start = ts_of(jstr(st, "startTime")), done = ts_of(jstr(st, "completionTime"));
    if (start)
        ck_table_age((done ? done : now) - start, dur);

    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, status);
    add_str(cells, comp);
    add_str(cells, dur);
    add_age(cells, o, now);
    add_containers(cells, jget(o, "spec.template.spec"));
    add_selector(cells, jget(o, "spec.selector"));
}

static const col cj_cols[] = {
    {"Name", "string", "name", 0, "Name of the cronjob."},
    {"Schedule", "string", "", 0, "Cron schedule."},
    {"Timezone", "string", "", 0, "Time zone of the schedule."},
    {"Suspend", "boolean", "", 0, "Whether new runs are suspended."},
    {"Active", "integer", "", 0, "Jobs currently running."},
    {"Last Schedule", "string", "", 0, "Time since the last scheduled run."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Containers", "string", "", 1, "Names of each container in the job template."},
    {"Images", "string", "", 1, "Images of each container in the job template."},
    {"Selector", "string", "", 1, "Label selector of the job template."},
};

static void cj_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, jstr(o, "spec.schedule"));
    add_str(cells, jget(o, "spec.timeZone") ? jstr(o, "spec.timeZone") : "<none>");
    const json_t *sus = jget(o, "spec.suspend");
    add_str(cells, !sus ? "<unset>" : json_is_true(sus) ? "True" : "False");
    add_int(cells, (json_int_t)jsize(o, "status.active"));
    char last[32] = "<none>";
    if (jget(o, "status.lastScheduleTime"))
        since(jstr(o, "status.lastScheduleTime"), now, last);
    add_str(cells, last);
    add_age(cells, o, now);
    add_containers(cells, jget(o, "spec.jobTemplate.spec.template.spec"));
    add_selector(cells, jget(o, "spec.jobTemplate.spec.selector"));
}

static const col rev_cols[] = {
    {"Name", "string", "name", 0, "Name of the revision."},
    {"Controller", "string", "", 0, "The object that owns the revision."},
    {"Revision", "string", "", 0, "Revision number."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void rev_cells(const json_t *o, int64_t now, json_t *cells)
{
    char ctl[256] = "<none>";
    size_t i;
    json_t *ref;
    json_array_foreach(jget(o, "metadata.ownerReferences"), i, ref) {
        if (!json_is_true(json_object_get(ref, "controller")))
            continue;
        const char *av = jstr(ref, "apiVersion"), *slash = strchr(av, '/');
        char kind[96];
        snprintf(kind, sizeof kind, "%s", jstr(ref, "kind"));
        for (char *p = kind; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (slash)
            snprintf(ctl, sizeof ctl, "%s.%.*s/%s", kind, (int)(slash - av), av, jstr(ref, "name"));
        else
            snprintf(ctl, sizeof ctl, "%s/%s", kind, jstr(ref, "name"));
        break;
    }
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, ctl);
    add_int(cells, jint(o, "revision"));
    add_age(cells, o, now);
}

static const col podtemplate_cols[] = {
    {"Name", "string", "name", 0, "Name of the pod template."},
    {"Containers", "string", "", 0, "Names of each container in the template."},
    {"Images", "string", "", 0, "Images of each container in the template."},
    {"Pod Labels", "string", "", 0, "Labels of the template's pods."},
};

static void podtemplate_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_containers(cells, jget(o, "template.spec"));
    add_labels(cells, jget(o, "template.metadata.labels"));
}

static const col pdb_cols[] = {
    {"Name", "string", "name", 0, "Name of the budget."},
    {"Min Available", "string", "", 0, "Pods that must stay available."},
    {"Max Unavailable", "string", "", 0, "Pods that may be unavailable."},
    {"Allowed Disruptions", "integer", "", 0, "Disruptions allowed right now."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void pdb_cells(const json_t *o, int64_t now, json_t *cells)
{
    char a[64], b[64];
    int_or_string(jget(o, "spec.minAvailable"), a, sizeof a, "N/A");
    int_or_string(jget(o, "spec.maxUnavailable"), b, sizeof b, "N/A");
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, a);
    add_str(cells, b);
    add_int(cells, jint(o, "status.disruptionsAllowed"));
    add_age(cells, o, now);
}

/* ---- services and networking ---- */

static const col svc_cols[] = {
    {"Name", "string", "name", 0, "Name of the service."},
    {"Type", "string", "", 0, "How the service is exposed."},
    {"Cluster-IP", "string", "", 0, "The service's virtual IP inside the cluster."},
    {"External-IP", "string", "", 0, "Addresses the service is reachable on from outside."},
    {"Port(s)", "string", "", 0, "Ports the service exposes (port[:nodePort]/protocol)."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Selector", "string", "", 1, "Labels of the pods the service routes to."},
};

static void join_strings(const json_t *arr, const char *key, ck_buf *b)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *s = key ? jstr(e, key) : json_string_value(e);
        if (s && *s)
            ck_buf_printf(b, "%s%s", b->len ? "," : "", s);
    }
}

static void svc_cells(const json_t *o, int64_t now, json_t *cells)
{
    const json_t *spec = json_object_get(o, "spec");
    const char *type = *jstr(spec, "type") ? jstr(spec, "type") : "ClusterIP";
    const char *ip = json_string_value(json_array_get(json_object_get(spec, "clusterIPs"), 0));
    if (!ip || !*ip)
        ip = *jstr(spec, "clusterIP") ? jstr(spec, "clusterIP") : "<none>";

    ck_buf ext;
    ck_buf_init(&ext, 0);
    if (!strcmp(type, "ClusterIP") || !strcmp(type, "NodePort")) {
        join_strings(json_object_get(spec, "externalIPs"), NULL, &ext);
        if (!ext.len)
            ck_buf_addstr(&ext, "<none>");
    } else if (!strcmp(type, "LoadBalancer")) {
        /* load balancer addresses as a sorted set, then the external IPs */
        const json_t *ing = jget(o, "status.loadBalancer.ingress");
        size_t n = json_is_array(ing) ? json_array_size(ing) : 0, i;
        const char **lb = xcalloc(n + 1, sizeof *lb);
        size_t nl = 0;
        for (i = 0; i < n; i++) {
            const json_t *in = json_array_get(ing, i);
            const char *s = *jstr(in, "ip") ? jstr(in, "ip") : jstr(in, "hostname");
            if (*s)
                lb[nl++] = s;
        }
        qsort(lb, nl, sizeof *lb, cmp_str);
        for (i = 0; i < nl; i++)
            if (!i || strcmp(lb[i], lb[i - 1]))
                ck_buf_printf(&ext, "%s%s", ext.len ? "," : "", lb[i]);
        free(lb);
        join_strings(json_object_get(spec, "externalIPs"), NULL, &ext);
        if (!ext.len)
            ck_buf_addstr(&ext, "<pending>");
    } else if (!strcmp(type, "ExternalName")) {
        ck_buf_addstr(&ext, jstr(spec, "externalName"));
    } else {
        ck_buf_addstr(&ext, "<unknown>");
    }

    ck_buf ports;
    ck_buf_init(&ports, 0);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(spec, "ports"), i, p) {
        const char *proto = *jstr(p, "protocol") ? jstr(p, "protocol") : "TCP";
        if (jint(p, "nodePort") > 0)
            ck_buf_printf(&ports, "%s%lld:%lld/%s", i ? "," : "", (long long)jint(p, "port"), (long long)jint(p, "nodePort"), proto);
        else
            ck_buf_printf(&ports, "%s%lld/%s", i ? "," : "", (long long)jint(p, "port"), proto);
    }
    if (!ports.len)
        ck_buf_addstr(&ports, "<none>");

    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, type);
    add_str(cells, ip);
    add_buf(cells, &ext);
    add_buf(cells, &ports);
    add_age(cells, o, now);
    add_labels(cells, json_object_get(spec, "selector"));
}

static const col ep_cols[] = {
    {"Name", "string", "name", 0, "Name of the endpoints."},
    {"Endpoints", "string", "", 0, "Addresses (ip:port) behind the service."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void ep_cells(const json_t *o, int64_t now, json_t *cells)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t n = 0, count = 0, i;
    bool more = false;
    json_t *ss;
    json_array_foreach(json_object_get(o, "subsets"), i, ss) {
        const json_t *addrs = json_object_get(ss, "addresses");
        const json_t *ports = json_object_get(ss, "ports");
        size_t j, k;
        json_t *a, *p;
        if (!json_array_size(ports)) {
            count += json_array_size(addrs);
            json_array_foreach(addrs, j, a) {
                if (n == 3) {
                    more = true;
                    break;
                }
                ck_buf_printf(&b, "%s%s", n++ ? "," : "", jstr(a, "ip"));
            }
            continue;
        }
        json_array_foreach(ports, k, p) {
            count += json_array_size(addrs);
            json_array_foreach(addrs, j, a) {
                if (n == 3) {
                    more = true;
                    break;
                }
                const char *ip = jstr(a, "ip");
                if (strchr(ip, ':'))
                    ck_buf_printf(&b, "%s[%s]:%lld", n++ ? "," : "", ip, (long long)jint(p, "port"));
                else
                    ck_buf_printf(&b, "%s%s:%lld", n++ ? "," : "", ip, (long long)jint(p, "port"));
            }
        }
    }
    if (!json_array_size(json_object_get(o, "subsets")))
        ck_buf_addstr(&b, "<none>");
    else if (more)
        ck_buf_printf(&b, " + %zu more...", count - 3);
    add_str(cells, jstr(o, "metadata.name"));
    add_buf(cells, &b);
    add_age(cells, o, now);
}

static const col eps_cols[] = {
    {"Name", "string", "name", 0, "Name of the slice."},
    {"AddressType", "string", "", 0, "IPv4, IPv6 or FQDN."},
    {"Ports", "string", "", 0, "Ports of the slice."},
    {"Endpoints", "string", "", 0, "Addresses in the slice."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void more_suffix(ck_buf *b, bool more, size_t count)
{
    if (more)
        ck_buf_printf(b, " + %zu more...", count - 3);
    if (!b->len)
        ck_buf_addstr(b, "<unset>");
}

static void eps_cells(const json_t *o, int64_t now, json_t *cells)
{
    ck_buf ports, eps;
    ck_buf_init(&ports, 0);
    ck_buf_init(&eps, 0);
    size_t n = 0, count = 0, i;
    bool more = false;
    json_t *p;
    json_array_foreach(json_object_get(o, "ports"), i, p) {
        if (n < 3) {
            if (jget(p, "port"))
                ck_buf_printf(&ports, "%s%lld", n ? "," : "", (long long)jint(p, "port"));
            else if (jget(p, "name"))
                ck_buf_printf(&ports, "%s%s", n ? "," : "", jstr(p, "name"));
            else
                ck_buf_printf(&ports, "%s*", n ? "," : "");
            n++;
        } else {
            more = true;
        }
        count++;
    }
    more_suffix(&ports, more, count);
    n = count = 0;
    more = false;
    json_t *e;
    json_array_foreach(json_object_get(o, "endpoints"), i, e) {
        size_t j;
        json_t *a;
        json_array_foreach(json_object_get(e, "addresses"), j, a) {
            if (n < 3)
                ck_buf_printf(&eps, "%s%s", n++ ? "," : "", json_string_value(a) ?: "");
            else
                more = true;
            count++;
        }
    }
    more_suffix(&eps, more, count);
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, jstr(o, "addressType"));
    add_buf(cells, &ports);
    add_buf(cells, &eps);
    add_age(cells, o, now);
}

/* ---- cluster objects ---- */

static const col node_cols[] = {
    {"Name", "string", "name", 0, "Name of the node."},
    {"Status", "string", "", 0, "Ready, NotReady or Unknown, and SchedulingDisabled."},
    {"Roles", "string", "", 0, "Roles from node-role.kubernetes.io/ labels."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Version", "string", "", 0, "Kubelet version."},
    {"Internal-IP", "string", "", 1, "First internal address."},
    {"External-IP", "string", "", 1, "First external address."},
    {"OS-Image", "string", "", 1, "Operating system image."},
    {"Kernel-Version", "string", "", 1, "Kernel version."},
    {"Container-Runtime", "string", "", 1, "Container runtime and version."},
};

static void node_cells(const json_t *o, int64_t now, json_t *cells)
{
    ck_buf st;
    ck_buf_init(&st, 0);
    const char *ready = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(jget(o, "status.conditions"), i, c)
        if (!strcmp(jstr(c, "type"), "Ready"))
            ready = jstr(c, "status");
    ck_buf_addstr(&st, !ready ? "Unknown" : !strcmp(ready, "True") ? "Ready" : "NotReady");
    if (json_is_true(jget(o, "spec.unschedulable")))
        ck_buf_addstr(&st, ",SchedulingDisabled");

    /* roles: node-role.kubernetes.io/<role> keys and the kubernetes.io/role value, sorted */
    const json_t *labels = jget(o, "metadata.labels");
    const char *roles[32];
    size_t nr = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)labels, k, v) {
        if (nr == ARRAY_SIZE(roles))
            break;
        if (!strncmp(k, "node-role.kubernetes.io/", 24) && k[24])
            roles[nr++] = k + 24;
        else if (!strcmp(k, "kubernetes.io/role") && json_string_value(v) && *json_string_value(v))
            roles[nr++] = json_string_value(v);
    }
    qsort(roles, nr, sizeof *roles, cmp_str);
    ck_buf rb;
    ck_buf_init(&rb, 0);
    for (i = 0; i < nr; i++)
        if (!i || strcmp(roles[i], roles[i - 1]))
            ck_buf_printf(&rb, "%s%s", rb.len ? "," : "", roles[i]);
    if (!rb.len)
        ck_buf_addstr(&rb, "<none>");

    const char *internal = "<none>", *external = "<none>";
    json_t *a;
    json_array_foreach(jget(o, "status.addresses"), i, a) {
        if (!strcmp(jstr(a, "type"), "InternalIP") && !strcmp(internal, "<none>"))
            internal = jstr(a, "address");
        if (!strcmp(jstr(a, "type"), "ExternalIP") && !strcmp(external, "<none>"))
            external = jstr(a, "address");
    }
    const json_t *ni = jget(o, "status.nodeInfo");
    add_str(cells, jstr(o, "metadata.name"));
    add_buf(cells, &st);
    add_buf(cells, &rb);
    add_age(cells, o, now);
    add_str(cells, jstr(ni, "kubeletVersion"));
    add_str(cells, internal);
    add_str(cells, external);
    add_str(cells, *jstr(ni, "osImage") ? jstr(ni, "osImage") : "<unknown>");
    add_str(cells, *jstr(ni, "kernelVersion") ? jstr(ni, "kernelVersion") : "<unknown>");
    add_str(cells, *jstr(ni, "containerRuntimeVersion") ? jstr(ni, "containerRuntimeVersion") : "<unknown>");
}

static const col ns_cols[] = {
    {"Name", "string", "name", 0, "Name of the namespace."},
    {"Status", "string", "", 0, "Active or Terminating."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void ns_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, jstr(o, "status.phase"));
    add_age(cells, o, now);
}

static const col cm_cols[] = {
    {"Name", "string", "name", 0, "Name of the config map."},
    {"Data", "string", "", 0, "Number of keys."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void cm_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_int(cells, (json_int_t)(jsize(o, "data") + jsize(o, "binaryData")));
    add_age(cells, o, now);
}

static const col secret_cols[] = {
    {"Name", "string", "name", 0, "Name of the secret."},
    {"Type", "string", "", 0, "Type of the secret."},
    {"Data", "string", "", 0, "Number of keys."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void secret_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, jstr(o, "type"));
    add_int(cells, (json_int_t)jsize(o, "data"));
    add_age(cells, o, now);
}

static const col sa_cols[] = {
    {"Name", "string", "name", 0, "Name of the service account."},
    {"Secrets", "string", "", 0, "Number of secrets listed."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void sa_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_int(cells, (json_int_t)jsize(o, "secrets"));
    add_age(cells, o, now);
}

static const col event_cols[] = {
    {"Last Seen", "string", "", 0, "Time since the event was last seen."},
    {"Type", "string", "", 0, "Normal or Warning."},
    {"Reason", "string", "", 0, "Short machine-readable cause."},
    {"Object", "string", "", 0, "The object the event is about."},
    {"Subobject", "string", "", 1, "Field path inside the object."},
    {"Source", "string", "", 1, "Component that reported the event."},
    {"Message", "string", "", 0, "Human-readable description."},
    {"First Seen", "string", "", 1, "Time since the event was first seen."},
    {"Count", "string", "", 1, "How many times it happened."},
    {"Name", "string", "name", 1, "Name of the event."},
};

/* Serves both core/v1 Event and events.k8s.io/v1 Event (note/regarding/deprecated* names). */
static void event_cells(const json_t *o, int64_t now, json_t *cells)
{
    bool v1 = jget(o, "involvedObject") || !jget(o, "regarding");
    const json_t *obj = jget(o, v1 ? "involvedObject" : "regarding");
    const char *first_ts = jstr(o, v1 ? "firstTimestamp" : "deprecatedFirstTimestamp");
    const char *last_ts = jstr(o, v1 ? "lastTimestamp" : "deprecatedLastTimestamp");
    char first[32], last[32];
    since(*first_ts ? first_ts : jstr(o, "eventTime"), now, first);
    if (*last_ts)
        since(last_ts, now, last);
    else
        memcpy(last, first, sizeof last);
    json_int_t count = jint(o, v1 ? "count" : "deprecatedCount");
    if (jget(o, "series")) {
        since(jstr(o, "series.lastObservedTime"), now, last);
        count = jint(o, "series.count");
    } else if (!count) {
        count = 1;
    }
    char target[320], kind[96];
    snprintf(kind, sizeof kind, "%s", jstr(obj, "kind"));
    for (char *p = kind; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (*jstr(obj, "name"))
        snprintf(target, sizeof target, "%s/%s", kind, jstr(obj, "name"));
    else
        snprintf(target, sizeof target, "%s", kind);

    const char *comp = jstr(o, v1 ? "source.component" : "deprecatedSource.component");
    const char *host = jstr(o, v1 ? "source.host" : "deprecatedSource.host");
    if (!*comp)
        comp = jstr(o, "reportingController");
    if (!*host)
        host = jstr(o, "reportingInstance");
    char source[320];
    if (*host)
        snprintf(source, sizeof source, "%s, %s", comp, host);
    else
        snprintf(source, sizeof source, "%s", comp);

    /* message with surrounding whitespace trimmed */
    const char *msg = jstr(o, v1 ? "message" : "note");
    while (isspace((unsigned char)*msg))
        msg++;
    size_t ml = strlen(msg);
    while (ml && isspace((unsigned char)msg[ml - 1]))
        ml--;

    add_str(cells, last);
    add_str(cells, jstr(o, "type"));
    add_str(cells, jstr(o, "reason"));
    add_str(cells, target);
    add_str(cells, jstr(obj, "fieldPath"));
    add_str(cells, source);
    json_array_append_new(cells, json_stringn(msg, ml));
    add_str(cells, first);
    add_int(cells, count);
    add_str(cells, jstr(o, "metadata.name"));
}

static const col lease_cols[] = {
    {"Name", "string", "name", 0, "Name of the lease."},
    {"Holder", "string", "", 0, "Current holder of the lease."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void lease_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, jstr(o, "spec.holderIdentity"));
    add_age(cells, o, now);
}

/* ---- storage ---- */

/* Access modes abbreviated in upstream's fixed order. */
static void access_modes(const json_t *arr, ck_buf *b)
{
    static const char *const modes[][2] = {
        {"ReadWriteOnce", "RWO"}, {"ReadOnlyMany", "ROX"}, {"ReadWriteMany", "RWX"}, {"ReadWriteOncePod", "RWOP"}};
    ck_buf_init(b, 0);
    for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
            if (json_string_value(v) && !strcmp(json_string_value(v), modes[m][0])) {
                ck_buf_printf(b, "%s%s", b->len ? "," : "", modes[m][1]);
                break;
            }
    }
    if (!b->data)
        ck_buf_addstr(b, "");
}

/* The beta annotation wins over the field, as upstream's helpers read it. */
static const char *storage_class_of(const json_t *o, const char *spec_field)
{
    const json_t *ann = jget(o, "metadata.annotations");
    const char *s = json_string_value(json_object_get(ann, "volume.beta.kubernetes.io/storage-class"));
    return s ? s : jstr(o, spec_field);
}

static const col pv_cols[] = {
    {"Name", "string", "name", 0, "Name of the volume."},
    {"Capacity", "string", "", 0, "Storage capacity."},
    {"Access Modes", "string", "", 0, "How the volume can be mounted."},
    {"Reclaim Policy", "string", "", 0, "What happens on release."},
    {"Status", "string", "", 0, "Phase of the volume."},
    {"Claim", "string", "", 0, "The claim bound to the volume."},
    {"StorageClass", "string", "", 0, "Storage class of the volume."},
    {"VolumeAttributesClass", "string", "", 0, "Volume attributes class."},
    {"Reason", "string", "", 0, "Why the volume is in its phase."},
    {"Age", "string", "", 0, "Time since creation."},
    {"VolumeMode", "string", "", 1, "Filesystem or Block."},
};

static void pv_cells(const json_t *o, int64_t now, json_t *cells)
{
    char claim[320] = "";
    if (jget(o, "spec.claimRef"))
        snprintf(claim, sizeof claim, "%s/%s", jstr(o, "spec.claimRef.namespace"), jstr(o, "spec.claimRef.name"));
    ck_buf am;
    access_modes(jget(o, "spec.accessModes"), &am);
    const char *phase = jget(o, "metadata.deletionTimestamp") ? "Terminating" : jstr(o, "status.phase");
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, jstr(o, "spec.capacity.storage"));
    add_buf(cells, &am);
    add_str(cells, jstr(o, "spec.persistentVolumeReclaimPolicy"));
    add_str(cells, phase);
    add_str(cells, claim);
    add_str(cells, storage_class_of(o, "spec.storageClassName"));
    add_str(cells, jget(o, "spec.volumeAttributesClassName") ? jstr(o, "spec.volumeAttributesClassName") : "<unset>");
    add_str(cells, jstr(o, "status.reason"));
    add_age(cells, o, now);
    add_str(cells, jget(o, "spec.volumeMode") ? jstr(o, "spec.volumeMode") : "<unset>");
}

static const col pvc_cols[] = {
    {"Name", "string", "name", 0, "Name of the claim."},
    {"Status", "string", "", 0, "Phase of the claim."},
    {"Volume", "string", "", 0, "The volume bound to the claim."},
    {"Capacity", "string", "", 0, "Capacity of the bound volume."},
    {"Access Modes", "string", "", 0, "Access modes of the bound volume."},
    {"StorageClass", "string", "", 0, "Storage class of the claim."},
    {"VolumeAttributesClass", "string", "", 0, "Volume attributes class."},
    {"Age", "string", "", 0, "Time since creation."},
    {"VolumeMode", "string", "", 1, "Filesystem or Block."},
};

static void pvc_cells(const json_t *o, int64_t now, json_t *cells)
{
    const char *phase = jget(o, "metadata.deletionTimestamp") ? "Terminating" : jstr(o, "status.phase");
    bool bound = *jstr(o, "spec.volumeName");
    ck_buf am;
    if (bound)
        access_modes(jget(o, "status.accessModes"), &am);
    else {
        ck_buf_init(&am, 0);
        ck_buf_addstr(&am, "");
    }
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, phase);
    add_str(cells, jstr(o, "spec.volumeName"));
    add_str(cells, bound ? jstr(o, "status.capacity.storage") : "");
    add_buf(cells, &am);
    add_str(cells, storage_class_of(o, "spec.storageClassName"));
    add_str(cells, jget(o, "spec.volumeAttributesClassName") ? jstr(o, "spec.volumeAttributesClassName") : "<unset>");
    add_age(cells, o, now);
    add_str(cells, jget(o, "spec.volumeMode") ? jstr(o, "spec.volumeMode") : "<unset>");
}

static const col sc_cols[] = {
    {"Name", "string", "name", 0, "Name of the class; (default) marks the default class."},
    {"Provisioner", "string", "", 0, "Volume plugin that provisions volumes."},
    {"ReclaimPolicy", "string", "", 0, "Reclaim policy of provisioned volumes."},
    {"VolumeBindingMode", "string", "", 0, "When volumes are bound."},
    {"AllowVolumeExpansion", "string", "", 0, "Whether volumes may be expanded."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void sc_cells(const json_t *o, int64_t now, json_t *cells)
{
    const json_t *ann = jget(o, "metadata.annotations");
    const char *def = json_string_value(json_object_get(ann, "storageclass.kubernetes.io/is-default-class"));
    if (!def)
        def = json_string_value(json_object_get(ann, "storageclass.beta.kubernetes.io/is-default-class"));
    char name[300];
    snprintf(name, sizeof name, "%s%s", jstr(o, "metadata.name"), def && !strcmp(def, "true") ? " (default)" : "");
    add_str(cells, name);
    add_str(cells, jstr(o, "provisioner"));
    add_str(cells, *jstr(o, "reclaimPolicy") ? jstr(o, "reclaimPolicy") : "Delete");
    add_str(cells, *jstr(o, "volumeBindingMode") ? jstr(o, "volumeBindingMode") : "Immediate");
    json_array_append_new(cells, json_boolean(json_is_true(json_object_get(o, "allowVolumeExpansion"))));
    add_age(cells, o, now);
}

/* ---- policy, scheduling, rbac ---- */

static const col pc_cols[] = {
    {"Name", "string", "name", 0, "Name of the priority class."},
    {"Value", "integer", "", 0, "Priority value."},
    {"Global-Default", "boolean", "", 0, "Whether pods without a class get this one."},
    {"Age", "string", "", 0, "Time since creation."},
    {"PreemptionPolicy", "string", "", 0, "Whether these pods may preempt others."},
};

static void pc_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_int(cells, jint(o, "value"));
    json_array_append_new(cells, json_boolean(json_is_true(json_object_get(o, "globalDefault"))));
    add_age(cells, o, now);
    add_str(cells, jstr(o, "preemptionPolicy"));
}

static const col rb_cols[] = {
    {"Name", "string", "name", 0, "Name of the binding."},
    {"Role", "string", "", 0, "The role granted."},
    {"Age", "string", "", 0, "Time since creation."},
    {"Users", "string", "", 1, "Users bound."},
    {"Groups", "string", "", 1, "Groups bound."},
    {"ServiceAccounts", "string", "", 1, "Service accounts bound (namespace/name)."},
};

static void rb_cells(const json_t *o, int64_t now, json_t *cells)
{
    char role[300];
    snprintf(role, sizeof role, "%s/%s", jstr(o, "roleRef.kind"), jstr(o, "roleRef.name"));
    ck_buf users, groups, sas;
    ck_buf_init(&users, 0);
    ck_buf_init(&groups, 0);
    ck_buf_init(&sas, 0);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(o, "subjects"), i, s) {
        const char *kind = jstr(s, "kind");
        if (!strcmp(kind, "User"))
            ck_buf_printf(&users, "%s%s", users.len ? ", " : "", jstr(s, "name"));
        else if (!strcmp(kind, "Group"))
            ck_buf_printf(&groups, "%s%s", groups.len ? ", " : "", jstr(s, "name"));
        else if (!strcmp(kind, "ServiceAccount"))
            ck_buf_printf(&sas, "%s%s/%s", sas.len ? ", " : "", jstr(s, "namespace"), jstr(s, "name"));
    }
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, role);
    add_age(cells, o, now);
    add_buf(cells, &users);
    add_buf(cells, &groups);
    add_buf(cells, &sas);
}

static const col rq_cols[] = {
    {"Name", "string", "name", 0, "Name of the quota."},
    {"Request", "string", "", 0, "Used/hard of the request (non-limit) resources."},
    {"Limit", "string", "", 0, "Used/hard of the limits.* resources."},
    {"Age", "string", "", 0, "Time since creation."},
};

static void quantity_text(const json_t *v, char *out, size_t cap)
{
    if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else
        snprintf(out, cap, "0");
}

static void rq_cells(const json_t *o, int64_t now, json_t *cells)
{
    const json_t *hard = jget(o, "status.hard");   /* enforced limits, as upstream prints */
    size_t n = json_is_object(hard) ? json_object_size(hard) : 0, i = 0;
    const char **keys = xcalloc(n + 1, sizeof *keys);
    const char *k;
    json_t *v;
    if (n)
        json_object_foreach((json_t *)hard, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    ck_buf req, lim;
    ck_buf_init(&req, 0);
    ck_buf_init(&lim, 0);
    for (i = 0; i < n; i++) {
        char used[64], h[64];
        quantity_text(json_object_get(jget(o, "status.used"), keys[i]), used, sizeof used);
        quantity_text(json_object_get(jget(o, "status.hard"), keys[i]), h, sizeof h);
        ck_buf *w = !strncmp(keys[i], "limits.", 7) ? &lim : &req;
        ck_buf_printf(w, "%s%s: %s/%s", w->len ? ", " : "", keys[i], used, h);
    }
    free(keys);
    add_str(cells, jstr(o, "metadata.name"));
    add_buf(cells, &req);
    add_buf(cells, &lim);
    add_age(cells, o, now);
}

static const col cs_cols[] = {
    {"Name", "string", "name", 0, "Name of the component."},
    {"Status", "string", "", 0, "Healthy or Unhealthy."},
    {"Message", "string", "", 0, "Message of the health condition."},
    {"Error", "string", "", 0, "Error of the health condition."},
};

static void cs_cells(const json_t *o, int64_t now, json_t *cells)
{
    const char *status = "Unknown", *msg = "", *err = "";
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(o, "conditions"), i, c) {
        if (strcmp(jstr(c, "type"), "Healthy"))
            continue;
        status = !strcmp(jstr(c, "status"), "True") ? "Healthy" : "Unhealthy";
        msg = jstr(c, "message");
        err = jstr(c, "error");
        break;
    }
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, status);
    add_str(cells, msg);
    add_str(cells, err);
}

/* Upstream's default table for kinds without a printer. */
static const col default_cols[] = {
    {"Name", "string", "name", 0, "Name of the object."},
    {"Created At", "date", "", 0, "When the object was created."},
};

static void default_cells(const json_t *o, int64_t now, json_t *cells)
{
    add_str(cells, jstr(o, "metadata.name"));
    add_str(cells, jstr(o, "metadata.creationTimestamp"));
}

/* ---- dispatch ---- */

#define P(kind, cols, fn) {kind, cols, ARRAY_SIZE(cols), fn}
static const struct printer {
    const char *kind;
    const col *cols;
    size_t ncols;
    cells_fn fn;
} printers[] = {
    P("Pod", pod_cols, pod_cells),
    P("Deployment", deploy_cols, deploy_cells),
    P("ReplicaSet", rs_cols, rs_cells),
    P("ReplicationController", rs_cols, rc_cells),
    P("StatefulSet", sts_cols, sts_cells),
    P("DaemonSet", ds_cols, ds_cells),
    P("Job", job_cols, job_cells),
    P("CronJob", cj_cols, cj_cells),
    P("ControllerRevision", rev_cols, rev_cells),
    P("PodTemplate", podtemplate_cols, podtemplate_cells),
    P("PodDisruptionBudget", pdb_cols, pdb_cells),
    P("Service", svc_cols, svc_cells),
    P("Endpoints", ep_cols, ep_cells),
    P("EndpointSlice", eps_cols, eps_cells),
    P("Node", node_cols, node_cells),
    P("Namespace", ns_cols, ns_cells),
    P("ConfigMap", cm_cols, cm_cells),
    P("Secret", secret_cols, secret_cells),
    P("ServiceAccount", sa_cols, sa_cells),
    P("Event", event_cols, event_cells),
    P("Lease", lease_cols, lease_cells),
    P("PersistentVolume", pv_cols, pv_cells),
    P("PersistentVolumeClaim", pvc_cols, pvc_cells),
    P("StorageClass", sc_cols, sc_cells),
    P("PriorityClass", pc_cols, pc_cells),
    P("RoleBinding", rb_cols, rb_cells),
    P("ClusterRoleBinding", rb_cols, rb_cells),
    P("ResourceQuota", rq_cols, rq_cells),
    P("ComponentStatus", cs_cols, cs_cells),
};

static const struct printer default_printer = P("", default_cols, default_cells);

static const struct printer *printer_for(const ck_resource *r)
{
    for (size_t i = 0; r && i < ARRAY_SIZE(printers); i++)
        if (!strcmp(printers[i].kind, r->kind))
            return &printers[i];
    return &default_printer;
}

json_t *ck_table_columns(const ck_resource *r)
{
    const struct printer *p = printer_for(r);
    json_t *arr = json_array();
    for (size_t i = 0; i < p->ncols; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", p->cols[i].name, "type",
                                             p->cols[i].type, "format", p->cols[i].format, "description",
                                             p->cols[i].desc, "priority", p->cols[i].priority));
    return arr;
}

json_t *ck_table_cells(const ck_resource *r, const json_t *obj, int64_t now_sec)
{
    json_t *cells = json_array();
    printer_for(r)->fn(obj, now_sec, cells);
    return cells;
}

const char *ck_table_accept(const char *accept)
{
    for (const char *p = accept; p && *p;) {
        size_t n = strcspn(p, ",");
        char range[256];
        snprintf(range, sizeof range, "%.*s", (int)(n < sizeof range - 1 ? n : sizeof range - 1), p);
        p += n + (p[n] == ',');
        /* strip spaces so "application/json; as=Table" matches too */
        char *w = range;
        for (char *r = range; *r; r++)
            if (*r != ' ' && *r != '\t')
                *w++ = *r;
        *w = 0;
        char *semi = strchr(range, ';');
        if (semi)
            *semi = 0;
        bool json = !strcmp(range, "application/json");
        if (!json && strcmp(range, "*/*") && strcmp(range, "application/*"))
            continue;   /* protobuf or another type we do not answer with */
        const char *params = semi ? semi + 1 : "";
        char as[32] = "", g[32] = "", v[16] = "";
        for (const char *q = params; *q;) {
            size_t m = strcspn(q, ";");
            if (!strncmp(q, "as=", 3))
                snprintf(as, sizeof as, "%.*s", (int)(m - 3), q + 3);
            else if (!strncmp(q, "g=", 2))
                snprintf(g, sizeof g, "%.*s", (int)(m - 2), q + 2);
            else if (!strncmp(q, "v=", 2))
                snprintf(v, sizeof v, "%.*s", (int)(m - 2), q + 2);
            q += m + (q[m] == ';');
        }
        if (!as[0])
            return NULL;   /* a plain representation is preferred */
        if (json && !strcmp(as, "Table") && !strcmp(g, "meta.k8s.io")) {
            if (!strcmp(v, "v1"))
                return "meta.k8s.io/v1";
            if (!strcmp(v, "v1beta1"))
                return "meta.k8s.io/v1beta1";
        }
    }
    return NULL;
}

json_t *ck_table_new(const ck_resource *r, const json_t *objs, const char *api_version,
                     const char *resource_version, const char *continue_token, int64_t now_sec)
{
    const char *av = api_version ? api_version : "meta.k8s.io/v1";
    json_t *meta = json_object();
    if (resource_version)
        json_object_set_new(meta, "resourceVersion", json_string(resource_version));
    if (continue_token && *continue_token)
        json_object_set_new(meta, "continue", json_string(continue_token));
    json_t *rows = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o) {
        json_t *m = json_object_get(o, "metadata");
        json_t *partial = json_pack("{s:s, s:s, s:o}", "kind", "PartialObjectMetadata", "apiVersion", av,
                                    "metadata", m ? json_deep_copy(m) : json_object());
        json_array_append_new(rows, json_pack("{s:o, s:o}", "cells", ck_table_cells(r, o, now_sec), "object", partial));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:o}", "kind", "Table", "apiVersion", av, "metadata", meta,
                     "columnDefinitions", ck_table_columns(r), "rows", rows);
}

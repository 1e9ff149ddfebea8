/* table.c - server-side printing (see table.h) after upstream's printers
 * (pkg/printers/internalversion), always with the wide columns (the server fills every column;
 * kubectl hides priority>0 ones unless -o wide).  Kinds with no printer get upstream's default
 * table: Name and Created At.
 *
 * Printers are data: each kind is an array of columns, and a column names its header, type,
 * priority, description and where its cell comes from - a JSON path read one of a few ways
 * (string, string with a default, integer, count, boolean, label map, selector, container names
 * or images) or, for what needs computing, a small extractor function.  Pods' READY/STATUS/
 * RESTARTS come out of one walk over the container statuses: a kind may have a row function whose
 * array of cells C_ROW columns pick from.  tests/unit/test_table.c keeps every kind's output
 * byte-identical through golden digests. */
#include "apiserver/table.h"
#include "lib/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the column spec ---- */

/* Where a column's cell comes from.  Paths are dotted ("spec.template.spec"). */
enum cell {
    C_NAME,           /* metadata.name */
    C_AGE,            /* human age of metadata.creationTimestamp */
    C_STR,            /* the string at path; "" when missing */
    C_STR_SET,        /* the string at path when the field is present, else dflt */
    C_STR_NONEMPTY,   /* the string at path when not empty, else dflt */
    C_INT,            /* the integer at path (0 when missing) */
    C_LEN,            /* how many items or keys the array or object at path has */
    C_BOOL,           /* whether path is true */
    C_LABELS,         /* the string map at path as sorted k=v,k2=v2 ("<none>" when empty) */
    C_SELECTOR,       /* the LabelSelector at path as upstream prints it; dflt (or "<none>") when empty */
    C_CONTAINERS,     /* the container names of the pod spec at path, comma-joined */
    C_IMAGES,         /* their images */
    C_FN,             /* fn(obj, now) */
    C_ROW,            /* item `row` of the kind's row function (cells computed together) */
};

typedef json_t *(*cell_fn)(const json_t *obj, int64_t now);

typedef struct col {
    const char *name, *type, *format;
    int priority;
    const char *desc;
    enum cell cell;
    const char *path;
    const char *dflt;
    cell_fn fn;
    int row;
} col;

/* Column constructors: a name column, an age column, and the rest by cell kind. */
#define NAME(desc) {"Name", "string", "name", 0, desc, C_NAME, NULL, NULL, NULL, 0}
#define AGE {"Age", "string", "", 0, "Time since creation.", C_AGE, NULL, NULL, NULL, 0}
#define COL(name, type, prio, desc, cell, path, dflt) {name, type, "", prio, desc, cell, path, dflt, NULL, 0}
#define FN(name, type, prio, desc, fn) {name, type, "", prio, desc, C_FN, NULL, NULL, fn, 0}
#define ROW(name, prio, desc, i) {name, "string", "", prio, desc, C_ROW, NULL, NULL, NULL, i}
/* the Containers / Images (/ Selector) trio of workloads, for the pod spec at path */
#define TEMPLATE_COLS(spec)                                                                        \
    COL("Containers", "string", 1, "Names of each container in the template.", C_CONTAINERS, spec, NULL), \
    COL("Images", "string", 1, "Images of each container in the template.", C_IMAGES, spec, NULL)
#define SELECTOR_COL(path) COL("Selector", "string", 1, "Label selector of the pods.", C_SELECTOR, path, NULL)

static json_t *str_cell(const char *s) { return json_string(s ? s : ""); }

static json_t *buf_cell(ck_buf *b)
{
    json_t *v = str_cell(b->data ? b->data : "");
    ck_buf_free(b);
    return v;
}

static json_t *join_containers(const json_t *podspec, const char *field)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(podspec, "containers"), i, c)
        ck_buf_printf(&b, "%s%s", i ? "," : "", jstr(c, field));
    return buf_cell(&b);
}

static json_t *cell_of(const col *c, const json_t *o, int64_t now, const json_t *row)
{
    ck_buf b;
    char a[32];
    switch (c->cell) {
    case C_NAME:
        return str_cell(jstr(o, "metadata.name"));
    case C_AGE:
        since(jstr(o, "metadata.creationTimestamp"), now, a);
        return str_cell(a);
    case C_STR:
        return str_cell(jstr(o, c->path));
    case C_STR_SET:
        return str_cell(jget(o, c->path) ? jstr(o, c->path) : c->dflt);
    case C_STR_NONEMPTY:
        return str_cell(*jstr(o, c->path) ? jstr(o, c->path) : c->dflt);
    case C_INT:
        return json_integer(jint(o, c->path));
    case C_LEN:
        return json_integer((json_int_t)jsize(o, c->path));
    case C_BOOL:
        return json_boolean(json_is_true(jget(o, c->path)));
    case C_LABELS:
        format_labels(jget(o, c->path), &b);
        return buf_cell(&b);
    case C_SELECTOR:
        format_selector(jget(o, c->path), &b, c->dflt ? c->dflt : "<none>");
        return buf_cell(&b);
    case C_CONTAINERS:
        return join_containers(jget(o, c->path), "name");
    case C_IMAGES:
        return join_containers(jget(o, c->path), "image");
    case C_FN:
        return c->fn(o, now);
    case C_ROW:
        return json_incref(json_array_get(row, (size_t)c->row));
    }
    return NULL;
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

/* ---- pods ---- */

/* READY, STATUS and RESTARTS come out of one walk over the container statuses, as upstream's
 * printPod computes them: [ready, status, restarts]. */
static json_t *pod_row(const json_t *pod, int64_t now)
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

    char rd[64], rs[96], age[32];
    snprintf(rd, sizeof rd, "%zu/%zu", ready, total);
    if (restarts && last_restart) {
        ck_table_age(now - last_restart, age);
        snprintf(rs, sizeof rs, "%ld (%s ago)", restarts, age);
    } else {
        snprintf(rs, sizeof rs, "%ld", restarts);
    }
    json_t *row = json_array();
    json_array_append_new(row, str_cell(rd));
    json_array_append_new(row, str_cell(reason));
    json_array_append_new(row, str_cell(rs));
    return row;
}

static json_t *pod_ip(const json_t *pod, int64_t now)
{
    (void)now;
    const json_t *st = json_object_get(pod, "status");
    const char *ip = jstr(json_array_get(json_object_get(st, "podIPs"), 0), "ip");
    if (!*ip)
        ip = jstr(st, "podIP");
    return str_cell(*ip ? ip : "<none>");
}

static json_t *pod_gates(const json_t *pod, int64_t now)
{
    (void)now;
    const json_t *spec = json_object_get(pod, "spec"), *st = json_object_get(pod, "status");
    size_t ngates = jsize(spec, "readinessGates");
    if (!ngates)
        return str_cell("<none>");
    size_t ntrue = 0, i;
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
    char buf[64];
    snprintf(buf, sizeof buf, "%zu/%zu", ntrue, ngates);
    return str_cell(buf);
}

static const col pod_cols[] = {
    NAME("Name of the pod."),
    ROW("Ready", 0, "Ready containers out of all containers.", 0),
    ROW("Status", 0, "Aggregate status of the pod's containers.", 1),
    ROW("Restarts", 0, "Container restarts, and how long ago the last one was.", 2),
    {"Age", "string", "", 0, "Time since the pod was created.", C_AGE, NULL, NULL, NULL, 0},
    FN("IP", "string", 1, "The pod's IP address.", pod_ip),
    COL("Node", "string", 1, "The node the pod is bound to.", C_STR_NONEMPTY, "spec.nodeName", "<none>"),
    COL("Nominated Node", "string", 1, "The node the scheduler nominated for preemption.", C_STR_NONEMPTY,
        "status.nominatedNodeName", "<none>"),
    FN("Readiness Gates", "string", 1, "Readiness gates that are true out of all.", pod_gates),
};

/* ---- workloads ---- */

/* "ready/desired" of deployments and stateful sets */
static json_t *ready_of_desired(const json_t *o, int64_t now)
{
    (void)now;
    char buf[64];
    snprintf(buf, sizeof buf, "%lld/%lld", (long long)jint(o, "status.readyReplicas"), (long long)jint(o, "spec.replicas"));
    return str_cell(buf);
}

static const col deploy_cols[] = {
    NAME("Name of the deployment."),
    FN("Ready", "string", 0, "Ready pods out of desired.", ready_of_desired),
    COL("Up-to-date", "string", 0, "Pods running the newest template.", C_INT, "status.updatedReplicas", NULL),
    COL("Available", "string", 0, "Pods available to serve.", C_INT, "status.availableReplicas", NULL),
    AGE,
    TEMPLATE_COLS("spec.template.spec"),
    /* Deployment prints selector.String(): empty, not <none> */
    COL("Selector", "string", 1, "Label selector of the pods.", C_SELECTOR, "spec.selector", ""),
};

#define RS_COLS(selector)                                                                          \
    NAME("Name of the object."),                                                                   \
    COL("Desired", "integer", 0, "Desired number of pods.", C_INT, "spec.replicas", NULL),         \
    COL("Current", "integer", 0, "Pods that exist.", C_INT, "status.replicas", NULL),              \
    COL("Ready", "integer", 0, "Pods that are ready.", C_INT, "status.readyReplicas", NULL),       \
    AGE, TEMPLATE_COLS("spec.template.spec"), selector

static const col rs_cols[] = {RS_COLS(SELECTOR_COL("spec.selector"))};
/* a ReplicationController's selector is a plain map */
static const col rc_cols[] = {
    RS_COLS(COL("Selector", "string", 1, "Label selector of the pods.", C_LABELS, "spec.selector", NULL))};

static const col sts_cols[] = {
    NAME("Name of the statefulset."),
    FN("Ready", "string", 0, "Ready pods out of desired.", ready_of_desired),
    AGE,
    TEMPLATE_COLS("spec.template.spec"),
};

static const col ds_cols[] = {
    NAME("Name of the daemonset."),
    COL("Desired", "integer", 0, "Nodes that should run the pod.", C_INT, "status.desiredNumberScheduled", NULL),
    COL("Current", "integer", 0, "Nodes running at least one pod.", C_INT, "status.currentNumberScheduled", NULL),
    COL("Ready", "integer", 0, "Nodes whose pod is ready.", C_INT, "status.numberReady", NULL),
    COL("Up-to-date", "integer", 0, "Nodes running the newest template.", C_INT, "status.updatedNumberScheduled", NULL),
    COL("Available", "integer", 0, "Nodes whose pod is available.", C_INT, "status.numberAvailable", NULL),
    COL("Node Selector", "string", 0, "Node labels the pods require.", C_LABELS, "spec.template.spec.nodeSelector", NULL),
    AGE,
    TEMPLATE_COLS("spec.template.spec"),
    SELECTOR_COL("spec.selector"),
};

static json_t *job_status(const json_t *o, int64_t now)
{
    (void)now;
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
    return str_cell(status);
}

static json_t *job_completions(const json_t *o, int64_t now)
{
    (void)now;
    char comp[64];
    long long succeeded = jint(o, "status.succeeded");
    if (jget(o, "spec.completions"))
        snprintf(comp, sizeof comp, "%lld/%lld", succeeded, (long long)jint(o, "spec.completions"));
    else if (jint(o, "spec.parallelism") > 1)
        snprintf(comp, sizeof comp, "%lld/1 of %lld", succeeded, (long long)jint(o, "spec.parallelism"));
    else
        snprintf(comp, sizeof comp, "%lld/1", succeeded);
    return str_cell(comp);
}

static json_t *job_duration(const json_t *o, int64_t now)
{
    char dur[32] = "";
    int64_t start = ts_of(jstr(o, "status.startTime")), done = ts_of(jstr(o, "status.completionTime"));
    if (start)
        ck_table_age((done ? done : now) - start, dur);
    return str_cell(dur);
}

static const col job_cols[] = {
    NAME("Name of the job."),
    FN("Status", "string", 0, "Status of the job.", job_status),
    FN("Completions", "string", 0, "Succeeded pods out of the completions wanted.", job_completions),
    FN("Duration", "string", 0, "Time the job took (or has taken so far).", job_duration),
    AGE,
    TEMPLATE_COLS("spec.template.spec"),
    SELECTOR_COL("spec.selector"),
};

static json_t *cj_suspend(const json_t *o, int64_t now)
{
    (void)now;
    const json_t *sus = jget(o, "spec.suspend");
    return str_cell(!sus ? "<unset>" : json_is_true(sus) ? "True" : "False");
}

static json_t *cj_last(const json_t *o, int64_t now)
{
    char last[32] = "<none>";
    if (jget(o, "status.lastScheduleTime"))
        since(jstr(o, "status.lastScheduleTime"), now, last);
    return str_cell(last);
}

static const col cj_cols[] = {
    NAME("Name of the cronjob."),
    COL("Schedule", "string", 0, "Cron schedule.", C_STR, "spec.schedule", NULL),
    COL("Timezone", "string", 0, "Time zone of the schedule.", C_STR_SET, "spec.timeZone", "<none>"),
    FN("Suspend", "boolean", 0, "Whether new runs are suspended.", cj_suspend),
    COL("Active", "integer", 0, "Jobs currently running.", C_LEN, "status.active", NULL),
    FN("Last Schedule", "string", 0, "Time since the last scheduled run.", cj_last),
    AGE,
    COL("Containers", "string", 1, "Names of each container in the job template.", C_CONTAINERS,
        "spec.jobTemplate.spec.template.spec", NULL),
    COL("Images", "string", 1, "Images of each container in the job template.", C_IMAGES,
        "spec.jobTemplate.spec.template.spec", NULL),
    COL("Selector", "string", 1, "Label selector of the job template.", C_SELECTOR, "spec.jobTemplate.spec.selector", NULL),
};

/* kind[.group]/name of the controlling owner */
static json_t *rev_controller(const json_t *o, int64_t now)
{
    (void)now;
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
    return str_cell(ctl);
}

static const col rev_cols[] = {
    NAME("Name of the revision."),
    FN("Controller", "string", 0, "The object that owns the revision.", rev_controller),
    COL("Revision", "string", 0, "Revision number.", C_INT, "revision", NULL),
    AGE,
};

static const col podtemplate_cols[] = {
    NAME("Name of the pod template."),
    COL("Containers", "string", 0, "Names of each container in the template.", C_CONTAINERS, "template.spec", NULL),
    COL("Images", "string", 0, "Images of each container in the template.", C_IMAGES, "template.spec", NULL),
    COL("Pod Labels", "string", 0, "Labels of the template's pods.", C_LABELS, "template.metadata.labels", NULL),
};

/* An int-or-string value as text ("25%", "1"), N/A when absent. */
static json_t *int_or_string(const json_t *v)
{
    char out[64];
    if (json_is_integer(v))
        snprintf(out, sizeof out, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(out, sizeof out, "%s", json_string_value(v));
    else
        snprintf(out, sizeof out, "N/A");
    return str_cell(out);
}

static json_t *pdb_min(const json_t *o, int64_t now) { (void)now; return int_or_string(jget(o, "spec.minAvailable")); }
static json_t *pdb_max(const json_t *o, int64_t now) { (void)now; return int_or_string(jget(o, "spec.maxUnavailable")); }

static const col pdb_cols[] = {
    NAME("Name of the budget."),
    FN("Min Available", "string", 0, "Pods that must stay available.", pdb_min),
    FN("Max Unavailable", "string", 0, "Pods that may be unavailable.", pdb_max),
    COL("Allowed Disruptions", "integer", 0, "Disruptions allowed right now.", C_INT, "status.disruptionsAllowed", NULL),
    AGE,
};

/* ---- services and networking ---- */

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

static const char *svc_type_of(const json_t *o)
{
    return *jstr(o, "spec.type") ? jstr(o, "spec.type") : "ClusterIP";
}

static json_t *svc_type(const json_t *o, int64_t now) { (void)now; return str_cell(svc_type_of(o)); }

static json_t *svc_cluster_ip(const json_t *o, int64_t now)
{
    (void)now;
    const json_t *spec = json_object_get(o, "spec");
    const char *ip = json_string_value(json_array_get(json_object_get(spec, "clusterIPs"), 0));
    if (!ip || !*ip)
        ip = *jstr(spec, "clusterIP") ? jstr(spec, "clusterIP") : "<none>";
    return str_cell(ip);
}

static json_t *svc_external(const json_t *o, int64_t now)
{
    (void)now;
    const json_t *spec = json_object_get(o, "spec");
    const char *type = svc_type_of(o);
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
    return buf_cell(&ext);
}

static json_t *svc_ports(const json_t *o, int64_t now)
{
    (void)now;
    ck_buf ports;
    ck_buf_init(&ports, 0);
    size_t i;
    json_t *p;
    json_array_foreach(jget(o, "spec.ports"), i, p) {
        const char *proto = *jstr(p, "protocol") ? jstr(p, "protocol") : "TCP";
        if (jint(p, "nodePort") > 0)
            ck_buf_printf(&ports, "%s%lld:%lld/%s", i ? "," : "", (long long)jint(p, "port"), (long long)jint(p, "nodePort"), proto);
        else
            ck_buf_printf(&ports, "%s%lld/%s", i ? "," : "", (long long)jint(p, "port"), proto);
    }
    if (!ports.len)
        ck_buf_addstr(&ports, "<none>");
    return buf_cell(&ports);
}

static const col svc_cols[] = {
    NAME("Name of the service."),
    FN("Type", "string", 0, "How the service is exposed.", svc_type),
    FN("Cluster-IP", "string", 0, "The service's virtual IP inside the cluster.", svc_cluster_ip),
    FN("External-IP", "string", 0, "Addresses the service is reachable on from outside.", svc_external),
    FN("Port(s)", "string", 0, "Ports the service exposes (port[:nodePort]/protocol).", svc_ports),
    AGE,
    COL("Selector", "string", 1, "Labels of the pods the service routes to.", C_LABELS, "spec.selector", NULL),
};

static json_t *ep_endpoints(const json_t *o, int64_t now)
{
    (void)now;
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
    return buf_cell(&b);
}

static const col ep_cols[] = {
    NAME("Name of the endpoints."),
    FN("Endpoints", "string", 0, "Addresses (ip:port) behind the service.", ep_endpoints),
    AGE,
};

static void more_suffix(ck_buf *b, bool more, size_t count)
{
    if (more)
        ck_buf_printf(b, " + %zu more...", count - 3);
    if (!b->len)
        ck_buf_addstr(b, "<unset>");
}

static json_t *eps_ports(const json_t *o, int64_t now)
{
    (void)now;
    ck_buf ports;
    ck_buf_init(&ports, 0);
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
    return buf_cell(&ports);
}

static json_t *eps_endpoints(const json_t *o, int64_t now)
{
    (void)now;
    ck_buf eps;
    ck_buf_init(&eps, 0);
    size_t n = 0, count = 0, i;
    bool more = false;
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
    return buf_cell(&eps);
}

static const col eps_cols[] = {
    NAME("Name of the slice."),
    COL("AddressType", "string", 0, "IPv4, IPv6 or FQDN.", C_STR, "addressType", NULL),
    FN("Ports", "string", 0, "Ports of the slice.", eps_ports),
    FN("Endpoints", "string", 0, "Addresses in the slice.", eps_endpoints),
    AGE,
};

/* ---- cluster objects ---- */

static json_t *node_status(const json_t *o, int64_t now)
{
    (void)now;
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
    return buf_cell(&st);
}

/* node-role.kubernetes.io/<role> keys and the kubernetes.io/role value, sorted */
static json_t *node_roles(const json_t *o, int64_t now)
{
    (void)now;
    const json_t *labels = jget(o, "metadata.labels");
    const char *roles[32];
    size_t nr = 0, i;
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
    return buf_cell(&rb);
}

static json_t *node_address(const json_t *o, const char *type)
{
    size_t i;
    json_t *a;
    json_array_foreach(jget(o, "status.addresses"), i, a)
        if (!strcmp(jstr(a, "type"), type))
            return str_cell(jstr(a, "address"));
    return str_cell("<none>");
}

static json_t *node_internal(const json_t *o, int64_t now) { (void)now; return node_address(o, "InternalIP"); }
static json_t *node_external(const json_t *o, int64_t now) { (void)now; return node_address(o, "ExternalIP"); }

static const col node_cols[] = {
    NAME("Name of the node."),
    FN("Status", "string", 0, "Ready, NotReady or Unknown, and SchedulingDisabled.", node_status),
    FN("Roles", "string", 0, "Roles from node-role.kubernetes.io/ labels.", node_roles),
    AGE,
    COL("Version", "string", 0, "Kubelet version.", C_STR, "status.nodeInfo.kubeletVersion", NULL),
    FN("Internal-IP", "string", 1, "First internal address.", node_internal),
    FN("External-IP", "string", 1, "First external address.", node_external),
    COL("OS-Image", "string", 1, "Operating system image.", C_STR_NONEMPTY, "status.nodeInfo.osImage", "<unknown>"),
    COL("Kernel-Version", "string", 1, "Kernel version.", C_STR_NONEMPTY, "status.nodeInfo.kernelVersion", "<unknown>"),
    COL("Container-Runtime", "string", 1, "Container runtime and version.", C_STR_NONEMPTY,
        "status.nodeInfo.containerRuntimeVersion", "<unknown>"),
};

static const col ns_cols[] = {
    NAME("Name of the namespace."),
    COL("Status", "string", 0, "Active or Terminating.", C_STR, "status.phase", NULL),
    AGE,
};

static json_t *cm_data(const json_t *o, int64_t now)
{
    (void)now;
    return json_integer((json_int_t)(jsize(o, "data") + jsize(o, "binaryData")));
}

static const col cm_cols[] = {
    NAME("Name of the config map."),
    FN("Data", "string", 0, "Number of keys.", cm_data),
    AGE,
};

static const col secret_cols[] = {
    NAME("Name of the secret."),
    COL("Type", "string", 0, "Type of the secret.", C_STR, "type", NULL),
    COL("Data", "string", 0, "Number of keys.", C_LEN, "data", NULL),
    AGE,
};

static const col sa_cols[] = {
    NAME("Name of the service account."),
    COL("Secrets", "string", 0, "Number of secrets listed.", C_LEN, "secrets", NULL),
    AGE,
};

/* Events: core/v1 (involvedObject, firstTimestamp...) and events.k8s.io/v1 (regarding, note,
 * deprecated* names) share the columns. */
static bool ev_core(const json_t *o) { return jget(o, "involvedObject") || !jget(o, "regarding"); }
static const json_t *ev_object(const json_t *o) { return jget(o, ev_core(o) ? "involvedObject" : "regarding"); }

static void ev_first(const json_t *o, int64_t now, char out[32])
{
    const char *first_ts = jstr(o, ev_core(o) ? "firstTimestamp" : "deprecatedFirstTimestamp");
    since(*first_ts ? first_ts : jstr(o, "eventTime"), now, out);
}

static json_t *ev_first_seen(const json_t *o, int64_t now)
{
    char first[32];
    ev_first(o, now, first);
    return str_cell(first);
}

static json_t *ev_last_seen(const json_t *o, int64_t now)
{
    const char *last_ts = jstr(o, ev_core(o) ? "lastTimestamp" : "deprecatedLastTimestamp");
    char last[32];
    if (jget(o, "series"))
        since(jstr(o, "series.lastObservedTime"), now, last);
    else if (*last_ts)
        since(last_ts, now, last);
    else
        ev_first(o, now, last);
    return str_cell(last);
}

static json_t *ev_count(const json_t *o, int64_t now)
{
    (void)now;
    json_int_t count = jint(o, ev_core(o) ? "count" : "deprecatedCount");
    if (jget(o, "series"))
        count = jint(o, "series.count");
    else if (!count)
        count = 1;
    return json_integer(count);
}

static json_t *ev_target(const json_t *o, int64_t now)
{
    (void)now;
    const json_t *obj = ev_object(o);
    char target[320], kind[96];
    snprintf(kind, sizeof kind, "%s", jstr(obj, "kind"));
    for (char *p = kind; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (*jstr(obj, "name"))
        snprintf(target, sizeof target, "%s/%s", kind, jstr(obj, "name"));
    else
        snprintf(target, sizeof target, "%s", kind);
    return str_cell(target);
}

static json_t *ev_subobject(const json_t *o, int64_t now) { (void)now; return str_cell(jstr(ev_object(o), "fieldPath")); }

static json_t *ev_source(const json_t *o, int64_t now)
{
    (void)now;
    bool v1 = ev_core(o);
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
    return str_cell(source);
}

/* the message with surrounding whitespace trimmed */
static json_t *ev_message(const json_t *o, int64_t now)
{
    (void)now;
    const char *msg = jstr(o, ev_core(o) ? "message" : "note");
    while (isspace((unsigned char)*msg))
        msg++;
    size_t ml = strlen(msg);
    while (ml && isspace((unsigned char)msg[ml - 1]))
        ml--;
    return json_stringn(msg, ml);
}

static const col event_cols[] = {
    FN("Last Seen", "string", 0, "Time since the event was last seen.", ev_last_seen),
    COL("Type", "string", 0, "Normal or Warning.", C_STR, "type", NULL),
    COL("Reason", "string", 0, "Short machine-readable cause.", C_STR, "reason", NULL),
    FN("Object", "string", 0, "The object the event is about.", ev_target),
    FN("Subobject", "string", 1, "Field path inside the object.", ev_subobject),
    FN("Source", "string", 1, "Component that reported the event.", ev_source),
    FN("Message", "string", 0, "Human-readable description.", ev_message),
    FN("First Seen", "string", 1, "Time since the event was first seen.", ev_first_seen),
    FN("Count", "string", 1, "How many times it happened.", ev_count),
    {"Name", "string", "name", 1, "Name of the event.", C_NAME, NULL, NULL, NULL, 0},
};

static const col lease_cols[] = {
    NAME("Name of the lease."),
    COL("Holder", "string", 0, "Current holder of the lease.", C_STR, "spec.holderIdentity", NULL),
    AGE,
};

/* ---- storage ---- */

/* Access modes abbreviated in upstream's fixed order. */
static json_t *access_modes(const json_t *arr)
{
    static const char *const modes[][2] = {
        {"ReadWriteOnce", "RWO"}, {"ReadOnlyMany", "ROX"}, {"ReadWriteMany", "RWX"}, {"ReadWriteOncePod", "RWOP"}};
    ck_buf b;
    ck_buf_init(&b, 0);
    for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
            if (json_string_value(v) && !strcmp(json_string_value(v), modes[m][0])) {
                ck_buf_printf(&b, "%s%s", b.len ? "," : "", modes[m][1]);
                break;
            }
    }
    return buf_cell(&b);
}

/* The beta annotation wins over the field, as upstream's helpers read it. */
static json_t *storage_class(const json_t *o, int64_t now)
{
    (void)now;
    const json_t *ann = jget(o, "metadata.annotations");
    const char *s = json_string_value(json_object_get(ann, "volume.beta.kubernetes.io/storage-class"));
    return str_cell(s ? s : jstr(o, "spec.storageClassName"));
}

/* PV and PVC phase, Terminating while being deleted */
static json_t *volume_phase(const json_t *o, int64_t now)
{
    (void)now;
    return str_cell(jget(o, "metadata.deletionTimestamp") ? "Terminating" : jstr(o, "status.phase"));
}

static json_t *pv_modes(const json_t *o, int64_t now) { (void)now; return access_modes(jget(o, "spec.accessModes")); }

static json_t *pv_claim(const json_t *o, int64_t now)
{
    (void)now;
    char claim[320] = "";
    if (jget(o, "spec.claimRef"))
        snprintf(claim, sizeof claim, "%s/%s", jstr(o, "spec.claimRef.namespace"), jstr(o, "spec.claimRef.name"));
    return str_cell(claim);
}

#define VAC_COL COL("VolumeAttributesClass", "string", 0, "Volume attributes class.", C_STR_SET, "spec.volumeAttributesClassName", "<unset>")
#define VOLUME_MODE_COL COL("VolumeMode", "string", 1, "Filesystem or Block.", C_STR_SET, "spec.volumeMode", "<unset>")

static const col pv_cols[] = {
    NAME("Name of the volume."),
    COL("Capacity", "string", 0, "Storage capacity.", C_STR, "spec.capacity.storage", NULL),
    FN("Access Modes", "string", 0, "How the volume can be mounted.", pv_modes),
    COL("Reclaim Policy", "string", 0, "What happens on release.", C_STR, "spec.persistentVolumeReclaimPolicy", NULL),
    FN("Status", "string", 0, "Phase of the volume.", volume_phase),
    FN("Claim", "string", 0, "The claim bound to the volume.", pv_claim),
    FN("StorageClass", "string", 0, "Storage class of the volume.", storage_class),
    VAC_COL,
    COL("Reason", "string", 0, "Why the volume is in its phase.", C_STR, "status.reason", NULL),
    AGE,
    VOLUME_MODE_COL,
};

/* capacity and access modes of a claim show once it is bound */
static json_t *pvc_capacity(const json_t *o, int64_t now)
{
    (void)now;
    return str_cell(*jstr(o, "spec.volumeName") ? jstr(o, "status.capacity.storage") : "");
}

static json_t *pvc_modes(const json_t *o, int64_t now)
{
    (void)now;
    return *jstr(o, "spec.volumeName") ? access_modes(jget(o, "status.accessModes")) : str_cell("");
}

static const col pvc_cols[] = {
    NAME("Name of the claim."),
    FN("Status", "string", 0, "Phase of the claim.", volume_phase),
    COL("Volume", "string", 0, "The volume bound to the claim.", C_STR, "spec.volumeName", NULL),
    FN("Capacity", "string", 0, "Capacity of the bound volume.", pvc_capacity),
    FN("Access Modes", "string", 0, "Access modes of the bound volume.", pvc_modes),
    FN("StorageClass", "string", 0, "Storage class of the claim.", storage_class),
    VAC_COL,
    AGE,
    VOLUME_MODE_COL,
};

static json_t *sc_name(const json_t *o, int64_t now)
{
    (void)now;
    const json_t *ann = jget(o, "metadata.annotations");
    const char *def = json_string_value(json_object_get(ann, "storageclass.kubernetes.io/is-default-class"));
    if (!def)
        def = json_string_value(json_object_get(ann, "storageclass.beta.kubernetes.io/is-default-class"));
    char name[300];
    snprintf(name, sizeof name, "%s%s", jstr(o, "metadata.name"), def && !strcmp(def, "true") ? " (default)" : "");
    return str_cell(name);
}

static const col sc_cols[] = {
    {"Name", "string", "name", 0, "Name of the class; (default) marks the default class.", C_FN, NULL, NULL, sc_name, 0},
    COL("Provisioner", "string", 0, "Volume plugin that provisions volumes.", C_STR, "provisioner", NULL),
    COL("ReclaimPolicy", "string", 0, "Reclaim policy of provisioned volumes.", C_STR_NONEMPTY, "reclaimPolicy", "Delete"),
    COL("VolumeBindingMode", "string", 0, "When volumes are bound.", C_STR_NONEMPTY, "volumeBindingMode", "Immediate"),
    COL("AllowVolumeExpansion", "string", 0, "Whether volumes may be expanded.", C_BOOL, "allowVolumeExpansion", NULL),
    AGE,
};

/* ---- policy, scheduling, rbac ---- */

static const col pc_cols[] = {
    NAME("Name of the priority class."),
    COL("Value", "integer", 0, "Priority value.", C_INT, "value", NULL),
    COL("Global-Default", "boolean", 0, "Whether pods without a class get this one.", C_BOOL, "globalDefault", NULL),
    AGE,
    COL("PreemptionPolicy", "string", 0, "Whether these pods may preempt others.", C_STR, "preemptionPolicy", NULL),
};

static json_t *rb_role(const json_t *o, int64_t now)
{
    (void)now;
    char role[300];
    snprintf(role, sizeof role, "%s/%s", jstr(o, "roleRef.kind"), jstr(o, "roleRef.name"));
    return str_cell(role);
}

/* the subjects of one kind, ", "-joined (service accounts as namespace/name) */
static json_t *subjects(const json_t *o, const char *kind)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    bool sa = !strcmp(kind, "ServiceAccount");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(o, "subjects"), i, s) {
        if (strcmp(jstr(s, "kind"), kind))
            continue;
        if (sa)
            ck_buf_printf(&b, "%s%s/%s", b.len ? ", " : "", jstr(s, "namespace"), jstr(s, "name"));
        else
            ck_buf_printf(&b, "%s%s", b.len ? ", " : "", jstr(s, "name"));
    }
    return buf_cell(&b);
}

static json_t *rb_users(const json_t *o, int64_t now) { (void)now; return subjects(o, "User"); }
static json_t *rb_groups(const json_t *o, int64_t now) { (void)now; return subjects(o, "Group"); }
static json_t *rb_sas(const json_t *o, int64_t now) { (void)now; return subjects(o, "ServiceAccount"); }

static const col rb_cols[] = {
    NAME("Name of the binding."),
    FN("Role", "string", 0, "The role granted.", rb_role),
    AGE,
    FN("Users", "string", 1, "Users bound.", rb_users),
    FN("Groups", "string", 1, "Groups bound.", rb_groups),
    FN("ServiceAccounts", "string", 1, "Service accounts bound (namespace/name).", rb_sas),
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

/* "key: used/hard, ..." over status.hard (the enforced limits, as upstream prints), sorted,
 * for the limits.* keys or for the others */
static json_t *rq_usage(const json_t *o, bool limits)
{
    const json_t *hard = jget(o, "status.hard");
    size_t n = json_is_object(hard) ? json_object_size(hard) : 0, i = 0;
    const char **keys = xcalloc(n + 1, sizeof *keys);
    const char *k;
    json_t *v;
    if (n)
        json_object_foreach((json_t *)hard, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    ck_buf b;
    ck_buf_init(&b, 0);
    for (i = 0; i < n; i++) {
        if (!strncmp(keys[i], "limits.", 7) != limits)
            continue;
        char used[64], h[64];
        quantity_text(json_object_get(jget(o, "status.used"), keys[i]), used, sizeof used);
        quantity_text(json_object_get(hard, keys[i]), h, sizeof h);
        ck_buf_printf(&b, "%s%s: %s/%s", b.len ? ", " : "", keys[i], used, h);
    }
    free(keys);
    return buf_cell(&b);
}

static json_t *rq_request(const json_t *o, int64_t now) { (void)now; return rq_usage(o, false); }
static json_t *rq_limit(const json_t *o, int64_t now) { (void)now; return rq_usage(o, true); }

static const col rq_cols[] = {
    NAME("Name of the quota."),
    FN("Request", "string", 0, "Used/hard of the request (non-limit) resources.", rq_request),
    FN("Limit", "string", 0, "Used/hard of the limits.* resources.", rq_limit),
    AGE,
};

/* [status, message, error] of the Healthy condition */
static json_t *cs_row(const json_t *o, int64_t now)
{
    (void)now;
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
    json_t *row = json_array();
    json_array_append_new(row, str_cell(status));
    json_array_append_new(row, str_cell(msg));
    json_array_append_new(row, str_cell(err));
    return row;
}

static const col cs_cols[] = {
    NAME("Name of the component."),
    ROW("Status", 0, "Healthy or Unhealthy.", 0),
    ROW("Message", 0, "Message of the health condition.", 1),
    ROW("Error", 0, "Error of the health condition.", 2),
};

/* Upstream's default table for kinds without a printer. */
static const col default_cols[] = {
    NAME("Name of the object."),
    {"Created At", "date", "", 0, "When the object was created.", C_STR, "metadata.creationTimestamp", NULL, NULL, 0},
};

/* ---- dispatch ---- */

#define P(kind, cols, row) {kind, cols, ARRAY_SIZE(cols), row}
static const struct printer {
    const char *kind;
    const col *cols;
    size_t ncols;
    cell_fn row;      /* NULL, or the cells several C_ROW columns share, as an array */
} printers[] = {
    P("Pod", pod_cols, pod_row),
    P("Deployment", deploy_cols, NULL),
    P("ReplicaSet", rs_cols, NULL),
    P("ReplicationController", rc_cols, NULL),
    P("StatefulSet", sts_cols, NULL),
    P("DaemonSet", ds_cols, NULL),
    P("Job", job_cols, NULL),
    P("CronJob", cj_cols, NULL),
    P("ControllerRevision", rev_cols, NULL),
    P("PodTemplate", podtemplate_cols, NULL),
    P("PodDisruptionBudget", pdb_cols, NULL),
    P("Service", svc_cols, NULL),
    P("Endpoints", ep_cols, NULL),
    P("EndpointSlice", eps_cols, NULL),
    P("Node", node_cols, NULL),
    P("Namespace", ns_cols, NULL),
    P("ConfigMap", cm_cols, NULL),
    P("Secret", secret_cols, NULL),
    P("ServiceAccount", sa_cols, NULL),
    P("Event", event_cols, NULL),
    P("Lease", lease_cols, NULL),
    P("PersistentVolume", pv_cols, NULL),
    P("PersistentVolumeClaim", pvc_cols, NULL),
    P("StorageClass", sc_cols, NULL),
    P("PriorityClass", pc_cols, NULL),
    P("RoleBinding", rb_cols, NULL),
    P("ClusterRoleBinding", rb_cols, NULL),
    P("ResourceQuota", rq_cols, NULL),
    P("ComponentStatus", cs_cols, cs_row),
};

static const struct printer default_printer = P("", default_cols, NULL);

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
    const struct printer *p = printer_for(r);
    json_t *row = p->row ? p->row(obj, now_sec) : NULL;
    json_t *cells = json_array();
    for (size_t i = 0; i < p->ncols; i++)
        json_array_append_new(cells, cell_of(&p->cols[i], obj, now_sec, row));
    json_decref(row);
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

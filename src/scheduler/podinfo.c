/* podinfo.c - turn Pod and Node JSON into the scheduler's compiled structs once, when the informer
 * delivers them, so that filters and scores never parse JSON on the hot path.
 *
 * Requests follow upstream's effective-request rule: max(sum of containers + restartable init
 * containers, the largest init container step) + pod overhead; a container without requests but
 * with limits requests its limits (the API server's defaulting).  Nodes that are not Ready get the
 * taint the node lifecycle controller would add (node.kubernetes.io/not-ready or unreachable,
 * NoSchedule), so the taint filter and its tolerations decide, as upstream.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/quantity.h"
#include "lib/util.h"
#include "scheduler/sched.h"

#define NZ_CPU 100                       /* upstream's DefaultMilliCPURequest */
#define NZ_MEM (200LL * 1024 * 1024)     /* DefaultMemoryRequest */

/* ---- interning: equal label sets (with namespace) and equal affinity terms (with owner
 * namespace) share an id, so a cycle decides "does term T match labels L" once per distinct pair
 * instead of once per pod.  Reference counted; ids are reused, so they stay below the number of
 * distinct live keys. ---- */
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static sc_map *intern_map;
static int *intern_refs;
static char **intern_keys;
static int intern_n, intern_cap, *intern_free, intern_nfree;
static json_t **intern_vals;    /* intern_json: the first value seen, shared by every user */

static int intern(const char *key)
{
    pthread_mutex_lock(&intern_lock);
    if (!intern_map)
        intern_map = sc_map_new();
    intptr_t v = (intptr_t)sc_map_get(intern_map, key);
    int id;
    if (v) {
        id = (int)v - 1;
    } else {
        if (intern_nfree) {
            id = intern_free[--intern_nfree];
        } else {
            if (intern_n == intern_cap) {
                intern_cap = intern_cap ? intern_cap * 2 : 256;
                intern_refs = xrealloc(intern_refs, (size_t)intern_cap * sizeof *intern_refs);
                intern_keys = xrealloc(intern_keys, (size_t)intern_cap * sizeof *intern_keys);
                intern_free = xrealloc(intern_free, (size_t)intern_cap * sizeof *intern_free);
                intern_vals = xrealloc(intern_vals, (size_t)intern_cap * sizeof *intern_vals);
            }
            id = intern_n++;
        }
        intern_refs[id] = 0;
        intern_vals[id] = NULL;
        intern_keys[id] = xstrdup(key);
        sc_map_put(intern_map, key, (void *)(intptr_t)(id + 1));
    }
    intern_refs[id]++;
    pthread_mutex_unlock(&intern_lock);
    return id;
}

static void unintern(int id)
{
    if (id < 0)
        return;
    pthread_mutex_lock(&intern_lock);
    if (--intern_refs[id] == 0) {
        sc_map_del(intern_map, intern_keys[id]);
        free(intern_keys[id]);
        intern_keys[id] = NULL;
        json_decref(intern_vals[id]);
        intern_vals[id] = NULL;
        intern_free[intern_nfree++] = id;
    }
    pthread_mutex_unlock(&intern_lock);
}

int sc_intern_bound(void)
{
    pthread_mutex_lock(&intern_lock);
    int n = intern_n;
    pthread_mutex_unlock(&intern_lock);
    return n;
}

static int intern_json(const char *prefix, const json_t *j)
{
    char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *key = xasprintf("%s\x1e%s", prefix, text ? text : "null");
    free(text);
    int id = intern(key);
    free(key);
    return id;
}

/* The label set interned as id, shared (a NEW reference): equal labels are one tree, not one
 * per pod (10,000 pods of a ReplicaSet carry the same labels). */
static json_t *intern_labels(int id, json_t *labels)
{
    if (id < 0 || !labels)
        return json_incref(labels);
    pthread_mutex_lock(&intern_lock);
    if (!intern_vals[id])
        intern_vals[id] = json_incref(labels);
    json_t *v = json_incref(intern_vals[id]);
    pthread_mutex_unlock(&intern_lock);
    return v;
}

static pthread_mutex_t scalar_lock = PTHREAD_MUTEX_INITIALIZER;
static char *scalar_names[SC_MAX_SCALARS];

int sc_scalar_index(const char *name, bool create)
{
    pthread_mutex_lock(&scalar_lock);
    int found = -1;
    for (int i = 0; i < SC_MAX_SCALARS; i++) {
        if (!scalar_names[i]) {
            if (create) {
                scalar_names[i] = xstrdup(name);
                found = i;
            }
            break;
        }
        if (!strcmp(scalar_names[i], name)) {
            found = i;
            break;
        }
    }
    pthread_mutex_unlock(&scalar_lock);
    return found;
}

const char *sc_scalar_name(int i)
{
    pthread_mutex_lock(&scalar_lock);
    const char *n = i >= 0 && i < SC_MAX_SCALARS ? scalar_names[i] : NULL;
    pthread_mutex_unlock(&scalar_lock);
    return n ? n : "";
}

void sc_res_add(sc_res *a, const sc_res *b, int sign)
{
    a->cpu += sign * b->cpu;
    a->mem += sign * b->mem;
    a->storage += sign * b->storage;
    a->pods += sign * b->pods;
    for (int i = 0; i < SC_MAX_SCALARS; i++)
        a->scalar[i] += sign * b->scalar[i];
}

static void res_max(sc_res *a, const sc_res *b)
{
#define M(f) if (b->f > a->f) a->f = b->f
    M(cpu); M(mem); M(storage); M(pods);
    for (int i = 0; i < SC_MAX_SCALARS; i++)
        M(scalar[i]);
#undef M
}

/* A ResourceList object into r (adds). */
static void parse_list(const json_t *list, sc_res *r)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)list, name, v) {
        const char *s = json_string_value(v);
        char num[32];
        if (!s && json_is_integer(v)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            s = num;
        }
        if (!s)
            continue;
        int64_t q = 0;
        if (!strcmp(name, "cpu")) {
            if (ck_quantity_parse_milli(s, &q) == 0)
                r->cpu += q;
        } else if (ck_quantity_parse(s, &q) < 0) {
            continue;
        } else if (!strcmp(name, "memory")) {
            r->mem += q;
        } else if (!strcmp(name, "ephemeral-storage")) {
            r->storage += q;
        } else if (!strcmp(name, "pods")) {
            r->pods += q;
        } else if (strcmp(name, "storage")) {
            int i = sc_scalar_index(name, true);
            if (i >= 0)
                r->scalar[i] += q;
        }
    }
}

/* One container's requests (limits stand in where requests are missing). */
static void container_req(const json_t *c, sc_res *r, int64_t *nz_cpu, int64_t *nz_mem)
{
    memset(r, 0, sizeof *r);
    json_t *res = json_object_get(c, "resources");
    json_t *req = json_object_get(res, "requests"), *lim = json_object_get(res, "limits");
    parse_list(req, r);
    if (lim) {
        sc_res l = {0};
        parse_list(lim, &l);
        const char *name;
        json_t *v;
        json_object_foreach(lim, name, v) {
            if (json_object_get(req, name))
                continue;
            if (!strcmp(name, "cpu"))
                r->cpu = l.cpu;
            else if (!strcmp(name, "memory"))
                r->mem = l.mem;
            else if (!strcmp(name, "ephemeral-storage"))
                r->storage = l.storage;
            else {
                int i = sc_scalar_index(name, false);
                if (i >= 0)
                    r->scalar[i] = l.scalar[i];
            }
        }
    }
    if (nz_cpu)
        *nz_cpu = r->cpu ? r->cpu : NZ_CPU;
    if (nz_mem)
        *nz_mem = r->mem ? r->mem : NZ_MEM;
}

static void compute_requests(sc_pod *p, const json_t *spec)
{
    sc_res sum = {0}, sidecars = {0}, init_max = {0};
    size_t i;
    json_t *c;
    p->nz_cpu = p->nz_mem = 0;
    json_array_foreach(json_object_get(spec, "containers"), i, c) {
        sc_res r;
        int64_t nc, nm;
        container_req(c, &r, &nc, &nm);
        sc_res_add(&sum, &r, 1);
        p->nz_cpu += nc;
        p->nz_mem += nm;
    }
    json_array_foreach(json_object_get(spec, "initContainers"), i, c) {
        sc_res r;
        container_req(c, &r, NULL, NULL);
        const char *rp = json_string_value(json_object_get(c, "restartPolicy"));
        if (rp && !strcmp(rp, "Always")) {
            sc_res_add(&sidecars, &r, 1);
            res_max(&init_max, &sidecars);
        } else {
            sc_res step = sidecars;
            sc_res_add(&step, &r, 1);
            res_max(&init_max, &step);
        }
    }
    sc_res_add(&sum, &sidecars, 1);
    res_max(&sum, &init_max);
    parse_list(json_object_get(spec, "overhead"), &sum);
    sum.pods = 0;
    p->req = sum;
    p->has_scalars = false;
    for (int k = 0; k < SC_MAX_SCALARS; k++)
        p->has_scalars |= sum.scalar[k] > 0;
}

static char *dup_or_null(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && *s ? xstrdup(s) : NULL;
}

static int parse_terms(const json_t *arr, bool weighted, sc_term **out, int *n, const char *ns,
                       ck_error **err)
{
    size_t cnt = json_array_size(arr);
    *n = 0;
    *out = NULL;
    if (!cnt)
        return 0;
    *out = xcalloc(cnt, sizeof(sc_term));
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        const json_t *term = weighted ? json_object_get(t, "podAffinityTerm") : t;
        sc_term *st = &(*out)[(*n)++];
        st->id = -1;
        st->weight = weighted ? (int)json_integer_value(json_object_get(t, "weight")) : 1;
        st->topology_key = xstrdup(json_string_value(json_object_get(term, "topologyKey")) ?: "");
        st->sel = ck_label_selector_from_json(json_object_get(term, "labelSelector"), err);
        if (!st->sel)
            return ck_error_wrap(err, "pod affinity term %zu", i);
        st->id = intern_json(ns, term);
        json_t *nss = json_object_get(term, "namespaces");
        json_t *nsel = json_object_get(term, "namespaceSelector");
        if (json_is_object(nsel) && json_object_size(nsel) == 0)
            st->all_ns = true;
        st->nns = (int)json_array_size(nss);
        if (st->nns) {
            st->namespaces = xcalloc((size_t)st->nns, sizeof(char *));
            for (int k = 0; k < st->nns; k++)
                st->namespaces[k] = xstrdup(json_string_value(json_array_get(nss, (size_t)k)) ?: "");
        } else if (json_is_object(nsel) && json_object_size(nsel) > 0) {
            /* a non-empty namespaceSelector needs Namespace labels, which we do not watch:
             * it selects no further namespaces (documented limit) */
            st->nns = -1;
        }
    }
    return 0;
}

static void free_terms(sc_term *t, int n)
{
    for (int i = 0; i < n; i++) {
        ck_selector_free(t[i].sel);
        unintern(t[i].id);
        free(t[i].topology_key);
        for (int k = 0; k < t[i].nns; k++)
            free(t[i].namespaces[k]);
        free(t[i].namespaces);
    }
    free(t);
}

bool sc_term_matches(const sc_term *t, const sc_pod *owner, const sc_pod *other)
{
    if (!t->all_ns) {
        if (t->nns > 0) {
            bool in = false;
            for (int k = 0; k < t->nns && !in; k++)
                in = !strcmp(t->namespaces[k], other->ns);
            if (!in)
                return false;
        } else if (t->nns < 0 || strcmp(owner->ns, other->ns)) {
            return false;
        }
    }
    return ck_label_selector_matches(t->sel, other->labels);
}

static void parse_node_terms(const json_t *arr, bool weighted, sc_node_term **out, int *n)
{
    size_t cnt = json_array_size(arr);
    *n = 0;
    *out = cnt ? xcalloc(cnt, sizeof(sc_node_term)) : NULL;
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        const json_t *term = weighted ? json_object_get(t, "preference") : t;
        sc_node_term *nt = &(*out)[(*n)++];
        nt->exprs = json_object_get(term, "matchExpressions");
        nt->fields = json_object_get(term, "matchFields");
        nt->weight = weighted ? (int)json_integer_value(json_object_get(t, "weight")) : 0;
    }
}

sc_pod *sc_pod_new(json_t *obj, ck_error **err)
{
    sc_pod *p = xcalloc(1, sizeof *p);
    p->lset = -1;
    p->obj = json_incref(obj);
    json_t *md = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    p->ns = xstrdup(ns ? ns : "default");
    p->name = xstrdup(name ? name : "");
    p->key = xasprintf("%s/%s", p->ns, p->name);
    p->uid = xstrdup(json_string_value(json_object_get(md, "uid")) ?: "");
    p->labels = json_object_get(md, "labels");
    p->lset = intern_json(p->ns, p->labels);
    p->terminating = json_object_get(md, "deletionTimestamp") != NULL;
    const char *phase = json_string_value(json_object_get(json_object_get(obj, "status"), "phase"));
    p->terminal = phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
    p->node = dup_or_null(json_object_get(spec, "nodeName"));
    const char *sn = json_string_value(json_object_get(spec, "schedulerName"));
    p->scheduler_name = xstrdup(sn && *sn ? sn : "default-scheduler");
    compute_requests(p, spec);
    json_t *prio = json_object_get(spec, "priority");
    p->priority = json_is_integer(prio) ? (int32_t)json_integer_value(prio) : 0;
    const char *pp = json_string_value(json_object_get(spec, "preemptionPolicy"));
    p->preempt_never = pp && !strcmp(pp, "Never");

    json_t *tols = json_object_get(spec, "tolerations");
    p->ntols = 0;
    p->tols = json_array_size(tols) ? xcalloc(json_array_size(tols), sizeof(sc_toleration)) : NULL;
    size_t i;
    json_t *t;
    json_array_foreach(tols, i, t) {
        sc_toleration *st = &p->tols[p->ntols++];
        st->key = dup_or_null(json_object_get(t, "key"));
        st->value = dup_or_null(json_object_get(t, "value"));
        st->effect = dup_or_null(json_object_get(t, "effect"));
        const char *op = json_string_value(json_object_get(t, "operator"));
        st->exists = op && !strcmp(op, "Exists");
    }

    size_t nports = 0, k;
    json_t *c, *port;
    json_array_foreach(json_object_get(spec, "containers"), i, c)
        json_array_foreach(json_object_get(c, "ports"), k, port)
            if (json_integer_value(json_object_get(port, "hostPort")) > 0)
                nports++;
    p->ports = nports ? xcalloc(nports, sizeof(sc_port)) : NULL;
    json_array_foreach(json_object_get(spec, "containers"), i, c) {
        json_array_foreach(json_object_get(c, "ports"), k, port) {
            int hp = (int)json_integer_value(json_object_get(port, "hostPort"));
            if (hp <= 0)
                continue;
            sc_port *sp = &p->ports[p->nports++];
            sp->port = hp;
            snprintf(sp->proto, sizeof sp->proto, "%s",
                     json_string_value(json_object_get(port, "protocol")) ?: "TCP");
            const char *ip = json_string_value(json_object_get(port, "hostIP"));
            snprintf(sp->ip, sizeof sp->ip, "%s", ip && strcmp(ip, "0.0.0.0") ? ip : "");
        }
    }

    p->node_selector = json_object_get(spec, "nodeSelector");
    json_t *aff = json_object_get(spec, "affinity");
    json_t *na = json_object_get(aff, "nodeAffinity");
    json_t *req = json_object_get(na, "requiredDuringSchedulingIgnoredDuringExecution");
    if (req) {
        p->has_node_req = true;
        parse_node_terms(json_object_get(req, "nodeSelectorTerms"), false, &p->node_req, &p->nnode_req);
    }
    parse_node_terms(json_object_get(na, "preferredDuringSchedulingIgnoredDuringExecution"), true,
                     &p->node_pref, &p->nnode_pref);
    json_t *pa = json_object_get(aff, "podAffinity"), *paa = json_object_get(aff, "podAntiAffinity");
    const char *R = "requiredDuringSchedulingIgnoredDuringExecution";
    const char *P = "preferredDuringSchedulingIgnoredDuringExecution";
    if (parse_terms(json_object_get(pa, R), false, &p->aff, &p->naff, p->ns, err) < 0 ||
        parse_terms(json_object_get(paa, R), false, &p->anti, &p->nanti, p->ns, err) < 0 ||
        parse_terms(json_object_get(pa, P), true, &p->aff_pref, &p->naff_pref, p->ns, err) < 0 ||
        parse_terms(json_object_get(paa, P), true, &p->anti_pref, &p->nanti_pref, p->ns, err) < 0)
        goto fail;

    json_t *tsc = json_object_get(spec, "topologySpreadConstraints");
    p->spread = json_array_size(tsc) ? xcalloc(json_array_size(tsc), sizeof(sc_spread)) : NULL;
    json_array_foreach(tsc, i, t) {
        sc_spread *s = &p->spread[p->nspread++];
        s->max_skew = (int)json_integer_value(json_object_get(t, "maxSkew"));
        if (s->max_skew < 1)
            s->max_skew = 1;
        s->min_domains = (int)json_integer_value(json_object_get(t, "minDomains"));
        s->topology_key = xstrdup(json_string_value(json_object_get(t, "topologyKey")) ?: "");
        const char *wu = json_string_value(json_object_get(t, "whenUnsatisfiable"));
        s->hard = !wu || strcmp(wu, "ScheduleAnyway");
        s->sel = ck_label_selector_from_json(json_object_get(t, "labelSelector"), err);
        if (!s->sel) {
            ck_error_wrap(err, "topology spread constraint %zu", i);
            goto fail;
        }
    }
    return p;
fail:
    ck_error_wrap(err, "pod %s", p->key);
    sc_pod_free(p);
    return NULL;
}

void sc_pod_slim(sc_pod *p)
{
    if (!p->obj && !p->text)
        return;
    sc_pod_share_labels(p);
    p->node_selector = NULL;
    free(p->node_req);
    free(p->node_pref);
    p->node_req = p->node_pref = NULL;
    p->nnode_req = p->nnode_pref = 0;
    p->has_node_req = false;
    json_decref(p->obj);
    p->obj = NULL;
    free(p->text);
    p->text = NULL;
    /* only the incoming pod's tolerations, spread constraints and scheduler name are read */
    for (int i = 0; i < p->ntols; i++) {
        free(p->tols[i].key);
        free(p->tols[i].value);
        free(p->tols[i].effect);
    }
    free(p->tols);
    p->tols = NULL;
    p->ntols = 0;
    for (int i = 0; i < p->nspread; i++) {
        free(p->spread[i].topology_key);
        ck_selector_free(p->spread[i].sel);
    }
    free(p->spread);
    p->spread = NULL;
    p->nspread = 0;
    free(p->scheduler_name);
    p->scheduler_name = NULL;
}

void sc_pod_compact(sc_pod *p)
{
    if (!p->obj || p->text)
        return;
    p->text = json_dumps(p->obj, JSON_COMPACT);
    sc_pod_share_labels(p);
    json_t *spec = json_object_get(p->obj, "spec"), *status = json_object_get(p->obj, "status");
    /* the same subtrees (increfs, not copies): every pointer the compiled fields borrow stays;
     * a pod with none of these (the common case) keeps no tree at all */
    json_t *small = NULL;
    static const char *const keys[][2] = {
        {"spec", "nodeSelector"}, {"spec", "affinity"},
        {"status", "conditions"}, {"status", "nominatedNodeName"}};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        json_t *v = json_object_get(keys[i][0][1] == 'p' ? spec : status, keys[i][1]);
        if (!v)
            continue;
        if (!small)
            small = json_object();
        json_t *parent = json_object_get(small, keys[i][0]);
        if (!parent)
            json_object_set_new(small, keys[i][0], parent = json_object());
        json_object_set(parent, keys[i][1], v);
    }
    json_decref(p->obj);
    p->obj = small;
}

void sc_pod_share_labels(sc_pod *p)
{
    json_t *shared = intern_labels(p->lset, p->labels);
    if (p->labels_owned)
        json_decref(p->labels);
    p->labels = shared;
    p->labels_owned = true;
}

json_t *sc_pod_object(const sc_pod *p)
{
    if (!p->text)
        return json_incref(p->obj);
    json_t *o = json_loads(p->text, 0, NULL);
    return o ? o : json_incref(p->obj);
}

void sc_pod_resolve_priority(sc_pod *p, sc_priority_lookup lookup, void *ctx)
{
    if (!lookup || p->text)         /* compact: resolved before, and spec is text now */
        return;
    json_t *spec = json_object_get(p->obj, "spec");
    const char *cls = json_string_value(json_object_get(spec, "priorityClassName"));
    bool named = cls && *cls;
    /* A named class decides (the Priority admission plugin's job, which an API server may lack:
     * ours defaults spec.priority to 0 without looking at the class); otherwise spec.priority,
     * else the globalDefault class. */
    if (!named && json_is_integer(json_object_get(spec, "priority")))
        return;
    int32_t v = 0;
    bool never = false;
    if (lookup(ctx, named ? cls : NULL, &v, &never) == 0) {
        p->priority = v;
        p->preempt_never = never;
    }
}

void sc_pod_free(sc_pod *p)
{
    if (!p)
        return;
    free(p->key);
    free(p->ns);
    free(p->name);
    free(p->uid);
    free(p->node);
    free(p->scheduler_name);
    for (int i = 0; i < p->ntols; i++) {
        free(p->tols[i].key);
        free(p->tols[i].value);
        free(p->tols[i].effect);
    }
    free(p->tols);
    free(p->ports);
    free(p->node_req);
    free(p->node_pref);
    free_terms(p->aff, p->naff);
    free_terms(p->anti, p->nanti);
    free_terms(p->aff_pref, p->naff_pref);
    free_terms(p->anti_pref, p->nanti_pref);
    for (int i = 0; i < p->nspread; i++) {
        free(p->spread[i].topology_key);
        ck_selector_free(p->spread[i].sel);
    }
    free(p->spread);
    if (p->labels_owned)
        json_decref(p->labels);
    unintern(p->lset);
    json_decref(p->obj);
    free(p->text);
    free(p);
}

bool sc_pod_tolerates(const sc_pod *p, const sc_taint *t)
{
    for (int i = 0; i < p->ntols; i++) {
        const sc_toleration *o = &p->tols[i];
        if (o->effect && strcmp(o->effect, t->effect ? t->effect : ""))
            continue;
        if (o->key && strcmp(o->key, t->key ? t->key : ""))
            continue;
        if (!o->key && !o->exists)
            continue;               /* an empty key needs operator Exists */
        if (o->exists)
            return true;
        if (!strcmp(o->value ? o->value : "", t->value ? t->value : ""))
            return true;
    }
    return false;
}

static void free_taints(sc_node *n)
{
    for (int i = 0; i < n->ntaints; i++) {
        free(n->taints[i].key);
        free(n->taints[i].value);
        free(n->taints[i].effect);
    }
    free(n->taints);
    n->taints = NULL;
    n->ntaints = 0;
}

int sc_node_set(sc_node *n, json_t *obj, ck_error **err)
{
    json_t *status = json_object_get(obj, "status"), *spec = json_object_get(obj, "spec");
    json_t *alloc = json_object_get(status, "allocatable");
    if (!alloc)
        alloc = json_object_get(status, "capacity");
    sc_res a = {0};
    parse_list(alloc, &a);
    n->alloc = a;
    n->unschedulable = json_is_true(json_object_get(spec, "unschedulable"));
    const char *ready = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        if (type && !strcmp(type, "Ready"))
            ready = json_string_value(json_object_get(c, "status"));
    }
    n->ready = ready && !strcmp(ready, "True");
    free_taints(n);
    json_t *taints = json_object_get(spec, "taints");
    n->taints = xcalloc(json_array_size(taints) + 1, sizeof(sc_taint));
    bool has_nr = false;
    const char *implicit = !n->ready ? (ready && !strcmp(ready, "False")
                                            ? "node.kubernetes.io/not-ready"
                                            : "node.kubernetes.io/unreachable")
                                     : NULL;
    json_array_foreach(taints, i, c) {
        sc_taint *t = &n->taints[n->ntaints++];
        t->key = xstrdup(json_string_value(json_object_get(c, "key")) ?: "");
        t->value = xstrdup(json_string_value(json_object_get(c, "value")) ?: "");
        t->effect = xstrdup(json_string_value(json_object_get(c, "effect")) ?: "");
        if (implicit && !strcmp(t->key, implicit) && !strcmp(t->effect, "NoSchedule"))
            has_nr = true;
    }
    if (implicit && !has_nr) {
        sc_taint *t = &n->taints[n->ntaints++];
        t->key = xstrdup(implicit);
        t->value = xstrdup("");
        t->effect = xstrdup("NoSchedule");
    }
    json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
    json_incref(labels);
    json_decref(n->labels);
    n->labels = labels;
    (void)err;
    return 0;
}

bool sc_node_sched_differs(const sc_node *n, json_t *obj)
{
    sc_node t = {0};
    sc_node_set(&t, obj, NULL);
    bool d = t.unschedulable != n->unschedulable || t.ready != n->ready ||
             t.ntaints != n->ntaints || memcmp(&t.alloc, &n->alloc, sizeof t.alloc) ||
             !json_equal(t.labels ? t.labels : json_null(), n->labels ? n->labels : json_null());
    for (int i = 0; !d && i < t.ntaints; i++)
        d = strcmp(t.taints[i].key, n->taints[i].key) ||
            strcmp(t.taints[i].value, n->taints[i].value) ||
            strcmp(t.taints[i].effect, n->taints[i].effect);
    sc_node_free_fields(&t);
    return d;
}

const char *sc_node_label(const sc_node *n, const char *key)
{
    return json_string_value(json_object_get(n->labels, key));
}

void sc_node_free_fields(sc_node *n)
{
    free_taints(n);
    json_decref(n->labels);
    n->labels = NULL;
}

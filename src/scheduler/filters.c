/* filters.c - can this pod run on this node?  Upstream's default filter plugins, in their order,
 * with their reason texts (the FailedScheduling message counts these strings):
 *
 *   NodeUnschedulable  "node(s) were unschedulable"
 *   NodeName           "node(s) didn't match the requested node name"
 *   TaintToleration    "node(s) had untolerated taint {key: value}"
 *   NodeAffinity       "node(s) didn't match Pod's node affinity/selector"
 *   NodePorts          "node(s) didn't have free ports for the requested pod ports"
 *   NodeResourcesFit   "Insufficient cpu", "Insufficient memory", "Too many pods", ...
 *   PodTopologySpread  "node(s) didn't match pod topology spread constraints[ (missing required label)]"
 *   InterPodAffinity   "node(s) didn't match pod affinity rules", "... pod anti-affinity rules",
 *                      "node(s) didn't satisfy existing pods anti-affinity rules"
 *
 * sc_cycle_prepare does the per-pod work over the whole cache once (upstream's PreFilter): the
 * topology pair counts for inter-pod affinity and the per-domain counts for spread constraints;
 * each filter is then O(node) work.  Failures that preemption cannot fix are marked unresolvable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "scheduler/sched.h"

/* ---- topology pairs ---- */

static void pair_key(char *buf, size_t n, const char *key, const char *value)
{
    /* hot: no snprintf; label keys and values are far shorter than n */
    size_t kl = strlen(key), vl = strlen(value);
    if (kl + vl + 2 > n) {
        snprintf(buf, n, "%s\x1f%s", key, value);
        return;
    }
    memcpy(buf, key, kl);
    buf[kl] = '\x1f';
    memcpy(buf + kl + 1, value, vl + 1);
}

void sc_pairs_add(sc_pairs *p, const char *key, const char *value, intptr_t delta)
{
    if (!p->m)
        p->m = sc_map_new();
    bool known = false;
    for (int i = 0; i < p->nkeys && !known; i++)
        known = !strcmp(p->keys[i], key);
    if (!known && p->nkeys < SC_MAX_TOPO_KEYS)
        p->keys[p->nkeys++] = xstrdup(key);
    char buf[512];
    pair_key(buf, sizeof buf, key, value);
    intptr_t now = sc_map_count(p->m, buf) + delta;
    if (now)
        sc_map_put(p->m, buf, (void *)now);
    else                /* gone: "no pod matches anywhere" must read as an empty map */
        sc_map_del(p->m, buf);
}

intptr_t sc_pairs_get(const sc_pairs *p, const char *key, const char *value)
{
    if (!p->m)
        return 0;
    char buf[512];
    pair_key(buf, sizeof buf, key, value);
    return sc_map_count(p->m, buf);
}

intptr_t sc_pairs_node_sum(const sc_pairs *p, const sc_node *n)
{
    intptr_t sum = 0;
    for (int i = 0; i < p->nkeys; i++) {
        const char *v = sc_node_label(n, p->keys[i]);
        if (v)
            sum += sc_pairs_get(p, p->keys[i], v);
    }
    return sum;
}

void sc_pairs_free(sc_pairs *p)
{
    sc_map_free(p->m);
    for (int i = 0; i < p->nkeys; i++)
        free((char *)p->keys[i]);
    memset(p, 0, sizeof *p);
}

/* ---- node selection helpers ---- */

static bool req_matches(const json_t *req, const char *val)
{
    const char *op = json_string_value(json_object_get(req, "operator"));
    json_t *values = json_object_get(req, "values");
    if (!op)
        return false;
    if (!strcmp(op, "Exists"))
        return val != NULL;
    if (!strcmp(op, "DoesNotExist"))
        return val == NULL;
    if (!strcmp(op, "In") || !strcmp(op, "NotIn")) {
        bool in = false;
        size_t i;
        json_t *v;
        if (val)
            json_array_foreach(values, i, v) {
                const char *s = json_string_value(v);
                if (s && !strcmp(s, val)) {
                    in = true;
                    break;
                }
            }
        return !strcmp(op, "In") ? in : !in;
    }
    if (!strcmp(op, "Gt") || !strcmp(op, "Lt")) {
        if (!val || json_array_size(values) != 1)
            return false;
        const char *s = json_string_value(json_array_get(values, 0));
        char *e1, *e2;
        if (!s)
            return false;
        long long have = strtoll(val, &e1, 10), want = strtoll(s, &e2, 10);
        if (*e1 || *e2 || !*val || !*s)
            return false;
        return !strcmp(op, "Gt") ? have > want : have < want;
    }
    return false;
}

/* A nodeSelectorTerm: every expression and field requirement holds; an empty term matches
 * nothing (upstream). */
static bool node_term_matches(const sc_node_term *t, const sc_node *n)
{
    if (!json_array_size(t->exprs) && !json_array_size(t->fields))
        return false;
    size_t i;
    json_t *r;
    json_array_foreach(t->exprs, i, r) {
        const char *key = json_string_value(json_object_get(r, "key"));
        if (!key || !req_matches(r, sc_node_label(n, key)))
            return false;
    }
    json_array_foreach(t->fields, i, r) {
        const char *key = json_string_value(json_object_get(r, "key"));
        if (!key || strcmp(key, "metadata.name") || !req_matches(r, n->name))
            return false;
    }
    return true;
}

bool sc_node_matches_pod_selector(const sc_pod *p, const sc_node *n)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)p->node_selector, k, v) {
        const char *have = sc_node_label(n, k);
        if (!have || !json_string_value(v) || strcmp(have, json_string_value(v)))
            return false;
    }
    if (!p->has_node_req)
        return true;
    for (int i = 0; i < p->nnode_req; i++)
        if (node_term_matches(&p->node_req[i], n))
            return true;
    return false;
}

bool sc_node_term_matches(const sc_node_term *t, const sc_node *n)
{
    return node_term_matches(t, n);
}

/* ---- prefilter ---- */

static bool matches_all(const sc_term *terms, int n, const sc_pod *owner, const sc_pod *other)
{
    for (int i = 0; i < n; i++)
        if (!sc_term_matches(&terms[i], owner, other))
            return false;
    return n > 0;
}

static void add_terms(sc_pairs *pairs, const sc_term *terms, int nt, const sc_pod *owner,
                      const sc_pod *other, const sc_node *n, int sign, bool weighted)
{
    for (int i = 0; i < nt; i++) {
        const char *v = sc_node_label(n, terms[i].topology_key);
        if (v && sc_term_matches(&terms[i], owner, other))
            sc_pairs_add(pairs, terms[i].topology_key, v, sign * (weighted ? terms[i].weight : 1));
    }
}

/* Per-cycle memo of term-vs-labels results, indexed by interned ids: 0 unknown, 1 yes, 2 no. */
typedef struct memo {
    int bound;
    int8_t *v;
} memo;

static bool memo_match(memo *m, int row, const sc_term *t, const sc_pod *owner, const sc_pod *other)
{
    int col = other->lset;
    if (col < 0 || col >= m->bound)
        return sc_term_matches(t, owner, other);
    int8_t *slot = &m->v[(size_t)row * (size_t)m->bound + (size_t)col];
    if (!*slot)
        *slot = sc_term_matches(t, owner, other) ? 1 : 2;
    return *slot == 1;
}

/* Count one existing pod e on node n (sign 1) or take it out (sign -1).  memos may be NULL (no
 * memo); pref: also the scoring weights (prepare only; the simulations only filter). */
static void count_affinity(sc_cycle *cy, const sc_node *n, const sc_pod *e, int sign,
                           memo *own_memo, int8_t *exist, int bound, bool pref)
{
    sc_pod *pod = cy->pod;
    if (pod->naff) {
        bool all = true;
        for (int t = 0; t < pod->naff && all; t++)
            all = own_memo ? memo_match(own_memo, t, &pod->aff[t], pod, e)
                           : sc_term_matches(&pod->aff[t], pod, e);
        if (all)
            for (int t = 0; t < pod->naff; t++) {
                const char *v = sc_node_label(n, pod->aff[t].topology_key);
                if (v)
                    sc_pairs_add(&cy->aff, pod->aff[t].topology_key, v, sign);
            }
    }
    for (int t = 0; t < pod->nanti; t++) {
        if (!(own_memo ? memo_match(own_memo, pod->naff + t, &pod->anti[t], pod, e)
                       : sc_term_matches(&pod->anti[t], pod, e)))
            continue;
        const char *v = sc_node_label(n, pod->anti[t].topology_key);
        if (v)
            sc_pairs_add(&cy->anti, pod->anti[t].topology_key, v, sign);
    }
    for (int t = 0; t < e->nanti; t++) {
        const sc_term *term = &e->anti[t];
        bool m;
        if (exist && term->id >= 0 && term->id < bound) {
            if (!exist[term->id])
                exist[term->id] = sc_term_matches(term, e, pod) ? 1 : 2;
            m = exist[term->id] == 1;
        } else {
            m = sc_term_matches(term, e, pod);
        }
        const char *v = m ? sc_node_label(n, term->topology_key) : NULL;
        if (v)
            sc_pairs_add(&cy->existing_anti, term->topology_key, v, sign);
    }
    if (!pref)
        return;
    /* scoring: the pod's preferences, and existing pods' preferences and required
     * affinity (weight 1, upstream's hardPodAffinityWeight) toward it */
    if (pod->naff_pref || pod->nanti_pref) {
        add_terms(&cy->pref, pod->aff_pref, pod->naff_pref, pod, e, n, sign, true);
        add_terms(&cy->pref, pod->anti_pref, pod->nanti_pref, pod, e, n, -sign, true);
    }
    if (e->naff_pref || e->nanti_pref || e->naff) {
        add_terms(&cy->pref, e->aff_pref, e->naff_pref, e, pod, n, sign, true);
        add_terms(&cy->pref, e->anti_pref, e->nanti_pref, e, pod, n, -sign, true);
        add_terms(&cy->pref, e->aff, e->naff, e, pod, n, sign, false);
    }
}

static void prepare_affinity(sc_cycle *cy, sc_cache *c)
{
    sc_pod *pod = cy->pod;
    bool own = pod->naff || pod->nanti;
    bool own_pref = pod->naff_pref || pod->nanti_pref;
    if (!own && !own_pref && !c->pods_with_terms)
        return;                          /* the common case: nothing to count */
    /* rows 0..naff-1: the pod's affinity terms, then its anti-affinity terms; one more memo
     * (by term id) for existing pods' anti-affinity terms against the pod */
    int bound = sc_intern_bound();
    memo own_memo = {bound, own ? xcalloc((size_t)(pod->naff + pod->nanti) * (size_t)bound, 1) : NULL};
    int8_t *exist = xcalloc((size_t)bound + 1, 1);
    for (int i = 0; i < c->nlist; i++) {
        sc_node *n = c->list[i];
        if (!n->npods || (!own && !own_pref && !n->n_with_anti && !n->n_with_aff))
            continue;
        for (int k = 0; k < n->npods; k++) {
            sc_pod *e = n->pods[k];
            if (e == pod || e->terminating)
                continue;
            count_affinity(cy, n, e, 1, &own_memo, exist, bound, true);
        }
    }
    free(own_memo.v);
    free(exist);
    cy->has_pref = cy->pref.m != NULL;
}

static void spread_min(sc_cycle *cy, int s)
{
    sc_spread_state *st = &cy->spread[s];
    const char *k;
    void *v;
    int64_t min = -1;
    for (size_t it = 0; sc_map_next(st->counts, &it, &k, &v);)
        if (min < 0 || (intptr_t)v < min)
            min = (intptr_t)v;
    if (min < 0 || (int64_t)sc_map_len(st->counts) < cy->pod->spread[s].min_domains)
        min = 0;
    st->min = min;
}

static void prepare_spread(sc_cycle *cy, sc_cache *c)
{
    sc_pod *pod = cy->pod;
    if (!pod->nspread)
        return;
    cy->spread = xcalloc((size_t)pod->nspread, sizeof(sc_spread_state));
    for (int s = 0; s < pod->nspread; s++) {
        cy->spread[s].counts = sc_map_new();
        cy->spread[s].self_match = ck_label_selector_matches(pod->spread[s].sel, pod->labels);
    }
    for (int i = 0; i < c->nlist; i++) {
        sc_node *n = c->list[i];
        if (!sc_node_matches_pod_selector(pod, n))
            continue;
        bool all_keys = true;
        for (int s = 0; s < pod->nspread && all_keys; s++)
            all_keys = sc_node_label(n, pod->spread[s].topology_key) != NULL;
        if (!all_keys)
            continue;
        for (int s = 0; s < pod->nspread; s++) {
            int cnt = 0;
            for (int k = 0; k < n->npods; k++) {
                sc_pod *e = n->pods[k];
                if (e != pod && !e->terminating && !strcmp(e->ns, pod->ns) &&
                    ck_label_selector_matches(pod->spread[s].sel, e->labels))
                    cnt++;
            }
            sc_map_add(cy->spread[s].counts, sc_node_label(n, pod->spread[s].topology_key), cnt);
        }
    }
    for (int s = 0; s < pod->nspread; s++)
        spread_min(cy, s);
}

/* Whether n is a domain of the pod's spread constraints (its node affinity admits it and it has
 * every topology key). */
static bool spread_domain(const sc_pod *pod, const sc_node *n)
{
    if (!sc_node_matches_pod_selector(pod, n))
        return false;
    for (int s = 0; s < pod->nspread; s++)
        if (!sc_node_label(n, pod->spread[s].topology_key))
            return false;
    return true;
}

static void count_spread(sc_cycle *cy, const sc_node *n, const sc_pod *e, int sign)
{
    const sc_pod *pod = cy->pod;
    if (!pod->nspread || !cy->spread || e == pod || e->terminating || strcmp(e->ns, pod->ns) ||
        !spread_domain(pod, n))
        return;
    for (int s = 0; s < pod->nspread; s++) {
        if (!ck_label_selector_matches(pod->spread[s].sel, e->labels))
            continue;
        sc_map_add(cy->spread[s].counts, sc_node_label(n, pod->spread[s].topology_key), sign);
        spread_min(cy, s);
    }
}

void sc_cycle_update_pod(sc_cycle *cy, const sc_node *n, const sc_pod *e, int sign)
{
    if (e == cy->pod || e->terminating)
        return;
    count_affinity(cy, n, e, sign, NULL, NULL, 0, false);
    count_spread(cy, n, e, sign);
}

void sc_cycle_prepare(sc_cycle *cy, sc_cache *c, sc_pod *pod)
{
    memset(cy, 0, sizeof *cy);
    cy->pod = pod;
    prepare_affinity(cy, c);
    prepare_spread(cy, c);
    size_t nn = sc_map_len(c->nominated);
    if (nn) {
        cy->nominated = xcalloc(nn, sizeof *cy->nominated);
        const char *k;
        void *v;
        for (size_t it = 0; sc_map_next(c->nominated, &it, &k, &v);) {
            sc_pod *q = v;
            if (strcmp(q->key, pod->key) && q->priority >= pod->priority)
                cy->nominated[cy->nnominated++] = q;
        }
    }
}

void sc_cycle_release(sc_cycle *cy)
{
    sc_pairs_free(&cy->aff);
    sc_pairs_free(&cy->anti);
    sc_pairs_free(&cy->existing_anti);
    sc_pairs_free(&cy->pref);
    if (cy->spread)
        for (int s = 0; s < cy->pod->nspread; s++)
            sc_map_free(cy->spread[s].counts);
    free(cy->spread);
    free(cy->nominated);
    memset(cy, 0, sizeof *cy);
}

/* ---- filters ---- */

static void fail(sc_status *st, unsigned plugin, bool unresolvable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(sc_status *st, unsigned plugin, bool unresolvable, const char *fmt, ...)
{
    st->plugin = plugin;
    st->unresolvable = unresolvable;
    if (st->nreasons < SC_MAX_REASONS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->reasons[st->nreasons++], sizeof st->reasons[0], fmt, ap);
        va_end(ap);
    }
}

void sc_filter_unschedulable(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    static const sc_taint t = {"node.kubernetes.io/unschedulable", "", "NoSchedule"};
    if (n->unschedulable && !sc_pod_tolerates(cy->pod, &t))
        fail(st, SC_F_UNSCHEDULABLE, true, "node(s) were unschedulable");
}

void sc_filter_node_name(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    /* sc_pod_new read spec.nodeName into node; an incoming pod normally has none */
    const char *want = cy->pod->assumed ? NULL : cy->pod->node;
    if (want && strcmp(want, n->name))
        fail(st, SC_F_NODENAME, true, "node(s) didn't match the requested node name");
}

void sc_filter_taints(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    for (int i = 0; i < n->ntaints; i++) {
        const sc_taint *t = &n->taints[i];
        if (strcmp(t->effect, "NoSchedule") && strcmp(t->effect, "NoExecute"))
            continue;
        if (!sc_pod_tolerates(cy->pod, t)) {
            fail(st, SC_F_TAINT, true, "node(s) had untolerated taint {%s: %s}", t->key, t->value);
            return;
        }
    }
}

void sc_filter_node_affinity(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    if (!sc_node_matches_pod_selector(cy->pod, n))
        fail(st, SC_F_NODE_AFFINITY, true, "node(s) didn't match Pod's node affinity/selector");
}

static bool ports_conflict(const sc_port *a, const sc_port *b)
{
    return a->port == b->port && !strcmp(a->proto, b->proto) &&
           (!a->ip[0] || !b->ip[0] || !strcmp(a->ip, b->ip));
}

void sc_filter_ports(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    const sc_pod *p = cy->pod;
    if (!p->nports || !n->n_with_ports)
        return;
    for (int k = 0; k < n->npods; k++) {
        const sc_pod *e = n->pods[k];
        for (int i = 0; i < e->nports; i++)
            for (int j = 0; j < p->nports; j++)
                if (e != p && ports_conflict(&e->ports[i], &p->ports[j])) {
                    fail(st, SC_F_PORTS, false,
                         "node(s) didn't have free ports for the requested pod ports");
                    return;
                }
    }
}

void sc_filter_resources(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    const sc_res *r = &cy->pod->req;
    const sc_res *a = &n->alloc, *u = &n->used;
    if (u->pods + 1 > a->pods)
        fail(st, SC_F_RESOURCES, false, "Too many pods");
    if (r->cpu > 0 && r->cpu > a->cpu - u->cpu)
        fail(st, SC_F_RESOURCES, false, "Insufficient cpu");
    if (r->mem > 0 && r->mem > a->mem - u->mem)
        fail(st, SC_F_RESOURCES, false, "Insufficient memory");
    if (r->storage > 0 && r->storage > a->storage - u->storage)
        fail(st, SC_F_RESOURCES, false, "Insufficient ephemeral-storage");
    for (int i = 0; i < SC_MAX_SCALARS && cy->pod->has_scalars; i++)
        if (r->scalar[i] > 0 && r->scalar[i] > a->scalar[i] - u->scalar[i])
            fail(st, SC_F_RESOURCES, false, "Insufficient %s", sc_scalar_name(i));
}

void sc_filter_spread(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    const sc_pod *p = cy->pod;
    for (int s = 0; s < p->nspread; s++) {
        if (!p->spread[s].hard)
            continue;
        const char *v = sc_node_label(n, p->spread[s].topology_key);
        if (!v) {
            fail(st, SC_F_SPREAD, true,
                 "node(s) didn't match pod topology spread constraints (missing required label)");
            return;
        }
        const sc_spread_state *ss = &cy->spread[s];
        int64_t skew = sc_map_count(ss->counts, v) + (ss->self_match ? 1 : 0) - ss->min;
        if (skew > p->spread[s].max_skew) {
            fail(st, SC_F_SPREAD, false, "node(s) didn't match pod topology spread constraints");
            return;
        }
    }
}

void sc_filter_pod_affinity(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    const sc_pod *p = cy->pod;
    if (p->naff) {
        bool exist = true;
        for (int t = 0; t < p->naff; t++) {
            const char *v = sc_node_label(n, p->aff[t].topology_key);
            if (!v) {
                fail(st, SC_F_POD_AFFINITY, true, "node(s) didn't match pod affinity rules");
                return;
            }
            if (sc_pairs_get(&cy->aff, p->aff[t].topology_key, v) <= 0)
                exist = false;
        }
        /* the first pod of a group with affinity to itself may go anywhere */
        if (!exist && !(sc_map_len(cy->aff.m) == 0 && matches_all(p->aff, p->naff, p, p))) {
            fail(st, SC_F_POD_AFFINITY, true, "node(s) didn't match pod affinity rules");
            return;
        }
    }
    for (int t = 0; t < p->nanti; t++) {
        const char *v = sc_node_label(n, p->anti[t].topology_key);
        if (v && sc_pairs_get(&cy->anti, p->anti[t].topology_key, v) > 0) {
            fail(st, SC_F_POD_AFFINITY, false, "node(s) didn't match pod anti-affinity rules");
            return;
        }
    }
    if (sc_pairs_node_sum(&cy->existing_anti, n) > 0)
        fail(st, SC_F_POD_AFFINITY, false, "node(s) didn't satisfy existing pods anti-affinity rules");
}

void sc_filter(const sc_cycle *cy, const sc_node *n, sc_status *st)
{
    typedef void (*filter_fn)(const sc_cycle *, const sc_node *, sc_status *);
    static const filter_fn filters[] = {
        sc_filter_unschedulable, sc_filter_node_name, sc_filter_taints, sc_filter_node_affinity,
        sc_filter_ports, sc_filter_resources, sc_filter_spread, sc_filter_pod_affinity,
    };
    st->plugin = 0;
    st->nreasons = 0;
    st->unresolvable = false;
    for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
        filters[i](cy, n, st);
        if (st->plugin)
            return;
    }
}

void sc_filter_nominated(sc_cycle *cy, sc_node *n, sc_status *st)
{
    int added = 0;
    for (int i = 0; i < cy->nnominated; i++) {
        sc_pod *q = cy->nominated[i];
        if (strcmp(q->node, n->name))
            continue;
        sc_node_add_pod(n, q);
        sc_cycle_update_pod(cy, n, q, 1);
        added++;
    }
    sc_filter(cy, n, st);
    if (!added)
        return;
    for (int i = 0; i < cy->nnominated; i++) {
        sc_pod *q = cy->nominated[i];
        if (strcmp(q->node, n->name))
            continue;
        sc_cycle_update_pod(cy, n, q, -1);
        sc_node_remove_pod(n, q);
    }
    if (!st->plugin)
        sc_filter(cy, n, st);
}

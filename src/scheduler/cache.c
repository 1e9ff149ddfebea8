/* cache.c - the scheduler's view of the cluster: every node with the pods on it and the sum of
 * what they request, including pods we "assumed" onto a node before the API confirmed the
 * binding (so the next cycle already sees them and throughput never waits on a round trip).
 *
 * A pod can arrive before its node (informers race): it then waits on a placeholder node (obj
 * NULL, not in the sampling list) that becomes real when the node arrives.  The caller holds the
 * scheduler's cache lock around every call.
 *
 * It also keeps what preemption and the filters need besides placed pods: nominated pods (their
 * own compiled copies, off every node; a cycle adds those of higher or equal priority to the
 * node being checked) and the PodDisruptionBudgets.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "scheduler/sched.h"

void sc_cache_init(sc_cache *c)
{
    memset(c, 0, sizeof *c);
    c->nodes = sc_map_new();
    c->pods = sc_map_new();
    c->nominated = sc_map_new();
}

static void pdb_free_fields(sc_pdb *b)
{
    free(b->ns);
    free(b->name);
    ck_selector_free(b->sel);
    for (int i = 0; i < b->ndisrupted; i++)
        free(b->disrupted[i]);
    free(b->disrupted);
    memset(b, 0, sizeof *b);
}

static void node_free(sc_node *n)
{
    sc_node_free_fields(n);
    free(n->pods);
    free(n->name);
    free(n);
}

void sc_cache_destroy(sc_cache *c)
{
    const char *k;
    void *v;
    for (size_t it = 0; sc_map_next(c->pods, &it, &k, &v);)
        sc_pod_free(v);
    for (size_t it = 0; sc_map_next(c->nodes, &it, &k, &v);)
        node_free(v);
    for (size_t it = 0; sc_map_next(c->nominated, &it, &k, &v);)
        sc_pod_free(v);
    for (int i = 0; i < c->npdbs; i++)
        pdb_free_fields(&c->pdbs[i]);
    free(c->pdbs);
    sc_map_free(c->nominated);
    sc_map_free(c->pods);
    sc_map_free(c->nodes);
    free(c->list);
    memset(c, 0, sizeof *c);
}

sc_node *sc_cache_node(sc_cache *c, const char *name)
{
    return sc_map_get(c->nodes, name);
}

sc_pod *sc_cache_pod(sc_cache *c, const char *key)
{
    return sc_map_get(c->pods, key);
}

static sc_node *node_get_or_placeholder(sc_cache *c, const char *name)
{
    sc_node *n = sc_map_get(c->nodes, name);
    if (!n) {
        n = xcalloc(1, sizeof *n);
        n->name = xstrdup(name);
        n->idx = -1;
        sc_map_put(c->nodes, name, n);
    }
    return n;
}

int sc_cache_node_set(sc_cache *c, json_t *obj, ck_error **err)
{
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    if (!name)
        return ck_error_set(err, CK_E_INVALID, "node without a name");
    sc_node *n = node_get_or_placeholder(c, name);
    if (sc_node_set(n, obj, err) < 0)
        return -1;
    if (n->idx < 0) {
        if (c->nlist == c->caplist) {
            c->caplist = c->caplist ? c->caplist * 2 : 64;
            c->list = xrealloc(c->list, (size_t)c->caplist * sizeof *c->list);
        }
        n->idx = c->nlist;
        c->list[c->nlist++] = n;
    }
    c->generation++;
    return 0;
}

void sc_cache_node_del(sc_cache *c, const char *name)
{
    sc_node *n = sc_map_get(c->nodes, name);
    if (!n)
        return;
    if (n->idx >= 0) {
        sc_node *last = c->list[--c->nlist];
        c->list[n->idx] = last;
        last->idx = n->idx;
        n->idx = -1;
    }
    c->generation++;
    if (n->npods) {       /* pods still point at it: keep a placeholder until they go */
        sc_node_free_fields(n);
        return;
    }
    sc_map_del(c->nodes, name);
    node_free(n);
}

void sc_node_add_pod(sc_node *n, sc_pod *p)
{
    if (n->npods == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 8;
        n->pods = xrealloc(n->pods, (size_t)n->cap * sizeof *n->pods);
    }
    n->pods[n->npods++] = p;
    sc_res_add(&n->used, &p->req, 1);
    n->used.pods++;
    n->nz_cpu += p->nz_cpu;
    n->nz_mem += p->nz_mem;
    n->n_with_ports += p->nports > 0;
    n->n_with_anti += p->nanti > 0;
    n->n_with_aff += (p->naff + p->naff_pref + p->nanti_pref) > 0;
}

void sc_node_remove_pod(sc_node *n, sc_pod *p)
{
    for (int i = 0; i < n->npods; i++) {
        if (n->pods[i] != p)
            continue;
        n->pods[i] = n->pods[--n->npods];
        sc_res_add(&n->used, &p->req, -1);
        n->used.pods--;
        n->nz_cpu -= p->nz_cpu;
        n->nz_mem -= p->nz_mem;
        n->n_with_ports -= p->nports > 0;
        n->n_with_anti -= p->nanti > 0;
        n->n_with_aff -= (p->naff + p->naff_pref + p->nanti_pref) > 0;
        return;
    }
}

static bool has_terms(const sc_pod *p)
{
    return p->naff + p->nanti + p->naff_pref + p->nanti_pref > 0;
}

static void detach(sc_cache *c, sc_pod *p)
{
    c->pods_with_terms -= has_terms(p);
    sc_node *n = p->node ? sc_map_get(c->nodes, p->node) : NULL;
    if (!n)
        return;
    sc_node_remove_pod(n, p);
    if (n->idx < 0 && !n->npods) {   /* a placeholder no pod needs any more */
        sc_map_del(c->nodes, n->name);
        node_free(n);
    }
}

void sc_cache_pod_set(sc_cache *c, sc_pod *p)
{
    sc_pod_slim(p);
    sc_pod *old = sc_map_get(c->pods, p->key);
    if (old) {
        /* keep our view while the bind is in flight and the API copy has no node yet */
        detach(c, old);
        sc_pod_free(old);
    }
    sc_map_put(c->pods, p->key, p);
    c->pods_with_terms += has_terms(p);
    sc_node_add_pod(node_get_or_placeholder(c, p->node), p);
    c->generation++;
}

void sc_cache_assume(sc_cache *c, sc_pod *p, const char *node)
{
    free(p->node);
    p->node = xstrdup(node);
    p->assumed = true;
    sc_cache_pod_set(c, p);
}

void sc_cache_pod_del(sc_cache *c, const char *key)
{
    sc_pod *p = sc_map_del(c->pods, key);
    if (!p)
        return;
    detach(c, p);
    sc_pod_free(p);
    c->generation++;
}

/* ---- nominated pods ---- */

void sc_cache_nominate(sc_cache *c, const sc_pod *p, const char *node)
{
    if ((!p->obj && !p->text) || !node || !*node)
        return;
    sc_pod *old = sc_map_get(c->nominated, p->key);
    if (old && old->node && !strcmp(old->node, node))
        return;
    json_t *whole = sc_pod_object(p);       /* a queued pod is compact */
    sc_pod *cp = sc_pod_new(whole, NULL);
    json_decref(whole);
    if (!cp)
        return;
    cp->priority = p->priority;
    cp->preempt_never = p->preempt_never;
    free(cp->node);
    cp->node = xstrdup(node);
    sc_pod_slim(cp);
    sc_map_put(c->nominated, p->key, cp);
    sc_pod_free(old);
    c->generation++;
}

void sc_cache_unnominate(sc_cache *c, const char *key)
{
    sc_pod *old = sc_map_del(c->nominated, key);
    if (old) {
        sc_pod_free(old);
        c->generation++;
    }
}

const char *sc_cache_nominated_node(sc_cache *c, const char *key)
{
    sc_pod *p = sc_map_get(c->nominated, key);
    return p ? p->node : NULL;
}

int sc_cache_unnominate_lower(sc_cache *c, const char *node, int32_t prio)
{
    char *drop[64];
    int n = 0, total = 0;
    do {                                  /* deleting while iterating would skip entries */
        n = 0;
        const char *k;
        void *v;
        for (size_t it = 0; n < 64 && sc_map_next(c->nominated, &it, &k, &v);) {
            sc_pod *p = v;
            if (!strcmp(p->node, node) && p->priority < prio)
                drop[n++] = xstrdup(k);
        }
        for (int i = 0; i < n; i++) {
            sc_cache_unnominate(c, drop[i]);
            free(drop[i]);
        }
        total += n;
    } while (n == 64);
    return total;
}

/* ---- PodDisruptionBudgets ---- */

int sc_cache_pdb_set(sc_cache *c, const json_t *obj, ck_error **err)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    if (!ns || !name)
        return ck_error_set(err, CK_E_INVALID, "PodDisruptionBudget without a namespace/name");
    sc_pdb b = {.ns = xstrdup(ns), .name = xstrdup(name)};
    const json_t *sel = json_object_get(json_object_get(obj, "spec"), "selector");
    /* upstream's preemption treats a nil or empty selector as matching no pod */
    if (json_object_size(json_object_get(sel, "matchLabels")) ||
        json_array_size(json_object_get(sel, "matchExpressions"))) {
        b.sel = ck_label_selector_from_json(sel, err);
        if (!b.sel) {
            pdb_free_fields(&b);
            return -1;
        }
    }
    const json_t *st = json_object_get(obj, "status");
    b.allowed = json_integer_value(json_object_get(st, "disruptionsAllowed"));
    const json_t *dp = json_object_get(st, "disruptedPods");
    b.disrupted = xcalloc(json_object_size(dp) + 1, sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)dp, k, v)
        b.disrupted[b.ndisrupted++] = xstrdup(k);
    sc_cache_pdb_del(c, ns, name);
    c->pdbs = xrealloc(c->pdbs, (size_t)(c->npdbs + 1) * sizeof *c->pdbs);
    c->pdbs[c->npdbs++] = b;
    return 0;
}

void sc_cache_pdb_del(sc_cache *c, const char *ns, const char *name)
{
    for (int i = 0; i < c->npdbs; i++) {
        if (strcmp(c->pdbs[i].ns, ns) || strcmp(c->pdbs[i].name, name))
            continue;
        pdb_free_fields(&c->pdbs[i]);
        c->pdbs[i] = c->pdbs[--c->npdbs];
        return;
    }
}

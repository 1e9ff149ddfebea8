/* preempt.c - when a pod fits nowhere, find lower-priority pods whose removal makes it fit
 * (upstream's DefaultPreemption PostFilter).
 *
 * Only nodes that failed for resolvable reasons (resources, ports, anti-affinity, spread skew)
 * are candidates.  On each: remove every pod of lower priority (taking them out of the cycle's
 * pre-computed inter-pod affinity and spread counts too, so removing a pod can satisfy an
 * anti-affinity or spread rule), check the pod fits (with the node's nominated pods of higher or
 * equal priority counted), then give victims back one by one while it still fits ("reprieve"):
 * first those whose eviction would violate a PodDisruptionBudget, then the others, most
 * important first within each group, so the fewest, least important and PDB-protected pods go.
 * Among candidates, as upstream's pickOneNodeForPreemption: fewest PDB violations, then the
 * lowest most-important victim, then the smallest priority sum, then the fewest victims.
 * A PDB is violated when more of its pods would go than status.disruptionsAllowed (pods already
 * in status.disruptedPods are not counted twice); an empty selector matches nothing, as
 * upstream's preemption reads it.
 * Messages match upstream: "preemption: 0/3 nodes are available: 1 No preemption victims found
 * for incoming pod, 2 Preemption is not helpful for scheduling."
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "scheduler/sched.h"

static int by_priority_desc(const void *a, const void *b)
{
    const sc_pod *x = *(sc_pod *const *)a, *y = *(sc_pod *const *)b;
    return x->priority != y->priority ? (y->priority > x->priority ? 1 : -1) : strcmp(x->key, y->key);
}

typedef struct cand {
    sc_node *node;
    sc_pod **victims;
    int n;
    int violations;               /* victims a PDB protects */
    int64_t max_prio, sum_prio;
} cand;

static bool pdb_lists(const sc_pdb *b, const char *name)
{
    for (int i = 0; i < b->ndisrupted; i++)
        if (!strcmp(b->disrupted[i], name))
            return true;
    return false;
}

/* Mark in violating[] the pods of pods[0..n) (most important first) whose eviction, together
 * with the ones before them, goes past a matching PDB's disruptionsAllowed. */
static void pdb_violations(const sc_cache *c, sc_pod **pods, int n, bool *violating)
{
    int64_t *left = c->npdbs ? xcalloc((size_t)c->npdbs, sizeof *left) : NULL;
    for (int b = 0; b < c->npdbs; b++)
        left[b] = c->pdbs[b].allowed;
    for (int k = 0; k < n; k++) {
        violating[k] = false;
        for (int b = 0; b < c->npdbs; b++) {
            const sc_pdb *pdb = &c->pdbs[b];
            if (!pdb->sel || strcmp(pdb->ns, pods[k]->ns) ||
                !ck_label_selector_matches(pdb->sel, pods[k]->labels) ||
                pdb_lists(pdb, pods[k]->name))
                continue;
            if (--left[b] < 0)
                violating[k] = true;
        }
    }
    free(left);
}

static void take_out(sc_cycle *cy, sc_node *n, sc_pod *v)
{
    sc_cycle_update_pod(cy, n, v, -1);
    sc_node_remove_pod(n, v);
}

static void put_back(sc_cycle *cy, sc_node *n, sc_pod *v)
{
    sc_node_add_pod(n, v);
    sc_cycle_update_pod(cy, n, v, 1);
}

/* Victims on n for pod, or -1 with the reason in st.  Leaves node and cycle as it found them. */
static int victims_on(const sc_cache *c, sc_cycle *cy, sc_node *n, cand *out, sc_status *st)
{
    const sc_pod *pod = cy->pod;
    sc_pod **lower = xcalloc((size_t)n->npods + 1, sizeof *lower);
    int nl = 0;
    for (int k = 0; k < n->npods; k++)
        if (n->pods[k]->priority < pod->priority && !n->pods[k]->terminating)
            lower[nl++] = n->pods[k];
    if (!nl) {
        free(lower);
        st->nreasons = 1;
        snprintf(st->reasons[0], sizeof st->reasons[0], "No preemption victims found for incoming pod");
        return -1;
    }
    qsort(lower, (size_t)nl, sizeof *lower, by_priority_desc);
    for (int k = 0; k < nl; k++)
        take_out(cy, n, lower[k]);
    sc_filter_nominated(cy, n, st);
    if (st->plugin) {
        for (int k = 0; k < nl; k++)
            put_back(cy, n, lower[k]);
        free(lower);
        return -1;
    }
    /* reprieve as many as possible: PDB-protected pods first, then the others, each group most
     * important first (upstream's selectVictimsOnNode) */
    bool *violating = xcalloc((size_t)nl, sizeof *violating);
    pdb_violations(c, lower, nl, violating);
    sc_pod **victims = xcalloc((size_t)nl + 1, sizeof *victims);
    int nv = 0, nviol = 0;
    sc_status tmp;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < nl; k++) {
            if (violating[k] != (pass == 0))
                continue;
            put_back(cy, n, lower[k]);
            sc_filter_nominated(cy, n, &tmp);
            if (tmp.plugin) {
                take_out(cy, n, lower[k]);
                victims[nv++] = lower[k];
                nviol += violating[k];
            }
        }
    }
    for (int k = 0; k < nv; k++)
        put_back(cy, n, victims[k]);
    free(violating);
    free(lower);
    qsort(victims, (size_t)nv, sizeof *victims, by_priority_desc);
    out->node = n;
    out->victims = victims;
    out->n = nv;
    out->violations = nviol;
    out->max_prio = nv ? victims[0]->priority : INT64_MIN;
    out->sum_prio = 0;
    for (int k = 0; k < nv; k++)
        out->sum_prio += victims[k]->priority;
    return 0;
}

static bool better(const cand *a, const cand *b)
{
    if (a->violations != b->violations)
        return a->violations < b->violations;
    if (a->max_prio != b->max_prio)
        return a->max_prio < b->max_prio;
    if (a->sum_prio != b->sum_prio)
        return a->sum_prio < b->sum_prio;
    return a->n < b->n;
}

void sc_preempt(sc_cache *c, sc_pod *pod, const sc_result *r, sc_preemption *out)
{
    memset(out, 0, sizeof *out);
    if (pod->preempt_never) {
        out->message = xstrdup("preemption: not eligible due to preemptionPolicy=Never.");
        return;
    }
    sc_cycle cy;
    sc_cycle_prepare(&cy, c, pod);
    sc_result why = {.nnodes = r->nnodes, .reasons = sc_map_new()};
    if (r->n_unresolvable)
        sc_map_add(why.reasons, "Preemption is not helpful for scheduling", r->n_unresolvable);
    cand best = {0};
    for (int i = 0; i < r->nresolvable; i++) {
        sc_node *n = sc_cache_node(c, r->resolvable[i]);
        if (!n || n->idx < 0)
            continue;
        cand cd = {0};
        sc_status st = {0};
        if (victims_on(c, &cy, n, &cd, &st) < 0) {
            for (int k = 0; k < st.nreasons; k++)
                sc_map_add(why.reasons, st.reasons[k], 1);
            continue;
        }
        if (!cd.n) {               /* fits without victims: the world changed meanwhile */
            free(cd.victims);
            continue;
        }
        if (!best.node || better(&cd, &best)) {
            free(best.victims);
            best = cd;
        } else {
            free(cd.victims);
        }
    }
    sc_cycle_release(&cy);
    if (best.node) {
        out->node = best.node;
        out->victims = best.victims;
        out->nvictims = best.n;
        out->pdb_violations = best.violations;
    } else {
        char *m = sc_fit_message(&why);
        out->message = xasprintf("preemption: %s", m);
        free(m);
    }
    sc_map_free(why.reasons);
}

void sc_preemption_release(sc_preemption *pr)
{
    free(pr->victims);
    free(pr->message);
    memset(pr, 0, sizeof *pr);
}

/* preempt.c - when a pod fits nowhere, find lower-priority pods whose removal makes it fit
 * (upstream's DefaultPreemption PostFilter, without PodDisruptionBudgets).
 *
 * Only nodes that failed for resolvable reasons (resources, ports, anti-affinity, spread skew)
 * are candidates.  On each: remove every pod of lower priority, check the pod fits, then give
 * victims back one by one, highest priority first, while it still fits ("reprieve"), so the
 * fewest and least important pods go.  Among candidates the node whose most important victim has
 * the lowest priority wins, then the smallest priority sum, then the fewest victims.
 *
 * The simulation re-runs the node-local checks (resources, ports, the node's own pods'
 * anti-affinity through the pre-computed pairs); pre-computed inter-pod and spread counts still
 * include the victims, so preemption never relies on removing a pod to satisfy those (limit).
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
    int64_t max_prio, sum_prio;
} cand;

/* Victims on n for pod, or -1 with the reason in st. */
static int victims_on(const sc_cycle *cy, sc_node *n, cand *out, sc_status *st)
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
        sc_node_remove_pod(n, lower[k]);
    sc_filter(cy, n, st);
    if (st->plugin) {
        for (int k = 0; k < nl; k++)
            sc_node_add_pod(n, lower[k]);
        free(lower);
        return -1;
    }
    /* reprieve as many as possible, most important first */
    int nv = 0;
    sc_status tmp;
    for (int k = 0; k < nl; k++) {
        sc_node_add_pod(n, lower[k]);
        sc_filter(cy, n, &tmp);
        if (tmp.plugin) {
            sc_node_remove_pod(n, lower[k]);
            lower[nv++] = lower[k];
        }
    }
    for (int k = 0; k < nv; k++)
        sc_node_add_pod(n, lower[k]);
    out->node = n;
    out->victims = lower;
    out->n = nv;
    out->max_prio = nv ? lower[0]->priority : INT64_MIN;
    out->sum_prio = 0;
    for (int k = 0; k < nv; k++)
        out->sum_prio += lower[k]->priority;
    return 0;
}

static bool better(const cand *a, const cand *b)
{
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
        if (victims_on(&cy, n, &cd, &st) < 0) {
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

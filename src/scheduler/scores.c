/* scores.c - how good is each feasible node?  The default profile's score plugins, each giving
 * 0..100 per node after normalization over the feasible set, summed with upstream's weights:
 *
 *   NodeResourcesFit (LeastAllocated, cpu+memory)  x1   more free capacity is better
 *   NodeResourcesBalancedAllocation                x1   cpu and memory used in step is better
 *   InterPodAffinity (preferred terms, both ways)  x2   normalized min..max
 *   NodeAffinity (preferred terms)                 x2   normalized to the best node
 *   TaintToleration (PreferNoSchedule)             x3   fewer untolerated is better
 *   PodTopologySpread (ScheduleAnyway)             x2   fewer matching pods in the domain is better
 *
 * Requests for scoring use upstream's non-zero defaults (100m cpu, 200Mi memory per container
 * without requests), so best-effort pods still spread out.
 */
#include <string.h>

#include "scheduler/sched.h"

enum { S_LEAST, S_BALANCED, S_POD_AFF, S_NODE_AFF, S_TAINT, S_SPREAD };
static const int weights[] = {1, 1, 2, 2, 3, 2};

int64_t sc_score_least_allocated(const sc_pod *p, const sc_node *n)
{
    int64_t score = 0;
    int64_t alloc[2] = {n->alloc.cpu, n->alloc.mem};
    int64_t req[2] = {n->nz_cpu + p->nz_cpu, n->nz_mem + p->nz_mem};
    for (int i = 0; i < 2; i++)
        if (alloc[i] > 0 && req[i] <= alloc[i])
            score += (alloc[i] - req[i]) * 100 / alloc[i];
    return score / 2;
}

int64_t sc_score_balanced(const sc_pod *p, const sc_node *n)
{
    if (n->alloc.cpu <= 0 || n->alloc.mem <= 0)
        return 0;
    double fc = (double)(n->nz_cpu + p->nz_cpu) / (double)n->alloc.cpu;
    double fm = (double)(n->nz_mem + p->nz_mem) / (double)n->alloc.mem;
    if (fc > 1)
        fc = 1;
    if (fm > 1)
        fm = 1;
    double std = (fc > fm ? fc - fm : fm - fc) / 2;
    return (int64_t)((1 - std) * 100);
}

int64_t sc_score_node_affinity_raw(const sc_pod *p, const sc_node *n)
{
    int64_t s = 0;
    for (int i = 0; i < p->nnode_pref; i++)
        if (sc_node_term_matches(&p->node_pref[i], n))
            s += p->node_pref[i].weight;
    return s;
}

int64_t sc_score_taint_raw(const sc_pod *p, const sc_node *n)
{
    int64_t s = 0;
    for (int i = 0; i < n->ntaints; i++) {
        const sc_taint *t = &n->taints[i];
        if (!strcmp(t->effect, "PreferNoSchedule") && !sc_pod_tolerates(p, t))
            s++;
    }
    return s;
}

int64_t sc_score_spread_raw(const sc_cycle *cy, const sc_node *n)
{
    int64_t s = 0;
    for (int i = 0; i < cy->pod->nspread; i++) {
        if (cy->pod->spread[i].hard)
            continue;
        const char *v = sc_node_label(n, cy->pod->spread[i].topology_key);
        if (v)
            s += sc_map_count(cy->spread[i].counts, v);
    }
    return s;
}

int64_t sc_score_pod_affinity_raw(const sc_cycle *cy, const sc_node *n)
{
    return cy->has_pref ? sc_pairs_node_sum(&cy->pref, n) : 0;
}

void sc_score(const sc_cycle *cy, sc_scored *out, int n)
{
    const sc_pod *p = cy->pod;
    bool soft_spread = false;
    for (int i = 0; i < p->nspread; i++)
        soft_spread |= !p->spread[i].hard;
    int64_t mn[6], mx[6];
    for (int k = 0; k < 6; k++)
        mn[k] = INT64_MAX, mx[k] = INT64_MIN;
    for (int i = 0; i < n; i++) {
        const sc_node *nd = out[i].node;
        int64_t *r = out[i].raw;
        r[S_LEAST] = sc_score_least_allocated(p, nd);
        r[S_BALANCED] = sc_score_balanced(p, nd);
        r[S_POD_AFF] = cy->has_pref ? sc_score_pod_affinity_raw(cy, nd) : 0;
        r[S_NODE_AFF] = p->nnode_pref ? sc_score_node_affinity_raw(p, nd) : 0;
        r[S_TAINT] = nd->ntaints ? sc_score_taint_raw(p, nd) : 0;
        r[S_SPREAD] = soft_spread ? sc_score_spread_raw(cy, nd) : 0;
        for (int k = 0; k < 6; k++) {
            if (r[k] < mn[k])
                mn[k] = r[k];
            if (r[k] > mx[k])
                mx[k] = r[k];
        }
    }
    for (int i = 0; i < n; i++) {
        int64_t *r = out[i].raw;
        int64_t s[6];
        s[S_LEAST] = r[S_LEAST];
        s[S_BALANCED] = r[S_BALANCED];
        s[S_POD_AFF] = mx[S_POD_AFF] > mn[S_POD_AFF]
                           ? (r[S_POD_AFF] - mn[S_POD_AFF]) * 100 / (mx[S_POD_AFF] - mn[S_POD_AFF])
                           : 0;
        s[S_NODE_AFF] = mx[S_NODE_AFF] > 0 ? r[S_NODE_AFF] * 100 / mx[S_NODE_AFF] : 0;
        s[S_TAINT] = mx[S_TAINT] > 0 ? 100 - r[S_TAINT] * 100 / mx[S_TAINT] : 100;
        s[S_SPREAD] = !soft_spread ? 0
                    : mx[S_SPREAD] > 0 ? 100 * (mx[S_SPREAD] + mn[S_SPREAD] - r[S_SPREAD]) / mx[S_SPREAD]
                    : 100;
        out[i].total = 0;
        for (int k = 0; k < 6; k++)
            out[i].total += s[k] * weights[k];
    }
}

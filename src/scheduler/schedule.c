/* schedule.c - one scheduling cycle for one pod (upstream's schedulePod): pre-compute, filter
 * nodes until enough feasible ones are found, score them, pick the best.
 *
 * Fairness: like upstream, large clusters are sampled (percentageOfNodesToScore, adaptive:
 * 50% - nodes/125, at least 5% and 100 nodes) and each cycle starts filtering where the previous
 * one stopped, so every node gets its turn; among equal best scores the winner is drawn at random
 * (reservoir sampling), so ties never always go to the first node.  A pod with
 * status.nominatedNodeName (after preemption) tries that node first.  Every filter run counts
 * the node's nominated pods of higher or equal priority as if they were there
 * (sc_filter_nominated), so the room a preemption made is kept for its preemptor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "scheduler/sched.h"

#define MIN_FEASIBLE 100

uint64_t sc_rand(uint64_t *s)
{
    /* xorshift64*: tie breaking needs speed, not cryptography */
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int sc_num_to_find(int nnodes, int percentage)
{
    if (nnodes < MIN_FEASIBLE || percentage >= 100)
        return nnodes;
    int pct = percentage;
    if (pct <= 0) {
        pct = 50 - nnodes / 125;
        if (pct < 5)
            pct = 5;
    }
    int num = (int)((int64_t)nnodes * pct / 100);
    return num < MIN_FEASIBLE ? MIN_FEASIBLE : num;
}

static void note_failure(sc_result *res, const sc_node *n, const sc_status *st)
{
    if (!res->reasons)
        res->reasons = sc_map_new();
    for (int i = 0; i < st->nreasons; i++)
        sc_map_add(res->reasons, st->reasons[i], 1);
    res->reject_mask |= st->plugin;
    if (st->unresolvable) {
        res->n_unresolvable++;
    } else {
        res->resolvable = xrealloc(res->resolvable, (size_t)(res->nresolvable + 1) * sizeof(char *));
        res->resolvable[res->nresolvable++] = xstrdup(n->name);
    }
}

void sc_schedule(sc_algo *a, sc_cache *c, sc_pod *pod, sc_result *res)
{
    memset(res, 0, sizeof *res);
    res->nnodes = c->nlist;
    if (!c->nlist)
        return;
    sc_cycle cy;
    sc_cycle_prepare(&cy, c, pod);
    sc_status st;

    const char *nominated = sc_cache_nominated_node(c, pod->key);
    if (!nominated)
        nominated = json_string_value(
            json_object_get(json_object_get(pod->obj, "status"), "nominatedNodeName"));
    sc_node *nom = nominated && *nominated ? sc_cache_node(c, nominated) : NULL;
    if (nom && nom->idx >= 0) {
        sc_filter_nominated(&cy, nom, &st);
        if (!st.plugin) {
            res->node = nom;
            res->evaluated = res->feasible = 1;
            sc_cycle_release(&cy);
            return;
        }
    }

    int want = sc_num_to_find(c->nlist, a->percentage);
    sc_scored *feasible = xmalloc((size_t)want * sizeof *feasible);
    int nf = 0, i, start = a->next_start % c->nlist;
    for (i = 0; i < c->nlist && nf < want; i++) {
        sc_node *n = c->list[(start + i) % c->nlist];
        /* the filters read a few fields spread over the node's cache lines: fetch a node
         * ahead, so a cycle over hundreds of nodes waits on memory less */
        const char *ahead = (const char *)c->list[(start + i + 6) % c->nlist];
        for (size_t off = 0; off < sizeof(sc_node); off += 64)
            __builtin_prefetch(ahead + off);
        sc_filter_nominated(&cy, n, &st);
        if (st.plugin)
            note_failure(res, n, &st);
        else
            feasible[nf++].node = n;
    }
    a->next_start = (start + i) % c->nlist;
    res->evaluated = i;
    res->feasible = nf;
    if (nf == 1) {
        res->node = feasible[0].node;
    } else if (nf > 1) {
        sc_score(&cy, feasible, nf);
        int64_t best = INT64_MIN;
        int ties = 0;
        for (int k = 0; k < nf; k++) {
            if (feasible[k].total > best) {
                best = feasible[k].total;
                res->node = feasible[k].node;
                ties = 1;
            } else if (feasible[k].total == best && sc_rand(&a->rng) % (uint64_t)++ties == 0) {
                res->node = feasible[k].node;
            }
        }
    }
    free(feasible);
    sc_cycle_release(&cy);
}

void sc_result_release(sc_result *r)
{
    sc_map_free(r->reasons);
    for (int i = 0; i < r->nresolvable; i++)
        free(r->resolvable[i]);
    free(r->resolvable);
    memset(r, 0, sizeof *r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *sc_fit_message(const sc_result *r)
{
    if (r->nnodes == 0)
        return xstrdup("no nodes available to schedule pods");
    size_t n = sc_map_len(r->reasons), k = 0;
    char **parts = xcalloc(n ? n : 1, sizeof(char *));
    const char *key;
    void *v;
    for (size_t it = 0; sc_map_next(r->reasons, &it, &key, &v);)
        parts[k++] = xasprintf("%ld %s", (long)(intptr_t)v, key);
    qsort(parts, k, sizeof *parts, cmp_str);
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_printf(&b, "0/%d nodes are available: ", r->nnodes);
    for (size_t i = 0; i < k; i++) {
        ck_buf_printf(&b, "%s%s", i ? ", " : "", parts[i]);
        free(parts[i]);
    }
    ck_buf_addstr(&b, ".");
    free(parts);
    return ck_buf_steal(&b);
}

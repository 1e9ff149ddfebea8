/* htab.c - see htab.h. */
#include "lib/htab.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

void ck_htab_init(ck_htab *t, size_t buckets)
{
    size_t cap = 8;
    while (cap < buckets)
        cap *= 2;
    t->b = xcalloc(cap, sizeof *t->b);
    t->mask = cap - 1;
    t->n = 0;
}

void ck_htab_free(ck_htab *t)
{
    free(t->b);
    t->b = NULL;
    t->mask = 0;
    t->n = 0;
}

ck_hnode *ck_htab_get(const ck_htab *t, const char *key)
{
    size_t len = strlen(key);
    return ck_htab_find(t, key, len, ck_htab_hash(key, len));
}

/* Doubles the buckets, moving each node by its kept hash. */
static void grow(ck_htab *t)
{
    size_t cap = (t->mask + 1) * 2;
    ck_hnode **b = xcalloc(cap, sizeof *b);
    for (size_t i = 0; i <= t->mask; i++)
        for (ck_hnode *n = t->b[i], *next; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (cap - 1)];
            b[n->hash & (cap - 1)] = n;
        }
    free(t->b);
    t->b = b;
    t->mask = cap - 1;
}

void ck_htab_add(ck_htab *t, ck_hnode *n, const char *key, size_t len, uint64_t hash)
{
    n->key = key;
    n->klen = len;
    n->hash = hash;
    ck_hnode **head = &t->b[hash & t->mask];
    n->next = *head;
    *head = n;
    if (++t->n > t->mask + 1)
        grow(t);
}

void ck_htab_del(ck_htab *t, ck_hnode *n)
{
    for (ck_hnode **p = &t->b[n->hash & t->mask]; *p; p = &(*p)->next)
        if (*p == n) {
            *p = n->next;
            n->next = NULL;
            t->n--;
            return;
        }
}

void ck_htab_iter_init(ck_htab_iter *it, const ck_htab *t)
{
    it->t = t;
    it->i = 0;
    it->next = NULL;
}

ck_hnode *ck_htab_iter_next(ck_htab_iter *it)
{
    while (!it->next && it->t->b && it->i <= it->t->mask)
        it->next = it->t->b[it->i++];
    ck_hnode *n = it->next;
    if (n)
        it->next = n->next;
    return n;
}

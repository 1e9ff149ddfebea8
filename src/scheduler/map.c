/* map.c - string -> pointer hash map for the scheduler's hot paths (node and pod lookups,
 * topology counters): open addressing with linear probing and backward-shift deletion, so there
 * are no tombstones and lookups stay short under churn.  Keys are copied; values are not owned. */
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "scheduler/sched.h"

typedef struct slot {
    char *key;        /* NULL = empty */
    uint32_t hash;
    void *val;
} slot;

struct sc_map {
    slot *slots;
    size_t cap, len;  /* cap is a power of two */
};

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h ? h : 1;
}

sc_map *sc_map_new(void)
{
    sc_map *m = xcalloc(1, sizeof *m);
    m->cap = 16;
    m->slots = xcalloc(m->cap, sizeof(slot));
    return m;
}

void sc_map_free(sc_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    free(m);
}

static size_t find(const sc_map *m, const char *key, uint32_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && !strcmp(s->key, key)))
            return i;
    }
}

void *sc_map_get(const sc_map *m, const char *key)
{
    if (!m)
        return NULL;
    slot *s = &m->slots[find(m, key, hash_str(key))];
    return s->key ? s->val : NULL;
}

static void grow(sc_map *m)
{
    slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof(slot));
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            m->slots[find(m, old[i].key, old[i].hash)] = old[i];
    free(old);
}

void sc_map_put(sc_map *m, const char *key, void *val)
{
    if ((m->len + 1) * 4 > m->cap * 3)
        grow(m);
    uint32_t h = hash_str(key);
    slot *s = &m->slots[find(m, key, h)];
    if (!s->key) {
        s->key = xstrdup(key);
        s->hash = h;
        m->len++;
    }
    s->val = val;
}

void sc_map_add(sc_map *m, const char *key, intptr_t delta)
{
    sc_map_put(m, key, (void *)(sc_map_count(m, key) + delta));
}

void *sc_map_del(sc_map *m, const char *key)
{
    size_t mask = m->cap - 1, i = find(m, key, hash_str(key));
    if (!m->slots[i].key)
        return NULL;
    void *val = m->slots[i].val;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->len--;
    /* backward shift: pull later entries of the probe run into the hole */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            i = j;
        }
    }
    return val;
}

size_t sc_map_len(const sc_map *m)
{
    return m ? m->len : 0;
}

bool sc_map_next(const sc_map *m, size_t *it, const char **key, void **val)
{
    if (!m)
        return false;
    for (; *it < m->cap; (*it)++) {
        if (m->slots[*it].key) {
            *key = m->slots[*it].key;
            *val = m->slots[*it].val;
            (*it)++;
            return true;
        }
    }
    return false;
}

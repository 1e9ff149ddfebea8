/* htab.h - a small intrusive hash table of string keys (chained, power-of-two buckets).
 *
 * Why: the pod index (controllers/podindex.c) and the SQLite store's value cache
 * (store/sqlite_cache.c) each kept a hand-written chained table with the same lookup, growth and
 * removal.  This is that table, once: the caller embeds a ck_hnode in its own struct (no
 * allocation per entry here, no callbacks), and gets the struct back with ck_htab_entry.
 *
 * Contract:
 *  - A node's key (key, klen: any bytes) is the caller's and must stay unchanged while the node is
 *    in the table (usually it points into the same struct).  Keys are unique: ck_htab_add is
 *    only for a key not present (look it up first).
 *  - The hash is passed in (ck_htab_hash), so a caller can compute it once, outside its lock, and
 *    use it for the lookup and the add.  It is kept in the node: growing never rehashes a key,
 *    and a lookup compares the hash before the key.
 *  - The table doubles when it holds more nodes than buckets (an add); it never shrinks.
 *  - Iteration (ck_htab_iter) may remove or free the node it just returned, and only that one;
 *    adding during an iteration is not supported (a growth would reorder the buckets).
 *  - Not thread-safe: the caller locks.
 */
#ifndef CK_HTAB_H
#define CK_HTAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ck_hnode {
    struct ck_hnode *next;      /* the bucket's chain */
    uint64_t hash;
    const char *key;
    size_t klen;
} ck_hnode;

typedef struct ck_htab {
    ck_hnode **b;
    size_t mask;                /* buckets - 1 */
    size_t n;                   /* nodes */
} ck_htab;

typedef struct ck_htab_iter {
    const ck_htab *t;
    size_t i;                   /* the next bucket to look in */
    ck_hnode *next;             /* the next node, fetched before the current one is returned */
} ck_htab_iter;

/* The struct a node is embedded in. */
#define ck_htab_entry(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

/* buckets: the starting size, rounded up to a power of two (at least 8). */
void ck_htab_init(ck_htab *t, size_t buckets);
/* Frees the buckets; the nodes are the caller's to free (iterate first). */
void ck_htab_free(ck_htab *t);
/* FNV-1a, 64-bit.  This and ck_htab_find are inline: they are the hot path of every lookup. */
static inline uint64_t ck_htab_hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
    return h;
}

static inline ck_hnode *ck_htab_find(const ck_htab *t, const char *key, size_t len,
                                     uint64_t hash)
{
    for (ck_hnode *n = t->b[hash & t->mask]; n; n = n->next)
        if (n->hash == hash && n->klen == len && !memcmp(n->key, key, len))
            return n;
    return NULL;
}
/* ck_htab_find of a NUL-terminated key (hashes it). */
ck_hnode *ck_htab_get(const ck_htab *t, const char *key);
/* Adds n under key (not present; see the contract), growing the table when it is full. */
void ck_htab_add(ck_htab *t, ck_hnode *n, const char *key, size_t len, uint64_t hash);
/* Takes n, which is in t, out of it. */
void ck_htab_del(ck_htab *t, ck_hnode *n);

void ck_htab_iter_init(ck_htab_iter *it, const ck_htab *t);
/* The next node, or NULL at the end. */
ck_hnode *ck_htab_iter_next(ck_htab_iter *it);

#endif

/* Unit tests for lib/htab: adds that grow the table many times (every key still found, none
 * found that was not added), keys that share a bucket or even a hash (told apart by their bytes
 * and length, prefixes included), removal (of chain heads, middles and tails), and an iteration
 * that frees every node it returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/htab.h"
#include "lib/util.h"

typedef struct item {
    int value;
    ck_hnode hn;                 /* not first: ck_htab_entry must do the offset */
    char key[];
} item;

static item *item_new(const char *key, int value)
{
    size_t n = strlen(key);
    item *it = xcalloc(1, sizeof *it + n + 1);
    memcpy(it->key, key, n + 1);
    it->value = value;
    return it;
}

static item *get(const ck_htab *t, const char *key)
{
    ck_hnode *n = ck_htab_get(t, key);
    return n ? ck_htab_entry(n, item, hn) : NULL;
}

static void add(ck_htab *t, item *it, uint64_t hash)
{
    ck_htab_add(t, &it->hn, it->key, strlen(it->key), hash);
}

static void free_all(ck_htab *t)
{
    ck_htab_iter it;
    ck_htab_iter_init(&it, t);
    size_t n = 0;
    for (ck_hnode *h; (h = ck_htab_iter_next(&it)); n++) {
        ck_htab_del(t, h);                   /* the node just returned: allowed */
        free(ck_htab_entry(h, item, hn));
    }
    assert_int_equal(t->n, 0);
    (void)n;
    ck_htab_free(t);
}

static void test_growth(void **state)
{
    (void)state;
    ck_htab t;
    ck_htab_init(&t, 1);
    assert_int_equal(t.mask + 1, 8);         /* rounded up to the minimum */
    enum { N = 20000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "ns-%d/pod-%d", i % 7, i);
        item *it = item_new(key, i);
        add(&t, it, ck_htab_hash(it->key, strlen(it->key)));
    }
    assert_int_equal(t.n, N);
    assert_true(t.mask + 1 >= N);            /* doubled as it filled */
    assert_true(((t.mask + 1) & t.mask) == 0);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "ns-%d/pod-%d", i % 7, i);
        item *it = get(&t, key);
        assert_non_null(it);
        assert_int_equal(it->value, i);
    }
    assert_null(get(&t, "ns-0/pod-20000"));
    assert_null(get(&t, "ns-1/pod-0"));      /* pod-0 is in ns-0 */
    assert_null(get(&t, ""));
    /* every node is seen exactly once by an iteration */
    char *seen = xcalloc(N, 1);
    ck_htab_iter iter;
    ck_htab_iter_init(&iter, &t);
    size_t count = 0;
    for (ck_hnode *h; (h = ck_htab_iter_next(&iter)); count++) {
        item *it = ck_htab_entry(h, item, hn);
        assert_int_equal(seen[it->value], 0);
        seen[it->value] = 1;
    }
    assert_int_equal(count, N);
    free(seen);
    free_all(&t);
}

/* Keys with one hash, and keys in one bucket: the bytes and the length decide. */
static void test_collisions(void **state)
{
    (void)state;
    static const char *keys[] = {"a", "ab", "abc", "b", "aa", "", "abd", "ba"};
    enum { K = ARRAY_SIZE(keys) };
    ck_htab t;
    ck_htab_init(&t, 8);
    item *its[K];
    for (size_t i = 0; i < K; i++) {
        its[i] = item_new(keys[i], (int)i);
        add(&t, its[i], 42);                 /* every key the same hash: one chain */
    }
    assert_int_equal(t.n, K);
    for (size_t i = 0; i < K; i++) {
        ck_hnode *h = ck_htab_find(&t, keys[i], strlen(keys[i]), 42);
        assert_non_null(h);
        assert_ptr_equal(ck_htab_entry(h, item, hn), its[i]);
        /* the same bytes under another hash are another key */
        assert_null(ck_htab_find(&t, keys[i], strlen(keys[i]), 43));
    }
    assert_null(ck_htab_find(&t, "abcd", 4, 42));
    assert_null(ck_htab_find(&t, "ab", 1, 43));
    /* a length-counted key: "ab" with len 1 is "a" */
    assert_ptr_equal(ck_htab_entry(ck_htab_find(&t, "ab", 1, 42), item, hn), its[0]);

    /* removal from the chain's middle, head and tail; the rest still found */
    ck_htab_del(&t, &its[3]->hn);            /* "b" */
    ck_htab_del(&t, &its[K - 1]->hn);        /* the last added: the chain's head */
    ck_htab_del(&t, &its[0]->hn);            /* the first added: its tail */
    assert_int_equal(t.n, K - 3);
    assert_null(ck_htab_find(&t, "b", 1, 42));
    assert_null(ck_htab_find(&t, "ba", 2, 42));
    assert_null(ck_htab_find(&t, "a", 1, 42));
    for (size_t i = 1; i < K - 1; i++)
        if (i != 3)
            assert_non_null(ck_htab_find(&t, keys[i], strlen(keys[i]), 42));
    free(its[0]);
    free(its[3]);
    free(its[K - 1]);
    /* re-adding a removed key works */
    item *again = item_new("b", 99);
    add(&t, again, 42);
    assert_int_equal(get(&t, "zz") == NULL, 1);
    assert_int_equal(ck_htab_entry(ck_htab_find(&t, "b", 1, 42), item, hn)->value, 99);
    free_all(&t);
}

/* Removing while iterating: every other node goes mid-way, the others are all still found. */
static void test_remove_while_iterating(void **state)
{
    (void)state;
    ck_htab t;
    ck_htab_init(&t, 16);
    enum { N = 1000 };
    char key[16];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%d", i);
        item *it = item_new(key, i);
        add(&t, it, ck_htab_hash(it->key, strlen(it->key)));
    }
    ck_htab_iter iter;
    ck_htab_iter_init(&iter, &t);
    int visited = 0;
    for (ck_hnode *h; (h = ck_htab_iter_next(&iter)); visited++) {
        item *it = ck_htab_entry(h, item, hn);
        if (it->value % 2) {
            ck_htab_del(&t, h);
            free(it);
        }
    }
    assert_int_equal(visited, N);            /* none skipped by a removal */
    assert_int_equal(t.n, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%d", i);
        item *it = get(&t, key);
        if (i % 2)
            assert_null(it);
        else
            assert_true(it && it->value == i);
    }
    free_all(&t);
    /* an empty, freed table iterates to nothing */
    ck_htab_iter_init(&iter, &t);
    assert_null(ck_htab_iter_next(&iter));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_remove_while_iterating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

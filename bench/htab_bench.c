/* htab_bench.c - the two users of lib/htab.h timed alone: the controller-manager's pod index
 * (bind PODS pods over NODES nodes, move a tenth, read every node's keys, delete all) and the
 * SQLite store's value cache (apply PODS writes in batches of 64, get each key twice, delete).
 * Prints the best of ROUNDS (5) rounds in ns per operation, and the process's CPU time.
 * Usage: build/bench/htab_bench [PODS (100000)] [NODES (1000)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "controllers/podindex.h"
#include "store/sqlite_int.h"
#include "lib/util.h"


static double podindex_round(long pods, long nodes, char (*keys)[48], char (*names)[32])
{
    int64_t t0 = ck_now_ns();
    cm_podindex *x = cm_podindex_new();
    for (long i = 0; i < pods; i++)
        cm_podindex_set(x, keys[i], names[i % nodes]);
    for (long i = 0; i < pods; i += 10)
        cm_podindex_set(x, keys[i], names[(i + 1) % nodes]);      /* moved */
    for (long i = 0; i < pods; i++)
        cm_podindex_set(x, keys[i], names[(i + (i % 10 == 0)) % nodes]);   /* status: same node */
    size_t seen = 0;
    for (long n = 0; n < nodes; n++) {
        json_t *k = cm_podindex_keys(x, names[n]);
        seen += json_array_size(k);
        json_decref(k);
    }
    if (seen != (size_t)pods)
        fprintf(stderr, "htab_bench: podindex saw %zu of %ld\n", seen, pods);
    for (long i = 0; i < pods; i++)
        cm_podindex_del(x, keys[i]);
    cm_podindex_free(x);
    return (double)(ck_now_ns() - t0) / (double)(pods * 4 + pods / 10);
}

static double kvcache_round(long pods, char (*keys)[48])
{
    static const char val[] = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"},\"spec\":{}}";
    int64_t t0 = ck_now_ns();
    kvcache *c = ck__kvcache_new(256u << 20, 0);
    int64_t rev = 0;
    kvcache_op ops[64];
    for (long i = 0; i < pods; i += 64) {
        size_t n = 0;
        for (long j = i; j < pods && n < 64; j++, n++)
            ops[n] = (kvcache_op){.key = keys[j], .val = val, .len = sizeof val - 1,
                                  .create_rev = rev + 1, .mod_rev = rev + 1};
        rev++;
        ck__kvcache_begin(c, ops, n);
        ck__kvcache_apply(c, ops, n, rev);
    }
    long hits = 0;
    for (int r = 0; r < 2; r++)
        for (long i = 0; i < pods; i++) {
            ck_kv kv;
            if (ck__kvcache_get(c, keys[i], &kv)) {
                hits++;
                ck_kv_free(&kv);
            }
        }
    if (hits != 2 * pods)
        fprintf(stderr, "htab_bench: kvcache hit %ld of %ld\n", hits, 2 * pods);
    for (long i = 0; i < pods; i++) {
        kvcache_op d = {.key = keys[i], .deleted = true};
        ck__kvcache_begin(c, &d, 1);
        ck__kvcache_apply(c, &d, 1, ++rev);
    }
    ck__kvcache_free(c);
    return (double)(ck_now_ns() - t0) / (double)(pods * 4);
}

int main(int argc, char **argv)
{
    long pods = argc > 1 ? atol(argv[1]) : 100000, nodes = argc > 2 ? atol(argv[2]) : 1000;
    int rounds = getenv("ROUNDS") ? atoi(getenv("ROUNDS")) : 5;
    if (pods < 1 || nodes < 1 || rounds < 1) {
        fprintf(stderr, "usage: htab_bench [PODS] [NODES]\n");
        return 2;
    }
    char (*keys)[48] = xcalloc((size_t)pods, sizeof *keys);
    char (*names)[32] = xcalloc((size_t)nodes, sizeof *names);
    for (long i = 0; i < pods; i++)
        snprintf(keys[i], sizeof keys[i], "/registry/pods/ns-%ld/pod-%ld", i % 13, i);
    for (long n = 0; n < nodes; n++)
        snprintf(names[n], sizeof names[n], "node-%ld", n);
    double best_p = 1e18, best_k = 1e18;
    for (int r = 0; r < rounds; r++) {
        double p = podindex_round(pods, nodes, keys, names), k = kvcache_round(pods, keys);
        best_p = p < best_p ? p : best_p;
        best_k = k < best_k ? k : best_k;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("podindex: %.1f ns/op  kvcache: %.1f ns/op  (best of %d, %ld pods, %ld nodes; cpu %.2f s)\n",
           best_p, best_k, rounds, pods, nodes,
           (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6);
    free(keys);
    free(names);
    return 0;
}

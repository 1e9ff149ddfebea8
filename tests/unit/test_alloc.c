/* Unit tests for lib/alloc: the allocator the Makefile chose is the one every malloc in the
 * process reaches (ours, libc's own, a shared library's), with its tuning applied.  A sanitizer
 * or ALLOC=glibc build must have none linked. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <cmocka.h>
#include <jansson.h>
#include <malloc.h>

#include "lib/alloc.h"
#include "lib/util.h"

#ifdef CK_ALLOC_JEMALLOC
#include <jemalloc/jemalloc.h>

/* bytes this thread has allocated so far, as jemalloc counts them */
static uint64_t allocated(void)
{
    uint64_t n = 0;
    size_t sz = sizeof n;
    assert_int_equal(mallctl("thread.allocated", &n, &sz, NULL, 0), 0);
    return n;
}

static void test_jemalloc_in_use(void **state)
{
    assert_non_null(strstr(ck_alloc_name(), "jemalloc 5."));
    /* a malloc from our code, from libc itself (strdup, open_memstream) and from a shared
     * library (jansson) each reach jemalloc: nothing still goes to glibc's malloc */
    uint64_t a0 = allocated();
    void *mine = xmalloc(1000);
    uint64_t a1 = allocated();
    assert_true(a1 - a0 >= 1000);
    char *from_libc = strdup("0123456789012345678901234567890123456789");
    uint64_t a2 = allocated();
    assert_true(a2 - a1 >= 41);
    json_t *from_jansson = json_object();
    uint64_t a3 = allocated();
    assert_true(a3 > a2);
    char *stream_buf = NULL;
    size_t stream_len = 0;
    FILE *f = open_memstream(&stream_buf, &stream_len);
    assert_non_null(f);
    fputs("hello", f);
    fclose(f);
    assert_true(allocated() > a3);
    /* and glibc's own malloc never handed anything out */
    struct mallinfo2 mi = mallinfo2();
    assert_int_equal(mi.uordblks, 0);
    free(mine);
    free(from_libc);
    json_decref(from_jansson);
    free(stream_buf);
}

static void test_jemalloc_tuning(void **state)
{
    /* the malloc_conf of alloc.c was read at start (unless MALLOC_CONF overrides it) */
    if (getenv("MALLOC_CONF"))
        fail_msg("MALLOC_CONF is set: the built-in tuning is not what runs");
    unsigned narenas = 0;
    size_t sz = sizeof narenas;
    assert_int_equal(mallctl("opt.narenas", &narenas, &sz, NULL, 0), 0);
    assert_int_equal(narenas, 1);
    size_t tcache_max = 0;
    sz = sizeof tcache_max;
    assert_int_equal(mallctl("opt.tcache_max", &tcache_max, &sz, NULL, 0), 0);
    assert_int_equal(tcache_max, 32768);
    unsigned nslots = 0;
    sz = sizeof nslots;
    assert_int_equal(mallctl("opt.tcache_nslots_small_max", &nslots, &sz, NULL, 0), 0);
    assert_int_equal(nslots, 32);
    ssize_t decay = 0;
    sz = sizeof decay;
    assert_int_equal(mallctl("opt.dirty_decay_ms", &decay, &sz, NULL, 0), 0);
    assert_int_equal(decay, 1000);
}

static size_t dirty_pages(void)
{
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    assert_int_equal(mallctl("epoch", &epoch, &sz, &epoch, sz), 0);
    char name[64];
    snprintf(name, sizeof name, "stats.arenas.%u.pdirty", (unsigned)MALLCTL_ARENAS_ALL);
    size_t pdirty = 0;
    sz = sizeof pdirty;
    assert_int_equal(mallctl(name, &pdirty, &sz, NULL, 0), 0);
    return pdirty;
}

static void test_trim(void **state)
{
    /* a burst of small blocks freed again leaves dirty pages until the decay; the trim returns
     * them now */
    enum { N = 20000 };
    void **p = xcalloc(N, sizeof *p);
    for (int i = 0; i < N; i++)
        p[i] = xmalloc(200);
    for (int i = 0; i < N; i++)
        free(p[i]);
    free(p);
    assert_true(dirty_pages() > 0);
    ck_alloc_trim();
    assert_int_equal(dirty_pages(), 0);
}

#else

static void test_glibc_in_use(void **state)
{
    /* no allocator linked: ck_alloc_name says glibc and jemalloc's entry points are absent */
    assert_int_equal(strncmp(ck_alloc_name(), "glibc ", 6), 0);
    assert_null(dlsym(RTLD_DEFAULT, "mallctl"));
    ck_alloc_trim();    /* malloc_trim: must not crash */
}

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef CK_ALLOC_JEMALLOC
        cmocka_unit_test(test_jemalloc_in_use),
        cmocka_unit_test(test_jemalloc_tuning),
        cmocka_unit_test(test_trim),
#else
        cmocka_unit_test(test_glibc_in_use),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

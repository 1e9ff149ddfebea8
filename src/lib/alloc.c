/* alloc.c - the linked allocator's tuning, its name, and trimming.  See alloc.h. */
#include "lib/alloc.h"

#include <malloc.h>
#include <stdio.h>

#ifdef CK_ALLOC_JEMALLOC
#include <jemalloc/jemalloc.h>

/* jemalloc reads this at its initialisation, before the first allocation (MALLOC_CONF in the
 * environment still overrides it, for experiments).  The defaults are sized for big servers;
 * these keep the CPU gain (thread caches) at the idle RSS glibc had (docs/allocator.md):
 *  narenas:1                   - one arena, not 4 per CPU: each arena keeps its own partly used
 *                                slabs and extents; with thread caches in front it is not contended
 *                                on 2 cores;
 *  tcache_max:32768            - thread caches up to 32 KiB blocks (response bodies, TLS
 *                                records, stored texts of a few KiB): with 1024 those took the
 *                                arena's lock each time.  Affordable since session 7: the API
 *                                server wakes few of its workers (httpd's LIFO hand-off), so
 *                                few thread caches fill;
 *  tcache_nslots_small_max:32  - at most 32 cached blocks a size class a thread (default 200):
 *                                an idle thread's cache is memory nobody uses;
 *  dirty_decay_ms:1000         - freed pages go back to the system after ~1 s, not 10. */
const char *malloc_conf = "narenas:1,tcache_max:32768,tcache_nslots_small_max:32,dirty_decay_ms:1000";

const char *ck_alloc_name(void)
{
    static char name[96];
    if (!name[0]) {
        const char *v = NULL;
        size_t sz = sizeof v;
        if (mallctl("version", &v, &sz, NULL, 0) != 0 || !v)
            v = "?";
        snprintf(name, sizeof name, "jemalloc %s", v);
    }
    return name;
}

void ck_alloc_trim(void)
{
    /* purge every arena's unused dirty pages now (MALLCTL_ARENAS_ALL) */
    char cmd[64];
    snprintf(cmd, sizeof cmd, "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
    mallctl(cmd, NULL, NULL, NULL, 0);
}

#else
#include <gnu/libc-version.h>

const char *ck_alloc_name(void)
{
    static char name[48];
    if (!name[0])
        snprintf(name, sizeof name, "glibc %s", gnu_get_libc_version());
    return name;
}

void ck_alloc_trim(void)
{
    malloc_trim(0);
}
#endif

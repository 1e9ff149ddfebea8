/* sqlite_walbuf.c - a VFS over SQLite's default one that gathers the writes made to WAL files.
 *
 * SQLite appends a WAL frame with two writes, its 24-byte header and then the page, so a commit
 * of 20 pages is 40 pwrite calls (each a page-cache walk in the kernel, the frames straddling
 * page boundaries).  Here the writes that continue one another are kept in a buffer and reach
 * the file in one pwrite per 128 KiB (31 frames), at the latest when SQLite syncs the file (every commit: synchronous =
 * FULL), and before anything that must see them: a read, size, truncate, lock change, close, a
 * write elsewhere in the file.  Nothing changes for durability or ordering: SQLite never counts
 * on data before its sync, and it publishes a commit to other connections (the wal-index) only
 * after that sync returned, by which time the bytes are in the file.  A failed flush is reported
 * by the call that flushed (the sync, for a commit), which fails the transaction as a failed
 * write would.  Other files (the database, the shm index) go straight to the default VFS.
 */
#include "store/sqlite_int.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WB_MAX (8u * 1024 * 1024)   /* a larger run of writes is flushed and buffering restarts */

typedef struct wbfile {
    sqlite3_file base;
    sqlite3_file *real;       /* the default VFS's file, in the same allocation after this */
    char *buf;
    size_t len, cap;
    sqlite3_int64 off;        /* file offset of buf[0] */
} wbfile;

static sqlite3_vfs wb_vfs;
static atomic_llong st_calls, st_flushes;

/* The default VFS writes at most 128 KiB - 1 per call (it masks the count; SQLite never asks for
 * more), so a long buffer goes in pieces of that size. */
#define WB_PIECE 0x1ffff

static int wb_flush(wbfile *f)
{
    size_t n = f->len, done = 0;
    f->len = 0;
    while (done < n) {
        size_t k = n - done < WB_PIECE ? n - done : WB_PIECE;
        atomic_fetch_add(&st_flushes, 1);
        int rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)k,
                                           f->off + (sqlite3_int64)done);
        if (rc != SQLITE_OK)
            return rc;
        done += k;
    }
    return SQLITE_OK;
}

static int wb_close(sqlite3_file *pf)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *pf, void *p, int amt, sqlite3_int64 off)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, p, amt, off);
}

static int wb_write(sqlite3_file *pf, const void *p, int amt, sqlite3_int64 off)
{
    wbfile *f = (wbfile *)pf;
    atomic_fetch_add(&st_calls, 1);
    size_t n = (size_t)amt;
    if (f->len > 0 && off == f->off + (sqlite3_int64)f->len && f->len + n <= WB_MAX) {
        if (f->len + n > f->cap) {
            while (f->len + n > f->cap)
                f->cap *= 2;
            f->buf = xrealloc(f->buf, f->cap);
        }
        memcpy(f->buf + f->len, p, n);
        f->len += n;
        return SQLITE_OK;
    }
    int rc = wb_flush(f);
    if (rc != SQLITE_OK)
        return rc;
    if (n > WB_MAX)
        return f->real->pMethods->xWrite(f->real, p, amt, off);
    if (n > f->cap) {
        f->cap = f->cap ? f->cap : 64 * 1024;
        while (n > f->cap)
            f->cap *= 2;
        f->buf = xrealloc(f->buf, f->cap);
    }
    memcpy(f->buf, p, n);
    f->len = n;
    f->off = off;
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *pf, int flags)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wb_lock(sqlite3_file *pf, int level)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xLock(f->real, level);
}

static int wb_unlock(sqlite3_file *pf, int level)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xUnlock(f->real, level);
}

static int wb_check_reserved(sqlite3_file *pf, int *out)
{
    wbfile *f = (wbfile *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_file_control(sqlite3_file *pf, int op, void *arg)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_sector_size(sqlite3_file *pf)
{
    wbfile *f = (wbfile *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_characteristics(sqlite3_file *pf)
{
    wbfile *f = (wbfile *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int wb_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
    wbfile *f = (wbfile *)pf;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int wb_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    wbfile *f = (wbfile *)pf;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *pf)
{
    wbfile *f = (wbfile *)pf;
    f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_unmap(sqlite3_file *pf, int del)
{
    wbfile *f = (wbfile *)pf;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int wb_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **pp)
{
    wbfile *f = (wbfile *)pf;
    int rc = wb_flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, amt, pp);
}

static int wb_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    wbfile *f = (wbfile *)pf;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods wb_methods = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out_flags)
{
    sqlite3_vfs *real = vfs->pAppData;
    if (!(flags & SQLITE_OPEN_WAL))   /* the default VFS's file, in our (larger) allocation */
        return real->xOpen(real, name, pf, flags, out_flags);
    wbfile *f = (wbfile *)pf;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = real->xOpen(real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return rc;
    }
    if (f->real->pMethods->iVersion < 3) {   /* not the unix VFS we know: open it plainly */
        f->real->pMethods->xClose(f->real);
        return real->xOpen(real, name, pf, flags, out_flags);
    }
    f->base.pMethods = &wb_methods;
    return SQLITE_OK;
}

/* the rest of the VFS is the default one's */
#define REAL(v) ((sqlite3_vfs *)(v)->pAppData)
static int wb_delete(sqlite3_vfs *v, const char *n, int sync)
{ return REAL(v)->xDelete(REAL(v), n, sync); }
static int wb_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{ return REAL(v)->xAccess(REAL(v), n, flags, out); }
static int wb_full_pathname(sqlite3_vfs *v, const char *n, int len, char *out)
{ return REAL(v)->xFullPathname(REAL(v), n, len, out); }
static void *wb_dlopen(sqlite3_vfs *v, const char *n)
{ return REAL(v)->xDlOpen(REAL(v), n); }
static void wb_dlerror(sqlite3_vfs *v, int len, char *out)
{ REAL(v)->xDlError(REAL(v), len, out); }
static void (*wb_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{ return REAL(v)->xDlSym(REAL(v), h, sym); }
static void wb_dlclose(sqlite3_vfs *v, void *h)
{ REAL(v)->xDlClose(REAL(v), h); }
static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{ return REAL(v)->xRandomness(REAL(v), n, out); }
static int wb_sleep(sqlite3_vfs *v, int us)
{ return REAL(v)->xSleep(REAL(v), us); }
static int wb_current_time(sqlite3_vfs *v, double *out)
{ return REAL(v)->xCurrentTime(REAL(v), out); }
static int wb_last_error(sqlite3_vfs *v, int n, char *out)
{ return REAL(v)->xGetLastError(REAL(v), n, out); }
static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{ return REAL(v)->xCurrentTimeInt64(REAL(v), out); }

static void wb_register(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real || real->iVersion < 2)
        return;
    wb_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(wbfile) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = CK_SQLITE_VFS,
        .pAppData = real,
        .xOpen = wb_open,
        .xDelete = wb_delete,
        .xAccess = wb_access,
        .xFullPathname = wb_full_pathname,
        .xDlOpen = wb_dlopen,
        .xDlError = wb_dlerror,
        .xDlSym = wb_dlsym,
        .xDlClose = wb_dlclose,
        .xRandomness = wb_randomness,
        .xSleep = wb_sleep,
        .xCurrentTime = wb_current_time,
        .xGetLastError = wb_last_error,
        .xCurrentTimeInt64 = wb_current_time64,
    };
    sqlite3_vfs_register(&wb_vfs, 0);
}

const char *ck__sqlite_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, wb_register);
    return wb_vfs.zName;   /* NULL (the default VFS) if it could not be set up */
}

void ck__sqlite_walbuf_stats(long long *writes, long long *flushes)
{
    *writes = atomic_load(&st_calls);
    *flushes = atomic_load(&st_flushes);
}

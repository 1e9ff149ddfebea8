/* Tests for the SQLite store: the shared conformance suite (store_conformance.h) plus what only an
 * embedded file store has: reopen, refusing foreign/corrupt files, unwritable directories, crash
 * safety under SIGKILL, automatic compaction, slow watchers, list speed, and a write-rate probe. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "store/sqlite.h"

static char tmpdir[256];
static char dbpath[300];

static void rm_store(const char *path)
{
    char p[400];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-journal", path);
    unlink(p);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ck-store-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(dbpath, sizeof dbpath, "%s/store.db", tmpdir);
    ck_error *e = NULL;
    ck_store *s = ck_store_open_sqlite(dbpath, &e);
    if (!s) {
        fprintf(stderr, "open: %s\n", e->msg);
        ck_error_free(e);
        return -1;
    }
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    ck_store_close(*state);
    rm_store(dbpath);
    char p[400];
    snprintf(p, sizeof p, "%s/other.db", tmpdir);
    rm_store(p);
    rmdir(tmpdir);
    return 0;
}

#include "store_conformance.h"

static ck_store *reopen(ck_store *s)
{
    ck_store_close(s);
    ck_error *e = NULL;
    ck_store *n = ck_store_open_sqlite(dbpath, &e);
    if (!n)
        print_error("reopen: %s\n", e->msg);
    assert_non_null(n);
    return n;
}


/* ---- asynchronous writes and close ------------------------------------------------------------- */

/* Writes queued when the store closes are all completed, exactly once, before close returns:
 * committed ones are in the file after a reopen; completions run on the writer, not here. */
typedef struct close_async {
    pthread_mutex_t mu;
    int calls[200], ok;
    int64_t rev[200];
    pthread_t caller;
    bool on_caller;
} close_async;

typedef struct close_slot {
    close_async *ca;
    int i;
} close_slot;

static void close_done(void *ctx, int64_t rev, ck_error *err)
{
    close_slot *sl = ctx;
    pthread_mutex_lock(&sl->ca->mu);
    sl->ca->calls[sl->i]++;
    sl->ca->rev[sl->i] = rev;
    if (!err)
        sl->ca->ok++;
    if (pthread_equal(pthread_self(), sl->ca->caller))
        sl->ca->on_caller = true;
    pthread_mutex_unlock(&sl->ca->mu);
    ck_error_free(err);
}

static void test_async_close(void **state)
{
    ck_store *s = *state;
    enum { N = 200 };
    close_async ca = {.caller = pthread_self()};
    pthread_mutex_init(&ca.mu, NULL);
    close_slot slots[N];
    char keys[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "/registry/async/k%d", i);
        slots[i] = (close_slot){&ca, i};
        ck_write w = {.kind = CK_STORE_CREATE, .key = keys[i], .val = keys[i], .len = strlen(keys[i])};
        ck_store_write_async(s, &w, close_done, &slots[i]);
    }
    ck_store_close(s);   /* drains the queue: every completion has run when it returns */
    *state = NULL;
    pthread_mutex_lock(&ca.mu);
    for (int i = 0; i < N; i++)
        assert_int_equal(ca.calls[i], 1);
    assert_int_equal(ca.ok, N);
    assert_false(ca.on_caller);
    pthread_mutex_unlock(&ca.mu);
    ck_error *e = NULL;
    s = ck_store_open_sqlite(dbpath, &e);
    assert_non_null(s);
    *state = s;
    for (int i = 0; i < N; i++) {
        ck_kv kv = {0};
        assert_int_equal(ck_store_get(s, keys[i], &kv, &e), 0);
        assert_string_equal(kv.value, keys[i]);
        assert_int_equal(kv.mod_revision, ca.rev[i]);
        ck_kv_free(&kv);
    }
    pthread_mutex_destroy(&ca.mu);
}

/* A write refused before it is queued (too large) completes once, on the calling thread, with
 * the synchronous call's error. */
static void test_async_refused(void **state)
{
    ck_store *s = *state;
    close_async ca = {.caller = pthread_self()};
    pthread_mutex_init(&ca.mu, NULL);
    close_slot sl = {&ca, 0};
    size_t big = 16u * 1024 * 1024 + 1;
    char *val = xcalloc(1, big);
    ck_write w = {.kind = CK_STORE_CREATE, .key = "/registry/async/big", .val = val, .len = big};
    ck_store_write_async(s, &w, close_done, &sl);
    assert_int_equal(ca.calls[0], 1);
    assert_int_equal(ca.ok, 0);
    assert_true(ca.on_caller);
    free(val);
    pthread_mutex_destroy(&ca.mu);
}

/* ---- reopen ----------------------------------------------------------------------------------- */

/* Closing a store with a watch still open ends the watch without hanging. */
static void test_close_with_watch(void **state)
{
    ck_store *s = *state;
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, "/registry/", 0, &code), 0);
    int64_t r = sc_create(s, "/registry/x", "1");
    assert_true(sc_watch_wait(&w, r, 0));
    ck_store_close(s);
    *state = NULL;
    w.h = NULL;   /* the store freed it */
    assert_int_equal(w.bad_calls, 0);
    sc_watch_stop(NULL, &w);
    ck_error *e = NULL;
    *state = ck_store_open_sqlite(dbpath, &e);
    assert_non_null(*state);
}

static void test_reopen(void **state)
{
    ck_store *s = *state;
    int64_t r1 = sc_create(s, "/registry/a/x", "one");
    int64_t r2 = sc_update(s, "/registry/a/x", "two", r1);
    int64_t r3 = sc_create(s, "/registry/a/y", "y");
    int64_t r4 = sc_delete(s, "/registry/a/y", r3);
    s = *state = reopen(s);
    assert_int_equal(sc_current(s), r4);
    sc_assert_value(s, "/registry/a/x", "two");
    ck_kv kv = {0};
    SC_FAILS(ck_store_get(s, "/registry/a/y", &kv, err_), CK_E_NOT_FOUND);
    /* the counter continues; history survives */
    assert_int_equal(sc_create(s, "/registry/a/z", "z"), r4 + 1);
    ck_list l = {0};
    SC_OK(ck_store_list(s, "/registry/a/", &(ck_list_opts){.revision = r3}, &l, err_));
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].mod_revision, r2);
    ck_list_free(&l);
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, "/registry/a/", r1, &code), 0);
    assert_true(sc_watch_wait(&w, r4 + 1, 0));
    sc_check_contiguous(&w, r1, r4 + 1, "/registry/a/");
    sc_watch_stop(s, &w);
    /* a closed store is one file: the WAL was folded back */
    s = *state = reopen(s);
    SC_OK(ck_store_compact(s, r4, err_));
    s = *state = reopen(s);
    SC_FAILS(ck_store_list(s, "/registry/a/", &(ck_list_opts){.revision = r2}, &l, err_),
             CK_E_EXPIRED);
    sc_assert_value(s, "/registry/a/z", "z");
}

/* A second process (or a second open) on the same file is refused, not corrupted. */
static void test_locked(void **state)
{
    ck_error *e = NULL;
    ck_store *s2 = ck_store_open_sqlite(dbpath, &e);
    assert_null(s2);
    assert_non_null(e);
    assert_non_null(strstr(e->msg, "in use by this process"));
    ck_error_free(e);
    /* the first store still works */
    int64_t r = sc_create(*state, "/registry/locked", "x");
    sc_assert_value(*state, "/registry/locked", "x");
    /* another process */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ck_error *ce = NULL;
        ck_store *cs = ck_store_open_sqlite(dbpath, &ce);
        _exit(cs ? 1 : ce && strstr(ce->msg, "in use by another process") ? 0 : 2);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(sc_update(*state, "/registry/locked", "y", r), r + 1);
}

/* ---- refusing files that are not ours --------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    char *data = NULL;
    assert_int_equal(ck_read_file(path, 64 << 20, &data, len), 0);
    return data;
}

static void assert_refused(const char *path, const char *msg_part)
{
    char p[512];
    size_t len0, len1;
    cleanup_free char *before = slurp(path, &len0);
    struct stat sb0, sb1;
    assert_int_equal(stat(path, &sb0), 0);
    ck_error *e = NULL;
    ck_store *s = ck_store_open_sqlite(path, &e);
    assert_null(s);
    assert_non_null(e);
    assert_int_equal(e->code, CK_E_CORRUPT);
    if (!strstr(e->msg, msg_part)) {
        print_error("message '%s' lacks '%s'\n", e->msg, msg_part);
        fail();
    }
    assert_non_null(strstr(e->msg, path));
    ck_error_free(e);
    cleanup_free char *after = slurp(path, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    assert_int_equal(stat(path, &sb1), 0);
    assert_int_equal(sb0.st_mtime, sb1.st_mtime);
    snprintf(p, sizeof p, "%s-wal", path);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof p, "%s-shm", path);
    assert_int_equal(access(p, F_OK), -1);
}

static void test_refuse_random_bytes(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/other.db", tmpdir);
    for (int round = 0; round < 2; round++) {
        char buf[8192];
        ck_random_bytes(buf, sizeof buf);
        if (round == 1)
            memcpy(buf, "SQLite format 3", 16);   /* right magic, garbage after it */
        assert_int_equal(ck_write_file_atomic(path, buf, sizeof buf, 0600), 0);
        assert_refused(path, round == 0 ? "not a SQLite database" : "another application");
    }
    /* our magic and application id, garbage after it: damaged, refused, untouched */
    for (int round = 0; round < 3; round++) {
        char buf[16384];
        ck_random_bytes(buf, sizeof buf);
        memcpy(buf, "SQLite format 3", 16);
        buf[16] = 0x10, buf[17] = 0;          /* page size 4096 */
        buf[18] = buf[19] = (char)(round + 1); /* file format 1/2/3 */
        buf[68] = 0x63, buf[69] = 0x6b, buf[70] = 0x75, buf[71] = 0x62;
        assert_int_equal(ck_write_file_atomic(path, buf, sizeof buf, 0600), 0);
        assert_refused(path, "");
    }
    /* a short file */
    assert_int_equal(ck_write_file_atomic(path, "hello", 5, 0600), 0);
    assert_refused(path, "not a SQLite database");
}

static void test_refuse_foreign_sqlite(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/other.db", tmpdir);
    for (int wal = 0; wal < 2; wal++) {
        rm_store(path);
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, wal ? "PRAGMA journal_mode = WAL" : "SELECT 1", NULL,
                                      NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
                                          "INSERT INTO users (name) VALUES ('alice'), ('bob');",
                                      NULL, NULL, NULL), SQLITE_OK);
        if (wal)
            sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close(db);
        char p[512];
        snprintf(p, sizeof p, "%s-wal", path);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", path);
        unlink(p);
        assert_refused(path, "another application");
    }
    /* and its data is still readable by its owner */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM users", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 2);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* Our own application id but not our schema: also refused. */
static void test_refuse_wrong_schema(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/other.db", tmpdir);
    rm_store(path);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA application_id = 1667987810;"
                                      "CREATE TABLE t (x);", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_error *e = NULL;
    ck_store *s = ck_store_open_sqlite(path, &e);
    assert_null(s);
    assert_int_equal(e->code, CK_E_CORRUPT);
    ck_error_free(e);
}

/* The open of a store in a directory we cannot write: a clear I/O error naming the path.  As root
 * the check runs in a child that drops to an unprivileged user. */
static void test_unwritable_dir(void **state)
{
    char dir[400], path[450];
    snprintf(dir, sizeof dir, "%s/ro", tmpdir);
    assert_int_equal(mkdir(dir, 0555), 0);
    assert_int_equal(chmod(tmpdir, 0755), 0);
    snprintf(path, sizeof path, "%s/store.db", dir);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
            _exit(3);
        ck_error *e = NULL;
        ck_store *s = ck_store_open_sqlite(path, &e);
        char msg[512];
        snprintf(msg, sizeof msg, "%d %s", e ? (int)e->code : -1, e ? e->msg : "opened");
        if (write(pfd[1], msg, strlen(msg)) < 0)
            _exit(4);
        ck_store_close(s);
        _exit(s ? 1 : 0);
    }
    close(pfd[1]);
    char msg[512] = {0};
    ssize_t n = read(pfd[0], msg, sizeof msg - 1);
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    chmod(tmpdir, 0700);
    rmdir(dir);
    assert_true(n > 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0 || atoi(msg) != CK_E_IO || !strstr(msg, path) ||
        !strstr(msg, "Permission denied")) {
        print_error("child (exit %d): %s\n", WEXITSTATUS(status), msg);
        fail();
    }
}

/* ---- crash safety: SIGKILL a writer storm, then check what was acknowledged ------------------- */

#define CRASH_THREADS 8

typedef struct crash_arg {
    ck_store *s;
    int id, fd;
} crash_arg;

/* value = "<key>|<seq>|<padding>|<crc32 of what precedes, 8 hex>" */
static size_t make_value(char *buf, size_t cap, const char *key, int seq, unsigned *seed)
{
    int pad = (int)(rand_r(seed) % 3000);
    int n = snprintf(buf, cap, "%s|%d|", key, seq);
    for (int i = 0; i < pad && (size_t)n < cap - 16; i++)
        buf[n++] = (char)('a' + rand_r(seed) % 26);
    uLong crc = crc32(0L, (const Bytef *)buf, (uInt)n);
    n += snprintf(buf + n, cap - (size_t)n, "|%08lx", crc);
    return (size_t)n;
}

static bool value_ok(const char *v, size_t len, const char *key)
{
    if (len < 10 || v[len - 9] != '|')
        return false;
    uLong crc = crc32(0L, (const Bytef *)v, (uInt)(len - 9));
    char want[9];
    snprintf(want, sizeof want, "%08lx", crc);
    if (memcmp(v + len - 8, want, 8) != 0)
        return false;
    size_t kl = strlen(key);
    return strncmp(v, key, kl) == 0 && v[kl] == '|';
}

static void *crash_writer(void *p)
{
    crash_arg *a = p;
    unsigned seed = (unsigned)(a->id * 7919 + getpid());
    char val[4096], line[256];
    for (int i = 0;; i++) {
        char key[128];
        unsigned dice = rand_r(&seed) % 10;
        bool upd = i > 4 && dice < 3, del = i > 4 && dice == 3;   /* 30% updates, 10% deletes */
        int ki = upd || del ? (int)(rand_r(&seed) % (unsigned)i) : i;
        snprintf(key, sizeof key, "/registry/crash/p%dt%d/%06d", (int)getpid(), a->id, ki);
        size_t n = make_value(val, sizeof val, key, i, &seed);
        int64_t rev = 0;
        ck_error *e = NULL;
        int rc = del   ? ck_store_delete(a->s, key, 0, NULL, &rev, &e)
                 : upd ? ck_store_update(a->s, key, val, n, 0, &rev, &e)
                       : ck_store_create(a->s, key, val, n, &rev, &e);
        if (rc < 0) {
            bool benign = e->code == CK_E_EXISTS || e->code == CK_E_NOT_FOUND;
            ck_error_free(e);
            if (benign)
                continue;   /* a key from an earlier round */
            _exit(5);
        }
        int ln = snprintf(line, sizeof line, "%lld %s %c\n", (long long)rev, key, del ? 'D' : 'P');
        if (write(a->fd, line, (size_t)ln) != ln)   /* < PIPE_BUF: atomic */
            _exit(6);
    }
    return NULL;
}

static void crash_child(int fd)
{
    ck_error *e = NULL;
    ck_store *s = ck_store_open_sqlite(dbpath, &e);
    if (!s)
        _exit(2);
    pthread_t th[CRASH_THREADS];
    crash_arg args[CRASH_THREADS];
    for (int i = 0; i < CRASH_THREADS; i++) {
        args[i] = (crash_arg){s, i, fd};
        pthread_create(&th[i], NULL, crash_writer, &args[i]);
    }
    pause();   /* until SIGKILL */
    _exit(7);
}

typedef struct acked {
    int64_t rev;
    char key[100];
    char op;                  /* P(ut) or D(elete) */
} acked;

static void test_crash(void **state)
{
    ck_store *s = *state;
    sc_create(s, "/registry/crash-marker", "m");
    ck_store_close(s);
    *state = NULL;
    for (int round = 0; round < 4; round++) {
        ck_error *e = NULL;
        s = ck_store_open_sqlite(dbpath, &e);
        assert_non_null(s);
        int64_t base = sc_current(s);
        ck_store_close(s);

        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            crash_child(pfd[1]);
        }
        close(pfd[1]);
        /* read acknowledgements for a while, then kill mid-storm */
        size_t cap = 1 << 16, n = 0;
        acked *acks = xmalloc(cap * sizeof *acks);
        char buf[65536];
        size_t blen = 0;
        int64_t deadline = ck_now_ns() + (200 + 150 * round) * 1000000LL;
        bool killed = false;
        for (;;) {
            if (!killed && ck_now_ns() >= deadline) {
                kill(pid, SIGKILL);
                killed = true;
            }
            ssize_t r = read(pfd[0], buf + blen, sizeof buf - blen);
            if (r <= 0)
                break;
            blen += (size_t)r;
            char *line = buf, *nl;
            while ((nl = memchr(line, '\n', blen - (size_t)(line - buf)))) {
                *nl = '\0';
                if (n == cap) {
                    cap *= 2;
                    acks = xrealloc(acks, cap * sizeof *acks);
                }
                long long rv;
                assert_int_equal(sscanf(line, "%lld %99s %c", &rv, acks[n].key, &acks[n].op), 3);
                acks[n++].rev = rv;
                line = nl + 1;
            }
            blen -= (size_t)(line - buf);
            memmove(buf, line, blen);
        }
        close(pfd[0]);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        assert_true(n > 0);

        s = ck_store_open_sqlite(dbpath, &e);
        if (!s)
            print_error("reopen after kill: %s\n", e->msg);
        assert_non_null(s);
        int64_t cur = sc_current(s);
        int64_t max_ack = 0;
        for (size_t i = 0; i < n; i++)
            if (acks[i].rev > max_ack)
                max_ack = acks[i].rev;
        assert_true(cur >= max_ack);
        /* replay the whole round from the log: contiguous, and every value intact */
        sc_watch w;
        enum ck_error_code code;
        assert_int_equal(sc_watch_start(s, &w, "/registry/", base, &code), 0);
        assert_true(sc_watch_wait(&w, cur, 0));
        sc_check_contiguous(&w, base, cur, "/registry/crash/");
        for (size_t i = 0; i < w.n; i++) {
            if (w.evs[i].type == CK_EVENT_DELETE) {
                assert_non_null(w.evs[i].prev_value);   /* what was deleted was whole, too */
                assert_true(value_ok(w.evs[i].prev_value, w.evs[i].prev_value_len, w.evs[i].key));
                continue;
            }
            if (!value_ok(w.evs[i].value, strlen(w.evs[i].value), w.evs[i].key)) {
                print_error("rev %lld: bad value for %s\n", (long long)w.evs[i].revision,
                            w.evs[i].key);
                fail();
            }
        }
        for (size_t i = 0; i < n; i++) {
            int64_t idx = acks[i].rev - base - 1;
            assert_true(idx >= 0 && (size_t)idx < w.n);
            assert_string_equal(w.evs[idx].key, acks[i].key);
            assert_int_equal(w.evs[idx].type, acks[i].op == 'D' ? CK_EVENT_DELETE : CK_EVENT_PUT);
        }
        sc_watch_stop(s, &w);
        /* current state: every value intact */
        ck_list l = {0};
        SC_OK(ck_store_list(s, "/registry/crash/", NULL, &l, err_));
        for (size_t i = 0; i < l.n; i++)
            assert_true(value_ok(l.items[i].value, l.items[i].value_len, l.items[i].key));
        fprintf(stderr, "# crash round %d: %zu acknowledged writes (%lld committed), %zu keys\n",
                round, n, (long long)(cur - base), l.n);
        ck_list_free(&l);
        ck_store_close(s);
        free(acks);
    }
    ck_error *e = NULL;
    *state = ck_store_open_sqlite(dbpath, &e);
    assert_non_null(*state);
}

/* ---- write errors: a file size limit makes the disk "full" -------------------------------- */

/* In a child with RLIMIT_FSIZE: writes start failing with CK_E_IO (no crash, no revision used,
 * reads still work); the parent then reopens without the limit and finds every acknowledged
 * write.  Exit codes: 0 ok, 10+ a failed check. */
static int full_child(int fd)
{
    signal(SIGXFSZ, SIG_IGN);
    ck_error *e = NULL;
    ck_store *s = ck_store_open_sqlite(dbpath, &e);
    if (!s)
        return 10;
    struct rlimit rl = {4 * 1024 * 1024, 4 * 1024 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 11;
    char *val = xmalloc(50000);
    memset(val, 'f', 50000);
    int64_t last = 0;
    int failures = 0;
    for (int i = 0; i < 400 && failures < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "/registry/full/%04d", i);
        int64_t rev = 0;
        if (ck_store_create(s, key, val, 50000, &rev, &e) == 0) {
            if (rev != last + 1 && last)
                return 12;   /* a failed write used a revision */
            last = rev;
            char line[32];
            int n = snprintf(line, sizeof line, "%lld\n", (long long)rev);
            if (write(fd, line, (size_t)n) != n)
                return 13;
            continue;
        }
        if (e->code != CK_E_IO)
            return 14;
        ck_error_free(e);
        e = NULL;
        failures++;
        int64_t cur = 0;
        ck_kv kv = {0};
        if (ck_store_current_revision(s, &cur, &e) < 0 || cur != last)
            return 15;
        if (ck_store_get(s, "/registry/full/0000", &kv, &e) < 0 || kv.value_len != 50000)
            return 16;
        ck_kv_free(&kv);
    }
    free(val);
    if (failures == 0)
        return 17;   /* the limit never bit: the test tested nothing */
    ck_store_close(s);
    return 0;
}

static void test_disk_full(void **state)
{
    ck_store_close(*state);
    *state = NULL;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        _exit(full_child(pfd[1]));
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    long long rev, nacks = 0, max_ack = 0;
    while (fscanf(f, "%lld", &rev) == 1) {
        nacks++;
        if (rev > max_ack)
            max_ack = rev;
    }
    fclose(f);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) {
        print_error("child failed check %d\n", WEXITSTATUS(status));
        fail();
    }
    assert_true(nacks > 0);
    ck_error *e = NULL;
    ck_store *s = *state = ck_store_open_sqlite(dbpath, &e);
    if (!s)
        print_error("reopen: %s\n", e->msg);
    assert_non_null(s);
    assert_int_equal(sc_current(s), max_ack);
    ck_list l = {0};
    SC_OK(ck_store_list(s, "/registry/full/", NULL, &l, err_));
    assert_int_equal(l.n, nacks);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.items[i].value_len, 50000);
    ck_list_free(&l);
    /* and it takes writes again */
    assert_int_equal(sc_create(s, "/registry/full/after", "x"), max_ack + 1);
}

/* ---- compaction, slow watchers, speed ------------------------------------------------------- */

static void test_auto_compaction(void **state)
{
    ck_store *s = *state;
    int64_t first = sc_create(s, "/registry/ac/k", "0");
    int64_t r = first;
    for (int i = 1; i < 300; i++)
        r = sc_update(s, "/registry/ac/k", "v", r);
    SC_OK(ck_store_sqlite_set_compaction(s, 50, 20, err_));
    ck_sqlite_stats stats = {0};
    for (int i = 0; i < 200 && stats.compactions == 0; i++) {
        sc_sleep_ms(10);
        SC_OK(ck_store_sqlite_stats(s, &stats, err_));
    }
    assert_true(stats.compactions > 0);
    ck_list l = {0};
    SC_FAILS(ck_store_list(s, "/registry/ac/", &(ck_list_opts){.revision = first + 5}, &l, err_),
             CK_E_EXPIRED);
    SC_OK(ck_store_list(s, "/registry/ac/", &(ck_list_opts){.revision = r - 5}, &l, err_));
    assert_int_equal(l.n, 1);
    ck_list_free(&l);
    sc_assert_value(s, "/registry/ac/k", "v");
    SC_FAILS(ck_store_sqlite_set_compaction(s, 50, 0, err_), CK_E_INVALID);
}

/* Churn with automatic compaction keeps the file bounded. */
static void test_file_size_bounded(void **state)
{
    ck_store *s = *state;
    SC_OK(ck_store_sqlite_set_compaction(s, 20, 50, err_));
    char *val = xmalloc(20000);
    memset(val, 'x', 20000);
    for (int i = 0; i < 3000; i++) {
        char key[64];
        snprintf(key, sizeof key, "/registry/churn/%d", i % 20);
        int64_t rev;
        ck_error *e = NULL;
        if (ck_store_update(s, key, val, 20000, 0, &rev, &e) < 0) {
            ck_error_free(e);
            e = NULL;
            SC_OK(ck_store_create(s, key, val, 20000, &rev, err_));
        }
        if (i % 100 == 0)
            sc_sleep_ms(5);   /* let the compactor in */
    }
    free(val);
    sc_sleep_ms(200);
    struct stat sb;
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    assert_int_equal(stat(dbpath, &sb), 0);
    off_t db = sb.st_size, wl = stat(wal, &sb) == 0 ? sb.st_size : 0;
    fprintf(stderr, "# 3000 x 20 KB writes (60 MB) on 20 keys: db %lld KB, wal %lld KB\n",
            (long long)db / 1024, (long long)wl / 1024);
    assert_true(db < 30 * 1024 * 1024);
    assert_true(wl < 80 * 1024 * 1024);
}

typedef struct slow_ctx {
    sc_watch w;
    atomic_int gate;
} slow_ctx;

static void slow_cb(void *ctx, const ck_event *evs, size_t n, const ck_error *err)
{
    slow_ctx *c = ctx;
    while (!atomic_load(&c->gate))
        sc_sleep_ms(1);
    sc_watch_cb(&c->w, evs, n, err);
}

/* A watcher stuck in its callback while > 20000 events commit: its queue is dropped and it
 * re-reads the log, still getting every event once, in order. */
static void test_slow_watcher(void **state)
{
    ck_store *s = *state;
    slow_ctx c;
    sc_watch_init(&c.w);
    atomic_init(&c.gate, 0);
    sc_create(s, "/registry/slow/first", "x");
    int64_t start = sc_create(s, "/registry/slow/second", "x");
    ck_watch_handle *h = NULL;
    SC_OK(ck_store_watch(s, "/registry/slow/", start - 1, slow_cb, &c, &h, err_));
    enum { T = 16, N = 1600 };
    pthread_t th[T];
    sc_storm args[T];
    cleanup_free int64_t *revs = xcalloc(T * N, sizeof *revs);
    for (int i = 0; i < T; i++) {
        args[i] = (sc_storm){s, "/registry/slow/", i, N, revs + i * N, 0};
        pthread_create(&th[i], NULL, sc_storm_thread, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    int64_t last = sc_current(s);
    ck_sqlite_stats st = {0};
    SC_OK(ck_store_sqlite_stats(s, &st, err_));
    assert_true(st.watch_resyncs > 0);
    atomic_store(&c.gate, 1);
    assert_true(sc_watch_wait(&c.w, last, 0));
    sc_check_contiguous(&c.w, start - 1, last, "/registry/slow/");
    ck_store_watch_cancel(s, h);
    c.w.h = NULL;
    sc_watch_stop(s, &c.w);
}

/* A watcher that falls behind past a compaction ends with CK_E_EXPIRED, after delivering a
 * gap-free prefix of the events. */
static void test_slow_watcher_expired(void **state)
{
    ck_store *s = *state;
    slow_ctx c;
    sc_watch_init(&c.w);
    atomic_init(&c.gate, 0);
    sc_create(s, "/registry/lag/first", "x");
    int64_t start = sc_create(s, "/registry/lag/second", "x");
    ck_watch_handle *h = NULL;
    SC_OK(ck_store_watch(s, "/registry/lag/", start - 1, slow_cb, &c, &h, err_));
    enum { T = 16, N = 2000 };
    pthread_t th[T];
    sc_storm args[T];
    cleanup_free int64_t *revs = xcalloc(T * N, sizeof *revs);
    for (int i = 0; i < T; i++) {
        args[i] = (sc_storm){s, "/registry/lag/", i, N, revs + i * N, 0};
        pthread_create(&th[i], NULL, sc_storm_thread, &args[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    int64_t last = sc_current(s);
    SC_OK(ck_store_compact(s, last, err_));
    atomic_store(&c.gate, 1);
    assert_true(sc_watch_wait_end(&c.w));
    assert_int_equal(c.w.end_code, CK_E_EXPIRED);
    assert_int_equal(c.w.bad_calls, 0);
    assert_true(c.w.n > 0 && c.w.n < (size_t)(last - start + 1));
    sc_check_contiguous(&c.w, start - 1, c.w.evs[c.w.n - 1].revision, "/registry/lag/");
    ck_store_watch_cancel(s, h);
    c.w.h = NULL;
    sc_watch_stop(s, &c.w);
}

/* History with large values is read in byte-bounded chunks: still complete and in order. */
static void test_watch_large_history(void **state)
{
    ck_store *s = *state;
    size_t len = 1536 * 1024;
    cleanup_free char *val = xmalloc(len);
    int64_t first = sc_create(s, "/registry/big/0", "small");
    int64_t last = first;
    for (int i = 0; i < 24; i++) {   /* 36 MiB of values, plus their prev values */
        memset(val, 'a' + i, len);
        SC_OK(ck_store_update(s, "/registry/big/0", val, len, 0, &last, err_));
    }
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, "/registry/big/", first, &code), 0);
    assert_true(sc_watch_wait(&w, last, 0));
    sc_check_contiguous(&w, first, last, "/registry/big/");
    for (size_t i = 0; i < w.n; i++) {
        assert_int_equal(strlen(w.evs[i].value), len);
        assert_int_equal(w.evs[i].value[len - 1], 'a' + (int)i);
        assert_int_equal(strlen(w.evs[i].prev_value), i ? len : 5);
    }
    sc_watch_stop(s, &w);
}

static void test_list_10k_fast(void **state)
{
    ck_store *s = *state;
    enum { T = 8, N = 1250 };
    pthread_t th[T];
    sc_storm args[T];
    cleanup_free int64_t *revs = xcalloc(T * N, sizeof *revs);
    for (int i = 0; i < T; i++) {
        args[i] = (sc_storm){s, "/registry/pods/", i, N, revs + i * N, 0};
        pthread_create(&th[i], NULL, sc_storm_thread, &args[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    /* some history and deletes too */
    for (int i = 0; i < 500; i++) {
        char k[64];
        snprintf(k, sizeof k, "/registry/pods/t00/%04d", i);
        sc_update(s, k, "updated", 0);
    }
    int64_t best = INT64_MAX, best_keys = INT64_MAX, best_page = INT64_MAX;
    for (int round = 0; round < 5; round++) {
        ck_list l = {0};
        int64_t t0 = ck_now_ns();
        SC_OK(ck_store_list(s, "/registry/pods/", NULL, &l, err_));
        int64_t t1 = ck_now_ns();
        assert_int_equal(l.n, T * N);
        ck_list_free(&l);
        SC_OK(ck_store_list(s, "/registry/pods/", &(ck_list_opts){.keys_only = true}, &l, err_));
        int64_t t2 = ck_now_ns();
        ck_list_free(&l);
        SC_OK(ck_store_list(s, "/registry/pods/", &(ck_list_opts){.limit = 500,
                            .start_after = "/registry/pods/t04/0000"}, &l, err_));
        int64_t t3 = ck_now_ns();
        assert_int_equal(l.n, 500);
        assert_int_equal(l.remaining, T * N - 4 * N - 1 - 500);
        ck_list_free(&l);
        if (t1 - t0 < best)
            best = t1 - t0;
        if (t2 - t1 < best_keys)
            best_keys = t2 - t1;
        if (t3 - t2 < best_page)
            best_page = t3 - t2;
    }
    fprintf(stderr, "# list 10000 keys: %.1f ms with values, %.1f ms keys only, "
            "%.1f ms for a 500-key page + count\n", best / 1e6, best_keys / 1e6, best_page / 1e6);
    assert_true(best < 150 * 1000000LL);   /* loose: sanitizer builds are slower */
}

/* ---- write rate (informational; docs/store.md quotes it) ------------------------------------- */

typedef struct rate_arg {
    ck_store *s;
    int id;
    int64_t until;
    int64_t n;
    int64_t *lat;
    size_t nlat, cap;
} rate_arg;

static void *rate_thread(void *p)
{
    rate_arg *a = p;
    char val[1024];
    memset(val, 'v', sizeof val);
    for (int64_t i = 0; ck_now_ns() < a->until; i++) {
        char key[96];
        snprintf(key, sizeof key, "/registry/rate/t%d/%lld", a->id, (long long)i);
        int64_t t0 = ck_now_ns(), rev;
        ck_error *e = NULL;
        if (ck_store_create(a->s, key, val, sizeof val, &rev, &e) < 0) {
            ck_error_free(e);
            return NULL;
        }
        if (a->nlat == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 4096;
            a->lat = xrealloc(a->lat, a->cap * sizeof *a->lat);
        }
        a->lat[a->nlat++] = ck_now_ns() - t0;
        a->n++;
    }
    return NULL;
}

static void test_write_rate(void **state)
{
    ck_store *s = *state;
    static const int conc[] = {1, 16, 64};
    for (size_t c = 0; c < ARRAY_SIZE(conc); c++) {
        int T = conc[c];
        pthread_t *th = xcalloc((size_t)T, sizeof *th);
        rate_arg *args = xcalloc((size_t)T, sizeof *args);
        ck_sqlite_stats s0, s1;
        SC_OK(ck_store_sqlite_stats(s, &s0, err_));
        int64_t t0 = ck_now_ns(), until = t0 + 1000 * 1000000LL;
        for (int i = 0; i < T; i++) {
            args[i] = (rate_arg){.s = s, .id = (int)c * 100 + i, .until = until};
            pthread_create(&th[i], NULL, rate_thread, &args[i]);
        }
        int64_t total = 0;
        size_t nl = 0;
        for (int i = 0; i < T; i++) {
            pthread_join(th[i], NULL);
            total += args[i].n;
            nl += args[i].nlat;
        }
        double secs = (ck_now_ns() - t0) / 1e9;
        SC_OK(ck_store_sqlite_stats(s, &s1, err_));
        int64_t *all = xcalloc(nl ? nl : 1, sizeof *all);
        size_t k = 0;
        for (int i = 0; i < T; i++) {
            memcpy(all + k, args[i].lat, args[i].nlat * sizeof *all);
            k += args[i].nlat;
            free(args[i].lat);
        }
        qsort(all, nl, sizeof *all, sc_cmp_i64);
        fprintf(stderr, "# %2d writers: %7.0f writes/s, p50 %.2f ms, p99 %.2f ms, "
                "%.1f writes/commit\n", T, total / secs, nl ? all[nl / 2] / 1e6 : 0,
                nl ? all[nl * 99 / 100] / 1e6 : 0,
                (double)(s1.writes - s0.writes) / (double)(s1.commits - s0.commits + !(s1.commits - s0.commits)));
        assert_true(total > 0);
        if (T >= 16)   /* group commit: concurrent writers share commits */
            assert_true(s1.writes - s0.writes > (s1.commits - s0.commits) * 3 / 2);
        free(all);
        free(args);
        free(th);
    }
}


/* Commits do not write meta's current_rev; the current revision is the newest row's.  Compacting
 * away the newest row (a tombstone) must not move it back, before or after a reopen. */
static void test_current_rev_after_compacting_top_tombstone(void **state)
{
    ck_store *s = *state;
    int64_t r1 = sc_create(s, "/registry/t/a", "1");
    int64_t r2 = sc_delete(s, "/registry/t/a", r1);
    SC_OK(ck_store_compact(s, r2, err_));
    ck_list l = {0};
    SC_OK(ck_store_list(s, "/registry/t/", &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.revision, r2);
    assert_int_equal(l.n, 0);
    ck_list_free(&l);
    s = *state = reopen(s);
    assert_int_equal(sc_current(s), r2);
    SC_OK(ck_store_list(s, "/registry/t/", &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.revision, r2);
    ck_list_free(&l);
    assert_int_equal(sc_create(s, "/registry/t/b", "2"), r2 + 1);
    s = *state = reopen(s);
    assert_int_equal(sc_current(s), r2 + 1);
}

typedef struct gather_arg {
    ck_store *s;
    int id, n;
    int64_t *revs;
} gather_arg;

static void *gather_thread(void *p)
{
    gather_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        char key[64];
        snprintf(key, sizeof key, "/registry/g/t%d/%d", a->id, i);
        ck_error *e = NULL;
        if (ck_store_create(a->s, key, "v", 1, &a->revs[i], &e) < 0) {
            ck_error_free(e);
            a->revs[i] = -1;
        }
        usleep(2000);   /* think time: alone, each write would be a commit of its own */
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Group commit gathering: concurrent writers share commits, each write gets its own revision in
 * call order per writer and all revisions are contiguous, a watch sees them all in order; a lone
 * serial writer is not held back by the commit delay. */
static void test_group_commit_gather(void **state)
{
    const char *delay = getenv("TEST_GATHER_US");   /* to see the test fail without gathering */
    setenv("CKUBE_SQLITE_COMMIT_DELAY_US", delay ? delay : "50000", 1);   /* exaggerated: 50 ms */
    ck_store *s = *state = reopen(*state);
    unsetenv("CKUBE_SQLITE_COMMIT_DELAY_US");
    int64_t start = sc_current(s);
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, "/registry/g/", start, &code), 0);
    enum { T = 4, N = 20 };
    pthread_t th[T];
    gather_arg args[T];
    int64_t all[T * N];
    ck_sqlite_stats s0, s1;
    SC_OK(ck_store_sqlite_stats(s, &s0, err_));
    for (int i = 0; i < T; i++) {
        args[i] = (gather_arg){.s = s, .id = i, .n = N, .revs = all + i * N};
        pthread_create(&th[i], NULL, gather_thread, &args[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    SC_OK(ck_store_sqlite_stats(s, &s1, err_));
    for (int i = 0; i < T; i++)
        for (int j = 1; j < N; j++)
            assert_true(args[i].revs[j] > args[i].revs[j - 1]);
    qsort(all, T * N, sizeof *all, cmp_i64);
    for (int i = 0; i < T * N; i++)
        assert_int_equal(all[i], start + 1 + i);
    assert_int_equal(s1.writes - s0.writes, T * N);
    /* the writers' writes gathered into shared commits (without gathering: ~1 a commit) */
    print_message("# %d writers with think time: %.1f writes a commit\n", T,
                  (double)(s1.writes - s0.writes) / (double)(s1.commits - s0.commits));
    assert_true((s1.commits - s0.commits) * 3 <= s1.writes - s0.writes);
    assert_true(sc_watch_wait(&w, start + T * N, 0));
    sc_check_contiguous(&w, start, start + T * N, "/registry/g/");
    sc_watch_stop(s, &w);
    /* serial writes: after the first (the last batch was concurrent), none waits the 50 ms */
    int64_t t0 = ck_now_ns();
    for (int i = 0; i < 20; i++) {
        char key[64];
        snprintf(key, sizeof key, "/registry/g/serial/%d", i);
        sc_create(s, key, "v");
    }
    int64_t ms = (ck_now_ns() - t0) / 1000000;
    print_message("# 20 serial writes with a 50 ms commit delay: %lld ms\n", (long long)ms);
    assert_true(ms < 19 * 50);
}

void ck__sqlite_walbuf_stats(long long *writes, long long *flushes);   /* sqlite_walbuf.c */

/* The WAL writes of a commit reach the file in a few pwrites (two a frame before), and they are
 * there when the write is acknowledged: another process's view of the file (a plain SQLite
 * connection on the default VFS) sees every acknowledged row at once. */
static void test_wal_writes_gathered(void **state)
{
    ck_store *s = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    long long w0, f0, w1, f1;
    ck__sqlite_walbuf_stats(&w0, &f0);
    char val[3000];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < 50; i++) {
        char key[64];
        snprintf(key, sizeof key, "/registry/wb/%d", i);
        int64_t rev;
        SC_OK(ck_store_create(s, key, val, sizeof val, &rev, err_));
        sqlite3_stmt *q = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT key, length(value) FROM kv WHERE rev = ?1",
                                            -1, &q, NULL), SQLITE_OK);
        sqlite3_bind_int64(q, 1, rev);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), key);
        assert_int_equal(sqlite3_column_int(q, 1), (int)sizeof val);
        sqlite3_finalize(q);
    }
    ck__sqlite_walbuf_stats(&w1, &f1);
    print_message("# 50 commits: %lld WAL writes by SQLite, %lld pwrites\n", w1 - w0, f1 - f0);
    assert_true(w1 - w0 >= 4 * 50);            /* a frame is two writes, a commit 2+ frames */
    assert_true((f1 - f0) * 3 <= w1 - w0);
    sqlite3_close(db);
}

/* ---- value cache ------------------------------------------------------------------------------- */

static ck_sqlite_stats cache_stats(ck_store *s)
{
    ck_sqlite_stats st;
    SC_OK(ck_store_sqlite_stats(s, &st, err_));
    return st;
}

static ck_store *reopen_cache(ck_store *s, const char *bytes)
{
    setenv("CKUBE_SQLITE_CACHE_BYTES", bytes, 1);
    s = reopen(s);
    unsetenv("CKUBE_SQLITE_CACHE_BYTES");
    return s;
}

/* Gets after writes come from the cache and follow every write; a small bound evicts and the
 * evicted keys are read from the file again; 0 turns the cache off. */
static void test_value_cache(void **state)
{
    ck_store *s = *state;
    int64_t r1 = sc_create(s, "/registry/c/a", "one");
    ck_sqlite_stats a = cache_stats(s);
    sc_assert_value(s, "/registry/c/a", "one");
    ck_sqlite_stats b = cache_stats(s);
    assert_int_equal(b.cache_hits, a.cache_hits + 1);
    int64_t r2 = sc_update(s, "/registry/c/a", "two", r1);
    ck_kv kv = {0};
    SC_OK(ck_store_get(s, "/registry/c/a", &kv, err_));
    assert_string_equal(kv.value, "two");
    assert_int_equal(kv.mod_revision, r2);
    assert_int_equal(kv.create_revision, r1);
    ck_kv_free(&kv);
    sc_delete(s, "/registry/c/a", r2);
    SC_FAILS(ck_store_get(s, "/registry/c/a", &kv, err_), CK_E_NOT_FOUND);
    int64_t r4 = sc_create(s, "/registry/c/a", "again");   /* a new life: new create_revision */
    SC_OK(ck_store_get(s, "/registry/c/a", &kv, err_));
    assert_int_equal(kv.create_revision, r4);
    ck_kv_free(&kv);

    /* 64 KiB bound, 64 values of 4 KiB: the old ones are evicted, still read right */
    s = *state = reopen_cache(s, "65536");
    char val[4097];
    for (int i = 0; i < 64; i++) {
        char key[64];
        snprintf(key, sizeof key, "/registry/c/k%02d", i);
        memset(val, 'a' + i % 26, 4096);
        val[4096] = '\0';
        sc_create(s, key, val);
    }
    assert_true(cache_stats(s).cache_bytes <= 65536);
    assert_true(cache_stats(s).cache_bytes > 0);
    for (int i = 63; i >= 0; i--) {   /* newest first: the first ones are still cached */
        char key[64];
        snprintf(key, sizeof key, "/registry/c/k%02d", i);
        SC_OK(ck_store_get(s, key, &kv, err_));
        assert_int_equal(kv.value_len, 4096);
        assert_int_equal(kv.value[0], 'a' + i % 26);
        ck_kv_free(&kv);
    }
    b = cache_stats(s);
    assert_true(b.cache_misses > 0);
    assert_true(b.cache_hits > 0);
    assert_true(b.cache_bytes <= 65536);

    /* off */
    s = *state = reopen_cache(s, "0");
    sc_assert_value(s, "/registry/c/a", "again");
    b = cache_stats(s);
    assert_int_equal(b.cache_hits, 0);
    assert_int_equal(b.cache_bytes, 0);
}

/* Writers and readers race on a handful of keys through a cache too small to hold them, so
 * readers keep filling it from the file while the writer thread replaces entries: a get never
 * goes back in time, and a writer always reads its own write. */
#define RACE_KEYS 8
#define RACE_ROUNDS 300

typedef struct race_arg {
    ck_store *s;
    int id;
    atomic_bool *stop;
    int bad;
} race_arg;

static void *race_writer(void *p)
{
    race_arg *a = p;
    char key[64], val[600];
    snprintf(key, sizeof key, "/registry/race/k%d", a->id);
    int64_t rev = 0;
    for (int i = 1; i <= RACE_ROUNDS; i++) {
        snprintf(val, sizeof val, "%08d", i);
        memset(val + 8, 'x', 500);
        val[508] = '\0';
        ck_error *e = NULL;
        int rc = i == 1 ? ck_store_create(a->s, key, val, strlen(val), &rev, &e)
                        : ck_store_update(a->s, key, val, strlen(val), rev, &rev, &e);
        if (rc < 0) {
            ck_error_free(e);
            a->bad++;
            break;
        }
        ck_kv kv = {0};
        if (ck_store_get(a->s, key, &kv, &e) < 0) {
            ck_error_free(e);
            a->bad++;
            break;
        }
        if (kv.mod_revision != rev || atoi(kv.value) != i) {
            fprintf(stderr, "# writer %d: wrote %d at %lld, read %d at %lld\n", a->id, i,
                    (long long)rev, atoi(kv.value), (long long)kv.mod_revision);
            a->bad++;
        }
        ck_kv_free(&kv);
    }
    return NULL;
}

static void *race_reader(void *p)
{
    race_arg *a = p;
    int64_t last_rev[RACE_KEYS] = {0};
    int last_n[RACE_KEYS] = {0};
    while (!atomic_load(a->stop)) {
        for (int k = 0; k < RACE_KEYS; k++) {
            char key[64];
            snprintf(key, sizeof key, "/registry/race/k%d", k);
            ck_kv kv = {0};
            ck_error *e = NULL;
            if (ck_store_get(a->s, key, &kv, &e) < 0) {
                ck_error_free(e);   /* not created yet */
                continue;
            }
            int n = atoi(kv.value);
            if (kv.mod_revision < last_rev[k] || n < last_n[k] ||
                (kv.mod_revision == last_rev[k] && n != last_n[k])) {
                fprintf(stderr, "# reader: %s went from %d at %lld to %d at %lld\n", key,
                        last_n[k], (long long)last_rev[k], n, (long long)kv.mod_revision);
                a->bad++;
            }
            last_rev[k] = kv.mod_revision;
            last_n[k] = n;
            ck_kv_free(&kv);
        }
    }
    return NULL;
}

static void test_value_cache_race(void **state)
{
    ck_store *s = *state = reopen_cache(*state, "4096");   /* holds about 5 of the 8 keys */
    atomic_bool stop = false;
    pthread_t th[RACE_KEYS + 3];
    race_arg args[RACE_KEYS + 3];
    for (int i = 0; i < RACE_KEYS + 3; i++) {
        args[i] = (race_arg){.s = s, .id = i, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, i < RACE_KEYS ? race_writer : race_reader,
                                        &args[i]), 0);
    }
    for (int i = 0; i < RACE_KEYS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop, true);
    for (int i = RACE_KEYS; i < RACE_KEYS + 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < RACE_KEYS + 3; i++)
        assert_int_equal(args[i].bad, 0);
    ck_sqlite_stats st = cache_stats(s);
    assert_true(st.cache_hits > 0);
    assert_true(st.cache_misses > 0);
}

/* ---- inline watchers (ck_store_watch_inline) ---- */

typedef struct inline_ctx {
    sc_watch w;
    atomic_int gate;          /* the first call waits for it (the thread's catch-up) */
    atomic_int calls;
    atomic_int late;          /* calls after cancel returned */
    atomic_int cancelled;
} inline_ctx;

static void inline_cb(void *ctx, const ck_event *evs, size_t n, const ck_error *err)
{
    inline_ctx *c = ctx;
    if (atomic_fetch_add(&c->calls, 1) == 0)
        while (!atomic_load(&c->gate))
            sc_sleep_ms(1);
    if (atomic_load(&c->cancelled))
        atomic_fetch_add(&c->late, 1);
    sc_watch_cb(&c->w, evs, n, err);
}

static void storm(ck_store *s, const char *root, int threads, int n, int first_id)
{
    pthread_t th[32];
    sc_storm args[32];
    cleanup_free int64_t *revs = xcalloc((size_t)threads * n, sizeof *revs);
    for (int i = 0; i < threads; i++) {
        args[i] = (sc_storm){s, root, first_id + i, n, revs + (size_t)i * n, 0};
        pthread_create(&th[i], NULL, sc_storm_thread, &args[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

/* An inline watcher takes every path: its thread's catch-up (stuck in the callback while > 20,000
 * events commit: the queue it had is dropped and it re-reads the log), its queue, then the writer
 * once it is live.  Every event arrives once, in order; a watcher that is not inline on the same
 * prefix sees the same. */
static void test_inline_watch_paths(void **state)
{
    ck_store *s = *state;
    const char *root = "/registry/inl/";
    inline_ctx c = {0};
    sc_watch_init(&c.w);
    sc_create(s, "/registry/inl/first", "x");
    int64_t start = sc_create(s, "/registry/inl/second", "x");
    ck_watch_handle *h = NULL;
    SC_OK(ck_store_watch(s, root, start - 1, inline_cb, &c, &h, err_));
    ck_store_watch_inline(s, h);
    sc_watch plain;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &plain, root, start - 1, &code), 0);

    storm(s, root, 16, 1400, 0);                 /* while the first call is stuck */
    ck_sqlite_stats st0 = {0};
    SC_OK(ck_store_sqlite_stats(s, &st0, err_));
    assert_true(st0.watch_resyncs > 0);
    assert_true(st0.watch_queued > 0);
    atomic_store(&c.gate, 1);
    int64_t mid = sc_current(s);
    assert_true(sc_watch_wait(&c.w, mid, 0));

    storm(s, root, 8, 200, 16);                  /* live: the writer delivers */
    int64_t last = sc_current(s);
    ck_sqlite_stats st1 = {0};
    SC_OK(ck_store_sqlite_stats(s, &st1, err_));
    assert_true(st1.watch_inline > st0.watch_inline);
    assert_true(sc_watch_wait(&c.w, last, 0));
    assert_true(sc_watch_wait(&plain, last, 0));
    sc_check_contiguous(&c.w, start - 1, last, root);
    sc_check_contiguous(&plain, start - 1, last, root);
    assert_int_equal(c.w.bad_calls, 0);
    ck_store_watch_cancel(s, h);
    sc_watch_stop(s, &c.w);
    sc_watch_stop(s, &plain);
}

typedef struct writer_loop {
    ck_store *s;
    atomic_int stop;
    int failures;
} writer_loop;

static void *writer_loop_main(void *p)
{
    writer_loop *a = p;
    for (int i = 0; !atomic_load(&a->stop); i++) {
        char k[64];
        snprintf(k, sizeof k, "/registry/inlc/k%d", i % 50);
        ck_error *e = NULL;
        int64_t rev = 0;
        if (ck_store_update(a->s, k, "v", 1, 0, &rev, &e) < 0) {
            ck_error_free(e);
            e = NULL;
            if (ck_store_create(a->s, k, "v", 1, &rev, &e) < 0 && e->code != CK_E_EXISTS)
                a->failures++;   /* EXISTS: another thread created it meanwhile */
            ck_error_free(e);
        }
    }
    return NULL;
}

/* Cancelling an inline watch from another thread while commits flow: once the cancel returns no
 * callback runs (the writer's delivery is waited for). */
static void test_inline_watch_cancel_race(void **state)
{
    ck_store *s = *state;
    writer_loop wl = {.s = s};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, writer_loop_main, &wl);
    int delivered = 0;
    for (int round = 0; round < 40; round++) {
        inline_ctx c = {0};
        atomic_store(&c.gate, 1);
        sc_watch_init(&c.w);
        ck_watch_handle *h = NULL;
        SC_OK(ck_store_watch(s, "/registry/inlc/", 0, inline_cb, &c, &h, err_));
        ck_store_watch_inline(s, h);
        sc_sleep_ms(round % 5);
        ck_store_watch_cancel(s, h);
        atomic_store(&c.cancelled, 1);
        sc_sleep_ms(2);
        assert_int_equal(atomic_load(&c.late), 0);
        delivered += atomic_load(&c.calls) > 0;
        sc_watch_stop(s, &c.w);
    }
    atomic_store(&wl.stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(wl.failures, 0);
    assert_true(delivered > 0);
    ck_sqlite_stats st = {0};
    SC_OK(ck_store_sqlite_stats(s, &st, err_));
    assert_true(st.watch_inline > 0);
}

int main(void)
{
    size_t n;
    const struct CMUnitTest *conf = store_conformance_tests(setup, teardown, &n);
    int failed = _cmocka_run_group_tests("store_sqlite_conformance", conf, n, NULL, NULL);
    sc_inline_watches = true;   /* again, the writer delivering to live watchers */
    failed += _cmocka_run_group_tests("store_sqlite_conformance_inline", conf, n, NULL, NULL);
    sc_inline_watches = false;
    const struct CMUnitTest own[] = {
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_current_rev_after_compacting_top_tombstone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_gather, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_writes_gathered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_cache_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_random_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_foreign_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_wrong_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_size_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_watcher, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_watcher_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_large_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_watch_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_watch_cancel_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_10k_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_rate, setup, teardown),
    };
    failed += cmocka_run_group_tests_name("store_sqlite", own, NULL, NULL);
    return failed;
}

/* Unit tests for src/kubelet/attach.c, both ends in one process: the shim's attach server is
 * driven by the test's poll loop while ck_attach_connect runs in a thread.  Checked: output fan
 * out to stdout/stderr pipes, stdin straight to the container's pipe, stdinOnce (the first attach
 * takes stdin, the container sees EOF when it lets go, later attaches get none), a reader that
 * went away is dropped, a reader that lags too far is cut off (EOF, bounded), close ends every
 * attach, a socket path longer than sun_path (through /proc/self/fd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kubelet/kubelet.h"
#include "lib/util.h"

typedef struct client_job {
    const char *dir;
    bool in, out, err;
    int fds[4];
    int rc;
    char *msg;
    volatile int done;
} client_job;

static void *client_main(void *arg)
{
    client_job *j = arg;
    ck_error *e = NULL;
    j->rc = ck_attach_connect(j->dir, j->in, j->out, j->err, j->fds, &e);
    if (e) {
        j->msg = xstrdup(e->msg);
        ck_error_free(e);
    }
    __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Serve the shim's side until one poll round passes. */
static void serve_round(ck_attach_srv *s, int ms)
{
    struct pollfd pf[64];
    int n = ck_attach_pollfds(s, pf, 64);
    poll(pf, (nfds_t)n, ms);
    ck_attach_handle(s, pf, n);
}

static int attach(ck_attach_srv *s, const char *dir, bool in, bool out, bool err, int fds[4])
{
    client_job j = {.dir = dir, .in = in, .out = out, .err = err};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &j), 0);
    for (int i = 0; i < 200 && !__atomic_load_n(&j.done, __ATOMIC_SEQ_CST); i++)
        serve_round(s, 20);
    pthread_join(th, NULL);
    memcpy(fds, j.fds, sizeof j.fds);
    if (j.rc < 0)
        fprintf(stderr, "attach: %s\n", j.msg);
    free(j.msg);
    return j.rc;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void read_exact(int fd, const char *want)
{
    char buf[256];
    size_t len = 0, wl = strlen(want);
    while (len < wl) {
        struct pollfd pf = {fd, POLLIN, 0};
        assert_true(poll(&pf, 1, 2000) > 0);
        ssize_t n = read(fd, buf + len, wl - len);
        assert_true(n > 0);
        len += (size_t)n;
    }
    assert_memory_equal(buf, want, wl);
}

/* a directory whose socket path does not fit sun_path (108) */
static char *long_dir(char *base)
{
    char *p = xasprintf("%s/%s", base, "a-directory-name-long-enough-to-overflow-sun-path-"
                                       "when-joined-with-the-socket-name-xxxxxxxxxxxxxxxxxx");
    assert_int_equal(ck_mkdir_p(p, 0700), 0);
    return p;
}

static void rm_rf(const char *p)
{
    char *argv[] = {"rm", "-rf", (char *)p, NULL};
    ck_run_cmd(argv, NULL, NULL, 10000, NULL, NULL);
}

static void test_fanout_stdin_once(void **state)
{
    (void)state;
    char base[] = "/tmp/ck-attach-XXXXXX";
    assert_non_null(mkdtemp(base));
    cleanup_free char *dir = long_dir(base);
    ck_error *e = NULL;
    ck_attach_srv *s = ck_attach_listen(dir, &e);
    assert_non_null(s);
    int inp[2];
    assert_int_equal(pipe2(inp, O_CLOEXEC), 0);
    ck_attach_set_io(s, inp[1], true, -1);

    int a[4], b[4];
    assert_int_equal(attach(s, dir, true, true, true, a), 0);
    assert_true(a[0] >= 0 && a[1] >= 0 && a[2] >= 0);
    assert_int_equal(a[3], -1);                       /* no tty */
    ck_attach_output(s, 0, "out-1\n", 6);
    ck_attach_output(s, 1, "err-1\n", 6);
    read_exact(a[1], "out-1\n");
    read_exact(a[2], "err-1\n");
    assert_int_equal(write(a[0], "in-1\n", 5), 5);
    read_exact(inp[0], "in-1\n");

    /* stdinOnce: the second attach gets output but no stdin */
    assert_int_equal(attach(s, dir, true, true, false, b), 0);
    assert_int_equal(b[0], -1);
    assert_true(b[1] >= 0);
    assert_int_equal(b[2], -1);                       /* not asked for */
    ck_attach_output(s, 0, "out-2\n", 6);
    read_exact(a[1], "out-2\n");
    read_exact(b[1], "out-2\n");
    /* the first attach lets go of stdin: the container sees EOF */
    close(a[0]);
    char c;
    assert_int_equal(read(inp[0], &c, 1), 0);

    /* the first attach's reader goes away: the shim drops its two pipes */
    int before = count_fds();
    close(a[1]);
    close(a[2]);
    for (int i = 0; i < 3; i++)
        serve_round(s, 10);
    ck_attach_output(s, 0, "out-3\n", 6);
    read_exact(b[1], "out-3\n");
    assert_int_equal(count_fds(), before - 4);        /* our 2 ends and the shim's 2 */

    /* close: the remaining attach sees EOF */
    ck_attach_close(s);
    assert_int_equal(read(b[1], &c, 1), 0);
    close(b[1]);
    close(inp[0]);
    rm_rf(base);
}

static void test_slow_reader_cut_off(void **state)
{
    (void)state;
    char base[] = "/tmp/ck-attach-XXXXXX";
    assert_non_null(mkdtemp(base));
    ck_error *e = NULL;
    ck_attach_srv *s = ck_attach_listen(base, &e);
    assert_non_null(s);
    int inp[2];
    assert_int_equal(pipe2(inp, O_CLOEXEC), 0);
    ck_attach_set_io(s, inp[1], false, -1);
    int a[4], b[4];
    assert_int_equal(attach(s, base, true, true, true, a), 0);
    assert_int_equal(attach(s, base, true, true, true, b), 0);
    assert_true(a[0] >= 0 && b[0] >= 0);              /* not stdinOnce: both get stdin */
    assert_int_equal(write(b[0], "x", 1), 1);
    close(a[0]);
    close(b[0]);
    char c;
    read_exact(inp[0], "x");
    fcntl(inp[0], F_SETFL, O_NONBLOCK);
    assert_true(read(inp[0], &c, 1) < 0 && errno == EAGAIN);   /* the shim keeps stdin open */

    /* 8 MiB of output nobody reads: cut off after the pipe and 4 MiB of backlog */
    static char chunk[65536];
    memset(chunk, 'z', sizeof chunk);
    for (int i = 0; i < 128; i++) {
        ck_attach_output(s, 0, chunk, sizeof chunk);
        serve_round(s, 0);
    }
    size_t total = 0;
    for (;;) {
        struct pollfd pf = {a[1], POLLIN, 0};
        assert_true(poll(&pf, 1, 2000) > 0);
        ssize_t n = read(a[1], chunk, sizeof chunk);
        assert_true(n >= 0);
        if (n == 0)
            break;
        total += (size_t)n;
    }
    assert_true(total > 0 && total < (8u << 20));
    ck_attach_close(s);
    for (int i = 1; i < 3; i++) {
        close(a[i]);
        close(b[i]);
    }
    close(inp[0]);
    rm_rf(base);
}

static void test_refusals(void **state)
{
    (void)state;
    char base[] = "/tmp/ck-attach-XXXXXX";
    assert_non_null(mkdtemp(base));
    int fds[4];
    ck_error *e = NULL;
    /* no shim listening */
    assert_int_equal(ck_attach_connect(base, false, true, true, fds, &e), -1);
    assert_non_null(strstr(e->msg, "does not serve attach"));
    ck_error_free(e);
    e = NULL;
    /* a container without stdin: stdin is not granted, output is */
    ck_attach_srv *s = ck_attach_listen(base, &e);
    assert_non_null(s);
    assert_int_equal(attach(s, base, true, true, false, fds), 0);
    assert_int_equal(fds[0], -1);
    assert_true(fds[1] >= 0);
    close(fds[1]);
    ck_attach_close(s);
    /* the socket is gone after close */
    assert_int_equal(ck_attach_connect(base, false, true, true, fds, &e), -1);
    ck_error_free(e);
    rm_rf(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout_stdin_once),
        cmocka_unit_test(test_slow_reader_cut_off),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

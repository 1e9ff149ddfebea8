/* attach.c - a container's own stdio for `kubectl attach`: both ends of the shim's socket.
 *
 * The shim (runtime.c) keeps what upstream's runtimes keep for a container: the write end of its
 * stdin pipe when spec stdin is true, the pty master when tty is true (runc hands it over on a
 * console socket), and a unix socket CTRDIR/attach.sock (mode 0600) through which the kubelet
 * attaches.  One request per connection:
 *     kubelet -> shim   "attach stdin=B stdout=B stderr=B\n"
 *     shim -> kubelet   "ok stdin=B stdout=B stderr=B tty=B\n" with the granted fds as
 *                       SCM_RIGHTS, in this order: stdout, stderr (read ends), stdin, pty master
 *                    or "err MESSAGE\n"
 * then the connection closes.  The output fds are pipes the shim makes per attach and writes the
 * container's output to (besides the log); stdin is a dup of the shim's stdin write end (or of
 * the pty master), so the kubelet writes straight to the container.  stdinOnce: the shim gives its
 * own stdin away to the first attach that asks for it and keeps none, so the container sees EOF
 * when that attach lets go (the client's stdin ended, or it detached) and later attaches get no
 * stdin, as upstream's runtimes do.  A reader more than ATTACH_PEND_MAX behind is dropped (its
 * pipe closes, so its attach ends) rather than stall the container or grow the shim; a reader
 * that went away shows as POLLERR on its pipe.  A connection is served within the shim's
 * single-threaded loop: the request must arrive within a second.
 *
 * Socket paths longer than sun_path are reached through /proc/self/fd/N/NAME (an O_PATH fd of
 * the directory), so deep root dirs work.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/util.h"

#define ATTACH_MAX 16                   /* attached clients at once */
#define ATTACH_PEND_MAX (4u << 20)      /* output a client may lag behind, beyond its pipe */
#define ATTACH_PIPE_SIZE (1 << 20)
#define ATTACH_SOCK "attach.sock"
#define CONSOLE_SOCK "console.sock"

typedef struct attach_client {
    bool used;
    int fd[2];          /* stdout, stderr write ends (-1: not requested) */
    ck_buf pend[2];
} attach_client;

struct ck_attach_srv {
    int lfd, dir_fd;
    int stdin_fd;       /* owned; -1: none (no stdin, or given away with stdinOnce) */
    bool stdin_once;
    int pty_fd;         /* owned (a dup of the shim's): outlives the shim's reader */
    attach_client c[ATTACH_MAX];
};

/* The address of dir/name: the plain path when it fits, else through /proc/PID/fd/DIRFD. */
static int unix_addr(struct sockaddr_un *sa, const char *dir, int dir_fd, pid_t pid,
                     const char *name)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = (size_t)snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", dir, name);
    if (n < sizeof sa->sun_path)
        return 0;
    if (dir_fd < 0)
        return -1;
    if (pid > 0)
        snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/%d/fd/%d/%s", (int)pid, dir_fd, name);
    else
        snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dir_fd, name);
    return 0;
}

static int listen_at(const char *dir, int dir_fd, const char *name, ck_error **err)
{
    struct sockaddr_un sa;
    if (unix_addr(&sa, dir, dir_fd, 0, name) < 0)
        return ck_error_set(err, CK_E_INVALID, "socket path too long: %s/%s", dir, name);
    unlinkat(dir_fd, name, 0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ck_error_sys(err, CK_E_IO, "socket");
    /* 0600 from the start: nobody else may attach between bind and chmod */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || listen(fd, 8) < 0) {
        ck_error_sys(err, CK_E_IO, "listen on %s/%s", dir, name);
        close(fd);
        return -1;
    }
    return fd;
}

ck_attach_srv *ck_attach_listen(const char *dir, ck_error **err)
{
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        ck_error_sys(err, CK_E_IO, "open %s", dir);
        return NULL;
    }
    int lfd = listen_at(dir, dfd, ATTACH_SOCK, err);
    if (lfd < 0) {
        close(dfd);
        return NULL;
    }
    ck_attach_srv *s = xcalloc(1, sizeof *s);
    s->lfd = lfd;
    s->dir_fd = dfd;
    s->stdin_fd = -1;
    s->pty_fd = -1;
    return s;
}

void ck_attach_set_io(ck_attach_srv *s, int stdin_fd, bool stdin_once, int pty_fd)
{
    if (!s) {
        if (stdin_fd >= 0)
            close(stdin_fd);
        return;
    }
    s->stdin_fd = stdin_fd;
    s->stdin_once = stdin_once;
    s->pty_fd = pty_fd >= 0 ? fcntl(pty_fd, F_DUPFD_CLOEXEC, 3) : -1;
}

int ck_attach_console_listen(ck_attach_srv *s, const char *dir, char **path, ck_error **err)
{
    if (!s)
        return ck_error_set(err, CK_E_INTERNAL, "no attach socket for the console");
    int fd = listen_at(dir, s->dir_fd, CONSOLE_SOCK, err);
    if (fd < 0)
        return -1;
    /* the runtime is another process: /proc/self would be its own */
    struct sockaddr_un sa;
    unix_addr(&sa, dir, s->dir_fd, getpid(), CONSOLE_SOCK);
    *path = xstrdup(sa.sun_path);
    return fd;
}

int ck_attach_console_recv(ck_attach_srv *s, int lfd, ck_error **err)
{
    /* runc has exited by now: its connection and message wait in the backlog */
    struct pollfd pf = {lfd, POLLIN, 0};
    int c = poll(&pf, 1, 2000) > 0 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : -1;
    if (s)
        unlinkat(s->dir_fd, CONSOLE_SOCK, 0);
    close(lfd);
    if (c < 0)
        return ck_error_set(err, CK_E_INTERNAL, "the runtime sent no console");
    char name[4096];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                       .msg_controllen = sizeof ctl.b};
    int fd = -1;
    pf.fd = c;
    if (poll(&pf, 1, 2000) > 0 && recvmsg(c, &m, MSG_CMSG_CLOEXEC) > 0)
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
                memcpy(&fd, CMSG_DATA(h), sizeof(int));
    close(c);
    if (fd < 0)
        return ck_error_set(err, CK_E_INTERNAL, "the runtime's console message had no fd");
    return fd;
}

static void client_drop(attach_client *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        c->fd[i] = -1;
        ck_buf_free(&c->pend[i]);
    }
    c->used = false;
}

/* Write what fits, keep the rest (bounded); false when the client must go. */
static bool client_write(attach_client *c, int i, const char *d, size_t len)
{
    if (c->pend[i].len == 0) {
        ssize_t w = write(c->fd[i], d, len);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (w > 0) {
            d += w;
            len -= (size_t)w;
        }
    }
    return len == 0 || ck_buf_add(&c->pend[i], d, len) == 0;
}

static bool client_flush(attach_client *c, int i)
{
    ck_buf *b = &c->pend[i];
    ssize_t w = write(c->fd[i], b->data, b->len);
    if (w < 0)
        return errno == EAGAIN || errno == EINTR;
    memmove(b->data, b->data + w, b->len - (size_t)w);
    b->len -= (size_t)w;
    return true;
}

void ck_attach_output(ck_attach_srv *s, int stream, const void *data, size_t len)
{
    if (!s || len == 0 || stream < 0 || stream > 1)
        return;
    for (int k = 0; k < ATTACH_MAX; k++) {
        attach_client *c = &s->c[k];
        if (c->used && c->fd[stream] >= 0 && !client_write(c, stream, data, len))
            client_drop(c);
    }
}

static int send_reply(int fd, const char *msg, const int *fds, int nfds)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        m.msg_control = ctl.b;
        m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(h), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    while ((n = sendmsg(fd, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)iov.iov_len ? 0 : -1;
}

/* One attach request on a fresh connection. */
static void serve_conn(ck_attach_srv *s, int conn)
{
    char req[256];
    size_t len = 0;
    while (len < sizeof req - 1 && !memchr(req, '\n', len)) {
        struct pollfd pf = {conn, POLLIN, 0};
        if (poll(&pf, 1, 1000) <= 0)
            return;
        ssize_t n = recv(conn, req + len, sizeof req - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
    }
    req[len] = '\0';
    int want_in = 0, want_out = 0, want_err = 0;
    if (sscanf(req, "attach stdin=%d stdout=%d stderr=%d", &want_in, &want_out, &want_err) != 3) {
        send_reply(conn, "err bad attach request\n", NULL, 0);
        return;
    }
    attach_client *c = NULL;
    for (int k = 0; k < ATTACH_MAX && !c; k++)
        if (!s->c[k].used)
            c = &s->c[k];
    if (!c) {
        send_reply(conn, "err too many attached clients\n", NULL, 0);
        return;
    }
    bool tty = s->pty_fd >= 0;
    bool want[2] = {want_out != 0, want_err != 0 && !tty};
    int fds[4], nfds = 0, rd[2] = {-1, -1};
    *c = (attach_client){.fd = {-1, -1}};
    for (int i = 0; i < 2; i++) {
        ck_buf_init(&c->pend[i], ATTACH_PEND_MAX);
        int p[2];
        if (!want[i])
            continue;
        if (pipe2(p, O_CLOEXEC) < 0) {
            send_reply(conn, "err pipe failed\n", NULL, 0);
            goto fail;
        }
        fcntl(p[1], F_SETPIPE_SZ, ATTACH_PIPE_SIZE);   /* best effort */
        fcntl(p[1], F_SETFL, O_NONBLOCK);
        c->fd[i] = p[1];
        rd[i] = fds[nfds++] = p[0];
    }
    int in = -1;
    if (want_in && s->stdin_fd >= 0) {
        if (s->stdin_once) {
            in = s->stdin_fd;   /* given away: the container's stdin ends with this attach */
            s->stdin_fd = -1;
        } else {
            in = fcntl(s->stdin_fd, F_DUPFD_CLOEXEC, 3);
        }
        if (in >= 0)
            fds[nfds++] = in;
    }
    if (tty)
        fds[nfds++] = s->pty_fd;
    char msg[96];
    snprintf(msg, sizeof msg, "ok stdin=%d stdout=%d stderr=%d tty=%d\n", in >= 0, want[0],
             want[1], tty);
    int rc = send_reply(conn, msg, fds, nfds);
    if (in >= 0)
        close(in);
    for (int i = 0; i < 2; i++)
        if (rd[i] >= 0)
            close(rd[i]);
    if (rc == 0) {
        c->used = true;
        return;
    }
    rd[0] = rd[1] = -1;
fail:
    for (int i = 0; i < 2; i++)
        if (rd[i] >= 0)
            close(rd[i]);
    client_drop(c);
}

int ck_attach_pollfds(ck_attach_srv *s, struct pollfd *pf, int max)
{
    if (!s || max < 1)
        return 0;
    int n = 0;
    pf[n++] = (struct pollfd){s->lfd, POLLIN, 0};
    for (int k = 0; k < ATTACH_MAX; k++)
        for (int i = 0; i < 2 && n < max; i++)
            if (s->c[k].used && s->c[k].fd[i] >= 0)
                pf[n++] = (struct pollfd){s->c[k].fd[i], s->c[k].pend[i].len ? POLLOUT : 0, 0};
    return n;
}

void ck_attach_handle(ck_attach_srv *s, const struct pollfd *pf, int n)
{
    if (!s)
        return;
    for (int j = 1; j < n; j++) {
        if (!pf[j].revents)
            continue;
        for (int k = 0; k < ATTACH_MAX; k++)
            for (int i = 0; i < 2; i++) {
                attach_client *c = &s->c[k];
                if (!c->used || c->fd[i] != pf[j].fd)
                    continue;
                /* POLLERR on a pipe's write end: its reader is gone */
                if ((pf[j].revents & (POLLERR | POLLHUP | POLLNVAL)) ||
                    ((pf[j].revents & POLLOUT) && !client_flush(c, i)))
                    client_drop(c);
            }
    }
    if (n > 0 && (pf[0].revents & POLLIN)) {
        int conn = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (conn >= 0) {
            serve_conn(s, conn);
            close(conn);
        }
    }
}

void ck_attach_close(ck_attach_srv *s)
{
    if (!s)
        return;
    unlinkat(s->dir_fd, ATTACH_SOCK, 0);
    close(s->lfd);
    close(s->dir_fd);
    if (s->stdin_fd >= 0)
        close(s->stdin_fd);
    if (s->pty_fd >= 0)
        close(s->pty_fd);
    for (int k = 0; k < ATTACH_MAX; k++)
        if (s->c[k].used) {
            /* what the container printed last, as far as the pipe takes it */
            for (int i = 0; i < 2; i++)
                if (s->c[k].fd[i] >= 0 && s->c[k].pend[i].len)
                    client_flush(&s->c[k], i);
            client_drop(&s->c[k]);
        }
    free(s);
}

/* ---------------- the kubelet's end ---------------- */

int ck_attach_connect(const char *dir, bool in, bool out, bool errs, int fds[4], ck_error **err)
{
    for (int i = 0; i < 4; i++)
        fds[i] = -1;
    cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct sockaddr_un sa;
    if (dfd < 0 || unix_addr(&sa, dir, dfd, 0, ATTACH_SOCK) < 0)
        return ck_error_sys(err, CK_E_NOT_FOUND, "container directory %s", dir);
    cleanup_close int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return ck_error_sys(err, CK_E_IO, "socket");
    struct timeval tv = {.tv_sec = 5};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
        return ck_error_sys(err, CK_E_UNAVAILABLE, "the container's shim does not serve attach "
                            "(it stopped, or predates attach support)");
    char req[64];
    int rl = snprintf(req, sizeof req, "attach stdin=%d stdout=%d stderr=%d\n", in, out, errs);
    if (send(s, req, (size_t)rl, MSG_NOSIGNAL) != rl)
        return ck_error_sys(err, CK_E_IO, "attach request to the shim");
    char msg[256];
    size_t len = 0;
    int got[4], ngot = 0;
    while (len < sizeof msg - 1 && !memchr(msg, '\n', len)) {
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(4 * sizeof(int))];
        } ctl;
        memset(&ctl, 0, sizeof ctl);
        struct iovec iov = {.iov_base = msg + len, .iov_len = sizeof msg - 1 - len};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                           .msg_controllen = sizeof ctl.b};
        ssize_t n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
                size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t j = 0; j < k; j++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(h) + j * sizeof(int), sizeof fd);
                    if (ngot < 4)
                        got[ngot++] = fd;
                    else
                        close(fd);
                }
            }
    }
    msg[len] = '\0';
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    int gi = 0, go = 0, ge = 0, gt = 0;
    int ok = sscanf(msg, "ok stdin=%d stdout=%d stderr=%d tty=%d", &gi, &go, &ge, &gt) == 4 &&
             ngot == (go != 0) + (ge != 0) + (gi != 0) + (gt != 0);
    if (!ok) {
        for (int j = 0; j < ngot; j++)
            close(got[j]);
        if (!strncmp(msg, "err ", 4))
            return ck_error_set(err, CK_E_INTERNAL, "attach: %s", msg + 4);
        return ck_error_set(err, CK_E_INTERNAL, "attach: bad answer from the container's shim");
    }
    int j = 0;
    if (go)
        fds[1] = got[j++];
    if (ge)
        fds[2] = got[j++];
    if (gi)
        fds[0] = got[j++];
    if (gt)
        fds[3] = got[j++];
    return 0;
}

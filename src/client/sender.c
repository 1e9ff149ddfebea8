/* sender.c - ck_sender (client.h): writes whose answers are not read, many in flight from one
 * thread over up to `conns` kept-alive connections.
 *
 * Each connection is a libcurl easy handle in CONNECT_ONLY mode: libcurl connects, does the TLS
 * handshake with the client's identity (resuming sessions through the client's share) and moves
 * the bytes (curl_easy_send / curl_easy_recv); the HTTP/1.1 exchange itself is done here, one
 * request at a time per connection (no pipelining).  Why: a full libcurl transfer of a small
 * PATCH cost ~111,000 instructions, most of them re-parsing and re-printing the URL, printing the
 * request line and headers through its printf, and its per-transfer state machine; here the
 * fixed headers (Host, User-Agent, Authorization) are printed once a sender, and a request is
 * its line, two headers and the body copied after them.
 *
 * Answers: Content-Length, chunked, or up to the close; "Connection: close" and HTTP/1.0 answers
 * end the connection.  A request whose kept-alive connection turns out closed before any byte of
 * its answer came is sent once more on a new connection (as libcurl does).  Limits: a request
 * gets 60 s; an answer body 16 MB (the answers are only read for their Status on errors).
 */
#include "client/client.h"
#include "client/client_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/log.h"

#define SENDER_MAX_BODY (16u << 20)
#define SENDER_MAX_HEADER (64u << 10)
#define SENDER_TIMEOUT_MS 60000

typedef struct sreq {
    struct sreq *next;
    char method[16];
    char *path, *body;
    size_t len;
    char *ct;                     /* content type, NULL = application/json */
    ck_error *err;                /* failed before it started */
    ck_sender_done_cb done;
    void *ctx;
} sreq;

typedef struct sconn {
    CURL *h;                      /* connected, or NULL */
    curl_socket_t fd;
    sreq *r;                      /* in flight on it */
    bool fresh;                   /* r assigned, not started yet */
    bool reused;                  /* carried an answer before r: may have been closed meanwhile */
    bool retried;                 /* r was sent again once already */
    ck_buf out;                   /* r's request bytes */
    size_t sent;
    ck_buf in;                    /* its answer so far */
    int64_t deadline_ms;
} sconn;

struct ck_sender {
    ck_client *c;
    int conns;
    sconn *cs;
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    sreq *head, *tail;            /* queued, not started */
    int inflight;
    size_t pending;               /* queued + in flight */
    bool polling, stop;
    int wake_fd;                  /* an eventfd: new work while the thread polls */
    char *server;                 /* the URL libcurl connects to */
    const char *prefix;           /* the server URL's path ("" or "/base"), before each path */
    const char *fixed;            /* the headers every request carries (the client's) */
    size_t fixed_len;
};

static int64_t now_ms(void)
{
    return ck_now_ns() / 1000000;
}

/* ---- the answer parser ---- */

static bool name_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && line[k] == ':' && !strncasecmp(line, name, k);
}

/* Whether the comma-separated header value v[0..n) holds token (case-insensitive). */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t k = strlen(token);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t e = j;
        while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - i == k && !strncasecmp(v + i, token, k))
            return true;
        i = j;
    }
    return false;
}

/* De-chunks p[0..len) into body: 1 complete (*used set), 0 more needed, -1 malformed. */
static int parse_chunks(const char *p, size_t len, size_t max_body, ck_buf *body, size_t *used)
{
    size_t i = 0;
    ck_buf_reset(body);
    for (;;) {
        const char *eol = memmem(p + i, len - i, "\r\n", 2);
        if (!eol)
            return len - i > 1024 ? -1 : 0;
        size_t size = 0;
        const char *q = p + i;
        int digits = 0;
        for (; q < eol; q++, digits++) {
            int d = *q >= '0' && *q <= '9' ? *q - '0' : (*q | 0x20) >= 'a' && (*q | 0x20) <= 'f' ? (*q | 0x20) - 'a' + 10 : -1;
            if (d < 0)
                break;
            if (size > (SIZE_MAX >> 4))
                return -1;
            size = size * 16 + (size_t)d;
        }
        if (!digits || (q < eol && *q != ';' && *q != ' ' && *q != '\t'))
            return -1;           /* chunk extensions (";...") are ignored */
        i = (size_t)(eol - p) + 2;
        if (size == 0) {         /* the last chunk: trailers up to an empty line */
            for (;;) {
                const char *e = memmem(p + i, len - i, "\r\n", 2);
                if (!e)
                    return len - i > SENDER_MAX_HEADER ? -1 : 0;
                bool empty = e == p + i;
                i = (size_t)(e - p) + 2;
                if (empty) {
                    *used = i;
                    return 1;
                }
            }
        }
        if (size > max_body || body->len + size > max_body)
            return -1;
        if (len - i < size + 2)
            return 0;
        if (memcmp(p + i + size, "\r\n", 2) || ck_buf_add(body, p + i, size) < 0)
            return -1;
        i += size + 2;
    }
}

int ck_client_parse_head(const char *p, size_t len, bool eof, ck_client_head *hd)
{
    size_t start = 0;
    if (len == 0)                /* nothing read yet: p may be NULL, which memmem must not get */
        return eof ? -1 : 0;
    for (;;) {                   /* 1xx answers before the real one are skipped */
        const char *end = memmem(p + start, len - start, "\r\n\r\n", 4);
        if (!end)
            return (len - start > SENDER_MAX_HEADER || eof) ? -1 : 0;
        const char *h = p + start;
        size_t hlen = (size_t)(end - h) + 4;
        if (hlen < 12 || memcmp(h, "HTTP/1.", 7) || (h[7] != '0' && h[7] != '1') || h[8] != ' ')
            return -1;
        int status = 0;
        for (int k = 9; k < 12; k++) {
            if (h[k] < '0' || h[k] > '9')
                return -1;
            status = status * 10 + (h[k] - '0');
        }
        if (status >= 100 && status < 200 && status != 101) {
            start += hlen;
            continue;
        }
        bool http10 = h[7] == '0';
        *hd = (ck_client_head){.status = status, .close = http10};
        const char *line = memchr(h, '\n', hlen) + 1;
        while (line < end + 2) {
            const char *eol = memchr(line, '\n', (size_t)(end + 4 - line));
            size_t n = (size_t)(eol - line);
            if (n && line[n - 1] == '\r')
                n--;
            const char *colon = memchr(line, ':', n);
            const char *v = colon ? colon + 1 : line + n;
            size_t vn = (size_t)(line + n - v);
            while (vn && (*v == ' ' || *v == '\t'))
                v++, vn--;
            if (name_is(line, n, "Content-Length")) {
                size_t x = 0;
                if (!vn)
                    return -1;
                for (size_t k = 0; k < vn; k++) {
                    if (v[k] < '0' || v[k] > '9' || x > SIZE_MAX / 10 - 1)
                        return -1;
                    x = x * 10 + (size_t)(v[k] - '0');
                }
                if (hd->has_len && x != hd->clen)
                    return -1;
                hd->clen = x;
                hd->has_len = true;
            } else if (name_is(line, n, "Transfer-Encoding")) {
                hd->chunked = has_token(v, vn, "chunked");
            } else if (name_is(line, n, "Connection")) {
                if (has_token(v, vn, "close"))
                    hd->close = true;
                else if (http10 && has_token(v, vn, "keep-alive"))
                    hd->close = false;
            }
            line = eol + 1;
        }
        hd->used = start + hlen;
        return 1;
    }
}

int ck_client_parse_answer(const char *p, size_t len, bool eof, size_t max_body,
                           ck_client_answer *a)
{
    ck_client_head hd;
    int rc = ck_client_parse_head(p, len, eof, &hd);
    if (rc <= 0)
        return rc;
    size_t body_at = hd.used;
    a->status = hd.status;
    a->close = hd.close;
    ck_buf_reset(&a->body);
    if (hd.status == 204 || hd.status == 304) {
        a->used = body_at;
        return 1;
    }
    if (hd.chunked) {
        size_t used = 0;
        rc = parse_chunks(p + body_at, len - body_at, max_body, &a->body, &used);
        if (rc == 0 && eof)
            return -1;
        if (rc == 1)
            a->used = body_at + used;
        return rc;
    }
    if (hd.has_len) {
        if (hd.clen > max_body)
            return -1;
        if (len - body_at < hd.clen)
            return eof ? -1 : 0;
        if (ck_buf_add(&a->body, p + body_at, hd.clen) < 0)
            return -1;
        a->used = body_at + hd.clen;
        return 1;
    }
    /* no length: the body runs to the close */
    if (len - body_at > max_body)
        return -1;
    if (!eof)
        return 0;
    if (ck_buf_add(&a->body, p + body_at, len - body_at) < 0)
        return -1;
    a->close = true;
    a->used = len;
    return 1;
}

/* ---- requests and connections ---- */

static void sreq_free(sreq *r)
{
    free(r->path);
    free(r->body);
    free(r->ct);
    free(r);
}

/* Run the callback and forget the request. */
static void sreq_finish(ck_sender *s, sreq *r, ck_error *err)
{
    if (r->done)
        r->done(r->ctx, err);
    ck_error_free(err);
    sreq_free(r);
    pthread_mutex_lock(&s->lock);
    s->pending--;
    if (!s->pending)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

static void conn_close(sconn *k)
{
    if (k->h)
        curl_easy_cleanup(k->h);
    k->h = NULL;
    k->fd = CURL_SOCKET_BAD;
    k->reused = false;
    ck_buf_reset(&k->in);
}

/* The answer came or the request failed: k is free again. */
static void conn_finish(ck_sender *s, sconn *k, ck_error *err)
{
    sreq *r = k->r;
    k->r = NULL;
    k->fresh = k->retried = false;
    pthread_mutex_lock(&s->lock);
    s->inflight--;
    pthread_mutex_unlock(&s->lock);
    sreq_finish(s, r, err);
}

static int conn_open(ck_sender *s, sconn *k, ck_error **err)
{
    curl_socket_t fd;
    CURL *h = ck_client_connect_only(s->c, &fd, err);
    if (!h)
        return -1;
    k->h = h;
    k->fd = fd;
    k->reused = false;
    ck_buf_reset(&k->in);
    return 0;
}

static void add_size(ck_buf *b, size_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
    while ((v /= 10));
    ck_buf_add(b, tmp + sizeof tmp - n, (size_t)n);
}

/* The request's bytes: its line, the fixed headers, its content headers and the body; -1 when
 * they do not fit the buffer's limit. */
static int build_request(ck_sender *s, sconn *k)
{
    const sreq *r = k->r;
    ck_buf *b = &k->out;
    ck_buf_reset(b);
    ck_buf_addstr(b, r->method);
    ck_buf_add(b, " ", 1);
    ck_buf_addstr(b, s->prefix);
    ck_buf_addstr(b, r->path);
    ck_buf_add(b, " HTTP/1.1\r\n", 11);
    ck_buf_add(b, s->fixed, s->fixed_len);
    if (r->body) {
        ck_buf_add(b, "Content-Type: ", 14);
        ck_buf_addstr(b, r->ct ? r->ct : "application/json");
        ck_buf_add(b, "\r\n", 2);
    }
    /* no body: no length either (as a GET), but for the methods that are meant to carry one */
    if (r->body || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT") ||
        !strcmp(r->method, "PATCH")) {
        ck_buf_add(b, "Content-Length: ", 16);
        add_size(b, r->len);
        ck_buf_add(b, "\r\n", 2);
    }
    ck_buf_add(b, "\r\n", 2);
    k->sent = 0;
    if (r->body && ck_buf_add(b, r->body, r->len) < 0)
        return -1;
    /* the line and headers are short: only a path near the limit can have been cut */
    return b->len >= r->len + strlen(r->path) + s->fixed_len ? 0 : -1;
}

/* Writes what the socket takes: 0 all sent, 1 more later, -1 failed. */
static int conn_flush(sconn *k)
{
    while (k->sent < k->out.len) {
        size_t n = 0;
        CURLcode cc = curl_easy_send(k->h, k->out.data + k->sent, k->out.len - k->sent, &n);
        if (cc == CURLE_AGAIN)
            return 1;
        if (cc != CURLE_OK)
            return -1;
        k->sent += n;
    }
    return 0;
}

/* Reads what arrived: 1 more may come, 0 the peer closed, -1 failed or too much. */
static int conn_read(sconn *k)
{
    for (;;) {
        char buf[16384];
        size_t n = 0;
        CURLcode cc = curl_easy_recv(k->h, buf, sizeof buf, &n);
        if (cc == CURLE_AGAIN)
            return 1;
        if (cc != CURLE_OK)
            return -1;
        if (n == 0)
            return 0;
        if (ck_buf_add(&k->in, buf, n) < 0)
            return -1;
    }
}

/* k's request failed on the wire (what: why).  Sent once more on a new connection when it went
 * out on a kept-alive one that was closed before any byte of the answer came. */
static void conn_broken(ck_sender *s, sconn *k, const char *what)
{
    bool again = k->reused && !k->retried && k->in.len == 0;
    conn_close(k);
    if (again) {
        k->retried = true;
        k->fresh = true;         /* started again by the loop */
        return;
    }
    ck_error *err = NULL;
    ck_error_set(&err, CK_E_UNAVAILABLE, "%s %s%s%s: %s", k->r->method, s->server, s->prefix,
                 k->r->path, what);
    conn_finish(s, k, err);
}

/* Starts k's request: connects if need be, prints it, sends what the socket takes. */
static void conn_start(ck_sender *s, sconn *k)
{
    k->fresh = false;
    if (!k->h) {
        ck_error *err = NULL;
        if (conn_open(s, k, &err) < 0) {
            ck_error_wrap(&err, "%s %s", k->r->method, k->r->path);
            conn_finish(s, k, err);
            return;
        }
    }
    if (build_request(s, k) < 0) {
        ck_error *err = NULL;
        ck_error_set(&err, CK_E_TOO_LARGE, "%s %s: the request is too large", k->r->method,
                     k->r->path);
        conn_finish(s, k, err);
        return;
    }
    ck_buf_reset(&k->in);
    k->deadline_ms = now_ms() + SENDER_TIMEOUT_MS;
    if (conn_flush(k) < 0)
        conn_broken(s, k, "send failed");
}

/* k's socket is readable (or closed). */
static void conn_input(ck_sender *s, sconn *k)
{
    int rd = conn_read(k);
    if (rd < 0 && !k->r) {
        conn_close(k);
        return;
    }
    if (!k->r) {                 /* idle: the server closed it (or said something unasked) */
        if (rd == 0 || k->in.len)
            conn_close(k);
        return;
    }
    if (rd < 0) {
        conn_broken(s, k, "receive failed");
        return;
    }
    ck_client_answer a = {0};
    ck_buf_init(&a.body, SENDER_MAX_BODY);
    int pr = ck_client_parse_answer(k->in.data, k->in.len, rd == 0, SENDER_MAX_BODY, &a);
    if (pr == 0 && rd == 0)
        pr = -1;
    if (pr == 0) {
        ck_buf_free(&a.body);
        return;
    }
    if (pr < 0) {
        ck_buf_free(&a.body);
        conn_broken(s, k, rd == 0 && k->in.len == 0 ? "connection closed" : "bad answer");
        return;
    }
    bool keep = rd != 0 && !a.close && a.used == k->in.len;   /* nothing unasked after it */
    ck_error *err = NULL;
    if (a.status < 200 || a.status > 299) {
        ck_buf_add(&a.body, "", 1);
        cleanup_free char *path = xasprintf("%s%s", s->prefix, k->r->path);
        ck_client_status_error(a.status, a.body.data, k->r->method, path, &err);
    }
    ck_buf_free(&a.body);
    if (keep) {
        ck_buf_reset(&k->in);
        k->reused = true;
    } else {
        conn_close(k);
    }
    conn_finish(s, k, err);
}

static void *sender_main(void *arg)
{
    ck_sender *s = arg;
    struct pollfd *pf = xcalloc((size_t)s->conns + 1, sizeof *pf);
    sconn **owner = xcalloc((size_t)s->conns + 1, sizeof *owner);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        sreq *failed = NULL;
        if (s->stop) {           /* what has not started is not sent */
            while (s->head) {
                sreq *r = s->head;
                s->head = r->next;
                ck_error_set(&r->err, CK_E_UNAVAILABLE,
                             "%s %s: the sender stopped before sending it", r->method, r->path);
                r->next = failed;
                failed = r;
            }
            s->tail = NULL;
        }
        /* queued requests to free connections, connected ones first */
        for (int pass = 0; pass < 2 && s->head; pass++)
            for (int i = 0; i < s->conns && s->head; i++) {
                sconn *k = &s->cs[i];
                if (k->r || (pass == 0 && !k->h))
                    continue;
                sreq *r = s->head;
                s->head = r->next;
                if (!s->head)
                    s->tail = NULL;
                r->next = NULL;
                k->r = r;
                k->fresh = true;
                s->inflight++;
            }
        bool done = s->stop && !s->inflight && !s->head;
        s->polling = !done;
        pthread_mutex_unlock(&s->lock);
        while (failed) {
            sreq *r = failed;
            failed = r->next;
            sreq_finish(s, r, r->err);
        }
        if (done)
            break;
        for (int i = 0; i < s->conns; i++)
            while (s->cs[i].r && s->cs[i].fresh)     /* a retry sets fresh again */
                conn_start(s, &s->cs[i]);
        int n = 0;
        int64_t now = now_ms(), next = now + 1000;
        pf[n++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
        for (int i = 0; i < s->conns; i++) {
            sconn *k = &s->cs[i];
            if (!k->h)
                continue;
            if (k->r && k->deadline_ms < next)
                next = k->deadline_ms;
            owner[n] = k;
            pf[n++] = (struct pollfd){.fd = k->fd,
                                      .events = k->r && k->sent < k->out.len ? POLLOUT : POLLIN};
        }
        int rc = poll(pf, (nfds_t)n, next > now ? (int)(next - now) : 0);
        if (rc < 0 && errno != EINTR)
            log_warn("sender: poll: %s", strerror(errno));
        if (rc > 0 && pf[0].revents) {
            uint64_t v;
            if (read(s->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                log_warn("sender: eventfd: %s", strerror(errno));
        }
        for (int j = 1; rc > 0 && j < n; j++) {
            sconn *k = owner[j];
            if (!pf[j].revents || !k->h)
                continue;
            if (k->r && k->sent < k->out.len) {
                if (conn_flush(k) < 0)
                    conn_broken(s, k, "send failed");
            } else {
                conn_input(s, k);
            }
        }
        now = now_ms();
        for (int i = 0; i < s->conns; i++) {
            sconn *k = &s->cs[i];
            if (k->r && !k->fresh && k->deadline_ms <= now) {
                ck_error *err = NULL;
                ck_error_set(&err, CK_E_UNAVAILABLE, "%s %s%s%s: no answer in %d s", k->r->method,
                             s->server, s->prefix, k->r->path, SENDER_TIMEOUT_MS / 1000);
                conn_close(k);
                conn_finish(s, k, err);
            }
        }
        pthread_mutex_lock(&s->lock);
        s->polling = false;
    }
    free(pf);
    free(owner);
    return NULL;
}

ck_sender *ck_sender_new(ck_client *c, int conns)
{
    ck_sender *s = xcalloc(1, sizeof *s);
    s->c = c;
    s->conns = conns < 1 ? 1 : conns;
    s->cs = xcalloc((size_t)s->conns, sizeof *s->cs);
    for (int i = 0; i < s->conns; i++) {
        s->cs[i].fd = CURL_SOCKET_BAD;
        ck_buf_init(&s->cs[i].out, 64u << 20);
        ck_buf_init(&s->cs[i].in, SENDER_MAX_BODY + SENDER_MAX_HEADER + 1024);
    }
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0)
        abort();                 /* out of file descriptors at start-up */
    s->server = xstrdup(ck_client_kubeconfig(c)->server);
    s->prefix = ck_client_prefix(c);
    s->fixed = ck_client_fixed_headers(c, &s->fixed_len);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_create(&s->th, NULL, sender_main, s);
    return s;
}

void ck_sender_send(ck_sender *s, const char *method, const char *path, char *body, size_t len,
                    const char *content_type, ck_sender_done_cb done, void *ctx)
{
    sreq *r = xcalloc(1, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", method);
    r->path = xstrdup(path);
    r->body = body;
    r->len = body ? len : 0;
    r->done = done;
    r->ctx = ctx;
    if (content_type && strcmp(content_type, "application/json"))
        r->ct = xstrdup(content_type);
    pthread_mutex_lock(&s->lock);
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    s->pending++;
    /* the thread sleeps in its poll: wake it only when it can start this one */
    bool wake = s->polling && s->inflight < s->conns;
    if (wake)
        s->polling = false;
    pthread_mutex_unlock(&s->lock);
    if (wake) {
        uint64_t one = 1;
        if (write(s->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_warn("sender: eventfd: %s", strerror(errno));
    }
}

size_t ck_sender_pending(ck_sender *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->pending;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void ck_sender_drain(ck_sender *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->pending)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void ck_sender_free(ck_sender *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_mutex_unlock(&s->lock);
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("sender: eventfd: %s", strerror(errno));
    pthread_join(s->th, NULL);
    for (int i = 0; i < s->conns; i++) {
        conn_close(&s->cs[i]);
        if (s->cs[i].out.data)   /* the last request's headers may hold a token */
            OPENSSL_cleanse(s->cs[i].out.data, s->cs[i].out.len);
        ck_buf_free(&s->cs[i].out);
        ck_buf_free(&s->cs[i].in);
    }
    free(s->cs);
    close(s->wake_fd);
    free(s->server);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    free(s);
}

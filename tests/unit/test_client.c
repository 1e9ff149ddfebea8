/* Unit tests for client/client over libcurl against lib/httpd over TLS on 127.0.0.1 (port 0): a
 * pooled handle, configured once, carries each request's own method, body and headers and none of
 * the one before (a DELETE after a POST sends no body); requests reuse the connection; answers
 * are decoded whole, picked (client/jsonpick.h) or not at all (ck_client_send); a watch decodes
 * its events through a keep list and an ERROR event whole; bearer tokens. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "client/client.h"
#include "lib/httpd.h"
#include "client/client_int.h"
#include "lib/pki.h"
#include "lib/util.h"

static char dir[64];
/* what the echo handler got last (its thread writes, the test reads) */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_method[16], last_body[256], last_ct[64];
/* the whole request as the server saw it: target, headers in order, body */
static char last_request[1024];
/* every remote address the echo handler saw (the sender's connections), and requests served */
static char remotes[64][64];
static int nremotes, nserved;
static ck_http_stream *hanging;     /* the open /hang stream */

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    (void)ctx;
    if (!strcmp(req->path, "/missing")) {
        const char *b = "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"message\":\"gone\"}";
        ck_http_respond(resp, 404, "application/json", NULL, b, strlen(b));
        return;
    }
    if (!strcmp(req->path, "/watch")) {
        ck_http_stream *s = ck_http_stream_start(resp, 200, "application/json", NULL, NULL, NULL);
        const char *ev1 = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"uid\":\"u\"},"
                          "\"spec\":{\"big\":[1,2,3]}}}\n";
        const char *ev2 = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                          "\"message\":\"too old\"}}\n";
        ck_http_stream_write(s, ev1, strlen(ev1));
        ck_http_stream_write(s, ev2, strlen(ev2));
        ck_http_stream_end(s);
        ck_http_stream_release(s);
        return;
    }
    if (!strcmp(req->path, "/hang")) {         /* one event, then open until the test ends it */
        ck_http_stream *s = ck_http_stream_start(resp, 200, "application/json", NULL, NULL, NULL);
        const char *ev = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"h\"}}}\n";
        ck_http_stream_write(s, ev, strlen(ev));
        pthread_mutex_lock(&last_lock);
        hanging = s;
        pthread_mutex_unlock(&last_lock);
        return;
    }
    if (!strcmp(req->path, "/watch2")) {      /* five events, then the end */
        ck_http_stream *s = ck_http_stream_start(resp, 200, "application/json", NULL, NULL, NULL);
        static const char *const evs[] = {
            "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"uid\":\"u\"},\"spec\":{\"big\":[1]}}}\n",
            "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"uid\":\"u\"},\"spec\":{\"big\":[2]}}}\n",
            "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\",\"uid\":\"v\"},\"spec\":{\"big\":[3]}}}\n",
            /* the type not first: only the light pass can tell */
            "{\"object\":{\"metadata\":{\"name\":\"a\",\"uid\":\"u\"},\"spec\":{\"big\":[4]}},\"type\":\"MODIFIED\"}\n",
            "{\"object\":{\"metadata\":{\"name\":\"c\",\"uid\":\"w\"},\"spec\":{\"big\":[5]}},\"type\":\"DELETED\"}\n"};
        for (size_t i = 0; i < 5; i++)
            ck_http_stream_write(s, evs[i], strlen(evs[i]));
        ck_http_stream_end(s);
        ck_http_stream_release(s);
        return;
    }
    /* echo what arrived: method, client, connection, headers, body */
    const char *auth = ck_http_req_header(req, "Authorization");
    const char *ct = ck_http_req_header(req, "Content-Type");
    pthread_mutex_lock(&last_lock);
    snprintf(last_method, sizeof last_method, "%s", req->method);
    snprintf(last_body, sizeof last_body, "%.*s", req->body ? (int)req->body_len : 0,
             req->body ? req->body : "");
    snprintf(last_ct, sizeof last_ct, "%s", ct ? ct : "-");
    int off = snprintf(last_request, sizeof last_request, "%s %s\n", req->method, req->target);
    for (size_t i = 0; i < req->nheaders && off > 0 && (size_t)off < sizeof last_request; i++)
        off += snprintf(last_request + off, sizeof last_request - (size_t)off, "%s: %s\n",
                        req->headers[i].name, req->headers[i].value);
    if (off > 0 && (size_t)off < sizeof last_request)
        snprintf(last_request + off, sizeof last_request - (size_t)off, "\n%s", last_body);
    nserved++;
    int k = 0;
    while (k < nremotes && strcmp(remotes[k], req->remote_addr))
        k++;
    if (k == nremotes && nremotes < 64)
        snprintf(remotes[nremotes++], sizeof remotes[0], "%s", req->remote_addr);
    pthread_mutex_unlock(&last_lock);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s%}", "method", req->method, "cn",
                          req->client_cn ? req->client_cn : "-", "remote", req->remote_addr,
                          "auth", auth ? auth : "-", "ct", ct ? ct : "-", "body",
                          req->body ? req->body : "", req->body ? req->body_len : 0);
    char *b = json_dumps(o, JSON_COMPACT);
    ck_http_respond(resp, 200, "application/json", NULL, b, strlen(b));
    free(b);
    json_decref(o);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/ck-client-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    ck_error *err = NULL;
    if (ck_pki_ensure_cluster(dir, NULL, &err) < 0) {
        fprintf(stderr, "pki: %s\n", err->msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cleanup_free char *cmd = xasprintf("rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static ck_httpd *start(void)
{
    cleanup_free char *crt = xasprintf("%s/apiserver.crt", dir),
                      *key = xasprintf("%s/apiserver.key", dir), *ca = xasprintf("%s/ca.crt", dir);
    ck_httpd_config cfg = {.cert_file = crt, .key_file = key, .client_ca_file = ca,
                           .handler = handler};
    ck_error *err = NULL;
    ck_httpd *h = ck_httpd_start(&cfg, &err);
    if (!h)
        fail_msg("httpd: %s", err->msg);
    return h;
}

static ck_client *client_for(int port, bool cert, const char *token)
{
    ck_kubeconfig kc = {0};
    kc.server = xasprintf("https://127.0.0.1:%d", port);
    cleanup_free char *ca = xasprintf("%s/ca.crt", dir), *crt = xasprintf("%s/admin.crt", dir),
                      *key = xasprintf("%s/admin.key", dir);
    assert_int_equal(ck_read_file(ca, 1 << 20, &kc.ca_pem, &kc.ca_len), 0);
    if (cert) {
        assert_int_equal(ck_read_file(crt, 1 << 20, &kc.cert_pem, &kc.cert_len), 0);
        assert_int_equal(ck_read_file(key, 1 << 20, &kc.key_pem, &kc.key_len), 0);
    }
    kc.token = token ? xstrdup(token) : NULL;
    ck_error *err = NULL;
    ck_client *c = ck_client_new(&kc, "test/1", &err);
    assert_non_null(c);
    free(kc.server);
    free(kc.ca_pem);
    free(kc.cert_pem);
    free(kc.key_pem);
    free(kc.token);
    return c;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_pooled_requests(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    ck_client *c = client_for(ck_httpd_port(srv), true, NULL);
    json_t *body = json_pack("{s:i}", "x", 1);
    static const struct {
        const char *method, *ct;
        bool body;
        const char *want_body, *want_ct;
    } rows[] = {
        {"GET", NULL, false, "", "-"},
        {"POST", NULL, true, "{\"x\":1}", "application/json"},
        {"DELETE", NULL, false, "", "-"},            /* nothing left of the POST */
        {"PATCH", "application/merge-patch+json", true, "{\"x\":1}", "application/merge-patch+json"},
        {"GET", NULL, false, "", "-"},
        {"PUT", "application/json", true, "{\"x\":1}", "application/json"},
        {"DELETE", NULL, true, "{\"x\":1}", "application/json"},
    };
    char remote[64] = "";
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        ck_error *err = NULL;
        json_t *out = ck_client_request(c, rows[i].method, "/echo", rows[i].body ? body : NULL,
                                        rows[i].ct, &err);
        if (!out)
            fail_msg("row %zu: %s", i, err->msg);
        assert_string_equal(str(out, "method"), rows[i].method);
        assert_string_equal(str(out, "body"), rows[i].want_body);
        assert_string_equal(str(out, "ct"), rows[i].want_ct);
        assert_string_equal(str(out, "cn"), "kubernetes-admin");
        assert_string_equal(str(out, "auth"), "-");
        if (i == 0)       /* one after the other: one pooled handle, one connection */
            snprintf(remote, sizeof remote, "%s", str(out, "remote"));
        else
            assert_string_equal(str(out, "remote"), remote);
        json_decref(out);
    }
    /* picked: only what the keep list names */
    static const ck_jsonpick keep[] = {{"method", NULL}, {NULL, NULL}};
    ck_error *err = NULL;
    json_t *out = ck_client_request_pick(c, "POST", "/echo", body, keep, &err);
    assert_non_null(out);
    assert_int_equal(json_object_size(out), 1);
    assert_string_equal(str(out, "method"), "POST");
    json_decref(out);
    /* not decoded at all; errors keep their Status */
    assert_int_equal(ck_client_send(c, "PUT", "/echo", body, NULL, &err), 0);
    assert_null(ck_client_request(c, "GET", "/missing", NULL, NULL, &err));
    assert_int_equal(err->code, CK_E_NOT_FOUND);
    ck_error_free(err);
    err = NULL;
    assert_int_equal(ck_client_send(c, "DELETE", "/missing", NULL, NULL, &err), -1);
    assert_int_equal(err->code, CK_E_NOT_FOUND);
    ck_error_free(err);
    json_decref(body);
    ck_client_free(c);

    /* a bearer token and no client certificate */
    c = client_for(ck_httpd_port(srv), false, "t0ken");
    err = NULL;
    out = ck_client_request(c, "GET", "/echo", NULL, NULL, &err);
    assert_non_null(out);
    assert_string_equal(str(out, "auth"), "Bearer t0ken");
    assert_string_equal(str(out, "cn"), "-");
    json_decref(out);
    ck_client_free(c);
    ck_httpd_stop(srv);
}

/* A body already encoded goes out byte for byte with its content type (the answer unread); a
 * tree that is not an object or array is refused before anything is sent. */
static void test_send_text(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    ck_client *c = client_for(ck_httpd_port(srv), true, NULL);
    ck_error *err = NULL;
    const char *text = "{\"spec\":{\"a\":1, \"b\":[true]}}xyz";
    assert_int_equal(ck_client_send_text(c, "PATCH", "/echo", text, strlen(text) - 3,
                                         "application/merge-patch+json", &err), 0);
    pthread_mutex_lock(&last_lock);
    assert_string_equal(last_method, "PATCH");
    assert_string_equal(last_body, "{\"spec\":{\"a\":1, \"b\":[true]}}");
    assert_string_equal(last_ct, "application/merge-patch+json");
    pthread_mutex_unlock(&last_lock);
    assert_int_equal(ck_client_send_text(c, "POST", "/echo", text, 5, NULL, &err), 0);
    pthread_mutex_lock(&last_lock);
    assert_string_equal(last_body, "{\"spe");
    assert_string_equal(last_ct, "application/json");
    pthread_mutex_unlock(&last_lock);
    assert_int_equal(ck_client_send_text(c, "PUT", "/missing", text, 3, NULL, &err), -1);
    assert_int_equal(err->code, CK_E_NOT_FOUND);
    ck_error_free(err);
    err = NULL;
    json_t *scalar = json_integer(3);
    assert_int_equal(ck_client_send(c, "POST", "/echo", scalar, NULL, &err), -1);
    assert_int_equal(err->code, CK_E_INVALID);
    ck_error_free(err);
    json_decref(scalar);
    ck_client_free(c);
    ck_httpd_stop(srv);
}

typedef struct seen {
    int n;
    json_t *first;
} seen;

static bool on_event(void *ctx, const char *type, json_t *obj)
{
    seen *s = ctx;
    if (!s->n++)
        s->first = json_incref(obj);
    (void)type;
    return true;
}

static void test_watch_pick(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    ck_client *c = client_for(ck_httpd_port(srv), true, NULL);
    static const ck_jsonpick md[] = {{"name", NULL}, {NULL, NULL}};
    static const ck_jsonpick obj[] = {{"metadata", md}, {NULL, NULL}};
    static const ck_jsonpick ev[] = {{"object", obj}, {"*", NULL}, {NULL, NULL}};
    seen s = {0};
    ck_error *err = NULL;
    /* the ERROR event, decoded whole, ends the watch as expired (its code survives the pick) */
    assert_int_equal(ck_client_watch_pick(c, "/watch", ev, on_event, &s, NULL, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, CK_E_EXPIRED);
    assert_non_null(strstr(err->msg, "too old"));
    ck_error_free(err);
    assert_int_equal(s.n, 1);
    json_t *want = json_loads("{\"metadata\":{\"name\":\"a\"}}", 0, NULL);
    assert_true(json_equal(s.first, want));
    json_decref(want);
    json_decref(s.first);
    ck_client_free(c);
    ck_httpd_stop(srv);
}

/* A peeking watch: every update is first shown to peek in its light form (the name only); what
 * peek deals with (MODIFIED a) never reaches the callback, the rest arrive decoded with the
 * full keep list.  Adds and deletes are never peeked at, whether the line says its type first
 * (no light pass at all) or last. */
typedef struct peeked {
    int n;
    char seen[4][32];            /* "TYPE name" as peek saw them */
    bool light_only;             /* every light object held metadata.name alone */
    int full;                    /* callback calls */
    char got[4][32];             /* "TYPE name big[0]" as the callback got them */
} peeked;

static bool on_peek(void *ctx, const char *type, json_t *obj, bool *go_on)
{
    peeked *p = ctx;
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    if (p->n < 4)
        snprintf(p->seen[p->n++], sizeof p->seen[0], "%s %s", type, name ? name : "-");
    p->light_only &= json_object_size(obj) == 1 && json_object_size(json_object_get(obj, "metadata")) == 1;
    (void)go_on;
    return !(strcmp(type, "MODIFIED") == 0 && name && !strcmp(name, "a"));
}

static bool on_full(void *ctx, const char *type, json_t *obj)
{
    peeked *p = ctx;
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    json_int_t big = json_integer_value(json_array_get(json_object_get(json_object_get(obj, "spec"), "big"), 0));
    if (p->full < 4)
        snprintf(p->got[p->full++], sizeof p->got[0], "%s %s %lld", type, name ? name : "-", (long long)big);
    return true;
}

/* The watch's own wire handling: a stream the server ends (every event, rc 0), an error answer
 * (its Status), a cancel fired by the callback, a cancel fired by another thread while the server
 * is silent (the watch ends at once: it does not wake to poll), a server that is gone. */
static ck_cancel cancel_now;

static bool cancel_on_event(void *ctx, const char *type, json_t *obj)
{
    (void)type;
    (void)obj;
    ((seen *)ctx)->n++;
    ck_cancel_fire(&cancel_now);
    return true;
}

/* Ends the /hang stream the server holds open. */
static void end_hanging(void)
{
    ck_http_stream *hs = NULL;
    for (int i = 0; i < 200 && !hs; i++) {
        pthread_mutex_lock(&last_lock);
        hs = hanging;
        hanging = NULL;
        pthread_mutex_unlock(&last_lock);
        if (!hs)
            usleep(10 * 1000);
    }
    assert_non_null(hs);
    ck_http_stream_end(hs);
    ck_http_stream_release(hs);
}

typedef struct watch_run {
    ck_client *c;
    ck_cancel cancel;
    seen s;
    int rc;
    int tid;
    int64_t ended_ns;
} watch_run;

/* The times thread tid went to sleep (blocked) so far. */
static long sleeps_of(int tid)
{
    cleanup_free char *path = xasprintf("/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

static void *watch_thread(void *arg)
{
    watch_run *w = arg;
    __atomic_store_n(&w->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
    ck_error *err = NULL;
    w->rc = ck_client_watch(w->c, "/hang", on_event, &w->s, &w->cancel, &err);
    w->ended_ns = ck_now_ns();
    ck_error_free(err);
    return NULL;
}

static void test_watch_wire(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    ck_client *c = client_for(ck_httpd_port(srv), true, "t0ken");
    seen s = {0};
    ck_error *err = NULL;
    assert_int_equal(ck_client_watch(c, "/watch2", on_event, &s, NULL, &err), 0);
    assert_null(err);
    assert_int_equal(s.n, 5);
    json_decref(s.first);

    s = (seen){0};
    assert_int_equal(ck_client_watch(c, "/missing", on_event, &s, NULL, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, CK_E_NOT_FOUND);
    assert_string_equal(err->msg, "gone");
    ck_error_free(err);
    err = NULL;
    assert_int_equal(s.n, 0);

    s = (seen){0};
    ck_cancel_init(&cancel_now);
    int64_t t0 = ck_now_ns();
    assert_int_equal(ck_client_watch(c, "/hang", cancel_on_event, &s, &cancel_now, &err), 0);
    assert_null(err);
    assert_int_equal(s.n, 1);
    assert_true(ck_now_ns() - t0 < 2000000000LL);
    end_hanging();
    /* a cancel that fired before the watch began: no request at all */
    s = (seen){0};
    assert_int_equal(ck_client_watch(c, "/hang", on_event, &s, &cancel_now, &err), 0);
    assert_null(err);
    assert_int_equal(s.n, 0);
    ck_cancel_destroy(&cancel_now);

    /* fired from another thread while the watch blocks on a silent server */
    watch_run wr = {.c = c};
    ck_cancel_init(&wr.cancel);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, watch_thread, &wr), 0);
    for (int i = 0; i < 500 && __atomic_load_n(&wr.s.n, __ATOMIC_ACQUIRE) < 1; i++)
        usleep(10 * 1000);
    usleep(50 * 1000);
    long before = sleeps_of(__atomic_load_n(&wr.tid, __ATOMIC_ACQUIRE));
    usleep(800 * 1000);                  /* the old 250 ms polling woke three times here */
    assert_true(sleeps_of(wr.tid) - before <= 1);
    assert_int_equal(wr.ended_ns, 0);    /* still watching */
    int64_t fired = ck_now_ns();
    ck_cancel_fire(&wr.cancel);
    pthread_join(th, NULL);
    assert_int_equal(wr.rc, 0);
    assert_int_equal(wr.s.n, 1);
    assert_true(wr.ended_ns - fired < 200000000LL);   /* at once, not at a poll's next tick */
    json_decref(wr.s.first);
    ck_cancel_destroy(&wr.cancel);
    end_hanging();

    int port = ck_httpd_port(srv);
    ck_httpd_stop(srv);
    ck_client_free(c);
    c = client_for(port, true, NULL);
    assert_int_equal(ck_client_watch(c, "/watch2", on_event, &s, NULL, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, CK_E_UNAVAILABLE);
    cleanup_free char *want = xasprintf("watch /watch2: https://127.0.0.1:%d: ", port);
    assert_true(!strncmp(err->msg, want, strlen(want)));
    ck_error_free(err);
    ck_client_free(c);
}

/* The connection the watch and the sender share: libcurl connects, does TLS with the client's
 * certificate, agrees on http/1.1, and hands the socket over; a server that is gone is
 * CK_E_UNAVAILABLE naming it. */
static void test_connect_only(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    int port = ck_httpd_port(srv);
    ck_client *c = client_for(port, true, NULL);
    ck_error *err = NULL;
    curl_socket_t fd;
    CURL *h = ck_client_connect_only(c, &fd, &err);
    assert_non_null(h);
    assert_null(err);
    assert_true(fd != CURL_SOCKET_BAD);
    const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t sent = 0;
    assert_int_equal(curl_easy_send(h, req, strlen(req), &sent), CURLE_OK);
    assert_int_equal(sent, strlen(req));
    char buf[4096];
    size_t got = 0;
    for (int i = 0; i < 500 && !memmem(buf, got, "\r\n\r\n", 4); i++) {
        size_t n = 0;
        CURLcode cc = curl_easy_recv(h, buf + got, sizeof buf - 1 - got, &n);
        if (cc == CURLE_AGAIN) {
            usleep(10 * 1000);
            continue;
        }
        assert_int_equal(cc, CURLE_OK);
        got += n;
    }
    buf[got] = '\0';
    assert_true(!strncmp(buf, "HTTP/1.1 200 ", 13));
    curl_easy_cleanup(h);
    ck_httpd_stop(srv);

    h = ck_client_connect_only(c, &fd, &err);
    assert_null(h);
    assert_int_equal(fd, CURL_SOCKET_BAD);
    assert_non_null(err);
    assert_int_equal(err->code, CK_E_UNAVAILABLE);
    cleanup_free char *want = xasprintf("https://127.0.0.1:%d: ", port);
    assert_true(!strncmp(err->msg, want, strlen(want)));
    ck_error_free(err);
    ck_client_free(c);
}

static void test_watch_peek(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    ck_client *c = client_for(ck_httpd_port(srv), true, NULL);
    static const ck_jsonpick md[] = {{"name", NULL}, {NULL, NULL}};
    static const ck_jsonpick light_obj[] = {{"metadata", md}, {NULL, NULL}};
    static const ck_jsonpick light[] = {{"type", NULL}, {"object", light_obj}, {NULL, NULL}};
    static const ck_jsonpick full_obj[] = {{"metadata", md}, {"spec", NULL}, {NULL, NULL}};
    static const ck_jsonpick full[] = {{"object", full_obj}, {"*", NULL}, {NULL, NULL}};
    peeked p = {.light_only = true};
    ck_error *err = NULL;
    assert_int_equal(ck_client_watch_peek(c, "/watch2", light, on_peek, full, on_full, &p, NULL, &err), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.seen[0], "MODIFIED a");
    assert_string_equal(p.seen[1], "MODIFIED b");
    assert_string_equal(p.seen[2], "MODIFIED a");
    assert_true(p.light_only);
    assert_int_equal(p.full, 3);
    assert_string_equal(p.got[0], "ADDED a 1");
    assert_string_equal(p.got[1], "MODIFIED b 3");
    assert_string_equal(p.got[2], "DELETED c 5");
    ck_client_free(c);
    ck_httpd_stop(srv);
}

/* The sender: every queued request is answered once, in flight over at most `conns`
 * connections, its callback told the outcome as ck_client_send would (2xx: no error; a Status
 * answer: its code); bodies and content types go out as given. */
typedef struct sent {
    pthread_mutex_t lock;
    int calls[300];
    int codes[300];
} sent;

typedef struct sent_ctx {
    sent *s;
    int i;
} sent_ctx;

static void on_sent(void *ctx, const ck_error *err)
{
    sent_ctx *c = ctx;
    pthread_mutex_lock(&c->s->lock);
    c->s->calls[c->i]++;
    c->s->codes[c->i] = err ? (int)err->code : 0;
    pthread_mutex_unlock(&c->s->lock);
}

static void test_sender(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    ck_client *c = client_for(ck_httpd_port(srv), true, NULL);
    pthread_mutex_lock(&last_lock);
    nremotes = nserved = 0;
    pthread_mutex_unlock(&last_lock);
    static const struct {
        const char *method, *path, *body, *ct;
        int code;
    } rows[] = {
        {"POST", "/echo", "{\"a\":1}", NULL, 0},
        {"PATCH", "/echo", "{\"spec\":{}}", "application/merge-patch+json", 0},
        {"PATCH", "/echo", "[]", "application/strategic-merge-patch+json", 0},
        {"DELETE", "/echo", NULL, NULL, 0},
        {"PUT", "/missing", "{}", NULL, CK_E_NOT_FOUND},
    };
    enum { N = 300, CONNS = 4 };
    sent s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    sent_ctx ctx[N];
    ck_sender *snd = ck_sender_new(c, CONNS);
    for (int i = 0; i < N; i++) {
        size_t r = (size_t)i % ARRAY_SIZE(rows);
        ctx[i] = (sent_ctx){.s = &s, .i = i};
        char *body = rows[r].body ? xstrdup(rows[r].body) : NULL;
        ck_sender_send(snd, rows[r].method, rows[r].path, body, body ? strlen(body) : 0,
                       rows[r].ct, on_sent, &ctx[i]);
        if (i == N / 2)          /* some while the first are in flight, the rest after */
            ck_sender_drain(snd);
    }
    ck_sender_drain(snd);
    assert_int_equal(ck_sender_pending(snd), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s.calls[i], 1);
        assert_int_equal(s.codes[i], rows[(size_t)i % ARRAY_SIZE(rows)].code);
    }
    pthread_mutex_lock(&last_lock);
    assert_int_equal(nserved, N - N / (int)ARRAY_SIZE(rows));   /* /missing is not echoed */
    assert_true(nremotes >= 1 && nremotes <= CONNS);
    pthread_mutex_unlock(&last_lock);
    /* the last one alone: its method, body and content type as given */
    char *body = xstrdup("{\"x\":[1]}");
    ck_sender_send(snd, "PATCH", "/echo", body, strlen(body), "application/merge-patch+json",
                   NULL, NULL);
    ck_sender_drain(snd);
    ck_sender_free(snd);
    pthread_mutex_lock(&last_lock);
    assert_string_equal(last_method, "PATCH");
    assert_string_equal(last_body, "{\"x\":[1]}");
    assert_string_equal(last_ct, "application/merge-patch+json");
    pthread_mutex_unlock(&last_lock);
    /* a server that is gone: every request fails as unavailable, none is lost */
    int port = ck_httpd_port(srv);
    ck_client_free(c);
    ck_httpd_stop(srv);
    c = client_for(port, true, NULL);
    snd = ck_sender_new(c, 2);
    memset(&s.calls, 0, sizeof s.calls);
    for (int i = 0; i < 5; i++) {
        ctx[i] = (sent_ctx){.s = &s, .i = i};
        ck_sender_send(snd, "POST", "/echo", xstrdup("{}"), 2, NULL, on_sent, &ctx[i]);
    }
    ck_sender_drain(snd);
    ck_sender_free(snd);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s.calls[i], 1);
        assert_int_equal(s.codes[i], CK_E_UNAVAILABLE);
    }
    ck_client_free(c);
}

/* Freeing a sender with work queued: what is in flight is answered, what has not started is not
 * sent, and every callback runs exactly once either way. */
static void test_sender_stop(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    ck_client *c = client_for(ck_httpd_port(srv), true, NULL);
    pthread_mutex_lock(&last_lock);
    nserved = 0;
    pthread_mutex_unlock(&last_lock);
    enum { N = 200 };
    sent s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    sent_ctx ctx[N];
    ck_sender *snd = ck_sender_new(c, 1);
    for (int i = 0; i < N; i++) {
        ctx[i] = (sent_ctx){.s = &s, .i = i};
        ck_sender_send(snd, "POST", "/echo", xstrdup("{}"), 2, NULL, on_sent, &ctx[i]);
    }
    ck_sender_free(snd);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(s.calls[i], 1);
        assert_true(s.codes[i] == 0 || s.codes[i] == CK_E_UNAVAILABLE);
        ok += s.codes[i] == 0;
    }
    pthread_mutex_lock(&last_lock);
    assert_int_equal(nserved, ok);      /* nothing sent that was reported unsent */
    pthread_mutex_unlock(&last_lock);
    ck_client_free(c);
    ck_httpd_stop(srv);
}

/* The sender prints its requests itself: the server sees the same request as from the general
 * path (ck_client_send_text over a libcurl transfer): line, headers (the Accept header aside,
 * which writes leave out), body; with a bearer token too. */
static void test_sender_same_request(void **state)
{
    (void)state;
    ck_httpd *srv = start();
    static const struct {
        const char *method, *path, *body, *ct;
        bool token;
    } rows[] = {
        {"PATCH", "/echo/a", "{\"spec\":{\"x\":1}}", "application/merge-patch+json", false},
        {"POST", "/echo/b?dryRun=All", "{\"kind\":\"Binding\"}", NULL, true},
        {"PUT", "/echo/c", "[]", "application/strategic-merge-patch+json", true},
        {"DELETE", "/echo/d", NULL, NULL, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        ck_client *c = client_for(ck_httpd_port(srv), true, rows[i].token ? "t0ken" : NULL);
        char general[1024], sender[1024];
        ck_error *err = NULL;
        const char *body = rows[i].body;
        assert_int_equal(ck_client_send_text(c, rows[i].method, rows[i].path, body,
                                             body ? strlen(body) : 0, rows[i].ct, &err), 0);
        pthread_mutex_lock(&last_lock);
        snprintf(general, sizeof general, "%s", last_request);
        pthread_mutex_unlock(&last_lock);
        ck_sender *snd = ck_sender_new(c, 1);
        ck_sender_send(snd, rows[i].method, rows[i].path, body ? xstrdup(body) : NULL,
                       body ? strlen(body) : 0, rows[i].ct, NULL, NULL);
        ck_sender_drain(snd);
        ck_sender_free(snd);
        pthread_mutex_lock(&last_lock);
        snprintf(sender, sizeof sender, "%s", last_request);
        pthread_mutex_unlock(&last_lock);
        /* the general path asks for JSON answers; a write through the sender does not read its
         * answer (as ck_client_send_text's Accept) */
        char *acc = strstr(general, "Accept: application/json\n");
        assert_non_null(acc);
        memmove(acc, acc + 25, strlen(acc + 25) + 1);
        assert_string_equal(sender, general);
        assert_non_null(strstr(sender, rows[i].token ? "Authorization: Bearer t0ken" : "User-Agent: test/1"));
        ck_client_free(c);
    }
    ck_httpd_stop(srv);
}

/* The sender's answer parser: lengths, chunks, 1xx, closes, and what it refuses. */
static void test_parse_answer(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool eof;
        int rc, status;
        bool close;
        const char *body;
        int used;          /* -1: the whole input */
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false, 1, 200, false, "{}", -1},
        {"HTTP/1.1 201 Created\r\ncontent-length:  3\r\nConnection: keep-alive\r\n\r\nabc", false, 1, 201, false, "abc", -1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false, 0, 0, false, NULL, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true, -1, 0, false, NULL, 0},
        {"HTTP/1.1 200 OK\r\nContent-Len", false, 0, 0, false, NULL, 0},
        {"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 4\r\n\r\ngone", false, 1, 404, true, "gone", -1},
        {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false, 1, 200, true, "x", -1},
        {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", false, 1, 200, false, "x", -1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nA;x=y\r\n0123456789\r\n0\r\n\r\n", false, 1, 200, false, "abc0123456789", -1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", false, 1, 200, false, "abc", -1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", false, 0, 0, false, NULL, 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", false, -1, 0, false, NULL, 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, -1, 0, false, NULL, 0},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 1, 200, false, "", -1},
        {"HTTP/1.1 204 No Content\r\n\r\n", false, 1, 204, false, "", -1},
        {"HTTP/1.1 200 OK\r\n\r\nuntil the end", false, 0, 0, false, NULL, 0},
        {"HTTP/1.1 200 OK\r\n\r\nuntil the end", true, 1, 200, true, "until the end", -1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy", false, 1, 200, false, "x", 39},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", false, -1, 0, false, NULL, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, -1, 0, false, NULL, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false, -1, 0, false, NULL, 0},
        {"HTTP/2 200\r\n\r\n", false, -1, 0, false, NULL, 0},
        {"HTTP/1.1 2x0 OK\r\n\r\n", false, -1, 0, false, NULL, 0},
        {"garbage\r\n\r\n", false, -1, 0, false, NULL, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_client_answer a = {0};
        ck_buf_init(&a.body, 1u << 20);
        size_t len = strlen(cases[i].in);
        int rc = ck_client_parse_answer(cases[i].in, len, cases[i].eof, 1u << 20, &a);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d", i, rc, cases[i].rc);
        if (rc == 1) {
            assert_int_equal(a.status, cases[i].status);
            assert_int_equal(a.close, cases[i].close);
            assert_int_equal(a.body.len, strlen(cases[i].body));
            assert_memory_equal(a.body.len ? a.body.data : "", cases[i].body, a.body.len);
            assert_int_equal(a.used, cases[i].used < 0 ? len : (size_t)cases[i].used);
        }
        ck_buf_free(&a.body);
    }
    /* an empty input buffer (a connection that closed before sending a byte) has no data
     * pointer: UBSan caught it reaching memmem */
    ck_client_answer a = {0};
    ck_buf_init(&a.body, 1u << 20);
    assert_int_equal(ck_client_parse_answer(NULL, 0, false, 1u << 20, &a), 0);
    assert_int_equal(ck_client_parse_answer(NULL, 0, true, 1u << 20, &a), -1);
    ck_buf_free(&a.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pooled_requests),
        cmocka_unit_test(test_watch_pick),      cmocka_unit_test(test_watch_peek),
        cmocka_unit_test(test_watch_wire),
        cmocka_unit_test(test_connect_only),
        cmocka_unit_test(test_send_text),
        cmocka_unit_test(test_sender),
        cmocka_unit_test(test_sender_stop),
        cmocka_unit_test(test_sender_same_request),
        cmocka_unit_test(test_parse_answer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

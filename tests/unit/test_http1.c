/* Unit tests for client/http1: the lean request path against lib/httpd over TLS on 127.0.0.1
 * (port 0): client certificates, Content-Length and chunked answers, error statuses, connection
 * reuse, a resend after the server closed an idle connection, and certificate checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "client/http1.h"
#include "lib/httpd.h"
#include "lib/pki.h"
#include "lib/util.h"

static char dir[64], other[64];

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    if (!strcmp(req->path, "/chunked")) {
        ck_http_stream *s = ck_http_stream_start(resp, 200, "text/plain", NULL, NULL, NULL);
        ck_http_stream_write(s, "one,", 4);
        ck_http_stream_write(s, "two,", 4);
        ck_http_stream_write(s, "three", 5);
        ck_http_stream_end(s);
        ck_http_stream_release(s);
        return;
    }
    if (!strcmp(req->path, "/forever")) {     /* a watch that never ends by itself */
        ck_http_stream *s = ck_http_stream_start(resp, 200, "application/json", NULL, NULL, NULL);
        ck_http_stream_write(s, "{\"type\":\"ADDED\"}\n", 18);
        ck_http_stream_release(s);
        return;
    }
    if (!strcmp(req->path, "/slow"))
        usleep(200 * 1000);
    if (!strcmp(req->path, "/missing")) {
        const char *b = "{\"kind\":\"Status\",\"reason\":\"NotFound\"}";
        ck_http_respond(resp, 404, "application/json", NULL, b, strlen(b));
        return;
    }
    /* echo: method, client, remote address (same address = same connection), body */
    char *b = xasprintf("%s %s %s %s", req->method, req->client_cn ? req->client_cn : "-",
                        req->remote_addr, req->body ? req->body : "");
    ck_http_respond(resp, 200, "text/plain", NULL, b, strlen(b));
    free(b);
}

static ck_kubeconfig kc_for(const char *d, int port, bool with_cert)
{
    ck_kubeconfig kc = {0};
    kc.server = xasprintf("https://127.0.0.1:%d", port);
    cleanup_free char *ca = xasprintf("%s/ca.crt", d), *crt = xasprintf("%s/admin.crt", d),
                      *key = xasprintf("%s/admin.key", d);
    assert_int_equal(ck_read_file(ca, 1 << 20, &kc.ca_pem, &kc.ca_len), 0);
    if (with_cert) {
        assert_int_equal(ck_read_file(crt, 1 << 20, &kc.cert_pem, &kc.cert_len), 0);
        assert_int_equal(ck_read_file(key, 1 << 20, &kc.key_pem, &kc.key_len), 0);
    }
    return kc;
}

static void kc_free(ck_kubeconfig *kc)
{
    free(kc->server);
    free(kc->ca_pem);
    free(kc->cert_pem);
    free(kc->key_pem);
}

static int setup(void **state)
{
    strcpy(dir, "/tmp/ck-http1-XXXXXX");
    strcpy(other, "/tmp/ck-http1-other-XXXXXX");
    if (!mkdtemp(dir) || !mkdtemp(other))
        return -1;
    ck_error *err = NULL;
    if (ck_pki_ensure_cluster(dir, NULL, &err) < 0 || ck_pki_ensure_cluster(other, NULL, &err) < 0) {
        fprintf(stderr, "pki: %s\n", err->msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    cleanup_free char *cmd = xasprintf("rm -rf %s %s", dir, other);
    return system(cmd) == 0 ? 0 : -1;
}

static ck_httpd *start_on(int idle_ms, int port)
{
    cleanup_free char *crt = xasprintf("%s/apiserver.crt", dir), *key = xasprintf("%s/apiserver.key", dir),
                      *ca = xasprintf("%s/ca.crt", dir);
    ck_httpd_config cfg = {.cert_file = crt, .key_file = key, .client_ca_file = ca,
                           .handler = handler, .idle_timeout_ms = idle_ms, .port = port};
    ck_error *err = NULL;
    ck_httpd *h = ck_httpd_start(&cfg, &err);
    if (!h)
        fail_msg("httpd: %s", err->msg);
    return h;
}

static ck_httpd *start(int idle_ms)
{
    return start_on(idle_ms, 0);
}

static void *slow_request(void *arg)
{
    ck_buf out;
    ck_buf_init(&out, 1 << 20);
    long st = 0;
    int rc = ck_http1_request(arg, "GET", "/slow", NULL, NULL, 0, &st, &out, NULL);
    ck_buf_free(&out);
    return (void *)(intptr_t)(rc == 0 && st == 200);
}

/* Two pooled connections, then the server goes away: an error (not a crash), and once a server
 * is back on the port the next request works on a fresh connection. */
static void test_server_restart(void **state)
{
    ck_httpd *srv = start(0);
    int port = ck_httpd_port(srv);
    ck_kubeconfig kc = kc_for(dir, port, true);
    ck_error *err = NULL;
    ck_http1 *h = ck_http1_new(&kc, "test/1", &err);
    assert_non_null(h);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, slow_request, h);
    for (int i = 0; i < 2; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        assert_true(ok != NULL);
    }
    ck_httpd_stop(srv);
    ck_buf out;
    ck_buf_init(&out, 1 << 20);
    long st = 0;
    assert_int_equal(ck_http1_request(h, "GET", "/echo", NULL, NULL, 0, &st, &out, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->code, CK_E_UNAVAILABLE);
    ck_error_free(err);
    err = NULL;
    srv = start_on(0, port);
    assert_int_equal(ck_http1_request(h, "GET", "/echo", NULL, NULL, 0, &st, &out, &err), 0);
    assert_int_equal(st, 200);
    ck_buf_free(&out);
    ck_http1_free(h);
    kc_free(&kc);
    ck_httpd_stop(srv);
}

static void test_requests(void **state)
{
    ck_httpd *srv = start(0);
    ck_kubeconfig kc = kc_for(dir, ck_httpd_port(srv), true);
    ck_error *err = NULL;
    ck_http1 *h = ck_http1_new(&kc, "test/1", &err);
    assert_non_null(h);
    static const struct {
        const char *method, *path, *body;
        long status;
        const char *prefix;        /* of the answer */
    } rows[] = {
        {"POST", "/echo", "{\"a\":1}", 200, "POST kubernetes-admin 127.0.0.1:"},
        {"GET", "/echo", NULL, 200, "GET kubernetes-admin "},
        {"DELETE", "/echo", NULL, 200, "DELETE kubernetes-admin "},
        {"GET", "/chunked", NULL, 200, "one,two,three"},
        {"GET", "/missing", NULL, 404, "{\"kind\":\"Status\",\"reason\":\"NotFound\"}"},
    };
    char *first_addr = NULL;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
            ck_buf out;
            ck_buf_init(&out, 1 << 20);
            long st = 0;
            int rc = ck_http1_request(h, rows[i].method, rows[i].path, NULL, rows[i].body,
                                      rows[i].body ? strlen(rows[i].body) : 0, &st, &out, &err);
            if (rc < 0)
                fail_msg("row %zu: %s", i, err->msg);
            assert_int_equal(st, rows[i].status);
            if (strncmp(out.data, rows[i].prefix, strlen(rows[i].prefix)))
                fail_msg("row %zu: got %s", i, out.data);
            if (i == 0) {
                assert_non_null(strstr(out.data, "{\"a\":1}"));
                char *addr = xstrndup(out.data + 22, strcspn(out.data + 22, " "));
                if (!first_addr)
                    first_addr = addr;
                else {                 /* sequential requests reuse one connection */
                    assert_string_equal(addr, first_addr);
                    free(addr);
                }
            }
            ck_buf_free(&out);
        }
    }
    free(first_addr);
    ck_http1_free(h);
    kc_free(&kc);
    ck_httpd_stop(srv);
}

/* The server closes an idle kept-alive connection: the next request goes out on a fresh one. */
static void test_resend_after_idle_close(void **state)
{
    ck_httpd *srv = start(150);
    ck_kubeconfig kc = kc_for(dir, ck_httpd_port(srv), true);
    ck_error *err = NULL;
    ck_http1 *h = ck_http1_new(&kc, "test/1", &err);
    assert_non_null(h);
    for (int i = 0; i < 3; i++) {
        ck_buf out;
        ck_buf_init(&out, 1 << 20);
        long st = 0;
        if (ck_http1_request(h, "POST", "/echo", "application/json", "{}", 2, &st, &out, &err) < 0)
            fail_msg("request %d: %s", i, err->msg);
        assert_int_equal(st, 200);
        ck_buf_free(&out);
        usleep(400 * 1000);
    }
    ck_http1_free(h);
    kc_free(&kc);
    ck_httpd_stop(srv);
}

/* Another cluster's CA does not trust the server; no client certificate means anonymous;
 * non-https servers are refused up front. */
static void test_identity(void **state)
{
    ck_httpd *srv = start(0);
    ck_error *err = NULL;
    ck_kubeconfig wrong = kc_for(other, ck_httpd_port(srv), true);
    ck_http1 *h = ck_http1_new(&wrong, NULL, &err);
    assert_non_null(h);
    ck_buf out;
    ck_buf_init(&out, 1 << 20);
    long st = 0;
    assert_int_equal(ck_http1_request(h, "GET", "/echo", NULL, NULL, 0, &st, &out, &err), -1);
    assert_int_equal(err->code, CK_E_UNAVAILABLE);
    ck_error_free(err);
    err = NULL;
    ck_http1_free(h);
    kc_free(&wrong);

    ck_kubeconfig anon = kc_for(dir, ck_httpd_port(srv), false);
    h = ck_http1_new(&anon, NULL, &err);
    assert_non_null(h);
    ck_buf_reset(&out);
    assert_int_equal(ck_http1_request(h, "GET", "/echo", NULL, NULL, 0, &st, &out, &err), 0);
    assert_string_equal(strtok(out.data, " "), "GET");
    assert_string_equal(strtok(NULL, " "), "-");
    ck_http1_free(h);
    kc_free(&anon);

    ck_kubeconfig plain = {.server = "http://127.0.0.1:1"};
    assert_null(ck_http1_new(&plain, NULL, &err));
    ck_error_free(err);
    ck_buf_free(&out);
    ck_httpd_stop(srv);
}

static bool collect(void *ctx, const char *data, size_t len)
{
    return ck_buf_add(ctx, data, len) == 0;
}

static void *cancel_later(void *arg)
{
    usleep(300 * 1000);
    *(volatile bool *)arg = true;
    return NULL;
}

/* Streams: a chunked body piece by piece, a non-200 body, a stream ended by cancel. */
static void test_stream(void **state)
{
    ck_httpd *srv = start(0);
    ck_kubeconfig kc = kc_for(dir, ck_httpd_port(srv), true);
    ck_error *err = NULL;
    ck_http1 *h = ck_http1_new(&kc, "test/1", &err);
    assert_non_null(h);
    ck_buf got, eb;
    ck_buf_init(&got, 1 << 20);
    ck_buf_init(&eb, 1 << 20);
    long st = 0;
    assert_int_equal(ck_http1_stream(h, "/chunked", NULL, 5000, &st, &eb, collect, &got, &err), 0);
    assert_int_equal(st, 200);
    assert_string_equal(got.data, "one,two,three");
    assert_int_equal(ck_http1_stream(h, "/missing", NULL, 5000, &st, &eb, collect, &got, &err), 0);
    assert_int_equal(st, 404);
    assert_non_null(strstr(eb.data, "NotFound"));
    ck_buf_reset(&got);
    volatile bool cancel = false;
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, (void *)&cancel);
    int64_t t0 = ck_now_ns();
    assert_int_equal(ck_http1_stream(h, "/forever", &cancel, 60000, &st, &eb, collect, &got, &err), 0);
    pthread_join(t, NULL);
    assert_true(ck_now_ns() - t0 < 2000000000LL);     /* cancel noticed within ~100 ms */
    assert_string_equal(got.data, "{\"type\":\"ADDED\"}\n");
    ck_buf_free(&got);
    ck_buf_free(&eb);
    ck_http1_free(h);
    kc_free(&kc);
    ck_httpd_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_resend_after_idle_close),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_server_restart),
        cmocka_unit_test(test_stream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

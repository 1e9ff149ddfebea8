/* Unit tests for lib/kubeconfig: round trip, the real kubectl reads what we write, we read what
 * kubectl writes (file references, tokens, several contexts), and the libcurl helper really
 * authenticates to a TLS server on loopback (client certificate, bearer token, CA pinning). */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "client/component.h"
#include "lib/error.h"
#include "lib/kubeconfig.h"
#include "lib/pki.h"
#include "lib/util.h"

#define KUBECTL "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"

static char *tmpdir;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static char *tpath(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

static char *slurp(const char *p)
{
    char *data = NULL;
    assert_int_equal(ck_read_file(p, 1 << 20, &data, NULL), 0);
    return data;
}

static void put(const char *name, const char *text)
{
    cleanup_free char *p = tpath(name);
    assert_int_equal(ck_write_file_atomic(p, text, strlen(text), 0600), 0);
}

static int group_setup(void **state)
{
    tmpdir = xstrdup("/tmp/ckube-test-kubeconfig.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    cleanup_free char *pki = tpath("pki");
    cleanup_free char *other = tpath("other");
    ck_error *err = NULL;
    if (ck_pki_ensure_cluster(pki, NULL, &err) < 0 || ck_pki_ensure_cluster(other, NULL, &err) < 0)
        return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int group_teardown(void **state)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(tmpdir);
    curl_global_cleanup();
    return 0;
}

static ck_kubeconfig *admin_config(const char *server)
{
    cleanup_free char *ca = tpath("pki/ca.crt");
    cleanup_free char *crt = tpath("pki/admin.crt");
    cleanup_free char *key = tpath("pki/admin.key");
    ck_error *err = NULL;
    ck_kubeconfig *kc = ck_kubeconfig_from_files(server, ca, crt, key, &err);
    assert_non_null(kc);
    return kc;
}

static void test_round_trip(void **state)
{
    ck_kubeconfig *kc = admin_config("https://127.0.0.1:6443");
    kc->token = xstrdup("tok\"en");
    kc->namespace = xstrdup("kube-system");
    cleanup_free char *p = tpath("rt.kubeconfig");
    ck_error *err = NULL;
    assert_int_equal(ck_kubeconfig_write(p, kc, &err), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    ck_kubeconfig *back = ck_kubeconfig_load(p, NULL, &err);
    assert_non_null(back);
    assert_string_equal(back->server, kc->server);
    assert_int_equal(back->ca_len, kc->ca_len);
    assert_memory_equal(back->ca_pem, kc->ca_pem, kc->ca_len);
    assert_int_equal(back->cert_len, kc->cert_len);
    assert_memory_equal(back->cert_pem, kc->cert_pem, kc->cert_len);
    assert_int_equal(back->key_len, kc->key_len);
    assert_memory_equal(back->key_pem, kc->key_pem, kc->key_len);
    assert_string_equal(back->token, "tok\"en");
    assert_string_equal(back->namespace, "kube-system");
    assert_string_equal(back->context_name, "ckube");
    assert_string_equal(back->user_name, "admin");
    assert_false(back->insecure);
    ck_kubeconfig_free(back);
    ck_kubeconfig_free(kc);
}

/* The real kubectl parses what we write, and sees the same bytes. */
static void test_kubectl_reads_ours(void **state)
{
    if (access(KUBECTL, X_OK) != 0)
        skip();
    ck_kubeconfig *kc = admin_config("https://127.0.0.1:16443");
    cleanup_free char *p = tpath("kubectl-reads.kubeconfig");
    ck_error *err = NULL;
    assert_int_equal(ck_kubeconfig_write(p, kc, &err), 0);
    cleanup_free char *cmd = xasprintf(KUBECTL " config view --raw -o json --kubeconfig %s", p);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    json_error_t jerr;
    json_t *j = json_loadf(f, 0, &jerr);
    assert_int_equal(pclose(f), 0);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "current-context")), "ckube");
    json_t *cluster = json_object_get(json_array_get(json_object_get(j, "clusters"), 0), "cluster");
    assert_string_equal(json_string_value(json_object_get(cluster, "server")),
                        "https://127.0.0.1:16443");
    json_t *user = json_object_get(json_array_get(json_object_get(j, "users"), 0), "user");
    json_t *ctx = json_object_get(json_array_get(json_object_get(j, "contexts"), 0), "context");
    assert_string_equal(json_string_value(json_object_get(ctx, "user")), "admin");
    assert_string_equal(json_string_value(json_object_get(ctx, "cluster")), "ckube");

    /* decode what kubectl printed back through our own parser: same PEM bytes */
    cleanup_free char *yaml = xasprintf(
        "clusters: [{name: c, cluster: {server: s, certificate-authority-data: %s}}]\n"
        "users: [{name: u, user: {client-certificate-data: %s, client-key-data: %s}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
        json_string_value(json_object_get(cluster, "certificate-authority-data")),
        json_string_value(json_object_get(user, "client-certificate-data")),
        json_string_value(json_object_get(user, "client-key-data")));
    ck_kubeconfig *back = ck_kubeconfig_parse(yaml, strlen(yaml), tmpdir, NULL, &err);
    assert_non_null(back);
    assert_memory_equal(back->ca_pem, kc->ca_pem, kc->ca_len);
    assert_memory_equal(back->cert_pem, kc->cert_pem, kc->cert_len);
    assert_memory_equal(back->key_pem, kc->key_pem, kc->key_len);
    ck_kubeconfig_free(back);
    json_decref(j);
    ck_kubeconfig_free(kc);
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* We read what kubectl writes: file references, a token, a namespace, several contexts. */
static void test_we_read_kubectls(void **state)
{
    if (access(KUBECTL, X_OK) != 0)
        skip();
    cleanup_free char *p = tpath("kubectl-wrote.kubeconfig");
    cleanup_free char *cmd = xasprintf(
        "set -e; k() { " KUBECTL " --kubeconfig %s config \"$@\" >/dev/null; }; cd %s; "
        "k set-cluster c1 --server=https://127.0.0.1:7443 --certificate-authority=pki/ca.crt; "
        "k set-credentials u1 --client-certificate=pki/admin.crt --client-key=pki/admin.key; "
        "k set-credentials u2 --token=s3cret; "
        "k set-context ctx1 --cluster=c1 --user=u1 --namespace=ns1; "
        "k set-context ctx2 --cluster=c1 --user=u2; "
        "k use-context ctx1",
        p, tmpdir);
    assert_int_equal(run(cmd), 0);
    cleanup_free char *ca_p = tpath("pki/ca.crt");
    cleanup_free char *ca = slurp(ca_p);
    cleanup_free char *crt_p = tpath("pki/admin.crt");
    cleanup_free char *crt = slurp(crt_p);
    ck_error *err = NULL;
    ck_kubeconfig *kc = ck_kubeconfig_load(p, NULL, &err);
    assert_non_null(kc);
    assert_string_equal(kc->context_name, "ctx1");
    assert_string_equal(kc->server, "https://127.0.0.1:7443");
    assert_string_equal(kc->namespace, "ns1");
    assert_string_equal(kc->ca_pem, ca);
    assert_string_equal(kc->cert_pem, crt);
    assert_non_null(kc->key_pem);
    assert_null(kc->token);
    ck_kubeconfig_free(kc);
    kc = ck_kubeconfig_load(p, "ctx2", &err);
    assert_non_null(kc);
    assert_string_equal(kc->token, "s3cret");
    assert_null(kc->cert_pem);
    assert_null(kc->namespace);
    ck_kubeconfig_free(kc);
}

/* Relative references resolve against the kubeconfig's directory; tokenFile is read and trimmed. */
static void test_relative_files(void **state)
{
    put("token.txt", "  file-token\n");
    put("rel.kubeconfig",
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters:\n- name: c\n  cluster:\n    server: https://localhost:1/\n"
        "    certificate-authority: pki/ca.crt\n    insecure-skip-tls-verify: true\n"
        "users:\n- name: u\n  user:\n    tokenFile: token.txt\n"
        "contexts:\n- name: a\n  context: {cluster: c, user: u}\n");
    cleanup_free char *p = tpath("rel.kubeconfig");
    ck_error *err = NULL;
    ck_kubeconfig *kc = ck_kubeconfig_load(p, NULL, &err);
    assert_non_null(kc);
    assert_string_equal(kc->token, "file-token");
    assert_true(kc->insecure);
    assert_non_null(kc->ca_pem);
    assert_non_null(strstr(kc->ca_pem, "BEGIN CERTIFICATE"));
    cleanup_free char *url = ck_kubeconfig_url(kc, "/readyz");
    assert_string_equal(url, "https://localhost:1/readyz");
    ck_kubeconfig_free(kc);
}

/* kubeconfig may be JSON too (YAML's flow style); kubectl accepts it, so do we. */
static void test_json(void **state)
{
    const char *json = "{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"current-context\":\"x\","
                       "\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":\"https://h:1\"}}],"
                       "\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"t\"}}],"
                       "\"contexts\":[{\"name\":\"x\",\"context\":{\"cluster\":\"c\",\"user\":\"u\"}}]}";
    ck_error *err = NULL;
    ck_kubeconfig *kc = ck_kubeconfig_parse(json, strlen(json), tmpdir, NULL, &err);
    assert_non_null(kc);
    assert_string_equal(kc->server, "https://h:1");
    assert_string_equal(kc->token, "t");
    assert_null(kc->ca_pem);
    ck_kubeconfig_free(kc);
}

static void test_errors(void **state)
{
    static const struct {
        const char *yaml, *context, *want;
    } cases[] = {
        {"", NULL, "not a kubeconfig"},
        {"- a\n- b\n", NULL, "not a kubeconfig"},
        {"a: [unclosed\n", NULL, "line"},
        {"clusters: []\ncontexts: []\n", NULL, "no current-context"},
        {"current-context: x\ncontexts: []\n", NULL, "context \"x\" not found"},
        {"contexts: [{name: x, context: {cluster: c}}]\n", NULL, "cluster \"c\" not found"},
        {"contexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n",
         NULL, "has no server"},
        {"contexts: [{name: x, context: {cluster: c, user: u}}]\n"
         "clusters: [{name: c, cluster: {server: s}}]\n", NULL, "user \"u\" not found"},
        {"contexts: [{name: x, context: {cluster: c, user: u}}]\n"
         "clusters: [{name: c, cluster: {server: s, certificate-authority-data: \"!!\"}}]\n"
         "users: [{name: u, user: {}}]\n", NULL, "not valid base64"},
        {"contexts: [{name: x, context: {cluster: c, user: u}}]\n"
         "clusters: [{name: c, cluster: {server: s}}]\n"
         "users: [{name: u, user: {client-certificate-data: QUJD}}]\n", NULL, "without key"},
        {"contexts: [{name: x, context: {cluster: c, user: u}}]\n"
         "clusters: [{name: c, cluster: {server: s}}]\n"
         "users: [{name: u, user: {client-key: /nonexistent/key}}]\n", NULL, "/nonexistent/key"},
        {"contexts: [{name: x, context: {cluster: c}}]\n", "y", "context \"y\" not found"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_error *err = NULL;
        ck_kubeconfig *kc = ck_kubeconfig_parse(cases[i].yaml, strlen(cases[i].yaml), tmpdir,
                                                cases[i].context, &err);
        if (kc || !err || !strstr(err->msg, cases[i].want))
            fail_msg("case %zu: want error containing \"%s\", got %s", i, cases[i].want,
                     err ? err->msg : "success");
        ck_error_free(err);
    }
    ck_error *err = NULL;
    cleanup_free char *missing = tpath("missing.kubeconfig");
    assert_null(ck_kubeconfig_load(missing, NULL, &err));
    assert_non_null(strstr(err->msg, "missing.kubeconfig"));
    ck_error_free(err);
}

/* --- a one-request-per-connection TLS server on loopback that reports who called --- */

typedef struct tls_server {
    SSL_CTX *ctx;
    int fd, port, requests;
    pthread_t thread;
} tls_server;

static void *serve(void *arg)
{
    tls_server *s = arg;
    for (int i = 0; i < s->requests; i++) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            break;
        SSL *ssl = SSL_new(s->ctx);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) == 1) {
            char req[8192];
            int n = 0, r;
            while (n < (int)sizeof req - 1 && (r = SSL_read(ssl, req + n, (int)sizeof req - 1 - n)) > 0) {
                n += r;
                req[n] = '\0';
                if (strstr(req, "\r\n\r\n"))
                    break;
            }
            req[n] = '\0';
            char cn[256] = "-";
            X509 *peer = SSL_get1_peer_certificate(ssl);
            if (peer) {
                X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
                X509_free(peer);
            }
            char auth[256] = "-";
            const char *a = strstr(req, "Authorization: ");
            if (a)
                sscanf(a + 15, "%255[^\r]", auth);
            char body[600], resp[800];
            int blen = snprintf(body, sizeof body, "cn=%s auth=%s", cn, auth);
            int rlen = snprintf(resp, sizeof resp,
                                "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                                blen, body);
            SSL_write(ssl, resp, rlen);
            SSL_shutdown(ssl);
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(c);
    }
    return NULL;
}

static void server_start(tls_server *s, int requests)
{
    cleanup_free char *crt = tpath("pki/apiserver.crt");
    cleanup_free char *key = tpath("pki/apiserver.key");
    cleanup_free char *ca = tpath("pki/ca.crt");
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate_file(s->ctx, crt, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(s->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);   /* client certs optional, verified */
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    socklen_t alen = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &alen);
    s->port = ntohs(a.sin_port);
    s->requests = requests;
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(tls_server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
    SSL_CTX_free(s->ctx);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    ck_buf_add(ud, p, size * n);
    return size * n;
}

/* GET /readyz with kc; returns the curl result and the body in *body. */
static CURLcode get(const ck_kubeconfig *kc, char **body)
{
    CURL *h = curl_easy_init();
    struct curl_slist *headers = NULL;
    ck_error *err = NULL;
    assert_int_equal(ck_kubeconfig_apply_curl(kc, h, &headers, &err), 0);
    cleanup_free char *url = ck_kubeconfig_url(kc, "/readyz");
    ck_buf b;
    ck_buf_init(&b, 4096);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    *body = ck_buf_steal(&b);
    return rc;
}

static void test_curl_auth(void **state)
{
    tls_server s;
    server_start(&s, 4);
    cleanup_free char *server = xasprintf("https://127.0.0.1:%d", s.port);
    char *body;

    /* client certificate, verified server */
    ck_kubeconfig *kc = admin_config(server);
    assert_int_equal(get(kc, &body), CURLE_OK);
    assert_string_equal(body, "cn=kubernetes-admin auth=-");
    free(body);
    ck_kubeconfig_free(kc);

    /* bearer token, no client certificate; "localhost" is a SAN of the serving cert */
    cleanup_free char *by_name = xasprintf("https://localhost:%d/", s.port);
    cleanup_free char *ca = tpath("pki/ca.crt");
    ck_error *err = NULL;
    kc = ck_kubeconfig_from_files(by_name, ca, NULL, NULL, &err);
    kc->token = xstrdup("t0ken");
    assert_int_equal(get(kc, &body), CURLE_OK);
    assert_string_equal(body, "cn=- auth=Bearer t0ken");
    free(body);
    ck_kubeconfig_free(kc);

    /* the wrong CA: refused before anything is sent */
    cleanup_free char *other = tpath("other/ca.crt");
    kc = ck_kubeconfig_from_files(server, other, NULL, NULL, &err);
    assert_int_equal(get(kc, &body), CURLE_PEER_FAILED_VERIFICATION);
    free(body);

    /* ... unless verification is explicitly off */
    kc->insecure = true;
    assert_int_equal(get(kc, &body), CURLE_OK);
    assert_string_equal(body, "cn=- auth=-");
    free(body);
    ck_kubeconfig_free(kc);
    server_stop(&s);
}

/* The shared component start-up refuses what docs/design.md calls bad usage (the caller exits 2). */
static void test_component_args(void **state)
{
    (void)state;
    char *argv[] = {"stray", NULL};
    assert_int_equal(ck_component_check_args(1, argv, "kc"), -1);
    assert_int_equal(ck_component_check_args(0, argv, NULL), -1);
    assert_int_equal(ck_component_check_args(0, argv, ""), -1);
    assert_int_equal(ck_component_check_args(0, argv, "kc"), 0);
    assert_null(ck_component_client("/nonexistent/kubeconfig", "test"));
    assert_null(ck_component_client("/dev/null", "test"));
    cleanup_free char *path = tpath("component.kubeconfig");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', "
          "insecure-skip-tls-verify: true}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
          "current-context: x\nusers:\n- name: u\n  user: {token: t}\n", f);
    fclose(f);
    ck_client *c = ck_component_client(path, "test");
    assert_non_null(c);
    ck_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_kubectl_reads_ours),
        cmocka_unit_test(test_we_read_kubectls),
        cmocka_unit_test(test_relative_files),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_curl_auth),
        cmocka_unit_test(test_component_args),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* Unit tests for lib/pki: a fresh cluster PKI verifies against its CA, carries the SANs and
 * subjects asked for, and is reused (not regenerated) on the second call. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/error.h"
#include "lib/pki.h"
#include "lib/util.h"

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup_dir(void **state)
{
    char *d = xstrdup("/tmp/ckube-test-pki.XXXXXX");
    if (!mkdtemp(d))
        return -1;
    *state = d;
    return 0;
}

static int teardown_dir(void **state)
{
    nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return 0;
}

static char *path(void **state, const char *name)
{
    return xasprintf("%s/%s", (char *)*state, name);
}

static X509 *read_cert(const char *p)
{
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static char *slurp(const char *p)
{
    char *data = NULL;
    assert_int_equal(ck_read_file(p, 1 << 20, &data, NULL), 0);
    return data;
}

/* Full chain verification against the CA, for the given purpose. */
static int verify(X509 *ca, X509 *leaf, int purpose)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_add_cert(st, ca);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, st, leaf, NULL);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return ok;
}

static char *subject_entry(X509 *x, int nid, int nth)
{
    X509_NAME *n = X509_get_subject_name(x);
    int pos = -1;
    for (int i = 0; i <= nth; i++)
        if ((pos = X509_NAME_get_index_by_NID(n, nid, pos)) < 0)
            return NULL;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, pos));
    return xstrndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
}

static void test_cluster_fresh(void **state)
{
    ck_error *err = NULL;
    const char *extra[] = {"192.0.2.7", "api.example.test", NULL};
    assert_int_equal(ck_pki_ensure_cluster(*state, extra, &err), 1);
    assert_null(err);

    const char *files[] = {"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt",
                           "admin.key", "sa.key", "sa.pub", "tokens.csv"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        cleanup_free char *p = path(state, files[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        bool secret = strstr(files[i], ".key") || strstr(files[i], "tokens");
        if (secret)
            assert_int_equal(st.st_mode & 0777, 0600);
        else
            assert_int_equal(st.st_mode & 0022, 0);   /* certs: not writable by others */
    }

    cleanup_free char *ca_p = path(state, "ca.crt");
    cleanup_free char *api_p = path(state, "apiserver.crt");
    cleanup_free char *adm_p = path(state, "admin.crt");
    X509 *ca = read_cert(ca_p), *api = read_cert(api_p), *adm = read_cert(adm_p);

    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(verify(ca, api, X509_PURPOSE_SSL_SERVER), 1);
    assert_int_equal(verify(ca, adm, X509_PURPOSE_SSL_CLIENT), 1);
    /* the admin cert is not a serving cert: usage is enforced */
    assert_int_not_equal(verify(ca, adm, X509_PURPOSE_SSL_SERVER), 1);

    const char *ips[] = {"127.0.0.1", "::1", "10.96.0.1", "192.0.2.7"};
    for (size_t i = 0; i < ARRAY_SIZE(ips); i++)
        assert_int_equal(X509_check_ip_asc(api, ips[i], 0), 1);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *names[] = {"localhost", "kubernetes", "kubernetes.default",
                           "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                           "api.example.test", host};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        assert_int_equal(X509_check_host(api, names[i], 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(api, "evil.example.test", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_ip_asc(api, "192.0.2.8", 0), 1);

    cleanup_free char *cn = subject_entry(adm, NID_commonName, 0);
    cleanup_free char *o = subject_entry(adm, NID_organizationName, 0);
    assert_string_equal(cn, "kubernetes-admin");
    assert_string_equal(o, "system:masters");

    /* CA valid ~10 years, leaf ~1 year */
    int days, secs;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(ca)), 1);
    assert_in_range(days, 3640, 3650);
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(api)), 1);
    assert_in_range(days, 355, 365);

    cleanup_free char *tp = path(state, "tokens.csv");
    cleanup_free char *tokens = slurp(tp);
    char tok[64], rest[128];
    assert_int_equal(sscanf(tokens, "%63[^,],%127[^\n]", tok, rest), 2);
    assert_int_equal(strlen(tok), 32);
    assert_string_equal(rest, "ckube-admin,ckube-admin,\"system:masters\"");
    X509_free(ca);
    X509_free(api);
    X509_free(adm);
}

static void test_cluster_reused(void **state)
{
    ck_error *err = NULL;
    assert_int_equal(ck_pki_ensure_cluster(*state, NULL, &err), 1);
    const char *files[] = {"ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt",
                           "admin.key", "sa.key", "tokens.csv"};
    char *before[ARRAY_SIZE(files)];
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        cleanup_free char *p = path(state, files[i]);
        before[i] = slurp(p);
    }
    assert_int_equal(ck_pki_ensure_cluster(*state, NULL, &err), 0);
    assert_null(err);
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        cleanup_free char *p = path(state, files[i]);
        cleanup_free char *after = slurp(p);
        assert_string_equal(before[i], after);
        free(before[i]);
    }
}

/* A new extra SAN re-issues the serving cert from the same CA with the same key. */
static void test_new_san_reissues(void **state)
{
    ck_error *err = NULL;
    assert_int_equal(ck_pki_ensure_cluster(*state, NULL, &err), 1);
    cleanup_free char *ca_p = path(state, "ca.crt");
    cleanup_free char *key_p = path(state, "apiserver.key");
    cleanup_free char *crt_p = path(state, "apiserver.crt");
    cleanup_free char *ca_before = slurp(ca_p);
    cleanup_free char *key_before = slurp(key_p);
    cleanup_free char *crt_before = slurp(crt_p);
    const char *extra[] = {"198.51.100.4", NULL};
    assert_int_equal(ck_pki_ensure_cluster(*state, extra, &err), 1);
    cleanup_free char *ca_after = slurp(ca_p);
    cleanup_free char *key_after = slurp(key_p);
    cleanup_free char *crt_after = slurp(crt_p);
    assert_string_equal(ca_before, ca_after);
    assert_string_equal(key_before, key_after);
    assert_string_not_equal(crt_before, crt_after);
    X509 *ca = read_cert(ca_p), *api = read_cert(crt_p);
    assert_int_equal(X509_check_ip_asc(api, "198.51.100.4", 0), 1);
    assert_int_equal(verify(ca, api, X509_PURPOSE_SSL_SERVER), 1);
    X509_free(ca);
    X509_free(api);
    /* and the same SAN again is a no-op */
    assert_int_equal(ck_pki_ensure_cluster(*state, extra, &err), 0);
}

/* Client certs for components: CN = user, every group an O; changed groups re-issue. */
static void test_client_cert_groups(void **state)
{
    ck_error *err = NULL;
    cleanup_free char *ca_p = path(state, "ca.crt");
    cleanup_free char *cak_p = path(state, "ca.key");
    cleanup_free char *c_p = path(state, "node.crt");
    cleanup_free char *k_p = path(state, "node.key");
    assert_int_equal(ck_pki_ensure_ca(ca_p, cak_p, "test-ca", &err), 1);
    assert_int_equal(ck_pki_ensure_ca(ca_p, cak_p, "test-ca", &err), 0);
    const char *groups[] = {"system:nodes", "system:authenticated", NULL};
    assert_int_equal(ck_pki_ensure_client_cert(ca_p, cak_p, c_p, k_p, "system:node:n1", groups,
                                               &err), 1);
    assert_int_equal(ck_pki_ensure_client_cert(ca_p, cak_p, c_p, k_p, "system:node:n1", groups,
                                               &err), 0);
    X509 *x = read_cert(c_p);
    cleanup_free char *cn = subject_entry(x, NID_commonName, 0);
    cleanup_free char *o1 = subject_entry(x, NID_organizationName, 0);
    cleanup_free char *o2 = subject_entry(x, NID_organizationName, 1);
    assert_string_equal(cn, "system:node:n1");
    assert_string_equal(o1, "system:nodes");
    assert_string_equal(o2, "system:authenticated");
    X509_free(x);
    const char *fewer[] = {"system:nodes", NULL};
    assert_int_equal(ck_pki_ensure_client_cert(ca_p, cak_p, c_p, k_p, "system:node:n1", fewer,
                                               &err), 1);
    x = read_cert(c_p);
    cleanup_free char *o3 = subject_entry(x, NID_organizationName, 1);
    assert_null(o3);
    X509_free(x);
    assert_null(err);
}

/* A leaf that expires within 30 days is renewed at the next call: same key, new validity. */
static void test_renew_expiring(void **state)
{
    ck_error *err = NULL;
    cleanup_free char *ca_p = path(state, "ca.crt");
    cleanup_free char *cak_p = path(state, "ca.key");
    cleanup_free char *c_p = path(state, "short.crt");
    cleanup_free char *k_p = path(state, "short.key");
    assert_int_equal(ck_pki_ensure_ca(ca_p, cak_p, "ca", &err), 1);
    ck_pki_cert_opts o = {.cn = "short-lived", .client = true, .days = 2};
    assert_int_equal(ck_pki_ensure_cert(ca_p, cak_p, c_p, k_p, &o, &err), 1);
    cleanup_free char *key_before = slurp(k_p);
    o.days = 0;
    assert_int_equal(ck_pki_ensure_cert(ca_p, cak_p, c_p, k_p, &o, &err), 1);
    cleanup_free char *key_after = slurp(k_p);
    assert_string_equal(key_before, key_after);
    X509 *x = read_cert(c_p);
    int days, secs;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
    assert_in_range(days, 355, 365);
    X509_free(x);
    assert_int_equal(ck_pki_ensure_cert(ca_p, cak_p, c_p, k_p, &o, &err), 0);
    assert_null(err);
}

/* What a human put there is never overwritten: a foreign cert or a missing key is an error. */
static void test_refuses_foreign(void **state)
{
    ck_error *err = NULL;
    cleanup_free char *ca_p = path(state, "ca.crt");
    cleanup_free char *cak_p = path(state, "ca.key");
    cleanup_free char *ca2_p = path(state, "other-ca.crt");
    cleanup_free char *ca2k_p = path(state, "other-ca.key");
    cleanup_free char *c_p = path(state, "x.crt");
    cleanup_free char *k_p = path(state, "x.key");
    assert_int_equal(ck_pki_ensure_ca(ca_p, cak_p, "ca-one", &err), 1);
    assert_int_equal(ck_pki_ensure_ca(ca2_p, ca2k_p, "ca-two", &err), 1);
    assert_int_equal(ck_pki_ensure_client_cert(ca2_p, ca2k_p, c_p, k_p, "u", NULL, &err), 1);
    cleanup_free char *before = slurp(c_p);
    assert_int_equal(ck_pki_ensure_client_cert(ca_p, cak_p, c_p, k_p, "u", NULL, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "not signed by"));
    ck_error_free(err);
    err = NULL;
    cleanup_free char *after = slurp(c_p);
    assert_string_equal(before, after);

    unlink(k_p);
    assert_int_equal(ck_pki_ensure_client_cert(ca2_p, ca2k_p, c_p, k_p, "u", NULL, &err), -1);
    assert_non_null(strstr(err->msg, "missing"));
    ck_error_free(err);
    err = NULL;

    unlink(cak_p);
    assert_int_equal(ck_pki_ensure_ca(ca_p, cak_p, "ca-one", &err), -1);
    ck_error_free(err);
}

static void test_token_file(void **state)
{
    ck_error *err = NULL;
    cleanup_free char *p = path(state, "tokens.csv");
    char *t1 = NULL, *t2 = NULL, *t3 = NULL;
    assert_int_equal(ck_pki_ensure_token_file(p, "alice", "u1", "g1,g2", &t1, &err), 1);
    assert_non_null(t1);
    assert_int_equal(ck_pki_ensure_token_file(p, "alice", "u1", "g1,g2", &t2, &err), 0);
    assert_string_equal(t1, t2);
    assert_int_equal(ck_pki_ensure_token_file(p, "bob", "u2", "", &t3, &err), 0);
    assert_null(t3);   /* the file exists: it is left alone, bob is not added */
    cleanup_free char *data = slurp(p);
    cleanup_free char *want = xasprintf("%s,alice,u1,\"g1,g2\"\n", t1);
    assert_string_equal(data, want);
    free(t1);
    free(t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_fresh, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_cluster_reused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_new_san_reissues, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_client_cert_groups, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_renew_expiring, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_refuses_foreign, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_token_file, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

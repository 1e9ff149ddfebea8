/* Unit tests for lib/certcache (recently verified client certificates) and its use by
 * connio's TLS server context: verdicts are reused only inside the chain's validity window and
 * the TTL, failures are never cached (another CA's certificate is refused every time), and an
 * OpenSSL client, which can resume, still gets its session ticket. */
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

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/certcache.h"
#include "lib/connio.h"
#include "lib/error.h"
#include "lib/pki.h"
#include "lib/util.h"

/* ---- the cache alone, as a table ---- */

static const time_t T0 = 1700000000;

typedef struct {
    const char *what;
    time_t nb, na;          /* the chain's window, relative to T0 */
    time_t at;              /* lookup time, relative to T0 (verified at T0) */
    bool ok;
} window_case;

static const window_case window_cases[] = {
    {"inside the window, just verified", -100, 1000, 0, true},
    {"inside the window, near the TTL", -100, 1000, CK_CERTCACHE_TTL - 1, true},
    {"past the TTL", -100, 100000, CK_CERTCACHE_TTL, false},
    {"at notAfter (expired)", -100, 50, 50, false},
    {"after notAfter (expired)", -100, 50, 60, false},
    {"before notBefore (not yet valid)", 10, 1000, 5, false},
    {"clock gone back before the verification", -100, 1000, -1, false},
};

static void test_window(void **state)
{
    (void)state;
    unsigned char d[CK_CERTCACHE_DIGEST];
    memset(d, 7, sizeof d);
    for (size_t i = 0; i < ARRAY_SIZE(window_cases); i++) {
        const window_case *c = &window_cases[i];
        ck_certcache *cc = ck_certcache_new(4, CK_CERTCACHE_TTL);
        ck_certcache_insert(cc, d, T0 + c->nb, T0 + c->na, T0);
        if (ck_certcache_lookup(cc, d, T0 + c->at) != c->ok)
            fail_msg("%s: expected %s", c->what, c->ok ? "a hit" : "a miss");
        ck_certcache_free(cc);
    }
}

static void test_digest_and_eviction(void **state)
{
    (void)state;
    ck_certcache *cc = ck_certcache_new(2, 60);
    unsigned char a[CK_CERTCACHE_DIGEST], b[CK_CERTCACHE_DIGEST], c[CK_CERTCACHE_DIGEST];
    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    memset(c, 3, sizeof c);
    b[31] = 1;
    assert_false(ck_certcache_lookup(cc, a, T0));           /* empty */
    ck_certcache_insert(cc, a, T0 - 10, T0 + 1000, T0);
    assert_true(ck_certcache_lookup(cc, a, T0 + 1));
    assert_false(ck_certcache_lookup(cc, b, T0 + 1));       /* another digest */
    ck_certcache_insert(cc, a, T0 - 10, T0 + 1000, T0 + 2); /* the same one again: one slot */
    assert_int_equal(ck_certcache_size(cc), 1);
    ck_certcache_insert(cc, b, T0 - 10, T0 + 1000, T0 + 2);
    assert_int_equal(ck_certcache_size(cc), 2);
    ck_certcache_insert(cc, c, T0 - 10, T0 + 1000, T0 + 3); /* full: one of them goes */
    assert_int_equal(ck_certcache_size(cc), 2);
    assert_true(ck_certcache_lookup(cc, c, T0 + 3));
    assert_int_equal(ck_certcache_lookup(cc, a, T0 + 3) + ck_certcache_lookup(cc, b, T0 + 3), 1);
    /* a stale entry is reused before a fresh one is evicted */
    ck_certcache_insert(cc, a, T0 - 10, T0 + 1000, T0 + 100);
    assert_true(ck_certcache_lookup(cc, a, T0 + 100));
    ck_certcache_free(cc);
}

/* ---- through TLS handshakes with connio's server context ---- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

typedef struct {
    char *dir;
    char *p[16];
    int np;
} fixture;

static const char *fpath(fixture *f, const char *name)
{
    f->p[f->np] = xasprintf("%s/%s", f->dir, name);
    return f->p[f->np++];
}

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);
    f->dir = xstrdup("/tmp/ckube-test-certcache.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < f->np; i++)
        free(f->p[i]);
    free(f->dir);
    free(f);
    return 0;
}

static SSL_CTX *client_ctx(const char *cert, const char *key)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    assert_non_null(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    if (cert) {
        assert_int_equal(SSL_CTX_use_certificate_file(c, cert, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM), 1);
    }
    return c;
}

static int ticket_count;
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl, (void)sess;
    ticket_count++;
    return 0;                /* not kept */
}

/* one handshake over a BIO pair, then a byte each way (the client reads any tickets);
 * returns the server's verify result for the client's certificate (-1: no certificate) */
static long handshake(SSL_CTX *sctx, SSL_CTX *cctx)
{
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *bs, *bc;
    assert_int_equal(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    int sd = 0, cd = 0;
    for (int i = 0; i < 100 && !(sd == 1 && cd == 1); i++) {
        if (cd != 1)
            cd = SSL_do_handshake(c);
        if (sd != 1)
            sd = SSL_do_handshake(s);
    }
    assert_int_equal(sd, 1);
    assert_int_equal(cd, 1);
    char b = 0;
    assert_int_equal(SSL_write(s, "x", 1), 1);
    assert_int_equal(SSL_read(c, &b, 1), 1);
    assert_int_equal(b, 'x');
    long vr = SSL_get0_peer_certificate(s) ? SSL_get_verify_result(s) : -1;
    SSL_free(c);
    SSL_free(s);
    return vr;
}

static X509 *load(const char *p)
{
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static void test_tls_cache(void **state)
{
    fixture *f = *state;
    ck_error *err = NULL;
    const char *ca = fpath(f, "ca.crt"), *cak = fpath(f, "ca.key");
    const char *ca2 = fpath(f, "ca2.crt"), *ca2k = fpath(f, "ca2.key");
    const char *srv = fpath(f, "srv.crt"), *srvk = fpath(f, "srv.key");
    const char *cl = fpath(f, "cl.crt"), *clk = fpath(f, "cl.key");
    const char *ot = fpath(f, "other.crt"), *otk = fpath(f, "other.key");
    assert_int_equal(ck_pki_ensure_ca(ca, cak, "test-ca", &err), 1);
    assert_int_equal(ck_pki_ensure_ca(ca2, ca2k, "test-ca", &err), 1);   /* same name, other key */
    assert_int_equal(ck_pki_ensure_serving_cert(ca, cak, srv, srvk, NULL, &err), 1);
    const char *groups[] = {"system:masters", NULL};
    assert_int_equal(ck_pki_ensure_client_cert(ca, cak, cl, clk, "alice", groups, &err), 1);
    assert_int_equal(ck_pki_ensure_client_cert(ca2, ca2k, ot, otk, "alice", groups, &err), 1);

    SSL_CTX *sctx = ck_connio_tls_server_ctx(srv, srvk, ca, &err);
    assert_non_null(sctx);
    ck_certcache *cc = ck_certcache_of(sctx);
    assert_non_null(cc);
    SSL_CTX *good = client_ctx(cl, clk), *other = client_ctx(ot, otk);
    SSL_CTX *anon = client_ctx(NULL, NULL);
    unsigned long h0, m0, h1, m1;

    /* first: verified in full and remembered; second: from the cache, same verdict */
    ck_certcache_stats(&h0, &m0);
    assert_int_equal(handshake(sctx, good), X509_V_OK);
    ck_certcache_stats(&h1, &m1);
    assert_int_equal(m1 - m0, 1);
    assert_int_equal(ck_certcache_size(cc), 1);
    assert_int_equal(handshake(sctx, good), X509_V_OK);
    ck_certcache_stats(&h0, &m0);
    assert_int_equal(h0 - h1, 1);

    /* another CA's certificate with the same subject: refused, every time, never cached */
    for (int i = 0; i < 2; i++) {
        ck_certcache_stats(&h1, &m1);
        assert_int_not_equal(handshake(sctx, other), X509_V_OK);
        ck_certcache_stats(&h0, &m0);
        assert_int_equal(h0 - h1, 0);
        assert_int_equal(m0 - m1, 1);
    }
    assert_int_equal(ck_certcache_size(cc), 1);
    /* no certificate: anonymous, nothing verified */
    assert_int_equal(handshake(sctx, anon), -1);

    /* the cached verdict ends with the certificate: not at its notAfter */
    X509 *x = load(cl);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    assert_int_equal(X509_digest(x, EVP_sha256(), md, &mdlen), 1);
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm), 1);
    time_t na = timegm(&tm);
    assert_true(ck_certcache_lookup(cc, md, time(NULL)));
    assert_false(ck_certcache_lookup(cc, md, na));
    assert_false(ck_certcache_lookup(cc, md, time(NULL) + CK_CERTCACHE_TTL + 1));
    X509_free(x);

    /* a server context for another CA has its own (empty) cache: alice's verdict is not
     * carried over, and her certificate fails there */
    SSL_CTX *sctx2 = ck_connio_tls_server_ctx(srv, srvk, ca2, &err);
    assert_non_null(sctx2);
    assert_int_equal(ck_certcache_size(ck_certcache_of(sctx2)), 0);
    assert_int_not_equal(handshake(sctx2, good), X509_V_OK);
    assert_int_equal(handshake(sctx2, other), X509_V_OK);

    SSL_CTX_free(sctx2);
    SSL_CTX_free(good);
    SSL_CTX_free(other);
    SSL_CTX_free(anon);
    SSL_CTX_free(sctx);
}

/* An OpenSSL client (it sends psk_key_exchange_modes, so it can resume) gets one ticket;
 * Go clients without a session cache send no such extension and get none (seen with kubectl
 * under strace in bench/streams_firstbyte_hook.sh: no NewSessionTicket record is read). */
static void test_ticket_for_resuming_client(void **state)
{
    fixture *f = *state;
    ck_error *err = NULL;
    const char *ca = fpath(f, "ca.crt"), *cak = fpath(f, "ca.key");
    const char *srv = fpath(f, "srv.crt"), *srvk = fpath(f, "srv.key");
    assert_int_equal(ck_pki_ensure_ca(ca, cak, "test-ca", &err), 1);
    assert_int_equal(ck_pki_ensure_serving_cert(ca, cak, srv, srvk, NULL, &err), 1);
    SSL_CTX *sctx = ck_connio_tls_server_ctx(srv, srvk, ca, &err);
    assert_non_null(sctx);
    SSL_CTX *c = client_ctx(NULL, NULL);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, new_session_cb);
    ticket_count = 0;
    assert_int_equal(handshake(sctx, c), -1);
    assert_int_equal(ticket_count, 1);
    SSL_CTX_free(c);
    SSL_CTX_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_digest_and_eviction),
        cmocka_unit_test_setup_teardown(test_tls_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticket_for_resuming_client, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

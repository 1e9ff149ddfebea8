/* Unit tests for lib/tlsrec (TLS 1.3 records opened and sealed without OpenSSL's record layer),
 * against OpenSSL over a loopback TLS pair whose contexts keep their traffic secrets: records
 * we seal after OpenSSL sent a KeyUpdate are read by the OpenSSL peer; records OpenSSL writes
 * after its KeyUpdate (padded ones too) are opened by us; a flipped bit, a replayed record and a
 * bad header are refused; both AES-GCM suites. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/tlsrec.h"
#include "lib/util.h"

static EVP_PKEY *key;
static X509 *cert;

static int setup(void **state)
{
    (void)state;
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    if (!key || !cert)
        return -1;
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               (const unsigned char *)"tlsrec-test", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    return X509_sign(cert, key, EVP_sha256()) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}

typedef struct pair {
    SSL_CTX *sctx, *cctx;
    SSL *s, *c;
    int sfd, cfd;
} pair;

static void *do_accept(void *arg)
{
    pair *p = arg;
    if (SSL_accept(p->s) != 1)
        p->s = NULL;
    return NULL;
}

/* A handshaken pair on loopback with the given TLS 1.3 suite; keep: the secrets are kept. */
static void pair_make(pair *p, const char *suite, bool keep)
{
    memset(p, 0, sizeof *p);
    p->sctx = SSL_CTX_new(TLS_server_method());
    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_use_certificate(p->sctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, key), 1);
    SSL_CTX_set_ciphersuites(p->sctx, suite);
    SSL_CTX_set_ciphersuites(p->cctx, suite);
    SSL_CTX_set_num_tickets(p->sctx, 0);
    if (keep) {
        ck_tlsrec_keylog_install(p->sctx);
        ck_tlsrec_keylog_install(p->cctx);
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    p->cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(p->cfd, (struct sockaddr *)&a, sizeof a), 0);
    p->sfd = accept(l, NULL, NULL);
    close(l);
    assert_true(p->sfd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(p->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(p->sfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    p->s = SSL_new(p->sctx);
    p->c = SSL_new(p->cctx);
    SSL_set_fd(p->s, p->sfd);
    SSL_set_fd(p->c, p->cfd);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, do_accept, p), 0);
    assert_int_equal(SSL_connect(p->c), 1);
    pthread_join(th, NULL);
    assert_non_null(p->s);
}

static void pair_free(pair *p)
{
    SSL_free(p->s);
    SSL_free(p->c);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    close(p->sfd);
    close(p->cfd);
}

/* n raw bytes from fd (the socket under an SSL). */
static void read_raw(int fd, unsigned char *b, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, b + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

/* One whole record from fd into b (its length returned). */
static size_t read_record(int fd, unsigned char *b)
{
    read_raw(fd, b, CK_TLSREC_HEADER);
    size_t body = (size_t)b[3] << 8 | b[4];
    read_raw(fd, b + CK_TLSREC_HEADER, body);
    return CK_TLSREC_HEADER + body;
}

static const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"};

/* The server updates its key through OpenSSL; we seal the records after that and the OpenSSL
 * client reads them (payloads of 0, 1 and 16384 bytes). */
static void test_seal_read_by_openssl(void **state)
{
    (void)state;
    for (size_t si = 0; si < ARRAY_SIZE(suites); si++) {
        pair p;
        pair_make(&p, suites[si], true);
        ck_tlsrec r;
        assert_int_equal(ck_tlsrec_init(&r, p.s, true, NULL), 0);
        assert_int_equal(SSL_key_update(p.s, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        assert_int_equal(SSL_do_handshake(p.s), 1);
        static const size_t lens[] = {1, 16384, 0, 7};
        unsigned char *plain = xmalloc(16384), *rec = xmalloc(CK_TLSREC_SEALED(16384));
        for (size_t i = 0; i < 16384; i++)
            plain[i] = (unsigned char)(i * 31 + si);
        for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
            assert_int_equal(ck_tlsrec_seal(&r, CK_TLSREC_APPDATA, plain, lens[i], rec, NULL), 0);
            assert_int_equal(send(p.sfd, rec, CK_TLSREC_SEALED(lens[i]), 0),
                             (ssize_t)CK_TLSREC_SEALED(lens[i]));
        }
        assert_int_equal(r.seq, ARRAY_SIZE(lens));
        unsigned char *got = xmalloc(16384 + 8);
        size_t want = 1 + 16384 + 7, have = 0;
        while (have < want) {
            int n = SSL_read(p.c, got + have, (int)(want - have));
            if (n <= 0)
                fail_msg("OpenSSL read %zu of %zu bytes (%s)", have, want, suites[si]);
            have += (size_t)n;
        }
        assert_memory_equal(got, plain, 1);
        assert_memory_equal(got + 1, plain, 16384);
        assert_memory_equal(got + 16385, plain, 7);
        free(got);
        free(plain);
        free(rec);
        ck_tlsrec_free(&r);
        pair_free(&p);
    }
}

/* OpenSSL's server writes after its KeyUpdate (plain, then padded to 512-byte blocks); we open
 * them in place; a flipped bit and the same record again (wrong sequence) do not open. */
static void test_open_written_by_openssl(void **state)
{
    (void)state;
    for (size_t si = 0; si < ARRAY_SIZE(suites); si++) {
        pair p;
        pair_make(&p, suites[si], true);
        ck_tlsrec r;
        assert_int_equal(ck_tlsrec_init(&r, p.c, false, NULL), 0);
        assert_int_equal(SSL_key_update(p.s, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        assert_int_equal(SSL_write(p.s, "first", 5), 5);
        SSL_set_block_padding(p.s, 512);
        assert_int_equal(SSL_write(p.s, "padded", 6), 6);
        unsigned char *rec = xmalloc(CK_TLSREC_HEADER + CK_TLSREC_MAX_BODY), *pl;
        read_record(p.cfd, rec);   /* the KeyUpdate, under the old key: OpenSSL's */
        size_t n = read_record(p.cfd, rec), plen;
        uint8_t type;
        assert_int_equal(ck_tlsrec_record_len(rec, n, NULL), (long)n);
        assert_int_equal(ck_tlsrec_open(&r, rec, n, &pl, &plen, &type, NULL), 0);
        assert_int_equal(type, CK_TLSREC_APPDATA);
        assert_int_equal(plen, 5);
        assert_memory_equal(pl, "first", 5);
        n = read_record(p.cfd, rec);
        assert_int_equal(n, CK_TLSREC_HEADER + 512 + CK_TLSREC_TAG);   /* padded */
        unsigned char *copy = xmalloc(n);
        memcpy(copy, rec, n);
        rec[CK_TLSREC_HEADER + 3] ^= 1;
        assert_int_equal(ck_tlsrec_open(&r, rec, n, &pl, &plen, &type, NULL), -1);
        memcpy(rec, copy, n);
        assert_int_equal(ck_tlsrec_open(&r, rec, n, &pl, &plen, &type, NULL), 0);
        assert_int_equal(type, CK_TLSREC_APPDATA);
        assert_int_equal(plen, 6);
        assert_memory_equal(pl, "padded", 6);
        memcpy(rec, copy, n);   /* the same record once more: sequence 2 now, not 1 */
        ck_error *e = NULL;
        assert_int_equal(ck_tlsrec_open(&r, rec, n, &pl, &plen, &type, &e), -1);
        assert_non_null(e);
        ck_error_free(e);
        free(copy);
        free(rec);
        ck_tlsrec_free(&r);
        pair_free(&p);
    }
}

/* Headers: too short to say, not application data, a body too small or too large. */
static void test_record_len(void **state)
{
    (void)state;
    static const struct {
        unsigned char h[5];
        size_t avail;
        long want;
    } cases[] = {
        {{23, 3, 3, 0, 17}, 4, 0},
        {{23, 3, 3, 0, 17}, 5, 22},
        {{23, 3, 3, 0x41, 0x00}, 5, 5 + 16640},
        {{23, 3, 3, 0x41, 0x01}, 5, -1},
        {{23, 3, 3, 0, 16}, 5, -1},
        {{22, 3, 3, 0, 40}, 5, -1},
        {{23, 3, 1, 0, 40}, 5, -1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        assert_int_equal(ck_tlsrec_record_len(cases[i].h, cases[i].avail, NULL), cases[i].want);
}

/* No kept secret (a context without the keylog), or not an AES-GCM suite: no record layer. */
static void test_init_refuses(void **state)
{
    (void)state;
    pair p;
    pair_make(&p, "TLS_AES_128_GCM_SHA256", false);
    ck_tlsrec r;
    ck_error *e = NULL;
    assert_int_equal(ck_tlsrec_init(&r, p.s, true, &e), -1);
    assert_non_null(e);
    ck_error_free(e);
    pair_free(&p);
    pair_make(&p, "TLS_CHACHA20_POLY1305_SHA256", true);
    assert_int_equal(ck_tlsrec_init(&r, p.c, false, NULL), -1);
    pair_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_read_by_openssl),
        cmocka_unit_test(test_open_written_by_openssl),
        cmocka_unit_test(test_record_len),
        cmocka_unit_test(test_init_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

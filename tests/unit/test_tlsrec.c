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

/* The hand-off: the secret goes through the header's text (kept secret 0 -> "traffic upd" ->
 * hex -> parsed on the other side), records sealed with it from sequence 0 are read by the
 * OpenSSL client after the server's KeyUpdate, a close_notify sealed the same way is a clean
 * end; both suites. */
static void test_handoff_value_seals(void **state)
{
    (void)state;
    for (size_t si = 0; si < ARRAY_SIZE(suites); si++) {
        pair p;
        pair_make(&p, suites[si], true);
        ck_tlsrec_secret kept, got;
        assert_int_equal(ck_tlsrec_kept(p.s, &kept, NULL), 0);
        assert_int_equal(kept.suite, si == 0 ? 0x1301 : 0x1302);
        assert_int_equal(kept.len, si == 0 ? 32 : 48);
        assert_int_equal(ck_tlsrec_secret_next(&kept, NULL), 0);
        char v[CK_TLSREC_SEAL_VALUE_MAX];
        ck_tlsrec_seal_value(&kept, v);
        assert_int_equal(strlen(v), strlen("v1; suite=1301; secret=") + 2 * kept.len);
        assert_int_equal(ck_tlsrec_seal_parse(v, &got, NULL), 0);
        assert_int_equal(got.suite, kept.suite);
        assert_int_equal(got.len, kept.len);
        assert_memory_equal(got.b, kept.b, kept.len);
        ck_tlsrec r;
        assert_int_equal(ck_tlsrec_init_secret(&r, &got, true, NULL), 0);
        assert_int_equal(SSL_key_update(p.s, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        assert_int_equal(SSL_do_handshake(p.s), 1);
        unsigned char rec[CK_TLSREC_SEALED(64)];
        assert_int_equal(ck_tlsrec_seal(&r, CK_TLSREC_APPDATA, (const unsigned char *)"handed", 6,
                                        rec, NULL), 0);
        assert_int_equal(send(p.sfd, rec, CK_TLSREC_SEALED(6), 0), (ssize_t)CK_TLSREC_SEALED(6));
        static const unsigned char close_notify[2] = {1, 0};
        assert_int_equal(ck_tlsrec_seal(&r, CK_TLSREC_ALERT, close_notify, 2, rec, NULL), 0);
        assert_int_equal(send(p.sfd, rec, CK_TLSREC_SEALED(2), 0), (ssize_t)CK_TLSREC_SEALED(2));
        char b[16];
        assert_int_equal(SSL_read(p.c, b, sizeof b), 6);
        assert_memory_equal(b, "handed", 6);
        int n = SSL_read(p.c, b, sizeof b);
        assert_int_equal(SSL_get_error(p.c, n), SSL_ERROR_ZERO_RETURN);
        ck_tlsrec_free(&r);
        pair_free(&p);
    }
}

/* Sealed with secret 0 itself (the step skipped): the client's OpenSSL refuses the record. */
static void test_handoff_wrong_secret(void **state)
{
    (void)state;
    pair p;
    pair_make(&p, suites[0], true);
    ck_tlsrec_secret kept;
    assert_int_equal(ck_tlsrec_kept(p.s, &kept, NULL), 0);
    ck_tlsrec r;
    assert_int_equal(ck_tlsrec_init_secret(&r, &kept, true, NULL), 0);
    assert_int_equal(SSL_key_update(p.s, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    assert_int_equal(SSL_do_handshake(p.s), 1);
    unsigned char rec[CK_TLSREC_SEALED(8)];
    assert_int_equal(ck_tlsrec_seal(&r, CK_TLSREC_APPDATA, (const unsigned char *)"x", 1, rec,
                                    NULL), 0);
    assert_int_equal(send(p.sfd, rec, CK_TLSREC_SEALED(1), 0), (ssize_t)CK_TLSREC_SEALED(1));
    char b[8];
    int n = SSL_read(p.c, b, sizeof b);
    assert_true(n <= 0);
    assert_int_equal(SSL_get_error(p.c, n), SSL_ERROR_SSL);
    ERR_clear_error();
    ck_tlsrec_free(&r);
    pair_free(&p);
}

/* Header values the kubelet refuses: other versions, suites tlsrec does not seal (ChaCha20,
 * unknown, not hex), secrets of the wrong length or not hex, trailing bytes. */
static void test_handoff_parse_refuses(void **state)
{
    (void)state;
    char good128[128], good256[160];
    strcpy(good128, "v1; suite=1301; secret=");
    strcpy(good256, "v1; suite=1302; secret=");
    for (int i = 0; i < 32; i++)
        strcat(good128, "ab");
    for (int i = 0; i < 48; i++)
        strcat(good256, "0F");
    ck_tlsrec_secret s;
    assert_int_equal(ck_tlsrec_seal_parse(good128, &s, NULL), 0);
    assert_int_equal(s.len, 32);
    assert_int_equal(s.b[31], 0xab);
    assert_int_equal(ck_tlsrec_seal_parse(good256, &s, NULL), 0);
    assert_int_equal(s.len, 48);
    char bad[12][200];
    snprintf(bad[0], 200, "v2%s", good128 + 2);
    snprintf(bad[1], 200, "v1; suite=1303%s", good128 + 14);   /* ChaCha20 */
    snprintf(bad[2], 200, "v1; suite=13g1%s", good128 + 14);
    snprintf(bad[3], 200, "v1; suite=1302%s", good128 + 14);   /* 32 bytes for SHA-384 */
    snprintf(bad[4], 200, "v1; suite=1301%s", good256 + 14);   /* 48 bytes for SHA-256 */
    snprintf(bad[5], 200, "%s", good128);
    bad[5][strlen(bad[5]) - 1] = 'z';
    snprintf(bad[6], 200, "%sab", good128);
    snprintf(bad[7], 200, "%s", good128);
    bad[7][strlen(bad[7]) - 1] = '\0';                        /* odd length */
    snprintf(bad[8], 200, "v1; suite=1301");
    snprintf(bad[9], 200, "v1;suite=1301; secret=%s", good128 + 23);
    snprintf(bad[10], 200, "v1; suite=1301; secret=");
    snprintf(bad[11], 200, "%s ", good128);
    for (size_t i = 0; i < 12; i++) {
        ck_error *e = NULL;
        if (ck_tlsrec_seal_parse(bad[i], &s, &e) != -1)
            fail_msg("case %zu accepted", i);
        assert_non_null(e);
        assert_null(strstr(e->msg, "abab"));   /* the value is not in the message */
        ck_error_free(e);
    }
    /* the suite id must be one tlsrec seals: an init with another fails too */
    s.suite = 0x1303;
    ck_tlsrec r;
    assert_int_equal(ck_tlsrec_init_secret(&r, &s, true, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_read_by_openssl),
        cmocka_unit_test(test_open_written_by_openssl),
        cmocka_unit_test(test_record_len),
        cmocka_unit_test(test_init_refuses),
        cmocka_unit_test(test_handoff_value_seals),
        cmocka_unit_test(test_handoff_wrong_secret),
        cmocka_unit_test(test_handoff_parse_refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

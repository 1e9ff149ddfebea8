/* Unit tests for the API server's exec/port-forward relay (ck_podproxy_relay_start) over
 * loopback TLS: a fake kubelet (TLS server) and a client whose connection is handed to the relay
 * as httpd hands a taken one.  Bytes both ways intact; back-pressure (a client that reads
 * nothing stalls the kubelet's writes instead of growing the relay); the idle timeout; the 101's
 * unsent bytes and the early bytes of both sides delivered first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "apiserver/podproxy.h"
#include "lib/tlsrec.h"
#include "lib/util.h"

static SSL_CTX *srv_ctx, *cli_ctx;
static bool own_records;   /* the group where the relay opens and seals records itself */

/* A throwaway P-256 self-signed certificate for both TLS servers. */
static int setup(void **state)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x)
        return -1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"relay-test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (!X509_sign(x, k, EVP_sha256()))
        return -1;
    srv_ctx = SSL_CTX_new(TLS_server_method());
    cli_ctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_use_certificate(srv_ctx, x) != 1 || SSL_CTX_use_PrivateKey(srv_ctx, k) != 1)
        return -1;
    X509_free(x);
    EVP_PKEY_free(k);
    ck_podproxy_configure(NULL, NULL, NULL, 4 * 3600 * 1000);
    own_records = false;
    return 0;
}

/* The same tests with the traffic secrets kept (as connio's and the relay's contexts do): the
 * relay seals the client's records and opens the kubelet's after its KeyUpdate itself. */
static int setup_own(void **state)
{
    if (setup(state) < 0)
        return -1;
    ck_tlsrec_keylog_install(srv_ctx);
    ck_tlsrec_keylog_install(cli_ctx);
    own_records = true;
    return 0;
}

/* The hand-off: secrets kept; the fake kubelet sends no tickets (the real relay reads them with
 * the 101 through OpenSSL; here nothing reads the kubelet's socket before the raw records) */
static int setup_handoff(void **state)
{
    if (setup_own(state) < 0)
        return -1;
    SSL_CTX_set_num_tickets(srv_ctx, 0);
    return 0;
}

typedef struct own_count {
    int opened, sealed;
} own_count;

static own_count own_now(void)
{
    own_count c;
    ck_podproxy_relays_own(&c.opened, &c.sealed);
    return c;
}

/* The one relay since `before`: with the secrets kept, it opened (the kubelet's records, after
 * the kubelet answered our KeyUpdate) and sealed (the client's) records itself. */
static void check_own(own_count before, bool opened, bool sealed)
{
    own_count now = own_now();
    assert_int_equal(now.opened - before.opened, own_records && opened ? 1 : 0);
    assert_int_equal(now.sealed - before.sealed, own_records && sealed ? 1 : 0);
}

static int teardown(void **state)
{
    SSL_CTX_free(srv_ctx);
    SSL_CTX_free(cli_ctx);
    return 0;
}

/* One TLS connection over loopback: fds[0] is the client end, fds[1] the server end; both SSLs
 * have finished their handshake (the server's in a helper thread). */
struct tls_pair {
    int cfd, sfd;
    SSL *cssl, *sssl;
};

static void *accept_tls(void *arg)
{
    struct tls_pair *p = arg;
    if (SSL_accept(p->sssl) != 1)
        p->sssl = NULL;
    return NULL;
}

static void tls_pair_make(struct tls_pair *p)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    p->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(p->cfd, (struct sockaddr *)&a, sizeof a), 0);
    p->sfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(p->sfd >= 0);
    close(l);
    p->cssl = SSL_new(cli_ctx);
    p->sssl = SSL_new(srv_ctx);
    SSL_set_fd(p->cssl, p->cfd);
    SSL_set_fd(p->sssl, p->sfd);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, accept_tls, p), 0);
    assert_int_equal(SSL_connect(p->cssl), 1);
    pthread_join(th, NULL);
    assert_non_null(p->sssl);
}

/* The relay between a fake kubelet and a client: returns the test's ends (kubelet server SSL
 * on kssl and kfd, client SSL on cssl and cfd); the relay owns the others. */
static void relay_up_as(SSL **kssl, int *kfd, SSL **cssl, int *cfd, const char *unsent_plain,
                        const char *early_kubelet, const char *early_client,
                        ck_tlsrec_secret *handoff)
{
    struct tls_pair kp, cp;
    tls_pair_make(&kp);   /* relay = TLS client of the kubelet */
    tls_pair_make(&cp);   /* relay = TLS server of the client */
    ck_http_taken t = {.fd = cp.sfd, .ssl = cp.sssl};
    if (handoff) {
        /* what the relay puts in the X-Ckube-Seal header: the client connection's next
         * server-to-client secret */
        assert_int_equal(ck_tlsrec_kept(cp.sssl, handoff, NULL), 0);
        assert_int_equal(ck_tlsrec_secret_next(handoff, NULL), 0);
    }
    /* what httpd hands over: the 101 as records the socket did not take yet (made here with a
     * memory BIO on the server SSL, as connio would have) */
    BIO *mem = BIO_new(BIO_s_mem());
    BIO_up_ref(mem);
    SSL_set0_wbio(cp.sssl, mem);   /* the read side keeps the socket */
    assert_int_equal(SSL_write(cp.sssl, unsent_plain, (int)strlen(unsent_plain)),
                     (int)strlen(unsent_plain));
    char *rec;
    long n = BIO_get_mem_data(mem, &rec);
    t.unsent = xmalloc((size_t)n + 1);
    memcpy(t.unsent, rec, (size_t)n);
    t.unsent_len = (size_t)n;
    SSL_set0_wbio(cp.sssl, BIO_new_socket(cp.sfd, BIO_NOCLOSE));
    BIO_free(mem);
    t.input = xstrdup(early_client);
    t.input_len = strlen(early_client);
    fcntl(t.fd, F_SETFL, fcntl(t.fd, F_GETFL) | O_NONBLOCK);
    assert_int_equal(ck_podproxy_relay_start(kp.cfd, kp.cssl, &t, early_kubelet,
                                             strlen(early_kubelet), "test", ck_now_ns(),
                                             handoff != NULL),
                     0);
    assert_int_equal(t.fd, -1);
    assert_null(t.ssl);
    *kssl = kp.sssl;
    *kfd = kp.sfd;
    *cssl = cp.cssl;
    *cfd = cp.cfd;
}

static void relay_up(SSL **kssl, int *kfd, SSL **cssl, int *cfd, const char *unsent_plain,
                     const char *early_kubelet, const char *early_client)
{
    relay_up_as(kssl, kfd, cssl, cfd, unsent_plain, early_kubelet, early_client, NULL);
}

/* Every relay thread of a test has ended (and freed everything) before the next starts. */
static void relays_done(void)
{
    for (int i = 0; i < 500 && ck_podproxy_relays_active() > 0; i++)
        usleep(10 * 1000);
    assert_int_equal(ck_podproxy_relays_active(), 0);
}

static void set_timeout(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Read exactly want bytes (or fail). */
static void read_exact(SSL *ssl, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        int n = SSL_read(ssl, buf + got, (int)(want - got));
        if (n <= 0)
            fail_msg("read %zu of %zu bytes", got, want);
        got += (size_t)n;
    }
}

struct writer {
    SSL *ssl;
    ck_tlsrec *seal;   /* the hand-off: records sealed here, written raw to fd */
    int fd;
    size_t total, written;
    bool stop;
};

/* byte i of the stream is (i * 7 + i / 4096) & 0xff: position errors show */
static void *kubelet_writer(void *arg)
{
    struct writer *w = arg;
    char buf[65536];
    while (w->written < w->total && !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        size_t n = w->total - w->written < sizeof buf ? w->total - w->written : sizeof buf;
        for (size_t i = 0; i < n; i++) {
            size_t p = w->written + i;
            buf[i] = (char)((p * 7 + p / 4096) & 0xff);
        }
        int r;
        if (w->seal) {
            static unsigned char rec[CK_TLSREC_SEALED(16384)];
            r = 0;
            for (size_t off = 0; off < n && r >= 0; off += 16384) {
                size_t k = n - off < 16384 ? n - off : 16384;
                if (ck_tlsrec_seal(w->seal, CK_TLSREC_APPDATA, (unsigned char *)buf + off, k,
                                   rec, NULL) < 0 ||
                    send(w->fd, rec, CK_TLSREC_SEALED(k), MSG_NOSIGNAL) !=
                        (ssize_t)CK_TLSREC_SEALED(k))
                    r = -1;
            }
            if (r < 0)
                break;
            r = (int)n;
        } else {
            r = SSL_write(w->ssl, buf, (int)n);
        }
        if (r <= 0)
            break;
        __atomic_add_fetch(&w->written, (size_t)r, __ATOMIC_ACQ_REL);
    }
    return NULL;
}

/* After a relay_up with unsent "HTTP/1.1 101 Switching Protocols\r\n\r\n", early kubelet bytes
 * "K0" and early client bytes "C0": the 101 then K0 reach the client, C0 the kubelet, and the
 * client's "stdin" the kubelet. */
static void early_and_stdin(SSL *kssl, SSL *cssl)
{
    char b[64] = "";
    read_exact(cssl, b, 38);   /* the 101, then the kubelet's early bytes */
    assert_memory_equal(b, "HTTP/1.1 101 Switching Protocols\r\n\r\nK0", 38);
    read_exact(kssl, b, 2);    /* the client's early bytes */
    assert_memory_equal(b, "C0", 2);
    assert_int_equal(SSL_write(cssl, "stdin", 5), 5);
    read_exact(kssl, b, 5);
    assert_memory_equal(b, "stdin", 5);
}

/* 24 MiB from the kubelet (through kssl, or sealed with `seal` and written raw: the hand-off)
 * arrive at the client whole and in order. */
static void kubelet_stream(SSL *kssl, int kfd, SSL *cssl, ck_tlsrec *seal)
{
    struct writer w = {.ssl = seal ? NULL : kssl, .seal = seal, .fd = kfd, .total = 24u << 20};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kubelet_writer, &w), 0);
    char *buf = xmalloc(1 << 20);
    size_t got = 0;
    while (got < w.total) {
        int n = SSL_read(cssl, buf, 1 << 20);
        if (n <= 0)
            fail_msg("stream ended after %zu bytes", got);
        for (int i = 0; i < n; i++) {
            size_t p = got + (size_t)i;
            if (buf[i] != (char)((p * 7 + p / 4096) & 0xff))
                fail_msg("byte %zu differs", p);
        }
        got += (size_t)n;
    }
    pthread_join(th, NULL);
    free(buf);
}

/* Early bytes in order, both ways; 24 MiB down intact; the kubelet's close ends the client's
 * stream. */
static void test_relay_both_ways(void **state)
{
    SSL *kssl, *cssl;
    int kfd, cfd;
    own_count own0 = own_now();
    relay_up(&kssl, &kfd, &cssl, &cfd, "HTTP/1.1 101 Switching Protocols\r\n\r\n", "K0",
             "C0");
    set_timeout(kfd, 5000);
    set_timeout(cfd, 5000);
    char b[64] = "";
    early_and_stdin(kssl, cssl);
    kubelet_stream(kssl, kfd, cssl, NULL);
    SSL_shutdown(kssl);   /* the kubelet ends the session */
    close(kfd);
    int n = SSL_read(cssl, b, sizeof b);
    assert_true(n <= 0);   /* the relay closed the client's connection too */
    SSL_free(kssl);
    SSL_free(cssl);
    close(cfd);
    relays_done();
    check_own(own0, true, true);
}

/* The relay's 101 read, then a client that reads nothing: the kubelet's writes (through kssl, or
 * sealed with `seal` and written raw: the hand-off) stall at a bound (socket buffers plus the
 * relay's 256 KiB); then everything arrives, in order, once the client reads. */
static void stall_then_drain(SSL *kssl, int kfd, SSL *cssl, int cfd, ck_tlsrec *seal)
{
    set_timeout(cfd, 5000);
    char b[16];
    read_exact(cssl, b, 7);
    /* small receive buffers on both sockets so the bound is far below the stream */
    int small = 64 * 1024;
    setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(kfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    struct writer w = {.ssl = seal ? NULL : kssl, .seal = seal, .fd = kfd, .total = 256u << 20};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kubelet_writer, &w), 0);
    size_t last = 0, now;
    for (int i = 0; i < 40; i++) {   /* until the writer stalls */
        usleep(50 * 1000);
        now = __atomic_load_n(&w.written, __ATOMIC_ACQUIRE);
        if (i > 4 && now == last)
            break;
        last = now;
    }
    now = __atomic_load_n(&w.written, __ATOMIC_ACQUIRE);
    if (now > (24u << 20))
        fail_msg("the kubelet wrote %zu bytes to a client that reads nothing", now);
    assert_true(now > 0);
    /* read it all back: the stream resumes */
    __atomic_store_n(&w.stop, true, __ATOMIC_RELEASE);
    set_timeout(cfd, 200);
    char *buf = xmalloc(1 << 20);
    size_t got = 0;
    bool joined = false;
    int64_t until = ck_now_ns() + 30 * 1000000000LL;
    for (;;) {
        int n = SSL_read(cssl, buf, 1 << 20);
        if (n > 0) {
            for (int i = 0; i < n; i++) {
                size_t p = got + (size_t)i;
                if (buf[i] != (char)((p * 7 + p / 4096) & 0xff))
                    fail_msg("byte %zu differs", p);
            }
            got += (size_t)n;
            continue;
        }
        ERR_clear_error();   /* a read timeout: is the writer done? */
        if (!joined && pthread_tryjoin_np(th, NULL) == 0)
            joined = true;
        if (joined && got >= w.written)
            break;
        if (ck_now_ns() > until)
            fail_msg("only %zu of %zu bytes arrived", got, w.written);
    }
    assert_int_equal(got, w.written);
    free(buf);
}

/* A client that reads nothing: the kubelet's writes stall at a bound (socket buffers plus the
 * relay's 256 KiB), then everything arrives once the client reads. */
static void test_relay_back_pressure(void **state)
{
    SSL *kssl, *cssl;
    int kfd, cfd;
    own_count own0 = own_now();
    relay_up(&kssl, &kfd, &cssl, &cfd, "101\r\n\r\n", "", "");
    stall_then_drain(kssl, kfd, cssl, cfd, NULL);
    char b[16];
    SSL_free(kssl);   /* a dirty close from the kubelet's side ends the relay */
    close(kfd);
    SSL_read(cssl, b, sizeof b);
    SSL_free(cssl);
    close(cfd);
    relays_done();
    check_own(own0, false, true);   /* (this kubelet never reads our KeyUpdate) */
}

/* Nothing moves for longer than the idle timeout: both connections are closed. */
static void test_relay_idle_timeout(void **state)
{
    ck_podproxy_configure(NULL, NULL, NULL, 300);
    SSL *kssl, *cssl;
    int kfd, cfd;
    relay_up(&kssl, &kfd, &cssl, &cfd, "101\r\n\r\n", "", "");
    set_timeout(kfd, 5000);
    set_timeout(cfd, 5000);
    char b[16];
    read_exact(cssl, b, 7);
    int64_t t0 = ck_now_ns();
    assert_true(SSL_read(kssl, b, sizeof b) <= 0);   /* the relay said goodbye */
    assert_true(SSL_read(cssl, b, sizeof b) <= 0);
    int64_t ms = (ck_now_ns() - t0) / 1000000;
    if (ms < 200 || ms > 4000)
        fail_msg("closed after %lld ms, idle timeout 300 ms", (long long)ms);
    ck_podproxy_configure(NULL, NULL, NULL, 4 * 3600 * 1000);
    SSL_free(kssl);
    SSL_free(cssl);
    close(kfd);
    close(cfd);
    relays_done();
}

/* The kubelet's records reach the relay in pieces of 1-13 bytes (records split across reads,
 * headers split), records of 0-16384 bytes of plaintext, then half a record and a close: all
 * whole records arrive intact and the client's stream ends. */
static void test_relay_records_in_pieces(void **state)
{
    SSL *kssl, *cssl;
    int kfd, cfd;
    own_count own0 = own_now();
    relay_up(&kssl, &kfd, &cssl, &cfd, "101\r\n\r\n", "", "");
    set_timeout(cfd, 5000);
    char b[16];
    read_exact(cssl, b, 7);
    /* the kubelet reads (our KeyUpdate request, if any) and makes its records in memory */
    set_timeout(kfd, 300);
    assert_true(SSL_read(kssl, b, sizeof b) <= 0);
    ERR_clear_error();
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set0_wbio(kssl, mem);
    static const size_t sizes[] = {1, 2, 0, 100, 16384, 5000, 1, 16383, 3, 70000, 7};
    size_t total = 0;
    char *src = xmalloc(1 << 20);
    for (size_t i = 0; i < 1 << 20; i++)
        src[i] = (char)((i * 7 + i / 4096) & 0xff);
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        if (sizes[i])
            assert_int_equal(SSL_write(kssl, src + total, (int)sizes[i]), (int)sizes[i]);
        total += sizes[i];
    }
    char *rec;
    long n = BIO_get_mem_data(mem, &rec);
    assert_true(n > 0);
    int one = 1;
    setsockopt(kfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (long off = 0, step = 1; off < n; off += step, step = step % 13 + 1) {
        if (step > n - off)
            step = n - off;
        assert_int_equal(send(kfd, rec + off, (size_t)step, 0), step);
        if (off % 64 == 0)
            usleep(20);   /* the relay reads some of them one at a time */
    }
    /* half of one more record, then the kubelet is gone */
    BIO_reset(mem);
    assert_int_equal(SSL_write(kssl, "tail", 4), 4);
    n = BIO_get_mem_data(mem, &rec);
    assert_int_equal(send(kfd, rec, (size_t)n / 2, 0), n / 2);
    shutdown(kfd, SHUT_WR);
    char *got = xmalloc(total + 16);
    size_t have = 0;
    for (;;) {
        int r = SSL_read(cssl, got + have, (int)(total + 16 - have));
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    assert_int_equal(have, total);
    assert_memory_equal(got, src, total);
    free(got);
    free(src);
    SSL_free(kssl);
    close(kfd);
    SSL_free(cssl);
    close(cfd);
    relays_done();
    check_own(own0, true, true);
}

/* ---- the sealing hand-off: the kubelet seals the client's records itself ---- */

/* A sealed record of the kubelet's, written raw to its socket. */
static void kubelet_sealed(ck_tlsrec *seal, int kfd, uint8_t type, const void *d, size_t len)
{
    unsigned char rec[CK_TLSREC_SEALED(16384)];
    assert_int_equal(ck_tlsrec_seal(seal, type, d, len, rec, NULL), 0);
    assert_int_equal(send(kfd, rec, CK_TLSREC_SEALED(len), MSG_NOSIGNAL), CK_TLSREC_SEALED(len));
}

/* A relay with the sealing hand-off: the stand-in kubelet gets the client's key and seals with
 * it into *seal (ck_tlsrec_free it, or handoff_down). */
static void handoff_up(SSL **kssl, int *kfd, SSL **cssl, int *cfd, const char *unsent_plain,
                       const char *early_client, ck_tlsrec *seal)
{
    ck_tlsrec_secret sec;
    relay_up_as(kssl, kfd, cssl, cfd, unsent_plain, "", early_client, &sec);
    assert_int_equal(ck_tlsrec_init_secret(seal, &sec, true, NULL), 0);
}

/* Both ends and the kubelet's key freed; the relay thread has ended. */
static void handoff_down(ck_tlsrec *seal, SSL *kssl, int kfd, SSL *cssl, int cfd)
{
    ck_tlsrec_free(seal);
    SSL_free(kssl);
    close(kfd);
    SSL_free(cssl);
    close(cfd);
    relays_done();
}

/* The kubelet's raw records (sealed with the handed-over secret, sequence 0) reach the client
 * verbatim after the 101 and the relay's KeyUpdate: the client's OpenSSL reads 24 MiB intact;
 * stdin still goes up through the kubelet's TLS session; the kubelet's sealed close_notify is a
 * clean end for the client. */
static void test_handoff_verbatim(void **state)
{
    SSL *kssl, *cssl;
    int kfd, cfd;
    int handed0 = ck_podproxy_relays_handed();
    ck_tlsrec seal;
    handoff_up(&kssl, &kfd, &cssl, &cfd, "HTTP/1.1 101 Switching Protocols\r\n\r\n", "C0", &seal);
    set_timeout(kfd, 5000);
    set_timeout(cfd, 5000);
    char b[64] = "";
    kubelet_sealed(&seal, kfd, CK_TLSREC_APPDATA, "K0", 2);
    early_and_stdin(kssl, cssl);
    kubelet_stream(kssl, kfd, cssl, &seal);
    static const unsigned char close_notify[2] = {1, 0};
    kubelet_sealed(&seal, kfd, CK_TLSREC_ALERT, close_notify, 2);
    shutdown(kfd, SHUT_WR);
    int n = SSL_read(cssl, b, sizeof b);
    assert_int_equal(n, 0);
    assert_int_equal(SSL_get_error(cssl, n), SSL_ERROR_ZERO_RETURN);   /* a clean TLS end */
    handoff_down(&seal, kssl, kfd, cssl, cfd);
    assert_int_equal(ck_podproxy_relays_handed() - handed0, 1);
}

/* A forwarded record with a flipped bit, or a stream cut inside a record, is refused by the
 * client's OpenSSL (the relay cannot be used to inject or truncate unseen). */
static void handoff_bad(bool truncate)
{
    SSL *kssl, *cssl;
    int kfd, cfd;
    ck_tlsrec seal;
    handoff_up(&kssl, &kfd, &cssl, &cfd, "101\r\n\r\n", "", &seal);
    set_timeout(cfd, 5000);
    char b[64];
    kubelet_sealed(&seal, kfd, CK_TLSREC_APPDATA, "good", 4);
    read_exact(cssl, b, 11);
    assert_memory_equal(b, "101\r\n\r\ngood", 11);
    unsigned char rec[CK_TLSREC_SEALED(100)];
    memset(b, 'x', sizeof b);
    assert_int_equal(ck_tlsrec_seal(&seal, CK_TLSREC_APPDATA, (unsigned char *)b, 40, rec, NULL), 0);
    if (truncate) {
        assert_int_equal(send(kfd, rec, 20, 0), 20);
    } else {
        rec[CK_TLSREC_HEADER + 7] ^= 0x10;
        assert_int_equal(send(kfd, rec, CK_TLSREC_SEALED(40), 0), CK_TLSREC_SEALED(40));
    }
    shutdown(kfd, SHUT_WR);
    int n = SSL_read(cssl, b, sizeof b);
    assert_true(n <= 0);
    int e = SSL_get_error(cssl, n);
    assert_true(e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL);   /* not a clean end, no data */
    ERR_clear_error();
    handoff_down(&seal, kssl, kfd, cssl, cfd);
}

static void test_handoff_corrupt(void **state)
{
    handoff_bad(false);
}

static void test_handoff_truncated(void **state)
{
    handoff_bad(true);
}

/* A client that reads nothing stalls the kubelet's raw writes at a bound (socket buffers plus
 * the relay's pipe), then everything arrives once the client reads. */
static void test_handoff_back_pressure(void **state)
{
    SSL *kssl, *cssl;
    int kfd, cfd;
    ck_tlsrec seal;
    handoff_up(&kssl, &kfd, &cssl, &cfd, "101\r\n\r\n", "", &seal);
    stall_then_drain(kssl, kfd, cssl, cfd, &seal);
    char b[16];
    ck_tlsrec_free(&seal);
    SSL_free(kssl);
    close(kfd);
    SSL_read(cssl, b, sizeof b);
    SSL_free(cssl);
    close(cfd);
    relays_done();
}

/* The client asks for a KeyUpdate back (update_requested; Go never does): the relay cannot
 * answer without writing among the kubelet's records, so the session ends. */
static void test_handoff_client_keyupdate(void **state)
{
    SSL *kssl, *cssl;
    int kfd, cfd;
    ck_tlsrec seal;   /* unused: the session ends before the kubelet writes */
    handoff_up(&kssl, &kfd, &cssl, &cfd, "101\r\n\r\n", "", &seal);
    set_timeout(cfd, 5000);
    set_timeout(kfd, 5000);
    char b[16];
    read_exact(cssl, b, 7);
    assert_int_equal(SSL_key_update(cssl, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write(cssl, "x", 1), 1);
    int64_t t0 = ck_now_ns();
    assert_true(SSL_read(cssl, b, sizeof b) <= 0);   /* closed, not answered */
    ERR_clear_error();
    assert_true(ck_now_ns() - t0 < 4000000000LL);
    handoff_down(&seal, kssl, kfd, cssl, cfd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_both_ways),
        cmocka_unit_test(test_relay_back_pressure),
        cmocka_unit_test(test_relay_idle_timeout),
        cmocka_unit_test(test_relay_records_in_pieces),
    };
    const struct CMUnitTest handoff[] = {
        cmocka_unit_test(test_handoff_verbatim),
        cmocka_unit_test(test_handoff_corrupt),
        cmocka_unit_test(test_handoff_truncated),
        cmocka_unit_test(test_handoff_back_pressure),
        cmocka_unit_test(test_handoff_client_keyupdate),
    };
    int failed = cmocka_run_group_tests_name("openssl", tests, setup, teardown);
    failed += cmocka_run_group_tests_name("own_records", tests, setup_own, teardown);
    return failed + cmocka_run_group_tests_name("handoff", handoff, setup_handoff, teardown);
}

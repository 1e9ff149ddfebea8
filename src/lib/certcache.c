/* certcache.c - recently verified client certificates (see certcache.h). */
#include "lib/certcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "lib/util.h"

typedef struct entry {
    unsigned char digest[CK_CERTCACHE_DIGEST];
    time_t not_before, not_after, verified;
    bool used;
} entry;

struct ck_certcache {
    pthread_mutex_t mu;
    entry *e;
    size_t n, next;                 /* slots; the one the next insert overwrites if all used */
    int ttl;
};

static unsigned long stat_hits, stat_misses;

ck_certcache *ck_certcache_new(size_t slots, int ttl_s)
{
    ck_certcache *cc = xcalloc(1, sizeof *cc);
    pthread_mutex_init(&cc->mu, NULL);
    cc->n = slots ? slots : 1;
    cc->e = xcalloc(cc->n, sizeof *cc->e);
    cc->ttl = ttl_s;
    return cc;
}

void ck_certcache_free(ck_certcache *cc)
{
    if (!cc)
        return;
    pthread_mutex_destroy(&cc->mu);
    free(cc->e);
    free(cc);
}

static bool fresh(const ck_certcache *cc, const entry *e, time_t now)
{
    return e->used && now >= e->not_before && now < e->not_after && now >= e->verified &&
           now - e->verified < cc->ttl;
}

bool ck_certcache_lookup(ck_certcache *cc, const unsigned char *digest, time_t now)
{
    bool hit = false;
    pthread_mutex_lock(&cc->mu);
    for (size_t i = 0; i < cc->n && !hit; i++)
        hit = cc->e[i].used && !memcmp(cc->e[i].digest, digest, CK_CERTCACHE_DIGEST) &&
              fresh(cc, &cc->e[i], now);
    pthread_mutex_unlock(&cc->mu);
    return hit;
}

void ck_certcache_insert(ck_certcache *cc, const unsigned char *digest, time_t not_before,
                         time_t not_after, time_t now)
{
    pthread_mutex_lock(&cc->mu);
    entry *slot = NULL;
    for (size_t i = 0; i < cc->n && !slot; i++)   /* the same certificate, else a stale slot */
        if (cc->e[i].used && !memcmp(cc->e[i].digest, digest, CK_CERTCACHE_DIGEST))
            slot = &cc->e[i];
    for (size_t i = 0; i < cc->n && !slot; i++)
        if (!fresh(cc, &cc->e[i], now))
            slot = &cc->e[i];
    if (!slot) {
        slot = &cc->e[cc->next];
        cc->next = (cc->next + 1) % cc->n;
    }
    memcpy(slot->digest, digest, CK_CERTCACHE_DIGEST);
    slot->not_before = not_before;
    slot->not_after = not_after;
    slot->verified = now;
    slot->used = true;
    pthread_mutex_unlock(&cc->mu);
}

size_t ck_certcache_size(ck_certcache *cc)
{
    size_t k = 0;
    pthread_mutex_lock(&cc->mu);
    for (size_t i = 0; i < cc->n; i++)
        k += cc->e[i].used;
    pthread_mutex_unlock(&cc->mu);
    return k;
}

void ck_certcache_stats(unsigned long *hits, unsigned long *misses)
{
    *hits = __atomic_load_n(&stat_hits, __ATOMIC_RELAXED);
    *misses = __atomic_load_n(&stat_misses, __ATOMIC_RELAXED);
}

/* ---- the SSL_CTX hook ------------------------------------------------------------------------ */

static int ex_idx = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    ck_certcache_free(ptr);
}

static void ex_init(void)
{
    ex_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

static bool asn1_time(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = timegm(&tm);
    return true;
}

/* the chain's window: the latest notBefore and the earliest notAfter of its certificates */
static bool chain_window(STACK_OF(X509) *chain, time_t *nb, time_t *na)
{
    int n = chain ? sk_X509_num(chain) : 0;
    if (n <= 0)
        return false;
    for (int i = 0; i < n; i++) {
        X509 *x = sk_X509_value(chain, i);
        time_t b, a;
        if (!asn1_time(X509_get0_notBefore(x), &b) || !asn1_time(X509_get0_notAfter(x), &a))
            return false;
        if (i == 0 || b > *nb)
            *nb = b;
        if (i == 0 || a < *na)
            *na = a;
    }
    return true;
}

/* Replaces X509_verify_cert for the context: a leaf verified lately is accepted from the
 * cache; otherwise the full verification runs and a success is remembered.  The return value
 * and the store's error follow X509_verify_cert (OpenSSL takes the verify result from it). */
static int verify_cb(X509_STORE_CTX *sctx, void *arg)
{
    ck_certcache *cc = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(sctx);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    /* a fixed verification time (X509_V_FLAG_USE_CHECK_TIME) is not what the cache dates by */
    bool usable = leaf && !(X509_VERIFY_PARAM_get_flags(vp) & X509_V_FLAG_USE_CHECK_TIME) &&
                  X509_digest(leaf, EVP_sha256(), md, &mdlen) == 1 &&
                  mdlen == CK_CERTCACHE_DIGEST;
    time_t now = time(NULL);
    if (usable && ck_certcache_lookup(cc, md, now)) {
        __atomic_add_fetch(&stat_hits, 1, __ATOMIC_RELAXED);
        X509_STORE_CTX_set_error(sctx, X509_V_OK);
        return 1;
    }
    __atomic_add_fetch(&stat_misses, 1, __ATOMIC_RELAXED);
    int rc = X509_verify_cert(sctx);
    time_t nb, na;
    if (usable && rc == 1 && X509_STORE_CTX_get_error(sctx) == X509_V_OK &&
        chain_window(X509_STORE_CTX_get0_chain(sctx), &nb, &na))
        ck_certcache_insert(cc, md, nb, na, now);
    return rc;
}

int ck_certcache_install(SSL_CTX *ctx)
{
    pthread_once(&ex_once, ex_init);
    if (ex_idx < 0)
        return -1;
    ck_certcache *cc = ck_certcache_new(CK_CERTCACHE_SLOTS, CK_CERTCACHE_TTL);
    if (SSL_CTX_set_ex_data(ctx, ex_idx, cc) != 1) {
        ck_certcache_free(cc);
        return -1;
    }
    SSL_CTX_set_cert_verify_callback(ctx, verify_cb, cc);
    return 0;
}

ck_certcache *ck_certcache_of(SSL_CTX *ctx)
{
    return ex_idx < 0 ? NULL : SSL_CTX_get_ex_data(ctx, ex_idx);
}

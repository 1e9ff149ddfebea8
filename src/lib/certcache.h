/* certcache.h - a TLS server's cache of recently verified client certificates.
 *
 * Why: under OpenSSL 3.0 verifying a client's certificate chain (X509_verify_cert: chain
 * building, the CA's signature, the checks) is about half of the server's CPU for a TLS 1.3
 * handshake with a client certificate, and every kubectl command makes two such handshakes
 * with the same certificate.  The proof that the client holds the key (CertificateVerify) is
 * checked by OpenSSL in every handshake, cache or not; only the chain's verdict is reused.
 *
 * Contract: an entry is a SHA-256 digest of the leaf certificate's DER whose chain verified
 * against this context's trust store, with the validity window of the whole chain (latest
 * notBefore, earliest notAfter) and the time it was verified.  A lookup accepts it only inside
 * that window and for at most `ttl` seconds after the verification; failures are never cached,
 * so a certificate from another CA, an expired or not yet valid one always takes the full
 * verification (and fails it).  The cache belongs to one SSL_CTX (one trust store): a new
 * trust store means a new context and an empty cache.  Thread-safe (one mutex).
 */
#ifndef CK_LIB_CERTCACHE_H
#define CK_LIB_CERTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

#define CK_CERTCACHE_DIGEST 32
#define CK_CERTCACHE_TTL 300          /* seconds a verdict is reused */
#define CK_CERTCACHE_SLOTS 64

typedef struct ck_certcache ck_certcache;

ck_certcache *ck_certcache_new(size_t slots, int ttl_s);
void ck_certcache_free(ck_certcache *cc);
/* true when `digest` verified within the last ttl seconds and `now` is inside its window */
bool ck_certcache_lookup(ck_certcache *cc, const unsigned char *digest, time_t now);
/* records a successful verification at `now` (the oldest entry makes room) */
void ck_certcache_insert(ck_certcache *cc, const unsigned char *digest, time_t not_before,
                         time_t not_after, time_t now);
size_t ck_certcache_size(ck_certcache *cc);

/* Installs a cache on a server context that verifies client certificates: the context's
 * certificate verification goes through it (SSL_CTX_set_cert_verify_callback) and the cache is
 * freed with the context.  -1 if OpenSSL could not attach it (the context verifies as before). */
int ck_certcache_install(SSL_CTX *ctx);
/* the cache installed on ctx, NULL if none (tests, metrics) */
ck_certcache *ck_certcache_of(SSL_CTX *ctx);
/* process-wide counters: verdicts taken from a cache, full verifications */
void ck_certcache_stats(unsigned long *hits, unsigned long *misses);

#endif

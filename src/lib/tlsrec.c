/* tlsrec.c - TLS 1.3 application-data records without OpenSSL's record layer: see tlsrec.h. */
#include "lib/tlsrec.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/tls1.h>

#include "lib/util.h"

#define SECRET_LABEL "SERVER_TRAFFIC_SECRET_0 "

typedef struct kept_secret {
    size_t len;
    unsigned char b[48];
} kept_secret;

static int secret_idx = -1;
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;

static void secret_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr) {
        OPENSSL_cleanse(ptr, sizeof(kept_secret));
        free(ptr);
    }
}

static void secret_idx_init(void)
{
    secret_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, secret_free);
}

/* "SERVER_TRAFFIC_SECRET_0 <client random> <secret>", hex: keep the secret with the SSL */
static void keylog_cb(const SSL *ssl, const char *line)
{
    if (strncmp(line, SECRET_LABEL, strlen(SECRET_LABEL)) != 0 || secret_idx < 0)
        return;
    const char *hex = strchr(line + strlen(SECRET_LABEL), ' ');
    if (!hex)
        return;
    hex++;
    size_t n = strlen(hex);
    kept_secret k = {0};
    if (n % 2 || n / 2 > sizeof k.b || n == 0)
        return;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]),
            lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return;
        k.b[i] = (unsigned char)(hi << 4 | lo);
    }
    k.len = n / 2;
    kept_secret *old = SSL_get_ex_data(ssl, secret_idx);
    kept_secret *p = old ? old : xmalloc(sizeof *p);
    *p = k;
    OPENSSL_cleanse(&k, sizeof k);
    if (!old && !SSL_set_ex_data((SSL *)ssl, secret_idx, p))
        free(p);
}

void ck_tlsrec_keylog_install(SSL_CTX *ctx)
{
    pthread_once(&secret_once, secret_idx_init);
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
}

/* HKDF-Expand-Label(secret, label, "", out_len) (RFC 8446 7.1); out_len <= the hash's size, so
 * one HMAC block */
static int expand_label(const EVP_MD *md, const unsigned char *secret, size_t secret_len,
                        const char *label, unsigned char *out, size_t out_len)
{
    unsigned char info[2 + 1 + 6 + 32 + 1 + 1];
    size_t ll = strlen(label), n = 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (ll > 32 || out_len > (size_t)EVP_MD_get_size(md))
        return -1;
    info[n++] = (unsigned char)(out_len >> 8);
    info[n++] = (unsigned char)out_len;
    info[n++] = (unsigned char)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0;      /* empty context */
    info[n++] = 1;      /* HKDF-Expand's block counter */
    if (!HMAC(md, secret, (int)secret_len, info, n, mac, &mac_len) || mac_len < out_len)
        return -1;
    memcpy(out, mac, out_len);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

/* The cipher, hash and key size of a TLS 1.3 suite id tlsrec handles; false for any other. */
static bool suite_params(uint16_t suite, const EVP_CIPHER **ciph, const EVP_MD **md,
                         size_t *key_len)
{
    if (suite == (TLS1_3_CK_AES_128_GCM_SHA256 & 0xffff)) {
        *ciph = EVP_aes_128_gcm();
        *md = EVP_sha256();
        *key_len = 16;
        return true;
    }
    if (suite == (TLS1_3_CK_AES_256_GCM_SHA384 & 0xffff)) {
        *ciph = EVP_aes_256_gcm();
        *md = EVP_sha384();
        *key_len = 32;
        return true;
    }
    return false;
}

int ck_tlsrec_kept(SSL *ssl, ck_tlsrec_secret *out, ck_error **err)
{
    memset(out, 0, sizeof *out);
    if (SSL_version(ssl) != TLS1_3_VERSION)
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: not TLS 1.3");
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    uint16_t suite = c ? (uint16_t)(SSL_CIPHER_get_id(c) & 0xffff) : 0;
    const EVP_CIPHER *ciph;
    const EVP_MD *md;
    size_t key_len;
    if (!c || (SSL_CIPHER_get_id(c) >> 16) != 0x0300 || !suite_params(suite, &ciph, &md, &key_len))
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: cipher suite %s not handled",
                            c ? SSL_CIPHER_get_name(c) : "(none)");
    kept_secret *k = secret_idx >= 0 ? SSL_get_ex_data(ssl, secret_idx) : NULL;
    if (!k || k->len != (size_t)EVP_MD_get_size(md))
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: no traffic secret kept");
    out->suite = suite;
    out->len = k->len;
    memcpy(out->b, k->b, k->len);
    return 0;
}

int ck_tlsrec_secret_next(ck_tlsrec_secret *s, ck_error **err)
{
    const EVP_CIPHER *ciph;
    const EVP_MD *md;
    size_t key_len;
    if (!suite_params(s->suite, &ciph, &md, &key_len) || s->len != (size_t)EVP_MD_get_size(md) ||
        expand_label(md, s->b, s->len, "traffic upd", s->b, s->len) < 0)
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: key derivation failed");
    return 0;
}

/* key and iv from r->secret, sequence 0 */
static int keys_from_secret(ck_tlsrec *r, ck_error **err)
{
    unsigned char key[32];
    if (expand_label(r->md, r->secret, r->secret_len, "key", key, r->key_len) < 0 ||
        expand_label(r->md, r->secret, r->secret_len, "iv", r->iv, sizeof r->iv) < 0 ||
        EVP_CipherInit_ex(r->ctx, NULL, NULL, key, NULL, r->seal ? 1 : 0) != 1) {
        OPENSSL_cleanse(key, sizeof key);
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: key derivation failed");
    }
    OPENSSL_cleanse(key, sizeof key);
    r->seq = 0;
    return 0;
}

int ck_tlsrec_init_secret(ck_tlsrec *r, const ck_tlsrec_secret *s, bool seal, ck_error **err)
{
    memset(r, 0, sizeof *r);
    r->seal = seal;
    const EVP_CIPHER *ciph;
    if (!suite_params(s->suite, &ciph, &r->md, &r->key_len))
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: cipher suite %04x not handled",
                            s->suite);
    if (s->len != (size_t)EVP_MD_get_size(r->md))
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: secret of %zu bytes for suite %04x",
                            s->len, s->suite);
    memcpy(r->secret, s->b, s->len);
    r->secret_len = s->len;
    r->ctx = EVP_CIPHER_CTX_new();
    if (!r->ctx || EVP_CipherInit_ex(r->ctx, ciph, NULL, NULL, NULL, seal ? 1 : 0) != 1) {
        ck_tlsrec_free(r);
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: cipher setup failed");
    }
    if (keys_from_secret(r, err) < 0) {
        ck_tlsrec_free(r);
        return -1;
    }
    return 0;
}

int ck_tlsrec_init(ck_tlsrec *r, SSL *ssl, bool seal, ck_error **err)
{
    ck_tlsrec_secret s;
    memset(r, 0, sizeof *r);
    int rc = ck_tlsrec_kept(ssl, &s, err) < 0 || ck_tlsrec_secret_next(&s, err) < 0 ||
                     ck_tlsrec_init_secret(r, &s, seal, err) < 0
                 ? -1
                 : 0;
    OPENSSL_cleanse(&s, sizeof s);
    return rc;
}

void ck_tlsrec_seal_value(const ck_tlsrec_secret *s, char *out)
{
    int n = snprintf(out, CK_TLSREC_SEAL_VALUE_MAX, CK_TLSREC_SEAL_ACCEPT "; suite=%04x; secret=",
                     s->suite);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < s->len && (size_t)n + 3 <= CK_TLSREC_SEAL_VALUE_MAX; i++) {
        out[n++] = hex[s->b[i] >> 4];
        out[n++] = hex[s->b[i] & 15];
    }
    out[n] = '\0';
}

int ck_tlsrec_seal_parse(const char *value, ck_tlsrec_secret *out, ck_error **err)
{
    static const char pre[] = CK_TLSREC_SEAL_ACCEPT "; suite=";
    memset(out, 0, sizeof *out);
    const char *p = value;
    if (strncmp(p, pre, sizeof pre - 1) != 0)
        return ck_error_set(err, CK_E_BAD_REQUEST, "seal hand-off: not a v1 value");
    p += sizeof pre - 1;
    unsigned suite = 0;
    for (int i = 0; i < 4; i++) {
        int h = OPENSSL_hexchar2int((unsigned char)p[i]);
        if (h < 0)
            return ck_error_set(err, CK_E_BAD_REQUEST, "seal hand-off: bad suite");
        suite = suite << 4 | (unsigned)h;
    }
    p += 4;
    const EVP_CIPHER *ciph;
    const EVP_MD *md;
    size_t key_len;
    if (!suite_params((uint16_t)suite, &ciph, &md, &key_len))
        return ck_error_set(err, CK_E_BAD_REQUEST, "seal hand-off: suite %04x not handled", suite);
    if (strncmp(p, "; secret=", 9) != 0)
        return ck_error_set(err, CK_E_BAD_REQUEST, "seal hand-off: no secret");
    p += 9;
    size_t want = (size_t)EVP_MD_get_size(md);
    if (strlen(p) != 2 * want)
        return ck_error_set(err, CK_E_BAD_REQUEST, "seal hand-off: secret of the wrong length");
    for (size_t i = 0; i < want; i++) {
        int hi = OPENSSL_hexchar2int((unsigned char)p[2 * i]),
            lo = OPENSSL_hexchar2int((unsigned char)p[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(out, sizeof *out);
            return ck_error_set(err, CK_E_BAD_REQUEST, "seal hand-off: secret is not hex");
        }
        out->b[i] = (unsigned char)(hi << 4 | lo);
    }
    out->suite = (uint16_t)suite;
    out->len = want;
    return 0;
}

void ck_tlsrec_free(ck_tlsrec *r)
{
    EVP_CIPHER_CTX_free(r->ctx);
    OPENSSL_cleanse(r, sizeof *r);
}

int ck_tlsrec_update(ck_tlsrec *r, ck_error **err)
{
    if (expand_label(r->md, r->secret, r->secret_len, "traffic upd", r->secret, r->secret_len) < 0)
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: key derivation failed");
    return keys_from_secret(r, err);
}

static void nonce_for(const ck_tlsrec *r, unsigned char nonce[12])
{
    memcpy(nonce, r->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (unsigned char)(r->seq >> (8 * i));
}

int ck_tlsrec_seal(ck_tlsrec *r, uint8_t type, const unsigned char *in, size_t len,
                   unsigned char *out, ck_error **err)
{
    size_t body = len + 1 + CK_TLSREC_TAG;
    unsigned char nonce[12], fin[16];
    int ol;
    if (len > CK_TLSREC_MAX_PLAIN)
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: record too large");
    out[0] = CK_TLSREC_APPDATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (unsigned char)(body >> 8);
    out[4] = (unsigned char)body;
    nonce_for(r, nonce);
    if (EVP_EncryptInit_ex(r->ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(r->ctx, NULL, &ol, out, CK_TLSREC_HEADER) != 1 ||
        (len && EVP_EncryptUpdate(r->ctx, out + CK_TLSREC_HEADER, &ol, in, (int)len) != 1) ||
        EVP_EncryptUpdate(r->ctx, out + CK_TLSREC_HEADER + len, &ol, &type, 1) != 1 ||
        EVP_EncryptFinal_ex(r->ctx, fin, &ol) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_AEAD_GET_TAG, CK_TLSREC_TAG,
                            out + CK_TLSREC_HEADER + len + 1) != 1)
        return ck_error_set(err, CK_E_INTERNAL, "tlsrec: seal failed");
    r->seq++;
    return 0;
}

long ck_tlsrec_record_len(const unsigned char *rec, size_t avail, ck_error **err)
{
    if (avail < CK_TLSREC_HEADER)
        return 0;
    size_t body = (size_t)rec[3] << 8 | rec[4];
    if (rec[0] != CK_TLSREC_APPDATA || rec[1] != 3 || rec[2] != 3 ||
        body < 1 + CK_TLSREC_TAG || body > CK_TLSREC_MAX_BODY)
        return ck_error_set(err, CK_E_CORRUPT, "tlsrec: bad record header %02x %02x%02x len %zu",
                            rec[0], rec[1], rec[2], body);
    return (long)(CK_TLSREC_HEADER + body);
}

int ck_tlsrec_open(ck_tlsrec *r, unsigned char *rec, size_t rec_len, unsigned char **plain,
                   size_t *plain_len, uint8_t *type, ck_error **err)
{
    unsigned char nonce[12], fin[16];
    int ol;
    if (rec_len < CK_TLSREC_HEADER + 1 + CK_TLSREC_TAG)
        return ck_error_set(err, CK_E_CORRUPT, "tlsrec: short record");
    size_t clen = rec_len - CK_TLSREC_HEADER - CK_TLSREC_TAG;
    unsigned char *body = rec + CK_TLSREC_HEADER;
    nonce_for(r, nonce);
    if (EVP_DecryptInit_ex(r->ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(r->ctx, NULL, &ol, rec, CK_TLSREC_HEADER) != 1 ||
        EVP_DecryptUpdate(r->ctx, body, &ol, body, (int)clen) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_AEAD_SET_TAG, CK_TLSREC_TAG, body + clen) != 1 ||
        EVP_DecryptFinal_ex(r->ctx, fin, &ol) != 1)
        return ck_error_set(err, CK_E_CORRUPT, "tlsrec: record %llu does not authenticate",
                            (unsigned long long)r->seq);
    r->seq++;
    /* the inner type is the last byte that is not padding */
    while (clen > 0 && body[clen - 1] == 0)
        clen--;
    if (clen == 0)
        return ck_error_set(err, CK_E_CORRUPT, "tlsrec: record without a content type");
    *type = body[clen - 1];
    *plain = body;
    *plain_len = clen - 1;
    return 0;
}

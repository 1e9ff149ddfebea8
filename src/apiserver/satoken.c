/* satoken.c - service account tokens: JWTs the API server signs for TokenRequest
 * (serviceaccounts/NAME/token, `kubectl create token`) and accepts as bearer tokens.
 *
 * Signed with --service-account-signing-key-file (ES256 for an EC P-256 key, RS256 for RSA),
 * verified with --service-account-key-file.  Claims as upstream: iss, sub
 * (system:serviceaccount:NS:NAME), aud, exp/iat/nbf, jti, and kubernetes.io {namespace,
 * serviceaccount {name, uid}, pod {name, uid} when bound}.  A token is accepted if the signature,
 * issuer, audience (the issuer) and lifetime check out and the service account still exists with
 * the same uid, and, for a token bound to a pod, while that pod exists with the same uid and its
 * deletion grace period has not run out (the caller checks both against the store). */
#include "apiserver/apiserver.h"
#include "lib/base64.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ck_sa_keys {
    EVP_PKEY *priv;     /* may be NULL: verify only */
    EVP_PKEY *pub;
    bool ec;
    char *issuer;
    char kid[64];
};

static EVP_PKEY *read_key(const char *path, bool private_key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    EVP_PKEY *k = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
                              : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

ck_sa_keys *ck_sa_keys_load(const char *priv_file, const char *pub_file, const char *issuer,
                            ck_error **err)
{
    ck_sa_keys *k = xcalloc(1, sizeof *k);
    if (priv_file && !(k->priv = read_key(priv_file, true))) {
        ck_sa_keys_free(k);
        ck_error_set(err, CK_E_IO, "read service account signing key %s", priv_file);
        return NULL;
    }
    if (pub_file)
        k->pub = read_key(pub_file, false);
    if (!k->pub && k->priv) {
        EVP_PKEY_up_ref(k->priv);
        k->pub = k->priv;
    }
    if (!k->pub) {
        ck_sa_keys_free(k);
        ck_error_set(err, CK_E_IO, "read service account public key %s", pub_file ? pub_file : "");
        return NULL;
    }
    int id = EVP_PKEY_get_base_id(k->pub);
    if (id != EVP_PKEY_EC && id != EVP_PKEY_RSA) {
        ck_sa_keys_free(k);
        ck_error_set(err, CK_E_INVALID, "service account keys must be EC P-256 or RSA");
        return NULL;
    }
    k->ec = id == EVP_PKEY_EC;
    k->issuer = xstrdup(issuer);
    /* kid: base64url(sha256(DER of the public key)), as upstream */
    unsigned char *der = NULL;
    int dlen = i2d_PUBKEY(k->pub, &der);
    if (dlen > 0) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256(der, (size_t)dlen, md);
        ck_buf b;
        ck_buf_init(&b, 128);
        ck_b64url_encode(&b, md, sizeof md);
        snprintf(k->kid, sizeof k->kid, "%s", b.data);
        ck_buf_free(&b);
    }
    OPENSSL_free(der);
    return k;
}

void ck_sa_keys_free(ck_sa_keys *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->priv);
    EVP_PKEY_free(k->pub);
    free(k->issuer);
    free(k);
}

bool ck_sa_keys_can_sign(const ck_sa_keys *k)
{
    return k && k->priv;
}

/* ECDSA signatures are DER inside OpenSSL and raw r||s (32+32 bytes) in a JWS. */
static int der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig)
        return -1;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

static unsigned char *raw_to_der(const unsigned char *raw, size_t len, size_t *dlen)
{
    if (len != 64)
        return NULL;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return NULL;
    }
    unsigned char *der = NULL;
    int n = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (n <= 0)
        return NULL;
    *dlen = (size_t)n;
    return der;
}

char *ck_sa_token_issue(ck_sa_keys *k, const char *ns, const char *sa, const char *sa_uid,
                        const json_t *audiences, int64_t seconds, const char *pod,
                        const char *pod_uid, int64_t *expires, ck_error **err)
{
    if (!ck_sa_keys_can_sign(k)) {
        ck_error_set(err, CK_E_UNAVAILABLE, "no service account signing key is configured");
        return NULL;
    }
    int64_t now = ck_wall_ns() / 1000000000;
    char jti[37];
    ck_uuid4(jti);
    char *sub = xasprintf("system:serviceaccount:%s:%s", ns, sa);
    json_t *aud = json_array_size(audiences) ? json_deep_copy(audiences)
                                             : json_pack("[s]", k->issuer);
    json_t *kio = json_pack("{s:s,s:{s:s,s:s}}", "namespace", ns, "serviceaccount", "name", sa,
                            "uid", sa_uid ? sa_uid : "");
    if (pod)
        json_object_set_new(kio, "pod", json_pack("{s:s,s:s}", "name", pod, "uid",
                                                  pod_uid ? pod_uid : ""));
    json_t *claims = json_pack("{s:o,s:I,s:I,s:s,s:s,s:o,s:I,s:s}", "aud", aud, "exp",
                               (json_int_t)(now + seconds), "iat", (json_int_t)now, "iss",
                               k->issuer, "jti", jti, "kubernetes.io", kio, "nbf",
                               (json_int_t)now, "sub", sub);
    free(sub);
    json_t *hdr = json_pack("{s:s,s:s}", "alg", k->ec ? "ES256" : "RS256", "kid", k->kid);
    char *h = json_dumps(hdr, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    json_decref(hdr);
    json_decref(claims);
    ck_buf b;
    ck_buf_init(&b, 1 << 20);
    ck_b64url_encode(&b, (unsigned char *)h, strlen(h));
    ck_buf_add(&b, ".", 1);
    ck_b64url_encode(&b, (unsigned char *)c, strlen(c));
    free(h);
    free(c);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t slen = 0;
    unsigned char *sig = NULL;
    int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->priv) == 1 &&
             EVP_DigestSign(md, NULL, &slen, (unsigned char *)b.data, b.len) == 1;
    if (ok) {
        sig = xmalloc(slen);
        ok = EVP_DigestSign(md, sig, &slen, (unsigned char *)b.data, b.len) == 1;
    }
    EVP_MD_CTX_free(md);
    unsigned char raw[64];
    if (ok && k->ec)
        ok = der_to_raw(sig, slen, raw) == 0;
    if (!ok) {
        free(sig);
        ck_buf_free(&b);
        ck_error_set(err, CK_E_INTERNAL, "signing the service account token failed");
        return NULL;
    }
    ck_buf_add(&b, ".", 1);
    if (k->ec)
        ck_b64url_encode(&b, raw, sizeof raw);
    else
        ck_b64url_encode(&b, sig, slen);
    free(sig);
    if (expires)
        *expires = now + seconds;
    return ck_buf_steal(&b);
}

bool ck_sa_token_looks_like_jwt(const char *tok)
{
    const char *d1 = strchr(tok, '.');
    return d1 && strchr(d1 + 1, '.') && !strchr(strchr(d1 + 1, '.') + 1, '.');
}

int ck_sa_token_verify(ck_sa_keys *k, const char *tok, ck_sa_claims *out, ck_error **err)
{
    memset(out, 0, sizeof *out);
    const char *d1 = strchr(tok, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!k || !d1 || !d2)
        return ck_error_set(err, CK_E_UNAUTHORIZED, "Unauthorized");
    size_t hlen, clen, slen;
    cleanup_free unsigned char *h = ck_b64url_decode(tok, (size_t)(d1 - tok), &hlen);
    cleanup_free unsigned char *c = ck_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &clen);
    cleanup_free unsigned char *s = ck_b64url_decode(d2 + 1, strlen(d2 + 1), &slen);
    json_t *hdr = h ? json_loadb((char *)h, hlen, 0, NULL) : NULL;
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    bool alg_ok = alg && !strcmp(alg, k->ec ? "ES256" : "RS256");
    json_decref(hdr);
    if (!c || !s || !alg_ok)
        return ck_error_set(err, CK_E_UNAUTHORIZED, "Unauthorized");
    size_t dlen = slen;
    unsigned char *der = k->ec ? raw_to_der(s, slen, &dlen) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && (!k->ec || der) &&
             EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pub) == 1 &&
             EVP_DigestVerify(md, k->ec ? der : s, dlen, (const unsigned char *)tok,
                              (size_t)(d2 - tok)) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    if (!ok)
        return ck_error_set(err, CK_E_UNAUTHORIZED, "Unauthorized");
    json_t *cl = json_loadb((char *)c, clen, 0, NULL);
    int64_t now = ck_wall_ns() / 1000000000;
    const char *iss = json_string_value(json_object_get(cl, "iss"));
    json_int_t exp = json_integer_value(json_object_get(cl, "exp"));
    json_int_t nbf = json_integer_value(json_object_get(cl, "nbf"));
    json_t *aud = json_object_get(cl, "aud");
    bool aud_ok = false;
    size_t i;
    json_t *a;
    if (json_is_string(aud))
        aud_ok = !strcmp(json_string_value(aud), k->issuer);
    json_array_foreach(aud, i, a)
        if (json_is_string(a) && !strcmp(json_string_value(a), k->issuer))
            aud_ok = true;
    json_t *kio = json_object_get(cl, "kubernetes.io");
    const char *ns = json_string_value(json_object_get(kio, "namespace"));
    json_t *sa = json_object_get(kio, "serviceaccount");
    const char *name = json_string_value(json_object_get(sa, "name"));
    const char *uid = json_string_value(json_object_get(sa, "uid"));
    if (!iss || strcmp(iss, k->issuer) || !aud_ok || exp <= now || nbf > now + 60 || !ns ||
        !name) {
        json_decref(cl);
        return ck_error_set(err, CK_E_UNAUTHORIZED, "Unauthorized");
    }
    out->ns = xstrdup(ns);
    out->name = xstrdup(name);
    out->uid = xstrdup(uid ? uid : "");
    json_t *pod = json_object_get(kio, "pod");
    const char *pname = json_string_value(json_object_get(pod, "name"));
    if (pname) {
        out->pod = xstrdup(pname);
        out->pod_uid = xstrdup(json_string_value(json_object_get(pod, "uid")) ?: "");
    }
    json_decref(cl);
    return 0;
}

void ck_sa_claims_free(ck_sa_claims *c)
{
    free(c->ns);
    free(c->name);
    free(c->uid);
    free(c->pod);
    free(c->pod_uid);
    memset(c, 0, sizeof *c);
}

/* pki.c - see pki.h.  Certificates are built with the OpenSSL 3 X509/EVP APIs; SANs are built as
 * GENERAL_NAMEs (not a config string) so a caller's SAN can never smuggle in extra entries. */
#include "lib/pki.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static int ossl_error(ck_error **err, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown OpenSSL error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return ck_error_set(err, CK_E_INTERNAL, "%s: %s", what, buf);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static X509 *load_cert(const char *path, ck_error **err)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        ERR_clear_error();
        ck_error_sys(err, CK_E_IO, "open %s", path);
        return NULL;
    }
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!x)
        ossl_error(err, path);
    return x;
}

static EVP_PKEY *load_key(const char *path, ck_error **err)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        ERR_clear_error();
        ck_error_sys(err, CK_E_IO, "open %s", path);
        return NULL;
    }
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k)
        ossl_error(err, path);
    return k;
}

/* Write what `emit` puts into a memory BIO to path, atomically. */
static int write_pem(const char *path, int mode, int (*emit)(BIO *, void *), void *obj,
                     ck_error **err)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return ossl_error(err, "BIO_new");
    if (emit(b, obj) != 1) {
        BIO_free(b);
        return ossl_error(err, path);
    }
    char *data;
    long len = BIO_get_mem_data(b, &data);
    int rc = ck_write_file_atomic(path, data, (size_t)len, mode);
    if (rc < 0)
        ck_error_sys(err, CK_E_IO, "write %s", path);
    OPENSSL_cleanse(data, (size_t)len);
    BIO_free(b);
    return rc;
}

static int emit_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int emit_pub(BIO *b, void *k)
{
    return PEM_write_bio_PUBKEY(b, k);
}

static int emit_cert(BIO *b, void *x)
{
    return PEM_write_bio_X509(b, x);
}

/* The key at key_path, generated (and written, 0600) if missing. */
static EVP_PKEY *ensure_key(const char *key_path, bool *created, ck_error **err)
{
    *created = false;
    if (file_exists(key_path))
        return load_key(key_path, err);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k) {
        ossl_error(err, "generate P-256 key");
        return NULL;
    }
    if (write_pem(key_path, 0600, emit_key, k, err) < 0) {
        EVP_PKEY_free(k);
        return NULL;
    }
    *created = true;
    return k;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, ck_error **err)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext)
        return ossl_error(err, OBJ_nid2sn(nid));
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : ossl_error(err, OBJ_nid2sn(nid));
}

static int add_sans(X509 *x, const char *const *sans, ck_error **err)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    for (size_t i = 0; sans && sans[i]; i++) {
        GENERAL_NAME *g;
        if (is_ip(sans[i])) {
            ASN1_OCTET_STRING *ip = a2i_IPADDRESS(sans[i]);
            if (!ip)
                goto fail;
            g = GENERAL_NAME_new();
            GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        } else {
            ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
            if (!dns || !ASN1_STRING_set(dns, sans[i], -1)) {
                ASN1_IA5STRING_free(dns);
                goto fail;
            }
            g = GENERAL_NAME_new();
            GENERAL_NAME_set0_value(g, GEN_DNS, dns);
        }
        sk_GENERAL_NAME_push(gens, g);
    }
    if (sk_GENERAL_NAME_num(gens) > 0 &&
        !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
        goto fail;
    GENERAL_NAMES_free(gens);
    return 0;
fail:
    GENERAL_NAMES_free(gens);
    return ossl_error(err, "subjectAltName");
}

/* Build and sign a certificate for `key`.  issuer == NULL: self-signed CA. */
static X509 *build_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                        const ck_pki_cert_opts *o, bool ca, ck_error **err)
{
    X509 *x = X509_new();
    if (!x) {
        ossl_error(err, "X509_new");
        return NULL;
    }
    unsigned char serial[16];
    ck_random_bytes(serial, sizeof serial);
    serial[0] = (serial[0] & 0x7f) | 0x40;   /* positive, full 16 bytes */
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    int days = o->days > 0 ? o->days : (ca ? CK_PKI_CA_DAYS : CK_PKI_LEAF_DAYS);
    X509_NAME *name = X509_get_subject_name(x);
    bool ok = X509_set_version(x, X509_VERSION_3) && bn &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
              /* an hour of slack for clocks that lag ours */
              X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
              X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
    BN_free(bn);
    for (size_t i = 0; ok && o->orgs && o->orgs[i]; i++)
        ok = X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                        (const unsigned char *)o->orgs[i], -1, -1, 0);
    ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                          (const unsigned char *)o->cn, -1, -1, 0);
    ok = ok && X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) &&
         X509_set_pubkey(x, key);
    if (!ok) {
        ossl_error(err, "build certificate");
        goto fail;
    }
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    if (add_ext(x, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE",
                err) < 0 ||
        add_ext(x, &ctx, NID_key_usage,
                ca ? "critical,digitalSignature,keyCertSign,cRLSign"
                   : "critical,digitalSignature,keyEncipherment", err) < 0 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash", err) < 0)
        goto fail;
    if (!ca && add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err) < 0)
        goto fail;
    if (o->server || o->client) {
        const char *eku = o->server && o->client ? "serverAuth,clientAuth"
                          : o->server            ? "serverAuth"
                                                 : "clientAuth";
        if (add_ext(x, &ctx, NID_ext_key_usage, eku, err) < 0)
            goto fail;
    }
    if (add_sans(x, o->sans, err) < 0)
        goto fail;
    if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) {
        ossl_error(err, "sign certificate");
        goto fail;
    }
    return x;
fail:
    X509_free(x);
    return NULL;
}

static char *name_entry(X509_NAME *name, int nid, int *lastpos)
{
    int i = X509_NAME_get_index_by_NID(name, nid, *lastpos);
    *lastpos = i;
    if (i < 0)
        return NULL;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    return xstrndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
}

/* Does an existing certificate say what opts asks for?  NULL if so, else the reason. */
static const char *cert_stale(X509 *x, const ck_pki_cert_opts *o)
{
    time_t horizon = time(NULL) + (time_t)CK_PKI_RENEW_DAYS * 86400;
    if (X509_cmp_time(X509_get0_notAfter(x), &horizon) < 0)
        return "expires within 30 days";
    X509_NAME *name = X509_get_subject_name(x);
    int pos = -1;
    cleanup_free char *cn = name_entry(name, NID_commonName, &pos);
    if (!cn || strcmp(cn, o->cn))
        return "subject CN changed";
    size_t want = 0, have = 0;
    for (; o->orgs && o->orgs[want]; want++)
        ;
    pos = -1;
    for (char *org; (org = name_entry(name, NID_organizationName, &pos)); free(org)) {
        bool found = false;
        for (size_t i = 0; i < want && !found; i++)
            found = !strcmp(org, o->orgs[i]);
        if (!found) {
            free(org);
            return "subject O changed";
        }
        have++;
    }
    if (have != want)
        return "subject O changed";
    uint32_t xku = X509_get_extended_key_usage(x);
    if ((o->server && !(xku & XKU_SSL_SERVER)) || (o->client && !(xku & XKU_SSL_CLIENT)))
        return "key usage changed";
    for (size_t i = 0; o->sans && o->sans[i]; i++) {
        int r = is_ip(o->sans[i]) ? X509_check_ip_asc(x, o->sans[i], 0)
                                  : X509_check_host(x, o->sans[i], 0,
                                                    X509_CHECK_FLAG_NO_WILDCARDS, NULL);
        if (r != 1)
            return "a subjectAltName is missing";
    }
    return NULL;
}

int ck_pki_ensure_ca(const char *cert_path, const char *key_path, const char *cn, ck_error **err)
{
    if (file_exists(cert_path)) {
        if (!file_exists(key_path))
            return ck_error_set(err, CK_E_INVALID, "%s exists but its key %s is missing",
                                cert_path, key_path);
        X509 *x = load_cert(cert_path, err);
        EVP_PKEY *k = x ? load_key(key_path, err) : NULL;
        int rc = 0;
        if (x && k && X509_check_private_key(x, k) != 1) {
            ERR_clear_error();
            rc = ck_error_set(err, CK_E_INVALID, "%s does not match key %s", cert_path, key_path);
        }
        if (!x || !k)
            rc = -1;
        X509_free(x);
        EVP_PKEY_free(k);
        return rc;
    }
    bool created;
    EVP_PKEY *k = ensure_key(key_path, &created, err);
    if (!k)
        return -1;
    ck_pki_cert_opts o = {.cn = cn, .days = CK_PKI_CA_DAYS};
    X509 *x = build_cert(k, NULL, NULL, &o, true, err);
    int rc = x ? write_pem(cert_path, 0644, emit_cert, x, err) : -1;
    X509_free(x);
    EVP_PKEY_free(k);
    return rc < 0 ? -1 : 1;
}

int ck_pki_ensure_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                       const char *key_path, const ck_pki_cert_opts *opts, ck_error **err)
{
    int rc = -1;
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *cakey = NULL, *key = NULL;
    if (!(ca = load_cert(ca_cert, err)))
        goto out;
    bool had_cert = file_exists(cert_path);
    if (had_cert && !file_exists(key_path)) {
        ck_error_set(err, CK_E_INVALID, "%s exists but its key %s is missing", cert_path,
                     key_path);
        goto out;
    }
    bool created;
    if (!(key = ensure_key(key_path, &created, err)))
        goto out;
    if (had_cert) {
        if (!(x = load_cert(cert_path, err)))
            goto out;
        if (X509_check_private_key(x, key) != 1) {
            ERR_clear_error();
            ck_error_set(err, CK_E_INVALID, "%s does not match key %s", cert_path, key_path);
            goto out;
        }
        if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)) != 0 ||
            X509_verify(x, X509_get0_pubkey(ca)) != 1) {
            ERR_clear_error();
            ck_error_set(err, CK_E_INVALID,
                         "%s is not signed by %s; remove it (and its key) to have it re-issued",
                         cert_path, ca_cert);
            goto out;
        }
        if (!cert_stale(x, opts)) {
            rc = 0;
            goto out;
        }
        X509_free(x);
        x = NULL;
    }
    if (!(cakey = load_key(ca_key, err)) || !(x = build_cert(key, ca, cakey, opts, false, err)))
        goto out;
    if (write_pem(cert_path, 0644, emit_cert, x, err) < 0)
        goto out;
    rc = 1;
out:
    X509_free(ca);
    X509_free(x);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    if (rc < 0)
        ck_error_wrap(err, "certificate %s", cert_path);
    return rc;
}

char **ck_pki_default_sans(void)
{
    static const char *const fixed[] = {
        "127.0.0.1", "::1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    };
    char **v = xcalloc(ARRAY_SIZE(fixed) + 2, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        v[n++] = xstrdup(fixed[i]);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0 && host[0] && strcmp(host, "localhost"))
        v[n++] = xstrdup(host);
    v[n] = NULL;
    return v;
}

void ck_pki_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int ck_pki_ensure_serving_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                               const char *key_path, const char *const *extra_sans, ck_error **err)
{
    char **def = ck_pki_default_sans();
    size_t n = 0, m = 0;
    for (; def[n]; n++)
        ;
    for (; extra_sans && extra_sans[m]; m++)
        ;
    const char **sans = xcalloc(n + m + 1, sizeof *sans);
    for (size_t i = 0; i < n; i++)
        sans[i] = def[i];
    for (size_t i = 0; i < m; i++)
        sans[n + i] = extra_sans[i];
    ck_pki_cert_opts o = {.cn = "kube-apiserver", .sans = sans, .server = true};
    int rc = ck_pki_ensure_cert(ca_cert, ca_key, cert_path, key_path, &o, err);
    free(sans);
    ck_pki_strv_free(def);
    return rc;
}

int ck_pki_ensure_client_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                              const char *key_path, const char *user, const char *const *groups,
                              ck_error **err)
{
    ck_pki_cert_opts o = {.cn = user, .orgs = groups, .client = true};
    return ck_pki_ensure_cert(ca_cert, ca_key, cert_path, key_path, &o, err);
}

int ck_pki_ensure_keypair(const char *key_path, const char *pub_path, ck_error **err)
{
    bool created;
    EVP_PKEY *k = ensure_key(key_path, &created, err);
    if (!k)
        return ck_error_wrap(err, "key %s", key_path);
    int rc = created ? 1 : 0;
    if (!file_exists(pub_path)) {
        rc = write_pem(pub_path, 0644, emit_pub, k, err) < 0 ? -1 : 1;
    }
    EVP_PKEY_free(k);
    return rc;
}

/* The token of the first line in a token file whose user column is `user`. */
static char *find_token(const char *data, const char *user)
{
    size_t ulen = strlen(user);
    for (const char *line = data; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        const char *c1 = memchr(line, ',', len);
        if (c1) {
            const char *u = c1 + 1;
            size_t rest = len - (size_t)(u - line);
            const char *c2 = memchr(u, ',', rest);
            size_t un = c2 ? (size_t)(c2 - u) : rest;
            if (un == ulen && !memcmp(u, user, ulen))
                return xstrndup(line, (size_t)(c1 - line));
        }
        line = eol ? eol + 1 : NULL;
    }
    return NULL;
}

int ck_pki_ensure_token_file(const char *path, const char *user, const char *uid,
                             const char *groups, char **token_out, ck_error **err)
{
    int rc = 0;
    cleanup_free char *data = NULL;
    if (!file_exists(path)) {
        unsigned char raw[16];
        char tok[33];
        ck_random_bytes(raw, sizeof raw);
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(tok + 2 * i, 3, "%02x", raw[i]);
        data = xasprintf("%s,%s,%s,\"%s\"\n", tok, user, uid, groups ? groups : "");
        if (ck_write_file_atomic(path, data, strlen(data), 0600) < 0)
            return ck_error_sys(err, CK_E_IO, "write %s", path);
        rc = 1;
    } else if (token_out && ck_read_file(path, 1 << 20, &data, NULL) < 0) {
        return ck_error_sys(err, CK_E_IO, "read %s", path);
    }
    if (token_out)
        *token_out = find_token(data, user);
    return rc;
}

int ck_pki_ensure_cluster(const char *dir, const char *const *extra_sans, ck_error **err)
{
    if (ck_mkdir_p(dir, 0700) < 0)
        return ck_error_sys(err, CK_E_IO, "create %s", dir);
    cleanup_free char *ca_crt = xasprintf("%s/ca.crt", dir);
    cleanup_free char *ca_key = xasprintf("%s/ca.key", dir);
    cleanup_free char *api_crt = xasprintf("%s/apiserver.crt", dir);
    cleanup_free char *api_key = xasprintf("%s/apiserver.key", dir);
    cleanup_free char *adm_crt = xasprintf("%s/admin.crt", dir);
    cleanup_free char *adm_key = xasprintf("%s/admin.key", dir);
    cleanup_free char *sa_key = xasprintf("%s/sa.key", dir);
    cleanup_free char *sa_pub = xasprintf("%s/sa.pub", dir);
    cleanup_free char *tokens = xasprintf("%s/tokens.csv", dir);
    static const char *const masters[] = {"system:masters", NULL};
    int r, any = 0;
    if ((r = ck_pki_ensure_ca(ca_crt, ca_key, "ckube-ca", err)) < 0)
        return -1;
    any |= r;
    if ((r = ck_pki_ensure_serving_cert(ca_crt, ca_key, api_crt, api_key, extra_sans, err)) < 0)
        return -1;
    any |= r;
    if ((r = ck_pki_ensure_client_cert(ca_crt, ca_key, adm_crt, adm_key, "kubernetes-admin",
                                       masters, err)) < 0)
        return -1;
    any |= r;
    if ((r = ck_pki_ensure_keypair(sa_key, sa_pub, err)) < 0)
        return -1;
    any |= r;
    if ((r = ck_pki_ensure_token_file(tokens, "ckube-admin", "ckube-admin", "system:masters",
                                      NULL, err)) < 0)
        return -1;
    return any | r;
}

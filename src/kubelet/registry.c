/* registry.c - image pulls over the registry v2 API (OCI distribution) into the store.
 *
 * GET /v2/<repo>/manifests/<tag|digest> (accepting OCI and Docker v2 manifests and indexes; an
 * index picks linux/amd64), then every blob (config, layers) to a temp file, each checked
 * against its digest by the store.  HTTPS, except plain HTTP for registries on loopback
 * (127.0.0.0/8, localhost, [::1]) as Docker does, and for hosts listed in the environment
 * variable CKUBE_INSECURE_REGISTRIES (comma-separated host[:port]).  A 401 is answered once:
 * a Basic challenge with the credentials the pod's imagePullSecrets hold for the registry (a
 * docker config "auths" object, matched by host as upstream's keyring does), a Bearer challenge
 * with a token from the realm (fetched with those credentials, or anonymously).  Manifests are
 * bounded to 4 MiB.  Only loopback registries and those named by --allowed-registries are
 * contacted at all.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/base64.h"
#include "lib/util.h"

#define MANIFEST_MAX (4 * 1024 * 1024)
#define ACCEPT "Accept: application/vnd.oci.image.index.v1+json, " \
               "application/vnd.oci.image.manifest.v1+json, " \
               "application/vnd.docker.distribution.manifest.list.v2+json, " \
               "application/vnd.docker.distribution.manifest.v2+json"

typedef struct pull {
    char *host, *repo, *tag;   /* tag may be "sha256:..." */
    char *base;                /* "http://127.0.0.1:5000" */
    char *authz;               /* the Authorization header line in use, or NULL */
    char *user, *pass;         /* from imagePullSecrets, or NULL */
} pull;

static void pull_free(pull *p)
{
    free(p->host);
    free(p->repo);
    free(p->tag);
    free(p->base);
    free(p->authz);
    free(p->user);
    free(p->pass);
}

static void set_authz(pull *p, const char *scheme, const char *cred)
{
    free(p->authz);
    p->authz = xasprintf("Authorization: %s %s", scheme, cred);
}

static void set_basic(pull *p)
{
    cleanup_free char *up = xasprintf("%s:%s", p->user, p->pass);
    cleanup_free char *enc = ck_b64_encode(up, strlen(up));
    set_authz(p, "Basic", enc);
}

/* Does an "auths" key name this registry host?  Keys may carry a scheme and a path
 * ("https://index.docker.io/v1/") and a leading "*." label wildcard. */
static bool auth_key_matches(const char *key, const char *host)
{
    if (!strncmp(key, "https://", 8))
        key += 8;
    else if (!strncmp(key, "http://", 7))
        key += 7;
    size_t kl = strcspn(key, "/");
    bool hub = !strcmp(host, "docker.io");
    static const char *const hub_names[] = {"docker.io", "index.docker.io", "registry-1.docker.io"};
    for (size_t i = 0; i < (hub ? ARRAY_SIZE(hub_names) : 1); i++) {
        const char *h = hub ? hub_names[i] : host;
        if (strlen(h) == kl && !strncmp(key, h, kl))
            return true;
        /* "*.example.com" matches exactly one more label */
        if (kl > 2 && !strncmp(key, "*.", 2)) {
            const char *dot = strchr(h, '.');
            if (dot && strlen(dot + 1) == kl - 2 && !strncmp(dot + 1, key + 2, kl - 2))
                return true;
        }
    }
    return false;
}

int ck_registry_creds(const json_t *auths, const char *host, char **user, char **pass)
{
    const char *key;
    json_t *v;
    *user = *pass = NULL;
    json_object_foreach((json_t *)json_object_get(auths, "auths"), key, v) {
        if (!auth_key_matches(key, host))
            continue;
        const char *u = json_string_value(json_object_get(v, "username"));
        const char *pw = json_string_value(json_object_get(v, "password"));
        const char *a = json_string_value(json_object_get(v, "auth"));
        if (u && pw) {
            *user = xstrdup(u);
            *pass = xstrdup(pw);
            return 0;
        }
        if (a) {
            /* "auth" is base64("user:password") */
            size_t dl = 0;
            cleanup_free unsigned char *d = ck_b64_decode(a, &dl);
            if (!d)
                continue;
            char *colon = strchr((char *)d, ':');
            if (!colon)
                continue;
            *user = xstrndup((char *)d, (size_t)(colon - (char *)d));
            *pass = xstrdup(colon + 1);
            return 0;
        }
    }
    return -1;
}

static char *allowed_registries;   /* NULL: loopback only */

void ck_registry_set_allowed(const char *list)
{
    free(allowed_registries);
    allowed_registries = list && *list ? xstrdup(list) : NULL;
}

static bool loopback_host(const char *host)
{
    return !strncmp(host, "127.", 4) || !strncmp(host, "localhost", 9) || !strncmp(host, "[::1]", 5);
}

/* Pulls go to loopback registries unless --allowed-registries names the host (or is "*"): a
 * node on a closed network never tries the Internet by accident. */
static bool allowed_host(const char *host)
{
    if (loopback_host(host))
        return true;
    if (!allowed_registries)
        return false;
    cleanup_free char *copy = xstrdup(allowed_registries);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (!strcmp(t, "*") || !strcmp(t, host))
            return true;
    return false;
}

static bool insecure_host(const char *host)
{
    if (!strncmp(host, "127.", 4) || !strncmp(host, "localhost", 9) || !strncmp(host, "[::1]", 5))
        return true;
    const char *env = getenv("CKUBE_INSECURE_REGISTRIES");
    if (!env)
        return false;
    cleanup_free char *copy = xstrdup(env);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (!strcmp(t, host))
            return true;
    return false;
}

static int parse_ref(const char *ref, pull *p, ck_error **err)
{
    cleanup_free char *norm = ck_image_normalize(ref);
    char *slash = strchr(norm, '/');
    if (!slash)
        return ck_error_set(err, CK_E_INVALID, "bad image reference %s", ref);
    p->host = xstrndup(norm, (size_t)(slash - norm));
    const char *rest = slash + 1;
    const char *at = strchr(rest, '@');
    if (at) {
        p->repo = xstrndup(rest, (size_t)(at - rest));
        p->tag = xstrdup(at + 1);
    } else {
        const char *colon = strrchr(rest, ':');
        p->repo = xstrndup(rest, (size_t)(colon - rest));
        p->tag = xstrdup(colon + 1);
    }
    const char *h = !strcmp(p->host, "docker.io") ? "registry-1.docker.io" : p->host;
    p->base = xasprintf("%s://%s", insecure_host(p->host) ? "http" : "https", h);
    return 0;
}

typedef struct sink {
    ck_buf *buf;
    FILE *file;
    char *challenge;
} sink;

static size_t on_body(char *d, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t len = size * n;
    if (s->file)
        return fwrite(d, 1, len, s->file);
    return ck_buf_add(s->buf, d, len) == 0 ? len : 0;
}

static size_t on_header(char *d, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t len = size * n;
    if (len > 17 && !strncasecmp(d, "WWW-Authenticate:", 17)) {
        free(s->challenge);
        s->challenge = xstrndup(d + 17, len - 17);
    }
    return len;
}

/* value of key="..." in a challenge; caller frees */
static char *challenge_param(const char *ch, const char *key)
{
    cleanup_free char *pat = xasprintf("%s=\"", key);
    const char *p = strstr(ch, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    return e ? xstrndup(p, (size_t)(e - p)) : NULL;
}

static long http_get(pull *p, const char *url, const char *accept, ck_buf *buf, FILE *file,
                     char **challenge, char **ctype, ck_error **err)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    if (accept)
        hl = curl_slist_append(hl, accept);
    if (p->authz)
        hl = curl_slist_append(hl, p->authz);
    sink s = {.buf = buf, .file = file};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ckube-kubelet");
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (ctype) {
        char *ct = NULL;
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        *ctype = ct ? xstrdup(ct) : NULL;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (challenge)
        *challenge = s.challenge;
    else
        free(s.challenge);
    if (rc != CURLE_OK) {
        ck_error_set(err, CK_E_UNAVAILABLE, "GET %s: %s", url, curl_easy_strerror(rc));
        return -1;
    }
    return code;
}

/* Answer a challenge: Basic with the pod's credentials, Bearer with a token from the realm
 * (asked for with those credentials, else anonymously). */
static int answer_challenge(pull *p, const char *challenge, ck_error **err)
{
    if (challenge && strcasestr(challenge, "Basic") && !strcasestr(challenge, "Bearer")) {
        if (!p->user)
            return ck_error_set(err, CK_E_UNAUTHORIZED, "registry %s: authentication required "
                                "(no imagePullSecrets credentials for it)", p->host);
        set_basic(p);
        return 0;
    }
    if (!challenge || !strcasestr(challenge, "Bearer"))
        return ck_error_set(err, CK_E_UNAUTHORIZED, "registry %s: authentication required", p->host);
    cleanup_free char *realm = challenge_param(challenge, "realm");
    cleanup_free char *service = challenge_param(challenge, "service");
    cleanup_free char *scope = challenge_param(challenge, "scope");
    if (!realm)
        return ck_error_set(err, CK_E_UNAUTHORIZED, "registry %s: bad challenge", p->host);
    CURL *esc = curl_easy_init();
    char *es = service ? curl_easy_escape(esc, service, 0) : NULL;
    char *sc = scope ? curl_easy_escape(esc, scope, 0) : NULL;
    cleanup_free char *url = xasprintf("%s?%s%s%s%s", realm, es ? "service=" : "", es ? es : "",
                                       sc ? "&scope=" : "", sc ? sc : "");
    curl_free(es);
    curl_free(sc);
    curl_easy_cleanup(esc);
    ck_buf b;
    ck_buf_init(&b, 64 * 1024);
    free(p->authz);
    p->authz = NULL;
    if (p->user)
        set_basic(p);
    long code = http_get(p, url, NULL, &b, NULL, NULL, NULL, err);
    free(p->authz);
    p->authz = NULL;
    json_t *j = code == 200 ? json_loadb(b.data ? b.data : "", b.len, 0, NULL) : NULL;
    ck_buf_free(&b);
    const char *t = json_string_value(json_object_get(j, "token"));
    if (!t)
        t = json_string_value(json_object_get(j, "access_token"));
    if (t)
        set_authz(p, "Bearer", t);
    json_decref(j);
    if (!p->authz)
        return code < 0 ? -1 : ck_error_set(err, CK_E_UNAUTHORIZED, "registry %s: no token (HTTP %ld)%s",
                                            p->host, code, p->user ? " with the imagePullSecrets credentials" : "");
    return 0;
}

/* GET with one retry after a token; body into buf or file. */
static long get_auth(pull *p, const char *url, const char *accept, ck_buf *buf, const char *file_path,
                     char **ctype, ck_error **err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        FILE *f = file_path ? fopen(file_path, "wb") : NULL;
        if (file_path && !f)
            return ck_error_sys(err, CK_E_IO, "open %s", file_path);
        if (buf)
            ck_buf_reset(buf);
        char *ch = NULL;
        long code = http_get(p, url, accept, buf, f, &ch, ctype, err);
        if (f)
            fclose(f);
        if (code == 401 && attempt == 0) {
            if (ctype) {
                free(*ctype);
                *ctype = NULL;
            }
            int rc = answer_challenge(p, ch, err);
            free(ch);
            if (rc < 0)
                return -1;
            continue;
        }
        free(ch);
        if (code == 401)
            return ck_error_set(err, CK_E_UNAUTHORIZED, "registry %s: unauthorized%s", p->host,
                                p->user ? " (the imagePullSecrets credentials were refused)" : "");
        return code;
    }
    return -1;
}

static json_t *get_manifest(pull *p, const char *ref, ck_error **err)
{
    cleanup_free char *url = xasprintf("%s/v2/%s/manifests/%s", p->base, p->repo, ref);
    ck_buf b;
    ck_buf_init(&b, MANIFEST_MAX);
    cleanup_free char *ctype = NULL;
    long code = get_auth(p, url, ACCEPT, &b, NULL, &ctype, err);
    if (code != 200) {
        ck_buf_free(&b);
        if (code == 404)
            ck_error_set(err, CK_E_NOT_FOUND, "%s/%s:%s: not found", p->host, p->repo, ref);
        else if (code > 0)
            ck_error_set(err, CK_E_UNAVAILABLE, "%s: HTTP %ld", url, code);
        return NULL;
    }
    /* a manifest fetched by digest must have that digest */
    if (!strncmp(ref, "sha256:", 7)) {
        unsigned char md[32];
        EVP_Digest(b.data, b.len, md, NULL, EVP_sha256(), NULL);
        char got[72] = "sha256:";
        for (int i = 0; i < 32; i++)
            sprintf(got + 7 + 2 * i, "%02x", md[i]);
        if (strcmp(got, ref)) {
            ck_buf_free(&b);
            ck_error_set(err, CK_E_CORRUPT, "%s: manifest digest is %s", url, got);
            return NULL;
        }
    }
    json_t *m = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    if (!m) {
        ck_buf_free(&b);
        ck_error_set(err, CK_E_CORRUPT, "%s: manifest is not JSON", url);
        return NULL;
    }
    json_object_set_new(m, "__raw", json_stringn(b.data, b.len));
    if (ctype && !json_object_get(m, "mediaType"))
        json_object_set_new(m, "mediaType", json_string(ctype));
    ck_buf_free(&b);
    return m;
}

static int fetch_blob(pull *p, const char *root, const char *digest, ck_error **err)
{
    cleanup_free char *have = xasprintf("%s/images/blobs/sha256/%s", root, digest + 7);
    if (access(have, F_OK) == 0)
        return 0;
    cleanup_free char *url = xasprintf("%s/v2/%s/blobs/%s", p->base, p->repo, digest);
    cleanup_free char *tmp = xasprintf("%s/images/pull-%d-%s", root, getpid(), digest + 7);
    long code = get_auth(p, url, NULL, NULL, tmp, NULL, err);
    int rc = 0;
    if (code != 200)
        rc = code < 0 ? -1 : ck_error_set(err, CK_E_UNAVAILABLE, "%s: HTTP %ld", url, code);
    else
        rc = ck_images__store_blob(root, tmp, digest, NULL, err);
    unlink(tmp);
    return rc;
}

int ck_images_pull(const char *root, const char *ref, const json_t *auths, ck_error **err)
{
    pull p = {0};
    if (parse_ref(ref, &p, err) < 0)
        return -1;
    ck_registry_creds(auths, p.host, &p.user, &p.pass);
    cleanup_free char *norm = ck_image_normalize(ref);
    if (!allowed_host(p.host)) {
        ck_error_set(err, CK_E_FORBIDDEN, "pulls from %s are not allowed on this node "
                     "(kubelet --allowed-registries)", p.host);
        pull_free(&p);
        return -1;
    }
    int lock = ck_images__lock(root);
    int rc = -1;
    json_t *m = get_manifest(&p, p.tag, err);
    const char *mt = m ? json_string_value(json_object_get(m, "mediaType")) : NULL;
    if (m && mt && (strstr(mt, "index") || strstr(mt, "manifest.list"))) {
        const char *pick = NULL;
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(m, "manifests"), i, d) {
            json_t *pl = json_object_get(d, "platform");
            if (!strcmp(json_string_value(json_object_get(pl, "os")) ?: "", "linux") &&
                !strcmp(json_string_value(json_object_get(pl, "architecture")) ?: "", "amd64")) {
                pick = json_string_value(json_object_get(d, "digest"));
                break;
            }
        }
        cleanup_free char *sel = pick ? xstrdup(pick) : NULL;
        json_decref(m);
        m = sel ? get_manifest(&p, sel, err) : NULL;
        if (!sel)
            ck_error_set(err, CK_E_NOT_FOUND, "%s: no linux/amd64 image", norm);
    }
    if (m) {
        const char *raw = json_string_value(json_object_get(m, "__raw"));
        char got[72];
        if (ck_images__store_data(root, raw, json_string_length(json_object_get(m, "__raw")), got, err) < 0)
            goto out;
        const char *cfg = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
        if (!cfg || fetch_blob(&p, root, cfg, err) < 0) {
            if (!cfg)
                ck_error_set(err, CK_E_CORRUPT, "%s: manifest has no config", norm);
            goto out;
        }
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(m, "layers"), i, l) {
            const char *ld = json_string_value(json_object_get(l, "digest"));
            if (!ld || fetch_blob(&p, root, ld, err) < 0 || ck_images__unpack(root, ld, err) < 0) {
                if (!ld)
                    ck_error_set(err, CK_E_CORRUPT, "%s: bad layer", norm);
                goto out;
            }
        }
        rc = ck_images__set_ref(root, norm, got, err);
    }
out:
    json_decref(m);
    if (lock >= 0)
        close(lock);
    pull_free(&p);
    return rc;
}

/* authn.c - who is asking: the TLS client certificate (CN = user, O = groups; httpd has already
 * verified it against the client CA) or a bearer token from the static token file (upstream's
 * --token-auth-file format: `token,user,uid,"group1,group2"`).  Authenticated users also get the
 * group system:authenticated, as upstream adds it. */
#include "apiserver/apiserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct token_entry {
    char *token;
    ck_user user;
} token_entry;

struct ck_token_file {
    token_entry *v;
    size_t n;
};

void ck_user_free(ck_user *u)
{
    free(u->name);
    free(u->uid);
    for (size_t i = 0; i < u->ngroups; i++)
        free(u->groups[i]);
    free(u->groups);
    memset(u, 0, sizeof *u);
}

static void user_add_group(ck_user *u, const char *g)
{
    for (size_t i = 0; i < u->ngroups; i++)
        if (!strcmp(u->groups[i], g))
            return;
    u->groups = xrealloc(u->groups, (u->ngroups + 1) * sizeof *u->groups);
    u->groups[u->ngroups++] = xstrdup(g);
}

void ck_user_copy(ck_user *dst, const ck_user *src)
{
    memset(dst, 0, sizeof *dst);
    dst->name = xstrdup(src->name ? src->name : "");
    dst->uid = src->uid ? xstrdup(src->uid) : NULL;
    for (size_t i = 0; i < src->ngroups; i++)
        user_add_group(dst, src->groups[i]);
}

/* One CSV field: quoted ("" escapes a quote) or bare.  Advances *p past the field and comma. */
static char *csv_field(const char **p)
{
    const char *s = *p;
    ck_buf b;
    ck_buf_init(&b, 4096);
    ck_buf_add(&b, "", 0);
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '"') {
        s++;
        while (*s) {
            if (*s == '"' && s[1] == '"') {
                ck_buf_add(&b, "\"", 1);
                s += 2;
            } else if (*s == '"') {
                s++;
                break;
            } else {
                ck_buf_add(&b, s++, 1);
            }
        }
        while (*s && *s != ',')
            s++;
    } else {
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        ck_buf_add(&b, s, (size_t)(t - s));
        s = e;
    }
    if (*s == ',')
        s++;
    *p = s;
    return ck_buf_steal(&b);
}

ck_token_file *ck_token_file_parse(const char *text, ck_error **err)
{
    ck_token_file *t = xcalloc(1, sizeof *t);
    int lineno = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        cleanup_free char *l = xstrndup(line, len);
        line = nl ? nl + 1 : NULL;
        lineno++;
        const char *p = l;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p || *p == '#')
            continue;
        cleanup_free char *tok = csv_field(&p);
        cleanup_free char *user = csv_field(&p);
        cleanup_free char *uid = csv_field(&p);
        cleanup_free char *groups = *p ? csv_field(&p) : xstrdup("");
        if (!*tok || !*user) {
            ck_token_file_free(t);
            ck_error_set(err, CK_E_INVALID, "token file line %d: need at least token,user,uid",
                         lineno);
            return NULL;
        }
        t->v = xrealloc(t->v, (t->n + 1) * sizeof *t->v);
        token_entry *e = &t->v[t->n++];
        memset(e, 0, sizeof *e);
        e->token = steal_pointer(&tok);
        e->user.name = steal_pointer(&user);
        e->user.uid = steal_pointer(&uid);
        for (char *g = groups, *save = NULL, *x; (x = strtok_r(g, ",", &save)); g = NULL) {
            while (*x == ' ')
                x++;
            if (*x)
                user_add_group(&e->user, x);
        }
    }
    return t;
}

ck_token_file *ck_token_file_load(const char *path, ck_error **err)
{
    char *text = NULL;
    size_t len = 0;
    if (ck_read_file(path, 16u << 20, &text, &len) < 0) {
        ck_error_set(err, CK_E_IO, "read token file %s", path);
        return NULL;
    }
    ck_token_file *t = ck_token_file_parse(text, err);
    free(text);
    if (!t)
        ck_error_wrap(err, "%s", path);
    return t;
}

void ck_token_file_free(ck_token_file *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].token);
        ck_user_free(&t->v[i].user);
    }
    free(t->v);
    free(t);
}

/* Constant-time comparison so a token cannot be guessed byte by byte from timing. */
static bool token_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

int ck_token_file_lookup(const ck_token_file *t, const char *token, ck_user *out)
{
    if (!t || !token || !*token)
        return -1;
    for (size_t i = 0; i < t->n; i++)
        if (token_eq(t->v[i].token, token)) {
            ck_user_copy(out, &t->v[i].user);
            user_add_group(out, "system:authenticated");
            return 0;
        }
    return -1;
}

int ck_authn_request(const ck_token_file *t, const ck_http_req *req, ck_user *out, ck_error **err)
{
    memset(out, 0, sizeof *out);
    if (req->client_cn && *req->client_cn) {
        out->name = xstrdup(req->client_cn);
        for (size_t i = 0; i < req->nclient_orgs; i++)
            user_add_group(out, req->client_orgs[i]);
        user_add_group(out, "system:authenticated");
        return 0;
    }
    const char *auth = ck_http_req_header(req, "Authorization");
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        const char *tok = auth + 7;
        while (*tok == ' ')
            tok++;
        if (ck_token_file_lookup(t, tok, out) == 0)
            return 0;
    }
    return ck_error_set(err, CK_E_UNAUTHORIZED, "Unauthorized");
}

/* A token bound to a pod works while the pod exists with the uid it was bound to and until a
 * minute past its deletionTimestamp (upstream's leeway for a pod shutting down). */
static bool bound_pod_alive(ck_apiserver *s, const char *ns, const char *pod, const char *uid)
{
    const ck_resource *pr = ck_resource_find("", "v1", "pods");
    json_t *p = ck_rest_read(s, pr, ns, pod, NULL, NULL);
    const char *puid = ck_meta_str(p, "uid");
    const char *dts = ck_meta_str(p, "deletionTimestamp");
    int64_t dt = 0;
    bool ok = p && puid && uid && !strcmp(puid, uid) &&
              !(dts && ck_parse_rfc3339(dts, &dt) == 0 && dt + 60 < ck_wall_ns() / 1000000000);
    json_decref(p);
    return ok;
}

int ck_authn(ck_apiserver *s, const ck_http_req *req, ck_user *out, ck_error **err)
{
    ck_error *e = NULL;
    if (ck_authn_request(s->tokens, req, out, &e) == 0)
        return 0;
    const char *auth = ck_http_req_header(req, "Authorization");
    const char *tok = auth && !strncasecmp(auth, "Bearer ", 7) ? auth + 7 : NULL;
    while (tok && *tok == ' ')
        tok++;
    if (!s->sa_keys || !tok || !ck_sa_token_looks_like_jwt(tok)) {
        return ck_error_pass(err, e);
    }
    ck_error_free(e);
    ck_sa_claims cl;
    if (ck_sa_token_verify(s->sa_keys, tok, &cl, err) < 0)
        return -1;
    /* a deleted (or deleted and re-created) service account's tokens stop working */
    const ck_resource *sar = ck_resource_find("", "v1", "serviceaccounts");
    json_t *sa = ck_rest_read(s, sar, cl.ns, cl.name, NULL, NULL);
    const char *uid = ck_meta_str(sa, "uid");
    bool ok = sa && (!*cl.uid || (uid && !strcmp(uid, cl.uid)));
    json_decref(sa);
    if (ok && cl.pod)
        ok = bound_pod_alive(s, cl.ns, cl.pod, cl.pod_uid);
    if (!ok) {
        ck_sa_claims_free(&cl);
        return ck_error_set(err, CK_E_UNAUTHORIZED, "Unauthorized");
    }
    memset(out, 0, sizeof *out);
    out->name = xasprintf("system:serviceaccount:%s:%s", cl.ns, cl.name);
    out->uid = xstrdup(cl.uid);
    char *g = xasprintf("system:serviceaccounts:%s", cl.ns);
    user_add_group(out, "system:serviceaccounts");
    user_add_group(out, g);
    user_add_group(out, "system:authenticated");
    free(g);
    ck_sa_claims_free(&cl);
    return 0;
}

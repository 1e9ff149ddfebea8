/* kubeconfig.c - see kubeconfig.h.  Parsing walks the libyaml document tree; rendering writes
 * text directly (the shape is fixed, every free-form string is double-quoted and escaped). */
#include "lib/kubeconfig.h"
#include "lib/base64.h"
#include "lib/util.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yaml.h>

#define KUBECONFIG_LIMIT (4u << 20)   /* a kubeconfig or a file it references */


/* --- the YAML tree --- */

typedef struct parse_ctx {
    yaml_document_t *doc;
    const char *base_dir;
} parse_ctx;

static yaml_node_t *map_get(parse_ctx *c, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
            !memcmp(k->data.scalar.value, key, k->data.scalar.length))
            return yaml_document_get_node(c->doc, p->value);
    }
    return NULL;
}

/* A scalar's text (owned by the document), NULL if absent, not a scalar, or null/empty. */
static const char *scalar(yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0)
        return NULL;
    const char *v = (const char *)n->data.scalar.value;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && (!strcmp(v, "null") || !strcmp(v, "~")))
        return NULL;
    return v;
}

static const char *map_str(parse_ctx *c, yaml_node_t *map, const char *key)
{
    return scalar(map_get(c, map, key));
}

/* The `inner` mapping of the entry of sequence `list` whose name is `name`. */
static yaml_node_t *named_entry(parse_ctx *c, yaml_node_t *root, const char *list,
                                const char *inner, const char *name)
{
    yaml_node_t *seq = map_get(c, root, list);
    if (!seq || seq->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
        yaml_node_t *e = yaml_document_get_node(c->doc, *i);
        const char *n = map_str(c, e, "name");
        if (n && !strcmp(n, name)) {
            yaml_node_t *m = map_get(c, e, inner);
            /* an entry with an empty body ("user: {}") is still an entry */
            return m ? m : e;
        }
    }
    return NULL;
}

static size_t seq_len(parse_ctx *c, yaml_node_t *root, const char *list)
{
    yaml_node_t *seq = map_get(c, root, list);
    if (!seq || seq->type != YAML_SEQUENCE_NODE)
        return 0;
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* PEM from either "<field>-data" (base64) or "<field>" (a file path). */
static int load_pem(parse_ctx *c, yaml_node_t *m, const char *field, char **out, size_t *len,
                    ck_error **err)
{
    cleanup_free char *data_key = xasprintf("%s-data", field);
    const char *data = map_str(c, m, data_key);
    const char *file = map_str(c, m, field);
    if (data) {
        if (!(*out = (char *)ck_b64_decode_lenient(data, strlen(data), len)))
            return ck_error_set(err, CK_E_INVALID, "%s: not valid base64", data_key);
        return 0;
    }
    if (!file)
        return 0;
    cleanup_free char *p = file[0] == '/' ? xstrdup(file) : xasprintf("%s/%s", c->base_dir, file);
    if (ck_read_file(p, KUBECONFIG_LIMIT, out, len) < 0)
        return ck_error_sys(err, CK_E_INVALID, "%s: read %s", field, p);
    return 0;
}

static char *trimmed(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n && (*s == ' ' || *s == '\t' || *s == '\n')) {
        s++;
        n--;
    }
    return xstrndup(s, n);
}

static ck_kubeconfig *resolve(parse_ctx *c, yaml_node_t *root, const char *context, ck_error **err)
{
    const char *ctx_name = context ? context : map_str(c, root, "current-context");
    yaml_node_t *ctx = NULL;
    if (!ctx_name && seq_len(c, root, "contexts") == 1) {
        yaml_node_t *seq = map_get(c, root, "contexts");
        yaml_node_t *e = yaml_document_get_node(c->doc, *seq->data.sequence.items.start);
        ctx_name = map_str(c, e, "name");
    }
    if (!ctx_name) {
        ck_error_set(err, CK_E_INVALID, "no current-context and no context chosen");
        return NULL;
    }
    if (!(ctx = named_entry(c, root, "contexts", "context", ctx_name))) {
        ck_error_set(err, CK_E_INVALID, "context \"%s\" not found", ctx_name);
        return NULL;
    }
    const char *cluster_name = map_str(c, ctx, "cluster");
    const char *user_name = map_str(c, ctx, "user");
    yaml_node_t *cluster = cluster_name ? named_entry(c, root, "clusters", "cluster", cluster_name)
                                        : NULL;
    if (!cluster) {
        ck_error_set(err, CK_E_INVALID, "context \"%s\": cluster \"%s\" not found", ctx_name,
                     cluster_name ? cluster_name : "");
        return NULL;
    }
    yaml_node_t *user = user_name ? named_entry(c, root, "users", "user", user_name) : NULL;
    if (user_name && !user) {
        ck_error_set(err, CK_E_INVALID, "context \"%s\": user \"%s\" not found", ctx_name,
                     user_name);
        return NULL;
    }
    const char *server = map_str(c, cluster, "server");
    if (!server) {
        ck_error_set(err, CK_E_INVALID, "cluster \"%s\" has no server", cluster_name);
        return NULL;
    }
    ck_kubeconfig *kc = xcalloc(1, sizeof *kc);
    kc->server = xstrdup(server);
    kc->context_name = xstrdup(ctx_name);
    kc->cluster_name = xstrdup(cluster_name);
    kc->user_name = user_name ? xstrdup(user_name) : NULL;
    const char *ns = map_str(c, ctx, "namespace");
    kc->namespace = ns ? xstrdup(ns) : NULL;
    const char *tsn = map_str(c, cluster, "tls-server-name");
    kc->tls_server_name = tsn ? xstrdup(tsn) : NULL;
    const char *insecure = map_str(c, cluster, "insecure-skip-tls-verify");
    kc->insecure = insecure && !strcmp(insecure, "true");
    if (load_pem(c, cluster, "certificate-authority", &kc->ca_pem, &kc->ca_len, err) < 0)
        goto fail;
    if (user) {
        if (load_pem(c, user, "client-certificate", &kc->cert_pem, &kc->cert_len, err) < 0 ||
            load_pem(c, user, "client-key", &kc->key_pem, &kc->key_len, err) < 0)
            goto fail;
        if (!kc->cert_pem != !kc->key_pem) {
            ck_error_set(err, CK_E_INVALID, "user \"%s\": client certificate without key (or "
                         "key without certificate)", user_name);
            goto fail;
        }
        const char *tok = map_str(c, user, "token");
        const char *tokfile = map_str(c, user, "tokenFile");
        if (tok) {
            kc->token = trimmed(tok, strlen(tok));
        } else if (tokfile) {
            cleanup_free char *p = tokfile[0] == '/' ? xstrdup(tokfile)
                                                     : xasprintf("%s/%s", c->base_dir, tokfile);
            cleanup_free char *data = NULL;
            size_t len;
            if (ck_read_file(p, KUBECONFIG_LIMIT, &data, &len) < 0) {
                ck_error_sys(err, CK_E_INVALID, "tokenFile: read %s", p);
                goto fail;
            }
            kc->token = trimmed(data, len);
        }
    }
    return kc;
fail:
    ck_error_wrap(err, "user \"%s\"", user_name ? user_name : "");
    ck_kubeconfig_free(kc);
    return NULL;
}

ck_kubeconfig *ck_kubeconfig_parse(const char *yaml, size_t len, const char *base_dir,
                                   const char *context, ck_error **err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        ck_error_set(err, CK_E_INTERNAL, "yaml parser init");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        ck_error_set(err, CK_E_INVALID, "line %zu: %s", parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    parse_ctx c = {.doc = &doc, .base_dir = base_dir ? base_dir : "."};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    ck_kubeconfig *kc = NULL;
    if (!root || root->type != YAML_MAPPING_NODE)
        ck_error_set(err, CK_E_INVALID, "not a kubeconfig (empty or not a mapping)");
    else
        kc = resolve(&c, root, context, err);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return kc;
}

ck_kubeconfig *ck_kubeconfig_load(const char *path, const char *context, ck_error **err)
{
    cleanup_free char *data = NULL;
    size_t len;
    if (ck_read_file(path, KUBECONFIG_LIMIT, &data, &len) < 0) {
        ck_error_sys(err, CK_E_INVALID, "kubeconfig %s", path);
        return NULL;
    }
    cleanup_free char *copy = xstrdup(path);
    ck_kubeconfig *kc = ck_kubeconfig_parse(data, len, dirname(copy), context, err);
    if (!kc)
        ck_error_wrap(err, "kubeconfig %s", path);
    return kc;
}

ck_kubeconfig *ck_kubeconfig_from_files(const char *server, const char *ca_file,
                                        const char *cert_file, const char *key_file,
                                        ck_error **err)
{
    ck_kubeconfig *kc = xcalloc(1, sizeof *kc);
    kc->server = xstrdup(server);
    struct { const char *path; char **data; size_t *len; } files[] = {
        {ca_file, &kc->ca_pem, &kc->ca_len},
        {cert_file, &kc->cert_pem, &kc->cert_len},
        {key_file, &kc->key_pem, &kc->key_len},
    };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        if (files[i].path &&
            ck_read_file(files[i].path, KUBECONFIG_LIMIT, files[i].data, files[i].len) < 0) {
            ck_error_sys(err, CK_E_IO, "read %s", files[i].path);
            ck_kubeconfig_free(kc);
            return NULL;
        }
    }
    return kc;
}

/* A YAML double-quoted scalar. */
static void quote(ck_buf *b, const char *s)
{
    ck_buf_addstr(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            ck_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            ck_buf_printf(b, "\\x%02x", ch);
        else
            ck_buf_add(b, s, 1);
    }
    ck_buf_addstr(b, "\"");
}

static void field_b64(ck_buf *b, const char *indent, const char *key, const char *data, size_t len)
{
    if (!data)
        return;
    cleanup_free char *enc = ck_b64_encode(data, len);
    ck_buf_printf(b, "%s%s: %s\n", indent, key, enc);
}

static void field_str(ck_buf *b, const char *indent, const char *key, const char *val)
{
    if (!val)
        return;
    ck_buf_printf(b, "%s%s: ", indent, key);
    quote(b, val);
    ck_buf_addstr(b, "\n");
}

char *ck_kubeconfig_render(const ck_kubeconfig *kc)
{
    const char *cluster = kc->cluster_name ? kc->cluster_name : "ckube";
    const char *user = kc->user_name ? kc->user_name : "admin";
    const char *context = kc->context_name ? kc->context_name : "ckube";
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_addstr(&b, "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n");
    field_b64(&b, "    ", "certificate-authority-data", kc->ca_pem, kc->ca_len);
    if (kc->insecure)
        ck_buf_addstr(&b, "    insecure-skip-tls-verify: true\n");
    field_str(&b, "    ", "server", kc->server);
    field_str(&b, "    ", "tls-server-name", kc->tls_server_name);
    field_str(&b, "  ", "name", cluster);
    ck_buf_addstr(&b, "contexts:\n- context:\n");
    field_str(&b, "    ", "cluster", cluster);
    field_str(&b, "    ", "namespace", kc->namespace);
    field_str(&b, "    ", "user", user);
    field_str(&b, "  ", "name", context);
    field_str(&b, "", "current-context", context);
    ck_buf_addstr(&b, "preferences: {}\nusers:\n");
    field_str(&b, "- ", "name", user);
    if (!kc->cert_pem && !kc->key_pem && !kc->token) {
        ck_buf_addstr(&b, "  user: {}\n");
    } else {
        ck_buf_addstr(&b, "  user:\n");
        field_b64(&b, "    ", "client-certificate-data", kc->cert_pem, kc->cert_len);
        field_b64(&b, "    ", "client-key-data", kc->key_pem, kc->key_len);
        field_str(&b, "    ", "token", kc->token);
    }
    return ck_buf_steal(&b);
}

int ck_kubeconfig_write(const char *path, const ck_kubeconfig *kc, ck_error **err)
{
    cleanup_free char *text = ck_kubeconfig_render(kc);
    if (ck_write_file_atomic(path, text, strlen(text), 0600) < 0)
        return ck_error_sys(err, CK_E_IO, "write kubeconfig %s", path);
    return 0;
}

void ck_kubeconfig_free(ck_kubeconfig *kc)
{
    if (!kc)
        return;
    free(kc->server);
    free(kc->tls_server_name);
    free(kc->ca_pem);
    free(kc->cert_pem);
    if (kc->key_pem)
        OPENSSL_cleanse(kc->key_pem, kc->key_len);
    free(kc->key_pem);
    if (kc->token)
        OPENSSL_cleanse(kc->token, strlen(kc->token));
    free(kc->token);
    free(kc->namespace);
    free(kc->context_name);
    free(kc->cluster_name);
    free(kc->user_name);
    free(kc);
}

int ck_kubeconfig_apply_curl(const ck_kubeconfig *kc, CURL *h, struct curl_slist **headers,
                             ck_error **err)
{
    CURLcode rc = CURLE_OK;
    if (kc->insecure) {
        rc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        if (!rc)
            rc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (kc->ca_pem) {
        struct curl_blob ca = {kc->ca_pem, kc->ca_len, CURL_BLOB_COPY};
        rc = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    }
    if (!rc && kc->cert_pem) {
        struct curl_blob cert = {kc->cert_pem, kc->cert_len, CURL_BLOB_COPY};
        struct curl_blob key = {kc->key_pem, kc->key_len, CURL_BLOB_COPY};
        rc = curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
        if (!rc)
            rc = curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        if (!rc)
            rc = curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
        if (!rc)
            rc = curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (rc)
        return ck_error_set(err, CK_E_INTERNAL, "configure TLS: %s", curl_easy_strerror(rc));
    if (kc->token) {
        cleanup_free char *hdr = xasprintf("Authorization: Bearer %s", kc->token);
        struct curl_slist *l = curl_slist_append(*headers, hdr);
        OPENSSL_cleanse(hdr, strlen(hdr));
        if (!l)
            return ck_error_set(err, CK_E_INTERNAL, "out of memory for a header");
        *headers = l;
    }
    if (*headers && (rc = curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers)))
        return ck_error_set(err, CK_E_INTERNAL, "set headers: %s", curl_easy_strerror(rc));
    return 0;
}

char *ck_kubeconfig_url(const ck_kubeconfig *kc, const char *path)
{
    size_t n = strlen(kc->server);
    while (n && kc->server[n - 1] == '/')
        n--;
    return xasprintf("%.*s%s%s", (int)n, kc->server, path[0] == '/' ? "" : "/", path);
}

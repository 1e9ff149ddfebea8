/* kubeconfig.h - read and write kubeconfig files, and point a libcurl handle at the cluster one
 * describes.
 *
 * Reading (libyaml) resolves one context (the named one, else current-context, else the only
 * one) to what a client needs: the server URL, the CA, a client certificate and key, a bearer
 * token.  File references (certificate-authority, client-certificate, client-key, tokenFile) are
 * read at load time, relative paths resolved against the kubeconfig's own directory, as upstream
 * does; so the struct always holds PEM data in memory.  Not supported: exec and auth-provider
 * plugins, proxy-url, basic auth (they are ignored), and merging several files (KUBECONFIG=a:b).
 *
 * Writing emits the layout `kubectl config view --raw` prints, with the PEM data base64-embedded
 * (*-data fields), mode 0600, atomically.
 */
#ifndef CK_KUBECONFIG_H
#define CK_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "lib/error.h"

typedef struct ck_kubeconfig {
    char *server;            /* "https://127.0.0.1:6443" */
    bool insecure;           /* insecure-skip-tls-verify */
    char *tls_server_name;   /* read but not applied to curl (no SNI override there) */
    char *ca_pem;            /* NULL: the system trust store */
    size_t ca_len;
    char *cert_pem, *key_pem;    /* client certificate and key (both or neither) */
    size_t cert_len, key_len;
    char *token;             /* bearer token, NULL if none */
    char *namespace;         /* the context's namespace, NULL if unset */
    char *context_name, *cluster_name, *user_name;   /* writing: NULL = "ckube", "ckube", "admin" */
} ck_kubeconfig;

/* Load `path`, resolving `context` (NULL = current-context).  NULL + *err on failure. */
ck_kubeconfig *ck_kubeconfig_load(const char *path, const char *context, ck_error **err);

/* The same from an in-memory document; relative file references resolve against base_dir. */
ck_kubeconfig *ck_kubeconfig_parse(const char *yaml, size_t len, const char *base_dir,
                                   const char *context, ck_error **err);

/* A kubeconfig for `server` from PEM files (key_file/cert_file may be NULL for token auth). */
ck_kubeconfig *ck_kubeconfig_from_files(const char *server, const char *ca_file,
                                        const char *cert_file, const char *key_file,
                                        ck_error **err);

/* The YAML text of kc (one cluster, user and context; current-context set).  Caller frees. */
char *ck_kubeconfig_render(const ck_kubeconfig *kc);

/* Render and write to path (mode 0600, atomically). */
int ck_kubeconfig_write(const char *path, const ck_kubeconfig *kc, ck_error **err);

void ck_kubeconfig_free(ck_kubeconfig *kc);

/* Configure TLS (CA, client cert/key as blobs, or no verification if insecure) on h, and add
 * "Authorization: Bearer ..." to *headers if there is a token.  *headers (may start NULL) is set
 * as CURLOPT_HTTPHEADER; the caller may append more before the transfer and frees it after. */
int ck_kubeconfig_apply_curl(const ck_kubeconfig *kc, CURL *h, struct curl_slist **headers,
                             ck_error **err);

/* server + path ("https://127.0.0.1:6443" + "/readyz"), without a doubled slash.  Caller frees. */
char *ck_kubeconfig_url(const ck_kubeconfig *kc, const char *path);

#endif

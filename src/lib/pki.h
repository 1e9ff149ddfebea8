/* pki.h - the cluster's certificate authority and the certificates it signs (OpenSSL 3).
 *
 * Keys are ECDSA P-256.  The CA is self-signed and valid for 10 years; leaf certificates (serving
 * and client) are signed by it and valid for one year.  Every `ensure` function is idempotent:
 * files that exist are reused, never regenerated, so a second start keeps the same CA and keys.
 * A leaf certificate is re-issued (with its existing key, from the same CA) only when it expires
 * within 30 days or no longer says what the caller asks for (CN, O, SANs); a leaf that does not
 * chain to the CA, or whose key does not match, is an error (a human put it there).
 * Files are written atomically (tmp + fsync + rename); keys mode 0600, certificates 0644.
 *
 * Return values of ck_pki_ensure_*: 0 = reused as is, 1 = created or re-issued, -1 = error.
 */
#ifndef CK_PKI_H
#define CK_PKI_H

#include <stdbool.h>

#include "lib/error.h"

#define CK_PKI_CA_DAYS   3650
#define CK_PKI_LEAF_DAYS 365
#define CK_PKI_RENEW_DAYS 30

typedef struct ck_pki_cert_opts {
    const char *cn;                  /* subject CN (for client certs: the user name) */
    const char *const *orgs;         /* subject O values (client certs: groups); NULL-terminated or NULL */
    const char *const *sans;         /* subjectAltNames, NULL-terminated or NULL; IP literals become
                                        IP SANs, everything else DNS SANs */
    bool server;                     /* extendedKeyUsage serverAuth */
    bool client;                     /* extendedKeyUsage clientAuth */
    int days;                        /* 0 = CK_PKI_LEAF_DAYS */
} ck_pki_cert_opts;

/* The CA: cert_path/key_path created if cert_path is missing; reused otherwise. */
int ck_pki_ensure_ca(const char *cert_path, const char *key_path, const char *cn, ck_error **err);

/* Any leaf certificate signed by the CA at ca_cert/ca_key. */
int ck_pki_ensure_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                       const char *key_path, const ck_pki_cert_opts *opts, ck_error **err);

/* The API server's serving certificate: CN=kube-apiserver, SANs = ck_pki_default_sans() plus
 * extra_sans (NULL-terminated or NULL). */
int ck_pki_ensure_serving_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                               const char *key_path, const char *const *extra_sans, ck_error **err);

/* A client certificate: CN=user, O=groups (NULL-terminated or NULL). */
int ck_pki_ensure_client_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                              const char *key_path, const char *user, const char *const *groups,
                              ck_error **err);

/* A bare key pair (the service-account token signing key): private PEM at key_path (0600),
 * public PEM at pub_path. */
int ck_pki_ensure_keypair(const char *key_path, const char *pub_path, ck_error **err);

/* The serving SANs every API server gets: loopback, localhost, the host name, the first service
 * IP (10.96.0.1) and the kubernetes service names.  Returns a NULL-terminated array; free with
 * ck_pki_strv_free. */
char **ck_pki_default_sans(void);
void ck_pki_strv_free(char **v);

/* A static token file (upstream --token-auth-file format: token,user,uid,"group1,group2").
 * Creates path with one random token for user/uid/groups if it is missing; otherwise leaves it
 * alone.  If token_out != NULL, *token_out receives the token of the first line for `user`
 * (NULL if there is none). */
int ck_pki_ensure_token_file(const char *path, const char *user, const char *uid,
                             const char *groups, char **token_out, ck_error **err);

/* Everything a server's data dir needs under pki_dir: ca.{crt,key}, apiserver.{crt,key},
 * admin.{crt,key} (CN=kubernetes-admin, O=system:masters), sa.{key,pub}, tokens.csv. */
int ck_pki_ensure_cluster(const char *pki_dir, const char *const *extra_sans, ck_error **err);

#endif

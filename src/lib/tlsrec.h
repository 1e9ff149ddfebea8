/* tlsrec.h - TLS 1.3 application-data records without OpenSSL's record layer, for bulk relays.
 *
 * A relay that decrypts every record of one TLS connection and encrypts it again for another
 * (the API server's exec / port-forward relay) pays OpenSSL's record layer per 16 KiB record: a
 * copy into its read buffer, a copy of the plaintext out, a copy of it into its write buffer, a
 * copy of the record out through the BIO, and the SSL state machine around each.  With the
 * traffic secrets at hand the relay can open a record in place in its socket buffer and seal
 * the plaintext straight into the other socket's wire buffer (AES-GCM through EVP, as OpenSSL).
 *
 * Where the secrets come from: ck_tlsrec_keylog_install puts a keylog callback on an SSL_CTX that
 * keeps each connection's SERVER_TRAFFIC_SECRET_0 (the server's first application secret, TLS
 * 1.3 only) with the SSL.  Where the sequence numbers come from: a KeyUpdate (RFC 8446 4.6.3)
 * after which the sender's next record is number 0 under the next secret, which
 * ck_tlsrec_init derives ("traffic upd") from the kept one; so a relay makes the sending side
 * of its connection (or asks the peer to) update once, and takes over at that record.
 *
 * Only TLS_AES_128_GCM_SHA256 and TLS_AES_256_GCM_SHA384 (what Go and our servers choose); other
 * suites and TLS 1.2 are left to OpenSSL (ck_tlsrec_init fails).  No I/O here.
 */
#ifndef CK_LIB_TLSREC_H
#define CK_LIB_TLSREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "lib/error.h"

#define CK_TLSREC_HEADER 5
#define CK_TLSREC_TAG 16
#define CK_TLSREC_MAX_PLAIN 16384
/* the largest record body a peer may send (RFC 8446 5.2: 2^14 + 256) */
#define CK_TLSREC_MAX_BODY (16384 + 256)
/* a sealed record's size for len bytes of plaintext */
#define CK_TLSREC_SEALED(len) (CK_TLSREC_HEADER + (len) + 1 + CK_TLSREC_TAG)

/* inner content types (RFC 8446 5.1) */
#define CK_TLSREC_ALERT 21
#define CK_TLSREC_HANDSHAKE 22
#define CK_TLSREC_APPDATA 23

typedef struct ck_tlsrec {
    EVP_CIPHER_CTX *ctx;
    const EVP_MD *md;
    unsigned char secret[48];
    size_t secret_len, key_len;
    unsigned char iv[12];
    uint64_t seq;
    bool seal;           /* direction: true seals (our records), false opens (the peer's) */
} ck_tlsrec;

/* A traffic secret with its suite, as handed from the API server's relay to the kubelet (the
 * sealing hand-off, docs/podproxy.md "Sealing hand-off (session 9)"). */
typedef struct ck_tlsrec_secret {
    uint16_t suite;          /* TLS 1.3 suite id: 0x1301 (AES-128-GCM) or 0x1302 (AES-256-GCM) */
    size_t len;              /* the hash's size: 32 or 48 */
    unsigned char b[48];
} ck_tlsrec_secret;

/* The request header that carries the hand-off, and the 101's answer accepting it. */
#define CK_TLSREC_SEAL_HEADER "X-Ckube-Seal"
#define CK_TLSREC_SEAL_ACCEPT "v1"

/* Keep each handshake's SERVER_TRAFFIC_SECRET_0 with its SSL (for ck_tlsrec_init).  Replaces a
 * keylog callback the context had; call before the context makes connections. */
void ck_tlsrec_keylog_install(SSL_CTX *ctx);

/* The records of ssl's server-to-client direction from the next KeyUpdate on (secret 1,
 * sequence 0): seal=true where we are the server (our records), false where we are the client
 * (the peer's).  -1 (err set) when the connection is not TLS 1.3 with an AES-GCM suite or its
 * secret was not kept. */
int ck_tlsrec_init(ck_tlsrec *r, SSL *ssl, bool seal, ck_error **err);
void ck_tlsrec_free(ck_tlsrec *r);

/* ssl's kept SERVER_TRAFFIC_SECRET_0 and suite: 0, or -1 (err set) under the conditions
 * ck_tlsrec_init fails on (not TLS 1.3, not AES-GCM, not kept). */
int ck_tlsrec_kept(SSL *ssl, ck_tlsrec_secret *out, ck_error **err);
/* s := the next traffic secret (HKDF-Expand-Label(s, "traffic upd", "", Hash.length), what
 * ck_tlsrec_init derives from the kept one).  -1 on a derivation failure. */
int ck_tlsrec_secret_next(ck_tlsrec_secret *s, ck_error **err);
/* Records under s itself (no derivation), sequence 0. */
int ck_tlsrec_init_secret(ck_tlsrec *r, const ck_tlsrec_secret *s, bool seal, ck_error **err);

/* The hand-off header's value, "v1; suite=1301; secret=<hex>" into out (at least
 * CK_TLSREC_SEAL_VALUE_MAX bytes).  Secret material: cleanse out after use, never log it. */
#define CK_TLSREC_SEAL_VALUE_MAX 160
void ck_tlsrec_seal_value(const ck_tlsrec_secret *s, char *out);
/* Parse a hand-off header's value: exactly that form, a suite tlsrec handles, the secret's
 * length the suite's hash size.  -1 (err set, without the value) otherwise. */
int ck_tlsrec_seal_parse(const char *value, ck_tlsrec_secret *out, ck_error **err);

/* A KeyUpdate the peer sent (the records after it use the next secret, sequence 0). */
int ck_tlsrec_update(ck_tlsrec *r, ck_error **err);

/* Seal len (<= CK_TLSREC_MAX_PLAIN) bytes of plaintext of inner type `type` into out
 * (CK_TLSREC_SEALED(len) bytes).  in and out must not overlap.  -1 on a cipher failure. */
int ck_tlsrec_seal(ck_tlsrec *r, uint8_t type, const unsigned char *in, size_t len,
                   unsigned char *out, ck_error **err);

/* The length of the record starting at rec (header + body) if avail bytes hold its header;
 * 0 if fewer than CK_TLSREC_HEADER bytes are there; -1 (err set) for a header that is not an
 * application-data record of a legal size. */
long ck_tlsrec_record_len(const unsigned char *rec, size_t avail, ck_error **err);

/* Open the whole record at rec (ck_tlsrec_record_len bytes) in place: *plain points at its
 * plaintext (inside rec), *plain_len its length, *type its inner content type.  -1 (err set) if
 * the record does not authenticate. */
int ck_tlsrec_open(ck_tlsrec *r, unsigned char *rec, size_t rec_len, unsigned char **plain,
                   size_t *plain_len, uint8_t *type, ck_error **err);

#endif

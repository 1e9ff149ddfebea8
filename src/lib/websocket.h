/* websocket.h - RFC 6455 framing for both roles, over any byte tunnel.
 *
 * No I/O here: a ck_ws parser is fed the bytes that arrived (ck_ws_feed) and calls back once per
 * complete message (fragments are joined; control frames are delivered as they come, between
 * fragments if need be).  Encoders append frames to a ck_buf.  The server role requires masked
 * client frames and sends unmasked ones; the client role the opposite.  Every size is bounded:
 * a frame or message over max_message is a protocol error (close code 1009), never a realloc
 * forever.  The handshake helpers compute Sec-WebSocket-Accept (SHA-1 + base64, OpenSSL) and pick
 * a subprotocol from the client's offer.
 *
 * Error contract: -1 with *err set (CK_E_BAD_REQUEST for a peer's protocol error, *close_code
 * in the parser says which close code to answer with).
 */
#ifndef CK_WEBSOCKET_H
#define CK_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/util.h"

enum ck_ws_opcode {
    CK_WS_CONT = 0x0, CK_WS_TEXT = 0x1, CK_WS_BINARY = 0x2,
    CK_WS_CLOSE = 0x8, CK_WS_PING = 0x9, CK_WS_PONG = 0xA,
};

/* out must hold 29 bytes: base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated. */
void ck_ws_accept_key(const char *client_key, char out[29]);
/* The first of `supported` (in our order of preference) that the comma-separated `offered`
 * header lists; NULL if none (or offered is NULL). */
const char *ck_ws_pick_protocol(const char *offered, const char *const *supported, size_t n);
/* A fresh random Sec-WebSocket-Key (base64 of 16 random bytes); out holds 25 bytes. */
void ck_ws_client_key(char out[25]);

/* Called once per complete message.  For CK_WS_CLOSE, data is the close payload (2-byte code +
 * reason, or empty).  Return non-zero to stop feeding (ck_ws_feed then returns 1). */
typedef int (*ck_ws_message_cb)(void *ctx, enum ck_ws_opcode op, const uint8_t *data, size_t len);

typedef struct ck_ws {
    bool server;            /* true: expect masked frames from the peer */
    size_t max_message;     /* bytes of one (joined) message; default 32 MiB */
    ck_buf in;              /* bytes of an incomplete frame */
    ck_buf msg;             /* fragments of a message being joined */
    int msg_op;             /* opcode of the message in msg, 0 if none */
    bool closed;            /* a close frame was received */
    int close_code;         /* code to close with after a protocol error */
} ck_ws;

void ck_ws_init(ck_ws *ws, bool server, size_t max_message);
void ck_ws_free(ck_ws *ws);
/* Feed received bytes: 0 when all were consumed (messages delivered), 1 if a callback asked to
 * stop (the remaining bytes are kept), -1 on a protocol error. */
int ck_ws_feed(ck_ws *ws, const void *data, size_t len, ck_ws_message_cb cb, void *ctx,
               ck_error **err);

/* Append one (final) frame.  mask: true for the client role (a random masking key). */
void ck_ws_frame(ck_buf *out, enum ck_ws_opcode op, bool mask, const void *data, size_t len);
/* A frame whose payload is a prefix byte followed by data (channel.k8s.io messages). */
void ck_ws_frame_prefixed(ck_buf *out, enum ck_ws_opcode op, bool mask, uint8_t prefix,
                          const void *data, size_t len);
/* A close frame with code and reason. */
void ck_ws_close_frame(ck_buf *out, bool mask, int code, const char *reason);
/* The head of an unmasked (server role) final frame of len payload bytes, written to out;
 * returns its size: 2, 4 or 10 bytes.  For callers that lay payloads out in place. */
size_t ck_ws_server_head(uint8_t out[10], enum ck_ws_opcode op, size_t len);

#endif

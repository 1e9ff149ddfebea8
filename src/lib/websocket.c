/* websocket.c - RFC 6455 framing: see websocket.h. */
#include "lib/websocket.h"

#include <ctype.h>
#include <string.h>
#include <openssl/evp.h>
#include <sys/types.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_HEADER 14

void ck_ws_accept_key(const char *client_key, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    cleanup_free char *in = xasprintf("%s%s", client_key, WS_GUID);
    EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);   /* 20 bytes -> 28 chars + NUL */
}

void ck_ws_client_key(char out[25])
{
    unsigned char raw[16];
    ck_random_bytes(raw, sizeof raw);
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
}

/* Whether the comma-separated list contains token (trimmed, exact case as RFC 6455 says). */
static bool list_has(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == tl && !memcmp(p, token, tl))
            return true;
        p = e;
    }
    return false;
}

const char *ck_ws_pick_protocol(const char *offered, const char *const *supported, size_t n)
{
    if (!offered)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (list_has(offered, supported[i]))
            return supported[i];
    return NULL;
}

void ck_ws_init(ck_ws *ws, bool server, size_t max_message)
{
    memset(ws, 0, sizeof *ws);
    ws->server = server;
    ws->max_message = max_message ? max_message : 32u * 1024 * 1024;
    ck_buf_init(&ws->in, ws->max_message + WS_MAX_HEADER);
    ck_buf_init(&ws->msg, ws->max_message);
}

void ck_ws_free(ck_ws *ws)
{
    ck_buf_free(&ws->in);
    ck_buf_free(&ws->msg);
}

static int proto_err(ck_ws *ws, int code, ck_error **err, const char *what)
{
    ws->close_code = code;
    return ck_error_set(err, CK_E_BAD_REQUEST, "websocket: %s", what);
}

/* XOR n bytes with the masking key, starting at key offset koff: eight bytes at a time (the
 * compiler vectorizes it), as uploads through exec and port-forward are all masked frames. */
static void xor_mask(uint8_t *p, size_t n, const uint8_t key[4], size_t koff)
{
    uint8_t k8[8];
    for (int i = 0; i < 8; i++)
        k8[i] = key[((size_t)i + koff) & 3];
    uint64_t kw;
    memcpy(&kw, k8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= kw;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= k8[i & 7];
}

/* Parse one frame at p[0..n): 0 if incomplete, -1 on error, else bytes consumed. */
static ssize_t parse_frame(ck_ws *ws, uint8_t *p, size_t n, ck_ws_message_cb cb, void *ctx,
                           int *stop, ck_error **err)
{
    if (n < 2)
        return 0;
    bool fin = p[0] & 0x80;
    int op = p[0] & 0x0f;
    bool masked = p[1] & 0x80;
    uint64_t plen = p[1] & 0x7f;
    size_t hl = 2;
    if (p[0] & 0x70)
        return proto_err(ws, 1002, err, "reserved bits set");
    if (plen == 126) {
        if (n < 4)
            return 0;
        plen = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (plen == 127) {
        if (n < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | p[2 + i];
        hl = 10;
    }
    if (masked != ws->server)
        return proto_err(ws, 1002, err, ws->server ? "unmasked client frame" : "masked server frame");
    if (op >= 0x8 && (!fin || plen > 125))
        return proto_err(ws, 1002, err, "bad control frame");
    if (plen > ws->max_message)
        return proto_err(ws, 1009, err, "frame too large");
    uint8_t key[4] = {0};
    if (masked) {
        if (n < hl + 4)
            return 0;
        memcpy(key, p + hl, 4);
        hl += 4;
    }
    if (n - hl < plen)
        return 0;
    uint8_t *data = p + hl;
    if (masked)
        xor_mask(data, (size_t)plen, key, 0);
    size_t used = hl + (size_t)plen;
    if (op >= 0x8) {
        if (op != CK_WS_CLOSE && op != CK_WS_PING && op != CK_WS_PONG)
            return proto_err(ws, 1002, err, "unknown control opcode");
        if (op == CK_WS_CLOSE)
            ws->closed = true;
        *stop = cb(ctx, op, data, plen);
        return used;
    }
    if (op == CK_WS_CONT) {
        if (!ws->msg_op)
            return proto_err(ws, 1002, err, "continuation without a message");
    } else if (op == CK_WS_TEXT || op == CK_WS_BINARY) {
        if (ws->msg_op)
            return proto_err(ws, 1002, err, "new message inside a fragmented one");
        if (fin) {   /* the common case: no copy */
            *stop = cb(ctx, op, data, plen);
            return used;
        }
        ws->msg_op = op;
    } else {
        return proto_err(ws, 1002, err, "unknown data opcode");
    }
    if (ck_buf_add(&ws->msg, data, plen) < 0)
        return proto_err(ws, 1009, err, "message too large");
    if (fin) {
        int mop = ws->msg_op;
        ws->msg_op = 0;
        *stop = cb(ctx, mop, (uint8_t *)ws->msg.data, ws->msg.len);
        ck_buf_reset(&ws->msg);
    }
    return used;
}

int ck_ws_feed(ck_ws *ws, const void *data, size_t len, ck_ws_message_cb cb, void *ctx,
               ck_error **err)
{
    if (len && ck_buf_add(&ws->in, data, len) < 0)
        return proto_err(ws, 1009, err, "frame too large");
    size_t off = 0;
    int rc = 0;
    while (off < ws->in.len) {
        int stop = 0;
        ssize_t used = parse_frame(ws, (uint8_t *)ws->in.data + off, ws->in.len - off, cb, ctx,
                                   &stop, err);
        if (used < 0)
            return -1;
        if (used == 0)
            break;
        off += (size_t)used;
        if (stop) {
            rc = 1;
            break;
        }
    }
    if (off) {
        memmove(ws->in.data, ws->in.data + off, ws->in.len - off);
        ws->in.len -= off;
        ws->in.data[ws->in.len] = '\0';
    }
    return rc;
}

size_t ck_ws_server_head(uint8_t h[10], enum ck_ws_opcode op, size_t len)
{
    h[0] = 0x80 | (uint8_t)op;
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static void frame_head(ck_buf *out, int op, bool mask, size_t len, uint8_t key[4])
{
    uint8_t h[WS_MAX_HEADER];
    size_t hl = ck_ws_server_head(h, (enum ck_ws_opcode)op, len);
    if (mask) {
        h[1] |= 0x80;
        ck_random_bytes(key, 4);
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    ck_buf_add(out, h, hl);
}

static void add_masked(ck_buf *out, const uint8_t *d, size_t len, const uint8_t key[4],
                       size_t koff)
{
    size_t start = out->len;
    if (ck_buf_add(out, d, len) < 0 || !key)
        return;
    xor_mask((uint8_t *)out->data + start, len, key, koff);
}

void ck_ws_frame_prefixed(ck_buf *out, enum ck_ws_opcode op, bool mask, uint8_t prefix,
                          const void *data, size_t len)
{
    uint8_t key[4];
    frame_head(out, op, mask, len + 1, key);
    add_masked(out, &prefix, 1, mask ? key : NULL, 0);
    add_masked(out, data, len, mask ? key : NULL, 1);
}

void ck_ws_frame(ck_buf *out, enum ck_ws_opcode op, bool mask, const void *data, size_t len)
{
    uint8_t key[4];
    frame_head(out, op, mask, len, key);
    add_masked(out, data, len, mask ? key : NULL, 0);
}

void ck_ws_close_frame(ck_buf *out, bool mask, int code, const char *reason)
{
    uint8_t p[125];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > sizeof p - 2)
        rl = sizeof p - 2;
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rl)
        memcpy(p + 2, reason, rl);
    ck_ws_frame(out, CK_WS_CLOSE, mask, p, rl + 2);
}

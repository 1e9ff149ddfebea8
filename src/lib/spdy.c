/* spdy.c - SPDY/3.1 framing: see spdy.h. */
#include "lib/spdy.h"

#include <pthread.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPDY_VERSION 3
#define MAX_HEADER_BLOCK (256u * 1024)
#define MAX_PAIRS 256

/* ---- the SPDY/3 dictionary: length-prefixed words, then a run of plain text ---- */

static const char *const dict_words[] = {
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
};
static const char dict_tail[] =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

static uint8_t dict[1536];
static size_t dict_len;
static pthread_once_t dict_once = PTHREAD_ONCE_INIT;

static void dict_build(void)
{
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(dict_words); i++) {
        size_t l = strlen(dict_words[i]);
        dict[n++] = 0;
        dict[n++] = 0;
        dict[n++] = 0;
        dict[n++] = (uint8_t)l;
        memcpy(dict + n, dict_words[i], l);
        n += l;
    }
    memcpy(dict + n, dict_tail, sizeof dict_tail - 1);
    dict_len = n + sizeof dict_tail - 1;
}

const uint8_t *ck_spdy_dictionary(size_t *len)
{
    pthread_once(&dict_once, dict_build);
    *len = dict_len;
    return dict;
}

/* ---- session ---- */

void ck_spdy_init(ck_spdy *s, bool server, size_t max_frame)
{
    memset(s, 0, sizeof *s);
    s->server = server;
    s->max_frame = max_frame ? max_frame : 16u * 1024 * 1024;
    ck_buf_init(&s->in, s->max_frame + 8);
    s->send_window = CK_SPDY_DEFAULT_WINDOW;
    s->peer_initial_window = CK_SPDY_DEFAULT_WINDOW;
    s->next_id = server ? 2 : 1;
    size_t dl;
    const uint8_t *d = ck_spdy_dictionary(&dl);
    if (deflateInit(&s->tx, Z_DEFAULT_COMPRESSION) != Z_OK ||
        deflateSetDictionary(&s->tx, d, (uInt)dl) != Z_OK || inflateInit(&s->rx) != Z_OK) {
        abort();   /* only on OOM inside zlib: fail loudly, as xmalloc does */
    }
}

void ck_spdy_free(ck_spdy *s)
{
    deflateEnd(&s->tx);
    inflateEnd(&s->rx);
    ck_buf_free(&s->in);
}

uint32_t ck_spdy_next_stream_id(ck_spdy *s)
{
    uint32_t id = s->next_id;
    s->next_id += 2;
    return id;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int perr(ck_error **err, const char *what)
{
    return ck_error_set(err, CK_E_BAD_REQUEST, "spdy: %s", what);
}

const char *ck_spdy_frame_header(const ck_spdy_frame *f, const char *name)
{
    for (size_t i = 0; i < f->nheaders; i++)
        if (!strcasecmp(f->headers[i].name, name))
            return f->headers[i].value;
    return NULL;
}

/* Inflate a header block into out (bounded). */
static int inflate_block(ck_spdy *s, const uint8_t *in, size_t len, ck_buf *out, ck_error **err)
{
    s->rx.next_in = (Bytef *)in;
    s->rx.avail_in = (uInt)len;
    uint8_t chunk[8192];
    while (s->rx.avail_in > 0) {
        s->rx.next_out = chunk;
        s->rx.avail_out = sizeof chunk;
        int rc = inflate(&s->rx, Z_SYNC_FLUSH);
        if (rc == Z_NEED_DICT) {
            size_t dl;
            const uint8_t *d = ck_spdy_dictionary(&dl);
            if (s->rx_dict_set || inflateSetDictionary(&s->rx, d, (uInt)dl) != Z_OK)
                return perr(err, "header block needs an unknown dictionary");
            s->rx_dict_set = true;
            continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
            return perr(err, "header block does not inflate");
        size_t got = sizeof chunk - s->rx.avail_out;
        if (ck_buf_add(out, chunk, got) < 0)
            return perr(err, "header block too large");
        /* an ended zlib stream takes no more input: bytes after its end (in this block or a
         * later one) would spin here forever */
        if (rc == Z_STREAM_END && s->rx.avail_in > 0)
            return perr(err, "header block after the end of the compressed stream");
        if (rc == Z_BUF_ERROR && got == 0)
            break;
    }
    /* drain what zlib still holds for this block */
    for (;;) {
        s->rx.next_out = chunk;
        s->rx.avail_out = sizeof chunk;
        int rc = inflate(&s->rx, Z_SYNC_FLUSH);
        size_t got = sizeof chunk - s->rx.avail_out;
        if (got && ck_buf_add(out, chunk, got) < 0)
            return perr(err, "header block too large");
        if (got == 0 || (rc != Z_OK && rc != Z_BUF_ERROR))
            break;
    }
    return 0;
}

/* Header blocks are re-laid with 4 zero bytes after every field, so each name and value can be
 * NUL-terminated in place without clobbering the next length prefix. */
static int relayout_nv(const ck_buf *raw, ck_buf *out, ck_error **err)
{
    /* copy with a NUL after every field so in-place termination never clobbers a length */
    const uint8_t *p = (const uint8_t *)raw->data;
    size_t n = raw->len, off = 4;
    if (n < 4)
        return perr(err, "short header block");
    uint32_t count = be32(p);
    if (count > MAX_PAIRS)
        return perr(err, "too many headers");
    ck_buf_add(out, p, 4);
    for (uint32_t i = 0; i < count * 2; i++) {
        if (n - off < 4)
            return perr(err, "truncated header block");
        uint32_t l = be32(p + off);
        if (n - off - 4 < l)
            return perr(err, "truncated header block");
        if (ck_buf_add(out, p + off, 4 + l) < 0 || ck_buf_add(out, "\0\0\0\0", 4) < 0)
            return perr(err, "header block too large");
        off += 4 + l;
    }
    return 0;
}

static int deliver_headers(ck_spdy *s, const uint8_t *block, size_t len, ck_spdy_frame *f,
                           ck_spdy_frame_cb cb, void *ctx, int *stop, ck_error **err)
{
    ck_buf raw, nv;
    ck_buf_init(&raw, MAX_HEADER_BLOCK);
    ck_buf_init(&nv, MAX_HEADER_BLOCK * 2);
    ck_spdy_header *h = xcalloc(MAX_PAIRS, sizeof *h);
    int rc = -1;
    if (inflate_block(s, block, len, &raw, err) < 0 || relayout_nv(&raw, &nv, err) < 0)
        goto out;
    /* in the re-laid block each field is followed by 4 zero bytes: parse skipping them */
    {
        char *p = nv.data;
        size_t off = 4, k = 0;
        uint32_t count = be32((uint8_t *)p);
        for (uint32_t i = 0; i < count; i++) {
            uint32_t nl = be32((uint8_t *)p + off);
            char *name = p + off + 4;
            off += 4 + nl + 4;
            uint32_t vl = be32((uint8_t *)p + off);
            char *val = p + off + 4;
            off += 4 + vl + 4;
            if (nl == 0) {
                perr(err, "empty header name");
                goto out;
            }
            name[nl] = '\0';
            for (char *c = name; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            char *end = val + vl;
            *end = '\0';
            for (char *v = val;;) {
                if (k == MAX_PAIRS) {
                    perr(err, "too many header values");
                    goto out;
                }
                h[k].name = name;
                h[k].value = v;
                k++;
                char *z = memchr(v, '\0', (size_t)(end - v));
                if (!z || z == end)
                    break;
                v = z + 1;
            }
        }
        f->headers = h;
        f->nheaders = k;
    }
    *stop = cb(ctx, f);
    rc = 0;
out:
    free(h);
    ck_buf_free(&raw);
    ck_buf_free(&nv);
    return rc;
}

/* One frame at p[0..n): 0 incomplete, -1 error, else bytes used. */
static ssize_t parse_frame(ck_spdy *s, const uint8_t *p, size_t n, ck_spdy_frame_cb cb,
                           void *ctx, int *stop, ck_error **err)
{
    if (n < 8)
        return 0;
    uint32_t len = (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    if (len > s->max_frame)
        return perr(err, "frame too large");
    if (n - 8 < len)
        return 0;
    const uint8_t *b = p + 8;
    ck_spdy_frame f = {.flags = p[4]};
    if (!(p[0] & 0x80)) {
        f.type = CK_SPDY_DATA;
        f.stream_id = be32(p) & 0x7fffffff;
        f.data = b;
        f.len = len;
        *stop = cb(ctx, &f);
        return 8 + len;
    }
    unsigned version = ((unsigned)(p[0] & 0x7f) << 8) | p[1];
    unsigned type = (unsigned)p[2] << 8 | p[3];
    if (version != SPDY_VERSION)
        return perr(err, "unsupported version");
    f.type = (enum ck_spdy_type)type;
    switch (type) {
    case CK_SPDY_SYN_STREAM:
        if (len < 10)
            return perr(err, "short SYN_STREAM");
        f.stream_id = be32(b) & 0x7fffffff;
        f.assoc_id = be32(b + 4) & 0x7fffffff;
        f.priority = b[8] >> 5;
        if (deliver_headers(s, b + 10, len - 10, &f, cb, ctx, stop, err) < 0)
            return -1;
        break;
    case CK_SPDY_SYN_REPLY:
    case CK_SPDY_HEADERS:
        if (len < 4)
            return perr(err, "short SYN_REPLY/HEADERS");
        f.stream_id = be32(b) & 0x7fffffff;
        if (deliver_headers(s, b + 4, len - 4, &f, cb, ctx, stop, err) < 0)
            return -1;
        break;
    case CK_SPDY_RST_STREAM:
        if (len != 8)
            return perr(err, "bad RST_STREAM");
        f.stream_id = be32(b) & 0x7fffffff;
        f.status = be32(b + 4);
        *stop = cb(ctx, &f);
        break;
    case CK_SPDY_SETTINGS: {
        if (len < 4 || (len - 4) / 8 < be32(b) || be32(b) > 64)
            return perr(err, "bad SETTINGS");
        uint32_t cnt = be32(b), ids[64], vals[64];
        for (uint32_t i = 0; i < cnt; i++) {
            ids[i] = be32(b + 4 + 8 * i) & 0xffffff;
            vals[i] = be32(b + 8 + 8 * i);
            if (ids[i] == CK_SPDY_SETTINGS_INITIAL_WINDOW_SIZE)
                s->peer_initial_window = (int32_t)vals[i];
        }
        f.setting_ids = ids;
        f.setting_values = vals;
        f.nsettings = cnt;
        *stop = cb(ctx, &f);
        break;
    }
    case CK_SPDY_PING:
        if (len != 4)
            return perr(err, "bad PING");
        f.ping_id = be32(b);
        *stop = cb(ctx, &f);
        break;
    case CK_SPDY_GOAWAY:
        if (len != 8)
            return perr(err, "bad GOAWAY");
        f.last_good_id = be32(b) & 0x7fffffff;
        f.status = be32(b + 4);
        *stop = cb(ctx, &f);
        break;
    case CK_SPDY_WINDOW_UPDATE:
        if (len != 8)
            return perr(err, "bad WINDOW_UPDATE");
        f.stream_id = be32(b) & 0x7fffffff;
        f.delta = be32(b + 4) & 0x7fffffff;
        if (f.stream_id == 0)
            s->send_window += f.delta;
        *stop = cb(ctx, &f);
        break;
    default:
        break;   /* unknown control frames are ignored, as the spec says */
    }
    return 8 + len;
}

int ck_spdy_feed(ck_spdy *s, const void *data, size_t len, ck_spdy_frame_cb cb, void *ctx,
                 ck_error **err)
{
    if (len && ck_buf_add(&s->in, data, len) < 0)
        return perr(err, "frame too large");
    size_t off = 0;
    int rc = 0;
    while (off < s->in.len) {
        int stop = 0;
        ssize_t used = parse_frame(s, (uint8_t *)s->in.data + off, s->in.len - off, cb, ctx, &stop,
                                   err);
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
        memmove(s->in.data, s->in.data + off, s->in.len - off);
        s->in.len -= off;
        s->in.data[s->in.len] = '\0';
    }
    return rc;
}

/* ---- encoders ---- */

static void ctrl_head(ck_buf *out, unsigned type, uint8_t flags, size_t len)
{
    uint8_t h[8] = {0x80, SPDY_VERSION, (uint8_t)(type >> 8), (uint8_t)type, flags,
                    (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    ck_buf_add(out, h, 8);
}

static void deflate_nv(ck_spdy *s, ck_buf *z, const ck_spdy_header *h, size_t n)
{
    ck_buf raw;
    ck_buf_init(&raw, 0);
    uint8_t l[4];
    put32(l, (uint32_t)n);
    ck_buf_add(&raw, l, 4);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(h[i].name), vl = strlen(h[i].value);
        put32(l, (uint32_t)nl);
        ck_buf_add(&raw, l, 4);
        for (size_t j = 0; j < nl; j++) {
            char c = h[i].name[j];
            c = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
            ck_buf_add(&raw, &c, 1);
        }
        put32(l, (uint32_t)vl);
        ck_buf_add(&raw, l, 4);
        ck_buf_add(&raw, h[i].value, vl);
    }
    s->tx.next_in = (Bytef *)raw.data;
    s->tx.avail_in = (uInt)raw.len;
    uint8_t chunk[4096];
    do {
        s->tx.next_out = chunk;
        s->tx.avail_out = sizeof chunk;
        deflate(&s->tx, Z_SYNC_FLUSH);
        ck_buf_add(z, chunk, sizeof chunk - s->tx.avail_out);
    } while (s->tx.avail_out == 0);
    ck_buf_free(&raw);
}

static void header_frame(ck_spdy *s, ck_buf *out, unsigned type, uint8_t flags,
                         const uint8_t *prefix, size_t plen, const ck_spdy_header *h, size_t n)
{
    ck_buf z;
    ck_buf_init(&z, 0);
    deflate_nv(s, &z, h, n);
    ctrl_head(out, type, flags, plen + z.len);
    ck_buf_add(out, prefix, plen);
    ck_buf_add(out, z.data, z.len);
    ck_buf_free(&z);
}

void ck_spdy_syn_stream(ck_spdy *s, ck_buf *out, uint32_t id, uint32_t assoc, uint8_t priority,
                        uint8_t flags, const ck_spdy_header *h, size_t n)
{
    uint8_t p[10];
    put32(p, id & 0x7fffffff);
    put32(p + 4, assoc & 0x7fffffff);
    p[8] = (uint8_t)(priority << 5);
    p[9] = 0;
    header_frame(s, out, CK_SPDY_SYN_STREAM, flags, p, 10, h, n);
}

void ck_spdy_syn_reply(ck_spdy *s, ck_buf *out, uint32_t id, uint8_t flags,
                       const ck_spdy_header *h, size_t n)
{
    uint8_t p[4];
    put32(p, id & 0x7fffffff);
    header_frame(s, out, CK_SPDY_SYN_REPLY, flags, p, 4, h, n);
}

void ck_spdy_headers(ck_spdy *s, ck_buf *out, uint32_t id, uint8_t flags,
                     const ck_spdy_header *h, size_t n)
{
    uint8_t p[4];
    put32(p, id & 0x7fffffff);
    header_frame(s, out, CK_SPDY_HEADERS, flags, p, 4, h, n);
}

static void ctrl_2x32(ck_buf *out, unsigned type, uint32_t a, uint32_t b)
{
    uint8_t p[8];
    put32(p, a);
    put32(p + 4, b);
    ctrl_head(out, type, 0, 8);
    ck_buf_add(out, p, 8);
}

void ck_spdy_rst_stream(ck_buf *out, uint32_t id, uint32_t status)
{
    ctrl_2x32(out, CK_SPDY_RST_STREAM, id & 0x7fffffff, status);
}

void ck_spdy_goaway(ck_buf *out, uint32_t last_good_id, uint32_t status)
{
    ctrl_2x32(out, CK_SPDY_GOAWAY, last_good_id & 0x7fffffff, status);
}

void ck_spdy_window_update(ck_buf *out, uint32_t id, uint32_t delta)
{
    ctrl_2x32(out, CK_SPDY_WINDOW_UPDATE, id & 0x7fffffff, delta & 0x7fffffff);
}

void ck_spdy_ping(ck_buf *out, uint32_t id)
{
    uint8_t p[4];
    put32(p, id);
    ctrl_head(out, CK_SPDY_PING, 0, 4);
    ck_buf_add(out, p, 4);
}

void ck_spdy_settings(ck_buf *out, const uint32_t *ids, const uint32_t *values, size_t n)
{
    ctrl_head(out, CK_SPDY_SETTINGS, 0, 4 + 8 * n);
    uint8_t p[8];
    put32(p, (uint32_t)n);
    ck_buf_add(out, p, 4);
    for (size_t i = 0; i < n; i++) {
        put32(p, ids[i] & 0xffffff);
        put32(p + 4, values[i]);
        ck_buf_add(out, p, 8);
    }
}

void ck_spdy_data_head(uint8_t h[8], uint32_t id, uint8_t flags, size_t len)
{
    put32(h, id & 0x7fffffff);
    h[4] = flags;
    h[5] = (uint8_t)(len >> 16);
    h[6] = (uint8_t)(len >> 8);
    h[7] = (uint8_t)len;
}

void ck_spdy_data(ck_buf *out, uint32_t id, uint8_t flags, const void *data, size_t len)
{
    uint8_t h[8];
    ck_spdy_data_head(h, id, flags, len);
    ck_buf_add(out, h, 8);
    if (len)
        ck_buf_add(out, data, len);
}

void ck_spdy_consumed(ck_spdy *s, ck_buf *out, uint32_t id, size_t n)
{
    if (!s->flow_control || n == 0)
        return;
    ck_spdy_window_update(out, id, (uint32_t)n);
    s->recv_unacked += n;
    if (s->recv_unacked >= CK_SPDY_DEFAULT_WINDOW / 2) {
        ck_spdy_window_update(out, 0, (uint32_t)s->recv_unacked);
        s->recv_unacked = 0;
    }
}

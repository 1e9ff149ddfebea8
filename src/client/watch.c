/* watch.c - the watches of client.h (ck_client_watch, _pick, _peek).
 *
 * A watch is one long answer: event lines in a chunked body.  Its connection is a libcurl easy
 * handle in CONNECT_ONLY mode (ck_client_connect_only: libcurl connects and does TLS with the
 * client's identity); the request is printed here, and the answer read here with curl_easy_recv
 * on a BLOCKING socket.  Why: libcurl's transfer loop costs a poll, a read and a read that finds
 * nothing (EAGAIN) per wakeup, plus its multi machinery; a watch woken for each event (three a
 * pod in every component) then paid three system calls where one does.  Here a wakeup is one
 * recv.  Cancelling does not need a wakeup either: the socket is attached to the ck_cancel,
 * whose firing shuts it down and so ends the blocked recv (lib/cancel.h); an idle watch sleeps
 * until the server sends something (bookmarks: about a minute) or WATCH_SILENT_MS passes.
 *
 * The body is de-chunked as it comes (a small state machine), split into lines, and each line
 * decoded (whole, picked, or after a light first look) and handed to the callback.  Limits: an
 * event line 16 MB, an answer head 64 KB; 300 s without a byte ends the watch as unavailable
 * (the server sends bookmarks far more often).
 */
#include "client/client.h"
#include "client/client_int.h"
#include "client/jsonpick.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/crypto.h>

#include "lib/util.h"

#define WATCH_MAX_LINE (16u * 1024 * 1024)
#define WATCH_MAX_HEAD (64u * 1024)
#define WATCH_MAX_ERROR_BODY (1u * 1024 * 1024)
#define WATCH_SILENT_MS 300000
#define WATCH_SEND_MS 1000   /* a blocked send gives up this often to look at the cancel */

enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

struct watch_state {
    ck_buf line;
    ck_client_watch_cb cb;
    void *ctx;
    const ck_jsonpick *keep;   /* decode only these parts of each event (NULL: all) */
    const ck_jsonpick *light;  /* the first look (ck_client_watch_peek), or NULL */
    ck_client_watch_peek_cb peek;
    bool stopped;        /* the callback asked to stop */
    bool expired;        /* the server sent a 410 ERROR event */
    char *error_msg;
    /* the body's framing */
    enum chunk_state cs;
    size_t chunk_left;   /* CH_DATA: bytes of the chunk still to come */
    char sizebuf[32];    /* CH_SIZE / CH_TRAILER: the line so far */
    size_t sizelen;
};

/* The first look of a peeking watch: true when the event is to be decoded with the full keep
 * list and delivered, false when the peek dealt with it (or stop said to end: *go_on). */
static bool first_look(struct watch_state *w, const char *text, size_t len, bool *go_on)
{
    /* the API server writes the type first: an event that is not an update is not worth a
     * light pass (it would be decoded twice) */
    static const char prefix[] = "{\"type\":\"";
    if (len > sizeof prefix + 8 && !memcmp(text, prefix, sizeof prefix - 1) &&
        memcmp(text + sizeof prefix - 1, "MODIFIED\"", 9))
        return true;
    ck_error *perr = NULL;
    json_t *ev = ck_jsonpick_parse(text, len, w->light, &perr);
    if (!ev) {
        ck_error_free(perr);
        return true;             /* the full decode reports it */
    }
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    bool full = true;
    if (type && obj && !strcmp(type, "MODIFIED"))
        full = w->peek(w->ctx, type, obj, go_on);
    json_decref(ev);
    return full;
}

static bool deliver_line(struct watch_state *w, const char *text, size_t len)
{
    if (len == 0)
        return true;
    if (w->light) {
        bool go_on = true;
        if (!first_look(w, text, len, &go_on)) {
            if (!go_on)
                w->stopped = true;
            return go_on;
        }
    }
    json_error_t jerr;
    json_t *ev;
    if (w->keep) {
        ck_error *perr = NULL;
        ev = ck_jsonpick_parse(text, len, w->keep, &perr);
        if (!ev) {
            w->error_msg = xasprintf("bad watch event JSON: %s", perr->msg);
            ck_error_free(perr);
            return false;
        }
    } else {
        ev = json_loadb(text, len, 0, &jerr);
        if (!ev) {
            w->error_msg = xasprintf("bad watch event JSON: %s", jerr.text);
            return false;
        }
    }
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (w->keep && type && !strcmp(type, "ERROR")) {
        /* keep describes objects, not a Status: decode it whole */
        json_decref(ev);
        ev = json_loadb(text, len, 0, &jerr);
        if (!ev) {
            w->error_msg = xasprintf("bad watch event JSON: %s", jerr.text);
            return false;
        }
        type = json_string_value(json_object_get(ev, "type"));
    }
    json_t *obj = json_object_get(ev, "object");
    bool go_on = true;
    if (type && !strcmp(type, "ERROR")) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *msg = json_string_value(json_object_get(obj, "message"));
        if (code == 410)
            w->expired = true;
        free(w->error_msg);
        w->error_msg = xstrdup(msg ? msg : "watch error");
        go_on = false;
    }
    if (go_on && type && obj && !w->cb(w->ctx, type, obj)) {
        w->stopped = true;
        go_on = false;
    }
    json_decref(ev);
    return go_on;
}

/* Body bytes (de-chunked) split into lines: false when the watch is to end (the callback said
 * so, an ERROR event, bad JSON, a line over the limit: w->error_msg / stopped say which). */
static bool body_bytes(struct watch_state *w, const char *p, size_t n)
{
    const char *end = p + n, *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
        bool ok;
        if (w->line.len) {
            if (ck_buf_add(&w->line, p, (size_t)(nl - p)) < 0)
                goto too_long;
            ok = deliver_line(w, w->line.data, w->line.len);
            ck_buf_reset(&w->line);
        } else {
            ok = deliver_line(w, p, (size_t)(nl - p));   /* whole in the read: no copy */
        }
        if (!ok)
            return false;
        p = nl + 1;
    }
    if (ck_buf_add(&w->line, p, (size_t)(end - p)) < 0)
        goto too_long;
    return true;
too_long:
    free(w->error_msg);
    w->error_msg = xstrdup("watch event over the size limit");
    return false;
}

/* Chunked framing: feeds the data to body_bytes.  -1 on bad framing (error_msg set) or when the
 * watch is to end; 0 otherwise (CH_DONE once the last chunk came). */
static int dechunk(struct watch_state *w, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end && w->cs != CH_DONE) {
        switch (w->cs) {
        case CH_TRAILER: {       /* trailer lines are skipped; an empty one ends the body */
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            for (const char *q = p; q < stop; q++)
                if (*q != '\r')
                    w->sizelen = 1;  /* the line is not empty */
            if (!nl) {
                p = end;
                break;
            }
            p = nl + 1;
            if (!w->sizelen)
                w->cs = CH_DONE;
            w->sizelen = 0;
            break;
        }
        case CH_SIZE: {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (w->sizelen + take >= sizeof w->sizebuf)
                goto bad;
            memcpy(w->sizebuf + w->sizelen, p, take);
            w->sizelen += take;
            p += take;
            if (!nl)
                break;
            p++;                                  /* the '\n' */
            size_t len = w->sizelen;
            if (len && w->sizebuf[len - 1] == '\r')
                len--;
            w->sizelen = 0;
            size_t size = 0;
            size_t k = 0;
            for (; k < len; k++) {
                char c = w->sizebuf[k];
                int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
                if (d < 0)
                    break;
                if (size > WATCH_MAX_LINE)
                    goto bad;
                size = size * 16 + (size_t)d;
            }
            if (k == 0 || (k < len && w->sizebuf[k] != ';' && w->sizebuf[k] != ' '))
                goto bad;
            if (size == 0) {
                w->cs = CH_TRAILER;
            } else {
                w->chunk_left = size;
                w->cs = CH_DATA;
            }
            break;
        }
        case CH_DATA: {
            size_t take = (size_t)(end - p) < w->chunk_left ? (size_t)(end - p) : w->chunk_left;
            if (!body_bytes(w, p, take))
                return -1;
            p += take;
            w->chunk_left -= take;
            if (!w->chunk_left) {
                w->cs = CH_DATA_END;
                w->sizelen = 0;
            }
            break;
        }
        case CH_DATA_END:                         /* the CRLF after a chunk's data */
            if (*p == '\r' && w->sizelen == 0) {
                w->sizelen = 1;
                p++;
            } else if (*p == '\n') {
                w->sizelen = 0;
                w->cs = CH_SIZE;
                p++;
            } else {
                goto bad;
            }
            break;
        case CH_DONE:
            break;
        }
    }
    return 0;
bad:
    free(w->error_msg);
    w->error_msg = xstrdup("bad chunked framing in the watch answer");
    return -1;
}

int ck_client_watch(ck_client *c, const char *path, ck_client_watch_cb cb, void *ctx,
                    ck_cancel *cancel, ck_error **err)
{
    return ck_client_watch_pick(c, path, NULL, cb, ctx, cancel, err);
}

int ck_client_watch_pick(ck_client *c, const char *path, const ck_jsonpick *keep,
                         ck_client_watch_cb cb, void *ctx, ck_cancel *cancel,
                         ck_error **err)
{
    return ck_client_watch_peek(c, path, NULL, NULL, keep, cb, ctx, cancel, err);
}

static int64_t now_ms(void)
{
    return ck_now_ns() / 1000000;
}

/* Sends the whole request on the blocking socket (retrying the send timeout's EAGAINs). */
static CURLcode send_all(CURL *h, const char *p, size_t n, ck_cancel *cancel)
{
    while (n) {
        size_t sent = 0;
        CURLcode cc = curl_easy_send(h, p, n, &sent);
        if (ck_cancel_fired(cancel))
            return CURLE_ABORTED_BY_CALLBACK;
        if (cc == CURLE_AGAIN)
            continue;
        if (cc != CURLE_OK)
            return cc;
        p += sent;
        n -= sent;
    }
    return CURLE_OK;
}

int ck_client_watch_peek(ck_client *c, const char *path, const ck_jsonpick *light,
                         ck_client_watch_peek_cb peek, const ck_jsonpick *keep,
                         ck_client_watch_cb cb, void *ctx, ck_cancel *cancel,
                         ck_error **err)
{
    struct watch_state w = {.cb = cb, .ctx = ctx, .keep = keep,
                            .light = peek ? light : NULL, .peek = peek};
    const char *server = ck_client_kubeconfig(c)->server;
    ck_buf_init(&w.line, WATCH_MAX_LINE);
    ck_buf head;
    ck_buf_init(&head, WATCH_MAX_HEAD + WATCH_MAX_ERROR_BODY);
    ck_buf req;
    ck_buf_init(&req, 0);
    int rc = -1, fl = -1;
    bool attached = false;
    curl_socket_t fd = CURL_SOCKET_BAD;
    CURL *h = NULL;
    if (ck_cancel_fired(cancel)) {
        rc = 0;
        goto done;
    }
    h = ck_client_connect_only(c, &fd, err);
    if (!h) {
        ck_error_wrap(err, "watch %s", path);
        goto done;
    }
    /* blocking reads, one recv a wakeup; a fired cancel shuts the socket down */
    fl = fcntl(fd, F_GETFL);
    struct timeval rtv = {.tv_sec = WATCH_SILENT_MS / 1000};
    struct timeval stv = {.tv_sec = WATCH_SEND_MS / 1000, .tv_usec = WATCH_SEND_MS % 1000 * 1000};
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof rtv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv) < 0) {
        ck_error_set(err, CK_E_INTERNAL, "watch %s%s: socket options: %s", server, path,
                     strerror(errno));
        goto done;
    }
    if (ck_cancel_attach(cancel, fd) < 0) {
        rc = 0;                  /* cancelled before it began */
        goto done;
    }
    attached = true;
    size_t fixed_len;
    const char *fixed = ck_client_fixed_headers(c, &fixed_len);
    ck_buf_printf(&req, "GET %s%s HTTP/1.1\r\n", ck_client_prefix(c), path);
    ck_buf_add(&req, fixed, fixed_len);
    ck_buf_addstr(&req, "Accept: application/json\r\n\r\n");
    CURLcode cc = send_all(h, req.data, req.len, cancel);
    OPENSSL_cleanse(req.data, req.len);
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        rc = 0;
        goto done;
    }
    if (cc != CURLE_OK) {
        ck_error_set(err, CK_E_UNAVAILABLE, "watch %s%s: %s", server, path, curl_easy_strerror(cc));
        goto done;
    }

    ck_client_head hd = {0};
    bool have_head = false, eof = false;
    size_t body_left = 0;        /* a Content-Length body: bytes to come */
    int64_t heard = now_ms();
    char buf[65536];
    for (;;) {
        size_t n = 0;
        cc = curl_easy_recv(h, buf, sizeof buf, &n);
        if (ck_cancel_fired(cancel)) {   /* whatever the shut-down socket said */
            rc = 0;
            goto done;
        }
        if (cc == CURLE_AGAIN) {
            if (now_ms() - heard >= WATCH_SILENT_MS) {
                ck_error_set(err, CK_E_UNAVAILABLE, "watch %s%s: nothing heard in %d s", server,
                             path, WATCH_SILENT_MS / 1000);
                goto done;
            }
            continue;
        }
        if (cc != CURLE_OK) {
            ck_error_set(err, CK_E_UNAVAILABLE, "watch %s%s: %s", server, path,
                         curl_easy_strerror(cc));
            goto done;
        }
        heard = now_ms();
        eof = n == 0;
        const char *p = buf;
        if (!have_head || hd.status != 200) {
            /* the head (and an error answer's Status body) is collected whole */
            if (!eof && ck_buf_add(&head, buf, n) < 0) {
                ck_error_set(err, CK_E_UNAVAILABLE, "watch %s%s: answer head too large", server, path);
                goto done;
            }
            if (!have_head) {
                int hr = ck_client_parse_head(head.data, head.len, eof, &hd);
                if (hr < 0) {
                    ck_error_set(err, CK_E_UNAVAILABLE, "watch %s%s: %s", server, path,
                                 eof && !head.len ? "connection closed" : "bad answer");
                    goto done;
                }
                if (hr == 0)
                    continue;
                have_head = true;
            }
            if (hd.status != 200) {
                ck_client_answer a = {0};
                ck_buf_init(&a.body, WATCH_MAX_ERROR_BODY);
                int ar = ck_client_parse_answer(head.data, head.len, eof, WATCH_MAX_ERROR_BODY, &a);
                if (ar == 0) {
                    ck_buf_free(&a.body);
                    continue;
                }
                ck_buf_add(&a.body, "", 1);
                ck_client_status_error(hd.status, ar > 0 ? a.body.data : NULL, "WATCH", path, err);
                ck_buf_free(&a.body);
                goto done;
            }
            /* 200: what came after the head is body */
            p = head.data + hd.used;
            n = head.len - hd.used;
            body_left = hd.clen;
            w.cs = CH_SIZE;
        }
        bool go_on = true, ended = false;
        if (n && hd.chunked) {
            go_on = dechunk(&w, p, n) == 0;
            ended = w.cs == CH_DONE;     /* the server ended the watch */
        } else if (n && hd.has_len) {
            size_t take = n < body_left ? n : body_left;
            go_on = body_bytes(&w, p, take);
            body_left -= take;
            ended = !body_left;
        } else if (n) {
            go_on = body_bytes(&w, p, n);
        }
        if (head.data)
            ck_buf_free(&head);   /* the head was read: no longer needed */
        if (!go_on || ended || eof)
            break;
    }
    if (w.expired) {
        ck_error_set(err, CK_E_EXPIRED, "%s", w.error_msg);
        goto done;
    }
    if (w.error_msg) {
        ck_error_set(err, CK_E_INTERNAL, "watch %s: %s", path, w.error_msg);
        goto done;
    }
    if (!w.stopped && w.line.len)   /* a last event without its newline */
        deliver_line(&w, w.line.data, w.line.len);
    if (!w.stopped && eof && ((hd.chunked && w.cs != CH_DONE) || (hd.has_len && body_left))) {
        ck_error_set(err, CK_E_UNAVAILABLE, "watch %s%s: connection closed mid-answer", server, path);
        goto done;
    }
    rc = 0;
done:
    if (attached)
        ck_cancel_detach(cancel);
    /* libcurl's TLS shutdown at cleanup reads the peer's close_notify expecting a non-blocking
     * socket: on a blocking one it would wait for it up to the receive timeout */
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    free(w.error_msg);
    ck_buf_free(&w.line);
    ck_buf_free(&head);
    ck_buf_free(&req);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}

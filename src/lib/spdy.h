/* spdy.h - SPDY/3.1 framing for both roles (what kubectl's exec/attach/port-forward speak).
 *
 * No I/O here, like websocket.h: ck_spdy_feed parses received bytes and calls back once per
 * frame, with the name/value header block already inflated; the encoders append frames to a
 * ck_buf.  Header blocks share one zlib stream per direction for the whole session, primed with
 * the SPDY/3 dictionary (a protocol constant, built once from its word list), so frames must be
 * encoded in the order they are sent and fed in the order they arrived.
 *
 * Flow control.  SPDY/3.1 gives every stream and the session a 64 KiB window.  The peer that
 * matters here (Go's spdystream under kubectl and kubelet) neither sends WINDOW_UPDATE nor
 * honours one, so enforcing send windows would stall every transfer after 64 KiB.  The session
 * therefore only accounts: send_window follows the peer's SETTINGS/WINDOW_UPDATE, and with
 * flow_control set ck_spdy_consumed emits WINDOW_UPDATEs for data the application has used.
 * Back-pressure in practice comes from the transport (see docs/streams.md).
 *
 * Limits: a frame over max_frame (default 16 MiB) or a header block inflating past 256 KiB or
 * with more than 256 pairs is a protocol error (-1, CK_E_BAD_REQUEST).
 */
#ifndef CK_SPDY_H
#define CK_SPDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "lib/error.h"
#include "lib/util.h"

enum ck_spdy_type {
    CK_SPDY_DATA = 0, CK_SPDY_SYN_STREAM = 1, CK_SPDY_SYN_REPLY = 2, CK_SPDY_RST_STREAM = 3,
    CK_SPDY_SETTINGS = 4, CK_SPDY_PING = 6, CK_SPDY_GOAWAY = 7, CK_SPDY_HEADERS = 8,
    CK_SPDY_WINDOW_UPDATE = 9,
};
#define CK_SPDY_FLAG_FIN 0x01
#define CK_SPDY_FLAG_UNIDIRECTIONAL 0x02
/* RST_STREAM status codes */
#define CK_SPDY_PROTOCOL_ERROR 1
#define CK_SPDY_INVALID_STREAM 2
#define CK_SPDY_REFUSED_STREAM 3
#define CK_SPDY_CANCEL 5
#define CK_SPDY_INTERNAL_ERROR 6
#define CK_SPDY_SETTINGS_INITIAL_WINDOW_SIZE 7
#define CK_SPDY_DEFAULT_WINDOW 65536

typedef struct ck_spdy_header {
    const char *name;     /* lowercase */
    const char *value;    /* several values of one name arrive as separate entries */
} ck_spdy_header;

typedef struct ck_spdy_frame {
    enum ck_spdy_type type;
    uint8_t flags;
    uint32_t stream_id;       /* DATA, SYN_*, RST, HEADERS, WINDOW_UPDATE (0: session) */
    uint32_t assoc_id;        /* SYN_STREAM */
    uint8_t priority;         /* SYN_STREAM, 0..7 */
    uint32_t status;          /* RST_STREAM, GOAWAY */
    uint32_t ping_id;         /* PING */
    uint32_t last_good_id;    /* GOAWAY */
    uint32_t delta;           /* WINDOW_UPDATE */
    const ck_spdy_header *headers;   /* SYN_STREAM, SYN_REPLY, HEADERS */
    size_t nheaders;
    const uint8_t *data;      /* DATA payload */
    size_t len;
    const uint32_t *setting_ids, *setting_values;   /* SETTINGS */
    size_t nsettings;
} ck_spdy_frame;

/* Return non-zero to stop feeding (ck_spdy_feed then returns 1, keeping the rest). */
typedef int (*ck_spdy_frame_cb)(void *ctx, const ck_spdy_frame *f);

typedef struct ck_spdy {
    bool server;
    bool flow_control;        /* emit WINDOW_UPDATEs from ck_spdy_consumed */
    size_t max_frame;
    ck_buf in;
    z_stream tx, rx;
    bool rx_dict_set;
    int64_t send_window;      /* session window the peer granted (accounting only) */
    int32_t peer_initial_window;
    uint64_t recv_unacked;    /* session bytes consumed since the last WINDOW_UPDATE */
    uint32_t next_id;         /* next stream id we would open: odd for clients, even for servers */
} ck_spdy;

void ck_spdy_init(ck_spdy *s, bool server, size_t max_frame);
void ck_spdy_free(ck_spdy *s);
/* 0: all bytes used; 1: a callback stopped; -1: protocol error. */
int ck_spdy_feed(ck_spdy *s, const void *data, size_t len, ck_spdy_frame_cb cb, void *ctx,
                 ck_error **err);

/* First value of a header in a frame (names compared case-insensitively); NULL if absent. */
const char *ck_spdy_frame_header(const ck_spdy_frame *f, const char *name);

/* Encoders.  The header-carrying ones use the session's deflate stream. */
uint32_t ck_spdy_next_stream_id(ck_spdy *s);
void ck_spdy_syn_stream(ck_spdy *s, ck_buf *out, uint32_t id, uint32_t assoc, uint8_t priority,
                        uint8_t flags, const ck_spdy_header *h, size_t n);
void ck_spdy_syn_reply(ck_spdy *s, ck_buf *out, uint32_t id, uint8_t flags,
                       const ck_spdy_header *h, size_t n);
void ck_spdy_headers(ck_spdy *s, ck_buf *out, uint32_t id, uint8_t flags,
                     const ck_spdy_header *h, size_t n);
void ck_spdy_rst_stream(ck_buf *out, uint32_t id, uint32_t status);
void ck_spdy_settings(ck_buf *out, const uint32_t *ids, const uint32_t *values, size_t n);
void ck_spdy_ping(ck_buf *out, uint32_t id);
void ck_spdy_goaway(ck_buf *out, uint32_t last_good_id, uint32_t status);
void ck_spdy_window_update(ck_buf *out, uint32_t id, uint32_t delta);
/* One DATA frame per call; len must be < 2^24 (split bigger writes). */
void ck_spdy_data(ck_buf *out, uint32_t id, uint8_t flags, const void *data, size_t len);
/* Just the 8-byte head of such a frame (for payloads laid out in place). */
void ck_spdy_data_head(uint8_t out[8], uint32_t id, uint8_t flags, size_t len);
/* The application used n bytes of stream id: with flow_control on, append WINDOW_UPDATEs for
 * the stream and the session once half a window has been used. */
void ck_spdy_consumed(ck_spdy *s, ck_buf *out, uint32_t id, size_t n);

/* The SPDY/3 header dictionary (for tests). */
const uint8_t *ck_spdy_dictionary(size_t *len);

#endif

/* etcd.c - the store interface (store.h) over a real etcd 3.x cluster, via its v3 JSON gateway.
 *
 * Every call is one HTTP POST to the gRPC gateway that etcd serves on its client URLs
 * (/v3/kv/range, /v3/kv/txn, /v3/kv/compaction, /v3/watch), made with libcurl; bodies are JSON
 * (jansson) with keys and values base64-encoded and int64 fields as decimal strings, as the gateway
 * expects.  Conditional writes are single transactions, so etcd's revision is the store revision:
 *   create  txn(create_revision(k) == 0 -> put)                      else CK_E_EXISTS
 *   update  txn(create_revision(k) > 0 [&& mod_revision(k) == exp] -> put)     else range(k) to
 *   delete  txn(create_revision(k) > 0 [&& mod_revision(k) == exp] -> delete)  tell NOT_FOUND
 *           from CONFLICT
 * Requests use a small pool of curl easy handles (each keeps its keep-alive connection), so any
 * number of threads may call concurrently.  Endpoints are tried in turn: a request moves to the next
 * endpoint when it cannot connect (any transport failure for reads, which are safe to repeat).
 *
 * A watch is one streaming POST /v3/watch on its own thread driving a curl multi handle, so that
 * cancel can wake it at once (curl_multi_wakeup) and join it.  The stream is a sequence of JSON
 * messages; each message's events become one callback batch.  A compacted start revision ends the
 * watch with CK_E_EXPIRED, a lost connection with CK_E_UNAVAILABLE (the watch cache re-lists).
 * See docs/store-etcd.md.
 */
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base64.h"
#include "lib/log.h"
#include "lib/util.h"

#define ETCD_CONNECT_TIMEOUT_MS 2000L
#define ETCD_REQUEST_TIMEOUT_MS 10000L      /* default; CKUBE_ETCD_TIMEOUT_MS overrides */
#define ETCD_RESPONSE_LIMIT (1024u * 1024 * 1024)   /* a whole-prefix list can be large */
#define ETCD_WATCH_MSG_LIMIT (256u * 1024 * 1024)   /* one watch message (one batch of events) */
#define ETCD_POOL_MAX 64
#define ETCD_LIST_TIMEOUT_MS (10L * 60 * 1000)   /* cap for a (large) list; stalls end sooner */

typedef struct etcd_store {
    ck_store base;
    char **eps;                 /* client URLs without a trailing '/' */
    size_t n_eps;
    char *eps_text;             /* "a, b" for messages */
    atomic_size_t cur;          /* the endpoint that answered last */
    long timeout_ms;
    struct curl_slist *headers;
    pthread_mutex_t mu;         /* guards pool and watches */
    CURL *pool[ETCD_POOL_MAX];
    size_t pool_n;
    struct ck_watch_handle *watches;
} etcd_store;

static const ck_store_ops etcd_ops;

/* ---- JSON helpers ---- */

static json_t *j_bytes(const void *p, size_t n)
{
    char *b = ck_b64_encode(p, n);   /* etcd's JSON carries bytes as padded base64 */
    json_t *j = json_string(b);
    free(b);
    return j;
}

static json_t *j_int64(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return json_string(buf);
}

/* int64 fields arrive as strings; absent means 0 (the gateway omits default values). */
static int64_t j_get_int64(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return json_integer_value(v);
    return 0;
}

static int64_t j_header_rev(json_t *resp)
{
    return j_get_int64(json_object_get(resp, "header"), "revision");
}

/* Decode an mvccpb.KeyValue. */
static int kv_from_json(json_t *j, ck_kv *out, ck_error **err)
{
    memset(out, 0, sizeof *out);
    const char *k = json_string_value(json_object_get(j, "key"));
    const char *v = json_string_value(json_object_get(j, "value"));
    size_t klen;
    if (!k || !(out->key = (char *)ck_b64_decode_lenient(k, strlen(k), &klen)))
        return ck_error_set(err, CK_E_INTERNAL, "etcd: malformed key in response");
    out->value = (char *)ck_b64_decode_lenient(v ? v : "", v ? strlen(v) : 0, &out->value_len);
    if (!out->value) {
        ck_kv_free(out);
        return ck_error_set(err, CK_E_INTERNAL, "etcd: malformed value in response");
    }
    out->create_revision = j_get_int64(j, "create_revision");
    out->mod_revision = j_get_int64(j, "mod_revision");
    return 0;
}

/* The smallest key greater than every key with this prefix; "\0" (= to the end) if none. */
static char *prefix_end(const char *p, size_t *len)
{
    size_t n = strlen(p);
    char *e = xmalloc(n + 1);
    memcpy(e, p, n + 1);
    for (size_t i = n; i-- > 0;) {
        if ((unsigned char)e[i] != 0xff) {
            e[i] = (char)((unsigned char)e[i] + 1);
            *len = i + 1;
            return e;
        }
    }
    e[0] = '\0';
    *len = 1;
    return e;
}

/* ---- HTTP ---- */

typedef struct sink {
    ck_buf buf;
    bool overflow;
} sink;

static size_t sink_write(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *k = ud;
    if (ck_buf_add(&k->buf, p, size * nmemb) < 0) {
        k->overflow = true;
        return 0;
    }
    return size * nmemb;
}

static CURL *pool_get(etcd_store *s)
{
    pthread_mutex_lock(&s->mu);
    CURL *c = s->pool_n ? s->pool[--s->pool_n] : NULL;
    pthread_mutex_unlock(&s->mu);
    if (c)
        return c;
    c = curl_easy_init();
    if (!c) {
        log_error("etcd: curl_easy_init failed (out of memory)");
        abort();
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ckube-store-etcd");
    return c;
}

static void pool_put(etcd_store *s, CURL *c)
{
    pthread_mutex_lock(&s->mu);
    if (s->pool_n < ETCD_POOL_MAX) {
        s->pool[s->pool_n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (c)
        curl_easy_cleanup(c);
}

/* Transport failures after which a request may go to the next endpoint: `any` for requests that are
 * safe to repeat, else only when nothing can have reached the server. */
static bool curl_may_failover(CURLcode cc, bool any)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return true;
    case CURLE_WRITE_ERROR:   /* our own response limit */
        return false;
    default:
        return any;
    }
}

/* Map an etcd error body {"error","message","code"} (code: gRPC status) to a ck_error. */
static int etcd_error(const char *what, long status, json_t *body, ck_error **err)
{
    const char *msg = json_string_value(json_object_get(body, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(body, "error"));
    json_int_t code = json_integer_value(json_object_get(body, "code"));
    if (!msg)
        return ck_error_set(err, CK_E_UNAVAILABLE,
                            "etcd %s: HTTP %ld and no etcd error body (not an etcd v3 endpoint?)",
                            what, status);
    enum ck_error_code c = CK_E_INTERNAL;
    if (strstr(msg, "has been compacted"))
        c = CK_E_EXPIRED;
    else if (strstr(msg, "future revision"))   /* upstream: "Too large resource version" */
        c = CK_E_TIMEOUT;
    else if (strstr(msg, "too large") || strstr(msg, "larger than max") || code == 8)
        c = CK_E_TOO_LARGE;
    else if (code == 14 || strstr(msg, "no leader") || strstr(msg, "leader changed"))
        c = CK_E_UNAVAILABLE;
    else if (code == 4 || strstr(msg, "timed out"))
        c = CK_E_TIMEOUT;
    else if (code == 3)
        c = CK_E_INVALID;
    return ck_error_set(err, c, "etcd %s: %s", what, msg);
}

enum { POST_WRITE = 0, POST_READ = 1, POST_LIST = 3 };   /* bit 0: safe to resend; bit 1: bulk */

/* POST path with req as JSON to the first endpoint that answers; *out = the parsed 200 response.
 * POST_READ/POST_LIST: safe to resend to another endpoint after any transport failure.  A request
 * must finish within timeout_ms; a list (possibly huge) instead fails when no byte arrives for
 * timeout_ms, and within ETCD_LIST_TIMEOUT_MS in all. */
static int etcd_post(etcd_store *s, const char *what, const char *path, json_t *req, int kind,
                     json_t **out, ck_error **err)
{
    bool idempotent = kind & 1;
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body)
        return ck_error_set(err, CK_E_INTERNAL, "etcd %s: cannot encode request", what);
    CURL *c = pool_get(s);
    sink k = {.overflow = false};
    ck_buf_init(&k.buf, ETCD_RESPONSE_LIMIT);
    char errbuf[CURL_ERROR_SIZE];
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    if (kind == POST_LIST) {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ETCD_LIST_TIMEOUT_MS);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (s->timeout_ms + 999) / 1000);
    } else {
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 0L);
    }

    size_t start = atomic_load(&s->cur) % s->n_eps, idx = start;
    CURLcode cc = CURLE_OK;
    size_t tried = 0;
    for (size_t i = 0; i < s->n_eps; i++) {
        idx = (start + i) % s->n_eps;
        tried++;
        char *url = xasprintf("%s%s", s->eps[idx], path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        ck_buf_reset(&k.buf);
        errbuf[0] = '\0';
        cc = curl_easy_perform(c);
        free(url);
        if (cc == CURLE_OK) {
            if (idx != start)
                atomic_store(&s->cur, idx);
            break;
        }
        if (!curl_may_failover(cc, idempotent))
            break;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    pool_put(s, c);
    free(body);

    int rc = -1;
    if (cc != CURLE_OK) {
        if (k.overflow)
            ck_error_set(err, CK_E_TOO_LARGE, "etcd %s: response over %u bytes", what,
                         ETCD_RESPONSE_LIMIT);
        else if (tried > 1)
            ck_error_set(err, CK_E_UNAVAILABLE, "etcd %s: no endpoint answered (%s): %s", what,
                         s->eps_text, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        else
            ck_error_set(err, CK_E_UNAVAILABLE, "etcd %s: %s: %s", what, s->eps[idx],
                         errbuf[0] ? errbuf : curl_easy_strerror(cc));
        ck_buf_free(&k.buf);
        return -1;
    }
    json_error_t jerr;
    json_t *resp = json_loadb(k.buf.data ? k.buf.data : "", k.buf.len, 0, &jerr);
    ck_buf_free(&k.buf);
    if (status != 200) {
        rc = etcd_error(what, status, resp, err);
        json_decref(resp);
        return rc;
    }
    if (!json_is_object(resp)) {
        json_decref(resp);
        return ck_error_set(err, CK_E_INTERNAL, "etcd %s: malformed response: %s", what, jerr.text);
    }
    *out = resp;
    return 0;
}

/* ---- key-value operations ---- */

static int check_key(const char *op, const char *key, ck_error **err)
{
    if (!key || !*key)
        return ck_error_set(err, CK_E_INVALID, "etcd %s: empty key", op);
    return 0;
}

static json_t *compare(const char *target, const char *result, const char *key, const char *field,
                       int64_t v)
{
    json_t *c = json_object();
    json_object_set_new(c, "result", json_string(result));
    json_object_set_new(c, "target", json_string(target));
    json_object_set_new(c, "key", j_bytes(key, strlen(key)));
    json_object_set_new(c, field, j_int64(v));
    return c;
}

static json_t *put_op(const char *key, const void *val, size_t len)
{
    json_t *put = json_object();
    json_object_set_new(put, "key", j_bytes(key, strlen(key)));
    json_object_set_new(put, "value", j_bytes(val, len));
    return json_pack("{s:o}", "request_put", put);
}

/* The first response of a txn: responses[0].<name>. */
static json_t *txn_response(json_t *resp, const char *name)
{
    return json_object_get(json_array_get(json_object_get(resp, "responses"), 0), name);
}

static int etcd_create(ck_store *st, const char *key, const void *val, size_t len, int64_t *rev,
                       ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    if (check_key("create", key, err) < 0)
        return -1;
    json_t *req = json_object();
    json_object_set_new(req, "compare",
                        json_pack("[o]", compare("CREATE", "EQUAL", key, "create_revision", 0)));
    json_object_set_new(req, "success", json_pack("[o]", put_op(key, val, len)));
    json_t *resp = NULL;
    int rc = etcd_post(s, "create", "/v3/kv/txn", req, POST_WRITE, &resp, err);
    json_decref(req);
    if (rc < 0)
        return ck_error_wrap(err, "%s", key);
    if (!json_is_true(json_object_get(resp, "succeeded")))
        rc = ck_error_set(err, CK_E_EXISTS, "etcd create %s: key exists", key);
    else if (rev)
        *rev = j_header_rev(resp);
    json_decref(resp);
    return rc;
}

static int etcd_get(ck_store *st, const char *key, ck_kv *out, ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    if (check_key("get", key, err) < 0)
        return -1;
    json_t *req = json_pack("{s:o}", "key", j_bytes(key, strlen(key)));
    json_t *resp = NULL;
    int rc = etcd_post(s, "get", "/v3/kv/range", req, POST_READ, &resp, err);
    json_decref(req);
    if (rc < 0)
        return ck_error_wrap(err, "%s", key);
    json_t *kv = json_array_get(json_object_get(resp, "kvs"), 0);
    if (!kv)
        rc = ck_error_set(err, CK_E_NOT_FOUND, "etcd get %s: not found", key);
    else
        rc = kv_from_json(kv, out, err);
    json_decref(resp);
    return rc;
}

/* update and delete: a txn guarded by existence and, if expected_rev, by mod_revision; on failure
 * the txn reads the key back so the error can say which guard failed. */
static int guarded_write(etcd_store *s, const char *op, const char *key, json_t *success_op,
                         int64_t expected_rev, json_t **out, ck_error **err)
{
    json_t *cmp = json_array();
    json_array_append_new(cmp, compare("CREATE", "GREATER", key, "create_revision", 0));
    if (expected_rev)
        json_array_append_new(cmp, compare("MOD", "EQUAL", key, "mod_revision", expected_rev));
    json_t *range = json_pack("{s:{s:o,s:b}}", "request_range", "key", j_bytes(key, strlen(key)),
                              "keys_only", 1);
    json_t *req = json_pack("{s:o,s:[o],s:[o]}", "compare", cmp, "success", success_op, "failure",
                            range);
    json_t *resp = NULL;
    int rc = etcd_post(s, op, "/v3/kv/txn", req, POST_WRITE, &resp, err);
    json_decref(req);
    if (rc < 0)
        return ck_error_wrap(err, "%s", key);
    if (!json_is_true(json_object_get(resp, "succeeded"))) {
        json_t *cur = json_array_get(json_object_get(txn_response(resp, "response_range"), "kvs"), 0);
        if (!cur)
            rc = ck_error_set(err, CK_E_NOT_FOUND, "etcd %s %s: not found", op, key);
        else
            rc = ck_error_set(err, CK_E_CONFLICT,
                              "etcd %s %s: expected revision %" PRId64 ", key is at %" PRId64, op,
                              key, expected_rev, j_get_int64(cur, "mod_revision"));
        json_decref(resp);
        return rc;
    }
    *out = resp;
    return 0;
}

static int etcd_update(ck_store *st, const char *key, const void *val, size_t len,
                       int64_t expected_rev, int64_t *rev, ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    if (check_key("update", key, err) < 0)
        return -1;
    json_t *resp = NULL;
    if (guarded_write(s, "update", key, put_op(key, val, len), expected_rev, &resp, err) < 0)
        return -1;
    if (rev)
        *rev = j_header_rev(resp);
    json_decref(resp);
    return 0;
}

static int etcd_delete(ck_store *st, const char *key, int64_t expected_rev, ck_kv *prev,
                       int64_t *rev, ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    if (check_key("delete", key, err) < 0)
        return -1;
    json_t *del = json_pack("{s:{s:o,s:b}}", "request_delete_range", "key",
                            j_bytes(key, strlen(key)), "prev_kv", prev != NULL);
    json_t *resp = NULL;
    if (guarded_write(s, "delete", key, del, expected_rev, &resp, err) < 0)
        return -1;
    int rc = 0;
    if (prev) {
        json_t *p = json_array_get(
            json_object_get(txn_response(resp, "response_delete_range"), "prev_kvs"), 0);
        if (p)
            rc = kv_from_json(p, prev, err);
        else
            memset(prev, 0, sizeof *prev);
    }
    if (rc == 0 && rev)
        *rev = j_header_rev(resp);
    json_decref(resp);
    return rc;
}

static int etcd_list(ck_store *st, const char *prefix, const ck_list_opts *opts, ck_list *out,
                     ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    static const ck_list_opts none;
    if (!opts)
        opts = &none;
    if (!prefix)
        prefix = "";
    memset(out, 0, sizeof *out);
    if (opts->start_after && strncmp(opts->start_after, prefix, strlen(prefix)) != 0)
        return ck_error_set(err, CK_E_INVALID, "etcd list %s: continue key %s is outside the prefix",
                            prefix, opts->start_after);
    size_t end_len;
    char *end = prefix_end(prefix, &end_len);
    json_t *req = json_object();
    if (opts->start_after) /* strictly after: the key followed by a NUL byte */
        json_object_set_new(req, "key", j_bytes(opts->start_after, strlen(opts->start_after) + 1));
    else if (*prefix)
        json_object_set_new(req, "key", j_bytes(prefix, strlen(prefix)));
    else
        json_object_set_new(req, "key", j_bytes("", 1));   /* "\0": the smallest key */
    json_object_set_new(req, "range_end", j_bytes(end, end_len));
    free(end);
    if (opts->revision > 0)
        json_object_set_new(req, "revision", j_int64(opts->revision));
    if (opts->limit > 0 && !opts->count_only)
        json_object_set_new(req, "limit", j_int64((int64_t)opts->limit));
    if (opts->keys_only)
        json_object_set_new(req, "keys_only", json_true());
    if (opts->count_only)
        json_object_set_new(req, "count_only", json_true());
    json_t *resp = NULL;
    int rc = etcd_post(s, "list", "/v3/kv/range", req, POST_LIST, &resp, err);
    json_decref(req);
    if (rc < 0)
        return ck_error_wrap(err, "%s", prefix);
    out->revision = opts->revision > 0 ? opts->revision : j_header_rev(resp);
    int64_t count = j_get_int64(resp, "count");
    if (opts->count_only) {
        out->remaining = count;
        json_decref(resp);
        return 0;
    }
    json_t *kvs = json_object_get(resp, "kvs");
    size_t n = json_array_size(kvs);
    out->items = n ? xcalloc(n, sizeof *out->items) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (kv_from_json(json_array_get(kvs, i), &out->items[out->n], err) < 0) {
            ck_list_free(out);
            json_decref(resp);
            return ck_error_wrap(err, "list %s", prefix);
        }
        out->n++;
    }
    out->more = json_is_true(json_object_get(resp, "more"));
    out->remaining = out->more ? count - (int64_t)n : 0;
    json_decref(resp);
    return 0;
}

static int etcd_current_revision(ck_store *st, int64_t *rev, ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    /* A linearizable count-only read of one (probably absent) key: cheap, and its header carries
     * the cluster's current revision. */
    json_t *req = json_pack("{s:o,s:b}", "key", j_bytes("", 1), "count_only", 1);
    json_t *resp = NULL;
    int rc = etcd_post(s, "current revision", "/v3/kv/range", req, POST_READ, &resp, err);
    json_decref(req);
    if (rc < 0)
        return -1;
    *rev = j_header_rev(resp);
    json_decref(resp);
    return 0;
}

static int etcd_compact(ck_store *st, int64_t revision, ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    if (revision <= 0)
        return ck_error_set(err, CK_E_INVALID, "etcd compact: bad revision %" PRId64, revision);
    json_t *req = json_pack("{s:o}", "revision", j_int64(revision));
    json_t *resp = NULL;
    ck_error *e = NULL;
    int rc = etcd_post(s, "compact", "/v3/kv/compaction", req, POST_READ, &resp, &e);
    json_decref(req);
    if (rc < 0 && e->code == CK_E_EXPIRED) {   /* already compacted at or past it: done */
        ck_error_free(e);
        return 0;
    }
    if (rc < 0) {
        return ck_error_pass(err, e);
    }
    json_decref(resp);
    return 0;
}

/* ---- watch ---- */

struct ck_watch_handle {
    etcd_store *s;
    ck_watch_cb cb;
    void *ctx;
    char *body;                 /* the create_request JSON */
    char *what;                 /* "watch <prefix>" for messages */
    pthread_t thread;
    CURLM *multi;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;                  /* 0 starting, 1 created, -1 failed to start */
    bool go;                    /* watch() has returned the handle: callbacks may run */
    bool ended;                 /* the final (error) callback was made */
    bool detached;              /* cancelled from its own callback: the thread frees itself */
    ck_error *start_err;
    /* stream framing: JSON messages back to back; track nesting to find where one ends */
    ck_buf buf;
    size_t scan, msg_start;
    int depth;
    bool in_str, esc, overflow;
    struct ck_watch_handle *next;
};

static void watch_set_state(ck_watch_handle *w, int state)
{
    pthread_mutex_lock(&w->mu);
    w->state = state;
    pthread_cond_broadcast(&w->cv);
    while (state == 1 && !w->go && !atomic_load(&w->stop))
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* The final callback: the watch ended with this error (taken). */
static void watch_end(ck_watch_handle *w, ck_error *e)
{
    if (w->ended || atomic_load(&w->stop)) {
        ck_error_free(e);
        return;
    }
    w->ended = true;
    log_info("%s ended: %s", w->what, e->msg);
    w->cb(w->ctx, NULL, 0, e);
    ck_error_free(e);
}

static void events_free(ck_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_event_free(&evs[i]);
    free(evs);
}

/* Handle one message of the watch stream; -1 ends the stream. */
static int watch_message(ck_watch_handle *w, json_t *msg)
{
    json_t *res = json_object_get(msg, "result");
    if (!res) {
        json_t *e = json_object_get(msg, "error");
        const char *m = json_string_value(json_object_get(e, "message"));
        ck_error *err = NULL;
        ck_error_set(&err, CK_E_UNAVAILABLE, "etcd %s: %s", w->what, m ? m : "stream error");
        if (w->state == 0) {
            w->start_err = err;
            return -1;
        }
        watch_end(w, err);
        return -1;
    }
    if (json_is_true(json_object_get(res, "created")) && w->state == 0)
        watch_set_state(w, 1);
    if (atomic_load(&w->stop))
        return -1;
    if (json_is_true(json_object_get(res, "canceled"))) {
        int64_t compact = j_get_int64(res, "compact_revision");
        const char *why = json_string_value(json_object_get(res, "cancel_reason"));
        ck_error *err = NULL;
        if (compact > 0)
            ck_error_set(&err, CK_E_EXPIRED,
                         "etcd %s: start revision was compacted (oldest available %" PRId64 ")",
                         w->what, compact);
        else
            ck_error_set(&err, CK_E_UNAVAILABLE, "etcd %s: canceled by server: %s", w->what,
                         why ? why : "no reason given");
        if (w->state == 0) {
            w->start_err = err;
            return -1;
        }
        watch_end(w, err);
        return -1;
    }
    json_t *jevs = json_object_get(res, "events");
    size_t n = json_array_size(jevs);
    if (n == 0)
        return 0;   /* created / progress notification */
    ck_event *evs = xcalloc(n, sizeof *evs);
    for (size_t i = 0; i < n; i++) {
        json_t *je = json_array_get(jevs, i);
        ck_event *ev = &evs[i];
        ck_error *err = NULL;
        const char *type = json_string_value(json_object_get(je, "type"));
        ev->type = type && strcmp(type, "DELETE") == 0 ? CK_EVENT_DELETE : CK_EVENT_PUT;
        if (kv_from_json(json_object_get(je, "kv"), &ev->kv, &err) < 0) {
            events_free(evs, n);
            ck_error_wrap(&err, "%s", w->what);
            watch_end(w, err);
            return -1;
        }
        json_t *prev = json_object_get(je, "prev_kv");
        if (prev && kv_from_json(prev, &ev->prev, &err) < 0) {
            events_free(evs, n);
            ck_error_wrap(&err, "%s", w->what);
            watch_end(w, err);
            return -1;
        }
        ev->revision = ev->kv.mod_revision;
        ev->created = ev->type == CK_EVENT_PUT && ev->kv.create_revision == ev->kv.mod_revision;
        if (ev->type == CK_EVENT_DELETE && ev->prev.key)
            ev->kv.create_revision = ev->prev.create_revision;
    }
    if (!atomic_load(&w->stop) && !w->ended)
        w->cb(w->ctx, evs, n, NULL);
    events_free(evs, n);
    return 0;
}

/* curl write callback: append, cut complete top-level JSON values out of the buffer, handle them. */
static size_t watch_write(char *p, size_t size, size_t nmemb, void *ud)
{
    ck_watch_handle *w = ud;
    size_t n = size * nmemb;
    if (atomic_load(&w->stop))
        return 0;
    if (ck_buf_add(&w->buf, p, n) < 0) {
        w->overflow = true;
        return 0;
    }
    for (; w->scan < w->buf.len; w->scan++) {
        char c = w->buf.data[w->scan];
        if (w->in_str) {
            if (w->esc)
                w->esc = false;
            else if (c == '\\')
                w->esc = true;
            else if (c == '"')
                w->in_str = false;
            continue;
        }
        if (c == '"') {
            w->in_str = true;
        } else if (c == '{' || c == '[') {
            if (w->depth++ == 0)
                w->msg_start = w->scan;
        } else if ((c == '}' || c == ']') && w->depth > 0 && --w->depth == 0) {
            json_error_t jerr;
            json_t *msg = json_loadb(w->buf.data + w->msg_start, w->scan + 1 - w->msg_start, 0,
                                     &jerr);
            int rc;
            if (!msg) {
                ck_error *e = NULL;
                ck_error_set(&e, CK_E_INTERNAL, "etcd %s: malformed stream message: %s", w->what,
                             jerr.text);
                if (w->state == 0)
                    w->start_err = e;
                else
                    watch_end(w, e);
                rc = -1;
            } else {
                rc = watch_message(w, msg);
                json_decref(msg);
            }
            if (rc < 0)
                return 0;
            w->msg_start = w->scan + 1;
        }
    }
    /* drop what has been handled so the buffer holds at most one partial message */
    size_t keep_from = w->depth > 0 ? w->msg_start : w->buf.len;
    if (keep_from > 0) {
        memmove(w->buf.data, w->buf.data + keep_from, w->buf.len - keep_from);
        w->buf.len -= keep_from;
        w->buf.data[w->buf.len] = '\0';
        w->scan -= keep_from;
        w->msg_start = 0;
    }
    return n;
}

static void watch_free(ck_watch_handle *w)
{
    if (w->multi)
        curl_multi_cleanup(w->multi);
    ck_error_free(w->start_err);
    ck_buf_free(&w->buf);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->body);
    free(w->what);
    free(w);
}

/* Run the stream on one endpoint until it ends; returns the curl result. */
static CURLcode watch_run(ck_watch_handle *w, const char *ep, char *errbuf)
{
    CURL *c = curl_easy_init();
    if (!c) {
        log_error("etcd: curl_easy_init failed (out of memory)");
        abort();
    }
    char *url = xasprintf("%s/v3/watch", ep);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, w->s->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, w->body);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ckube-store-etcd");
    errbuf[0] = '\0';
    curl_multi_add_handle(w->multi, c);
    CURLcode result = CURLE_OK;
    bool done = false;
    while (!done && !atomic_load(&w->stop)) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(w->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(w->multi, &left)))
            if (m->msg == CURLMSG_DONE) {
                result = m->data.result;
                done = true;
            }
        if (mc != CURLM_OK) {
            result = CURLE_RECV_ERROR;
            done = true;
        }
        if (!done && !running)
            done = true;   /* finished without a DONE message: treat as a clean close */
        if (!done)
            curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    curl_multi_remove_handle(w->multi, c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    free(url);
    if (result == CURLE_OK && status != 200 && status != 0 && !errbuf[0])
        snprintf(errbuf, CURL_ERROR_SIZE, "HTTP %ld", status);
    return result;
}

static void *watch_thread(void *arg)
{
    ck_watch_handle *w = arg;
    etcd_store *s = w->s;
    char errbuf[CURL_ERROR_SIZE];
    size_t start = atomic_load(&s->cur) % s->n_eps;
    CURLcode cc = CURLE_OK;
    const char *ep = s->eps[start];
    for (size_t i = 0; i < s->n_eps && !atomic_load(&w->stop); i++) {
        ep = s->eps[(start + i) % s->n_eps];
        cc = watch_run(w, ep, errbuf);
        /* once the watch was created, a loss ends it: the caller re-lists and re-watches */
        if (w->state != 0 || w->start_err || !curl_may_failover(cc, true))
            break;
    }
    if (w->state == 0) {
        if (!w->start_err)
            ck_error_set(&w->start_err, CK_E_UNAVAILABLE, "etcd %s: %s: %s", w->what,
                         s->n_eps > 1 ? s->eps_text : ep,
                         errbuf[0] ? errbuf
                         : cc != CURLE_OK ? curl_easy_strerror(cc) : "stream closed before created");
        watch_set_state(w, -1);
        return NULL;
    }
    if (!atomic_load(&w->stop) && !w->ended) {
        ck_error *e = NULL;
        if (w->overflow)
            ck_error_set(&e, CK_E_TOO_LARGE, "etcd %s: message over %u bytes", w->what,
                         ETCD_WATCH_MSG_LIMIT);
        else
            ck_error_set(&e, CK_E_UNAVAILABLE, "etcd %s: connection to %s lost: %s", w->what, ep,
                         errbuf[0] ? errbuf : cc != CURLE_OK ? curl_easy_strerror(cc)
                                                             : "stream closed");
        watch_end(w, e);
    }
    pthread_mutex_lock(&w->mu);
    bool detached = w->detached;
    pthread_mutex_unlock(&w->mu);
    if (detached)
        watch_free(w);
    return NULL;
}

static void watch_unlink(etcd_store *s, ck_watch_handle *w)
{
    pthread_mutex_lock(&s->mu);
    for (ck_watch_handle **pp = &s->watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

static void etcd_watch_cancel(ck_store *st, ck_watch_handle *w)
{
    etcd_store *s = (etcd_store *)st;
    if (!w)
        return;
    watch_unlink(s, w);
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->cv);
    bool self = pthread_equal(pthread_self(), w->thread);
    if (self)   /* from inside our own callback: cannot join ourselves */
        w->detached = true;
    pthread_mutex_unlock(&w->mu);
    curl_multi_wakeup(w->multi);
    if (self) {
        pthread_detach(w->thread);
        return;
    }
    pthread_join(w->thread, NULL);
    watch_free(w);
}

static int etcd_watch(ck_store *st, const char *prefix, int64_t after_rev, ck_watch_cb cb,
                      void *ctx, ck_watch_handle **out, ck_error **err)
{
    etcd_store *s = (etcd_store *)st;
    if (!prefix)
        prefix = "";
    if (after_rev < 0 || !cb)
        return ck_error_set(err, CK_E_INVALID, "etcd watch %s: bad arguments", prefix);
    if (after_rev == 0) {
        /* "from now": pin now to a revision so writes made right after watch() returns are seen */
        if (etcd_current_revision(st, &after_rev, err) < 0)
            return ck_error_wrap(err, "watch %s", prefix);
    }
    size_t end_len;
    char *end = prefix_end(prefix, &end_len);
    json_t *creq = json_object();
    json_object_set_new(creq, "key", *prefix ? j_bytes(prefix, strlen(prefix)) : j_bytes("", 1));
    json_object_set_new(creq, "range_end", j_bytes(end, end_len));
    json_object_set_new(creq, "start_revision", j_int64(after_rev + 1));
    json_object_set_new(creq, "prev_kv", json_true());
    free(end);
    json_t *req = json_pack("{s:o}", "create_request", creq);

    ck_watch_handle *w = xcalloc(1, sizeof *w);
    w->s = s;
    w->cb = cb;
    w->ctx = ctx;
    w->body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    w->what = xasprintf("watch %s", prefix);
    w->multi = curl_multi_init();
    if (!w->body || !w->multi) {
        watch_free(w);
        return ck_error_set(err, CK_E_INTERNAL, "etcd watch %s: cannot set up request", prefix);
    }
    ck_buf_init(&w->buf, ETCD_WATCH_MSG_LIMIT);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    int prc = pthread_create(&w->thread, NULL, watch_thread, w);
    if (prc != 0) {
        watch_free(w);
        errno = prc;
        return ck_error_sys(err, CK_E_INTERNAL, "etcd watch %s: pthread_create", prefix);
    }
    /* Wait until etcd confirms the watch (or it fails), so connection errors are reported here;
     * a server that accepts the connection but never answers counts as unavailable. */
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    int64_t ns = dl.tv_nsec + (s->timeout_ms % 1000) * 1000000L;
    dl.tv_sec += s->timeout_ms / 1000 + ns / 1000000000L;
    dl.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&w->mu);
    while (w->state == 0)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT && w->state == 0) {
            atomic_store(&w->stop, true);
            pthread_cond_broadcast(&w->cv);
            break;
        }
    int state = w->state;
    pthread_mutex_unlock(&w->mu);
    if (state != 1) {
        curl_multi_wakeup(w->multi);
        pthread_join(w->thread, NULL);
        if (!w->start_err)
            ck_error_set(&w->start_err, CK_E_UNAVAILABLE,
                         "etcd watch %s: %s: no answer within %ld ms", prefix, s->eps_text,
                         s->timeout_ms);
        if (err) {
            *err = w->start_err;
            w->start_err = NULL;
        }
        watch_free(w);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    w->next = s->watches;
    s->watches = w;
    pthread_mutex_unlock(&s->mu);
    *out = w;
    pthread_mutex_lock(&w->mu);
    w->go = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* ---- open / close ---- */

static void etcd_close(ck_store *st)
{
    etcd_store *s = (etcd_store *)st;
    if (!s)
        return;
    for (;;) {   /* watches still open: end them (their handles become invalid) */
        pthread_mutex_lock(&s->mu);
        ck_watch_handle *w = s->watches;
        pthread_mutex_unlock(&s->mu);
        if (!w)
            break;
        log_warn("etcd: closing the store with %s still open", w->what);
        etcd_watch_cancel(st, w);
    }
    for (size_t i = 0; i < s->pool_n; i++)
        curl_easy_cleanup(s->pool[i]);
    for (size_t i = 0; i < s->n_eps; i++)
        free(s->eps[i]);
    free(s->eps);
    free(s->eps_text);
    curl_slist_free_all(s->headers);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
}

/* Validate one client URL: http(s)://host[:port] with no query or fragment. */
static int parse_endpoint(const char *ep, ck_error **err)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL;
    int rc = 0;
    if (!u || curl_url_set(u, CURLUPART_URL, ep, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK)
        rc = ck_error_set(err, CK_E_INVALID,
                          "etcd: bad endpoint \"%s\" (want http://host:port or https://host:port)",
                          ep);
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_free(frag);
    curl_url_cleanup(u);
    return rc;
}

ck_store *ck_store_open_etcd(const char *endpoints, ck_error **err)
{
    pthread_once(&curl_once, curl_init_once);
    if (!endpoints || !*endpoints) {
        ck_error_set(err, CK_E_INVALID, "etcd: no endpoints given");
        return NULL;
    }
    etcd_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &etcd_ops;
    pthread_mutex_init(&s->mu, NULL);
    s->timeout_ms = ETCD_REQUEST_TIMEOUT_MS;
    const char *t = getenv("CKUBE_ETCD_TIMEOUT_MS");
    if (t && atol(t) > 0)
        s->timeout_ms = atol(t);
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    s->headers = curl_slist_append(s->headers, "Expect:");   /* no 100-continue round trip */
    ck_buf text;
    ck_buf_init(&text, 0);
    cleanup_free char *copy = xstrdup(endpoints);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        size_t n = strlen(tok);
        while (n > 0 && (isspace((unsigned char)tok[n - 1]) || tok[n - 1] == '/'))
            tok[--n] = '\0';
        if (n == 0)
            continue;
        if (parse_endpoint(tok, err) < 0) {
            ck_buf_free(&text);
            etcd_close(&s->base);
            return NULL;
        }
        s->eps = xrealloc(s->eps, (s->n_eps + 1) * sizeof *s->eps);
        s->eps[s->n_eps++] = xstrdup(tok);
        ck_buf_printf(&text, "%s%s", text.len ? ", " : "", tok);
    }
    s->eps_text = ck_buf_steal(&text);
    if (s->n_eps == 0) {
        ck_error_set(err, CK_E_INVALID, "etcd: no endpoints in \"%s\"", endpoints);
        etcd_close(&s->base);
        return NULL;
    }
    /* Check that some endpoint answers as an etcd v3 server before handing the store out. */
    json_t *req = json_object(), *resp = NULL;
    ck_error *e = NULL;
    int rc = etcd_post(s, "open", "/v3/maintenance/status", req, POST_READ, &resp, &e);
    json_decref(req);
    if (rc < 0) {
        if (e->code == CK_E_UNAVAILABLE && err)   /* already names the endpoints */
            *err = steal_pointer(&e);
        else
            ck_error_set(err, CK_E_UNAVAILABLE, "etcd open %s: not usable: %s", s->eps_text,
                         e->msg);
        ck_error_free(e);
        etcd_close(&s->base);
        return NULL;
    }
    log_info("etcd: connected to %s (etcd %s, revision %" PRId64 ")", s->eps_text,
             json_string_value(json_object_get(resp, "version")) ?: "?", j_header_rev(resp));
    json_decref(resp);
    return &s->base;
}

static const ck_store_ops etcd_ops = {
    .name = "etcd",
    .create = etcd_create,
    .get = etcd_get,
    .update = etcd_update,
    .delete = etcd_delete,
    .list = etcd_list,
    .current_revision = etcd_current_revision,
    .compact = etcd_compact,
    .watch = etcd_watch,
    .watch_cancel = etcd_watch_cancel,
    .close = etcd_close,
};

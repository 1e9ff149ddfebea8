/* podbind.c - the pods/binding write: spec.nodeName set once and a PodScheduled=True condition.
 *
 * A binding changes two small places in a pod, so it is done on the stored text (compact JSON
 * that this server printed) instead of parsing the pod into a tree and printing it back: that
 * parse and print were two thirds of a binding's CPU.  ck_pod_bind_text gives byte for byte what
 * ck_pod_bind_tree + a compact print give (test_apiserver compares the two); anything it does not
 * expect (a spec or status that is not an object, ...) makes it decline, and the caller takes
 * the tree path. */
#include "apiserver/apiserver.h"
#include "lib/util.h"

#include <string.h>

static size_t ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A member of the object whose '{' is at s[obj]: found -> true with the key's opening quote
 * (*k), the value's span [*v, *ve); always *close = the object's '}' (when found, the caller
 * does not need it).  false with *close = n on malformed text. */
static bool member(const char *s, size_t n, size_t obj, const char *key, size_t *k, size_t *v,
                   size_t *ve, size_t *close)
{
    size_t klen = strlen(key);
    size_t i = ws(s, obj + 1, n);
    *close = n;
    if (i < n && s[i] == '}') {
        *close = i;
        return false;
    }
    while (i < n && s[i] == '"') {
        size_t ks = i, kend = ck_json_skip_value(s, i, n);
        i = ws(s, kend, n);
        if (i >= n || s[i] != ':')
            return false;
        size_t vs = ws(s, i + 1, n), vend = ck_json_skip_value(s, vs, n);
        if (vend >= n)
            return false;
        if (kend - ks == klen + 2 && !memcmp(s + ks + 1, key, klen)) {
            *k = ks;
            *v = vs;
            *ve = vend;
            return true;
        }
        i = ws(s, vend, n);
        if (i < n && s[i] == ',') {
            i = ws(s, i + 1, n);
            continue;
        }
        if (i < n && s[i] == '}')
            *close = i;
        return false;
    }
    return false;
}

static bool is_empty_obj(const char *s, size_t n, size_t obj)
{
    size_t i = ws(s, obj + 1, n);
    return i < n && s[i] == '}';
}

/* The condition the binding adds, as a compact print of the tree path's object. */
static void condition(ck_buf *b, const char *ts)
{
    ck_buf_printf(b, "{\"type\":\"PodScheduled\",\"status\":\"True\",\"lastProbeTime\":null,"
                     "\"lastTransitionTime\":\"%s\"}", ts);
}

/* A JSON string's text (quotes included) as a C string; NULL if it is not one. */
static char *string_at(const char *s, size_t v, size_t ve)
{
    if (s[v] != '"')
        return NULL;
    json_t *j = json_loadb(s + v, ve - v, JSON_DECODE_ANY, NULL);
    char *out = json_is_string(j) ? xstrdup(json_string_value(j)) : NULL;
    json_decref(j);
    return out;
}

enum ck_bind_result ck_pod_bind_text(const char *s, size_t n, const char *node, const char *ts,
                                     ck_buf *out, char **assigned)
{
    *assigned = NULL;
    size_t top = ws(s, 0, n), k, close;
    if (top >= n || s[top] != '{')
        return CK_BIND_DECLINE;
    /* metadata.deletionTimestamp (the tree path: deleting only if metadata is an object) */
    size_t mv, mve;
    bool has_meta = member(s, n, top, "metadata", &k, &mv, &mve, &close);
    if (!has_meta && close == n)
        return CK_BIND_DECLINE;
    if (has_meta && s[mv] != '{')
        return CK_BIND_DECLINE;
    size_t sv, sve;
    if (!member(s, n, top, "spec", &k, &sv, &sve, &close) || s[sv] != '{')
        return CK_BIND_DECLINE;
    size_t nk, nv, nve, spec_close;
    bool has_node = member(s, n, sv, "nodeName", &nk, &nv, &nve, &spec_close);
    if (!has_node && spec_close == n)
        return CK_BIND_DECLINE;
    if (has_node) {
        char *cur = string_at(s, nv, nve);
        if (cur && *cur) {
            *assigned = cur;
            return CK_BIND_ASSIGNED;
        }
        free(cur);
    }
    if (has_meta) {
        size_t dv, dve, mclose;
        if (member(s, n, mv, "deletionTimestamp", &k, &dv, &dve, &mclose))
            return CK_BIND_DELETING;
        if (mclose == n)
            return CK_BIND_DECLINE;
    }
    size_t stv = 0, stve = 0, top_close;
    bool has_status = member(s, n, top, "status", &k, &stv, &stve, &top_close);
    if (!has_status && top_close == n)
        return CK_BIND_DECLINE;
    if (has_status && s[stv] != '{')
        return CK_BIND_DECLINE;
    size_t cv = 0, cve = 0, st_close = 0;
    bool has_conds = false;
    if (has_status) {
        has_conds = member(s, n, stv, "conditions", &k, &cv, &cve, &st_close);
        if (!has_conds && st_close == n)
            return CK_BIND_DECLINE;
        if (has_conds && s[cv] != '[')
            return CK_BIND_DECLINE;
    }
    /* the edits, in text order: nodeName (in spec), then status */
    json_t *nj = json_string(node);
    if (!nj)
        return CK_BIND_DECLINE;
    char *nq = json_dumps(nj, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(nj);
    if (!nq)
        return CK_BIND_DECLINE;
    /* pieces: [0, a) + A + [a2, b) + B + [b2, n) where A edits spec and B edits status;
     * spec comes before or after status in the text, so order the two edits */
    struct edit {
        size_t from, to;   /* replaced span */
        ck_buf text;
    } ed[2];
    ck_buf_init(&ed[0].text, 0);
    ck_buf_init(&ed[1].text, 0);
    if (has_node) {
        ed[0].from = nv;
        ed[0].to = nve;
        ck_buf_add(&ed[0].text, nq, strlen(nq));
    } else {
        ed[0].from = ed[0].to = spec_close;
        ck_buf_printf(&ed[0].text, "%s\"nodeName\":%s", is_empty_obj(s, n, sv) ? "" : ",", nq);
    }
    free(nq);
    enum ck_bind_result rc = CK_BIND_OK;
    if (!has_status) {
        ed[1].from = ed[1].to = top_close;
        ck_buf_printf(&ed[1].text, "%s\"status\":{\"conditions\":[", is_empty_obj(s, n, top) ? "" : ",");
        condition(&ed[1].text, ts);
        ck_buf_add(&ed[1].text, "]}", 2);
    } else if (!has_conds) {
        ed[1].from = ed[1].to = st_close;
        ck_buf_printf(&ed[1].text, "%s\"conditions\":[", is_empty_obj(s, n, stv) ? "" : ",");
        condition(&ed[1].text, ts);
        ck_buf_add(&ed[1].text, "]", 1);
    } else {
        /* the array again without its first PodScheduled element, the new one appended */
        ed[1].from = cv;
        ed[1].to = cve;
        ck_buf_add(&ed[1].text, "[", 1);
        bool removed = false, any = false;
        size_t i = ws(s, cv + 1, cve);
        while (i < cve && s[i] != ']') {
            size_t e = i, ee = ck_json_skip_value(s, i, cve);
            if (ee >= cve) {
                rc = CK_BIND_DECLINE;
                break;
            }
            bool drop = false;
            if (!removed && s[e] == '{') {
                size_t tk, tv, tve, tclose;
                if (member(s, cve, e, "type", &tk, &tv, &tve, &tclose)) {
                    char *t = string_at(s, tv, tve);
                    drop = t && !strcmp(t, "PodScheduled");
                    free(t);
                } else if (tclose == cve) {
                    rc = CK_BIND_DECLINE;
                    break;
                }
            }
            if (drop) {
                removed = true;
            } else {
                if (any)
                    ck_buf_add(&ed[1].text, ",", 1);
                ck_buf_add(&ed[1].text, s + e, ee - e);
                any = true;
            }
            i = ws(s, ee, cve);
            if (i < cve && s[i] == ',')
                i = ws(s, i + 1, cve);
        }
        if (any)
            ck_buf_add(&ed[1].text, ",", 1);
        condition(&ed[1].text, ts);
        ck_buf_add(&ed[1].text, "]", 1);
    }
    if (rc == CK_BIND_OK) {
        int first = ed[0].from <= ed[1].from ? 0 : 1;
        struct edit *a = &ed[first], *b = &ed[1 - first];
        if (a->to > b->from) {
            rc = CK_BIND_DECLINE;   /* overlapping spans: not a pod this server printed */
        } else {
            ck_buf_add(out, s, a->from);
            ck_buf_add(out, a->text.data ? a->text.data : "", a->text.len);
            ck_buf_add(out, s + a->to, b->from - a->to);
            ck_buf_add(out, b->text.data ? b->text.data : "", b->text.len);
            ck_buf_add(out, s + b->to, n - b->to);
        }
    }
    ck_buf_free(&ed[0].text);
    ck_buf_free(&ed[1].text);
    return rc;
}

enum ck_bind_result ck_pod_bind_tree(json_t *pod, const char *node, const char *ts, char **assigned)
{
    *assigned = NULL;
    json_t *spec = json_object_get(pod, "spec");
    const char *cur = json_string_value(json_object_get(spec, "nodeName"));
    if (cur && *cur) {
        *assigned = xstrdup(cur);
        return CK_BIND_ASSIGNED;
    }
    if (json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp"))
        return CK_BIND_DELETING;
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(pod, "spec", spec);
    }
    json_object_set_new(spec, "nodeName", json_string(node));
    json_t *status = json_object_get(pod, "status");
    if (!json_is_object(status)) {
        status = json_object();
        json_object_set_new(pod, "status", status);
    }
    json_t *conds = json_object_get(status, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(status, "conditions", conds);
    }
    size_t i;
    json_t *cd;
    json_array_foreach(conds, i, cd) {
        const char *t = json_string_value(json_object_get(cd, "type"));
        if (t && !strcmp(t, "PodScheduled")) {
            json_array_remove(conds, i);
            break;
        }
    }
    json_array_append_new(conds, json_pack("{s:s,s:s,s:n,s:s}", "type", "PodScheduled", "status",
                                           "True", "lastProbeTime", "lastTransitionTime", ts));
    return CK_BIND_OK;
}

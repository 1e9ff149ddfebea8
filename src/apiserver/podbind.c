/* podbind.c - the pods/binding write: spec.nodeName set once and a PodScheduled=True condition.
 *
 * A binding changes two small places in a pod, so it is done on the stored text (compact JSON
 * that this server printed) instead of parsing the pod into a tree and printing it back: that
 * parse and print were two thirds of a binding's CPU.  ck_pod_bind_text gives byte for byte what
 * ck_pod_bind_tree + a compact print give (test_apiserver compares the two); anything it does not
 * expect (a spec or status that is not an object, ...) makes it decline, and the caller takes
 * the tree path.  The pod is read in one pass: the top level once, and metadata, spec and status
 * each by the scan that finds the member the binding needs in it (test_pod_bind_text_random
 * holds it to the tree path on random pods). */
#include "apiserver/apiserver.h"
#include "lib/util.h"

#include <string.h>

static size_t ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* One pass over the object whose '{' is at s[obj]: the first member named KEY, if any (*v, *ve:
 * its value's span; *v stays 0 when there is none), and the object's '}' as the result; n on
 * malformed text.  Every byte of the object is looked at once (the old search for each member
 * skipped the members before it again, ~6 walks of a pod's top level a binding). */
static size_t scan_obj(const char *s, size_t n, size_t obj, const char *key, size_t *v, size_t *ve)
{
    size_t klen = key ? strlen(key) : 0;
    size_t i = ws(s, obj + 1, n);
    *v = *ve = 0;
    if (i < n && s[i] == '}')
        return i;
    while (i < n && s[i] == '"') {
        size_t ks = i, kend = ck_json_skip_value(s, i, n);
        i = ws(s, kend, n);
        if (i >= n || s[i] != ':')
            return n;
        size_t vs = ws(s, i + 1, n), vend = ck_json_skip_value(s, vs, n);
        if (vend >= n)
            return n;
        if (key && !*v && kend - ks == klen + 2 && !memcmp(s + ks + 1, key, klen)) {
            *v = vs;
            *ve = vend;
        }
        i = ws(s, vend, n);
        if (i < n && s[i] == ',') {
            i = ws(s, i + 1, n);
            continue;
        }
        return i < n && s[i] == '}' ? i : n;
    }
    return n;
}

/* printable ASCII only, neither '"' nor '\\': the same bytes inside a JSON string as outside */
static bool plain_string_n(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e || p[i] == '"' || p[i] == '\\')
            return false;
    return true;
}

/* "..." holding such bytes: its value is its text without the quotes (no decode needed) */
static bool plain_string(const char *s, size_t v, size_t ve)
{
    return ve >= v + 2 && s[v] == '"' && s[ve - 1] == '"' && plain_string_n(s + v + 1, ve - v - 2);
}

static bool is_empty_obj(const char *s, size_t n, size_t obj)
{
    size_t i = ws(s, obj + 1, n);
    return i < n && s[i] == '}';
}

/* The condition the binding adds, as a compact print of the tree path's object. */
static void condition(ck_buf *b, const char *ts)
{
    ck_buf_addstr(b, "{\"type\":\"PodScheduled\",\"status\":\"True\",\"lastProbeTime\":null,"
                     "\"lastTransitionTime\":\"");
    ck_buf_addstr(b, ts);
    ck_buf_add(b, "\"}", 2);
}

/* A JSON string's text (quotes included) as a C string; NULL if it is not one. */
static char *string_at(const char *s, size_t v, size_t ve)
{
    if (s[v] != '"')
        return NULL;
    if (plain_string(s, v, ve))
        return xstrndup(s + v + 1, ve - v - 2);
    json_t *j = json_loadb(s + v, ve - v, JSON_DECODE_ANY, NULL);
    char *out = json_is_string(j) ? xstrdup(json_string_value(j)) : NULL;
    json_decref(j);
    return out;
}

enum ck_bind_result ck_pod_bind_text(const char *s, size_t n, const char *node, const char *ts,
                                     ck_buf *out, char **assigned)
{
    *assigned = NULL;
    size_t top = ws(s, 0, n);
    if (top >= n || s[top] != '{')
        return CK_BIND_DECLINE;
    /* the top level once; metadata, spec and status are walked by the scan that finds the member
     * wanted in each (deletionTimestamp, nodeName, conditions), which also finds their end */
    size_t mv = 0, dv = 0, dve = 0;   /* metadata, its deletionTimestamp */
    size_t sv = 0, nv = 0, nve = 0, spec_close = n;   /* spec, its nodeName */
    size_t stv = 0, cv = 0, cve = 0, st_close = n;   /* status, its conditions */
    size_t top_close = n;
    size_t i = ws(s, top + 1, n);
    if (i < n && s[i] == '}')
        top_close = i;
    while (top_close == n) {
        if (i >= n || s[i] != '"')
            return CK_BIND_DECLINE;
        size_t ks = i, kend = ck_json_skip_value(s, i, n);
        i = ws(s, kend, n);
        if (i >= n || s[i] != ':')
            return CK_BIND_DECLINE;
        size_t vs = ws(s, i + 1, n), vend;
        size_t klen = kend - ks >= 2 ? kend - ks - 2 : 0;
        const char *k = s + ks + 1;
#define KEY_IS(lit) (klen == sizeof lit - 1 && !memcmp(k, lit, klen))
        if (!mv && KEY_IS("metadata") && vs < n && s[vs] == '{') {
            size_t c = scan_obj(s, n, vs, "deletionTimestamp", &dv, &dve);
            vend = c < n ? c + 1 : n;
            mv = vs;
        } else if (!sv && KEY_IS("spec") && vs < n && s[vs] == '{') {
            spec_close = scan_obj(s, n, vs, "nodeName", &nv, &nve);
            vend = spec_close < n ? spec_close + 1 : n;
            sv = vs;
        } else if (!stv && KEY_IS("status") && vs < n && s[vs] == '{') {
            st_close = scan_obj(s, n, vs, "conditions", &cv, &cve);
            vend = st_close < n ? st_close + 1 : n;
            stv = vs;
        } else {
            /* the first metadata, spec or status not an object: the tree path's shape */
            if ((!mv && KEY_IS("metadata")) || (!sv && KEY_IS("spec")) || (!stv && KEY_IS("status")))
                return CK_BIND_DECLINE;
            vend = ck_json_skip_value(s, vs, n);
        }
#undef KEY_IS
        if (vend >= n)
            return CK_BIND_DECLINE;
        i = ws(s, vend, n);
        if (i < n && s[i] == ',') {
            i = ws(s, i + 1, n);
            continue;
        }
        if (i >= n || s[i] != '}')
            return CK_BIND_DECLINE;
        top_close = i;
    }
    if (!sv)
        return CK_BIND_DECLINE;
    bool has_node = nv != 0, has_status = stv != 0, has_conds = cv != 0;
    if (has_node) {
        char *cur = string_at(s, nv, nve);
        if (cur && *cur) {
            *assigned = cur;
            return CK_BIND_ASSIGNED;
        }
        free(cur);
    }
    if (dv)
        return CK_BIND_DELETING;
    if (has_conds && s[cv] != '[')
        return CK_BIND_DECLINE;
    /* the edits, in text order: nodeName (in spec), then status */
    char *nq = NULL;
    size_t nlen = strlen(node);
    if (nlen < 4096 && plain_string_n(node, nlen)) {   /* the JSON text is the quoted bytes */
        nq = xmalloc(nlen + 3);
        nq[0] = '"';
        memcpy(nq + 1, node, nlen);
        nq[nlen + 1] = '"';
        nq[nlen + 2] = '\0';
    } else {
        json_t *nj = json_string(node);
        if (!nj)
            return CK_BIND_DECLINE;
        nq = json_dumps(nj, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(nj);
        if (!nq)
            return CK_BIND_DECLINE;
    }
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
        ck_buf_addstr(&ed[0].text, is_empty_obj(s, n, sv) ? "\"nodeName\":" : ",\"nodeName\":");
        ck_buf_addstr(&ed[0].text, nq);
    }
    free(nq);
    enum ck_bind_result rc = CK_BIND_OK;
    if (!has_status) {
        ed[1].from = ed[1].to = top_close;
        ck_buf_addstr(&ed[1].text, is_empty_obj(s, n, top) ? "\"status\":{\"conditions\":[" : ",\"status\":{\"conditions\":[");
        condition(&ed[1].text, ts);
        ck_buf_add(&ed[1].text, "]}", 2);
    } else if (!has_conds) {
        ed[1].from = ed[1].to = st_close;
        ck_buf_addstr(&ed[1].text, is_empty_obj(s, n, stv) ? "\"conditions\":[" : ",\"conditions\":[");
        condition(&ed[1].text, ts);
        ck_buf_add(&ed[1].text, "]", 1);
    } else {
        /* the array again without its first PodScheduled element, the new one appended */
        ed[1].from = cv;
        ed[1].to = cve;
        ck_buf_add(&ed[1].text, "[", 1);
        bool removed = false, any = false;
        size_t j = ws(s, cv + 1, cve);
        while (j < cve && s[j] != ']') {
            size_t e = j, ee = ck_json_skip_value(s, j, cve);
            if (ee >= cve) {
                rc = CK_BIND_DECLINE;
                break;
            }
            bool drop = false;
            if (!removed && s[e] == '{') {
                size_t tv, tve;
                if (scan_obj(s, cve, e, "type", &tv, &tve) >= ee) {
                    rc = CK_BIND_DECLINE;
                    break;
                }
                if (tv && plain_string(s, tv, tve)) {
                    drop = tve - tv == sizeof "\"PodScheduled\"" - 1 &&
                           !memcmp(s + tv, "\"PodScheduled\"", tve - tv);
                } else if (tv) {
                    char *t = string_at(s, tv, tve);
                    drop = t && !strcmp(t, "PodScheduled");
                    free(t);
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
            j = ws(s, ee, cve);
            if (j < cve && s[j] == ',')
                j = ws(s, j + 1, cve);
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

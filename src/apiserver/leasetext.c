/* leasetext.c - a Lease renewal (merge patch of string fields under spec by the manager that owns
 * them) done on the stored text.
 *
 * 5,000 nodes renew their Leases every 10 s: ~500 merge patches a second that change one
 * timestamp.  The tree path parses the Lease, deep-copies it for the merge, walks it for types,
 * defaults, validation and managedFields, and prints it back: ~200k instructions for ~60 changed
 * bytes.  ck_lease_renew_text gives byte for byte what that path stores (test_apiserver holds
 * the two together) by replacing the changed spec values and the writer's managedFields time in
 * the stored compact JSON.  It declines (returns 0; the caller takes the tree path) on anything
 * it does not know to leave as the tree path would: a patch other than {"spec":{...}} of known
 * fields, an integer or type change, a new field, nothing changed (the no-op path answers), a
 * field another manager owns or the writer does not, metadata the update path would change
 * (generation, empty lists, deletion), unknown fields (the tree path warns), JSON escapes where
 * it compares names, or managedFields entries not in the normalized shape the tree path prints.
 * Like the list and watch paths, it relies on stored values being this server's compact prints. */
#include "apiserver/apiserver.h"
#include "apiserver/codec.h"
#include "lib/util.h"

#include <string.h>

#define MAX_MEMBERS 32
#define LEASE_API_VERSION "coordination.k8s.io/v1"

typedef struct {
    size_t ks, ke;   /* the key with its quotes: s[ks] == '"', s[ke - 1] == '"' */
    size_t vs, ve;   /* the value */
} span;

static size_t ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The members of the object at s[o] ('{') into m[]; their count, or -1 if the text is not a
 * well-formed object or has more than MAX_MEMBERS members. */
static int members(const char *s, size_t n, size_t o, span *m)
{
    if (o >= n || s[o] != '{')
        return -1;
    size_t i = ws(s, o + 1, n);
    if (i < n && s[i] == '}')
        return 0;
    int c = 0;
    while (i < n && s[i] == '"' && c < MAX_MEMBERS) {
        size_t ke = ck_json_skip_value(s, i, n);
        if (ke >= n || ke == i)
            return -1;
        size_t colon = ws(s, ke, n);
        if (colon >= n || s[colon] != ':')
            return -1;
        size_t vs = ws(s, colon + 1, n), ve = ck_json_skip_value(s, vs, n);
        if (ve >= n || ve == vs)
            return -1;
        m[c++] = (span){i, ke, vs, ve};
        i = ws(s, ve, n);
        if (i < n && s[i] == '}')
            return c;
        if (i >= n || s[i] != ',')
            return -1;
        i = ws(s, i + 1, n);
    }
    return -1;
}

/* the key of m is exactly `key` (no escapes) */
static bool key_is(const char *s, const span *m, const char *key)
{
    size_t l = strlen(key);
    return m->ke - m->ks == l + 2 && !memcmp(s + m->ks + 1, key, l);
}

static bool val_is(const char *s, const span *m, const char *text)
{
    size_t l = strlen(text);
    return m->ve - m->vs == l && !memcmp(s + m->vs, text, l);
}

static const span *find(const char *s, const span *m, int c, const char *key)
{
    for (int i = 0; i < c; i++)
        if (key_is(s, &m[i], key))
            return &m[i];
    return NULL;
}

/* a plain string value (no escapes): its content */
static bool plain_string(const char *s, const span *m, const char **p, size_t *len)
{
    if (s[m->vs] != '"' || m->ve - m->vs < 2)
        return false;
    if (memchr(s + m->vs + 1, '\\', m->ve - m->vs - 2))
        return false;
    *p = s + m->vs + 1;
    *len = m->ve - m->vs - 2;
    return true;
}

/* no key occurs twice and every key is one of the space-separated words of `known` */
static bool keys_known(const char *s, const span *m, int c, const char *known)
{
    for (int i = 0; i < c; i++) {
        if (memchr(s + m[i].ks + 1, '\\', m[i].ke - m[i].ks - 2))
            return false;
        char k[64];
        size_t l = m[i].ke - m[i].ks - 2;
        if (l == 0 || l >= sizeof k)
            return false;
        memcpy(k, s + m[i].ks + 1, l);
        k[l] = 0;
        if (!ck_word_in(known, k))
            return false;
        for (int j = 0; j < i; j++)
            if (m[j].ke - m[j].ks == m[i].ke - m[i].ks && !memcmp(s + m[j].ks, s + m[i].ks, l + 2))
                return false;
    }
    return true;
}

/* apply.c's fields_nonempty on FieldsV1 text: some member other than "." is {} or holds "." or
 * is itself non-empty (an entry for which this is false is dropped by the tree path). */
static bool fields_nonempty(const char *s, size_t n, size_t o, int depth)
{
    span m[MAX_MEMBERS];
    int c = depth < 16 ? members(s, n, o, m) : -1;
    for (int i = 0; i < c; i++) {
        if (key_is(s, &m[i], ".") || s[m[i].vs] != '{')
            continue;
        span k[MAX_MEMBERS];
        int kc = members(s, n, m[i].vs, k);
        if (kc == 0 || (kc > 0 && find(s, k, kc, ".")) || fields_nonempty(s, n, m[i].vs, depth + 1))
            return true;
    }
    return false;
}

/* One managedFields entry, as apply.c's entries_store prints it. */
typedef struct {
    size_t s, e;                 /* the entry's text */
    const char *f[5];            /* operation, time, manager, apiVersion, subresource (entry_cmp's order) */
    size_t fl[5];
    const span *time, *fields;
} entry;

enum { F_OP, F_TIME, F_MANAGER, F_API, F_SUB };

/* parse the entry at s[o]; false unless its members are exactly entries_store's, in its order */
static bool entry_parse(const char *s, size_t n, size_t o, size_t e, entry *x, span *mem)
{
    static const char *const order[] = {"manager", "operation", "apiVersion", "time",
                                        "fieldsType", "fieldsV1", "subresource"};
    static const int field_of[] = {F_MANAGER, F_OP, F_API, F_TIME, -1, -1, F_SUB};
    int c = members(s, n, o, mem);
    if (c < 4)
        return false;
    x->s = o;
    x->e = e;
    memset(x->f, 0, sizeof x->f);
    memset(x->fl, 0, sizeof x->fl);
    x->time = x->fields = NULL;
    bool type = false;
    size_t want = 0;
    for (int i = 0; i < c; i++) {
        while (want < ARRAY_SIZE(order) && !key_is(s, &mem[i], order[want]))
            want++;
        if (want == ARRAY_SIZE(order))
            return false;
        const span *m = &mem[i];
        if (!strcmp(order[want], "fieldsType")) {
            if (!val_is(s, m, "\"FieldsV1\""))
                return false;
            type = true;
        } else if (!strcmp(order[want], "fieldsV1")) {
            if (s[m->vs] != '{' || !fields_nonempty(s, n, m->vs, 0))
                return false;
            x->fields = m;
        } else {
            int f = field_of[want];
            if (!plain_string(s, m, &x->f[f], &x->fl[f]))
                return false;
            if (f == F_TIME)
                x->time = m;
        }
        want++;
    }
    /* entries_store always prints manager, operation, fieldsType and fieldsV1 */
    return x->f[F_MANAGER] && x->f[F_OP] && x->fields && type;
}

static int cmp_text(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a ? a : "", b ? b : "", al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int entry_cmp(const entry *p, const entry *q)
{
    for (int f = 0; f < 5; f++) {
        int c = cmp_text(p->f[f], p->fl[f], q->f[f], q->fl[f]);
        if (c)
            return c;
    }
    return 0;
}

static bool eq_text(const char *a, size_t al, const char *b)
{
    return a && al == strlen(b) && !memcmp(a, b, al);
}

/* The FieldsV1 at s[o] has "f:spec" -> "f:<key>"; with exact, that member is {} (owned). */
static bool owns(const char *s, size_t n, size_t o, const char *key, bool *exact)
{
    span m[MAX_MEMBERS], k[MAX_MEMBERS];
    int c = members(s, n, o, m);
    const span *sp = c > 0 ? find(s, m, c, "f:spec") : NULL;
    *exact = false;
    if (!sp || s[sp->vs] != '{')
        return false;
    int kc = members(s, n, sp->vs, k);
    char fk[80];
    snprintf(fk, sizeof fk, "f:%s", key);
    const span *f = kc > 0 ? find(s, k, kc, fk) : NULL;
    if (!f)
        return false;
    *exact = val_is(s, f, "{}");
    return true;
}

/* a scalar's compact print (ck_json_print prints objects and arrays only: print [v], unwrap) */
static char *scalar_text(const json_t *v)
{
    json_t *a = json_array();
    json_array_append((json_t *)a, (json_t *)v);
    size_t len = 0;
    char *t = ck_json_print(a, &len);
    json_decref(a);
    if (!t || len < 2) {
        free(t);
        return NULL;
    }
    memmove(t, t + 1, len - 2);
    t[len - 2] = 0;
    return t;
}

typedef struct {
    size_t s, e;
    char *text;      /* replaces s[s..e) */
} edit;

static int edit_cmp(const void *a, const void *b)
{
    const edit *p = a, *q = b;
    return (p->s > q->s) - (p->s < q->s);
}

static const char *const spec_strings = "holderIdentity acquireTime renewTime strategy preferredHolder";
static const char *const spec_known =
    "holderIdentity leaseDurationSeconds acquireTime renewTime leaseTransitions strategy preferredHolder";
static const char *const meta_known =
    "name generateName namespace uid creationTimestamp labels annotations ownerReferences "
    "finalizers managedFields";

int ck_lease_renew_text(const char *s, size_t n, const json_t *patch, const char *manager,
                        const char *now, ck_buf *out)
{
    /* the patch: {"spec": {known field: string or (unchanged) integer, ...}} */
    const json_t *pspec = json_object_get(patch, "spec");
    if (!manager || !*manager)
        manager = "unknown";   /* as ck_managed_fields_record names a client without a name */
    if (!json_is_object(patch) || json_object_size(patch) != 1 || !json_is_object(pspec) ||
        !json_object_size(pspec) || json_object_size(pspec) > 8 ||
        strpbrk(manager, "\"\\") || strlen(now) != 20)
        return 0;
    for (const char *p = manager; *p; p++)
        if ((unsigned char)*p < 0x20)
            return 0;
    size_t top = ws(s, 0, n);
    span tm[MAX_MEMBERS], sm[MAX_MEMBERS], mm[MAX_MEMBERS];
    int tc = members(s, n, top, tm);
    if (tc < 0 || !keys_known(s, tm, tc, "apiVersion kind metadata spec"))
        return 0;
    const span *av = find(s, tm, tc, "apiVersion"), *kind = find(s, tm, tc, "kind");
    const span *meta = find(s, tm, tc, "metadata"), *spec = find(s, tm, tc, "spec");
    if (!av || !val_is(s, av, "\"" LEASE_API_VERSION "\"") || !kind || !val_is(s, kind, "\"Lease\"") ||
        !meta || !spec)
        return 0;
    int sc = members(s, n, spec->vs, sm), mc = members(s, n, meta->vs, mm);
    if (sc < 0 || mc < 0 || !keys_known(s, sm, sc, spec_known) || !keys_known(s, mm, mc, meta_known))
        return 0;
    /* what ck_meta_on_update would drop (empty lists and maps) */
    for (int i = 0; i < mc; i++)
        if (val_is(s, &mm[i], "[]") || val_is(s, &mm[i], "{}") || val_is(s, &mm[i], "null"))
            return 0;
    /* ownerReferences items with fields the decoder does not know would be warned about */
    const span *refs = find(s, mm, mc, "ownerReferences");
    if (refs) {
        if (s[refs->vs] != '[')
            return 0;
        size_t r = ws(s, refs->vs + 1, n);
        while (r < refs->ve && s[r] != ']') {
            span om[MAX_MEMBERS];
            int oc = members(s, n, r, om);
            if (oc < 0 || !keys_known(s, om, oc, "apiVersion kind name uid controller blockOwnerDeletion"))
                return 0;
            r = ws(s, ck_json_skip_value(s, r, n), n);
            if (r < n && s[r] == ',')
                r = ws(s, r + 1, n);
            else if (r >= n || s[r] != ']')
                return 0;
        }
    }
    const span *mf = find(s, mm, mc, "managedFields");
    if (!mf || s[mf->vs] != '[')
        return 0;

    edit edits[10];
    size_t ne = 0;
    const char *changed[8];
    size_t nc = 0;
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)pspec, k, v) {
        const span *cur = find(s, sm, sc, k);
        if (!cur || !ck_word_in(spec_known, k))
            goto out;
        bool str = ck_word_in(spec_strings, k);
        if (str ? !json_is_string(v) : !json_is_integer(v))
            goto out;
        char *text = scalar_text(v);
        size_t len = text ? strlen(text) : 0;
        if (!text)
            goto out;
        if (len == cur->ve - cur->vs && !memcmp(text, s + cur->vs, len)) {
            free(text);
            continue;
        }
        if (!str || s[cur->vs] != '"') {   /* integers are validated: the tree path judges */
            free(text);
            goto out;
        }
        edits[ne++] = (edit){cur->vs, cur->ve, text};
        changed[nc++] = k;
    }
    if (!nc)
        goto out;   /* a no-op: the tree path answers it without a write */

    /* managedFields: the writer's Update entry owns every changed field, no other entry holds
     * one; the writer's time becomes now and the entries are sorted again (entries_store) */
    entry es[8];
    span emem[8][MAX_MEMBERS];
    size_t nent = 0;
    size_t i = ws(s, mf->vs + 1, n);
    while (i < mf->ve && s[i] != ']') {
        size_t e = ck_json_skip_value(s, i, n);
        if (nent == ARRAY_SIZE(es) || e >= n || !entry_parse(s, n, i, e, &es[nent], emem[nent]))
            goto out;
        nent++;
        i = ws(s, e, n);
        if (s[i] == ',')
            i = ws(s, i + 1, n);
        else if (s[i] != ']')
            goto out;
    }
    entry *own = NULL;
    for (size_t x = 0; x < nent; x++) {
        entry *e = &es[x];
        bool mine = eq_text(e->f[F_MANAGER], e->fl[F_MANAGER], manager) &&
                    eq_text(e->f[F_OP], e->fl[F_OP], "Update") &&
                    eq_text(e->f[F_API], e->fl[F_API], LEASE_API_VERSION) && !e->f[F_SUB];
        if (mine && own)
            goto out;
        if (mine)
            own = e;
        for (size_t c = 0; c < nc; c++) {
            bool exact;
            bool has = owns(s, n, e->fields->vs, changed[c], &exact);
            if (mine ? !(has && exact) : has)
                goto out;
        }
    }
    if (!own || !own->time)
        goto out;
    own->f[F_TIME] = now;
    own->fl[F_TIME] = strlen(now);
    /* insertion sort (few entries); equal keys would leave the tree path's order to qsort */
    entry *sorted[8];
    for (size_t x = 0; x < nent; x++) {
        size_t y = x;
        while (y > 0 && entry_cmp(sorted[y - 1], &es[x]) > 0) {
            sorted[y] = sorted[y - 1];
            y--;
        }
        sorted[y] = &es[x];
    }
    for (size_t x = 1; x < nent; x++)
        if (!entry_cmp(sorted[x - 1], sorted[x]))
            goto out;
    ck_buf mfb;
    ck_buf_init(&mfb, 0);
    ck_buf_add(&mfb, "[", 1);
    for (size_t x = 0; x < nent; x++) {
        const entry *e = sorted[x];
        if (x)
            ck_buf_add(&mfb, ",", 1);
        if (e == own) {
            ck_buf_add(&mfb, s + e->s, e->time->vs - e->s);
            ck_buf_printf(&mfb, "\"%s\"", now);
            ck_buf_add(&mfb, s + e->time->ve, e->e - e->time->ve);
        } else {
            ck_buf_add(&mfb, s + e->s, e->e - e->s);
        }
    }
    ck_buf_add(&mfb, "]", 1);
    edits[ne++] = (edit){mf->vs, mf->ve, ck_buf_steal(&mfb)};

    qsort(edits, ne, sizeof *edits, edit_cmp);
    size_t at = 0;
    for (size_t x = 0; x < ne; x++) {
        ck_buf_add(out, s + at, edits[x].s - at);
        ck_buf_addstr(out, edits[x].text);
        at = edits[x].e;
    }
    ck_buf_add(out, s + at, n - at);
    rc = 1;
out:
    for (size_t x = 0; x < ne; x++)
        free(edits[x].text);
    return rc;
}

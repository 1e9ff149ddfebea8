/* selector.c - see selector.h.  A selector is an AND of requirements; label and field selectors
 * share the representation (field selectors only use =, ==, !=).  The label parser follows
 * apimachinery's lexer/parser states so its error messages read the same. */
#include "apiserver/selector.h"
#include "apiserver/names.h"
#include "lib/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_EXISTS, OP_NOT_EXISTS, OP_EQ, OP_DEQ, OP_NEQ, OP_IN, OP_NOTIN, OP_GT, OP_LT };

struct req {
    char *key;
    enum op op;
    char **vals;     /* sorted, unique */
    size_t nvals;
};

struct ck_selector {
    bool nothing;            /* metav1.LabelSelector nil: matches nothing */
    const ck_resource *r;    /* field selectors: the resource whose fields are read */
    struct req *reqs;
    size_t n;
};

static ck_selector *sel_new(void) { return xcalloc(1, sizeof(ck_selector)); }

void ck_selector_free(ck_selector *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->reqs[i].key);
        for (size_t j = 0; j < s->reqs[i].nvals; j++)
            free(s->reqs[i].vals[j]);
        free(s->reqs[i].vals);
    }
    free(s->reqs);
    free(s);
}

bool ck_selector_is_empty(const ck_selector *s)
{
    return !s || (!s->nothing && s->n == 0);
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Takes ownership of key and vals. */
static void add_req(ck_selector *s, char *key, enum op op, char **vals, size_t nvals)
{
    if (nvals > 1) {
        qsort(vals, nvals, sizeof *vals, cmpstr);
        size_t w = 1;
        for (size_t i = 1; i < nvals; i++) {
            if (!strcmp(vals[i], vals[w - 1]))
                free(vals[i]);
            else
                vals[w++] = vals[i];
        }
        nvals = w;
    }
    s->reqs = xrealloc(s->reqs, (s->n + 1) * sizeof *s->reqs);
    s->reqs[s->n++] = (struct req){key, op, vals, nvals};
}

static void free_vals(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- requirement validation (labels.NewRequirement) ---- */

/* Go's %#v-ish rendering of a value list for "Invalid value: []string{...}". */
static char *vals_repr(char **vals, size_t n)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_addstr(&b, "[]string{");
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *q = ck_go_quote(vals[i]);
        ck_buf_printf(&b, "%s%s", i ? ", " : "", q);
    }
    ck_buf_addstr(&b, "}");
    return ck_buf_steal(&b);
}

/* path: "" at the top of a string selector (upstream prints "<nil>" for an empty path there), or
 * e.g. "matchExpressions[0]" under a LabelSelector. */
static int check_requirement(const char *path, const char *key, enum op op, char **vals, size_t n,
                             ck_error **err)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    int nerr = 0;
#define FIELD(child) (*path ? xasprintf("%s.%s", path, child) : xstrdup(child))
    cleanup_free char *km = ck_check_qualified_name(key);
    if (km) {
        cleanup_free char *f = FIELD("key");
        cleanup_free char *q = ck_go_quote(key);
        ck_buf_printf(&b, "%s: Invalid value: %s: %s", f, q, km);
        nerr++;
    }
    const char *vmsg = NULL;
    switch (op) {
    case OP_IN: case OP_NOTIN:
        if (n == 0) vmsg = "for 'in', 'notin' operators, values set can't be empty";
        break;
    case OP_EQ: case OP_DEQ: case OP_NEQ:
        if (n != 1) vmsg = "exact-match compatibility requires one single value";
        break;
    case OP_EXISTS: case OP_NOT_EXISTS:
        if (n != 0) vmsg = "values set must be empty for exists and does not exist";
        break;
    case OP_GT: case OP_LT:
        if (n != 1) vmsg = "for 'Gt', 'Lt' operators, exactly one value is required";
        break;
    }
    if (vmsg) {
        cleanup_free char *f = FIELD("values");
        cleanup_free char *r = vals_repr(vals, n);
        ck_buf_printf(&b, "%s%s: Invalid value: %s: %s", nerr ? ", " : "", f, r, vmsg);
        nerr++;
    }
    for (size_t i = 0; i < n; i++) {
        if (op == OP_GT || op == OP_LT) {
            char *end;
            errno = 0;
            (void)strtoll(vals[i], &end, 10);
            if (errno || !*vals[i] || *end) {
                cleanup_free char *f = FIELD("values");
                cleanup_free char *q = ck_go_quote(vals[i]);
                ck_buf_printf(&b, "%s%s[%zu]: Invalid value: %s: for 'Gt', 'Lt' operators, the value must be an integer",
                              nerr ? ", " : "", f, i, q);
                nerr++;
            }
        }
        cleanup_free char *vm = ck_check_label_value(vals[i]);
        if (vm) {
            cleanup_free char *f = FIELD("values");
            cleanup_free char *q = ck_go_quote(vals[i]);
            ck_buf_printf(&b, "%s%s[%zu][%s]: Invalid value: %s: %s", nerr ? ", " : "", f, i, key, q, vm);
            nerr++;
        }
    }
#undef FIELD
    if (!nerr) {
        ck_buf_free(&b);
        return 0;
    }
    /* utilerrors.Aggregate: one error prints bare, several in brackets */
    if (nerr > 1)
        ck_error_set(err, CK_E_BAD_REQUEST, "[%s]", b.data);
    else
        ck_error_set(err, CK_E_BAD_REQUEST, "%s", b.data);
    ck_buf_free(&b);
    return -1;
}

/* ---- the label selector lexer ---- */

enum tok { T_ERR, T_EOS, T_ID, T_NOTEXIST, T_EQ, T_DEQ, T_NEQ, T_IN, T_NOTIN, T_GT, T_LT,
           T_LPAR, T_RPAR, T_COMMA };

struct lexer {
    const char *s;
    size_t pos;
    /* one token of lookahead */
    enum tok tok;
    char *lit;
};

static bool special(char c) { return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<'; }
static bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static enum tok lex(struct lexer *l, char **lit)
{
    while (space(l->s[l->pos]))
        l->pos++;
    char c = l->s[l->pos];
    if (!c) {
        *lit = xstrdup("");
        return T_EOS;
    }
    if (special(c)) {
        static const struct { const char *sym; enum tok t; } syms[] = {
            {"!=", T_NEQ}, {"==", T_DEQ}, {"!", T_NOTEXIST}, {"=", T_EQ}, {"(", T_LPAR}, {")", T_RPAR},
            {",", T_COMMA}, {">", T_GT}, {"<", T_LT},
        };
        for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
            size_t n = strlen(syms[i].sym);
            if (!strncmp(l->s + l->pos, syms[i].sym, n)) {
                l->pos += n;
                *lit = xstrdup(syms[i].sym);
                return syms[i].t;
            }
        }
        *lit = xstrndup(l->s + l->pos, 1);
        l->pos++;
        return T_ERR;
    }
    size_t start = l->pos;
    while (l->s[l->pos] && !special(l->s[l->pos]) && !space(l->s[l->pos]))
        l->pos++;
    *lit = xstrndup(l->s + start, l->pos - start);
    if (!strcmp(*lit, "in"))
        return T_IN;
    if (!strcmp(*lit, "notin"))
        return T_NOTIN;
    return T_ID;
}

/* Values context: in/notin are plain identifiers there. */
static enum tok ctx(enum tok t, bool values) { return values && (t == T_IN || t == T_NOTIN) ? T_ID : t; }

static enum tok peek(struct lexer *l, bool values, const char **lit)
{
    if (!l->lit)
        l->tok = lex(l, &l->lit);
    *lit = l->lit;
    return ctx(l->tok, values);
}

/* Consume: the caller owns *lit. */
static enum tok next(struct lexer *l, bool values, char **lit)
{
    if (!l->lit)
        l->tok = lex(l, &l->lit);
    *lit = l->lit;
    l->lit = NULL;
    return ctx(l->tok, values);
}

static int parse_fail(ck_error **err, const char *fmt, const char *lit)
{
    return ck_error_set(err, CK_E_BAD_REQUEST, fmt, lit);
}

static void vpush(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = s;
}

/* "(a, b, c)" */
static int parse_values(struct lexer *l, char ***vals, size_t *n, ck_error **err)
{
    cleanup_free char *lit = NULL;
    if (next(l, true, &lit) != T_LPAR)
        return parse_fail(err, "found '%s' expected: '('", lit);
    const char *pl;
    enum tok t = peek(l, true, &pl);
    if (t == T_RPAR) {
        free(steal_pointer(&lit));
        next(l, true, &lit);
        vpush(vals, n, xstrdup(""));
        return 0;
    }
    if (t != T_ID && t != T_COMMA)
        return parse_fail(err, "found '%s', expected: ',', ')' or identifier", pl);
    /* identifiers list: empty elements between commas are "" */
    bool expect_value = true;
    for (;;) {
        free(steal_pointer(&lit));
        t = next(l, true, &lit);
        if (t == T_ID) {
            if (!expect_value)
                return parse_fail(err, "found '%s', expected: ',' or ')'", lit);
            vpush(vals, n, steal_pointer(&lit));
            expect_value = false;
            t = peek(l, true, &pl);
            if (t == T_RPAR) {
                next(l, true, &lit);
                return 0;
            }
            if (t != T_COMMA)
                return parse_fail(err, "found '%s', expected: ',' or ')'", pl);
        } else if (t == T_COMMA) {
            if (expect_value)
                vpush(vals, n, xstrdup(""));
            expect_value = true;
            t = peek(l, true, &pl);
            if (t == T_RPAR) {
                vpush(vals, n, xstrdup(""));
                free(steal_pointer(&lit));
                next(l, true, &lit);
                return 0;
            }
            if (t != T_ID && t != T_COMMA)
                return parse_fail(err, "found '%s', expected: ',', or identifier", pl);
        } else {
            return parse_fail(err, "found '%s', expected: ',', or identifier", lit);
        }
    }
}

static int parse_requirement(struct lexer *l, ck_selector *s, ck_error **err)
{
    cleanup_free char *key = NULL;
    enum op op = OP_EQ;
    bool not_exist = false;
    enum tok t = next(l, true, &key);
    if (t == T_NOTEXIST) {
        not_exist = true;
        free(steal_pointer(&key));
        t = next(l, true, &key);
    }
    if (t != T_ID)
        return parse_fail(err, "found '%s', expected: identifier", key);
    cleanup_free char *km = ck_check_qualified_name(key);
    if (km) {
        cleanup_free char *q = ck_go_quote(key);
        return ck_error_set(err, CK_E_BAD_REQUEST, "<nil>: Invalid value: %s: %s", q, km);
    }
    const char *pl;
    t = peek(l, true, &pl);
    if (t == T_EOS || t == T_COMMA || not_exist) {
        /* "!a" is complete; whatever follows is the caller's to judge */
        add_req(s, steal_pointer(&key), not_exist ? OP_NOT_EXISTS : OP_EXISTS, NULL, 0);
        return 0;
    }
    cleanup_free char *opl = NULL;
    t = next(l, false, &opl);
    switch (t) {
    case T_IN: op = OP_IN; break;
    case T_NOTIN: op = OP_NOTIN; break;
    case T_EQ: op = OP_EQ; break;
    case T_DEQ: op = OP_DEQ; break;
    case T_NEQ: op = OP_NEQ; break;
    case T_GT: op = OP_GT; break;
    case T_LT: op = OP_LT; break;
    default:
        return parse_fail(err, "found '%s', expected: in, notin, =, ==, !=, gt, lt", opl);
    }
    char **vals = NULL;
    size_t n = 0;
    if (op == OP_IN || op == OP_NOTIN) {
        if (parse_values(l, &vals, &n, err) < 0) {
            free_vals(vals, n);
            return -1;
        }
    } else {
        t = peek(l, true, &pl);
        if (t == T_EOS || t == T_COMMA) {
            vpush(&vals, &n, xstrdup(""));
        } else {
            char *v = NULL;
            if (next(l, true, &v) != T_ID) {
                parse_fail(err, "found '%s', expected: identifier", v);
                free(v);
                return -1;
            }
            vpush(&vals, &n, v);
        }
    }
    if (check_requirement("", key, op, vals, n, err) < 0) {
        free_vals(vals, n);
        return -1;
    }
    add_req(s, steal_pointer(&key), op, vals, n);
    return 0;
}

static int parse_label(struct lexer *l, ck_selector *s, ck_error **err)
{
    for (;;) {
        const char *pl;
        enum tok t = peek(l, true, &pl);
        if (t == T_EOS)
            return 0;
        if (t != T_ID && t != T_NOTEXIST)
            return parse_fail(err, "found '%s', expected: !, identifier, or 'end of string'", pl);
        if (parse_requirement(l, s, err) < 0)
            return ck_error_wrap(err, "unable to parse requirement");
        cleanup_free char *lit = NULL;
        t = next(l, true, &lit);
        if (t == T_EOS)
            return 0;
        if (t != T_COMMA)
            return parse_fail(err, "found '%s', expected: ',' or 'end of string'", lit);
        t = peek(l, true, &pl);
        if (t != T_ID && t != T_NOTEXIST)
            return parse_fail(err, "found '%s', expected: identifier after ','", pl);
    }
}

ck_selector *ck_label_selector_parse(const char *str, ck_error **err)
{
    ck_selector *s = sel_new();
    if (!str)
        return s;
    struct lexer l = {.s = str};
    int rc = parse_label(&l, s, err);
    free(l.lit);
    if (rc < 0) {
        ck_selector_free(s);
        return NULL;
    }
    return s;
}

ck_selector *ck_label_selector_from_json(const json_t *ls, ck_error **err)
{
    ck_selector *s = sel_new();
    if (!ls || json_is_null(ls)) {
        s->nothing = true;
        return s;
    }
    if (!json_is_object(ls)) {
        ck_selector_free(s);
        ck_error_set(err, CK_E_BAD_REQUEST, "label selector must be an object");
        return NULL;
    }
    const json_t *ml = json_object_get(ls, "matchLabels");
    const char *k;
    json_t *v;
    if (ml && !json_is_null(ml)) {
        if (!json_is_object(ml))
            goto bad;
        json_object_foreach((json_t *)ml, k, v) {
            if (!json_is_string(v))
                goto bad;
            char **vals = NULL;
            size_t n = 0;
            vpush(&vals, &n, xstrdup(json_string_value(v)));
            if (check_requirement("", k, OP_EQ, vals, n, err) < 0) {
                free_vals(vals, n);
                ck_selector_free(s);
                return NULL;
            }
            add_req(s, xstrdup(k), OP_EQ, vals, n);
        }
    }
    const json_t *me = json_object_get(ls, "matchExpressions");
    if (me && !json_is_null(me)) {
        if (!json_is_array(me))
            goto bad;
        size_t i;
        json_array_foreach((json_t *)me, i, v) {
            const char *key = json_string_value(json_object_get(v, "key"));
            const char *ops = json_string_value(json_object_get(v, "operator"));
            if (!key || !ops)
                goto bad;
            enum op op;
            if (!strcmp(ops, "In")) op = OP_IN;
            else if (!strcmp(ops, "NotIn")) op = OP_NOTIN;
            else if (!strcmp(ops, "Exists")) op = OP_EXISTS;
            else if (!strcmp(ops, "DoesNotExist")) op = OP_NOT_EXISTS;
            else {
                cleanup_free char *q = ck_go_quote(ops);
                ck_selector_free(s);
                ck_error_set(err, CK_E_BAD_REQUEST, "%s is not a valid label selector operator", q);
                return NULL;
            }
            char **vals = NULL;
            size_t n = 0, j;
            json_t *x;
            json_array_foreach(json_object_get(v, "values"), j, x) {
                if (!json_is_string(x)) {
                    free_vals(vals, n);
                    goto bad;
                }
                vpush(&vals, &n, xstrdup(json_string_value(x)));
            }
            if (check_requirement("", key, op, vals, n, err) < 0) {
                free_vals(vals, n);
                ck_selector_free(s);
                return NULL;
            }
            add_req(s, xstrdup(key), op, vals, n);
        }
    }
    return s;
bad:
    ck_selector_free(s);
    ck_error_set(err, CK_E_BAD_REQUEST, "invalid label selector");
    return NULL;
}

static bool has_val(const struct req *q, const char *v)
{
    for (size_t i = 0; i < q->nvals; i++)
        if (!strcmp(q->vals[i], v))
            return true;
    return false;
}

static bool req_matches(const struct req *q, bool has, const char *val)
{
    switch (q->op) {
    case OP_EXISTS: return has;
    case OP_NOT_EXISTS: return !has;
    case OP_EQ: case OP_DEQ: case OP_IN: return has && has_val(q, val);
    case OP_NEQ: case OP_NOTIN: return !has || !has_val(q, val);
    case OP_GT: case OP_LT: {
        if (!has || q->nvals != 1)
            return false;
        char *end;
        errno = 0;
        long long a = strtoll(val, &end, 10);
        if (errno || !*val || *end)
            return false;
        long long b = strtoll(q->vals[0], NULL, 10);
        return q->op == OP_GT ? a > b : a < b;
    }
    }
    return false;
}

bool ck_label_selector_matches(const ck_selector *s, const json_t *labels)
{
    if (!s)
        return true;
    if (s->nothing)
        return false;
    for (size_t i = 0; i < s->n; i++) {
        const json_t *v = json_is_object(labels) ? json_object_get(labels, s->reqs[i].key) : NULL;
        const char *val = json_string_value(v);
        if (!req_matches(&s->reqs[i], val != NULL, val ? val : ""))
            return false;
    }
    return true;
}

/* ---- field selectors ---- */

/* The fields each kind supports beyond metadata.name/metadata.namespace, and the value an unset
 * field reads as (upstream builds these from typed structs, so unset ints read "0"). */
struct field_def {
    const char *group, *resource, *field, *path, *unset;
};

static const struct field_def field_defs[] = {
    {"", "pods", "spec.nodeName", "spec.nodeName", ""},
    {"", "pods", "spec.restartPolicy", "spec.restartPolicy", ""},
    {"", "pods", "spec.schedulerName", "spec.schedulerName", ""},
    {"", "pods", "spec.serviceAccountName", "spec.serviceAccountName", ""},
    {"", "pods", "spec.hostNetwork", "spec.hostNetwork", "false"},
    {"", "pods", "status.phase", "status.phase", ""},
    {"", "pods", "status.podIP", "status.podIP", ""},
    {"", "pods", "status.nominatedNodeName", "status.nominatedNodeName", ""},
    {"", "events", "involvedObject.kind", "involvedObject.kind", ""},
    {"", "events", "involvedObject.namespace", "involvedObject.namespace", ""},
    {"", "events", "involvedObject.name", "involvedObject.name", ""},
    {"", "events", "involvedObject.uid", "involvedObject.uid", ""},
    {"", "events", "involvedObject.apiVersion", "involvedObject.apiVersion", ""},
    {"", "events", "involvedObject.resourceVersion", "involvedObject.resourceVersion", ""},
    {"", "events", "involvedObject.fieldPath", "involvedObject.fieldPath", ""},
    {"", "events", "reason", "reason", ""},
    {"", "events", "reportingComponent", "reportingComponent", ""},
    {"", "events", "source", "source.component", ""},
    {"", "events", "type", "type", ""},
    {"events.k8s.io", "events", "regarding.kind", "regarding.kind", ""},
    {"events.k8s.io", "events", "regarding.namespace", "regarding.namespace", ""},
    {"events.k8s.io", "events", "regarding.name", "regarding.name", ""},
    {"events.k8s.io", "events", "regarding.uid", "regarding.uid", ""},
    {"events.k8s.io", "events", "regarding.apiVersion", "regarding.apiVersion", ""},
    {"events.k8s.io", "events", "regarding.resourceVersion", "regarding.resourceVersion", ""},
    {"events.k8s.io", "events", "regarding.fieldPath", "regarding.fieldPath", ""},
    {"events.k8s.io", "events", "reason", "reason", ""},
    {"events.k8s.io", "events", "reportingController", "reportingController", ""},
    {"events.k8s.io", "events", "type", "type", ""},
    {"", "secrets", "type", "type", ""},
    {"", "nodes", "spec.unschedulable", "spec.unschedulable", "false"},
    {"", "namespaces", "status.phase", "status.phase", ""},
    {"", "replicationcontrollers", "status.replicas", "status.replicas", "0"},
    {"apps", "replicasets", "status.replicas", "status.replicas", "0"},
    {"batch", "jobs", "status.successful", "status.successful", "0"},
    {"", "services", "spec.clusterIP", "spec.clusterIP", ""},
    {"", "services", "spec.type", "spec.type", ""},
    {"certificates.k8s.io", "certificatesigningrequests", "spec.signerName", "spec.signerName", ""},
};

static const struct field_def meta_defs[] = {
    {NULL, NULL, "metadata.name", "metadata.name", ""},
    {NULL, NULL, "metadata.namespace", "metadata.namespace", ""},
};

static const struct field_def *find_field(const ck_resource *r, const char *field)
{
    for (size_t i = 0; i < ARRAY_SIZE(meta_defs); i++)
        if (!strcmp(meta_defs[i].field, field))
            return &meta_defs[i];
    if (!r)
        return NULL;
    for (size_t i = 0; i < ARRAY_SIZE(field_defs); i++)
        if (!strcmp(field_defs[i].group, r->group) && !strcmp(field_defs[i].resource, r->resource) &&
            !strcmp(field_defs[i].field, field))
            return &field_defs[i];
    return NULL;
}

/* Field selector terms: split on unescaped ',' then on the first unescaped operator;
 * values unescape "\\", "\,", "\=". */
static int unescape(const char *in, size_t n, char **out, ck_error **err)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\\') {
            if (i + 1 >= n || (in[i + 1] != '\\' && in[i + 1] != ',' && in[i + 1] != '=')) {
                ck_buf_free(&b);
                cleanup_free char *v = xstrndup(in, n);
                return ck_error_set(err, CK_E_BAD_REQUEST, "invalid field selector: invalid escape sequence: %s", v);
            }
            i++;
        } else if (in[i] == ',' || in[i] == '=') {
            ck_buf_free(&b);
            cleanup_free char *v = xstrndup(in, n);
            return ck_error_set(err, CK_E_BAD_REQUEST, "invalid field selector: unescaped character in value: %s", v);
        }
        ck_buf_add(&b, in + i, 1);
    }
    *out = ck_buf_steal(&b);
    return 0;
}

ck_selector *ck_field_selector_parse(const char *str, const ck_resource *r, ck_error **err)
{
    ck_selector *s = sel_new();
    s->r = r;
    if (!str)
        return s;
    size_t start = 0, len = strlen(str);
    for (size_t i = 0; i <= len; i++) {
        if (i < len && str[i] == '\\') {
            i++;
            continue;
        }
        if (i < len && str[i] != ',')
            continue;
        const char *term = str + start;
        size_t tn = i - start;
        start = i + 1;
        if (!tn)
            continue;
        size_t opos = 0, olen = 0;
        enum op op = OP_EQ;
        for (size_t j = 0; j < tn && !olen; j++) {
            if (term[j] == '\\') {
                j++;
                continue;
            }
            if (!strncmp(term + j, "!=", 2) && j + 2 <= tn) { opos = j; olen = 2; op = OP_NEQ; }
            else if (!strncmp(term + j, "==", 2) && j + 2 <= tn) { opos = j; olen = 2; op = OP_DEQ; }
            else if (term[j] == '=') { opos = j; olen = 1; op = OP_EQ; }
        }
        if (!olen) {
            cleanup_free char *t = xstrndup(term, tn);
            ck_selector_free(s);
            ck_error_set(err, CK_E_BAD_REQUEST, "invalid selector: '%s'; can't understand '%s'", str, t);
            return NULL;
        }
        char *key = xstrndup(term, opos), *val = NULL;
        if (unescape(term + opos + olen, tn - opos - olen, &val, err) < 0) {
            free(key);
            ck_selector_free(s);
            return NULL;
        }
        if (!find_field(r, key)) {
            ck_error_set(err, CK_E_BAD_REQUEST, "field label not supported: %s", key);
            free(key);
            free(val);
            ck_selector_free(s);
            return NULL;
        }
        char **vals = xmalloc(sizeof *vals);
        vals[0] = val;
        add_req(s, key, op, vals, 1);
    }
    return s;
}

/* The string form of a field of obj, as upstream's selectable-fields sets render it. */
static char *field_value(const ck_resource *r, const json_t *obj, const char *field)
{
    const struct field_def *d = find_field(r, field);
    if (!d)
        return NULL;
    const json_t *v = obj;
    cleanup_free char *path = xstrdup(d->path);
    char *save = NULL;
    for (char *p = strtok_r(path, ".", &save); p && v; p = strtok_r(NULL, ".", &save))
        v = json_is_object(v) ? json_object_get(v, p) : NULL;
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_boolean(v))
        return xstrdup(json_is_true(v) ? "true" : "false");
    if (json_is_integer(v))
        return xasprintf("%lld", (long long)json_integer_value(v));
    return xstrdup(d->unset);
}

bool ck_field_selector_matches(const ck_selector *s, const json_t *obj)
{
    if (!s)
        return true;
    if (s->nothing)
        return false;
    for (size_t i = 0; i < s->n; i++) {
        const struct req *q = &s->reqs[i];
        cleanup_free char *v = field_value(s->r, obj, q->key);
        if (!v)
            return false;
        bool eq = q->nvals == 1 && !strcmp(v, q->vals[0]);
        if ((q->op == OP_NEQ) == eq)
            return false;
    }
    return true;
}

const char *ck_selector_exact(const ck_selector *s, const char *field)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n; i++) {
        const struct req *q = &s->reqs[i];
        if ((q->op == OP_EQ || q->op == OP_DEQ || (q->op == OP_IN && q->nvals == 1)) &&
            !strcmp(q->key, field))
            return q->vals[0];
    }
    return NULL;
}

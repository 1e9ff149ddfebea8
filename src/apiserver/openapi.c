/* openapi.c - OpenAPI v3 documents and unknown-field detection (see openapi.h), from the schema
 * DSL in openapi_types.c and the resource table.
 *
 * The DSL is parsed once into a model (types with resolved field types).  A group-version document
 * holds paths for each of its resources (collection, item, all-namespaces list, and status/scale
 * subresources) whose operations carry x-kubernetes-action and x-kubernetes-group-version-kind;
 * every PATCH lists fieldValidation inline (kubectl looks for it by name before enabling
 * server-side validation).  components.schemas holds the transitive closure of the types those
 * operations use.  Documents are deterministic, built once and cached; the root index points at
 * each with a hash of its serialized bytes. */
#include "apiserver/openapi.h"
#include "apiserver/openapi_types.h"
#include "lib/util.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- model ---- */

enum prim { P_REF, P_STRING, P_INTEGER, P_NUMBER, P_BOOLEAN, P_TIME, P_QUANTITY, P_INTORSTR, P_RAW };

typedef struct ftype {
    char wrap[4];      /* outermost first: "[", "{", "[{" ... ; "" for a bare type */
    enum prim prim;
    int ref;           /* index into model.types when prim == P_REF */
} ftype;

typedef struct field {
    char *name;
    ftype t;
    bool required;
    const char *desc;
    char *merge_key;      /* x-kubernetes-patch-merge-key, or NULL */
    char *strategy;       /* x-kubernetes-patch-strategy ("merge", "merge,retainKeys", ...), or NULL */
} field;

typedef struct otype {
    const ck_oa_type *src;
    char schema[160];  /* fully qualified schema name */
    field *fields;
    size_t nfields;
    const ck_resource *kind_of;   /* served kind whose root this is, or NULL */
    const char *gvk_group, *gvk_version, *gvk_kind;  /* for subresource kinds (Scale, ...) */
} otype;

static struct {
    otype *types;
    size_t ntypes;
} model;

static pthread_once_t model_once = PTHREAD_ONCE_INIT;

static const char *const id_prefixes[] = {"CoreV1", "EventsV1", "DiscoveryV1", "AuthenticationV1"};

static const char *schema_short(const char *id)
{
    for (size_t i = 0; i < ARRAY_SIZE(id_prefixes); i++) {
        size_t n = strlen(id_prefixes[i]);
        if (!strncmp(id, id_prefixes[i], n) && id[n])
            return id + n;
    }
    return id;
}

static void qualify(const char *pkg, const char *shortname, char *out, size_t cap)
{
    if (!strcmp(pkg, "meta"))
        snprintf(out, cap, "io.k8s.apimachinery.pkg.apis.meta.v1.%s", shortname);
    else
        snprintf(out, cap, "io.k8s.api.%s.%s", pkg, shortname);
}

static int type_index(const char *name, size_t len)
{
    for (size_t i = 0; i < ck_oa_ntypes; i++)
        if (strlen(ck_oa_types[i].name) == len && !strncmp(ck_oa_types[i].name, name, len))
            return (int)i;
    return -1;
}

static void parse_ftype(const char *s, size_t len, ftype *t)
{
    memset(t, 0, sizeof *t);
    size_t w = 0;
    while (len >= 2 && (!strncmp(s, "[]", 2) || !strncmp(s, "{}", 2)) && w < sizeof t->wrap - 1) {
        t->wrap[w++] = s[0];
        s += 2;
        len -= 2;
    }
    static const struct {
        const char *name;
        enum prim p;
    } prims[] = {{"string", P_STRING}, {"integer", P_INTEGER}, {"number", P_NUMBER}, {"boolean", P_BOOLEAN},
                 {"Time", P_TIME}, {"Quantity", P_QUANTITY}, {"IntOrString", P_INTORSTR}, {"RawJSON", P_RAW}};
    for (size_t i = 0; i < ARRAY_SIZE(prims); i++)
        if (strlen(prims[i].name) == len && !strncmp(prims[i].name, s, len)) {
            t->prim = prims[i].p;
            return;
        }
    t->prim = P_REF;
    t->ref = type_index(s, len);
    if (t->ref < 0)   /* unknown type name: treat as free-form, never reject */
        t->prim = P_RAW;
}

static const char *field_doc(const char *type, const char *fieldname)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s", type, fieldname);
    for (size_t i = 0; i < ck_oa_nfield_docs; i++)
        if (!strcmp(ck_oa_field_docs[i].path, key))
            return ck_oa_field_docs[i].desc;
    return NULL;
}

/* Kinds served only as subresource bodies, with their group/version. */
static const struct {
    const char *type, *group, *version, *kind;
} sub_kinds[] = {
    {"Scale", "autoscaling", "v1", "Scale"},
    {"Eviction", "policy", "v1", "Eviction"},
    {"TokenRequest", "authentication.k8s.io", "v1", "TokenRequest"},
};

/* The DSL type of a served kind: same schema name, package named after its group. */
static int kind_type(const ck_resource *r)
{
    char pkg[64];
    const char *g = r->group[0] ? r->group : "core";
    size_t n = strcspn(g, ".");
    snprintf(pkg, sizeof pkg, "%.*s.v1", (int)n, g);
    for (size_t i = 0; i < ck_oa_ntypes; i++)
        if (!strcmp(schema_short(ck_oa_types[i].name), r->kind) && !strcmp(ck_oa_types[i].pkg, pkg))
            return (int)i;
    return -1;
}

static void model_build(void)
{
    model.ntypes = ck_oa_ntypes;
    model.types = xcalloc(ck_oa_ntypes, sizeof *model.types);
    for (size_t i = 0; i < ck_oa_ntypes; i++) {
        otype *t = &model.types[i];
        t->src = &ck_oa_types[i];
        qualify(t->src->pkg, schema_short(t->src->name), t->schema, sizeof t->schema);
        size_t cap = 8;
        t->fields = xcalloc(cap, sizeof *t->fields);
        for (const char *p = t->src->fields; *p;) {
            while (*p == ' ')
                p++;
            if (!*p)
                break;
            size_t len = strcspn(p, " ");
            const char *colon = memchr(p, ':', len);
            if (colon) {
                if (t->nfields == cap)
                    t->fields = xrealloc(t->fields, (cap *= 2) * sizeof *t->fields);
                field *f = &t->fields[t->nfields++];
                memset(f, 0, sizeof *f);   /* xrealloc'd slots are not zeroed */
                f->name = xstrndup(p, (size_t)(colon - p));
                const char *ts = colon + 1, *end = p + len;
                size_t tl = strcspn(ts, "!@+ ");
                parse_ftype(ts, tl, &f->t);
                const char *q = ts + tl;
                f->required = q < end && *q == '!';
                q += f->required;
                bool merge = q < end && *q == '@';
                if (merge) {
                    size_t kl = strcspn(q + 1, "+ ");
                    if (kl)
                        f->merge_key = xstrndup(q + 1, kl);
                    q += 1 + kl;
                }
                bool retain = q < end && !strncmp(q, "+retainKeys", 11);
                if (merge || retain)
                    f->strategy = xstrdup(merge && retain ? "merge,retainKeys" : merge ? "merge" : "retainKeys");
                f->desc = field_doc(t->src->name, f->name);
            }
            p += len;
        }
    }
    for (size_t i = 0; i < ck_nresources; i++) {
        int k = kind_type(&ck_resources[i]);
        if (k >= 0 && !model.types[k].kind_of)
            model.types[k].kind_of = &ck_resources[i];
    }
    for (size_t i = 0; i < ARRAY_SIZE(sub_kinds); i++) {
        int k = type_index(sub_kinds[i].type, strlen(sub_kinds[i].type));
        if (k >= 0) {
            model.types[k].gvk_group = sub_kinds[i].group;
            model.types[k].gvk_version = sub_kinds[i].version;
            model.types[k].gvk_kind = sub_kinds[i].kind;
        }
    }
}

static void model_init(void) { pthread_once(&model_once, model_build); }

static bool is_root(const otype *t) { return t->kind_of || t->gvk_kind; }

/* ---- schemas ---- */

#define REF_PREFIX "#/components/schemas/"
#define META "io.k8s.apimachinery.pkg.apis.meta.v1."
#define TIME_SCHEMA META "Time"
#define QUANTITY_SCHEMA "io.k8s.apimachinery.pkg.api.resource.Quantity"
#define INTORSTR_SCHEMA "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

/* A set of schema names a document needs (insertion-ordered, small). */
typedef struct need {
    int *idx;
    size_t n, cap;
    bool time, quantity, intorstr;
} need;

static void need_type(need *nd, int i)
{
    for (size_t k = 0; k < nd->n; k++)
        if (nd->idx[k] == i)
            return;
    if (nd->n == nd->cap)
        nd->idx = xrealloc(nd->idx, (nd->cap = nd->cap ? nd->cap * 2 : 32) * sizeof *nd->idx);
    nd->idx[nd->n++] = i;
}

static json_t *ref_to(const char *schema)
{
    char buf[256];
    snprintf(buf, sizeof buf, REF_PREFIX "%s", schema);
    return json_pack("{s:s}", "$ref", buf);
}

static json_t *base_schema(const ftype *t, need *nd)
{
    switch (t->prim) {
    case P_STRING:
        return json_pack("{s:s}", "type", "string");
    case P_INTEGER:
        return json_pack("{s:s}", "type", "integer");
    case P_NUMBER:
        return json_pack("{s:s, s:s}", "type", "number", "format", "double");
    case P_BOOLEAN:
        return json_pack("{s:s}", "type", "boolean");
    case P_TIME:
        nd->time = true;
        return ref_to(TIME_SCHEMA);
    case P_QUANTITY:
        nd->quantity = true;
        return ref_to(QUANTITY_SCHEMA);
    case P_INTORSTR:
        nd->intorstr = true;
        return ref_to(INTORSTR_SCHEMA);
    case P_RAW:
        return json_pack("{s:s, s:b}", "type", "object", "x-kubernetes-preserve-unknown-fields", 1);
    case P_REF:
    default:
        need_type(nd, t->ref);
        return ref_to(model.types[t->ref].schema);
    }
}

static json_t *field_schema(const field *f, need *nd)
{
    json_t *s = base_schema(&f->t, nd);
    for (int w = (int)strlen(f->t.wrap) - 1; w >= 0; w--) {
        if (f->t.wrap[w] == '[')
            s = json_pack("{s:s, s:o}", "type", "array", "items", s);
        else
            s = json_pack("{s:s, s:o}", "type", "object", "additionalProperties", s);
    }
    if ((f->desc || f->strategy) && json_object_get(s, "$ref"))
        s = json_pack("{s:[o]}", "allOf", s);   /* a $ref cannot carry siblings in 3.0: wrap it */
    if (f->desc)
        json_object_set_new(s, "description", json_string(f->desc));
    if (f->merge_key)
        json_object_set_new(s, "x-kubernetes-patch-merge-key", json_string(f->merge_key));
    if (f->strategy)
        json_object_set_new(s, "x-kubernetes-patch-strategy", json_string(f->strategy));
    return s;
}

static json_t *gvk_ext(const char *g, const char *v, const char *k)
{
    return json_pack("[{s:s, s:s, s:s}]", "group", g, "kind", k, "version", v);
}

static json_t *type_schema(const otype *t, need *nd)
{
    json_t *props = json_object();
    json_t *req = json_array();
    char desc[256];
    snprintf(desc, sizeof desc, "%s", t->src->desc ? t->src->desc : "");
    if (!desc[0])
        snprintf(desc, sizeof desc, "%s.", schema_short(t->src->name));
    if (is_root(t)) {
        json_object_set_new(props, "apiVersion", json_pack("{s:s, s:s}", "type", "string", "description",
                                                           "Versioned schema of this representation, e.g. apps/v1."));
        json_object_set_new(props, "kind", json_pack("{s:s, s:s}", "type", "string", "description",
                                                     "The REST resource kind this object represents."));
        int meta = type_index("ObjectMeta", 10);
        need_type(nd, meta);
        json_object_set_new(props, "metadata", json_pack("{s:[o], s:s}", "allOf", ref_to(model.types[meta].schema),
                                                         "description", "Standard object metadata."));
    }
    for (size_t i = 0; i < t->nfields; i++) {
        json_object_set_new(props, t->fields[i].name, field_schema(&t->fields[i], nd));
        if (t->fields[i].required)
            json_array_append_new(req, json_string(t->fields[i].name));
    }
    json_t *s = json_pack("{s:s, s:s, s:o}", "description", desc, "type", "object", "properties", props);
    if (json_array_size(req))
        json_object_set_new(s, "required", req);
    else
        json_decref(req);
    if (t->kind_of) {
        json_t *g = gvk_ext(t->kind_of->group, t->kind_of->version, t->kind_of->kind);
        /* a kind served in two versions of a group (SelfSubjectReview v1 and v1beta1) */
        for (size_t i = 0; i < ck_nresources; i++) {
            const ck_resource *r = &ck_resources[i];
            if (r != t->kind_of && !strcmp(r->group, t->kind_of->group) && !strcmp(r->kind, t->kind_of->kind))
                json_array_append_new(g, json_pack("{s:s, s:s, s:s}", "group", r->group, "kind", r->kind,
                                                   "version", r->version));
        }
        json_object_set_new(s, "x-kubernetes-group-version-kind", g);
    } else if (t->gvk_kind) {
        json_object_set_new(s, "x-kubernetes-group-version-kind", gvk_ext(t->gvk_group, t->gvk_version, t->gvk_kind));
    }
    return s;
}

/* ---- paths ---- */

static json_t *qparam(const char *name, const char *desc, const char *type)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:b}}", "name", name, "in", "query", "description", desc, "schema",
                     "type", type, "uniqueItems", 1);
}

static const char *const FV_DESC =
    "How to treat unknown or duplicate fields in the body: Ignore drops them, Warn (the default) "
    "accepts them with a warning, Strict rejects the request.";

static json_t *write_params(bool patch)
{
    json_t *a = json_array();
    json_array_append_new(a, qparam("dryRun", "When All, validate and admit without persisting.", "string"));
    json_array_append_new(a, qparam("fieldManager", "Name of the actor making the change, for field ownership.", "string"));
    json_array_append_new(a, qparam("fieldValidation", FV_DESC, "string"));
    if (patch)
        json_array_append_new(a, qparam("force", "Server-side apply only: take ownership of conflicting fields.", "boolean"));
    return a;
}

static json_t *list_params(void)
{
    json_t *a = json_array();
    static const char *const names[][3] = {
        {"allowWatchBookmarks", "Ask for BOOKMARK events in a watch.", "boolean"},
        {"continue", "Token from a previous paged list.", "string"},
        {"fieldSelector", "Filter by fields.", "string"},
        {"labelSelector", "Filter by labels.", "string"},
        {"limit", "Most items to return in one page.", "integer"},
        {"resourceVersion", "List or watch from this version.", "string"},
        {"resourceVersionMatch", "How resourceVersion applies: Exact or NotOlderThan.", "string"},
        {"sendInitialEvents", "With watch: replay current objects first.", "boolean"},
        {"timeoutSeconds", "Server-side timeout for list and watch.", "integer"},
        {"watch", "Stream changes instead of listing.", "boolean"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        json_array_append_new(a, qparam(names[i][0], names[i][1], names[i][2]));
    return a;
}

static json_t *body_of(const char *schema, bool patch)
{
    json_t *content = json_object();
    if (patch) {
        static const char *const types[] = {"application/apply-patch+yaml", "application/json-patch+json",
                                            "application/merge-patch+json", "application/strategic-merge-patch+json"};
        for (size_t i = 0; i < ARRAY_SIZE(types); i++)
            json_object_set_new(content, types[i], json_pack("{s:{s:s}}", "schema", "type", "object"));
    } else {
        json_object_set_new(content, "application/json", json_pack("{s:o}", "schema", ref_to(schema)));
        json_object_set_new(content, "application/yaml", json_pack("{s:o}", "schema", ref_to(schema)));
    }
    return json_pack("{s:o, s:b}", "content", content, "required", 1);
}

static json_t *responses(const char *schema)
{
    json_t *ok = schema ? json_pack("{s:s, s:{s:{s:o}}}", "description", "OK", "content", "application/json", "schema",
                                    ref_to(schema))
                        : json_pack("{s:s}", "description", "OK");
    return json_pack("{s:o, s:{s:s}}", "200", ok, "401", "description", "Unauthorized");
}

/* One operation.  opname is used for operationId ("patch" + "Namespaced" + "Pod" + "Status"). */
static json_t *op(const char *action, const char *verb_id, const char *kind, const char *suffix, const char *g,
                  const char *v, const char *gvk_kind, const char *schema, json_t *params, json_t *body)
{
    char id[256];
    snprintf(id, sizeof id, "%s%s%s", verb_id, kind, suffix);
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:{s:s, s:s, s:s}}", "description", id, "operationId", id,
                          "responses", responses(schema), "x-kubernetes-action", action,
                          "x-kubernetes-group-version-kind", "group", g, "kind", gvk_kind, "version", v);
    json_object_set_new(o, "parameters", params ? params : json_array());
    if (body)
        json_object_set_new(o, "requestBody", body);
    return o;
}

static json_t *path_params(bool ns, bool name)
{
    json_t *a = json_array();
    if (name)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:{s:s, s:b}}", "name", "name", "in", "path",
                                           "description", "Name of the object.", "required", 1, "schema", "type",
                                           "string", "uniqueItems", 1));
    if (ns)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:{s:s, s:b}}", "name", "namespace", "in",
                                           "path", "description", "Namespace of the object.", "required", 1,
                                           "schema", "type", "string", "uniqueItems", 1));
    json_array_append_new(a, qparam("pretty", "Pretty-print the output.", "string"));
    return a;
}

static void add_resource_paths(json_t *paths, const ck_resource *r, const otype *t, const char *list_schema,
                               need *nd)
{
    char base[256], coll[320], item[384], all[320];
    if (r->group[0])
        snprintf(base, sizeof base, "/apis/%s/%s", r->group, r->version);
    else
        snprintf(base, sizeof base, "/api/%s", r->version);
    if (r->namespaced)
        snprintf(coll, sizeof coll, "%s/namespaces/{namespace}/%s", base, r->resource);
    else
        snprintf(coll, sizeof coll, "%s/%s", base, r->resource);
    snprintf(item, sizeof item, "%s/{name}", coll);
    const char *sc = t->schema, *g = r->group, *v = r->version, *k = r->kind;
    const char *scope = r->namespaced ? "Namespaced" : "";

    json_t *c = json_pack("{s:o}", "parameters", path_params(r->namespaced, false));
    if (ck_word_in(r->verbs, "list"))
        json_object_set_new(c, "get", op("list", "list", scope, k, g, v, k, list_schema, list_params(), NULL));
    if (ck_word_in(r->verbs, "create"))
        json_object_set_new(c, "post", op("post", "create", scope, k, g, v, k, sc, write_params(false), body_of(sc, false)));
    if (ck_word_in(r->verbs, "deletecollection"))
        json_object_set_new(c, "delete", op("deletecollection", "deleteCollection", scope, k, g, v, k, NULL, list_params(), NULL));
    if (json_object_size(c) > 1)
        json_object_set_new(paths, coll, c);
    else
        json_decref(c);

    json_t *it = json_pack("{s:o}", "parameters", path_params(r->namespaced, true));
    if (ck_word_in(r->verbs, "get"))
        json_object_set_new(it, "get", op("get", "read", scope, k, g, v, k, sc, NULL, NULL));
    if (ck_word_in(r->verbs, "update"))
        json_object_set_new(it, "put", op("put", "replace", scope, k, g, v, k, sc, write_params(false), body_of(sc, false)));
    if (ck_word_in(r->verbs, "patch"))
        json_object_set_new(it, "patch", op("patch", "patch", scope, k, g, v, k, sc, write_params(true), body_of(sc, true)));
    if (ck_word_in(r->verbs, "delete"))
        json_object_set_new(it, "delete", op("delete", "delete", scope, k, g, v, k, NULL,
                                             json_pack("[o]", qparam("dryRun", "When All, do not persist.", "string")), NULL));
    if (json_object_size(it) > 1)
        json_object_set_new(paths, item, it);
    else
        json_decref(it);

    if (r->namespaced && ck_word_in(r->verbs, "list")) {
        snprintf(all, sizeof all, "%s/%s", base, r->resource);
        json_object_set_new(paths, all, json_pack("{s:o, s:o}", "parameters", path_params(false, false), "get",
                                                  op("list", "list", k, "ForAllNamespaces", g, v, k, list_schema,
                                                     list_params(), NULL)));
    }

    /* status and scale: get, put, patch of the parent kind (scale: autoscaling/v1 Scale) */
    static const char *const subs[] = {"status", "scale"};
    for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
        if (!ck_word_in(r->subresources, subs[i]))
            continue;
        char p[448], sfx[32];
        snprintf(p, sizeof p, "%s/%s", item, subs[i]);
        snprintf(sfx, sizeof sfx, "%s", !strcmp(subs[i], "status") ? "Status" : "Scale");
        const char *sg = g, *sv = v, *sk = k, *ss = sc;
        if (!strcmp(subs[i], "scale")) {
            int st = type_index("Scale", 5);
            need_type(nd, st);
            sg = "autoscaling", sv = "v1", sk = "Scale", ss = model.types[st].schema;
        }
        char kid[128];
        snprintf(kid, sizeof kid, "%s%s", k, sfx);
        json_t *s = json_pack("{s:o}", "parameters", path_params(r->namespaced, true));
        json_object_set_new(s, "get", op("get", "read", scope, kid, sg, sv, sk, ss, NULL, NULL));
        json_object_set_new(s, "put", op("put", "replace", scope, kid, sg, sv, sk, ss, write_params(false), body_of(ss, false)));
        json_object_set_new(s, "patch", op("patch", "patch", scope, kid, sg, sv, sk, ss, write_params(true), body_of(ss, true)));
        json_object_set_new(paths, p, s);
    }
}

/* ---- documents ---- */

static bool gv_of_path(const char *gv_path, char *group, size_t gcap, char *version, size_t vcap)
{
    if (!gv_path)
        return false;
    while (*gv_path == '/')
        gv_path++;
    if (!strncmp(gv_path, "api/", 4)) {
        snprintf(group, gcap, "%s", "");
        snprintf(version, vcap, "%s", gv_path + 4);
        return !strchr(version, '/') && version[0];
    }
    if (strncmp(gv_path, "apis/", 5))
        return false;
    const char *g = gv_path + 5, *slash = strchr(g, '/');
    if (!slash || slash == g || !slash[1] || strchr(slash + 1, '/'))
        return false;
    snprintf(group, gcap, "%.*s", (int)(slash - g), g);
    snprintf(version, vcap, "%s", slash + 1);
    return true;
}

static json_t *build_document(const char *group, const char *version)
{
    need nd = {0};
    json_t *paths = json_object();
    json_t *schemas = json_object();
    bool any = false;
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        if (strcmp(r->group, group) || strcmp(r->version, version))
            continue;
        int k = kind_type(r);
        if (k < 0)
            continue;
        any = true;
        need_type(&nd, k);
        /* the List kind, built here: apiVersion, kind, metadata (ListMeta), items */
        char list_name[192], list_kind[96];
        snprintf(list_name, sizeof list_name, "%sList", model.types[k].schema);
        snprintf(list_kind, sizeof list_kind, "%sList", r->kind);
        int lm = type_index("ListMeta", 8);
        need_type(&nd, lm);
        if (!json_object_get(schemas, list_name)) {
            char d[160];
            snprintf(d, sizeof d, "A list of %s objects.", r->kind);
            json_object_set_new(
                schemas, list_name,
                json_pack("{s:s, s:s, s:{s:{s:s}, s:{s:s}, s:{s:[o]}, s:{s:s, s:o}}, s:[s], s:o}", "description", d,
                          "type", "object", "properties", "apiVersion", "type", "string", "kind", "type", "string",
                          "metadata", "allOf", ref_to(model.types[lm].schema), "items", "type", "array", "items",
                          ref_to(model.types[k].schema), "required", "items", "x-kubernetes-group-version-kind",
                          gvk_ext(r->group, r->version, list_kind)));
        }
        add_resource_paths(paths, r, &model.types[k], list_name, &nd);
    }
    if (!any) {
        json_decref(paths);
        json_decref(schemas);
        free(nd.idx);
        return NULL;
    }
    /* closure: type_schema appends what it references; nd.n grows while we walk */
    for (size_t i = 0; i < nd.n; i++) {
        const otype *t = &model.types[nd.idx[i]];
        if (!json_object_get(schemas, t->schema))
            json_object_set_new(schemas, t->schema, type_schema(t, &nd));
    }
    if (nd.time)
        json_object_set_new(schemas, TIME_SCHEMA, json_pack("{s:s, s:s, s:s}", "description",
                                                            "A timestamp in RFC 3339 form, UTC.", "type", "string",
                                                            "format", "date-time"));
    if (nd.quantity)
        json_object_set_new(schemas, QUANTITY_SCHEMA,
                            json_pack("{s:s, s:[{s:s}, {s:s}]}", "description",
                                      "An amount of a resource: a number with an optional suffix, e.g. 500m, 2Gi, 1.5.",
                                      "oneOf", "type", "string", "type", "number"));
    if (nd.intorstr)
        json_object_set_new(schemas, INTORSTR_SCHEMA, json_pack("{s:s, s:s, s:s}", "description",
                                                                "Either an integer or a string (such as a percentage or a port name).",
                                                                "type", "string", "format", "int-or-string"));
    free(nd.idx);
    return json_pack("{s:s, s:{s:s, s:s}, s:o, s:{s:o, s:{s:{s:s, s:s, s:s}}}}", "openapi", "3.0.0", "info",
                     "title", "Kubernetes", "version", "v1.30.0", "paths", paths, "components", "schemas", schemas,
                     "securitySchemes", "BearerToken", "type", "apiKey", "name", "authorization", "in", "header");
}

/* Cache of built documents and their hashes, keyed by "api/v1" / "apis/<g>/<v>". */
static struct {
    pthread_mutex_t mu;
    json_t *docs;     /* path -> document */
    json_t *hashes;   /* path -> hash */
    json_t *texts;    /* path -> serialized document */
} cache = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL};

static json_t *cached_document(const char *path, const char *group, const char *version)
{
    pthread_mutex_lock(&cache.mu);
    if (!cache.docs) {
        cache.docs = json_object();
        cache.hashes = json_object();
        cache.texts = json_object();
    }
    json_t *doc = json_object_get(cache.docs, path);
    if (!doc) {
        doc = build_document(group, version);
        if (doc) {
            char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
            unsigned char md[SHA256_DIGEST_LENGTH];
            SHA256((const unsigned char *)text, strlen(text), md);
            json_object_set_new(cache.texts, path, json_string(text));
            free(text);
            char hex[2 * 32 + 1];
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02X", md[i]);
            json_object_set_new(cache.hashes, path, json_string(hex));
            json_object_set_new(cache.docs, path, doc);
        }
    }
    pthread_mutex_unlock(&cache.mu);
    return doc;   /* borrowed from the cache, never freed while the process runs */
}

/* The cached document for a "api/v1" / "apis/g/v" path (normalized into path), or NULL. */
static json_t *lookup(const char *gv_path, char *path, size_t cap)
{
    char group[128], version[32];
    if (!gv_of_path(gv_path, group, sizeof group, version, sizeof version))
        return NULL;
    model_init();
    if (group[0])
        snprintf(path, cap, "apis/%s/%s", group, version);
    else
        snprintf(path, cap, "api/%s", version);
    return cached_document(path, group, version);
}

json_t *ck_openapi_v3_document(const char *gv_path)
{
    char path[192];
    json_t *doc = lookup(gv_path, path, sizeof path);
    return doc ? json_deep_copy(doc) : NULL;
}

const char *ck_openapi_v3_document_json(const char *gv_path, size_t *len, const char **hash)
{
    char path[192];
    if (!lookup(gv_path, path, sizeof path))
        return NULL;
    /* cached entries are never replaced or removed, so the pointers stay valid */
    pthread_mutex_lock(&cache.mu);
    json_t *t = json_object_get(cache.texts, path);
    if (hash)
        *hash = json_string_value(json_object_get(cache.hashes, path));
    pthread_mutex_unlock(&cache.mu);
    if (len)
        *len = json_string_length(t);
    return json_string_value(t);
}

json_t *ck_openapi_v3_root(void)
{
    model_init();
    json_t *paths = json_object();
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        char path[192];
        if (r->group[0])
            snprintf(path, sizeof path, "apis/%s/%s", r->group, r->version);
        else
            snprintf(path, sizeof path, "api/%s", r->version);
        if (json_object_get(paths, path) || !cached_document(path, r->group, r->version))
            continue;
        pthread_mutex_lock(&cache.mu);
        char *url = xasprintf("/openapi/v3/%s?hash=%s", path, json_string_value(json_object_get(cache.hashes, path)));
        pthread_mutex_unlock(&cache.mu);
        json_object_set_new(paths, path, json_pack("{s:s}", "serverRelativeURL", url));
        free(url);
    }
    return json_pack("{s:o}", "paths", paths);
}

void ck_openapi_v2(const char *accept, const char **content_type, const char **body, size_t *len)
{
    /* kubectl 1.27/1.28 read v2 only as protobuf; an empty document lets them go on to v3
     * (kubectl-wire.md 1).  The Content-Type must not contain '@'. */
    if (accept && strstr(accept, "protobuf")) {
        *content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
        *body = "";
        *len = 0;
        return;
    }
    static const char v2_json[] =
        "{\"swagger\":\"2.0\",\"info\":{\"title\":\"Kubernetes\",\"version\":\"v1.30.0\"},\"paths\":{},\"definitions\":{}}";
    *content_type = "application/json";
    *body = v2_json;
    *len = sizeof v2_json - 1;
}

/* ---- unknown fields ---- */

static void walk(const otype *t, const json_t *obj, char *path, size_t plen, size_t cap, json_t *unknown, int depth);

static void walk_value(const ftype *ft, size_t wrap_at, const json_t *v, char *path, size_t plen, size_t cap,
                       json_t *unknown, int depth)
{
    if (depth > 64)
        return;
    char w = ft->wrap[wrap_at];
    if (w == '[') {
        if (!json_is_array(v))
            return;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            int n = snprintf(path + plen, cap - plen, "[%zu]", i);
            if (n > 0 && (size_t)n < cap - plen)
                walk_value(ft, wrap_at + 1, e, path, plen + (size_t)n, cap, unknown, depth + 1);
        }
        path[plen] = 0;
    } else if (w == '{') {
        if (!json_is_object(v))
            return;
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e) {
            int n = snprintf(path + plen, cap - plen, ".%s", k);
            if (n > 0 && (size_t)n < cap - plen)
                walk_value(ft, wrap_at + 1, e, path, plen + (size_t)n, cap, unknown, depth + 1);
        }
        path[plen] = 0;
    } else if (ft->prim == P_REF && json_is_object(v)) {
        walk(&model.types[ft->ref], v, path, plen, cap, unknown, depth + 1);
    }
}

static void walk(const otype *t, const json_t *obj, char *path, size_t plen, size_t cap, json_t *unknown, int depth)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        /* a root's status is written by controllers with whatever their version knows: never
         * reject it */
        if (depth == 0 && !strcmp(k, "status"))
            continue;
        int n = snprintf(path + plen, cap - plen, ".%s", k);
        if (n <= 0 || (size_t)n >= cap - plen)
            continue;
        size_t nl = plen + (size_t)n;
        const field *f = NULL;
        for (size_t i = 0; i < t->nfields && !f; i++)
            if (!strcmp(t->fields[i].name, k))
                f = &t->fields[i];
        if (f) {
            walk_value(&f->t, 0, v, path, nl, cap, unknown, depth);
        } else if (is_root(t) && (!strcmp(k, "apiVersion") || !strcmp(k, "kind"))) {
            /* declared on every kind */
        } else if (is_root(t) && !strcmp(k, "metadata")) {
            if (json_is_object(v))
                walk(&model.types[type_index("ObjectMeta", 10)], v, path, nl, cap, unknown, depth + 1);
        } else {
            json_array_append_new(unknown, json_string(path));
        }
        path[plen] = 0;
    }
}

/* The root type named by a body's kind (a served kind or a subresource kind), or -1. */
static int root_by_kind(const char *kind)
{
    for (size_t i = 0; i < model.ntypes; i++) {
        const otype *t = &model.types[i];
        if ((t->kind_of && !strcmp(t->kind_of->kind, kind)) || (t->gvk_kind && !strcmp(t->gvk_kind, kind)))
            return (int)i;
    }
    return -1;
}

static void check(int k, const json_t *obj, json_t *unknown)
{
    if (k < 0 || !json_is_object(obj) || !json_is_array(unknown))
        return;   /* no schema: nothing is unknown */
    char path[1024] = "";
    walk(&model.types[k], obj, path, 0, sizeof path, unknown, 0);
}

void ck_openapi_unknown_fields(const ck_resource *r, const json_t *obj, json_t *unknown)
{
    if (!r)
        return;
    model_init();
    int k = kind_type(r);
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    if (kind && strcmp(kind, r->kind))
        k = root_by_kind(kind);   /* e.g. a Scale sent to deployments/scale */
    check(k, obj, unknown);
}

void ck_openapi_subresource_unknown_fields(const ck_resource *r, const char *subresource,
                                           const json_t *obj, json_t *unknown)
{
    if (!r)
        return;
    if (!subresource || !*subresource || !strcmp(subresource, "status") ||
        !strcmp(subresource, "ephemeralcontainers") || !strcmp(subresource, "resize")) {
        ck_openapi_unknown_fields(r, obj, unknown);
        return;
    }
    static const char *const body_kinds[][2] = {
        {"scale", "Scale"}, {"token", "TokenRequest"}, {"eviction", "Eviction"}, {"binding", "Binding"}};
    model_init();
    for (size_t i = 0; i < ARRAY_SIZE(body_kinds); i++)
        if (!strcmp(subresource, body_kinds[i][0])) {
            check(root_by_kind(body_kinds[i][1]), obj, unknown);
            return;
        }
}

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
#include <stdint.h>
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
    bool int64;           /* an integer field that is an int64 in Go (the rest are int32) */
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

/* The integer fields that are int64 in upstream's Go types (every other integer is an int32):
 * the decoder's type errors name the width. */
static const char INT64_FIELDS[] =
    " ObjectMeta.deletionGracePeriodSeconds ObjectMeta.generation PodSpec.activeDeadlineSeconds"
    " PodSpec.terminationGracePeriodSeconds Probe.terminationGracePeriodSeconds"
    " SecurityContext.runAsGroup SecurityContext.runAsUser PodSecurityContext.fsGroup"
    " PodSecurityContext.runAsGroup PodSecurityContext.runAsUser PodSecurityContext.supplementalGroups"
    " Toleration.tolerationSeconds ServiceAccountTokenProjection.expirationSeconds"
    " ContainerImage.sizeBytes ControllerRevision.revision JobSpec.activeDeadlineSeconds"
    " CronJobSpec.startingDeadlineSeconds DeleteOptions.gracePeriodSeconds"
    " TokenRequestSpec.expirationSeconds ListMeta.remainingItemCount SleepAction.seconds ";

static bool is_int64(const char *type, const char *name)
{
    if (!strcmp(name, "observedGeneration"))
        return true;
    char key[160];
    snprintf(key, sizeof key, " %s.%s ", schema_short(type), name);
    return strstr(INT64_FIELDS, key) != NULL;
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
static int kind_type_scan(const ck_resource *r);

/* Memoized per built-in resource: the scan over every schema type was ~50k instructions, paid
 * by every write's field check.  Racing fillers store the same value. */
static int kind_type(const ck_resource *r)
{
    static int memo[512];   /* index + 2; 0 = not yet known */
    uintptr_t d = (uintptr_t)r - (uintptr_t)ck_resources;
    size_t i = d / sizeof *r;
    if (d % sizeof *r || i >= ck_nresources || i >= ARRAY_SIZE(memo))
        return kind_type_scan(r);
    int m = __atomic_load_n(&memo[i], __ATOMIC_RELAXED);
    if (m)
        return m - 2;
    int k = kind_type_scan(r);
    __atomic_store_n(&memo[i], k + 2, __ATOMIC_RELAXED);
    return k;
}

static int kind_type_scan(const ck_resource *r)
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
        size_t len;
        for (const char *rest = t->src->fields, *p; (p = ck_word_next(&rest, &len));) {
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
                if (f->t.prim == P_INTEGER)
                    f->int64 = is_int64(t->src->name, f->name);
            }
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

/* ---- one walk: unknown fields and JSON types ---- */

/* Upstream decodes a body into the kind's Go struct; a JSON value of the wrong type fails there
 * with encoding/json's UnmarshalTypeError, which names the innermost struct, the path of JSON
 * field names from the root (no list indices, no map keys) and the Go type:
 *   json: cannot unmarshal array into Go struct field ConfigMap.data of type map[string]string
 * The walk keeps that context next to the unknown-field path and stops checking types at the
 * first mismatch (the decoder reports the first one). */
typedef struct walkctx {
    json_t *unknown;          /* NULL: unknown fields not wanted */
    ck_type_error *te;        /* NULL: types not checked */
    char path[1024];          /* ".spec.containers[0].image" for unknown fields */
    char gopath[512];         /* "spec.containers.image" for type errors */
    const char *strct;        /* the innermost struct's Go name */
} walkctx;

static void walk(walkctx *w, const otype *t, const json_t *obj, size_t plen, size_t glen, int depth);

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "null";
    }
}

/* The Go type of ft from wrap level `at` on, as reflect prints it. */
static void go_type(const ftype *ft, size_t at, bool int64, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = at; ft->wrap[i] && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s", ft->wrap[i] == '[' ? "[]" : "map[string]");
    if (n >= cap)
        return;
    const char *base = "";
    char ref[96];
    switch (ft->prim) {
    case P_STRING: base = "string"; break;
    case P_INTEGER: base = int64 ? "int64" : "int32"; break;
    case P_NUMBER: base = "float64"; break;
    case P_BOOLEAN: base = "bool"; break;
    case P_TIME: base = "v1.Time"; break;
    case P_QUANTITY: base = "resource.Quantity"; break;
    case P_INTORSTR: base = "intstr.IntOrString"; break;
    case P_RAW: base = "runtime.RawExtension"; break;
    case P_REF:
        snprintf(ref, sizeof ref, "v1.%s", schema_short(model.types[ft->ref].src->name));
        base = ref;
        break;
    }
    snprintf(out + n, cap - n, "%s", base);
}

static void type_error(walkctx *w, const char *got, const char *want)
{
    ck_type_error *te = w->te;
    te->found = true;
    if (w->strct)
        snprintf(te->msg, sizeof te->msg, "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
                 got, w->strct, w->gopath, want);
    else
        snprintf(te->msg, sizeof te->msg, "json: cannot unmarshal %s into Go value of type %s", got, want);
    snprintf(te->path, sizeof te->path, "%s", w->path[0] == '.' ? w->path + 1 : w->path);
}

/* "number 1.5" for a number an integer field cannot hold, as the decoder quotes the literal */
static void number_error(walkctx *w, const json_t *v, const char *want)
{
    char got[64];
    if (json_is_integer(v))
        snprintf(got, sizeof got, "number %" JSON_INTEGER_FORMAT, json_integer_value(v));
    else {
        char *d = json_dumps(v, JSON_ENCODE_ANY);
        snprintf(got, sizeof got, "number %s", d ? d : "?");
        free(d);
    }
    type_error(w, got, want);
}

/* upstream's ParseQuantity, the syntax only: [+-]digits[.digits] then a binary suffix (Ki..Ei),
 * a decimal one (n u m "" k M G T P E) or an exponent ([eE][+-]digits); 0 or the error text. */
static const char *quantity_syntax(const char *s)
{
    static const char *const wrong =
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (!digits)
        return wrong;
    const char *suf = s + i;
    size_t sl = n - i;
    static const char *const suffixes[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m",
                                           "k", "M", "G", "T", "P", "E"};
    for (size_t k = 0; k < ARRAY_SIZE(suffixes); k++)
        if (strlen(suffixes[k]) == sl && !strncmp(suffixes[k], suf, sl))
            return NULL;
    /* the regular expression's shape: letters from the set, then an optional signed number */
    size_t j = 0;
    while (j < sl && strchr("eEinumkKMGTP", suf[j]))
        j++;
    size_t letters = j;
    if (j < sl && (suf[j] == '+' || suf[j] == '-'))
        j++;
    while (j < sl && suf[j] >= '0' && suf[j] <= '9')
        j++;
    if (j < sl)
        return wrong;
    if ((suf[0] == 'e' || suf[0] == 'E') && letters == 1 && sl > 1) {
        size_t k = 1 + (suf[1] == '+' || suf[1] == '-');
        if (k < sl)
            return NULL;     /* an exponent */
    }
    return "unable to parse quantity's suffix";
}

static void check_scalar(walkctx *w, const ftype *ft, bool int64, const json_t *v)
{
    switch (ft->prim) {
    case P_STRING:
        if (!json_is_string(v))
            type_error(w, json_kind(v), "string");
        break;
    case P_BOOLEAN:
        if (!json_is_boolean(v))
            type_error(w, json_kind(v), "bool");
        break;
    case P_NUMBER:
        if (!json_is_number(v))
            type_error(w, json_kind(v), "float64");
        break;
    case P_INTEGER:
    case P_INTORSTR: {
        /* IntOrString: a string, else its int32 (the inner decode's error, in the field's context) */
        if (ft->prim == P_INTORSTR && json_is_string(v))
            break;
        const char *want = ft->prim == P_INTEGER && int64 ? "int64" : "int32";
        if (json_is_real(v))
            number_error(w, v, want);
        else if (!json_is_integer(v))
            type_error(w, json_kind(v), want);
        else if (!int64 || ft->prim == P_INTORSTR) {
            json_int_t n = json_integer_value(v);
            if (n < INT32_MIN || n > INT32_MAX)
                number_error(w, v, want);
        }
        break;
    }
    case P_TIME:
        /* metav1.Time decodes a string (its own UnmarshalJSON); the format is not checked here */
        if (!json_is_string(v))
            type_error(w, json_kind(v), "string");
        break;
    case P_QUANTITY: {
        const char *why = NULL;
        if (json_is_string(v))
            why = quantity_syntax(json_string_value(v));
        else if (!json_is_number(v))
            why = quantity_syntax("");   /* not a number: the format error */
        if (why) {
            w->te->found = true;
            snprintf(w->te->msg, sizeof w->te->msg, "%s", why);
            snprintf(w->te->path, sizeof w->te->path, "%s", w->path[0] == '.' ? w->path + 1 : w->path);
        }
        break;
    }
    default:
        break;
    }
}

static void walk_value(walkctx *w, const field *f, size_t wrap_at, const json_t *v, size_t plen,
                       size_t glen, int depth)
{
    if (depth > 64 || json_is_null(v))
        return;   /* null decodes into anything (the zero value) */
    const ftype *ft = &f->t;
    bool types = w->te && !w->te->found;
    char want[160];
    char c = ft->wrap[wrap_at];
    if (c == '[' || c == '{') {
        if (c == '[' ? !json_is_array(v) : !json_is_object(v)) {
            if (types) {
                go_type(ft, wrap_at, f->int64, want, sizeof want);
                type_error(w, json_kind(v), want);
            }
            return;
        }
        size_t i;
        const char *k;
        json_t *e;
        if (c == '[') {
            json_array_foreach(v, i, e) {
                int n = snprintf(w->path + plen, sizeof w->path - plen, "[%zu]", i);
                if (n > 0 && (size_t)n < sizeof w->path - plen)
                    walk_value(w, f, wrap_at + 1, e, plen + (size_t)n, glen, depth + 1);
            }
        } else {
            json_object_foreach((json_t *)v, k, e) {
                int n = snprintf(w->path + plen, sizeof w->path - plen, ".%s", k);
                if (n > 0 && (size_t)n < sizeof w->path - plen)
                    walk_value(w, f, wrap_at + 1, e, plen + (size_t)n, glen, depth + 1);
            }
        }
        w->path[plen] = 0;
    } else if (ft->prim == P_REF) {
        if (json_is_object(v)) {
            walk(w, &model.types[ft->ref], v, plen, glen, depth + 1);
        } else if (types) {
            go_type(ft, wrap_at, false, want, sizeof want);
            type_error(w, json_kind(v), want);
        }
    } else if (types) {
        check_scalar(w, ft, f->int64, v);
    }
}

/* Append sep + key to buf at len (a no-op returning len when it would not fit). */
static size_t append(char *buf, size_t cap, size_t len, const char *sep, const char *key, size_t klen)
{
    size_t sl = strlen(sep);
    if (len + sl + klen + 1 > cap)
        return len;
    memcpy(buf + len, sep, sl);
    memcpy(buf + len + sl, key, klen);
    buf[len + sl + klen] = 0;
    return len + sl + klen;
}

static void walk(walkctx *w, const otype *t, const json_t *obj, size_t plen, size_t glen, int depth)
{
    const char *outer = w->strct;
    const char *name = t->kind_of ? t->kind_of->kind : schema_short(t->src->name);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        w->strct = name;
        size_t klen = strlen(k);
        size_t nl = append(w->path, sizeof w->path, plen, ".", k, klen);
        if (nl == plen)
            continue;
        size_t gl = append(w->gopath, sizeof w->gopath, glen, glen ? "." : "", k, klen);
        const field *f = NULL;
        for (size_t i = 0; i < t->nfields && !f; i++)
            if (!strcmp(t->fields[i].name, k))
                f = &t->fields[i];
        /* a root's status is written by controllers with whatever their version knows: never
         * call its fields unknown (its types are still checked) */
        json_t *unknown = w->unknown;
        if (depth == 0 && !strcmp(k, "status"))
            w->unknown = NULL;
        if (f) {
            walk_value(w, f, 0, v, nl, gl, depth);
        } else if (is_root(t) && (!strcmp(k, "apiVersion") || !strcmp(k, "kind"))) {
            if (w->te && !w->te->found && !json_is_string(v) && !json_is_null(v))
                type_error(w, json_kind(v), "string");
        } else if (is_root(t) && !strcmp(k, "metadata")) {
            if (json_is_object(v))
                walk(w, &model.types[type_index("ObjectMeta", 10)], v, nl, gl, depth + 1);
            else if (w->te && !w->te->found && !json_is_null(v))
                type_error(w, json_kind(v), "v1.ObjectMeta");
        } else if (w->unknown) {
            json_array_append_new(w->unknown, json_string(w->path));
        }
        w->unknown = unknown;
        w->path[plen] = 0;
        w->gopath[glen] = 0;
    }
    w->strct = outer;
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

static void check(int k, const json_t *obj, json_t *unknown, ck_type_error *te)
{
    if (te)
        memset(te, 0, sizeof *te);
    if (k < 0 || !json_is_object(obj) || (unknown && !json_is_array(unknown)))
        return;   /* no schema: nothing is unknown, every type is right */
    walkctx w;
    w.unknown = unknown;
    w.te = te;
    w.path[0] = w.gopath[0] = 0;
    w.strct = NULL;
    walk(&w, &model.types[k], obj, 0, 0, 0);
}

static int kind_of_body(const ck_resource *r, const json_t *obj)
{
    model_init();
    int k = kind_type(r);
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    if (kind && strcmp(kind, r->kind))
        k = root_by_kind(kind);   /* e.g. a Scale sent to deployments/scale */
    return k;
}

void ck_openapi_unknown_fields(const ck_resource *r, const json_t *obj, json_t *unknown)
{
    if (r)
        check(kind_of_body(r, obj), obj, unknown, NULL);
}

bool ck_openapi_check(const ck_resource *r, const json_t *obj, json_t *unknown, ck_type_error *te)
{
    if (te)
        memset(te, 0, sizeof *te);
    if (!r)
        return false;
    check(kind_of_body(r, obj), obj, unknown, te);
    return te && te->found;
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
            check(root_by_kind(body_kinds[i][1]), obj, unknown, NULL);
            return;
        }
}

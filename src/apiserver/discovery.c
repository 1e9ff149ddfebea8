/* discovery.c - legacy and aggregated discovery documents (see discovery.h), generated from the
 * resource table on every call (they are small; the caller may cache the serialized bytes).
 *
 * Facts the shapes follow (upstream 1.30): /api is an APIVersions with serverAddressByClientCIDRs;
 * /apis an APIGroupList whose groups carry preferredVersion; each group-version an APIResourceList
 * where a subresource is its own entry ("pods/log") with an empty singularName and, when its kind
 * lives in another group (deployments/scale -> autoscaling/v1 Scale), that group and version set
 * on the entry.  Aggregated discovery nests the same facts per group/version/resource. */
#include "apiserver/discovery.h"
#include "apiserver/resources.h"
#include "lib/util.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>


static char server_address[128] = "127.0.0.1:6443";

void ck_discovery_set_server_address(const char *host_port)
{
    snprintf(server_address, sizeof server_address, "%s", host_port ? host_port : "");
}

/* ---- Accept negotiation ---- */

/* One media range of an Accept header: type/subtype plus the parameters discovery cares about. */
struct media {
    char type[64];
    char g[64], v[64], as[64];
    int q_zero;
};

static void trim_copy(char *dst, size_t cap, const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

static void parse_media(const char *s, size_t n, struct media *m)
{
    memset(m, 0, sizeof *m);
    const char *end = s + n;
    const char *semi = memchr(s, ';', n);
    trim_copy(m->type, sizeof m->type, s, (size_t)((semi ? semi : end) - s));
    while (semi && semi < end) {
        const char *p = semi + 1;
        semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (!eq)
            continue;
        char key[16], val[64];
        trim_copy(key, sizeof key, p, (size_t)(eq - p));
        trim_copy(val, sizeof val, eq + 1, (size_t)(pe - eq - 1));
        if (!strcasecmp(key, "g"))
            snprintf(m->g, sizeof m->g, "%s", val);
        else if (!strcasecmp(key, "v"))
            snprintf(m->v, sizeof m->v, "%s", val);
        else if (!strcasecmp(key, "as"))
            snprintf(m->as, sizeof m->as, "%s", val);
        else if (!strcasecmp(key, "q"))
            m->q_zero = strtod(val, NULL) <= 0.0;
    }
}

/* The first media range we can serve wins: the client lists them best first (kubectl never sends
 * q-values; q=0 means "not this one").  Protobuf ranges are skipped (we answer JSON only). */
enum ck_discovery_format ck_discovery_negotiate(const char *accept)
{
    if (!accept)
        return CK_DISCOVERY_LEGACY;
    const char *p = accept;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        struct media m;
        parse_media(p, n, &m);
        p = comma ? comma + 1 : p + n;
        if (m.q_zero)
            continue;
        bool json = !strcasecmp(m.type, "application/json");
        bool any = !strcmp(m.type, "*/*") || !strcasecmp(m.type, "application/*");
        if (json && !strcmp(m.as, "APIGroupDiscoveryList") && !strcmp(m.g, "apidiscovery.k8s.io")) {
            if (!strcmp(m.v, "v2"))
                return CK_DISCOVERY_V2;
            if (!strcmp(m.v, "v2beta1"))
                return CK_DISCOVERY_V2BETA1;
            continue;   /* a version we do not serve */
        }
        if ((json || any) && !m.as[0])
            return CK_DISCOVERY_LEGACY;
    }
    return CK_DISCOVERY_LEGACY;
}

const char *ck_discovery_content_type(enum ck_discovery_format f)
{
    switch (f) {
    case CK_DISCOVERY_V2:
        return "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    case CK_DISCOVERY_V2BETA1:
        return "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
    default:
        return "application/json";
    }
}

/* ---- groups ---- */

/* Upstream's /apis order (its group priorities); groups not listed follow in table order. */
static const char *const group_order[] = {
    "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io",
    "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
    "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
    "discovery.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io",
};

static bool group_served(const char *g)
{
    for (size_t i = 0; i < ck_nresources; i++)
        if (!strcmp(ck_resources[i].group, g))
            return true;
    return false;
}

/* Fills out[] with the distinct non-core groups in /apis order; returns the count. */
static size_t served_groups(const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(group_order) && n < cap; i++)
        if (group_served(group_order[i]))
            out[n++] = group_order[i];
    for (size_t i = 0; i < ck_nresources && n < cap; i++) {
        const char *g = ck_resources[i].group;
        bool seen = !g[0];
        for (size_t j = 0; j < n && !seen; j++)
            seen = !strcmp(out[j], g);
        if (!seen)
            out[n++] = g;
    }
    return n;
}

/* Versions of a group in table order; the first listed is preferred (the table lists the
 * preferred version first). */
static size_t group_versions(const char *g, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < ck_nresources && n < cap; i++) {
        const ck_resource *r = &ck_resources[i];
        if (strcmp(r->group, g))
            continue;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = !strcmp(out[j], r->version);
        if (!seen)
            out[n++] = r->version;
    }
    /* "v1" outranks betas and alphas whatever the table order */
    for (size_t j = 1; j < n; j++)
        if (!strcmp(out[j], "v1")) {
            const char *t = out[0];
            out[0] = out[j];
            out[j] = t;
        }
    return n;
}

static json_t *gv_obj(const char *g, const char *v)
{
    char gv[160];
    snprintf(gv, sizeof gv, "%s/%s", g, v);
    return json_pack("{s:s, s:s}", "groupVersion", gv, "version", v);
}

json_t *ck_discovery_api_versions(void)
{
    return json_pack("{s:s, s:[s], s:[{s:s, s:s}]}", "kind", "APIVersions", "versions", "v1",
                     "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0", "serverAddress",
                     server_address);
}

json_t *ck_discovery_api_groups(void)
{
    const char *groups[64];
    size_t ng = served_groups(groups, ARRAY_SIZE(groups));
    json_t *arr = json_array();
    for (size_t i = 0; i < ng; i++) {
        const char *vers[8];
        size_t nv = group_versions(groups[i], vers, ARRAY_SIZE(vers));
        json_t *va = json_array();
        for (size_t j = 0; j < nv; j++)
            json_array_append_new(va, gv_obj(groups[i], vers[j]));
        json_array_append_new(arr, json_pack("{s:s, s:o, s:o}", "name", groups[i], "versions", va,
                                             "preferredVersion", gv_obj(groups[i], vers[0])));
    }
    return json_pack("{s:s, s:s, s:o}", "kind", "APIGroupList", "apiVersion", "v1", "groups", arr);
}

/* ---- resources and subresources ---- */

/* What a subresource returns and allows.  kind NULL = the parent's kind; "*ProxyOptions" =
 * parent kind + "ProxyOptions" (PodProxyOptions, NodeProxyOptions, ServiceProxyOptions). */
static const struct subres_info {
    const char *name, *group, *version, *kind, *verbs;
} subres_infos[] = {
    {"status", NULL, NULL, NULL, "get patch update"},
    {"scale", "autoscaling", "v1", "Scale", "get patch update"},
    {"binding", "", "v1", "Binding", "create"},
    {"log", NULL, NULL, NULL, "get"},
    {"exec", "", "v1", "PodExecOptions", "create get"},
    {"attach", "", "v1", "PodAttachOptions", "create get"},
    {"portforward", "", "v1", "PodPortForwardOptions", "create get"},
    {"proxy", "", "v1", "*ProxyOptions", "create delete get patch update"},
    {"eviction", "policy", "v1", "Eviction", "create"},
    {"ephemeralcontainers", NULL, NULL, NULL, "get patch update"},
    {"resize", NULL, NULL, NULL, "get patch update"},
    {"finalize", NULL, NULL, NULL, "update"},
    {"token", "authentication.k8s.io", "v1", "TokenRequest", "create"},
};

static const struct subres_info default_subres = {"", NULL, NULL, NULL, "get patch update"};

static const struct subres_info *subres_lookup(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(subres_infos); i++)
        if (!strcmp(subres_infos[i].name, name))
            return &subres_infos[i];
    return &default_subres;
}

/* The group, version and kind a subresource answers with. */
static void subres_gvk(const ck_resource *r, const struct subres_info *si, const char **g,
                       const char **v, char *kind, size_t cap)
{
    *g = si->group ? si->group : r->group;
    *v = si->version ? si->version : r->version;
    if (!si->kind)
        snprintf(kind, cap, "%s", r->kind);
    else if (si->kind[0] == '*')
        snprintf(kind, cap, "%s%s", r->kind, si->kind + 1);
    else
        snprintf(kind, cap, "%s", si->kind);
}

static json_t *words_array(const char *words)
{
    json_t *a = json_array();
    size_t len;
    for (const char *p = words, *w; (w = ck_word_next(&p, &len));)
        json_array_append_new(a, json_stringn(w, len));
    return a;
}

/* The subresource words of r in names (up to cap), in alphabetical order as upstream lists
 * them; returns how many. */
static size_t sorted_subresources(const ck_resource *r, char names[][32], size_t cap)
{
    size_t n = 0, len;
    for (const char *p = r->subresources, *w; n < cap && (w = ck_word_next(&p, &len));) {
        if (len < 32) {
            memcpy(names[n], w, len);
            names[n][len] = 0;
            n++;
        }
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[32];
            memcpy(t, names[j], 32);
            memcpy(names[j], names[j - 1], 32);
            memcpy(names[j - 1], t, 32);
        }
    return n;
}

/* Upstream's storageVersionHash: base64 of the first 8 bytes of sha256("group/version/kind"). */
static void storage_version_hash(const ck_resource *r, char out[16])
{
    char in[256];
    unsigned char md[SHA256_DIGEST_LENGTH];
    int n = snprintf(in, sizeof in, "%s/%s/%s", r->group, r->version, r->kind);
    SHA256((const unsigned char *)in, (size_t)n, md);
    EVP_EncodeBlock((unsigned char *)out, md, 8);
}

static bool stored(const ck_resource *r)
{
    /* create-only review APIs and bindings are not persisted: upstream gives them no hash */
    return ck_word_in(r->verbs, "get");
}

json_t *ck_discovery_resource_list(const char *group, const char *version)
{
    if (!group || !version)
        return NULL;
    json_t *arr = json_array();
    bool any = false;
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        if (strcmp(r->group, group) || strcmp(r->version, version))
            continue;
        any = true;
        json_t *e = json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", r->resource, "singularName",
                              r->singular, "namespaced", r->namespaced, "kind", r->kind, "verbs",
                              words_array(r->verbs));
        if (r->short_names[0])
            json_object_set_new(e, "shortNames", words_array(r->short_names));
        if (r->categories[0])
            json_object_set_new(e, "categories", words_array(r->categories));
        if (stored(r)) {
            char h[16];
            storage_version_hash(r, h);
            json_object_set_new(e, "storageVersionHash", json_string(h));
        }
        json_array_append_new(arr, e);

        char subs[16][32];
        size_t ns = sorted_subresources(r, subs, ARRAY_SIZE(subs));
        for (size_t k = 0; k < ns; k++) {
            const struct subres_info *si = subres_lookup(subs[k]);
            const char *sg, *sv;
            char kind[96], name[96];
            subres_gvk(r, si, &sg, &sv, kind, sizeof kind);
            snprintf(name, sizeof name, "%s/%s", r->resource, subs[k]);
            json_t *s = json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", name, "singularName", "",
                                  "namespaced", r->namespaced, "kind", kind, "verbs",
                                  words_array(si->verbs));
            if (strcmp(sg, group) || strcmp(sv, version)) {
                json_object_set_new(s, "group", json_string(sg));
                json_object_set_new(s, "version", json_string(sv));
            }
            json_array_append_new(arr, s);
        }
    }
    if (!any) {
        json_decref(arr);
        return NULL;
    }
    char gv[160];
    if (group[0])
        snprintf(gv, sizeof gv, "%s/%s", group, version);
    else
        snprintf(gv, sizeof gv, "%s", version);
    return json_pack("{s:s, s:s, s:s, s:o}", "kind", "APIResourceList", "apiVersion", "v1",
                     "groupVersion", gv, "resources", arr);
}

/* ---- aggregated ---- */

static json_t *gvk_obj(const char *g, const char *v, const char *k)
{
    return json_pack("{s:s, s:s, s:s}", "group", g, "version", v, "kind", k);
}

static json_t *agg_resource(const ck_resource *r)
{
    json_t *e = json_pack("{s:s, s:o, s:s, s:s, s:o}", "resource", r->resource, "responseKind",
                          gvk_obj(r->group, r->version, r->kind), "scope",
                          r->namespaced ? "Namespaced" : "Cluster", "singularResource", r->singular,
                          "verbs", words_array(r->verbs));
    if (r->short_names[0])
        json_object_set_new(e, "shortNames", words_array(r->short_names));
    if (r->categories[0])
        json_object_set_new(e, "categories", words_array(r->categories));
    char subs[16][32];
    size_t ns = sorted_subresources(r, subs, ARRAY_SIZE(subs));
    if (ns) {
        json_t *sa = json_array();
        for (size_t k = 0; k < ns; k++) {
            const struct subres_info *si = subres_lookup(subs[k]);
            const char *sg, *sv;
            char kind[96];
            subres_gvk(r, si, &sg, &sv, kind, sizeof kind);
            json_array_append_new(sa, json_pack("{s:s, s:o, s:o}", "subresource", subs[k],
                                                "responseKind", gvk_obj(sg, sv, kind), "verbs",
                                                words_array(si->verbs)));
        }
        json_object_set_new(e, "subresources", sa);
    }
    return e;
}

static json_t *agg_group(const char *g)
{
    const char *vers[8];
    size_t nv = group_versions(g, vers, ARRAY_SIZE(vers));
    json_t *va = json_array();
    for (size_t j = 0; j < nv; j++) {
        json_t *ra = json_array();
        for (size_t i = 0; i < ck_nresources; i++) {
            const ck_resource *r = &ck_resources[i];
            if (!strcmp(r->group, g) && !strcmp(r->version, vers[j]))
                json_array_append_new(ra, agg_resource(r));
        }
        json_array_append_new(va, json_pack("{s:s, s:o, s:s}", "version", vers[j], "resources", ra,
                                            "freshness", "Current"));
    }
    json_t *meta = json_pack("{s:n}", "creationTimestamp");
    if (g[0])
        json_object_set_new(meta, "name", json_string(g));
    return json_pack("{s:o, s:o}", "metadata", meta, "versions", va);
}

json_t *ck_discovery_aggregated(int core, enum ck_discovery_format f)
{
    json_t *items = json_array();
    if (core) {
        json_array_append_new(items, agg_group(""));
    } else {
        const char *groups[64];
        size_t ng = served_groups(groups, ARRAY_SIZE(groups));
        for (size_t i = 0; i < ng; i++)
            json_array_append_new(items, agg_group(groups[i]));
    }
    const char *av = f == CK_DISCOVERY_V2 ? "apidiscovery.k8s.io/v2" : "apidiscovery.k8s.io/v2beta1";
    return json_pack("{s:s, s:s, s:{}, s:o}", "kind", "APIGroupDiscoveryList", "apiVersion", av,
                     "metadata", "items", items);
}

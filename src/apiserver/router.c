/* router.c - API paths to (resource, namespace, name, subresource, verb).
 *
 *   /api | /apis | /apis/G                                  discovery
 *   /api/v1 | /apis/G/V                                     the group-version's resource list
 *   {prefix}/R[/NAME[/SUB]]                                 cluster-scoped, or all namespaces
 *   {prefix}/namespaces/NS/R[/NAME[/SUB]]                   namespaced
 *   {prefix}/namespaces/NAME/status|finalize                the namespace's own subresources
 *   {prefix}/watch/...                                      legacy watch paths
 * The verb follows the method, whether a name is present, and ?watch=true.
 */
#include "apiserver/apiserver.h"

#include <stdlib.h>
#include <string.h>

static const char *const verb_names[CK_VERB__COUNT] = {
    "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
};

const char *ck_verb_name(enum ck_verb v)
{
    return v < CK_VERB__COUNT ? verb_names[v] : "unknown";
}

void ck_route_free(ck_route *r)
{
    free(r->group);
    free(r->version);
    free(r->namespace_);
    free(r->name);
    free(r->subresource);
    memset(r, 0, sizeof *r);
}

#define MAX_SEGS 12

static int split(const char *path, char *segs[MAX_SEGS], char *buf, size_t bufsz)
{
    size_t n = strlen(path);
    if (n >= bufsz)
        return -1;
    memcpy(buf, path, n + 1);
    int count = 0;
    for (char *p = buf; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        if (count == MAX_SEGS)
            return -1;
        segs[count++] = p;
        char *e = strchr(p, '/');
        if (!e)
            break;
        *e = '\0';
        p = e + 1;
    }
    return count;
}

static int not_found(ck_error **err)
{
    return ck_error_set(err, CK_E_NOT_FOUND, "the server could not find the requested resource");
}

static int method_not_allowed(ck_error **err, const char *method)
{
    return ck_error_set(err, CK_E_METHOD, "the server does not allow this method on the requested resource");
}

int ck_route_parse(const char *method, const char *path, const char *query, ck_route *out,
                   ck_error **err)
{
    memset(out, 0, sizeof *out);
    char buf[2048];
    char *s[MAX_SEGS];
    int n = split(path, s, buf, sizeof buf);
    if (n <= 0)
        return not_found(err);
    int i;
    const char *group, *version;
    if (!strcmp(s[0], "api")) {
        if (n == 1) {
            out->kind = CK_ROUTE_API;
            return strcmp(method, "GET") ? method_not_allowed(err, method) : 0;
        }
        if (strcmp(s[1], "v1"))
            return not_found(err);
        group = "";
        version = s[1];
        i = 2;
    } else if (!strcmp(s[0], "apis")) {
        if (n == 1 || n == 2) {
            out->kind = n == 1 ? CK_ROUTE_APIS : CK_ROUTE_GROUP;
            if (n == 2)
                out->group = xstrdup(s[1]);
            return strcmp(method, "GET") ? method_not_allowed(err, method) : 0;
        }
        group = s[1];
        version = s[2];
        i = 3;
    } else {
        return not_found(err);
    }
    out->group = xstrdup(group);
    out->version = xstrdup(version);
    if (i == n) {
        out->kind = CK_ROUTE_GROUP_VERSION;
        return strcmp(method, "GET") ? method_not_allowed(err, method) : 0;
    }
    bool watch_path = false;
    if (!strcmp(s[i], "watch")) {
        watch_path = true;
        i++;
    }
    if (i == n)
        goto nf;
    /* namespaces/NS/R... unless it is the namespace object itself (or its subresource) */
    if (!strcmp(s[i], "namespaces") && n - i >= 3) {
        const ck_resource *nsres = ck_resource_find(group, version, "namespaces");
        if (!(n - i == 3 && nsres && ck_word_in(nsres->subresources, s[i + 2]))) {
            out->namespace_ = xstrdup(s[i + 1]);
            i += 2;
        }
    }
    out->res = ck_resource_find(group, version, s[i]);
    if (!out->res)
        goto nf;
    if (out->namespace_ && !out->res->namespaced)
        goto nf;
    i++;
    if (i < n)
        out->name = xstrdup(s[i++]);
    if (i < n) {
        out->subresource = xstrdup(s[i++]);
        if (!ck_word_in(out->res->subresources, out->subresource))
            goto nf;
    }
    if (i < n)
        goto nf;
    out->kind = CK_ROUTE_RESOURCE;

    bool collection = out->name == NULL;
    if (watch_path) {
        if (strcmp(method, "GET") || out->subresource)
            goto nf;
        out->verb = CK_VERB_WATCH;
    } else if (!strcmp(method, "GET")) {
        bool watch = ck_http_query_bool(query, "watch");
        out->verb = collection ? (watch ? CK_VERB_WATCH : CK_VERB_LIST)
                               : (watch && !out->subresource ? CK_VERB_WATCH : CK_VERB_GET);
    } else if (!strcmp(method, "POST")) {
        /* POST creates in a collection, or on a create-style subresource (binding, eviction, token) */
        if (!collection && !out->subresource)
            goto bad_method;
        out->verb = CK_VERB_CREATE;
    } else if (!strcmp(method, "PUT")) {
        if (collection)
            goto bad_method;
        out->verb = CK_VERB_UPDATE;
    } else if (!strcmp(method, "PATCH")) {
        if (collection)
            goto bad_method;
        out->verb = CK_VERB_PATCH;
    } else if (!strcmp(method, "DELETE")) {
        out->verb = collection ? CK_VERB_DELETECOLLECTION : CK_VERB_DELETE;
        if (out->subresource)
            goto bad_method;
    } else {
        goto bad_method;
    }
    /* a verb the resource does not serve (e.g. list on bindings) */
    const char *v = ck_verb_name(out->verb);
    if (!out->subresource && !ck_word_in(out->res->verbs, v))
        goto bad_method;
    return 0;
bad_method:
    ck_route_free(out);
    return method_not_allowed(err, method);
nf:
    ck_route_free(out);
    return not_found(err);
}

/* model.c - Services + EndpointSlices -> service ports with endpoints (see model.h). */
#include "proxy/model.h"

#include <arpa/inet.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct ck_proxy_model {
    char *node;
    json_t *services;   /* "ns/name" -> Service */
    json_t *slices;     /* "ns/name" -> { "ns/slice" -> EndpointSlice } */
    json_t *dirty;      /* "ns/name" -> true */
    json_t *owner;      /* "ns/slice" -> "ns/name" it was filed under */
    /* "ns/name" -> ck_proxy_service*: a small open hash (chained), grown at load 1 */
    struct entry { char *key; ck_proxy_service *svc; struct entry *next; } **tab;
    size_t cap, count;
};

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct entry **slot(ck_proxy_model *m, const char *key)
{
    struct entry **e = &m->tab[hash_str(key) & (m->cap - 1)];
    while (*e && strcmp((*e)->key, key))
        e = &(*e)->next;
    return e;
}

static void grow(ck_proxy_model *m)
{
    size_t ocap = m->cap;
    struct entry **old = m->tab;
    m->cap = ocap ? ocap * 2 : 1024;
    m->tab = xcalloc(m->cap, sizeof *m->tab);
    for (size_t i = 0; i < ocap; i++)
        for (struct entry *e = old[i], *n; e; e = n) {
            n = e->next;
            size_t h = hash_str(e->key) & (m->cap - 1);
            e->next = m->tab[h];
            m->tab[h] = e;
        }
    free(old);
}

static void service_free(ck_proxy_service *s)
{
    if (!s)
        return;
    ck_proxy_ports_free(s->ports, s->n_ports);
    free(s->key);
    free(s);
}

ck_proxy_model *ck_proxy_model_new(const char *node_name)
{
    ck_proxy_model *m = xcalloc(1, sizeof *m);
    m->node = xstrdup(node_name ? node_name : "");
    m->services = json_object();
    m->slices = json_object();
    m->dirty = json_object();
    m->owner = json_object();
    grow(m);
    return m;
}

void ck_proxy_model_free(ck_proxy_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        for (struct entry *e = m->tab[i], *n; e; e = n) {
            n = e->next;
            service_free(e->svc);
            free(e->key);
            free(e);
        }
    free(m->tab);
    json_decref(m->services);
    json_decref(m->slices);
    json_decref(m->dirty);
    json_decref(m->owner);
    free(m->node);
    free(m);
}

static char *obj_key(const json_t *obj)
{
    const char *ns = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    return xasprintf("%s/%s", ns ? ns : "", name ? name : "");
}

/* The Service an EndpointSlice belongs to: its kubernetes.io/service-name label. */
static char *slice_owner(const json_t *slice)
{
    const json_t *md = json_object_get(slice, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *svc = json_string_value(
        json_object_get(json_object_get(md, "labels"), "kubernetes.io/service-name"));
    if (!svc)
        return NULL;
    return xasprintf("%s/%s", ns ? ns : "", svc);
}

void ck_proxy_model_set_service(ck_proxy_model *m, json_t *svc)
{
    cleanup_free char *k = obj_key(svc);
    json_object_set(m->services, k, svc);
    json_object_set_new(m->dirty, k, json_true());
}

void ck_proxy_model_delete_service(ck_proxy_model *m, json_t *svc)
{
    cleanup_free char *k = obj_key(svc);
    json_object_del(m->services, k);
    json_object_set_new(m->dirty, k, json_true());
}

void ck_proxy_model_set_slice(ck_proxy_model *m, json_t *slice)
{
    cleanup_free char *owner = slice_owner(slice);
    cleanup_free char *k = obj_key(slice);
    /* a slice may have moved between services (label change): drop it from the old one */
    const char *prev = json_string_value(json_object_get(m->owner, k));
    if (prev && (!owner || strcmp(prev, owner))) {
        json_t *set = json_object_get(m->slices, prev);
        json_object_del(set, k);
        json_object_set_new(m->dirty, prev, json_true());
        if (set && !json_object_size(set))
            json_object_del(m->slices, prev);
        json_object_del(m->owner, k);
    }
    if (!owner)
        return;
    json_t *s = json_object_get(m->slices, owner);
    if (!s) {
        s = json_object();
        json_object_set_new(m->slices, owner, s);
    }
    json_object_set(s, k, slice);
    json_object_set_new(m->owner, k, json_string(owner));
    json_object_set_new(m->dirty, owner, json_true());
}

void ck_proxy_model_delete_slice(ck_proxy_model *m, json_t *slice)
{
    cleanup_free char *owner = slice_owner(slice);
    cleanup_free char *k = obj_key(slice);
    if (!owner)
        return;
    json_object_del(m->owner, k);
    json_t *s = json_object_get(m->slices, owner);
    if (s) {
        json_object_del(s, k);
        if (!json_object_size(s))
            json_object_del(m->slices, owner);
    }
    json_object_set_new(m->dirty, owner, json_true());
}

void ck_proxy_model_mark_all(ck_proxy_model *m)
{
    const char *k;
    json_t *v;
    json_object_foreach(m->services, k, v)
        json_object_set_new(m->dirty, k, json_true());
    for (size_t i = 0; i < m->cap; i++)
        for (struct entry *e = m->tab[i]; e; e = e->next)
            json_object_set_new(m->dirty, e->key, json_true());
}

json_t *ck_proxy_model_take_changes(ck_proxy_model *m)
{
    json_t *keys = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(m->dirty, k, v) {
        json_array_append_new(keys, json_string(k));
        json_t *svc = json_object_get(m->services, k);
        ck_proxy_service *s = NULL;
        if (svc) {
            json_t *arr = json_array();
            const char *sk;
            json_t *sl;
            json_object_foreach(json_object_get(m->slices, k), sk, sl)
                json_array_append(arr, sl);
            size_t n = 0;
            ck_proxy_port *ports = ck_proxy_build_ports(svc, arr, m->node, &n);
            json_decref(arr);
            if (ports) {
                s = xcalloc(1, sizeof *s);
                s->key = xstrdup(k);
                s->ports = ports;
                s->n_ports = n;
            }
        }
        struct entry **e = slot(m, k);
        if (*e) {
            service_free((*e)->svc);
            if (s) {
                (*e)->svc = s;
            } else {
                struct entry *dead = *e;
                *e = dead->next;
                free(dead->key);
                free(dead);
                m->count--;
            }
        } else if (s) {
            if (m->count + 1 > m->cap) {
                grow(m);
                e = slot(m, k);
            }
            struct entry *ne = xcalloc(1, sizeof *ne);
            ne->key = xstrdup(k);
            ne->svc = s;
            *e = ne;
            m->count++;
        }
    }
    json_object_clear(m->dirty);
    return keys;
}

const ck_proxy_service *ck_proxy_model_get(ck_proxy_model *m, const char *key)
{
    struct entry **e = slot(m, key);
    return *e ? (*e)->svc : NULL;
}

size_t ck_proxy_model_count(ck_proxy_model *m)
{
    return m->count;
}

void ck_proxy_model_foreach(ck_proxy_model *m, bool (*fn)(void *ctx, const ck_proxy_service *s),
                            void *ctx)
{
    for (size_t i = 0; i < m->cap; i++)
        for (struct entry *e = m->tab[i]; e; e = e->next)
            if (!fn(ctx, e->svc))
                return;
}

/* ---- building ports ---- */

char *ck_proxy_cidr_of(const char *list, int fam)
{
    if (!list)
        return NULL;
    cleanup_free char *copy = xstrdup(list);
    char *save = NULL;
    for (char *c = strtok_r(copy, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        while (*c == ' ')
            c++;
        if ((strchr(c, ':') ? 6 : 4) == fam)
            return xstrdup(c);
    }
    return NULL;
}

int ck_proxy_ip_family(const char *s)
{
    unsigned char a[16];
    if (!s)
        return 0;
    if (inet_pton(AF_INET, s, a) == 1)
        return 4;
    return inet_pton(AF_INET6, s, a) == 1 ? 6 : 0;
}

static const char *proto_of(const char *p)
{
    if (!p || !strcmp(p, "TCP"))
        return "tcp";
    if (!strcmp(p, "UDP"))
        return "udp";
    if (!strcmp(p, "SCTP"))
        return "sctp";
    return NULL;
}

static bool cond(const json_t *conds, const char *name, bool dflt)
{
    const json_t *v = json_object_get(conds, name);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* Endpoints of one service port, from every slice (matched by port name and protocol). */
static void add_eps(ck_proxy_port *p, const json_t *slices, const char *node)
{
    size_t i, j, k;
    const json_t *sl, *sp, *ep, *addr;
    json_array_foreach(slices, i, sl) {
        const char *at = json_string_value(json_object_get(sl, "addressType"));
        if (strcmp(at ? at : "IPv4", p->family == 6 ? "IPv6" : "IPv4"))
            continue;
        int port = -1;
        json_array_foreach(json_object_get(sl, "ports"), j, sp) {
            const char *n = json_string_value(json_object_get(sp, "name"));
            const char *pr = proto_of(json_string_value(json_object_get(sp, "protocol")));
            if (strcmp(n ? n : "", p->port_name) || !pr || strcmp(pr, p->proto))
                continue;
            port = (int)json_integer_value(json_object_get(sp, "port"));
        }
        if (port <= 0)
            continue;
        json_array_foreach(json_object_get(sl, "endpoints"), j, ep) {
            const json_t *c = json_object_get(ep, "conditions");
            bool ready = cond(c, "ready", true);
            bool terminating = cond(c, "terminating", false);
            bool serving = cond(c, "serving", ready);
            const char *nn = json_string_value(json_object_get(ep, "nodeName"));
            if (!nn)
                nn = json_string_value(
                    json_object_get(json_object_get(ep, "deprecatedTopology"), "kubernetes.io/hostname"));
            json_array_foreach(json_object_get(ep, "addresses"), k, addr) {
                const char *ip = json_string_value(addr);
                if (ck_proxy_ip_family(ip) != p->family)
                    continue;
                bool dup = false;
                for (size_t d = 0; d < p->n_eps; d++)
                    if (!strcmp(p->eps[d].ip, ip) && p->eps[d].port == port)
                        dup = true;
                if (dup)
                    continue;
                p->eps = xrealloc(p->eps, (p->n_eps + 1) * sizeof *p->eps);
                ck_proxy_ep *e = &p->eps[p->n_eps++];
                memset(e, 0, sizeof *e);
                snprintf(e->ip, sizeof e->ip, "%s", ip);
                e->port = port;
                e->ready = ready && !terminating;
                e->serving = serving;
                e->terminating = terminating;
                e->local = nn && node && *node && !strcmp(nn, node);
                break; /* upstream uses the first address of an endpoint */
            }
        }
    }
}

static int ep_cmp(const void *a, const void *b)
{
    const ck_proxy_ep *x = a, *y = b;
    int c = strcmp(x->ip, y->ip);
    return c ? c : x->port - y->port;
}

ck_proxy_port *ck_proxy_build_ports(const json_t *svc, const json_t *slices, const char *node_name,
                                    size_t *n)
{
    *n = 0;
    const json_t *spec = json_object_get(svc, "spec");
    const json_t *md = json_object_get(svc, "metadata");
    const char *type = json_string_value(json_object_get(spec, "type"));
    if (type && !strcmp(type, "ExternalName"))
        return NULL;
    /* the cluster IPs, one per family (clusterIPs; clusterIP alone from older writers) */
    const char *cips[2] = {NULL, NULL};
    size_t n_fam = 0;
    const json_t *cips_j = json_object_get(spec, "clusterIPs");
    size_t n_cips = json_array_size(cips_j);
    for (size_t f = 0; f < (n_cips ? n_cips : 1) && n_fam < 2; f++) {
        const char *ip = n_cips ? json_string_value(json_array_get(cips_j, f))
                                : json_string_value(json_object_get(spec, "clusterIP"));
        int fam = ck_proxy_ip_family(ip);
        if (fam && !(n_fam && ck_proxy_ip_family(cips[0]) == fam))
            cips[n_fam++] = ip;
    }
    if (!n_fam)
        return NULL; /* headless ("None") or unallocated: nothing to proxy */
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *aff = json_string_value(json_object_get(spec, "sessionAffinity"));
    bool affinity = aff && !strcmp(aff, "ClientIP");
    json_int_t tmo = json_integer_value(json_object_get(json_object_get(
        json_object_get(spec, "sessionAffinityConfig"), "clientIP"), "timeoutSeconds"));
    const char *etp = json_string_value(json_object_get(spec, "externalTrafficPolicy"));
    const char *itp = json_string_value(json_object_get(spec, "internalTrafficPolicy"));
    bool has_np = type && (!strcmp(type, "NodePort") || !strcmp(type, "LoadBalancer"));

    const json_t *ports = json_object_get(spec, "ports");
    ck_proxy_port *out = xcalloc(n_fam * json_array_size(ports) + 1, sizeof *out);
    size_t i, j;
    const json_t *sp, *v;
    for (size_t f = 0; f < n_fam; f++)
    json_array_foreach(ports, i, sp) {
        const char *cip = cips[f];
        int fam = ck_proxy_ip_family(cip);
        const char *pr = proto_of(json_string_value(json_object_get(sp, "protocol")));
        int port = (int)json_integer_value(json_object_get(sp, "port"));
        if (!pr || port <= 0 || port > 65535)
            continue;
        const char *pn = json_string_value(json_object_get(sp, "name"));
        ck_proxy_port *p = &out[(*n)++];
        p->port_name = xstrdup(pn ? pn : "");
        p->name = *p->port_name ? xasprintf("%s/%s:%s", ns ? ns : "", name ? name : "", pn)
                                : xasprintf("%s/%s", ns ? ns : "", name ? name : "");
        p->proto = pr;
        p->family = fam;
        snprintf(p->cluster_ip, sizeof p->cluster_ip, "%s", cip);
        p->port = port;
        if (has_np)
            p->node_port = (int)json_integer_value(json_object_get(sp, "nodePort"));
        p->affinity = affinity;
        p->affinity_timeout = tmo > 0 ? (int)tmo : 10800;
        p->ext_local = etp && !strcmp(etp, "Local");
        p->int_local = itp && !strcmp(itp, "Local");
        json_array_foreach(json_object_get(spec, "externalIPs"), j, v)
            if (ck_proxy_ip_family(json_string_value(v)) == fam) {
                p->external = xrealloc(p->external, (p->n_external + 1) * sizeof *p->external);
                p->external[p->n_external++] = xstrdup(json_string_value(v));
            }
        if (type && !strcmp(type, "LoadBalancer"))
            json_array_foreach(json_object_get(json_object_get(json_object_get(svc, "status"),
                                                               "loadBalancer"), "ingress"), j, v) {
                const char *ip = json_string_value(json_object_get(v, "ip"));
                if (ck_proxy_ip_family(ip) != fam)
                    continue;
                p->external = xrealloc(p->external, (p->n_external + 1) * sizeof *p->external);
                p->external[p->n_external++] = xstrdup(ip);
            }
        add_eps(p, slices, node_name);
        if (p->n_eps > 1)
            qsort(p->eps, p->n_eps, sizeof *p->eps, ep_cmp);
    }
    if (!*n) {
        free(out);
        return NULL;
    }
    return out;
}

void ck_proxy_ports_free(ck_proxy_port *ports, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ports[i].name);
        free(ports[i].port_name);
        for (size_t j = 0; j < ports[i].n_external; j++)
            free(ports[i].external[j]);
        free(ports[i].external);
        free(ports[i].eps);
    }
    free(ports);
}

size_t ck_proxy_port_pick(const ck_proxy_port *p, bool local_only, const ck_proxy_ep **out)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_eps; i++)
        if (p->eps[i].ready && (!local_only || p->eps[i].local))
            out[n++] = &p->eps[i];
    if (n)
        return n;
    for (size_t i = 0; i < p->n_eps; i++)
        if (p->eps[i].serving && p->eps[i].terminating && (!local_only || p->eps[i].local))
            out[n++] = &p->eps[i];
    return n;
}

bool ck_proxy_port_has_eps(const ck_proxy_port *p)
{
    for (size_t i = 0; i < p->n_eps; i++)
        if ((p->eps[i].ready || (p->eps[i].serving && p->eps[i].terminating)) &&
            (!p->int_local || p->eps[i].local))
            return true;
    return false;
}

void ck_proxy_hash16(const char *s, char out[17])
{
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), h);
    /* 16 base32 characters = 80 bits = the first 10 bytes */
    for (int i = 0; i < 16; i++) {
        int bit = i * 5, byte = bit / 8, off = bit % 8;
        unsigned v = ((unsigned)h[byte] << 8 | h[byte + 1]) >> (11 - off);
        out[i] = b32[v & 31];
    }
    out[16] = 0;
}

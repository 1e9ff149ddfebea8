/* alloc.c - the state the API server itself holds: which service cluster IPs (default
 * 10.96.0.0/12) and node ports (30000-32767) are taken.  Bitmaps in memory, rebuilt from the stored
 * Services at startup (ck_alloc_recover), so they need no storage of their own; every write path
 * claims before the store write and releases on failure, delete, or a dry run.
 *
 * As upstream: the lowest addresses of the range (min(max(16, size/16), 256)) are kept for
 * explicitly requested IPs (10.96.0.1 for `kubernetes`, 10.96.0.10 for DNS...), dynamic
 * allocation picks a random free address above that band first, and so for node ports. */
#include "apiserver/apiserver.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ck_alloc {
    pthread_mutex_t mu;
    uint32_t base;              /* network address, host order */
    uint32_t size;              /* addresses in the range */
    uint32_t static_band;
    int prefix;
    char cidr[32];
    uint8_t *ips;               /* bitmap */
    size_t nips;
    int port_lo, port_hi;
    uint8_t *ports;
    size_t nports;
};

static bool bit_get(const uint8_t *m, uint32_t i) { return m[i >> 3] & (1u << (i & 7)); }
static void bit_set(uint8_t *m, uint32_t i) { m[i >> 3] |= (uint8_t)(1u << (i & 7)); }
static void bit_clr(uint8_t *m, uint32_t i) { m[i >> 3] &= (uint8_t)~(1u << (i & 7)); }

ck_alloc *ck_alloc_new(const char *cidr, int port_lo, int port_hi, ck_error **err)
{
    char ip[32];
    int prefix;
    struct in_addr a;
    if (sscanf(cidr, "%31[0-9.]/%d", ip, &prefix) != 2 || inet_pton(AF_INET, ip, &a) != 1 ||
        prefix < 8 || prefix > 30 || port_lo <= 0 || port_hi < port_lo || port_hi > 65535) {
        ck_error_set(err, CK_E_INVALID, "bad service range %s or ports %d-%d", cidr, port_lo,
                     port_hi);
        return NULL;
    }
    ck_alloc *al = xcalloc(1, sizeof *al);
    pthread_mutex_init(&al->mu, NULL);
    al->prefix = prefix;
    al->size = 1u << (32 - prefix);
    al->base = ntohl(a.s_addr) & ~(al->size - 1);
    uint32_t band = al->size / 16;
    al->static_band = band < 16 ? 16 : band > 256 ? 256 : band;
    if (al->static_band * 2 >= al->size)
        al->static_band = 1;       /* tiny ranges: no reserved band beyond the network address */
    struct in_addr na = {.s_addr = htonl(al->base)};
    snprintf(al->cidr, sizeof al->cidr, "%s/%d", inet_ntoa(na), prefix);
    al->nips = al->size / 8 + 1;
    al->ips = xcalloc(al->nips, 1);
    bit_set(al->ips, 0);                  /* network address */
    bit_set(al->ips, al->size - 1);       /* broadcast */
    al->port_lo = port_lo;
    al->port_hi = port_hi;
    al->nports = (size_t)(port_hi - port_lo + 1) / 8 + 1;
    al->ports = xcalloc(al->nports, 1);
    return al;
}

void ck_alloc_free(ck_alloc *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->mu);
    free(a->ips);
    free(a->ports);
    free(a);
}

static int ip_index(ck_alloc *a, const char *ip, uint32_t *idx)
{
    struct in_addr in;
    if (!ip || inet_pton(AF_INET, ip, &in) != 1)
        return -1;
    uint32_t h = ntohl(in.s_addr);
    if (h < a->base || h - a->base >= a->size)
        return -1;
    *idx = h - a->base;
    return 0;
}

bool ck_alloc_ip_in_range(ck_alloc *a, const char *ip)
{
    uint32_t i = 0;
    return ip_index(a, ip, &i) == 0 && i != 0 && i != a->size - 1;
}

int ck_alloc_ip_claim(ck_alloc *a, const char *ip, ck_error **err)
{
    uint32_t i = 0;
    if (!ck_alloc_ip_in_range(a, ip))
        return ck_error_set(err, CK_E_INVALID,
                            "failed to allocate IP %s: the provided IP (%s) is not in the valid "
                            "range. The range of valid IPs is %s", ip, ip, a->cidr);
    ip_index(a, ip, &i);
    pthread_mutex_lock(&a->mu);
    bool used = bit_get(a->ips, i);
    if (!used)
        bit_set(a->ips, i);
    pthread_mutex_unlock(&a->mu);
    if (used)
        return ck_error_set(err, CK_E_INVALID,
                            "failed to allocate IP %s: provided IP is already allocated", ip);
    return 0;
}

int ck_alloc_ip_next(ck_alloc *a, char out[16], ck_error **err)
{
    uint32_t r;
    ck_random_bytes(&r, sizeof r);
    uint32_t lo = a->static_band, span = a->size - 1 - lo;
    pthread_mutex_lock(&a->mu);
    /* the dynamic band from a random point, then the static band */
    for (uint32_t k = 0; k < a->size; k++) {
        uint32_t i = k < span ? lo + (r + k) % span : k - span;
        if (i == 0 || i >= a->size - 1 || bit_get(a->ips, i))
            continue;
        bit_set(a->ips, i);
        pthread_mutex_unlock(&a->mu);
        struct in_addr in = {.s_addr = htonl(a->base + i)};
        inet_ntop(AF_INET, &in, out, 16);
        return 0;
    }
    pthread_mutex_unlock(&a->mu);
    return ck_error_set(err, CK_E_INTERNAL,
                        "failed to allocate a serviceIP: range is full");
}

void ck_alloc_ip_release(ck_alloc *a, const char *ip)
{
    uint32_t i = 0;
    if (!ck_alloc_ip_in_range(a, ip))
        return;
    ip_index(a, ip, &i);
    pthread_mutex_lock(&a->mu);
    bit_clr(a->ips, i);
    pthread_mutex_unlock(&a->mu);
}

int ck_alloc_port_claim(ck_alloc *a, int port, ck_error **err)
{
    if (port < a->port_lo || port > a->port_hi)
        return ck_error_set(err, CK_E_INVALID,
                            "provided port is not in the valid range. The range of valid ports is "
                            "%d-%d", a->port_lo, a->port_hi);
    uint32_t i = (uint32_t)(port - a->port_lo);
    pthread_mutex_lock(&a->mu);
    bool used = bit_get(a->ports, i);
    if (!used)
        bit_set(a->ports, i);
    pthread_mutex_unlock(&a->mu);
    if (used)
        return ck_error_set(err, CK_E_INVALID, "provided port is already allocated");
    return 0;
}

int ck_alloc_port_next(ck_alloc *a, int *port, ck_error **err)
{
    uint32_t n = (uint32_t)(a->port_hi - a->port_lo + 1), r;
    ck_random_bytes(&r, sizeof r);
    pthread_mutex_lock(&a->mu);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (r + k) % n;
        if (bit_get(a->ports, i))
            continue;
        bit_set(a->ports, i);
        pthread_mutex_unlock(&a->mu);
        *port = a->port_lo + (int)i;
        return 0;
    }
    pthread_mutex_unlock(&a->mu);
    return ck_error_set(err, CK_E_INTERNAL, "range is full");
}

void ck_alloc_port_release(ck_alloc *a, int port)
{
    if (port < a->port_lo || port > a->port_hi)
        return;
    pthread_mutex_lock(&a->mu);
    bit_clr(a->ports, (uint32_t)(port - a->port_lo));
    pthread_mutex_unlock(&a->mu);
}

static size_t popcount(const uint8_t *m, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (size_t)__builtin_popcount(m[i]);
    return c;
}

size_t ck_alloc_ip_used(ck_alloc *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = popcount(a->ips, a->nips) - 2;   /* network + broadcast */
    pthread_mutex_unlock(&a->mu);
    return n;
}

size_t ck_alloc_port_used(ck_alloc *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = popcount(a->ports, a->nports);
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* ---- Services ---- */

static const char *svc_type(const json_t *svc)
{
    const char *t = json_string_value(json_object_get(json_object_get(svc, "spec"), "type"));
    return t ? t : "ClusterIP";
}

static bool wants_node_ports(const json_t *svc)
{
    const char *t = svc_type(svc);
    return !strcmp(t, "NodePort") || !strcmp(t, "LoadBalancer");
}

static const char *cluster_ip(const json_t *svc)
{
    return json_string_value(json_object_get(json_object_get(svc, "spec"), "clusterIP"));
}

/* The old port that a new port continues (same name, else same port+protocol). */
static const json_t *old_port_for(const json_t *old, const json_t *p)
{
    const json_t *ports = json_object_get(json_object_get(old, "spec"), "ports");
    const char *name = json_string_value(json_object_get(p, "name"));
    size_t i;
    json_t *q;
    json_array_foreach(ports, i, q) {
        const char *qn = json_string_value(json_object_get(q, "name"));
        if (name && qn && *name && !strcmp(name, qn))
            return q;
        if (json_integer_value(json_object_get(q, "port")) ==
            json_integer_value(json_object_get(p, "port")) && (!name || !*name))
            return q;
    }
    return NULL;
}

static bool svc_has_node_port(const json_t *svc, json_int_t port)
{
    if (!svc || !wants_node_ports(svc))
        return false;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(json_object_get(svc, "spec"), "ports"), i, p)
        if (json_integer_value(json_object_get(p, "nodePort")) == port)
            return true;
    return false;
}

static int invalid(json_t *svc, json_t *causes, ck_error **err, const char *field,
                   const char *value, ck_error *why)
{
    const char *name = ck_meta_str(svc, "name");
    char *msg = xasprintf("Invalid value: %s: %s", value, why->msg);
    if (causes)
        json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason", "FieldValueInvalid",
                                                "message", msg, "field", field));
    ck_error_set(err, CK_E_INVALID, "Service \"%s\" is invalid: %s: %s", name ? name : "", field,
                 msg);
    free(msg);
    ck_error_free(why);
    return -1;
}

int ck_service_allocate(ck_apiserver *s, json_t *svc, const json_t *old, json_t *causes,
                        ck_error **err)
{
    json_t *spec = json_object_get(svc, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(svc, "spec", spec);
    }
    const char *type = svc_type(svc);
    ck_error *why = NULL;
    bool claimed_ip = false;
    if (!strcmp(type, "ExternalName")) {
        json_object_del(spec, "clusterIP");
        json_object_del(spec, "clusterIPs");
    } else {
        const char *ip = cluster_ip(svc);
        const char *old_ip = old ? cluster_ip(old) : NULL;
        if ((!ip || !*ip) && old_ip && *old_ip) {
            json_object_set_new(spec, "clusterIP", json_string(old_ip));
        } else if (!ip || !*ip) {
            char buf[16];
            if (ck_alloc_ip_next(s->alloc, buf, err) < 0)
                return -1;
            json_object_set_new(spec, "clusterIP", json_string(buf));
            claimed_ip = true;
        } else if (strcmp(ip, "None") && !(old_ip && !strcmp(ip, old_ip))) {
            if (ck_alloc_ip_claim(s->alloc, ip, &why) < 0) {
                char *v = xasprintf("[]string{\"%s\"}", ip);
                invalid(svc, causes, err, "spec.clusterIPs", v, why);
                free(v);
                return -1;
            }
            claimed_ip = true;
        }
        ip = cluster_ip(svc);
        json_object_set_new(spec, "clusterIPs", json_pack("[s]", ip));
        if (!json_object_get(spec, "ipFamilies") && strcmp(ip, "None"))
            json_object_set_new(spec, "ipFamilies", json_pack("[s]", "IPv4"));
        if (!json_object_get(spec, "ipFamilyPolicy"))
            json_object_set_new(spec, "ipFamilyPolicy", json_string("SingleStack"));
    }
    if (!wants_node_ports(svc)) {
        /* upstream clears node ports when the type no longer wants them */
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(spec, "ports"), i, p)
            json_object_del(p, "nodePort");
        return 0;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(spec, "ports"), i, p) {
        json_int_t np = json_integer_value(json_object_get(p, "nodePort"));
        const json_t *op = old ? old_port_for(old, p) : NULL;
        json_int_t onp = op && wants_node_ports(old) ? json_integer_value(json_object_get(op, "nodePort")) : 0;
        if (np && svc_has_node_port(old, np))
            continue;                     /* kept from before */
        if (!np && onp) {
            json_object_set_new(p, "nodePort", json_integer(onp));
            continue;
        }
        int port = (int)np;
        int rc = np ? ck_alloc_port_claim(s->alloc, port, &why) : ck_alloc_port_next(s->alloc, &port, &why);
        if (rc < 0) {
            /* roll back what this call took */
            json_t *tmp = json_deep_copy(svc);
            json_t *tports = json_object_get(json_object_get(tmp, "spec"), "ports");
            while (json_array_size(tports) > i)
                json_array_remove(tports, json_array_size(tports) - 1);
            if (!claimed_ip)
                json_object_del(json_object_get(tmp, "spec"), "clusterIP");
            ck_service_release(s, tmp, old);
            json_decref(tmp);
            char field[64], val[32];
            snprintf(field, sizeof field, "spec.ports[%zu].nodePort", i);
            snprintf(val, sizeof val, "%lld", (long long)np);
            return invalid(svc, causes, err, field, val, why);
        }
        json_object_set_new(p, "nodePort", json_integer(port));
    }
    return 0;
}

void ck_service_release(ck_apiserver *s, const json_t *svc, const json_t *keep)
{
    const char *ip = cluster_ip(svc);
    const char *kip = keep ? cluster_ip(keep) : NULL;
    if (ip && *ip && strcmp(ip, "None") && !(kip && !strcmp(ip, kip)))
        ck_alloc_ip_release(s->alloc, ip);
    if (!wants_node_ports(svc))
        return;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(json_object_get(svc, "spec"), "ports"), i, p) {
        json_int_t np = json_integer_value(json_object_get(p, "nodePort"));
        if (np && !svc_has_node_port(keep, np))
            ck_alloc_port_release(s->alloc, (int)np);
    }
}

int ck_alloc_recover(ck_apiserver *s, ck_error **err)
{
    const ck_resource *r = ck_resource_find("", "v1", "services");
    cleanup_free char *prefix = ck_resource_key_prefix(r, NULL);
    ck_list_opts o = {0};
    ck_list l = {0};
    if (ck_store_list(s->store, prefix, &o, &l, err) < 0)
        return ck_error_wrap(err, "recover service allocations");
    for (size_t i = 0; i < l.n; i++) {
        json_t *svc = json_loadb(l.items[i].value, l.items[i].value_len, 0, NULL);
        if (!svc)
            continue;
        const char *ip = cluster_ip(svc);
        if (ip && ck_alloc_ip_in_range(s->alloc, ip))
            ck_alloc_ip_claim(s->alloc, ip, NULL);
        if (wants_node_ports(svc)) {
            size_t k;
            json_t *p;
            json_array_foreach(json_object_get(json_object_get(svc, "spec"), "ports"), k, p) {
                json_int_t np = json_integer_value(json_object_get(p, "nodePort"));
                if (np)
                    ck_alloc_port_claim(s->alloc, (int)np, NULL);
            }
        }
        json_decref(svc);
    }
    ck_list_free(&l);
    return 0;
}

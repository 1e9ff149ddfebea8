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

/* One family's range.  IPv6 ranges are at most /108 (2^20 addresses, a 128 KiB bitmap), as
 * upstream's bitmap allocator requires, so an address's index is its low 32 bits minus the
 * network's; IPv4 reserves the network and broadcast addresses, IPv6 only the network's. */
typedef struct range {
    int family;                 /* 4 or 6 */
    uint8_t net[16];            /* network address, network order (4 or 16 bytes used) */
    uint32_t size;              /* addresses in the range */
    uint32_t static_band;
    char cidr[64];
    uint8_t *ips;               /* bitmap */
    size_t nips;
} range;

struct ck_alloc {
    pthread_mutex_t mu;
    range r[2];                 /* [0] the primary family; [1] the secondary when dual-stack */
    int n_r;
    int port_lo, port_hi;
    uint8_t *ports;
    size_t nports;
};

static bool bit_get(const uint8_t *m, uint32_t i) { return m[i >> 3] & (1u << (i & 7)); }
static void bit_set(uint8_t *m, uint32_t i) { m[i >> 3] |= (uint8_t)(1u << (i & 7)); }
static void bit_clr(uint8_t *m, uint32_t i) { m[i >> 3] &= (uint8_t)~(1u << (i & 7)); }

static uint32_t low32(const uint8_t *a, int family)
{
    const uint8_t *p = a + (family == 6 ? 12 : 0);
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int range_init(range *r, const char *cidr)
{
    char ip[64];
    int prefix;
    uint8_t a[16] = {0};
    if (sscanf(cidr, " %63[0-9a-fA-F.:]/%d", ip, &prefix) != 2)
        return -1;
    if (inet_pton(AF_INET, ip, a) == 1 && prefix >= 8 && prefix <= 30) {
        r->family = 4;
        r->size = 1u << (32 - prefix);
    } else if (inet_pton(AF_INET6, ip, a) == 1 && prefix >= 108 && prefix <= 126) {
        r->family = 6;
        r->size = 1u << (128 - prefix);
    } else {
        return -1;
    }
    int bytes = r->family == 6 ? 16 : 4;
    for (int bit = prefix; bit < bytes * 8; bit++)
        a[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
    memcpy(r->net, a, 16);
    uint32_t band = r->size / 16;
    r->static_band = band < 16 ? 16 : band > 256 ? 256 : band;
    if (r->static_band * 2 >= r->size)
        r->static_band = 1;       /* tiny ranges: no reserved band beyond the network address */
    char txt[INET6_ADDRSTRLEN];
    inet_ntop(r->family == 6 ? AF_INET6 : AF_INET, r->net, txt, sizeof txt);
    snprintf(r->cidr, sizeof r->cidr, "%s/%d", txt, prefix);
    r->nips = r->size / 8 + 1;
    r->ips = xcalloc(r->nips, 1);
    bit_set(r->ips, 0);                         /* network address */
    if (r->family == 4)
        bit_set(r->ips, r->size - 1);           /* broadcast */
    return 0;
}

/* The last usable index + 1. */
static uint32_t range_end(const range *r)
{
    return r->family == 4 ? r->size - 1 : r->size;
}

ck_alloc *ck_alloc_new(const char *cidr, int port_lo, int port_hi, ck_error **err)
{
    ck_alloc *al = xcalloc(1, sizeof *al);
    cleanup_free char *copy = xstrdup(cidr ? cidr : "");
    char *save = NULL;
    bool ok = port_lo > 0 && port_hi >= port_lo && port_hi <= 65535;
    /* "v4", "v6", or dual-stack "a,b" of two different families, primary first */
    for (char *c = strtok_r(copy, ",", &save); c && ok; c = strtok_r(NULL, ",", &save)) {
        if (al->n_r == 2 || range_init(&al->r[al->n_r], c) < 0 ||
            (al->n_r == 1 && al->r[0].family == al->r[1].family))
            ok = false;
        else
            al->n_r++;
    }
    if (!ok || !al->n_r) {
        if (al->n_r < 2)
            free(al->r[al->n_r].ips);
        ck_alloc_free(al);
        ck_error_set(err, CK_E_INVALID, "bad service range %s or ports %d-%d", cidr, port_lo,
                     port_hi);
        return NULL;
    }
    pthread_mutex_init(&al->mu, NULL);
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
    if (a->ports)
        pthread_mutex_destroy(&a->mu);
    for (int i = 0; i < a->n_r; i++)
        free(a->r[i].ips);
    free(a->ports);
    free(a);
}

int ck_alloc_family(ck_alloc *a, int i)
{
    return i >= 0 && i < a->n_r ? a->r[i].family : 0;
}

static range *ip_index(ck_alloc *a, const char *ip, uint32_t *idx)
{
    uint8_t in[16] = {0};
    int family = 0;
    if (ip && inet_pton(AF_INET, ip, in) == 1)
        family = 4;
    else if (ip && inet_pton(AF_INET6, ip, in) == 1)
        family = 6;
    for (int i = 0; family && i < a->n_r; i++) {
        range *r = &a->r[i];
        if (r->family != family || memcmp(in, r->net, family == 6 ? 12 : 0))
            continue;
        uint32_t h = low32(in, family), base = low32(r->net, family);
        if (h < base || h - base >= r->size)
            return NULL;
        *idx = h - base;
        return r;
    }
    return NULL;
}

bool ck_alloc_ip_in_range(ck_alloc *a, const char *ip)
{
    uint32_t i = 0;
    range *r = ip_index(a, ip, &i);
    return r && i != 0 && i < range_end(r);
}

int ck_alloc_ip_claim(ck_alloc *a, const char *ip, ck_error **err)
{
    uint32_t i = 0;
    range *r = ip_index(a, ip, &i);
    if (!r || i == 0 || i >= range_end(r)) {
        int fam = ip && strchr(ip, ':') ? 6 : 4;
        const char *cidr = a->r[0].cidr;
        for (int k = 0; k < a->n_r; k++)
            if (a->r[k].family == fam)
                cidr = a->r[k].cidr;
        return ck_error_set(err, CK_E_INVALID,
                            "failed to allocate IP %s: the provided IP (%s) is not in the valid "
                            "range. The range of valid IPs is %s", ip, ip, cidr);
    }
    pthread_mutex_lock(&a->mu);
    bool used = bit_get(r->ips, i);
    if (!used)
        bit_set(r->ips, i);
    pthread_mutex_unlock(&a->mu);
    if (used)
        return ck_error_set(err, CK_E_INVALID,
                            "failed to allocate IP %s: provided IP is already allocated", ip);
    return 0;
}

int ck_alloc_ip_next_family(ck_alloc *a, int family, char *out, size_t out_len, ck_error **err)
{
    range *r = NULL;
    for (int k = 0; k < a->n_r; k++)
        if (a->r[k].family == family)
            r = &a->r[k];
    if (!r)
        return ck_error_set(err, CK_E_INVALID, "IPv%d is not configured on this cluster", family);
    uint32_t rnd;
    ck_random_bytes(&rnd, sizeof rnd);
    uint32_t lo = r->static_band, end = range_end(r), span = end - lo;
    pthread_mutex_lock(&a->mu);
    /* the dynamic band from a random point, then the static band */
    for (uint32_t k = 0; k < r->size; k++) {
        uint32_t i = k < span ? lo + (rnd + k) % span : k - span;
        if (i == 0 || i >= end || bit_get(r->ips, i))
            continue;
        uint8_t addr[16];
        memcpy(addr, r->net, 16);
        uint32_t v = low32(r->net, family) + i;
        uint8_t *p = addr + (family == 6 ? 12 : 0);
        p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
        if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, out, (socklen_t)out_len))
            break;
        bit_set(r->ips, i);
        pthread_mutex_unlock(&a->mu);
        return 0;
    }
    pthread_mutex_unlock(&a->mu);
    return ck_error_set(err, CK_E_INTERNAL,
                        "failed to allocate a serviceIP: range is full");
}

int ck_alloc_ip_next(ck_alloc *a, char out[16], ck_error **err)
{
    return ck_alloc_ip_next_family(a, a->r[0].family, out, 16, err);
}

void ck_alloc_ip_release(ck_alloc *a, const char *ip)
{
    uint32_t i = 0;
    if (!ck_alloc_ip_in_range(a, ip))
        return;
    range *r = ip_index(a, ip, &i);
    pthread_mutex_lock(&a->mu);
    bit_clr(r->ips, i);
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
    size_t n = 0;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->n_r; i++)   /* less the network (+ broadcast) address */
        n += popcount(a->r[i].ips, a->r[i].nips) - (a->r[i].family == 4 ? 2 : 1);
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

/* A Service's cluster IPs: spec.clusterIPs, or [spec.clusterIP] from older writers. */
static size_t cluster_ips(const json_t *svc, const char *out[2])
{
    const json_t *spec = json_object_get(svc, "spec");
    const json_t *l = json_object_get(spec, "clusterIPs");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(l) && n < 2; i++) {
        const char *ip = json_string_value(json_array_get(l, i));
        if (ip && *ip)
            out[n++] = ip;
    }
    if (!n && cluster_ip(svc) && *cluster_ip(svc))
        out[n++] = cluster_ip(svc);
    return n;
}

static bool ip_listed(const char *ip, const char *const *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ip, l[i]))
            return true;
    return false;
}

static int ip_family(const char *ip)
{
    unsigned char b[16];
    return inet_pton(AF_INET, ip, b) == 1 ? 4 : inet_pton(AF_INET6, ip, b) == 1 ? 6 : 0;
}

/* The families a Service gets (upstream's dual-stack rules, simplified): spec.ipFamilies, else
 * the families of the requested IPs, else the cluster's primary; PreferDualStack and
 * RequireDualStack add the cluster's other family.  -1 (with a message in why) when a family is
 * not configured, RequireDualStack meets a single-stack cluster, or SingleStack asks for two. */
static int service_families(ck_apiserver *s, const json_t *spec, const char *const *req,
                            size_t n_req, int fams[2], const char **field, ck_error **why)
{
    int n = 0;
    const json_t *names = json_object_get(spec, "ipFamilies");
    const char *policy = json_string_value(json_object_get(spec, "ipFamilyPolicy"));
    bool dual = policy && (!strcmp(policy, "PreferDualStack") || !strcmp(policy, "RequireDualStack"));
    *field = "spec.ipFamilies";
    for (size_t i = 0; i < json_array_size(names) && n < 2; i++) {
        const char *f = json_string_value(json_array_get(names, i));
        fams[n++] = f && !strcmp(f, "IPv6") ? 6 : 4;
    }
    for (size_t i = 0; !json_array_size(names) && i < n_req && n < 2; i++)
        fams[n++] = ip_family(req[i]);
    if (!n)
        fams[n++] = ck_alloc_family(s->alloc, 0);
    if (n == 2 && fams[0] == fams[1])
        return ck_error_set(why, CK_E_INVALID, "two families must differ");
    for (int i = 0; i < n; i++)
        if (fams[i] != ck_alloc_family(s->alloc, 0) && fams[i] != ck_alloc_family(s->alloc, 1))
            return ck_error_set(why, CK_E_INVALID, "IPv%d is not configured on this cluster",
                                fams[i]);
    bool cluster_dual = ck_alloc_family(s->alloc, 1) != 0;
    *field = "spec.ipFamilyPolicy";
    if (policy && !strcmp(policy, "RequireDualStack") && !cluster_dual)
        return ck_error_set(why, CK_E_INVALID, "this cluster is not configured for dual-stack "
                            "services");
    if ((!policy || !strcmp(policy, "SingleStack")) && (n > 1 || n_req > 1))
        return ck_error_set(why, CK_E_INVALID, "must be RequireDualStack or PreferDualStack when "
                            "multiple IP families are specified");
    if (dual && n == 1 && cluster_dual)
        fams[n++] = ck_alloc_family(s->alloc, ck_alloc_family(s->alloc, 0) == fams[0] ? 1 : 0);
    return n;
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
    char claimed[2][46] = {"", ""};   /* IPs this call took: given back if a node port fails */
    if (!strcmp(type, "ExternalName")) {
        json_object_del(spec, "clusterIP");
        json_object_del(spec, "clusterIPs");
    } else {
        const char *req[2] = {NULL, NULL}, *kept[2] = {NULL, NULL};
        size_t n_req = cluster_ips(svc, req), n_kept = old ? cluster_ips(old, kept) : 0;
        if (!n_req && n_kept)
            for (n_req = 0; n_req < n_kept; n_req++)
                req[n_req] = kept[n_req];
        if (n_req && !strcmp(req[0], "None")) {
            json_object_set_new(spec, "clusterIP", json_string("None"));
            json_object_set_new(spec, "clusterIPs", json_pack("[s]", "None"));
        } else {
            int fams[2];
            const char *field = NULL;
            int n = service_families(s, spec, req, n_req, fams, &field, &why);
            if (n < 0) {
                cleanup_free char *v = json_dumps(json_object_get(spec, !strcmp(field, "spec.ipFamilies")
                                                                        ? "ipFamilies" : "ipFamilyPolicy"),
                                                  JSON_ENCODE_ANY | JSON_COMPACT);
                return invalid(svc, causes, err, field, v ? v : "null", why);
            }
            json_t *ips = json_array(), *names = json_array();
            for (int i = 0; i < n; i++) {
                char buf[46];
                const char *ip = (size_t)i < n_req ? req[i] : NULL;
                int rc = 0;
                if (ip && ip_family(ip) != fams[i])
                    rc = ck_error_set(&why, CK_E_INVALID, "expected an IPv%d value as indicated "
                                      "by `ipFamilies[%d]`", fams[i], i);
                else if (ip && !ip_listed(ip, kept, n_kept))
                    rc = ck_alloc_ip_claim(s->alloc, ip, &why);
                else if (!ip && (rc = ck_alloc_ip_next_family(s->alloc, fams[i], buf, sizeof buf,
                                                              err)) == 0)
                    ip = buf;
                if (rc < 0) {
                    for (int k = 0; k < i; k++)
                        if (*claimed[k])
                            ck_alloc_ip_release(s->alloc, claimed[k]);
                    json_decref(ips);
                    json_decref(names);
                    if (!why)
                        return -1;
                    cleanup_free char *v = xasprintf("[]string{\"%s\"}", ip ? ip : "");
                    return invalid(svc, causes, err, "spec.clusterIPs", v, why);
                }
                if (ip == buf || !ip_listed(ip, kept, n_kept))
                    snprintf(claimed[i], sizeof claimed[i], "%s", ip);
                json_array_append_new(ips, json_string(ip));
                json_array_append_new(names, json_string(fams[i] == 6 ? "IPv6" : "IPv4"));
            }
            json_object_set(spec, "clusterIP", json_array_get(ips, 0));
            json_object_set_new(spec, "clusterIPs", ips);
            json_object_set_new(spec, "ipFamilies", names);
        }
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
            json_object_del(json_object_get(tmp, "spec"), "clusterIP");
            json_object_del(json_object_get(tmp, "spec"), "clusterIPs");
            for (int k = 0; k < 2; k++)
                if (*claimed[k])
                    ck_alloc_ip_release(s->alloc, claimed[k]);
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
    const char *ips[2], *kips[2];
    size_t n = cluster_ips(svc, ips), nk = keep ? cluster_ips(keep, kips) : 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ips[i], "None") && !ip_listed(ips[i], kips, nk))
            ck_alloc_ip_release(s->alloc, ips[i]);
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
        const char *ips[2];
        for (size_t k = 0, n = cluster_ips(svc, ips); k < n; k++)
            if (ck_alloc_ip_in_range(s->alloc, ips[k]))
                ck_alloc_ip_claim(s->alloc, ips[k], NULL);
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

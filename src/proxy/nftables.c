/* nftables.c - the nftables mode: table "ip kube-proxy", one `nft -f` transaction per sync.
 *
 * Not upstream's chain-per-service layout: thousands of chains are what make a 10k-service load
 * take minutes (docs/anchors.md).  Instead every service port path is a "group" with a packet-mark
 * value  id<<14 | flags | N  (N = endpoint count, flags 0x1000 = always masquerade, 0x2000 =
 * masquerade when the source is off-cluster), and four maps do the work:
 *   svc  (daddr . proto . dport)  -> mark     cluster IPs, external IPs, LB IPs
 *   np   (proto . dport)          -> mark     node ports (destination local)
 *   pick (mark & 0xfff)           -> goto pick-N, which DNATs via
 *   ep   (mark . numgen mod N)    -> podIP . port
 * Only ClientIP-affinity groups get chains of their own (upstream-style recent sets).  Services
 * with no endpoints are REJECTed from sets in the filter hooks.  A partial sync deletes and adds
 * only the elements (and affinity chains) of the changed services; a full sync rebuilds the table.
 * Masquerade is decided per connection with ct mark 0x4000; hairpin (a pod reaching itself)
 * is masqueraded from the (pod . pod) set.
 */
#include "proxy/proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

#define TABLE "ip kube-proxy"
#define F_MASQ 0x1000u
#define F_OFFCLUSTER 0x2000u
#define MAX_N 0xfffu
#define MAX_ID (1u << 18)

typedef struct nft {
    ck_proxy_opts o;
    int fam;              /* 4: table "ip kube-proxy"; 6: "ip6 kube-proxy" (see to_ip6) */
    char *cidr;           /* this family's part of --cluster-cidr (o.cluster_cidr points here) */
    json_t *next;         /* a full sync's renderings, applied once the transaction succeeded */
    json_t *gone;         /* [old, new] renderings of a partial sync's changed services: their gone
                           * UDP endpoints' conntrack entries are flushed once the transaction is
                           * in (before it, the old rules would DNAT a packet to one again) */
    json_t *applied;      /* service key -> rendering {"e": {"map": {"key": "value-or-empty"}}, "c": {chain: body}, "s": {set: decl}} */
    json_t *ids;          /* group name -> id */
    json_t *picks;        /* "N" -> true: pick-N chains that exist */
    json_t *hairpin;      /* ip -> refcount */
    unsigned next_id;
    bool started;
    char *script;
} nft;

typedef struct render {
    json_t *e, *c, *s;
} render;

static void elem(render *r, const char *map, const char *key, const char *val)
{
    json_t *m = json_object_get(r->e, map);
    if (!m) {
        m = json_object();
        json_object_set_new(r->e, map, m);
    }
    json_object_set_new(m, key, json_string(val ? val : ""));
}

static unsigned group_id(nft *t, const char *name)
{
    json_t *v = json_object_get(t->ids, name);
    if (v)
        return (unsigned)json_integer_value(v);
    unsigned id = ++t->next_id;
    json_object_set_new(t->ids, name, json_integer(id));
    return id;
}

/* One path (cluster or external) of a port: its mark, endpoints, affinity chain. */
static unsigned render_group(nft *t, render *r, const ck_proxy_port *p, const char *path,
                             const ck_proxy_ep **eps, size_t n, unsigned flags)
{
    cleanup_free char *gname = xasprintf("%s/%s/%s", p->name, p->proto, path);
    unsigned id = group_id(t, gname);
    if (n > MAX_N)
        n = MAX_N;
    unsigned mark = (id << 14) | flags | (p->affinity ? 0 : (unsigned)n);
    char key[64], val[80];
    for (size_t i = 0; i < n && !p->affinity; i++) {
        snprintf(key, sizeof key, "0x%x . %zu", mark, i);
        snprintf(val, sizeof val, "%s . %d", eps[i]->ip, eps[i]->port);
        elem(r, "ep", key, val);
    }
    if (!p->affinity) {
        char nk[16];
        snprintf(nk, sizeof nk, "%zu", n);
        elem(r, "pick-need", nk, NULL);
        return mark;
    }
    /* ClientIP affinity: a chain per group, a timeout set per endpoint */
    ck_buf body;
    ck_buf_init(&body, 0);
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *set = xasprintf("aff-%u-%zu", id, i);
        cleanup_free char *decl = xasprintf("{ type ipv4_addr; flags dynamic,timeout; timeout %ds; }",
                                            p->affinity_timeout);
        json_object_set_new(r->s, set, json_string(decl));
        cleanup_free char *to = t->fam == 6 ? xasprintf("[%s]:%d", eps[i]->ip, eps[i]->port)
                                            : xasprintf("%s:%d", eps[i]->ip, eps[i]->port);
        ck_buf_printf(&body, "ip saddr @%s meta l4proto { tcp, udp, sctp } dnat ip to %s\n",
                      set, to);
        cleanup_free char *ec = xasprintf("aff-%u-e%zu", id, i);
        cleanup_free char *eb = xasprintf("update @%s { ip saddr } meta l4proto { tcp, udp, sctp } "
                                          "dnat ip to %s\n", set, to);
        json_object_set_new(r->c, ec, json_string(eb));
    }
    ck_buf_printf(&body, "numgen random mod %zu vmap { ", n);
    for (size_t i = 0; i < n; i++)
        ck_buf_printf(&body, "%s%zu : goto aff-%u-e%zu", i ? ", " : "", i, id, i);
    ck_buf_addstr(&body, " }\n");
    cleanup_free char *cn = xasprintf("aff-%u", id);
    json_object_set_new(r->c, cn, json_string(body.data));
    ck_buf_free(&body);
    snprintf(key, sizeof key, "0x%x", mark);
    snprintf(val, sizeof val, "goto aff-%u", id);
    elem(r, "aff", key, val);
    return mark;
}

static void render_port(nft *t, render *r, const ck_proxy_port *p)
{
    const ck_proxy_ep *all[p->n_eps + 1], *loc[p->n_eps + 1];
    size_t n_all = ck_proxy_port_pick(p, false, all);
    size_t n_loc = ck_proxy_port_pick(p, true, loc);
    char key[96], val[32];
    const char *pr = p->proto;
    size_t n_int = p->int_local ? n_loc : n_all;
    snprintf(key, sizeof key, "%s . %s . %d", p->cluster_ip, pr, p->port);
    if (n_int) {
        unsigned mark = render_group(t, r, p, "int", p->int_local ? loc : all, n_int, F_OFFCLUSTER);
        snprintf(val, sizeof val, "0x%x", mark);
        elem(r, "svc", key, val);
    } else {
        elem(r, "noep", key, NULL);
    }
    if (!p->node_port && !p->n_external)
        return;
    size_t n_ext = p->ext_local ? n_loc : n_all;
    if (n_ext) {
        unsigned mark = render_group(t, r, p, "ext", p->ext_local ? loc : all, n_ext,
                                     p->ext_local ? 0 : F_MASQ);
        snprintf(val, sizeof val, "0x%x", mark);
        for (size_t i = 0; i < p->n_external; i++) {
            snprintf(key, sizeof key, "%s . %s . %d", p->external[i], pr, p->port);
            elem(r, "svc", key, val);
        }
        if (p->node_port) {
            snprintf(key, sizeof key, "%s . %d", pr, p->node_port);
            elem(r, "np", key, val);
        }
    } else {
        const char *s = n_all ? "drop-ext" : "noep";
        for (size_t i = 0; i < p->n_external; i++) {
            snprintf(key, sizeof key, "%s . %s . %d", p->external[i], pr, p->port);
            elem(r, s, key, NULL);
        }
        if (p->node_port) {
            snprintf(key, sizeof key, "%s . %d", pr, p->node_port);
            elem(r, n_all ? "drop-np" : "noep-np", key, NULL);
        }
    }
    for (size_t i = 0; i < n_loc; i++)
        elem(r, "hairpin-ip", loc[i]->ip, NULL);
}

static json_t *render_service(nft *t, const ck_proxy_service *s)
{
    render r = {json_object(), json_object(), json_object()};
    for (size_t i = 0; s && i < s->n_ports; i++)
        if (s->ports[i].family == t->fam)
            render_port(t, &r, &s->ports[i]);
    bool udp = false;
    for (size_t i = 0; s && i < s->n_ports; i++)
        udp |= s->ports[i].family == t->fam && !strcmp(s->ports[i].proto, "udp");
    return json_pack("{s:o,s:o,s:o,s:b}", "e", r.e, "c", r.c, "s", r.s, "udp", udp);
}

/* ---- the transaction ---- */

/* Statements in the order the kernel needs them; elements are batched per map (one statement
 * per map and chunk: nft commits one statement per element far slower). */
typedef struct txn {
    json_t *dels, *adds;      /* map -> [element text] */
    ck_buf flush_chains, del_chains, del_sets, add_sets, add_chains, add_rules;
} txn;

static void txn_init(txn *x)
{
    x->dels = json_object();
    x->adds = json_object();
    ck_buf *b[] = {&x->flush_chains, &x->del_chains, &x->del_sets, &x->add_sets, &x->add_chains, &x->add_rules};
    for (size_t i = 0; i < ARRAY_SIZE(b); i++)
        ck_buf_init(b[i], 0);
}

static void txn_elem(json_t *to, const char *map, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void txn_elem(json_t *to, const char *map, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *e = xvasprintf(fmt, ap);
    va_end(ap);
    json_t *a = json_object_get(to, map);
    if (!a) {
        a = json_array();
        json_object_set_new(to, map, a);
    }
    json_array_append_new(a, json_string(e));
    free(e);
}

static void emit_elems(ck_buf *out, const char *verb, json_t *sets)
{
    const char *map;
    json_t *a;
    json_object_foreach(sets, map, a) {
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v) {
            if (i % 4096 == 0)
                ck_buf_printf(out, "%s%s element " TABLE " %s { ", i ? " }\n" : "", verb, map);
            else
                ck_buf_addstr(out, ", ");
            ck_buf_addstr(out, json_string_value(v));
        }
        if (json_array_size(a))
            ck_buf_addstr(out, " }\n");
    }
}

static char *txn_text(txn *x, const char *prefix)
{
    ck_buf out;
    ck_buf_init(&out, 0);
    if (prefix)
        ck_buf_addstr(&out, prefix);
    /* deletes first (a changed value is delete + add), chains flushed before any is deleted,
     * sets deleted after the chains that use them, rules once every chain exists */
    emit_elems(&out, "delete", x->dels);
    ck_buf *b[] = {&x->flush_chains, &x->del_chains, &x->del_sets, &x->add_sets, &x->add_chains, &x->add_rules};
    for (size_t i = 0; i < ARRAY_SIZE(b); i++) {
        if (b[i]->len)
            ck_buf_add(&out, b[i]->data, b[i]->len);
        ck_buf_free(b[i]);
    }
    emit_elems(&out, "add", x->adds);
    json_decref(x->dels);
    json_decref(x->adds);
    return out.data ? ck_buf_steal(&out) : xstrdup("");
}

static bool is_pseudo(const char *map)
{
    return !strcmp(map, "pick-need") || !strcmp(map, "hairpin-ip");
}

static void hairpin_ref(nft *t, txn *x, const char *ip, int delta)
{
    json_int_t n = json_integer_value(json_object_get(t->hairpin, ip)) + delta;
    if (n <= 0) {
        json_object_del(t->hairpin, ip);
        if (delta < 0)
            txn_elem(x->dels, "hairpin", "%s . %s", ip, ip);
    } else {
        json_object_set_new(t->hairpin, ip, json_integer(n));
        if (n == 1 && delta > 0)
            txn_elem(x->adds, "hairpin", "%s . %s", ip, ip);
    }
}

static void diff_service(nft *t, txn *x, const json_t *old, const json_t *new)
{
    const char *map, *k;
    json_t *om, *nm, *v;
    json_t *oe = json_object_get(old, "e"), *ne = json_object_get(new, "e");
    /* element deletes (gone, or value changed) */
    json_object_foreach(oe, map, om) {
        nm = json_object_get(ne, map);
        json_object_foreach(om, k, v) {
            json_t *nv = json_object_get(nm, k);
            if (nv && json_equal(nv, v))
                continue;
            if (!strcmp(map, "hairpin-ip"))
                hairpin_ref(t, x, k, -1);
            else if (!is_pseudo(map))
                txn_elem(x->dels, map, "%s", k);
        }
    }
    json_object_foreach(ne, map, nm) {
        om = json_object_get(oe, map);
        json_object_foreach(nm, k, v) {
            json_t *ov = json_object_get(om, k);
            if (ov && json_equal(ov, v))
                continue;
            if (!strcmp(map, "hairpin-ip")) {
                hairpin_ref(t, x, k, +1);
            } else if (!strcmp(map, "pick-need")) {
                if (!json_object_get(t->picks, k)) {
                    json_object_set_new(t->picks, k, json_true());
                    ck_buf_printf(&x->add_chains, "add chain " TABLE " pick-%s\n", k);
                    ck_buf_printf(&x->add_rules, "add rule " TABLE " pick-%s meta l4proto { tcp, udp, "
                                  "sctp } dnat ip to meta mark . numgen random mod %s map @ep\n", k, k);
                    txn_elem(x->adds, "pick", "%s : goto pick-%s", k, k);
                }
            } else if (*json_string_value(v)) {
                txn_elem(x->adds, map, "%s : %s", k, json_string_value(v));
            } else {
                txn_elem(x->adds, map, "%s", k);
            }
        }
    }
    /* affinity chains and sets: flush every changed or gone chain before deleting any */
    json_t *oc = json_object_get(old, "c"), *nc = json_object_get(new, "c");
    json_object_foreach(oc, k, v)
        if (!json_object_get(nc, k) || !json_equal(json_object_get(nc, k), v))
            ck_buf_printf(&x->flush_chains, "flush chain " TABLE " %s\n", k);
    json_object_foreach(oc, k, v)
        if (!json_object_get(nc, k))
            ck_buf_printf(&x->del_chains, "delete chain " TABLE " %s\n", k);
    json_object_foreach(nc, k, v)
        if (!json_object_get(oc, k))
            ck_buf_printf(&x->add_chains, "add chain " TABLE " %s\n", k);
    /* rules after every chain exists (aff-N jumps to aff-N-eI) */
    json_object_foreach(nc, k, v) {
        json_t *ov = json_object_get(oc, k);
        if (ov && json_equal(ov, v))
            continue;
        cleanup_free char *body = xstrdup(json_string_value(v));
        char *save = NULL;
        for (char *l = strtok_r(body, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            ck_buf_printf(&x->add_rules, "add rule " TABLE " %s %s\n", k, l);
    }
    json_t *os = json_object_get(old, "s"), *ns = json_object_get(new, "s");
    json_object_foreach(os, k, v)
        if (!json_object_get(ns, k) || !json_equal(json_object_get(ns, k), v))
            ck_buf_printf(&x->del_sets, "delete set " TABLE " %s\n", k);
    json_object_foreach(ns, k, v)
        if (!json_object_get(os, k) || !json_equal(json_object_get(os, k), v))
            ck_buf_printf(&x->add_sets, "add set " TABLE " %s %s\n", k, json_string_value(v));
}

static char *base_table(const nft *t)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_addstr(&b,
        "table " TABLE " {}\n"
        "delete table " TABLE "\n"
        "table " TABLE " {\n"
        "  map svc { typeof ip daddr . meta l4proto . th dport : meta mark; }\n"
        "  map np { typeof meta l4proto . th dport : meta mark; }\n"
        "  map ep { typeof meta mark . numgen random mod 1 : ip daddr . th dport; }\n"
        "  map pick { type mark : verdict; }\n"
        "  map aff { type mark : verdict; }\n"
        "  set noep { typeof ip daddr . meta l4proto . th dport; }\n"
        "  set noep-np { typeof meta l4proto . th dport; }\n"
        "  set drop-ext { typeof ip daddr . meta l4proto . th dport; }\n"
        "  set drop-np { typeof meta l4proto . th dport; }\n"
        "  set hairpin { typeof ip saddr . ip daddr; }\n"
        "  chain dispatch {\n"
        "    meta mark & 0x1000 != 0 ct mark set 0x4000\n");
    if (t->o.masquerade_all)
        ck_buf_addstr(&b, "    meta mark & 0x2000 != 0 ct mark set 0x4000\n");
    else if (t->o.cluster_cidr)
        ck_buf_printf(&b, "    meta mark & 0x2000 != 0 ip saddr != %s ct mark set 0x4000\n",
                      t->o.cluster_cidr);
    ck_buf_addstr(&b,
        "    meta mark vmap @aff\n"
        "    meta mark & 0xfff vmap @pick\n"
        "  }\n"
        "  chain services {\n"
        "    meta mark set ip daddr . meta l4proto . th dport map @svc goto dispatch\n"
        "    fib daddr type local meta mark set meta l4proto . th dport map @np goto dispatch\n"
        "  }\n"
        "  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
        "    jump services\n  }\n"
        "  chain nat-output {\n    type nat hook output priority -100; policy accept;\n"
        "    jump services\n  }\n"
        "  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        "    ct mark & 0x4000 == 0x4000 masquerade fully-random\n"
        "    ct status dnat ip saddr . ip daddr @hairpin masquerade\n  }\n"
        "  chain reject-chain {\n"
        /* TCP gets a reset: ICMP errors are rate limited per destination */
        "    ct state new meta l4proto tcp ip daddr . meta l4proto . th dport @noep reject with tcp reset\n"
        "    ct state new ip daddr . meta l4proto . th dport @noep reject\n"
        "    ct state new meta l4proto tcp fib daddr type local meta l4proto . th dport @noep-np reject with tcp reset\n"
        "    ct state new fib daddr type local meta l4proto . th dport @noep-np reject\n"
        "    ct state new ip daddr . meta l4proto . th dport @drop-ext drop\n"
        "    ct state new fib daddr type local meta l4proto . th dport @drop-np drop\n  }\n"
        "  chain filter-input {\n    type filter hook input priority -1; policy accept;\n"
        "    jump reject-chain\n  }\n"
        "  chain filter-forward {\n    type filter hook forward priority -1; policy accept;\n"
        "    jump reject-chain\n  }\n"
        "  chain filter-output {\n    type filter hook output priority -1; policy accept;\n"
        "    jump reject-chain\n  }\n"
        "}\n");
    return ck_buf_steal(&b);
}

static int nft_probe(ck_error **err)
{
    if (!ck_proxy_have_binary("nft"))
        return ck_error_set(err, CK_E_UNAVAILABLE, "nftables mode: nft not found in PATH "
                            "(apt-get install nftables)");
    return 0;
}

/* The IPv6 table is the IPv4 rendering with the family's words swapped: the same maps and chains
 * in table "ip6 kube-proxy" (ipv6_addr keys, ip6 matches, dnat ip6).  Addresses and element
 * values never contain these words. */
static char *to_ip6(const char *s)
{
    static const struct { const char *from, *to; } words[] = {
        {"ip kube-proxy", "ip6 kube-proxy"}, {"ip daddr", "ip6 daddr"}, {"ip saddr", "ip6 saddr"},
        {"dnat ip to", "dnat ip6 to"}, {"ipv4_addr", "ipv6_addr"},
    };
    ck_buf out;
    ck_buf_init(&out, 0);
    while (*s) {
        size_t w = 0;
        for (; w < ARRAY_SIZE(words); w++)
            if (!strncmp(s, words[w].from, strlen(words[w].from)))
                break;
        if (w < ARRAY_SIZE(words)) {
            ck_buf_addstr(&out, words[w].to);
            s += strlen(words[w].from);
            continue;
        }
        size_t run = strcspn(s + 1, "id") + 1;
        ck_buf_add(&out, s, run);
        s += run;
    }
    return out.data ? ck_buf_steal(&out) : xstrdup("");
}

/* The mode: one renderer per family, both written in one `nft -f` transaction. */
typedef struct nft_mode {
    nft fam[2];
    char *script;
} nft_mode;

static void *nft_new(const ck_proxy_opts *o, ck_error **err)
{
    nft_mode *nm = xcalloc(1, sizeof *nm);
    for (int f = 0; f < 2; f++) {
        nft *t = &nm->fam[f];
        t->o = *o;
        t->fam = f ? 6 : 4;
        t->cidr = ck_proxy_cidr_of(o->cluster_cidr, t->fam);
        t->o.cluster_cidr = t->cidr;
        t->applied = json_object();
        t->gone = json_array();
        t->ids = json_object();
        t->picks = json_object();
        t->hairpin = json_object();
    }
    return nm;
}

static void nft_free(void *st)
{
    nft_mode *nm = st;
    if (!nm)
        return;
    for (int f = 0; f < 2; f++) {
        nft *t = &nm->fam[f];
        json_decref(t->applied);
        json_decref(t->ids);
        json_decref(t->picks);
        json_decref(t->hairpin);
        json_decref(t->next);
        json_decref(t->gone);
        free(t->script);
        free(t->cidr);
    }
    free(nm->script);
    free(nm);
}

static const char *nft_last(void *st)
{
    return ((nft_mode *)st)->script;
}

typedef struct full_ctx {
    nft *t;
    txn *x;
    json_t *next;
} full_ctx;

static bool full_one(void *ctx, const ck_proxy_service *s)
{
    full_ctx *f = ctx;
    json_t *r = render_service(f->t, s);
    diff_service(f->t, f->x, NULL, r);
    json_object_set_new(f->next, s->key, r);
    return true;
}

/* UDP endpoints gone from a service: flush their conntrack entries. */
static void flush_gone_udp(const json_t *old, const json_t *new)
{
    const char *k;
    json_t *v;
    json_t *oe = json_object_get(json_object_get(old, "e"), "ep");
    json_t *ne = json_object_get(json_object_get(new, "e"), "ep");
    json_object_foreach(oe, k, v) {
        const char *ip = json_string_value(v);
        bool still = false;
        const char *k2;
        json_t *v2;
        json_object_foreach(ne, k2, v2)
            if (json_equal(v, v2))
                still = true;
        if (!still && json_is_true(json_object_get(old, "udp"))) {
            char host[64];
            if (sscanf(ip, "%63[0-9a-fA-F.:]", host) == 1)
                ck_proxy_conntrack_flush_udp(NULL, host);
        }
    }
}

/* Render one family's part of the transaction into t->script (a full sync's renderings wait in
 * t->next until the transaction succeeded). */
static void nft_render_fam(nft *t, ck_proxy_model *m, const json_t *changed)
{
    txn x;
    txn_init(&x);
    bool full = !changed || !t->started || t->next_id > MAX_ID - 1024;
    json_t *next = NULL;
    cleanup_free char *base = NULL;
    if (full) {
        json_object_clear(t->ids);
        json_object_clear(t->picks);
        json_object_clear(t->hairpin);
        t->next_id = 0;
        base = base_table(t);
        next = json_object();
        full_ctx f = {t, &x, next};
        ck_proxy_model_foreach(m, full_one, &f);
    } else {
        size_t i;
        json_t *kv;
        json_array_foreach(changed, i, kv) {
            const char *k = json_string_value(kv);
            const ck_proxy_service *s = ck_proxy_model_get(m, k);
            json_t *r = s ? render_service(t, s) : NULL;
            json_t *old = json_object_get(t->applied, k);
            diff_service(t, &x, old, r);
            if (!t->o.dry_run) {
                json_t *pair = json_array();
                json_array_append(pair, old ? old : json_null());
                json_array_append(pair, r ? r : json_null());
                json_array_append_new(t->gone, pair);
            }
            if (r)
                json_object_set_new(t->applied, k, r);
            else
                json_object_del(t->applied, k);
        }
    }
    free(t->script);
    t->script = txn_text(&x, base);
    if (t->fam == 6) {
        char *v6 = to_ip6(t->script);
        free(t->script);
        t->script = v6;
    }
    json_decref(t->next);
    t->next = next;
}

static int nft_sync(void *st, ck_proxy_model *m, const json_t *changed, ck_error **err)
{
    nft_mode *nm = st;
    nft_render_fam(&nm->fam[0], m, changed);
    nft_render_fam(&nm->fam[1], m, changed);
    free(nm->script);
    nm->script = xasprintf("%s%s", nm->fam[0].script, nm->fam[1].script);
    int rc = 0;
    if (*nm->script && !nm->fam[0].o.dry_run) {
        const char *argv[] = {"nft", "-f", "-", NULL};
        rc = ck_proxy_exec(argv, nm->script, strlen(nm->script), NULL, err);
    }
    for (int f = 0; f < 2; f++) {
        nft *t = &nm->fam[f];
        if (rc < 0) {
            t->started = false; /* next sync rebuilds the tables */
        } else {
            size_t i;
            json_t *pair;
            json_array_foreach(t->gone, i, pair)
                flush_gone_udp(json_array_get(pair, 0), json_array_get(pair, 1));
            if (t->next && !t->o.dry_run) {
                const char *k;
                json_t *v;
                json_object_foreach(t->applied, k, v)
                    flush_gone_udp(v, json_object_get(t->next, k));
            }
            if (t->next) {
                json_decref(t->applied);
                t->applied = t->next;
                t->next = NULL;
            }
            t->started = true;
        }
        json_decref(t->next);
        t->next = NULL;
        json_array_clear(t->gone);
    }
    return rc < 0 ? ck_error_wrap(err, "nftables sync") : 0;
}

static int nft_cleanup(ck_error **err)
{
    const char *argv[] = {"nft", "-f", "-", NULL};
    const char *s = "table " TABLE " {}\ndelete table " TABLE "\n"
                    "table ip6 kube-proxy {}\ndelete table ip6 kube-proxy\n";
    if (ck_proxy_exec(argv, s, strlen(s), NULL, err) < 0)
        return ck_error_wrap(err, "nftables cleanup");
    return 0;
}

const ck_proxy_mode ck_proxy_mode_nftables = {
    .name = "nftables",
    .probe = nft_probe,
    .new = nft_new,
    .sync = nft_sync,
    .last_script = nft_last,
    .free = nft_free,
    .cleanup = nft_cleanup,
};

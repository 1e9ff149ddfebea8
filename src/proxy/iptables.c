/* iptables.c - the iptables mode: upstream's chain layout, one transaction per sync.
 *
 * The rendering is iptables-restore input.  With the nf_tables backend it is programmed over
 * netlink by iptnl.c (the same rules iptables-nft-restore would make, 3-4x cheaper); with the
 * legacy backend, with CKUBE_PROXY_IPT_RESTORE=1, or once the writer met a rule it does not
 * know, by iptables-restore itself.
 *
 * Every Service renders to (a) its own chains (KUBE-SVC-*, KUBE-SVL-*, KUBE-EXT-*, KUBE-SEP-*)
 * and (b) lines in the shared chains (KUBE-SERVICES, KUBE-NODEPORTS, filter KUBE-SERVICES /
 * KUBE-EXTERNAL-SERVICES).  The last rendering of each Service is kept, so a partial sync writes
 * only what differs: changed chains are re-declared (which flushes them) and refilled, gone
 * chains deleted, shared lines removed with -D and added with -I/-A.  A full sync re-declares
 * every chain.  Traffic goes straight to the pod; readiness decides the rotation.
 */
#include "proxy/proxy.h"
#include "proxy/iptnl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

#define MASQ_MARK "0x4000"

typedef struct ipt {
    ck_proxy_opts o;
    int fam;             /* 4: iptables, 6: ip6tables (only this family's ports are rendered) */
    char *cidr;          /* this family's part of --cluster-cidr (o.cluster_cidr points here) */
    json_t *applied;     /* service key -> rendering {"chains": {"t/C": text}, "lines": {"t/C\tspec": 1}} */
    bool started;        /* base chains + jumps are in place */
    char *script;        /* last restore input */
    bool large;          /* over LARGE_CLUSTER_ENDPOINTS: no comments in SVC/SEP rules */
    ck_iptnl *nl;        /* the netlink writer; NULL: iptables-restore */
} ipt;

/* Chains whose rules are deleted one by one (-D): the writer keeps their rule handles. */
static const char *const shared_chains[] = {"nat/KUBE-SERVICES", "nat/KUBE-NODEPORTS",
                                            "filter/KUBE-SERVICES", "filter/KUBE-EXTERNAL-SERVICES",
                                            NULL};

/* Upstream's large-cluster mode: past 1,000 endpoints the per-endpoint rules carry no comment
 * (the restore input shrinks by a third and iptables-restore parses that much less). */
#define LARGE_CLUSTER_ENDPOINTS 1000

static const struct { const char *table, *chain, *target, *rule; } jumps[] = {
    {"nat", "PREROUTING", "KUBE-SERVICES", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
    {"nat", "OUTPUT", "KUBE-SERVICES", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
    {"nat", "POSTROUTING", "KUBE-POSTROUTING", "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"},
    {"filter", "INPUT", "KUBE-SERVICES", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
    {"filter", "FORWARD", "KUBE-SERVICES", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
    {"filter", "OUTPUT", "KUBE-SERVICES", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
    {"filter", "INPUT", "KUBE-EXTERNAL-SERVICES", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"},
    {"filter", "FORWARD", "KUBE-EXTERNAL-SERVICES", "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"},
    {"filter", "FORWARD", "KUBE-FORWARD", "-m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"},
};

static const char *const own_prefixes[] = {"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-",
                                           "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES",
                                           "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
                                           "KUBE-FORWARD", NULL};

static const char *const nodeports_last =
    "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" "
    "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS";


static bool own_chain(const char *name, size_t len)
{
    for (const char *const *p = own_prefixes; *p; p++) {
        size_t pl = strlen(*p);
        if (len >= pl && !strncmp(name, *p, pl) && ((*p)[pl - 1] == '-' || len == pl))
            return true;
    }
    return false;
}

/* A full sync replaces whole tables (iptables-restore without --noflush: ~7 s for 10k services
 * where --noflush takes many minutes with the nft backend), so everyone else's rules are read
 * back with iptables-save and written again unchanged; our chains come only from the rendering.
 * Appends the kept lines of one table (without COMMIT) to out. */
static int foreign_rules(int fam, const char *table, ck_buf *out, ck_error **err)
{
    const char *argv[] = {ck_proxy_ipt_fam(fam, CK_IPT_SAVE), "-t", table, NULL};
    cleanup_free char *dump = NULL;
    if (ck_proxy_exec(argv, NULL, 0, &dump, err) < 0)
        return -1;
    bool in_table = false;
    for (char *line = dump, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        if (line[0] == '*') {
            in_table = !strcmp(line + 1, table);
            continue;
        }
        if (!in_table || line[0] == '#' || !strcmp(line, "COMMIT") || !*line)
            continue;
        const char *name = NULL;
        if (line[0] == ':')
            name = line + 1;
        else if (!strncmp(line, "-A ", 3))
            name = line + 3;
        if (name && own_chain(name, strcspn(name, " ")))
            continue;
        ck_buf_printf(out, "%s\n", line);
    }
    return 0;
}

/* ---- rendering one service ---- */

typedef struct render {
    json_t *chains, *lines;
} render;

static void chain_add(render *r, const char *table, const char *chain, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The renderers run once per service port at every full sync (10,000s of times): the lines
 * are formatted on the stack, and the strings are ASCII, so jansson's UTF-8 checks are skipped. */
static void chain_add(render *r, const char *table, const char *chain, const char *fmt, ...)
{
    char spec[1024], k[96];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(spec, sizeof spec, fmt, ap);
    va_end(ap);
    cleanup_free char *big = NULL;
    if (n >= (int)sizeof spec) {
        va_start(ap, fmt);
        big = xvasprintf(fmt, ap);
        va_end(ap);
    }
    snprintf(k, sizeof k, "%s/%s", table, chain);
    json_t *old = json_object_get(r->chains, k);
    const char *o = old ? json_string_value(old) : "";
    char text[2048];
    int tl = snprintf(text, sizeof text, "%s-A %s %s\n", o, chain, big ? big : spec);
    cleanup_free char *bigtext = tl >= (int)sizeof text ?
                                 xasprintf("%s-A %s %s\n", o, chain, big ? big : spec) : NULL;
    const char *t = bigtext ? bigtext : text;
    if (old)
        json_string_setn_nocheck(old, t, strlen(t));
    else
        json_object_set_new_nocheck(r->chains, k, json_stringn_nocheck(t, strlen(t)));
}

static void chain_touch(render *r, const char *table, const char *chain)
{
    char k[96];
    snprintf(k, sizeof k, "%s/%s", table, chain);
    if (!json_object_get(r->chains, k))
        json_object_set_new_nocheck(r->chains, k, json_string_nocheck(""));
}

static void line_add(render *r, const char *table, const char *chain, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void line_add(render *r, const char *table, const char *chain, const char *fmt, ...)
{
    char spec[1024], k[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(spec, sizeof spec, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof spec) {
        va_start(ap, fmt);
        cleanup_free char *big = xvasprintf(fmt, ap);
        va_end(ap);
        cleanup_free char *bk = xasprintf("%s/%s\t%s", table, chain, big);
        json_object_set_new(r->lines, bk, json_true());
        return;
    }
    snprintf(k, sizeof k, "%s/%s\t%s", table, chain, spec);
    json_object_set_new_nocheck(r->lines, k, json_true());
}

static void chain_name(char out[32], const char *prefix, const ck_proxy_port *p, const char *extra)
{
    char s[512];
    snprintf(s, sizeof s, "%s%s%s", p->name, p->proto, extra ? extra : "");
    char h[17];
    ck_proxy_hash16(s, h);
    snprintf(out, 32, "%s%s", prefix, h);
}

/* A host's prefix length and the all-ones mask in this family's notation. */
#define HOST(t) ((t)->fam == 6 ? "/128" : "/32")
#define MASK(t) ((t)->fam == 6 ? "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" : "255.255.255.255")

/* An endpoint as DNAT's --to-destination wants it ("[ip]:port" for IPv6). */
static void dnat_to(const ipt *t, const ck_proxy_ep *e, char *out, size_t len)
{
    snprintf(out, len, t->fam == 6 ? "[%s]:%d" : "%s:%d", e->ip, e->port);
}

/* A load-balancing chain (SVC or SVL) over eps; SEP chains rendered alongside. */
static void render_lb(const ipt *t, render *r, const ck_proxy_port *p, const char *chain,
                      const ck_proxy_ep **eps, size_t n, bool masq_rule)
{
    const char *pr = p->proto;
    chain_touch(r, "nat", chain);
    if (masq_rule && t->o.masquerade_all)
        chain_add(r, "nat", chain, "-m comment --comment \"%s cluster IP\" -m %s -p %s -d %s%s "
                  "--dport %d -j KUBE-MARK-MASQ", p->name, pr, pr, p->cluster_ip, HOST(t), p->port);
    else if (masq_rule && t->o.cluster_cidr)
        chain_add(r, "nat", chain, "-m comment --comment \"%s cluster IP\" -m %s -p %s -d %s%s "
                  "--dport %d ! -s %s -j KUBE-MARK-MASQ", p->name, pr, pr, p->cluster_ip, HOST(t),
                  p->port, t->o.cluster_cidr);
    char sep[32];
    if (p->affinity)
        for (size_t i = 0; i < n; i++) {
            char x[96];
            snprintf(x, sizeof x, "%s:%d", eps[i]->ip, eps[i]->port);
            chain_name(sep, "KUBE-SEP-", p, x);
            chain_add(r, "nat", chain, "-m comment --comment \"%s -> %s\" -m recent --name %s "
                      "--mask %s --rsource --rcheck --seconds %d --reap -j %s",
                      p->name, x, sep, MASK(t), p->affinity_timeout, sep);
        }
    for (size_t i = 0; i < n; i++) {
        char x[96], jc[512], k[48], sc[400], to[112];
        snprintf(x, sizeof x, "%s:%d", eps[i]->ip, eps[i]->port);
        chain_name(sep, "KUBE-SEP-", p, x);
        *jc = *sc = 0;
        if (!t->large)
            snprintf(jc, sizeof jc, "-m comment --comment \"%s -> %s\" ", p->name, x);
        if (i + 1 < n)
            chain_add(r, "nat", chain, "%s-m statistic --mode random --probability %.10f -j %s", jc,
                      1.0 / (double)(n - i), sep);
        else
            chain_add(r, "nat", chain, "%s-j %s", jc, sep);
        snprintf(k, sizeof k, "nat/%s", sep);
        if (json_object_get(r->chains, k))
            continue;
        if (!t->large)
            snprintf(sc, sizeof sc, "-m comment --comment %s ", p->name);
        dnat_to(t, eps[i], to, sizeof to);
        chain_add(r, "nat", sep, "%s-s %s%s -j KUBE-MARK-MASQ", sc, eps[i]->ip, HOST(t));
        if (p->affinity)
            chain_add(r, "nat", sep, "%s-m recent --set --name %s --mask %s --rsource "
                      "-m %s -p %s -j DNAT --to-destination %s", sc, sep, MASK(t), pr, pr, to);
        else
            chain_add(r, "nat", sep, "%s-m %s -p %s -j DNAT --to-destination %s", sc, pr, pr, to);
    }
}

/* A TCP reset, not an ICMP error: ICMP errors are rate limited per destination (the second
 * refused connect within a second would hang until its timeout). */
static const char *reject_with(const char *proto)
{
    return !strcmp(proto, "tcp") ? " --reject-with tcp-reset" : "";
}

static void render_port(const ipt *t, render *r, const ck_proxy_port *p)
{
    const char *pr = p->proto;
    const ck_proxy_ep *all[p->n_eps + 1], *loc[p->n_eps + 1];
    size_t n_all = ck_proxy_port_pick(p, false, all);
    size_t n_loc = ck_proxy_port_pick(p, true, loc);
    char svc[32], svl[32], ext[32];
    chain_name(svc, "KUBE-SVC-", p, NULL);
    chain_name(svl, "KUBE-SVL-", p, NULL);
    chain_name(ext, "KUBE-EXT-", p, NULL);
    if (n_all)
        render_lb(t, r, p, svc, all, n_all, true);
    if (n_loc && (p->int_local || p->ext_local))
        render_lb(t, r, p, svl, loc, n_loc, p->int_local);

    /* the cluster IP */
    bool int_ok = p->int_local ? n_loc > 0 : n_all > 0;
    if (int_ok)
        line_add(r, "nat", "KUBE-SERVICES", "-m comment --comment \"%s cluster IP\" -m %s -p %s "
                 "-d %s%s --dport %d -j %s", p->name, pr, pr, p->cluster_ip, HOST(t), p->port,
                 p->int_local ? svl : svc);
    else
        line_add(r, "filter", "KUBE-SERVICES", "-m comment --comment \"%s has no endpoints\" "
                 "-m %s -p %s -d %s%s --dport %d -j REJECT%s", p->name, pr, pr, p->cluster_ip,
                 HOST(t), p->port, reject_with(pr));

    /* external destinations: node ports, external IPs, load balancer IPs */
    if (!p->node_port && !p->n_external)
        return;
    bool ext_ok = p->ext_local ? n_loc > 0 : n_all > 0;
    if (n_all) {
        chain_touch(r, "nat", ext);
        if (!p->ext_local) {
            chain_add(r, "nat", ext, "-m comment --comment \"masquerade traffic for %s external "
                      "destinations\" -j KUBE-MARK-MASQ", p->name);
            chain_add(r, "nat", ext, "-j %s", svc);
        } else {
            if (t->o.cluster_cidr)
                chain_add(r, "nat", ext, "-m comment --comment \"pod traffic for %s external "
                          "destinations\" -s %s -j %s", p->name, t->o.cluster_cidr, svc);
            chain_add(r, "nat", ext, "-m comment --comment \"masquerade LOCAL traffic for %s "
                      "external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ", p->name);
            chain_add(r, "nat", ext, "-m comment --comment \"route LOCAL traffic for %s external "
                      "destinations\" -m addrtype --src-type LOCAL -j %s", p->name, svc);
            if (n_loc)
                chain_add(r, "nat", ext, "-j %s", svl);
        }
        if (p->node_port)
            line_add(r, "nat", "KUBE-NODEPORTS", "-m comment --comment %s -m %s -p %s --dport %d "
                     "-j %s", p->name, pr, pr, p->node_port, ext);
        for (size_t i = 0; i < p->n_external; i++)
            line_add(r, "nat", "KUBE-SERVICES", "-m comment --comment \"%s external IP\" -m %s "
                     "-p %s -d %s%s --dport %d -j %s", p->name, pr, pr, p->external[i], HOST(t),
                     p->port, ext);
    }
    if (!ext_ok) {
        cleanup_free char *verdict = n_all ? xstrdup("DROP") : xasprintf("REJECT%s", reject_with(pr));
        const char *why = n_all ? "has no local endpoints" : "has no endpoints";
        if (p->node_port)
            line_add(r, "filter", "KUBE-EXTERNAL-SERVICES", "-m comment --comment \"%s %s\" "
                     "-m addrtype --dst-type LOCAL -m %s -p %s --dport %d -j %s", p->name, why,
                     pr, pr, p->node_port, verdict);
        for (size_t i = 0; i < p->n_external; i++)
            line_add(r, "filter", "KUBE-EXTERNAL-SERVICES", "-m comment --comment \"%s %s\" -m %s "
                     "-p %s -d %s%s --dport %d -j %s", p->name, why, pr, pr, p->external[i],
                     HOST(t), p->port, verdict);
    }
}

static json_t *render_service(const ipt *t, const ck_proxy_service *s)
{
    render r = {json_object(), json_object()};
    for (size_t i = 0; s && i < s->n_ports; i++)
        if (s->ports[i].family == t->fam)
            render_port(t, &r, &s->ports[i]);
    json_t *out = json_pack("{s:o,s:o}", "chains", r.chains, "lines", r.lines);
    return out;
}

/* ---- writing a restore script ---- */

typedef struct script {
    ck_buf decl[2], del[2], add[2], drop[2];   /* [0] nat, [1] filter */
    json_t *declared;                          /* "t/C" already declared this sync */
} script;

static int tix(const char *table_chain)
{
    return strncmp(table_chain, "nat/", 4) ? 1 : 0;
}

static void declare(script *sc, const char *tc)
{
    if (json_object_get(sc->declared, tc))
        return;
    json_object_set_new(sc->declared, tc, json_true());
    ck_buf_printf(&sc->decl[tix(tc)], ":%s - [0:0]\n", strchr(tc, '/') + 1);
}

/* Write the difference between two renderings of one service (old/new may be NULL). */
static void diff_service(script *sc, const json_t *old, const json_t *new, const json_t *live)
{
    const char *k;
    json_t *v;
    json_t *oc = json_object_get(old, "chains"), *nc = json_object_get(new, "chains");
    json_object_foreach(nc, k, v) {
        const json_t *ov = json_object_get(oc, k);
        /* a SEP chain can be shared by no one else, but a full sync writes everything */
        if (ov && json_equal(ov, v) && !json_object_get(live, "full"))
            continue;
        declare(sc, k);
        ck_buf_addstr(&sc->add[tix(k)], json_string_value(v));
    }
    json_object_foreach(oc, k, v)
        if (!json_object_get(nc, k)) {
            declare(sc, k);
            ck_buf_printf(&sc->drop[tix(k)], "-X %s\n", strchr(k, '/') + 1);
        }
    json_t *ol = json_object_get(old, "lines"), *nl = json_object_get(new, "lines");
    bool full = json_object_get(live, "full") != NULL;
    json_object_foreach(ol, k, v)
        if (!json_object_get(nl, k) && !full) {
            const char *tab = strchr(k, '\t');
            ck_buf_printf(&sc->del[tix(k)], "-D %.*s %s\n", (int)(tab - strchr(k, '/') - 1),
                          strchr(k, '/') + 1, tab + 1);
        }
    json_object_foreach(nl, k, v)
        if (full || !json_object_get(ol, k)) {
            const char *tab = strchr(k, '\t');
            int clen = (int)(tab - strchr(k, '/') - 1);
            const char *chain = strchr(k, '/') + 1;
            /* nat KUBE-SERVICES ends with the node-ports jump: insert above it */
            if (!full && !strncmp(k, "nat/KUBE-SERVICES\t", 18))
                ck_buf_printf(&sc->add[tix(k)], "-I %.*s 1 %s\n", clen, chain, tab + 1);
            else
                ck_buf_printf(&sc->add[tix(k)], "-A %.*s %s\n", clen, chain, tab + 1);
        }
}

static void base_rules(script *sc)
{
    static const char *const nat_chains[] = {"nat/KUBE-SERVICES", "nat/KUBE-NODEPORTS",
                                             "nat/KUBE-POSTROUTING", "nat/KUBE-MARK-MASQ"};
    static const char *const filter_chains[] = {"filter/KUBE-SERVICES", "filter/KUBE-EXTERNAL-SERVICES",
                                                "filter/KUBE-FORWARD", "filter/KUBE-NODEPORTS"};
    for (size_t i = 0; i < ARRAY_SIZE(nat_chains); i++)
        declare(sc, nat_chains[i]);
    for (size_t i = 0; i < ARRAY_SIZE(filter_chains); i++)
        declare(sc, filter_chains[i]);
    ck_buf_addstr(&sc->add[0],
                  "-A KUBE-POSTROUTING -m mark ! --mark " MASQ_MARK "/" MASQ_MARK " -j RETURN\n"
                  "-A KUBE-POSTROUTING -j MARK --xor-mark " MASQ_MARK "\n"
                  "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
                  "-j MASQUERADE --random-fully\n"
                  "-A KUBE-MARK-MASQ -j MARK --or-mark " MASQ_MARK "\n");
    ck_buf_addstr(&sc->add[1],
                  "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
                  "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
                  MASQ_MARK "/" MASQ_MARK " -j ACCEPT\n"
                  "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
                  "--ctstate RELATED,ESTABLISHED -j ACCEPT\n");
}

static char *script_text(script *sc, ck_buf *foreign)
{
    ck_buf out;
    ck_buf_init(&out, 0);
    static const char *const names[2] = {"nat", "filter"};
    for (int t = 0; t < 2; t++) {
        if (!sc->decl[t].len && !sc->del[t].len && !sc->add[t].len && !sc->drop[t].len)
            continue;
        ck_buf_printf(&out, "*%s\n", names[t]);
        if (foreign && foreign[t].len)
            ck_buf_add(&out, foreign[t].data, foreign[t].len);
        ck_buf *parts[] = {&sc->decl[t], &sc->del[t], &sc->add[t], &sc->drop[t]};
        for (size_t i = 0; i < 4; i++)
            if (parts[i]->len)
                ck_buf_add(&out, parts[i]->data, parts[i]->len);
        ck_buf_addstr(&out, "COMMIT\n");
    }
    return out.data ? ck_buf_steal(&out) : xstrdup("");
}

static void script_init(script *sc)
{
    memset(sc, 0, sizeof *sc);
    for (int t = 0; t < 2; t++) {
        ck_buf_init(&sc->decl[t], 0);
        ck_buf_init(&sc->del[t], 0);
        ck_buf_init(&sc->add[t], 0);
        ck_buf_init(&sc->drop[t], 0);
    }
    sc->declared = json_object();
}

static void script_free(script *sc)
{
    for (int t = 0; t < 2; t++) {
        ck_buf_free(&sc->decl[t]);
        ck_buf_free(&sc->del[t]);
        ck_buf_free(&sc->add[t]);
        ck_buf_free(&sc->drop[t]);
    }
    json_decref(sc->declared);
}

/* ---- the mode ---- */

static int ipt_probe(ck_error **err)
{
    if (!ck_proxy_have_binary("iptables-restore") || !ck_proxy_have_binary("iptables"))
        return ck_error_set(err, CK_E_UNAVAILABLE, "iptables mode: iptables/iptables-restore not "
                            "found in PATH (apt-get install iptables)");
    return 0;
}

/* The mode's state: one renderer per family, as upstream's dual-stack meta-proxier; the IPv6 one
 * only when the host has IPv6 and ip6tables (always in a dry run). */
typedef struct ipt_mode {
    ipt fam[2];
    bool v6;
    char *script;        /* both families' last restore input (tests, debugging) */
} ipt_mode;

static void *ipt_new(const ck_proxy_opts *o, ck_error **err)
{
    ipt_mode *im = xcalloc(1, sizeof *im);
    for (int f = 0; f < 2; f++) {
        ipt *t = &im->fam[f];
        t->o = *o;
        t->fam = f ? 6 : 4;
        t->cidr = ck_proxy_cidr_of(o->cluster_cidr, t->fam);
        t->o.cluster_cidr = t->cidr;
        t->applied = json_object();
    }
    im->v6 = o->dry_run || ck_proxy_ipv6_usable();
    const char *force = getenv("CKUBE_PROXY_IPT_RESTORE");
    if (!o->dry_run && ck_proxy_ipt_is_nft() && !(force && *force && strcmp(force, "0")))
        for (int f = 0; f < (im->v6 ? 2 : 1); f++) {
            ck_error *e = NULL;
            im->fam[f].nl = ck_iptnl_new(im->fam[f].fam, shared_chains, &e);
            if (!im->fam[f].nl) {
                log_warn("iptables: no netlink writer (%s): using iptables-restore", e->msg);
                ck_error_free(e);
            } else if (f == 0)
                log_info("iptables: rules written over netlink (nf_tables, as iptables-nft)");
        }
    return im;
}

static void ipt_free(void *st)
{
    ipt_mode *im = st;
    if (!im)
        return;
    for (int f = 0; f < 2; f++) {
        json_decref(im->fam[f].applied);
        ck_iptnl_free(im->fam[f].nl);
        free(im->fam[f].script);
        free(im->fam[f].cidr);
    }
    free(im->script);
    free(im);
}

static const char *ipt_last(void *st)
{
    return ((ipt_mode *)st)->script;
}

typedef struct full_ctx {
    ipt *t;
    script *sc;
    json_t *next, *live;
} full_ctx;

static bool full_one(void *ctx, const ck_proxy_service *s)
{
    full_ctx *f = ctx;
    json_t *r = render_service(f->t, s);
    diff_service(f->sc, json_object_get(f->t->applied, s->key), r, f->live);
    json_object_set_new(f->next, s->key, r);
    return true;
}

static bool count_eps(void *ctx, const ck_proxy_service *s)
{
    for (size_t i = 0; i < s->n_ports; i++)
        ((size_t *)ctx)[s->ports[i].family == 6] += s->ports[i].n_eps;
    return true;
}

static void flush_gone_udp(const json_t *old, const json_t *new)
{
    /* an endpoint of a UDP port gone: its DNAT conntrack entries would blackhole the flow */
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(old, "chains"), k, v) {
        if (strncmp(k, "nat/KUBE-SEP-", 13) || json_object_get(json_object_get(new, "chains"), k))
            continue;
        const char *txt = json_string_value(v);
        const char *d = strstr(txt, "-p udp -j DNAT --to-destination ");
        if (!d)
            continue;
        char ip[64] = "";
        d += 32;
        /* "ip:port", or "[ip6]:port" (the scan stops at ']') */
        if (sscanf(d + (*d == '['), "%63[0-9a-fA-F.:]", ip) == 1 && *d != '[' && strchr(ip, ':'))
            *strchr(ip, ':') = 0;
        if (*ip)
            ck_proxy_conntrack_flush_udp(NULL, ip);
    }
}

static int ipt_sync_fam(ipt *t, ck_proxy_model *m, const json_t *changed, ck_error **err)
{
    script sc;
    script_init(&sc);
    json_t *next = NULL;
    json_t *live = json_object();
    /* [old, new] renderings of the changed services: their gone UDP endpoints' conntrack entries
     * are flushed once the restore is in (as upstream): before it, a packet of the flow would
     * be DNATed by the old rules again and make a new stale entry */
    json_t *gone = json_array();
    bool full = !changed || !t->started;
    if (full) {
        size_t n_eps[2] = {0, 0};
        ck_proxy_model_foreach(m, count_eps, n_eps);
        t->large = n_eps[t->fam == 6] > LARGE_CLUSTER_ENDPOINTS;
        json_object_set_new(live, "full", json_true());
        base_rules(&sc);
        next = json_object();
        full_ctx f = {t, &sc, next, live};
        ck_proxy_model_foreach(m, full_one, &f);
        const char *k;
        json_t *v;
        json_object_foreach(t->applied, k, v)
            if (!json_object_get(next, k))
                diff_service(&sc, v, NULL, live);
        ck_buf_printf(&sc.add[0], "-A KUBE-SERVICES %s\n", nodeports_last);
    } else {
        size_t i;
        json_t *kv;
        json_array_foreach(changed, i, kv) {
            const char *k = json_string_value(kv);
            const ck_proxy_service *s = ck_proxy_model_get(m, k);
            json_t *r = s ? render_service(t, s) : NULL;
            json_t *old = json_object_get(t->applied, k);
            diff_service(&sc, old, r, live);
            if (!t->o.dry_run) {
                json_t *pair = json_array();
                json_array_append(pair, old ? old : json_null());
                json_array_append(pair, r ? r : json_null());
                json_array_append_new(gone, pair);
            }
            if (r)
                json_object_set_new(t->applied, k, r);
            else
                json_object_del(t->applied, k);
        }
    }
    ck_buf foreign[2];
    ck_buf_init(&foreign[0], 0);
    ck_buf_init(&foreign[1], 0);
    if (full && !t->o.dry_run && !t->nl &&
        (foreign_rules(t->fam, "nat", &foreign[0], err) < 0 ||
         foreign_rules(t->fam, "filter", &foreign[1], err) < 0)) {
        ck_buf_free(&foreign[0]);
        ck_buf_free(&foreign[1]);
        script_free(&sc);
        json_decref(live);
        json_decref(next);
        json_decref(gone);
        return ck_error_wrap(err, "iptables: reading the current rules");
    }
    free(t->script);
    t->script = script_text(&sc, full ? foreign : NULL);
    ck_buf_free(&foreign[0]);
    ck_buf_free(&foreign[1]);
    script_free(&sc);
    json_decref(live);
    int rc = 0;
    if (*t->script && !t->o.dry_run && t->nl) {
        /* full: our chains flushed and refilled, stale ones of ours deleted, nothing else
         * touched; partial: only the changed chains and lines (by rule handle) */
        ck_iptnl_jump nj[ARRAY_SIZE(jumps)];
        for (size_t i = 0; i < ARRAY_SIZE(jumps); i++)
            nj[i] = (ck_iptnl_jump){jumps[i].table, jumps[i].chain, jumps[i].target, jumps[i].rule};
        rc = ck_iptnl_apply(t->nl, t->script, full, own_chain, nj, full ? ARRAY_SIZE(nj) : 0, err);
        if (rc < 0) {
            if ((*err)->code == CK_E_INVALID) {
                log_warn("%s: the netlink writer cannot write this rule set (%s): using "
                         "iptables-restore from now on", t->fam == 6 ? "ip6tables" : "iptables",
                         (*err)->msg);
                ck_iptnl_free(t->nl);
                t->nl = NULL;
            }
            json_decref(next);
            t->started = false;
            json_object_clear(t->applied);
            return ck_error_wrap(err, "%s sync (netlink)", t->fam == 6 ? "ip6tables" : "iptables");
        }
    } else if (*t->script && !t->o.dry_run) {
        /* full: whole tables replaced (ours rendered, others' read back); partial: --noflush */
        const char *argv[] = {ck_proxy_ipt_fam(t->fam, CK_IPT_RESTORE), "-w", full ? NULL : "--noflush",
                              NULL};
        rc = ck_proxy_exec(argv, t->script, strlen(t->script), NULL, err);
        if (rc < 0) {
            /* the kernel kept the old rules (restore is atomic per table): force a full sync */
            json_decref(next);
            json_decref(gone);
            t->started = false;
            json_object_clear(t->applied);
            return ck_error_wrap(err, "%s sync", t->fam == 6 ? "ip6tables" : "iptables");
        }
    }
    size_t gi;
    json_t *pair;
    json_array_foreach(gone, gi, pair)
        flush_gone_udp(json_array_get(pair, 0), json_array_get(pair, 1));
    json_decref(gone);
    if (full) {
        const char *k;
        json_t *v;
        if (!t->o.dry_run)
            json_object_foreach(t->applied, k, v)
                flush_gone_udp(v, json_object_get(next, k));
        json_decref(t->applied);
        t->applied = next;
    }
    if (!t->started && !t->o.dry_run && !t->nl)
        for (size_t i = 0; i < ARRAY_SIZE(jumps); i++)
            if (ck_proxy_iptables_ensure_jump(t->fam, jumps[i].table, jumps[i].chain, jumps[i].rule,
                                              err) < 0)
                return -1;
    t->started = true;
    return rc;
}

static int ipt_sync(void *st, ck_proxy_model *m, const json_t *changed, ck_error **err)
{
    ipt_mode *im = st;
    int rc = ipt_sync_fam(&im->fam[0], m, changed, err);
    if (rc == 0 && im->v6)
        rc = ipt_sync_fam(&im->fam[1], m, changed, err);
    free(im->script);
    const char *s4 = im->fam[0].script ? im->fam[0].script : "";
    const char *s6 = im->v6 && im->fam[1].script ? im->fam[1].script : "";
    im->script = *s6 ? xasprintf("%s# ip6tables\n%s", s4, s6) : xstrdup(s4);
    return rc;
}

static int ipt_cleanup(ck_error **err)
{
    for (int fam = 4; fam <= 6; fam += 2) {
        if (fam == 6 && !ck_proxy_ipv6_usable())
            break;
        for (size_t i = 0; i < ARRAY_SIZE(jumps); i++)
            ck_proxy_iptables_delete_jump(fam, jumps[i].table, jumps[i].chain, jumps[i].rule);
        if (ck_proxy_iptables_delete_chains(fam, "nat", own_prefixes, err) < 0 ||
            ck_proxy_iptables_delete_chains(fam, "filter", own_prefixes, err) < 0)
            return ck_error_wrap(err, "%s cleanup", fam == 6 ? "ip6tables" : "iptables");
    }
    return 0;
}

const ck_proxy_mode ck_proxy_mode_iptables = {
    .name = "iptables",
    .probe = ipt_probe,
    .new = ipt_new,
    .sync = ipt_sync,
    .last_script = ipt_last,
    .free = ipt_free,
    .cleanup = ipt_cleanup,
};

/* iptnl.c - iptables-restore input programmed over netlink, rule for rule as iptables-nft 1.8.9
 * would (see iptnl.h for the contract).
 *
 * Why by hand: iptables-nft-restore spends ~3/4 of a 10,000-service load in user space, half of
 * it in strcmp/strlen looking chain names up in its own cache; the kernel's share is ~1 s.  The
 * rules are written with libmnl in libnftnl's encoding (the library iptables-nft uses) from the
 * few iptables options the proxy writes; anything else is refused, and the caller falls back to
 * the tool.  The expression layout per rule (checked against iptables-nft-restore byte for byte
 * in tests/e2e/proxy.sh):
 *   -p P          meta l4proto, cmp
 *   -s/-d A/L     payload (only the prefix's whole bytes), bitwise when L is not a byte
 *                 boundary, cmp (neq with "!")
 *   -m tcp/udp --dport N   payload transport+2, cmp (no ports: the xt match)
 *   -m mark --mark V/M     meta mark, bitwise, cmp
 *   other -m      xt "match" expressions carrying the extension's struct
 *   counter, then the verdict (immediate) or an xt "target".
 */
#include "proxy/iptnl.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <jansson.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_recent.h>
#include <linux/netfilter/xt_statistic.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>
#include <linux/netfilter_ipv6/ip6t_REJECT.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"

struct ck_iptnl {
    int fam;
    uint16_t nfproto;
    struct mnl_socket *nl;
    uint32_t portid, seq;
    json_t *tracked;      /* "table/chain" -> {spec: handle} */
};

/* ---- the socket ---- */

ck_iptnl *ck_iptnl_new(int family, const char *const *tracked, ck_error **err)
{
    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl)
        return ck_error_sys(err, CK_E_UNAVAILABLE, "netlink socket"), NULL;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        mnl_socket_close(nl);
        return ck_error_sys(err, CK_E_UNAVAILABLE, "netlink bind"), NULL;
    }
    int one = 1, rcv = 32 << 20;
    setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    /* echoed rules of a partial batch queue here while the kernel commits */
    if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0)
        setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    ck_iptnl *n = xcalloc(1, sizeof *n);
    n->fam = family;
    n->nfproto = family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
    n->nl = nl;
    n->portid = mnl_socket_get_portid(nl);
    n->seq = (uint32_t)time(NULL);
    n->tracked = json_object();
    for (const char *const *t = tracked; t && *t; t++)
        json_object_set_new(n->tracked, *t, json_object());
    return n;
}

void ck_iptnl_free(ck_iptnl *n)
{
    if (!n)
        return;
    mnl_socket_close(n->nl);
    json_decref(n->tracked);
    free(n);
}

/* A dump request; cb sees every message.  ENOENT (no such table) is an empty dump. */
static int dump(ck_iptnl *n, struct nlmsghdr *req, mnl_cb_t cb, void *data, ck_error **err)
{
    uint32_t seq = req->nlmsg_seq;
    if (mnl_socket_sendto(n->nl, req, req->nlmsg_len) < 0)
        return ck_error_sys(err, CK_E_INTERNAL, "netlink dump request");
    /* the kernel sizes dump messages by the largest read the socket has seen (up to ~32 KiB,
     * and send_batch reads with 1 MiB): a smaller buffer here truncates them (ENOSPC) */
    size_t sz = 65536;
    cleanup_free char *buf = xmalloc(sz);
    for (;;) {
        ssize_t r = mnl_socket_recvfrom(n->nl, buf, sz);
        if (r < 0)
            return ck_error_sys(err, CK_E_INTERNAL, "netlink dump");
        int rc = mnl_cb_run(buf, (size_t)r, seq, n->portid, cb, data);
        if (rc < 0 && errno == ENOENT)
            return 0;
        if (rc < 0)
            return ck_error_sys(err, CK_E_INTERNAL, "netlink dump");
        if (rc == MNL_CB_STOP)
            return 0;
    }
}

static struct nlmsghdr *dump_req(ck_iptnl *n, char *buf, uint16_t msg, const char *table,
                                 const char *chain)
{
    struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, msg, n->nfproto, NLM_F_DUMP, ++n->seq);
    if (table)
        mnl_attr_put_strz(nlh, msg == NFT_MSG_GETRULE ? NFTA_RULE_TABLE : NFTA_CHAIN_TABLE, table);
    if (chain)
        mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain);
    return nlh;
}

typedef struct chains_of {
    const char *table;
    json_t *names;
} chains_of;

/* The kernel does not filter a chain dump by table: every family's chains come. */
static int chain_name_cb(const struct nlmsghdr *nlh, void *data)
{
    chains_of *c = data;
    struct nlattr *a;
    const char *table = NULL, *name = NULL;
    mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
        if (mnl_attr_get_type(a) == NFTA_CHAIN_NAME)
            name = mnl_attr_get_str(a);
        else if (mnl_attr_get_type(a) == NFTA_CHAIN_TABLE)
            table = mnl_attr_get_str(a);
    }
    if (name && table && !strcmp(table, c->table))
        json_object_set_new(c->names, name, json_true());
    return MNL_CB_OK;
}

static int rule_handle_cb(const struct nlmsghdr *nlh, void *data)
{
    struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
        if (mnl_attr_get_type(a) == NFTA_RULE_HANDLE)
            json_array_append_new(data, json_integer((json_int_t)be64toh(mnl_attr_get_u64(a))));
    return MNL_CB_OK;
}

/* An echoed rule: its handle under the seq of the message that added it. */
static int echo_handle_cb(const struct nlmsghdr *nlh, void *data)
{
    struct nlattr *a;
    char k[16];
    snprintf(k, sizeof k, "%u", nlh->nlmsg_seq);
    mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
        if (mnl_attr_get_type(a) == NFTA_RULE_HANDLE)
            json_object_set_new(data, k, json_integer((json_int_t)be64toh(mnl_attr_get_u64(a))));
    return MNL_CB_OK;
}

/* ---- one rule spec -> expressions ---- */

typedef struct opt {
    const char *name, *val;
    bool inv;
} opt;

typedef struct mt {
    const char *name;
    opt opts[8];
    int n;
} mt;

typedef struct spec {
    const char *proto, *src, *dst, *target;
    bool proto_inv, src_inv, dst_inv;
    mt m[6];
    int nm;
    opt topts[4];
    int nt;
} spec;

/* Split in place on blanks; "..." groups (iptables-restore's quoting, no escapes needed). */
static int tokenize(char *s, char **tok, int max)
{
    int n = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        if (n == max)
            return -1;
        if (*s == '"') {
            tok[n++] = ++s;
            char *q = strchr(s, '"');
            if (!q)
                return -1;
            *q = 0;
            s = q + 1;
        } else {
            tok[n++] = s;
            s += strcspn(s, " \t");
            if (*s)
                *s++ = 0;
        }
    }
    return n;
}

static bool flag_opt(const char *o)
{
    static const char *const flags[] = {"--set", "--rcheck", "--update", "--remove", "--reap",
                                         "--rsource", "--random-fully", NULL};
    for (const char *const *f = flags; *f; f++)
        if (!strcmp(o, *f))
            return true;
    return false;
}

/* Which loaded match takes an option (iptables asks each extension; ours are disjoint). */
static const char *opt_owner(const char *o)
{
    static const struct { const char *opt, *match; } owners[] = {
        {"--comment", "comment"}, {"--dport", "*port"}, {"--sport", "*port"},
        {"--mode", "statistic"}, {"--probability", "statistic"}, {"--name", "recent"},
        {"--mask", "recent"}, {"--seconds", "recent"}, {"--set", "recent"}, {"--rcheck", "recent"},
        {"--reap", "recent"}, {"--rsource", "recent"}, {"--dst-type", "addrtype"},
        {"--src-type", "addrtype"}, {"--ctstate", "conntrack"}, {"--mark", "mark"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(owners); i++)
        if (!strcmp(o, owners[i].opt))
            return owners[i].match;
    return NULL;
}

static int parse_spec(char **tok, int nt, spec *sp)
{
    memset(sp, 0, sizeof *sp);
    bool inv = false;
    for (int i = 0; i < nt; i++) {
        const char *t = tok[i];
        if (!strcmp(t, "!")) {
            inv = true;
            continue;
        }
        bool takes = !flag_opt(t);
        const char *v = takes && i + 1 < nt ? tok[i + 1] : NULL;
        if (takes && !v)
            return -1;
        if (!strcmp(t, "-p"))
            sp->proto = v, sp->proto_inv = inv;
        else if (!strcmp(t, "-s"))
            sp->src = v, sp->src_inv = inv;
        else if (!strcmp(t, "-d"))
            sp->dst = v, sp->dst_inv = inv;
        else if (!strcmp(t, "-m")) {
            if (inv || sp->nm == (int)ARRAY_SIZE(sp->m))
                return -1;
            sp->m[sp->nm++].name = v;
        } else if (!strcmp(t, "-j")) {
            if (inv)
                return -1;
            sp->target = v;
        } else if (!strncmp(t, "--", 2) && sp->target) {
            if (sp->nt == (int)ARRAY_SIZE(sp->topts))
                return -1;
            sp->topts[sp->nt++] = (opt){t, v, inv};
        } else if (!strncmp(t, "--", 2)) {
            const char *owner = opt_owner(t);
            mt *m = NULL;
            for (int j = sp->nm - 1; owner && j >= 0 && !m; j--)
                if (!strcmp(sp->m[j].name, owner) ||
                    (!strcmp(owner, "*port") && (!strcmp(sp->m[j].name, "tcp") ||
                                                 !strcmp(sp->m[j].name, "udp"))))
                    m = &sp->m[j];
            if (!m || m->n == (int)ARRAY_SIZE(m->opts))
                return -1;
            m->opts[m->n++] = (opt){t, v, inv};
        } else
            return -1;
        inv = false;
        if (takes)
            i++;
    }
    return sp->target ? 0 : -1;
}

/* A rule being written straight into the batch: the attributes libnftnl would write for the
 * same expressions (nested NFTA_LIST_ELEM {NFTA_EXPR_NAME, NFTA_EXPR_DATA {...}}), without its
 * objects (an allocation per expression and attribute cost ~10% of a 10,000-service load). */
typedef struct rb {
    struct nlmsghdr *nlh;
    struct nlattr *elem, *data;
} rb;

static void x_begin(rb *r, const char *name)
{
    r->elem = mnl_attr_nest_start(r->nlh, NFTA_LIST_ELEM);
    mnl_attr_put_strz(r->nlh, NFTA_EXPR_NAME, name);
    r->data = mnl_attr_nest_start(r->nlh, NFTA_EXPR_DATA);
}

static void x_end(rb *r)
{
    mnl_attr_nest_end(r->nlh, r->data);
    mnl_attr_nest_end(r->nlh, r->elem);
}

static void x_u32(rb *r, uint16_t type, uint32_t v)
{
    mnl_attr_put_u32(r->nlh, type, htonl(v));
}

/* a data register value: NFTA_x {NFTA_DATA_VALUE bytes} */
static void x_value(rb *r, uint16_t type, const void *data, uint32_t len)
{
    struct nlattr *nest = mnl_attr_nest_start(r->nlh, type);
    mnl_attr_put(r->nlh, NFTA_DATA_VALUE, len, data);
    mnl_attr_nest_end(r->nlh, nest);
}

static void e_meta(rb *r, uint32_t key)
{
    x_begin(r, "meta");
    x_u32(r, NFTA_META_KEY, key);
    x_u32(r, NFTA_META_DREG, NFT_REG_1);
    x_end(r);
}

static void e_payload(rb *r, uint32_t base, uint32_t off, uint32_t len)
{
    x_begin(r, "payload");
    x_u32(r, NFTA_PAYLOAD_DREG, NFT_REG_1);
    x_u32(r, NFTA_PAYLOAD_BASE, base);
    x_u32(r, NFTA_PAYLOAD_OFFSET, off);
    x_u32(r, NFTA_PAYLOAD_LEN, len);
    x_end(r);
}

static void e_cmp(rb *r, uint32_t op, const void *data, uint32_t len)
{
    x_begin(r, "cmp");
    x_u32(r, NFTA_CMP_SREG, NFT_REG_1);
    x_u32(r, NFTA_CMP_OP, op);
    x_value(r, NFTA_CMP_DATA, data, len);
    x_end(r);
}

static void e_bitwise(rb *r, const void *mask, uint32_t len)
{
    static const uint8_t zero[16];
    x_begin(r, "bitwise");
    x_u32(r, NFTA_BITWISE_SREG, NFT_REG_1);
    x_u32(r, NFTA_BITWISE_DREG, NFT_REG_1);
    x_u32(r, NFTA_BITWISE_LEN, len);
    x_value(r, NFTA_BITWISE_MASK, mask, len);
    x_value(r, NFTA_BITWISE_XOR, zero, len);
    x_end(r);
}

static void e_counter(rb *r)
{
    x_begin(r, "counter");
    mnl_attr_put_u64(r->nlh, NFTA_COUNTER_BYTES, 0);
    mnl_attr_put_u64(r->nlh, NFTA_COUNTER_PACKETS, 0);
    x_end(r);
}

/* immediate verdict: NFTA_IMMEDIATE_DATA {NFTA_DATA_VERDICT {code, chain}} */
static void e_verdict(rb *r, int code, const char *chain)
{
    x_begin(r, "immediate");
    x_u32(r, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    struct nlattr *d = mnl_attr_nest_start(r->nlh, NFTA_IMMEDIATE_DATA);
    struct nlattr *v = mnl_attr_nest_start(r->nlh, NFTA_DATA_VERDICT);
    x_u32(r, NFTA_VERDICT_CODE, (uint32_t)code);
    if (chain)
        mnl_attr_put_strz(r->nlh, NFTA_VERDICT_CHAIN, chain);
    mnl_attr_nest_end(r->nlh, v);
    mnl_attr_nest_end(r->nlh, d);
    x_end(r);
}

static void e_xt(rb *r, bool target, const char *name, uint32_t rev, const void *info, size_t len)
{
    /* the kernel wants the struct padded to XT_ALIGN, the padding zero (as iptables' calloc) */
    uint8_t pad[512] = {0};
    if (len > sizeof pad)
        abort();   /* the extension structs written here are all far smaller */
    memcpy(pad, info, len);
    x_begin(r, target ? "target" : "match");
    mnl_attr_put_strz(r->nlh, target ? NFTA_TARGET_NAME : NFTA_MATCH_NAME, name);
    x_u32(r, target ? NFTA_TARGET_REV : NFTA_MATCH_REV, rev);
    mnl_attr_put(r->nlh, target ? NFTA_TARGET_INFO : NFTA_MATCH_INFO, (size_t)XT_ALIGN(len), pad);
    x_end(r);
}

/* "A" or "A/L" -> address bytes + mask (16 bytes max). */
static int parse_addr(int fam, const char *s, uint8_t addr[16], uint8_t mask[16], size_t *alen)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    *alen = fam == 6 ? 16 : 4;
    int len = (int)*alen * 8;
    char *sl = strchr(buf, '/');
    if (sl) {
        *sl = 0;
        char *end;
        long l = strtol(sl + 1, &end, 10);
        if (*end || l < 0 || l > len)
            return -1;
        len = (int)l;
    }
    if (inet_pton(fam == 6 ? AF_INET6 : AF_INET, buf, addr) != 1)
        return -1;
    memset(mask, 0, 16);
    for (int i = 0; i < len; i++)
        mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
    for (size_t i = 0; i < *alen; i++)
        addr[i] &= mask[i];
    return 0;
}

/* iptables-nft's add_addr: load only the prefix's whole bytes unless a partial byte needs a
 * bitwise mask. */
static int e_addr(const ck_iptnl *n, rb *r, const char *s, bool inv, bool src)
{
    uint8_t a[16], m[16];
    size_t len;
    if (parse_addr(n->fam, s, a, m, &len) < 0)
        return -1;
    size_t i = 0;
    while (i < len && m[i] == 0xff)
        i++;
    bool bitwise = i < len && m[i] != 0;
    uint32_t off = n->fam == 6 ? (src ? 8 : 24) : (src ? 12 : 16);
    size_t plen = bitwise ? len : i;
    e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, (uint32_t)plen);
    if (bitwise)
        e_bitwise(r, m, (uint32_t)plen);
    e_cmp(r, inv ? NFT_CMP_NEQ : NFT_CMP_EQ, a, (uint32_t)plen);
    return 0;
}

static int proto_num(const char *p)
{
    if (!strcmp(p, "tcp"))
        return 6;
    if (!strcmp(p, "udp"))
        return 17;
    if (!strcmp(p, "sctp"))
        return 132;
    return -1;
}

static const opt *mopt(const mt *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->opts[i].name, name))
            return &m->opts[i];
    return NULL;
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || *end || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int addrtype_bits(const char *s, uint16_t *out)
{
    if (strcmp(s, "LOCAL"))
        return -1;
    *out = XT_ADDRTYPE_LOCAL;
    return 0;
}

static int ctstate_bits(const char *s, uint16_t *out)
{
    static const struct { const char *name; uint16_t bit; } states[] = {
        {"INVALID", XT_CONNTRACK_STATE_INVALID}, {"NEW", XT_CONNTRACK_STATE_BIT(IP_CT_NEW)},
        {"ESTABLISHED", XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED)},
        {"RELATED", XT_CONNTRACK_STATE_BIT(IP_CT_RELATED)},
        {"UNTRACKED", XT_CONNTRACK_STATE_UNTRACKED}, {"SNAT", XT_CONNTRACK_STATE_SNAT},
        {"DNAT", XT_CONNTRACK_STATE_DNAT},
    };
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    *out = 0;
    for (char *save, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < ARRAY_SIZE(states) && strcmp(states[i].name, w))
            i++;
        if (i == ARRAY_SIZE(states))
            return -1;
        *out |= states[i].bit;
    }
    return 0;
}

static int emit_match(const ck_iptnl *n, rb *r, const mt *m, int proto)
{
    if (!strcmp(m->name, "comment")) {
        const opt *c = mopt(m, "--comment");
        struct xt_comment_info ci = {{0}};
        if (!c || m->n != 1 || strlen(c->val) >= sizeof ci.comment)
            return -1;
        memcpy(ci.comment, c->val, strlen(c->val));
        e_xt(r, false, "comment", 0, &ci, sizeof ci);
        return 0;
    }
    if (!strcmp(m->name, "tcp") || !strcmp(m->name, "udp")) {
        if (proto != proto_num(m->name))
            return -1;
        const opt *d = mopt(m, "--dport");
        if (m->n > (d ? 1 : 0))
            return -1;
        if (d) {
            uint32_t port;
            if (d->inv || parse_u32(d->val, &port) < 0 || port > 65535)
                return -1;
            uint16_t be = htons((uint16_t)port);
            e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
            e_cmp(r, NFT_CMP_EQ, &be, 2);
        } else if (proto == 6) {
            struct xt_tcp ti = {.spts = {0, 0xffff}, .dpts = {0, 0xffff}};
            e_xt(r, false, "tcp", 0, &ti, sizeof ti);
        } else {
            struct xt_udp ui = {.spts = {0, 0xffff}, .dpts = {0, 0xffff}};
            e_xt(r, false, "udp", 0, &ui, sizeof ui);
        }
        return 0;
    }
    if (!strcmp(m->name, "mark")) {
        const opt *k = mopt(m, "--mark");
        if (!k || m->n != 1)
            return -1;
        char buf[64];
        snprintf(buf, sizeof buf, "%s", k->val);
        char *sl = strchr(buf, '/');
        uint32_t val, mask = 0xffffffff;
        if (sl)
            *sl = 0;
        if (parse_u32(buf, &val) < 0 || (sl && parse_u32(sl + 1, &mask) < 0))
            return -1;
        e_meta(r, NFT_META_MARK);
        if (mask != 0xffffffff)
            e_bitwise(r, &mask, 4);
        e_cmp(r, k->inv ? NFT_CMP_NEQ : NFT_CMP_EQ, &val, 4);
        return 0;
    }
    if (!strcmp(m->name, "statistic")) {
        const opt *mode = mopt(m, "--mode"), *p = mopt(m, "--probability");
        if (!mode || !p || m->n != 2 || strcmp(mode->val, "random") || p->inv)
            return -1;
        char *end;
        double prob = strtod(p->val, &end);
        if (*end || prob < 0 || prob > 1)
            return -1;
        struct xt_statistic_info si = {.mode = XT_STATISTIC_MODE_RANDOM};
        si.u.random.probability = (uint32_t)lround(0x80000000 * prob);
        /* libxt_statistic leaves the value in the nth union's count too */
        si.u.nth.count = si.u.random.probability;
        e_xt(r, false, "statistic", 0, &si, sizeof si);
        return 0;
    }
    if (!strcmp(m->name, "recent")) {
        struct xt_recent_mtinfo_v1 ri;
        memset(&ri, 0, sizeof ri);
        memset(&ri.mask, 0xff, n->fam == 6 ? 16 : 4);
        snprintf(ri.name, sizeof ri.name, "DEFAULT");
        ri.side = XT_RECENT_SOURCE;
        for (int i = 0; i < m->n; i++) {
            const opt *o = &m->opts[i];
            if (o->inv)
                return -1;
            if (!strcmp(o->name, "--name")) {
                if (strlen(o->val) >= sizeof ri.name)
                    return -1;
                snprintf(ri.name, sizeof ri.name, "%s", o->val);
            } else if (!strcmp(o->name, "--mask")) {
                memset(&ri.mask, 0, sizeof ri.mask);
                if (inet_pton(n->fam == 6 ? AF_INET6 : AF_INET, o->val, &ri.mask) != 1)
                    return -1;
            } else if (!strcmp(o->name, "--seconds")) {
                if (parse_u32(o->val, &ri.seconds) < 0)
                    return -1;
            } else if (!strcmp(o->name, "--set"))
                ri.check_set |= XT_RECENT_SET;
            else if (!strcmp(o->name, "--rcheck"))
                ri.check_set |= XT_RECENT_CHECK;
            else if (!strcmp(o->name, "--reap"))
                ri.check_set |= XT_RECENT_REAP;
            else if (!strcmp(o->name, "--rsource"))
                ri.side = XT_RECENT_SOURCE;
            else
                return -1;
        }
        e_xt(r, false, "recent", 1, &ri, sizeof ri);
        return 0;
    }
    if (!strcmp(m->name, "addrtype")) {
        struct xt_addrtype_info_v1 ai = {0};
        for (int i = 0; i < m->n; i++) {
            const opt *o = &m->opts[i];
            uint16_t *f = !strcmp(o->name, "--src-type") ? &ai.source : &ai.dest;
            if (o->inv || addrtype_bits(o->val, f) < 0)
                return -1;
        }
        e_xt(r, false, "addrtype", 1, &ai, sizeof ai);
        return 0;
    }
    if (!strcmp(m->name, "conntrack")) {
        const opt *s = mopt(m, "--ctstate");
        struct xt_conntrack_mtinfo3 ci;
        memset(&ci, 0, sizeof ci);
        if (!s || m->n != 1 || s->inv || ctstate_bits(s->val, &ci.state_mask) < 0)
            return -1;
        ci.match_flags = XT_CONNTRACK_STATE;
        e_xt(r, false, "conntrack", 3, &ci, sizeof ci);
        return 0;
    }
    return -1;
}

static int parse_hostport(int fam, const char *s, union nf_inet_addr *a, uint16_t *port)
{
    char buf[80];
    snprintf(buf, sizeof buf, "%s", s);
    char *host = buf, *colon;
    if (fam == 6) {
        char *rb = strchr(buf, ']');
        if (buf[0] != '[' || !rb || rb[1] != ':')
            return -1;
        *rb = 0;
        host = buf + 1;
        colon = rb + 1;
    } else if (!(colon = strrchr(buf, ':')))
        return -1;
    *colon = 0;
    uint32_t p;
    if (parse_u32(colon + 1, &p) < 0 || p == 0 || p > 65535)
        return -1;
    *port = (uint16_t)p;
    return inet_pton(fam == 6 ? AF_INET6 : AF_INET, host, a) == 1 ? 0 : -1;
}

static const opt *topt(const spec *sp, const char *name)
{
    for (int i = 0; i < sp->nt; i++)
        if (!strcmp(sp->topts[i].name, name))
            return &sp->topts[i];
    return NULL;
}

static int emit_target(const ck_iptnl *n, rb *r, const spec *sp)
{
    const char *t = sp->target;
    static const struct { const char *name; int verdict; } verdicts[] = {
        {"ACCEPT", NF_ACCEPT}, {"DROP", NF_DROP}, {"RETURN", NFT_RETURN},
    };
    for (size_t i = 0; i < ARRAY_SIZE(verdicts); i++)
        if (!strcmp(t, verdicts[i].name)) {
            if (sp->nt)
                return -1;
            e_verdict(r, verdicts[i].verdict, NULL);
            return 0;
        }
    if (!strcmp(t, "DNAT")) {
        const opt *to = topt(sp, "--to-destination");
        struct nf_nat_range2 nr;
        memset(&nr, 0, sizeof nr);
        uint16_t port;
        if (!to || sp->nt != 1 || parse_hostport(n->fam, to->val, &nr.min_addr, &port) < 0)
            return -1;
        nr.flags = NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED;
        nr.max_addr = nr.min_addr;
        nr.min_proto.all = nr.max_proto.all = htons(port);
        e_xt(r, true, "DNAT", 2, &nr, sizeof nr);
        return 0;
    }
    if (!strcmp(t, "MARK")) {
        const opt *o = topt(sp, "--or-mark"), *x = topt(sp, "--xor-mark");
        struct xt_mark_tginfo2 mi = {0};
        uint32_t v;
        if (sp->nt != 1 || (!o && !x) || parse_u32((o ? o : x)->val, &v) < 0)
            return -1;
        mi.mark = v;
        mi.mask = o ? v : 0;   /* (mark & ~mask) ^ value */
        e_xt(r, true, "MARK", 2, &mi, sizeof mi);
        return 0;
    }
    if (!strcmp(t, "MASQUERADE")) {
        const opt *rf = topt(sp, "--random-fully");
        if (sp->nt != (rf ? 1 : 0))
            return -1;
        unsigned flags = rf ? NF_NAT_RANGE_PROTO_RANDOM_FULLY : 0;
        if (n->fam == 6) {
            struct nf_nat_range nr;
            memset(&nr, 0, sizeof nr);
            nr.flags = flags;
            e_xt(r, true, "MASQUERADE", 0, &nr, sizeof nr);
        } else {
            struct nf_nat_ipv4_multi_range_compat mr;
            memset(&mr, 0, sizeof mr);
            mr.rangesize = 1;
            mr.range[0].flags = flags;
            e_xt(r, true, "MASQUERADE", 0, &mr, sizeof mr);
        }
        return 0;
    }
    if (!strcmp(t, "REJECT")) {
        const opt *w = topt(sp, "--reject-with");
        if (sp->nt != (w ? 1 : 0) || (w && strcmp(w->val, "tcp-reset")))
            return -1;
        if (n->fam == 6) {
            struct ip6t_reject_info ri = {.with = w ? IP6T_TCP_RESET : IP6T_ICMP6_PORT_UNREACH};
            e_xt(r, true, "REJECT", 0, &ri, sizeof ri);
        } else {
            struct ipt_reject_info ri = {.with = w ? IPT_TCP_RESET : IPT_ICMP_PORT_UNREACHABLE};
            e_xt(r, true, "REJECT", 0, &ri, sizeof ri);
        }
        return 0;
    }
    /* anything else is a chain of ours (upper case, as iptables requires for targets too) */
    if (sp->nt || strlen(t) >= 29 || t[0] < 'A' || t[0] > 'Z')
        return -1;
    e_verdict(r, NFT_JUMP, t);
    return 0;
}

/* The rule for "chain spec" in table, written into the message nlh (header already there);
 * -1: a construct the writer does not know (nlh then holds garbage: not to be sent). */
static int build_rule(const ck_iptnl *n, struct nlmsghdr *nlh, const char *table,
                      const char *chain, const char *text)
{
    char buf[1024];
    char *tok[64];
    size_t tl = strlen(text);
    if (tl >= sizeof buf)
        return -1;
    memcpy(buf, text, tl + 1);
    int nt = tokenize(buf, tok, (int)ARRAY_SIZE(tok));
    spec sp;
    if (nt < 0 || parse_spec(tok, nt, &sp) < 0)
        return -1;
    mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table);
    mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain);
    rb r = {.nlh = nlh};
    struct nlattr *exprs = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS);
    int proto = 0;
    if (sp.proto) {
        proto = proto_num(sp.proto);
        if (proto < 0)
            return -1;
        uint8_t p = (uint8_t)proto;
        e_meta(&r, NFT_META_L4PROTO);
        e_cmp(&r, sp.proto_inv ? NFT_CMP_NEQ : NFT_CMP_EQ, &p, 1);
    }
    if ((sp.src && e_addr(n, &r, sp.src, sp.src_inv, true) < 0) ||
        (sp.dst && e_addr(n, &r, sp.dst, sp.dst_inv, false) < 0))
        return -1;
    for (int i = 0; i < sp.nm; i++)
        if (emit_match(n, &r, &sp.m[i], sp.proto_inv ? 0 : proto) < 0)
            return -1;
    e_counter(&r);
    if (emit_target(n, &r, &sp) < 0)
        return -1;
    mnl_attr_nest_end(nlh, exprs);
    if (sp.proto) {
        /* xt matches check the rule's protocol against theirs (tcp, udp need it) */
        struct nlattr *c = mnl_attr_nest_start(nlh, NFTA_RULE_COMPAT);
        mnl_attr_put_u32(nlh, NFTA_RULE_COMPAT_PROTO, htonl((uint32_t)proto));
        mnl_attr_put_u32(nlh, NFTA_RULE_COMPAT_FLAGS,
                         htonl(sp.proto_inv ? NFT_RULE_COMPAT_F_INV : 0));
        mnl_attr_nest_end(nlh, c);
    }
    return 0;
}

/* ---- the batch ---- */

typedef struct batch {
    char *buf;
    size_t len, cap;
    uint32_t first_seq;
    int *lines;          /* message i (seq first_seq + i) came from this script line */
    size_t n, lines_cap;
} batch;

static struct nlmsghdr *b_room(batch *b)
{
    if (b->cap - b->len < 65536) {
        b->cap = b->cap ? b->cap * 2 : 1 << 20;
        b->buf = xrealloc(b->buf, b->cap);
    }
    return (struct nlmsghdr *)(b->buf + b->len);
}

static void b_done(batch *b, struct nlmsghdr *nlh, int line)
{
    b->len += NLMSG_ALIGN(nlh->nlmsg_len);
    if (b->n == b->lines_cap) {
        b->lines_cap = b->lines_cap ? b->lines_cap * 2 : 4096;
        b->lines = xrealloc(b->lines, b->lines_cap * sizeof *b->lines);
    }
    b->lines[b->n++] = line;
}

/* A full apply knows which of its messages make a new object in each table (every rule, the
 * chains it creates); the kernel gives each one the table's next handle, in message order, so
 * the handles of the rules written to the tracked chains follow from the echoed handles of the
 * table's first and last new rule (checked: the two must be exactly as many allocations apart
 * as the batch made, else the tracked chains are dumped as before). */
typedef struct tab_alloc {
    const char *table;
    long n;                       /* handle-consuming messages so far */
    long first_idx, last_idx;     /* allocation index of the first / last new rule, -1: none */
    uint32_t first_seq, last_seq;
    size_t last_off;              /* the last new rule's message in the batch buffer */
} tab_alloc;

typedef struct applyst {
    ck_iptnl *n;
    batch b;
    bool full;
    ck_iptnl_own_fn own;
    const char *table;
    json_t *tables;      /* table -> {"exists": {chain: true}, "declared": {chain: true}} */
    json_t *flushed;     /* "table/chain" (tracked, flushed this batch) -> [[spec, allocation
                          * index] in final order] */
    json_t *echo;        /* seq -> "table/chain\tspec": tracked rules sent with NLM_F_ECHO */
    tab_alloc tabs[4];
    int n_tabs;
    /* the last chain add_rule saw (a script's -A lines come grouped by chain) */
    bool c_valid;
    const char *c_table;
    char c_chain[64], c_tc[128];
    json_t *c_fl;
    bool c_tracked;
    json_t *deleted;     /* "table/chain" -> [spec] handles to forget once committed */
} applyst;

static uint32_t next_seq(applyst *a)
{
    return a->b.first_seq + (uint32_t)a->b.n;
}

static tab_alloc *tab_of(applyst *a, const char *table)
{
    for (int i = 0; i < a->n_tabs; i++)
        if (!strcmp(a->tabs[i].table, table))
            return &a->tabs[i];
    if (a->n_tabs == (int)ARRAY_SIZE(a->tabs))
        return NULL;
    tab_alloc *t = &a->tabs[a->n_tabs++];
    *t = (tab_alloc){.table = table, .first_idx = -1, .last_idx = -1};
    return t;
}

/* The message about to be written makes a new object (full applies only: a partial one does
 * not know which chains exist).  Returns its allocation index in the table, or -1. */
static long consume(applyst *a)
{
    tab_alloc *t = a->full ? tab_of(a, a->table) : NULL;
    return t ? t->n++ : -1;
}

static void msg_chain(applyst *a, uint16_t type, const char *chain, int line)
{
    if (type == NFT_MSG_NEWCHAIN)
        consume(a);   /* full: sent only for chains that do not exist */
    /* table + name, what libnftnl writes for such a chain, without its object per message */
    struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr((char *)b_room(&a->b), type, a->n->nfproto,
                                                 type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0,
                                                 next_seq(a));
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, a->table);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, chain);
    b_done(&a->b, nlh, line);
}

static void msg_flush(applyst *a, const char *chain, int line)
{
    struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr((char *)b_room(&a->b), NFT_MSG_DELRULE,
                                                 a->n->nfproto, 0, next_seq(a));
    mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, a->table);
    mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain);
    b_done(&a->b, nlh, line);
}

static void msg_table(applyst *a, int line)
{
    struct nftnl_table *t = nftnl_table_alloc();
    nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, a->n->nfproto);
    nftnl_table_set_str(t, NFTNL_TABLE_NAME, a->table);
    struct nlmsghdr *nlh = nftnl_table_nlmsg_build_hdr((char *)b_room(&a->b), NFT_MSG_NEWTABLE,
                                                       a->n->nfproto, NLM_F_CREATE, next_seq(a));
    nftnl_table_nlmsg_build_payload(nlh, t);
    nftnl_table_free(t);
    b_done(&a->b, nlh, line);
}

static json_t *table_state(applyst *a, ck_error **err)
{
    json_t *t = json_object_get(a->tables, a->table);
    if (t)
        return t;
    t = json_pack("{s:o,s:o}", "exists", json_object(), "declared", json_object());
    json_object_set_new(a->tables, a->table, t);
    if (a->full) {
        char req[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = dump_req(a->n, req, NFT_MSG_GETCHAIN, NULL, NULL);
        chains_of c = {a->table, json_object_get(t, "exists")};
        if (dump(a->n, nlh, chain_name_cb, &c, err) < 0)
            return NULL;
    }
    return t;
}

static void declare(applyst *a, json_t *ts, const char *chain, int line)
{
    json_t *decl = json_object_get(ts, "declared"), *ex = json_object_get(ts, "exists");
    /* the set serves drop_stale (existing chains not declared) and repeated declarations; a
     * full apply to a table of none of ours (a fresh node) skips its 60k entries: a chain
     * declared twice there is only re-sent (and its handle count off: the dump fallback) */
    if (!a->full || json_object_size(ex)) {
        if (json_object_get(decl, chain))
            return;
        json_object_set_new_nocheck(decl, chain, json_true());
    }
    bool exists = json_object_get(ex, chain) != NULL;
    if (!a->full || !exists)
        msg_chain(a, NFT_MSG_NEWCHAIN, chain, line);
    if (!a->full || exists)
        msg_flush(a, chain, line);
    char tc[128];
    snprintf(tc, sizeof tc, "%s/%s", a->table, chain);
    if (json_object_get(a->n->tracked, tc))
        json_object_set_new(a->flushed, tc, json_array());
    a->c_valid = false;   /* add_rule's cache */
}

static int add_rule(applyst *a, const char *chain, const char *text, bool insert, int line,
                    ck_error **err)
{
    if (!a->c_valid || a->c_table != a->table || strcmp(a->c_chain, chain)) {
        snprintf(a->c_tc, sizeof a->c_tc, "%s/%s", a->table ? a->table : "", chain);
        a->c_valid = strlen(chain) < sizeof a->c_chain;
        a->c_table = a->table;
        snprintf(a->c_chain, sizeof a->c_chain, "%s", chain);
        a->c_fl = json_object_get(a->flushed, a->c_tc);
        a->c_tracked = json_object_get(a->n->tracked, a->c_tc) != NULL;
    }
    json_t *fl = a->c_fl;
    bool tracked = a->c_tracked;
    bool echo = !fl && tracked;
    long idx = consume(a);
    tab_alloc *t = idx >= 0 ? tab_of(a, a->table) : NULL;
    uint32_t seq = next_seq(a);
    if (t && t->first_idx < 0) {
        t->first_idx = idx;
        t->first_seq = seq;
        echo = true;
    }
    uint16_t flags = NLM_F_CREATE | (insert ? 0 : NLM_F_APPEND) | (echo ? NLM_F_ECHO : 0);
    struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr((char *)b_room(&a->b), NFT_MSG_NEWRULE,
                                                 a->n->nfproto, flags, seq);
    if (build_rule(a->n, nlh, a->table, chain, text) < 0)
        return ck_error_set(err, CK_E_INVALID, "line %d: rule not understood: %s", line, text);
    if (t) {
        t->last_idx = idx;
        t->last_seq = seq;
        t->last_off = a->b.len;
    }
    b_done(&a->b, nlh, line);
    if (fl) {
        json_t *e = json_pack("[s,I]", text, (json_int_t)idx);
        if (insert)
            json_array_insert_new(fl, 0, e);
        else
            json_array_append_new(fl, e);
    } else if (echo && tracked) {
        char k[16];
        snprintf(k, sizeof k, "%u", seq);
        json_object_set_new(a->echo, k, json_sprintf("%s\t%s", a->c_tc, text));
    }
    return 0;
}

static int del_rule(applyst *a, const char *chain, const char *text, int line, ck_error **err)
{
    cleanup_free char *tc = xasprintf("%s/%s", a->table, chain);
    json_t *h = json_object_get(json_object_get(a->n->tracked, tc), text);
    if (!h || json_object_get(a->flushed, tc))
        return ck_error_set(err, CK_E_NOT_FOUND, "line %d: no handle known for -D %s %s", line,
                            chain, text);
    struct nftnl_rule *r = nftnl_rule_alloc();
    nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, a->n->nfproto);
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, a->table);
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
    nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, (uint64_t)json_integer_value(h));
    struct nlmsghdr *nlh = nftnl_rule_nlmsg_build_hdr((char *)b_room(&a->b), NFT_MSG_DELRULE,
                                                      a->n->nfproto, 0, next_seq(a));
    nftnl_rule_nlmsg_build_payload(nlh, r);
    nftnl_rule_free(r);
    b_done(&a->b, nlh, line);
    json_t *d = json_object_get(a->deleted, tc);
    if (!d)
        json_object_set_new(a->deleted, tc, d = json_array());
    json_array_append_new(d, json_string(text));
    return 0;
}

/* Full apply: our chains the script did not declare are flushed, then deleted. */
static void drop_stale(applyst *a)
{
    const char *table;
    json_t *ts;
    for (int pass = 0; pass < 2; pass++)
        json_object_foreach(a->tables, table, ts) {
            a->table = table;
            const char *chain;
            json_t *v;
            json_object_foreach(json_object_get(ts, "exists"), chain, v)
                if (a->own(chain, strlen(chain)) &&
                    !json_object_get(json_object_get(ts, "declared"), chain)) {
                    if (pass == 0)
                        msg_flush(a, chain, 0);
                    else
                        msg_chain(a, NFT_MSG_DELCHAIN, chain, 0);
                }
        }
}

static int interpret(applyst *a, const char *script, ck_error **err)
{
    int line = 0;
    json_t *ts = NULL;
    cleanup_free char *copy = xstrdup(script);   /* split in place */
    for (char *l = copy, *nl; *l; l = nl) {
        nl = strchr(l, '\n');
        if (nl)
            *nl++ = 0;
        else
            nl = l + strlen(l);
        line++;
        if (!*l || l[0] == '#')
            continue;
        if (l[0] == '*') {
            ts = json_object_get(a->tables, l + 1);
            if (!ts) {
                a->table = l + 1;
                if (!(ts = table_state(a, err)))
                    return -1;
                /* the name outlives this line: the batch refers to it */
                json_object_set_new(ts, "name", json_string(l + 1));
                a->table = json_string_value(json_object_get(ts, "name"));
                msg_table(a, line);
            }
            a->table = json_string_value(json_object_get(ts, "name"));
            continue;
        }
        if (!strcmp(l, "COMMIT"))
            continue;
        if (!ts)
            return ck_error_set(err, CK_E_INVALID, "line %d: no table", line);
        if (l[0] == ':') {
            l[1 + strcspn(l + 1, " ")] = 0;
            declare(a, ts, l + 1, line);
            continue;
        }
        char *chain = l + 3, *rest = chain + strcspn(chain, " ");
        if (*rest)
            *rest++ = 0;
        if (!strncmp(l, "-A ", 3)) {
            if (add_rule(a, chain, rest, false, line, err) < 0)
                return -1;
        } else if (!strncmp(l, "-I ", 3) && !strncmp(rest, "1 ", 2)) {
            if (add_rule(a, chain, rest + 2, true, line, err) < 0)
                return -1;
        } else if (!strncmp(l, "-D ", 3)) {
            if (del_rule(a, chain, rest, line, err) < 0)
                return -1;
        } else if (!strncmp(l, "-X ", 3) && !*rest)
            msg_chain(a, NFT_MSG_DELCHAIN, chain, line);
        else
            return ck_error_set(err, CK_E_INVALID, "line %d: not understood: %s", line, l);
    }
    return 0;
}

static int echo_cb(const struct nlmsghdr *nlh, void *data)
{
    if ((nlh->nlmsg_type & 0xff) != NFT_MSG_NEWRULE)
        return MNL_CB_OK;
    return echo_handle_cb(nlh, data);
}

/* Send the batch; the kernel runs it inside sendmsg, so the errors and echoes are queued by the
 * time it returns. */
static int send_batch(applyst *a, json_t *handles, ck_error **err)
{
    int fd = mnl_socket_get_fd(a->n->nl);
    int sz = (int)(a->b.len + 65536);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (mnl_socket_sendto(a->n->nl, a->b.buf, a->b.len) < 0)
        return ck_error_sys(err, CK_E_INTERNAL, "nf_tables batch (%zu bytes)", a->b.len);
    size_t bsz = 1 << 20;
    cleanup_free char *buf = xmalloc(bsz);
    int fail = 0, fail_line = 0;
    bool overrun = false;
    for (;;) {
        ssize_t r = recv(fd, buf, bsz, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r < 0 && errno == ENOBUFS) {
            /* replies were dropped: only errors are unsolicited, so the batch failed (or an
             * echo was lost, which loses its handle just the same) */
            overrun = true;
            continue;
        }
        if (r < 0)
            return ck_error_sys(err, CK_E_INTERNAL, "nf_tables batch reply");
        for (struct nlmsghdr *nlh = (struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, (int)r);
             nlh = mnl_nlmsg_next(nlh, (int *)&r)) {
            if (nlh->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
                if (e->error && !fail) {
                    fail = -e->error;
                    uint32_t i = e->msg.nlmsg_seq - a->b.first_seq;
                    fail_line = i < a->b.n ? a->b.lines[i] : -1;
                }
            } else if (nlh->nlmsg_type >> 8 == NFNL_SUBSYS_NFTABLES)
                echo_cb(nlh, handles);
        }
    }
    if (fail)
        return ck_error_set(err, CK_E_INTERNAL, "nf_tables refused the batch at script line %d: %s",
                            fail_line, strerror(fail));
    if (overrun)
        return ck_error_set(err, CK_E_INTERNAL, "nf_tables batch: replies lost (ENOBUFS)");
    return 0;
}

/* The built-in chains as iptables-nft makes them (hook, priority; policy accept). */
static const struct { const char *table, *chain; uint32_t hook; int prio; } builtins[] = {
    {"nat", "PREROUTING", NF_INET_PRE_ROUTING, -100}, {"nat", "INPUT", NF_INET_LOCAL_IN, 100},
    {"nat", "OUTPUT", NF_INET_LOCAL_OUT, -100}, {"nat", "POSTROUTING", NF_INET_POST_ROUTING, 100},
    {"filter", "INPUT", NF_INET_LOCAL_IN, 0}, {"filter", "FORWARD", NF_INET_FORWARD, 0},
    {"filter", "OUTPUT", NF_INET_LOCAL_OUT, 0},
};

static int jump_target_cb(const struct nlmsghdr *nlh, void *data)
{
    struct nftnl_rule *r = nftnl_rule_alloc();
    if (nftnl_rule_nlmsg_parse(nlh, r) == 0) {
        struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
        for (struct nftnl_expr *e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it))
            if (!strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "immediate") &&
                nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN))
                json_object_set_new(data, nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN), json_true());
        nftnl_expr_iter_destroy(it);
    }
    nftnl_rule_free(r);
    return MNL_CB_OK;
}

static int ensure_jumps(applyst *a, const ck_iptnl_jump *jumps, size_t n_jumps, ck_error **err)
{
    for (size_t i = 0; i < n_jumps; i++) {
        const ck_iptnl_jump *j = &jumps[i];
        size_t b = 0;
        while (b < ARRAY_SIZE(builtins) &&
               (strcmp(builtins[b].table, j->table) || strcmp(builtins[b].chain, j->chain)))
            b++;
        json_t *ts = json_object_get(a->tables, j->table);
        if (b == ARRAY_SIZE(builtins) || !ts)
            return ck_error_set(err, CK_E_INVALID, "jump from %s/%s: not a built-in chain of a "
                                "table written", j->table, j->chain);
        a->table = json_string_value(json_object_get(ts, "name"));
        json_t *exists = json_object_get(ts, "exists");
        if (json_object_get(exists, j->chain)) {
            json_t *targets = json_object();
            char req[MNL_SOCKET_BUFFER_SIZE];
            int rc = dump(a->n, dump_req(a->n, req, NFT_MSG_GETRULE, j->table, j->chain),
                          jump_target_cb, targets, err);
            bool have = json_object_get(targets, j->target) != NULL;
            json_decref(targets);
            if (rc < 0)
                return -1;
            if (have)
                continue;
        } else {
            struct nftnl_chain *c = nftnl_chain_alloc();
            nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, a->n->nfproto);
            nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, a->table);
            nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, j->chain);
            nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, builtins[b].hook);
            nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, builtins[b].prio);
            nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
            nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, j->table);
            consume(a);
            struct nlmsghdr *nlh = nftnl_chain_nlmsg_build_hdr(
                (char *)b_room(&a->b), NFT_MSG_NEWCHAIN, a->n->nfproto, NLM_F_CREATE, next_seq(a));
            nftnl_chain_nlmsg_build_payload(nlh, c);
            nftnl_chain_free(c);
            b_done(&a->b, nlh, 0);
            json_object_set_new(exists, j->chain, json_true());
        }
        if (add_rule(a, j->chain, j->rule, true, 0, err) < 0)
            return -1;
    }
    return 0;
}

int ck_iptnl_apply(ck_iptnl *n, const char *script, bool full, ck_iptnl_own_fn own,
                   const ck_iptnl_jump *jumps, size_t n_jumps, ck_error **err)
{
    applyst a = {.n = n, .full = full, .own = own, .tables = json_object(), .flushed = json_object(),
                 .echo = json_object(), .deleted = json_object()};
    a.b.first_seq = n->seq + 1;
    /* ~3.4 batch bytes per script byte at 10,000 services: one allocation, not a doubling
     * series copying up to 64 MB (untouched pages cost nothing) */
    a.b.cap = strlen(script) * 4 + (1 << 17);
    a.b.buf = xmalloc(a.b.cap);
    struct nlmsghdr *nlh = nftnl_batch_begin((char *)b_room(&a.b), a.b.first_seq);
    b_done(&a.b, nlh, 0);
    json_t *handles = json_object();   /* seq -> echoed handle */
    int rc = interpret(&a, script, err);
    if (rc == 0 && full && n_jumps)
        rc = ensure_jumps(&a, jumps, n_jumps, err);
    if (rc == 0 && full && own)
        drop_stale(&a);
    for (int i = 0; i < a.n_tabs; i++)   /* echo each table's last new rule too */
        if (a.tabs[i].last_idx > a.tabs[i].first_idx)
            ((struct nlmsghdr *)(a.b.buf + a.tabs[i].last_off))->nlmsg_flags |= NLM_F_ECHO;
    if (rc == 0 && a.b.n > 1) {
        nlh = nftnl_batch_end((char *)b_room(&a.b), next_seq(&a));
        b_done(&a.b, nlh, 0);
        n->seq = next_seq(&a);
        rc = send_batch(&a, handles, err);
    }
    if (rc == 0) {
        /* committed: forget deleted handles, learn the new ones */
        const char *tc;
        json_t *v;
        size_t i;
        json_t *s;
        json_object_foreach(a.deleted, tc, v)
            json_array_foreach(v, i, s)
                json_object_del(json_object_get(n->tracked, tc), json_string_value(s));
        const char *sq;
        json_object_foreach(a.echo, sq, s) {
            json_t *h = json_object_get(handles, sq);
            if (!h) {
                rc = ck_error_set(err, CK_E_INTERNAL, "nf_tables echoed no handle for %s",
                                  json_string_value(s));
                break;
            }
            const char *k = json_string_value(s), *tab = strchr(k, '\t');
            cleanup_free char *c = xstrndup(k, (size_t)(tab - k));
            json_object_set(json_object_get(n->tracked, c), tab + 1, h);
        }
        json_object_foreach(a.flushed, tc, v) {
            if (rc < 0)
                break;
            json_t *map = json_object();
            json_object_set_new(n->tracked, tc, map);
            if (!json_array_size(v))
                continue;
            cleanup_free char *tname = xstrndup(tc, strcspn(tc, "/"));
            /* handles known from the table's allocation base: no dump */
            json_int_t base = 0;
            bool known = false;
            for (int t = 0; t < a.n_tabs && !known; t++) {
                const tab_alloc *ta = &a.tabs[t];
                if (strcmp(ta->table, tname) || ta->first_idx < 0)
                    continue;
                char k1[16], k2[16];
                snprintf(k1, sizeof k1, "%u", ta->first_seq);
                snprintf(k2, sizeof k2, "%u", ta->last_seq);
                json_int_t h1 = json_integer_value(json_object_get(handles, k1));
                json_int_t h2 = json_integer_value(json_object_get(handles, k2));
                if (h1 > 0 && h2 - h1 == (json_int_t)(ta->last_idx - ta->first_idx)) {
                    base = h1 - (json_int_t)ta->first_idx;
                    known = true;
                }
            }
            if (known) {
                json_array_foreach(v, i, s)
                    json_object_set_new(map, json_string_value(json_array_get(s, 0)),
                                        json_integer(base + json_integer_value(json_array_get(s, 1))));
                continue;
            }
            char req[MNL_SOCKET_BUFFER_SIZE];
            json_t *hs = json_array();
            rc = dump(n, dump_req(n, req, NFT_MSG_GETRULE, tname, strchr(tc, '/') + 1),
                      rule_handle_cb, hs, err);
            if (rc == 0 && json_array_size(hs) != json_array_size(v))
                rc = ck_error_set(err, CK_E_INTERNAL, "%s holds %zu rules, %zu written", tc,
                                  json_array_size(hs), json_array_size(v));
            json_array_foreach(v, i, s)
                if (rc == 0)
                    json_object_set(map, json_string_value(json_array_get(s, 0)),
                                    json_array_get(hs, i));
            json_decref(hs);
        }
    }
    json_decref(handles);
    json_decref(a.tables);
    json_decref(a.flushed);
    json_decref(a.echo);
    json_decref(a.deleted);
    free(a.b.buf);
    free(a.b.lines);
    return rc;
}

/* ---- dump (tests) ---- */

typedef struct dumpctx {
    FILE *out;
    const char *what;
    json_t *idx;         /* chain -> rules seen */
} dumpctx;

static void hex(FILE *out, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%02x", ((const uint8_t *)p)[i]);
}

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
    dumpctx *d = data;
    struct nlattr *a;
    const char *name = "", *chain = "", *table = "";
    mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
        uint16_t t = mnl_attr_get_type(a);
        if (!strcmp(d->what, "rule") && t == NFTA_RULE_TABLE)
            table = mnl_attr_get_str(a);
        if (!strcmp(d->what, "table") && t == NFTA_TABLE_NAME)
            name = mnl_attr_get_str(a);
        if (!strcmp(d->what, "chain") && t == NFTA_CHAIN_NAME)
            name = mnl_attr_get_str(a);
        if (!strcmp(d->what, "rule") && t == NFTA_RULE_CHAIN)
            chain = mnl_attr_get_str(a);
    }
    if (!strcmp(d->what, "rule")) {
        /* a rule's place in its chain, which every table may name alike (OUTPUT) */
        char key[160];
        snprintf(key, sizeof key, "%s/%s", table, chain);
        json_t *c = json_object_get(d->idx, key);
        json_int_t i = c ? json_integer_value(c) : 0;
        json_object_set_new(d->idx, key, json_integer(i + 1));
        fprintf(d->out, "rule %s #%lld", chain, (long long)i);
    } else
        fprintf(d->out, "%s %s", d->what, name);
    mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
        uint16_t t = mnl_attr_get_type(a);
        bool skip = !strcmp(d->what, "table") ? t == NFTA_TABLE_HANDLE || t == NFTA_TABLE_USE :
                    !strcmp(d->what, "chain") ? t == NFTA_CHAIN_HANDLE || t == NFTA_CHAIN_USE ||
                                                t == NFTA_CHAIN_COUNTERS :
                    t == NFTA_RULE_HANDLE || t == NFTA_RULE_POSITION || t == NFTA_RULE_ID;
        if (skip)
            continue;
        fprintf(d->out, " %u=", t);
        if (strcmp(d->what, "rule") || t != NFTA_RULE_EXPRESSIONS) {
            hex(d->out, mnl_attr_get_payload(a), mnl_attr_get_payload_len(a));
            continue;
        }
        /* expressions one by one; a counter's values are traffic, not rule */
        struct nlattr *e;
        mnl_attr_for_each_nested(e, a) {
            struct nlattr *x;
            bool counter = false;
            mnl_attr_for_each_nested(x, e)
                if (mnl_attr_get_type(x) == NFTA_EXPR_NAME && !strcmp(mnl_attr_get_str(x), "counter"))
                    counter = true;
            if (counter)
                fprintf(d->out, "[counter]");
            else {
                fputc('[', d->out);
                hex(d->out, mnl_attr_get_payload(e), mnl_attr_get_payload_len(e));
                fputc(']', d->out);
            }
        }
    }
    fputc('\n', d->out);
    return MNL_CB_OK;
}

int ck_iptnl_dump(int family, FILE *out, ck_error **err)
{
    ck_iptnl *n = ck_iptnl_new(family, NULL, err);
    if (!n)
        return -1;
    static const struct { uint16_t msg; const char *what; } kinds[] = {
        {NFT_MSG_GETTABLE, "table"}, {NFT_MSG_GETCHAIN, "chain"}, {NFT_MSG_GETRULE, "rule"},
    };
    int rc = 0;
    for (size_t i = 0; i < ARRAY_SIZE(kinds) && rc == 0; i++) {
        char req[MNL_SOCKET_BUFFER_SIZE];
        dumpctx d = {out, kinds[i].what, json_object()};
        rc = dump(n, dump_req(n, req, kinds[i].msg, NULL, NULL), dump_cb, &d, err);
        json_decref(d.idx);
    }
    ck_iptnl_free(n);
    return rc;
}

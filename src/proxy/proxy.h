/* proxy.h - `ckube proxy`: the modes' common interface and helpers.
 *
 * proxy.c watches Services and EndpointSlices, feeds model.c, and calls the selected mode's sync
 * (rate limited by --min-sync-period, a full resync every --sync-period).  A mode renders the
 * model into kernel state in one transaction per sync: iptables.c (iptables-restore), nftables.c
 * (nft -f), userspace.c (its own epoll proxy + iptables redirects), ipvs.c (refuses: no ip_vs).
 */
#ifndef CK_PROXY_H
#define CK_PROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"
#include "proxy/model.h"

typedef struct ck_proxy_opts {
    const char *node_name;
    const char *cluster_cidr;  /* NULL: no "off-cluster" masquerade of cluster-IP traffic */
    bool masquerade_all;
    bool dry_run;              /* render only: sync keeps the text in last_script (tests) */
    bool kernel_relay;         /* userspace: pair answered connections in a sockmap */
    int workers;               /* userspace: relay threads (0: one per online CPU, at most 8) */
    bool epoll_relay;          /* userspace: relay with epoll + read/write even where io_uring works */
    bool dry_run_relay;        /* tests: a dry run whose relay threads still serve its loopback listeners */
} ck_proxy_opts;

typedef struct ck_proxy_mode {
    const char *name;
    /* Check the host can run the mode (binaries, kernel modules); a one-line error if not. */
    int (*probe)(ck_error **err);
    void *(*new)(const ck_proxy_opts *o, ck_error **err);
    /* changed == NULL: full sync of every service; else the keys changed since the last sync. */
    int (*sync)(void *st, ck_proxy_model *m, const json_t *changed, ck_error **err);
    /* The rendered text of the last sync (tests, debugging); may be NULL. */
    const char *(*last_script)(void *st);
    void (*free)(void *st);
    /* Remove everything this mode may have programmed (works without state: --cleanup). */
    int (*cleanup)(ck_error **err);
} ck_proxy_mode;

extern const ck_proxy_mode ck_proxy_mode_iptables;
extern const ck_proxy_mode ck_proxy_mode_nftables;
extern const ck_proxy_mode ck_proxy_mode_ipvs;
extern const ck_proxy_mode ck_proxy_mode_userspace;
const ck_proxy_mode *ck_proxy_mode_find(const char *name);

/* Run argv[0] (searched in PATH) with `in` on stdin; stdout kept in *out (may be NULL; caller
 * frees) up to 256 MiB.  A non-zero exit is CK_E_INTERNAL with the first stderr line. */
int ck_proxy_exec(const char *const *argv, const char *in, size_t in_len, char **out, ck_error **err);
bool ck_proxy_have_binary(const char *name);

/* Flush conntrack entries of UDP flows to a removed endpoint (conntrack -D); logs once and
 * returns 0 when the conntrack tool is missing. */
void ck_proxy_conntrack_flush_udp(const char *service_ip, const char *endpoint_ip);

/* Kernel-side forwarding between the two TCP sockets of a userspace-mode connection (sockmap.c):
 * a SOCKHASH map with an SK_SKB verdict program that redirects each socket's incoming bytes to
 * its peer.  new fails (CK_E_UNAVAILABLE, one line) without CAP_BPF or kernel support.
 * pair: 0 paired, -1 failed (map full, socket not established); closing a socket unpairs it.
 * Paired sockets stay readable for EOF, and for bytes queued before pairing: reading such a
 * socket hands them to the kernel relay (EAGAIN) or returns them when no peer is paired. */
typedef struct ck_proxy_sockmap ck_proxy_sockmap;
ck_proxy_sockmap *ck_proxy_sockmap_new(ck_error **err);
int ck_proxy_sockmap_pair(ck_proxy_sockmap *s, int client, int backend);
void ck_proxy_sockmap_free(ck_proxy_sockmap *s);

/* The iptables backend the iptables and userspace modes drive (exec.c).  Upstream's rule
 * (iptables-wrapper): the installed alternative, unless it has no rules and the other backend
 * has some - then the host is using the other one, and so do we (rules in both would make two
 * rule sets to reason about).  The legacy tables are not read unless the kernel has some. */
typedef enum { CK_IPT_INSTALLED, CK_IPT_LEGACY, CK_IPT_NFT } ck_proxy_ipt_backend;
typedef enum { CK_IPT_CMD, CK_IPT_SAVE, CK_IPT_RESTORE } ck_proxy_ipt_tool;
ck_proxy_ipt_backend ck_proxy_ipt_detect(void);
/* The backend not in use when it has rules (ours may be left there from an earlier run), else
 * CK_IPT_INSTALLED. */
ck_proxy_ipt_backend ck_proxy_ipt_other(void);
void ck_proxy_ipt_use(ck_proxy_ipt_backend b);
/* The backend in use is nf_tables (the iptables mode then writes over netlink, iptnl.c). */
bool ck_proxy_ipt_is_nft(void);
/* "iptables", "iptables-save", "iptables-restore" of the backend in use. */
const char *ck_proxy_ipt(ck_proxy_ipt_tool tool);
/* The same for a family: 4 as above, 6 the ip6tables tools of the same backend. */
const char *ck_proxy_ipt_fam(int family, ck_proxy_ipt_tool tool);
/* The host has IPv6 and ip6tables-restore (checked once; logs once when not): the iptables and
 * userspace modes program the IPv6 family too, as upstream's dual-stack proxier does. */
bool ck_proxy_ipv6_usable(void);

/* iptables jump rules from the built-in chains, shared by iptables and userspace modes; family
 * 4 (iptables) or 6 (ip6tables). */
int ck_proxy_iptables_ensure_jump(int family, const char *table, const char *chain, const char *rule,
                                  ck_error **err);
int ck_proxy_iptables_delete_jump(int family, const char *table, const char *chain, const char *rule);
/* Delete every chain in table whose name starts with one of prefixes (NULL-terminated),
 * flushing them first, in one iptables-restore. */
int ck_proxy_iptables_delete_chains(int family, const char *table, const char *const *prefixes,
                                    ck_error **err);

#endif

/* iptnl.h - the iptables mode's rules written straight over netlink, as iptables-nft writes them.
 *
 * ck_iptnl_apply takes the iptables-restore input the iptables mode renders (the subset it uses:
 * "*table", ":CHAIN - [0:0]", "-A", "-I CHAIN 1", "-D", "-X", "COMMIT") and programs it in ONE
 * nf_tables transaction with libnftnl + libmnl, building every rule with the very expressions
 * iptables-nft 1.8.9 builds for it (native meta/payload/cmp/bitwise for -p/-s/-d, ports and
 * marks; xt compat match/target expressions for comment, statistic, recent, addrtype,
 * conntrack, DNAT, REJECT, MARK, MASQUERADE; a counter before the verdict), so iptables-nft-save
 * and `iptables -L` show them as if iptables-restore had written them.  It skips the
 * restore tool's cost (parsing, its chain cache: ~3 s of 4 at 10,000 services).
 *
 * Semantics differ from a restore in one place, on purpose: a "full" apply does not replace
 * the tables.  It flushes the chains the script declares, creates the missing ones, and flushes
 * and deletes the chains for which own() is true that the script does not declare; everyone
 * else's chains and rules are never touched (a restore of the whole table rewrote them).
 *
 * Rule handles: "-D chain spec" needs the handle of the rule that "-A/-I chain spec" added.  The
 * handles of rules added to the chains named in `tracked` ("nat/KUBE-SERVICES", ...) are kept:
 * echoed by the kernel for partial applies; for full ones computed from the table's handle
 * allocation (the echoed first and last new rule of the table pin it; one dump of the chain if
 * they do not agree with the batch).
 * A "-D" of an unknown rule fails the apply (the caller then does a full one).
 */
#ifndef CK_PROXY_IPTNL_H
#define CK_PROXY_IPTNL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/error.h"

typedef struct ck_iptnl ck_iptnl;

/* family 4 (table ip) or 6 (ip6); tracked: NULL-terminated "table/chain" names (copied). */
ck_iptnl *ck_iptnl_new(int family, const char *const *tracked, ck_error **err);
void ck_iptnl_free(ck_iptnl *n);

typedef bool (*ck_iptnl_own_fn)(const char *chain, size_t len);
/* A jump from a built-in chain: inserted first in `chain` (created as iptables-nft creates it
 * when missing) unless a rule of that chain already jumps to `target`.  Full applies only. */
typedef struct ck_iptnl_jump {
    const char *table, *chain, *target, *rule;
} ck_iptnl_jump;
/* One transaction; nothing changed on error (CK_E_INVALID: a construct the writer does not know,
 * CK_E_NOT_FOUND: a "-D" of a rule whose handle is not known, CK_E_INTERNAL: the kernel said no
 * or replies were lost). */
int ck_iptnl_apply(ck_iptnl *n, const char *script, bool full, ck_iptnl_own_fn own,
                   const ck_iptnl_jump *jumps, size_t n_jumps, ck_error **err);

/* Tests: print the family's tables, chains and rules as the kernel dumps them, one line each,
 * every attribute but handles, positions, use counts and counters (traffic) in hex. */
int ck_iptnl_dump(int family, FILE *out, ck_error **err);

#endif

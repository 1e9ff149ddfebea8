/* caps.h - the Linux capability names, indexed by capability number (CAP_CHOWN = 0 ...), as
 * OCI config.json spells them.  One table for everything that writes or reads capability sets
 * (the kubelet's OCI config, the streams' native exec). */
#ifndef CK_LIB_CAPS_H
#define CK_LIB_CAPS_H

#include <stddef.h>

/* CAP_CHOWN .. CAP_CHECKPOINT_RESTORE (40) */
extern const char *const ck_cap_names[];
extern const size_t ck_cap_count;

/* The capability number of an OCI name ("CAP_NET_ADMIN"), or -1 when the table has none. */
int ck_cap_number(const char *name);

#endif

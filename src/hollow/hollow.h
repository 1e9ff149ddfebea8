/* hollow.h - what `ckube hollow-node` (hollow.c) exposes besides its command: the decisions unit
 * tests check without a cluster. */
#ifndef CK_HOLLOW_H
#define CK_HOLLOW_H

#include <jansson.h>
#include <stdbool.h>

/* Whether a pod bound to one of our nodes needs a sync: being deleted (finalize it), or not
 * terminal and not yet reported Running and Ready (report it).  Its own report coming back
 * needs none. */
bool ck_hollow_pod_needs_sync(const json_t *pod);

#endif

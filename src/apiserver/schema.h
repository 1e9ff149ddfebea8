/* schema.h - the patch strategies of the built-in kinds, as upstream's Go struct tags declare them
 * (patchStrategy/patchMergeKey for strategic merge patch, listType/listMapKeys/structType for
 * server-side apply).  Shared by strategic.c and apply.c.  A field not listed is a plain field:
 * objects merge key by key, lists are atomic (replaced whole). */
#ifndef CK_SCHEMA_H
#define CK_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>

#include "apiserver/resources.h"
#include "lib/error.h"

enum ck_list_kind { CK_LIST_ATOMIC, CK_LIST_MAP, CK_LIST_SET };

typedef struct ck_ptype ck_ptype;
typedef struct ck_pfield {
    const char *name;
    enum ck_list_kind list;      /* for list-valued fields */
    const char *key;             /* CK_LIST_MAP: the merge key ("name") */
    const char *key2;            /* a second list-map key for apply ("protocol"), or NULL */
    const char *key2_default;    /* its default when absent ("TCP") */
    bool atomic;                 /* object replaced whole (structType=atomic) */
    bool retain_keys;            /* patchStrategy retainKeys */
    bool granular;               /* a map[string]... field (labels): "." on creation in Update sets */
    const ck_ptype *type;        /* element / object type, NULL = schemaless */
} ck_pfield;

struct ck_ptype {
    const ck_pfield *fields;
};

/* The type of a resource's top-level object (metadata and status.conditions for every kind). */
const ck_ptype *ck_schema_root(const ck_resource *r);
/* A field of a type, NULL if not declared (t may be NULL). */
const ck_pfield *ck_schema_field(const ck_ptype *t, const char *name);

/* strategic.c: merge a directive-free patch into orig (owned, consumed) under type t. */
json_t *ck__strategic_merge(json_t *orig, const json_t *patch, const ck_ptype *t, ck_error **err);

#endif

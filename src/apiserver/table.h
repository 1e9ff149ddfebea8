/* table.h - server-side printing for `kubectl get`: the columns upstream's printers define for each
 * built-in kind (priority 0 = default, 1 = only with -o wide), and one row's cells. */
#ifndef CK_TABLE_H
#define CK_TABLE_H

#include <jansson.h>
#include <stdint.h>

#include "apiserver/resources.h"

/* columnDefinitions array: [{"name","type","format","description","priority"}]. NEW reference. */
json_t *ck_table_columns(const ck_resource *r);
/* cells array for one object, aligned with ck_table_columns; now_sec = wall clock for AGE. */
json_t *ck_table_cells(const ck_resource *r, const json_t *obj, int64_t now_sec);
/* Whether an Accept header asks for a Table (kubectl get): "meta.k8s.io/v1" or
 * "meta.k8s.io/v1beta1" for the first Table media range (application/json;as=Table;g=meta.k8s.io;
 * v=...), NULL when a plain representation is listed first or no Table is asked for. */
const char *ck_table_accept(const char *accept);
/* A whole Table for a list (objs = JSON array of objects) or a single get (array of one):
 * kind Table, apiVersion (NULL = meta.k8s.io/v1), metadata.resourceVersion / continue (either may
 * be NULL), columnDefinitions, and one row per object with its cells and, as row.object, a
 * PartialObjectMetadata carrying the object's metadata (feeds -A NAMESPACE and --show-labels).
 * NEW reference. */
json_t *ck_table_new(const ck_resource *r, const json_t *objs, const char *api_version,
                     const char *resource_version, const char *continue_token, int64_t now_sec);
/* Upstream's human duration for AGE ("5s", "3m", "2d5h", ...); out holds 32 bytes. */
void ck_table_age(int64_t seconds, char out[32]);

#endif

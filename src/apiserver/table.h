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
/* Upstream's human duration for AGE ("5s", "3m", "2d5h", ...); out holds 32 bytes. */
void ck_table_age(int64_t seconds, char out[32]);

#endif

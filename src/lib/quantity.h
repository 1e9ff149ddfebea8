/* quantity.h - Kubernetes resource quantities ("100m", "1.5", "64Mi", "1G", "2e3") as integers.
 *
 * Parsing follows apimachinery's resource.Quantity grammar: a signed decimal number, then an
 * optional suffix: binary SI (Ki Mi Gi Ti Pi Ei), decimal SI (n u m "" k M G T P E) or a decimal
 * exponent (e3, E-2).  Values are returned in milli-units, rounded up like upstream's
 * MilliValue()/Value() do, so cpu "100m" -> 100 and memory "1Ki" -> 1024000.
 */
#ifndef CK_QUANTITY_H
#define CK_QUANTITY_H

#include <stdint.h>

/* 0 on success; -1 if s is not a quantity or does not fit in int64 milli-units. */
int ck_quantity_parse_milli(const char *s, int64_t *milli);
/* Whole units, rounded up ("1500m" -> 2, "64Mi" -> 67108864). */
int ck_quantity_parse(const char *s, int64_t *value);

#endif

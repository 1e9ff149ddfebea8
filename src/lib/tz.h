/* tz.h - IANA time zones from TZif files (RFC 8536), without touching the process-global TZ.
 *
 * glibc's localtime_r follows the TZ environment variable of the whole process, so a threaded
 * program cannot switch zones per call; this reads /usr/share/zoneinfo/<name> itself (Debian
 * package tzdata) and answers "what is the UTC offset at instant t".  Version 2+ files are read
 * with their 64-bit transition tables; instants after the last transition follow the file's
 * POSIX TZ footer (e.g. "CET-1CEST,M3.5.0,M10.5.0/3"; rules in the Mm.w.d, Jn and n forms).
 * Leap-second records are ignored (as Go's time package does).
 */
#ifndef CK_TZ_H
#define CK_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef struct ck_tz ck_tz;

/* Load zone `name` ("Europe/Berlin", "UTC", "Etc/GMT+5") from the zoneinfo directory (dir NULL =
 * /usr/share/zoneinfo).  Names that could leave the directory ("..", a leading '/') and "Local"
 * are refused, as upstream's CronJob validation does.  CK_E_NOT_FOUND when there is no such
 * zone, CK_E_INVALID for a bad name or file. */
ck_tz *ck_tz_load(const char *name, const char *dir, ck_error **err);
/* Parse TZif bytes (for tests and odd locations). */
ck_tz *ck_tz_parse(const unsigned char *data, size_t len, ck_error **err);
void ck_tz_free(ck_tz *tz);

/* Seconds east of UTC in effect at instant t (Unix seconds); *is_dst (may be NULL) set. */
int32_t ck_tz_offset(const ck_tz *tz, int64_t t, bool *is_dst);

/* "2026-03-29T03:00:00+02:00": RFC 3339 with the zone's offset at t. */
void ck_tz_rfc3339(const ck_tz *tz, int64_t t, char out[32]);

#endif

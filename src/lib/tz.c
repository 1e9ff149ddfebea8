/* tz.c - TZif reader and POSIX TZ rule evaluation (see tz.h). */
#include "lib/tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

#define TZ_FILE_MAX (256 * 1024)
#define TZ_MAX_TRANSITIONS 4096
#define TZ_MAX_TYPES 256

typedef struct rule_date {
    char kind;          /* 'M' month.week.day, 'J' Julian 1..365 (no Feb 29), 'n' 0..365 */
    int m, w, d, n;
    int32_t time;       /* seconds after local midnight; may be negative or past 24 h */
} rule_date;

typedef struct posix_tz {
    bool valid, has_dst;
    int32_t std_off, dst_off;      /* seconds east of UTC */
    rule_date start, end;
} posix_tz;

struct ck_tz {
    int64_t *at;        /* transition instants, ascending */
    uint8_t *type;      /* type index per transition */
    size_t n;
    int32_t off[TZ_MAX_TYPES];
    bool dst[TZ_MAX_TYPES];
    size_t ntypes;
    posix_tz footer;
};

/* ---------------------------------------------------------------- calendar (proleptic Gregorian) */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t year_of(int64_t t)
{
    int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    return yoe + era * 400 + (m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Local midnight (as seconds since the epoch of that local date) of a rule date in year y. */
static int64_t rule_day(const rule_date *r, int64_t y)
{
    if (r->kind == 'J') {   /* 1..365, February 29 never counted */
        int64_t day = r->n - 1;
        if (leap(y) && r->n >= 60)
            day++;
        return (days_from_civil(y, 1, 1) + day) * 86400;
    }
    if (r->kind == 'n')
        return (days_from_civil(y, 1, 1) + r->n) * 86400;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t first = days_from_civil(y, r->m, 1);
    int wday_first = (int)(((first % 7) + 11) % 7);   /* 1970-01-01 was a Thursday (4) */
    int day = 1 + (r->d - wday_first + 7) % 7 + (r->w - 1) * 7;
    int dim = mdays[r->m - 1] + (r->m == 2 && leap(y));
    while (day > dim)
        day -= 7;
    return (first + day - 1) * 86400;
}

/* ---------------------------------------------------------------- POSIX TZ strings */

static const char *parse_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q - p >= 4 ? q + 1 : NULL;
    }
    const char *s = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
        p++;
    return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] -> seconds; NULL on error. */
static const char *parse_hms(const char *p, int32_t *out, int max_h)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    int part[3] = {0, 0, 0}, i = 0;
    for (;;) {
        if (*p < '0' || *p > '9')
            return NULL;
        int v = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 3) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        part[i++] = v;
        if (i == 3 || *p != ':')
            break;
        p++;
    }
    if (part[0] > max_h || part[1] > 59 || part[2] > 59)
        return NULL;
    *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    return p;
}

static const char *parse_num(const char *p, int *v, int lo, int hi)
{
    if (*p < '0' || *p > '9')
        return NULL;
    int x = 0;
    while (*p >= '0' && *p <= '9' && x <= hi)
        x = x * 10 + (*p++ - '0');
    if (x < lo || x > hi)
        return NULL;
    *v = x;
    return p;
}

static const char *parse_rule_date(const char *p, rule_date *r)
{
    memset(r, 0, sizeof *r);
    if (*p == 'M') {
        r->kind = 'M';
        if (!(p = parse_num(p + 1, &r->m, 1, 12)) || *p++ != '.' || !(p = parse_num(p, &r->w, 1, 5)) ||
            *p++ != '.' || !(p = parse_num(p, &r->d, 0, 6)))
            return NULL;
    } else if (*p == 'J') {
        r->kind = 'J';
        if (!(p = parse_num(p + 1, &r->n, 1, 365)))
            return NULL;
    } else {
        r->kind = 'n';
        if (!(p = parse_num(p, &r->n, 0, 365)))
            return NULL;
    }
    r->time = 2 * 3600;
    if (*p == '/' && !(p = parse_hms(p + 1, &r->time, 167)))
        return NULL;
    return p;
}

static bool parse_posix(const char *s, posix_tz *tz)
{
    memset(tz, 0, sizeof *tz);
    const char *p = parse_name(s);
    int32_t off;
    if (!p || !(p = parse_hms(p, &off, 24)))
        return false;
    tz->std_off = -off;   /* POSIX offsets are west of Greenwich */
    tz->valid = true;
    if (!*p)
        return true;
    if (!(p = parse_name(p)))
        return false;
    tz->has_dst = true;
    tz->dst_off = tz->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = parse_hms(p, &off, 24)))
            return false;
        tz->dst_off = -off;
    }
    if (*p != ',') {   /* no rule: upstream's default is the US rule of 2007 */
        tz->start = (rule_date){'M', 3, 2, 0, 0, 7200};
        tz->end = (rule_date){'M', 11, 1, 0, 0, 7200};
        return !*p;
    }
    if (!(p = parse_rule_date(p + 1, &tz->start)) || *p++ != ',' || !(p = parse_rule_date(p, &tz->end)))
        return false;
    return !*p;
}

static int32_t posix_offset(const posix_tz *tz, int64_t t, bool *is_dst)
{
    *is_dst = false;
    if (!tz->has_dst)
        return tz->std_off;
    int64_t y = year_of(t + tz->std_off);
    /* start is given in standard local time, end in daylight local time */
    int64_t start = rule_day(&tz->start, y) + tz->start.time - tz->std_off;
    int64_t end = rule_day(&tz->end, y) + tz->end.time - tz->dst_off;
    bool in = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    *is_dst = in;
    return in ? tz->dst_off : tz->std_off;
}

/* ---------------------------------------------------------------- TZif */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct hdr {
    char version;
    uint32_t isut, isstd, leap, time, type, chars;
} hdr;

static bool read_hdr(const unsigned char *p, size_t len, hdr *h)
{
    if (len < 44 || memcmp(p, "TZif", 4))
        return false;
    h->version = (char)p[4];
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    return h->type >= 1 && h->type <= TZ_MAX_TYPES && h->time <= TZ_MAX_TRANSITIONS &&
           (h->isut == 0 || h->isut == h->type) && (h->isstd == 0 || h->isstd == h->type) &&
           h->leap < 100000 && h->chars < 100000;
}

static size_t block_len(const hdr *h, size_t tsize)
{
    return (size_t)h->time * tsize + h->time + (size_t)h->type * 6 + h->chars +
           (size_t)h->leap * (tsize + 4) + h->isstd + h->isut;
}

ck_tz *ck_tz_parse(const unsigned char *data, size_t len, ck_error **err)
{
    hdr h;
    if (!read_hdr(data, len, &h)) {
        ck_error_set(err, CK_E_INVALID, "not a TZif file");
        return NULL;
    }
    size_t tsize = 4;
    const unsigned char *p = data + 44, *end = data + len;
    if (h.version >= '2') {   /* skip the 32-bit block; use the 64-bit one */
        size_t skip = block_len(&h, 4);
        if ((size_t)(end - p) < skip || !read_hdr(p + skip, (size_t)(end - p) - skip, &h)) {
            ck_error_set(err, CK_E_INVALID, "truncated TZif file");
            return NULL;
        }
        p += skip + 44;
        tsize = 8;
    }
    if ((size_t)(end - p) < block_len(&h, tsize)) {
        ck_error_set(err, CK_E_INVALID, "truncated TZif file");
        return NULL;
    }
    ck_tz *tz = xcalloc(1, sizeof *tz);
    tz->n = h.time;
    tz->at = xcalloc(h.time ? h.time : 1, sizeof *tz->at);
    tz->type = xcalloc(h.time ? h.time : 1, 1);
    for (size_t i = 0; i < h.time; i++, p += tsize)
        tz->at[i] = tsize == 8 ? be64(p) : (int32_t)be32(p);
    for (size_t i = 0; i < h.time; i++) {
        tz->type[i] = *p++;
        if (tz->type[i] >= h.type || (i && tz->at[i] <= tz->at[i - 1])) {
            ck_tz_free(tz);
            ck_error_set(err, CK_E_INVALID, "bad TZif transition table");
            return NULL;
        }
    }
    tz->ntypes = h.type;
    for (size_t i = 0; i < h.type; i++, p += 6) {
        tz->off[i] = (int32_t)be32(p);
        tz->dst[i] = p[4] != 0;
        if (tz->off[i] <= -26 * 3600 || tz->off[i] >= 26 * 3600) {
            ck_tz_free(tz);
            ck_error_set(err, CK_E_INVALID, "bad TZif utc offset");
            return NULL;
        }
    }
    p += h.chars + (size_t)h.leap * (tsize + 4) + h.isstd + h.isut;
    /* version 2+: "\n<POSIX TZ>\n" for instants after the table */
    if (tsize == 8 && p < end && *p == '\n') {
        const unsigned char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
        if (nl && nl - p - 1 < 128) {
            char s[128];
            memcpy(s, p + 1, (size_t)(nl - p - 1));
            s[nl - p - 1] = 0;
            if (*s && !parse_posix(s, &tz->footer)) {
                ck_tz_free(tz);
                ck_error_set(err, CK_E_INVALID, "bad TZ rule \"%s\" in TZif footer", s);
                return NULL;
            }
        }
    }
    return tz;
}

ck_tz *ck_tz_load(const char *name, const char *dir, ck_error **err)
{
    if (!name || !*name || name[0] == '/' || strstr(name, "..") || strchr(name, '\\') ||
        !strcasecmp(name, "Local") || strlen(name) > 255) {
        ck_error_set(err, CK_E_INVALID, "invalid time zone name \"%s\"", name ? name : "");
        return NULL;
    }
    cleanup_free char *path = xasprintf("%s/%s", dir ? dir : "/usr/share/zoneinfo", name);
    char *buf = NULL;
    size_t len = 0;
    if (ck_read_file(path, TZ_FILE_MAX, &buf, &len) < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR || e == EISDIR)
            ck_error_set(err, CK_E_NOT_FOUND, "unknown time zone %s", name);
        else
            ck_error_set(err, CK_E_IO, "time zone %s: %s: %s", name, path, strerror(e));
        return NULL;
    }
    ck_tz *tz = ck_tz_parse((const unsigned char *)buf, len, err);
    free(buf);
    if (!tz)
        ck_error_wrap(err, "time zone %s", name);
    return tz;
}

void ck_tz_free(ck_tz *tz)
{
    if (!tz)
        return;
    free(tz->at);
    free(tz->type);
    free(tz);
}

int32_t ck_tz_offset(const ck_tz *tz, int64_t t, bool *is_dst)
{
    bool d = false;
    int32_t off;
    if (tz->footer.valid && (!tz->n || t >= tz->at[tz->n - 1])) {
        off = posix_offset(&tz->footer, t, &d);
    } else if (!tz->n || t < tz->at[0]) {
        off = tz->off[0];
        d = tz->dst[0];
    } else {
        size_t lo = 0, hi = tz->n;   /* last transition <= t */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->at[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        off = tz->off[tz->type[lo]];
        d = tz->dst[tz->type[lo]];
    }
    if (is_dst)
        *is_dst = d;
    return off;
}

void ck_tz_rfc3339(const ck_tz *tz, int64_t t, char out[32])
{
    int32_t off = ck_tz_offset(tz, t, NULL);
    char utc[32];
    ck_rfc3339(t + off, utc);
    size_t n = strlen(utc);
    if (n && utc[n - 1] == 'Z')
        utc[n - 1] = 0;
    if (!off) {
        snprintf(out, 32, "%.30sZ", utc);
        return;
    }
    int32_t a = off < 0 ? -off : off;
    snprintf(out, 32, "%.20s%c%02d:%02d", utc, off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

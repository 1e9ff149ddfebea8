/* quantity.c - see quantity.h.  Arithmetic in long double is exact enough here: inputs are short
 * decimal strings and results are bounded to int64 milli-units (about 9.2e15 units). */
#include "lib/quantity.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *suffix;
    long double factor;
} suffixes[] = {
    {"Ki", 1024.0L}, {"Mi", 1048576.0L}, {"Gi", 1073741824.0L}, {"Ti", 1099511627776.0L},
    {"Pi", 1125899906842624.0L}, {"Ei", 1152921504606846976.0L},
    {"n", 1e-9L}, {"u", 1e-6L}, {"m", 1e-3L}, {"k", 1e3L}, {"M", 1e6L}, {"G", 1e9L},
    {"T", 1e12L}, {"P", 1e15L}, {"E", 1e18L},
};

static int parse(const char *s, long double *out)
{
    if (!s || !*s)
        return -1;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    const char *digits = p;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (p == digits || (p == digits + 1 && *digits == '.'))
        return -1;
    char num[64];
    size_t n = (size_t)(p - s);
    if (n >= sizeof num)
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    long double v = strtold(num, NULL);
    if (!*p) {
        *out = v;
        return 0;
    }
    if ((*p == 'e' || *p == 'E') && p[1] && (isdigit((unsigned char)p[1]) || p[1] == '-' || p[1] == '+')) {
        char *end;
        long e = strtol(p + 1, &end, 10);
        if (*end || e > 30 || e < -30)
            return -1;
        *out = v * powl(10.0L, (long double)e);
        return 0;
    }
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (!strcmp(p, suffixes[i].suffix)) {
            *out = v * suffixes[i].factor;
            return 0;
        }
    return -1;
}

int ck_quantity_parse_milli(const char *s, int64_t *milli)
{
    long double v;
    if (parse(s, &v) < 0)
        return -1;
    long double m = ceill(v * 1000.0L - 1e-9L);
    if (m > 9.2e18L || m < -9.2e18L)
        return -1;
    *milli = (int64_t)m;
    return 0;
}

int ck_quantity_parse(const char *s, int64_t *value)
{
    long double v;
    if (parse(s, &v) < 0)
        return -1;
    long double u = ceill(v - 1e-12L);
    if (u > 9.2e18L || u < -9.2e18L)
        return -1;
    *value = (int64_t)u;
    return 0;
}

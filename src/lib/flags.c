/* flags.c - see flags.h. */
#include "lib/flags.h"
#include "lib/quantity.h"
#include "lib/util.h"

#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(const char *command, const char *summary, const ck_flag *flags, int nflags)
{
    printf("%s\n\nUsage:\n  ckube %s [flags]\n\nFlags:\n", summary, command);
    for (int i = 0; i < nflags; i++) {
        const char *t = flags[i].type == CK_FLAG_STRING ? " string"
                        : flags[i].type == CK_FLAG_INT  ? " int"
                        : flags[i].type == CK_FLAG_BOOL ? ""
                                                        : " duration";
        printf("      --%s%s\n          %s\n", flags[i].name, t, flags[i].help);
    }
    printf("  -h, --help\n          help for %s\n", command);
}

long ck_parse_duration_ms(const char *s)
{
    if (!*s)
        return -1;
    long total = 0;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || !(v >= 0))     /* also NaN */
            return -1;
        double mul;
        if (!strncmp(end, "ms", 2)) { mul = 1; end += 2; }
        else if (*end == 's') { mul = 1000; end++; }
        else if (*end == 'm') { mul = 60000; end++; }
        else if (*end == 'h') { mul = 3600000; end++; }
        else return -1;
        /* bounded before the cast: a double out of long's range is undefined behaviour */
        if (v * mul > CK_DURATION_MAX_MS || total + (long)(v * mul) > CK_DURATION_MAX_MS)
            return -1;
        total += (long)(v * mul);
        s = end;
    }
    return total;
}

static void bad(const char *command, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "Error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nRun 'ckube %s --help' for usage.\n", command);
    exit(2);
}

int ck_flags_parse(const char *command, const char *summary, int argc, char **argv,
                   const ck_flag *flags, int nflags)
{
    int npos = 0;
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            argv[npos++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_positional = true;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(command, summary, flags, nflags);
            exit(0);
        }
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const ck_flag *f = NULL;
        for (int k = 0; k < nflags; k++)
            if (strlen(flags[k].name) == nlen && !strncmp(flags[k].name, name, nlen))
                f = &flags[k];
        if (!f)
            bad(command, "unknown flag: %s%s", arg, "");
        const char *val = eq ? eq + 1 : NULL;
        if (f->type == CK_FLAG_BOOL) {
            if (!val || !strcmp(val, "true") || !strcmp(val, "1"))
                *(bool *)f->target = true;
            else if (!strcmp(val, "false") || !strcmp(val, "0"))
                *(bool *)f->target = false;
            else
                bad(command, "invalid argument \"%s\" for \"--%s\": want true or false", val, f->name);
            continue;
        }
        if (!val) {
            if (i + 1 >= argc)
                bad(command, "flag needs an argument: --%s%s", f->name, "");
            val = argv[++i];
        }
        switch (f->type) {
        case CK_FLAG_STRING:
            *(char **)f->target = (char *)val;
            break;
        case CK_FLAG_INT: {
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (errno || end == val || *end)
                bad(command, "invalid argument \"%s\" for \"--%s\": not an integer", val, f->name);
            *(long *)f->target = v;
            break;
        }
        case CK_FLAG_DURATION_MS: {
            long v = ck_parse_duration_ms(val);
            if (v < 0)
                bad(command, "invalid argument \"%s\" for \"--%s\": not a duration (e.g. 10s)", val,
                    f->name);
            *(long *)f->target = v;
            break;
        }
        case CK_FLAG_BOOL:
            break;
        }
    }
    argv[npos] = NULL;
    return npos;
}

/* ---------------------------------------------------------------- value checks */

static bool check_fail(const char *command, const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "Error: invalid argument \"%s\" for \"--%s\": %s\n", value, flag, why);
    fprintf(stderr, "Run 'ckube %s --help' for usage.\n", command);
    return false;
}

static bool is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* "a.b.c.d/n" or "x::/n", n within the family's bits */
static bool is_cidr(const char *s, size_t len)
{
    char buf[64];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *slash = strchr(buf, '/');
    if (!slash || !slash[1])
        return false;
    *slash = 0;
    char *end;
    errno = 0;
    long n = strtol(slash + 1, &end, 10);
    if (errno || *end || slash[1] < '0' || slash[1] > '9')
        return false;
    unsigned char b[16];
    if (inet_pton(AF_INET, buf, b) == 1)
        return n >= 0 && n <= 32;
    return inet_pton(AF_INET6, buf, b) == 1 && n >= 0 && n <= 128;
}

bool ck_flags_check_ip(const char *command, const char *flag, const char *value)
{
    return is_ip(value) || check_fail(command, flag, value, "not an IP address");
}

bool ck_flags_check_cidrs(const char *command, const char *flag, const char *value)
{
    int n = 0;
    for (const char *p = value;; n++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!is_cidr(p, len) || n >= 2)
            return check_fail(command, flag, value,
                              "must be a valid CIDR block (e.g. 10.100.0.0/16 or "
                              "fde4:8dba:82e1::/48), or two of them (dual-stack)");
        if (!comma)
            return true;
        p = comma + 1;
    }
}

bool ck_flags_check_quantity(const char *command, const char *flag, const char *value)
{
    int64_t milli;
    if (ck_quantity_parse_milli(value, &milli) < 0)
        return check_fail(command, flag, value,
                          "quantities must match the regular expression "
                          "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
    if (milli < 0)
        return check_fail(command, flag, value, "must be greater than or equal to 0");
    return true;
}

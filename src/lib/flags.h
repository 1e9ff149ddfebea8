/* flags.h - command-line flags for every ckube command, upstream style (--name=value or
 * --name value; booleans as --name or --name=false).  --help prints every flag with its help
 * text and exits 0; an unknown flag or a bad value prints one line and exits 2. */
#ifndef CK_FLAGS_H
#define CK_FLAGS_H

#include <stdbool.h>

enum ck_flag_type { CK_FLAG_STRING, CK_FLAG_INT, CK_FLAG_BOOL, CK_FLAG_DURATION_MS };

typedef struct ck_flag {
    const char *name;         /* without the leading "--" */
    enum ck_flag_type type;
    void *target;             /* char **, long *, bool *, long * (milliseconds) */
    const char *help;
} ck_flag;

/* Parses argv[1..]; positional arguments are moved to the front of argv and their count
 * returned.  Never returns on --help (exit 0) or on a bad flag (exit 2). */
int ck_flags_parse(const char *command, const char *summary, int argc, char **argv,
                   const ck_flag *flags, int nflags);

/* "10s", "500ms", "2m", "1h", "1m30s" -> milliseconds; -1 if malformed, negative or over
 * CK_DURATION_MAX_MS (about 31,700 years). */
#define CK_DURATION_MAX_MS 1000000000000000L
long ck_parse_duration_ms(const char *s);

/* Checks of a parsed string flag's value: true if good, else false after printing the usual
 * two lines ("Error: invalid argument ..." and the --help hint); the caller exits 2.
 *   _ip        an IPv4 or IPv6 address
 *   _cidrs     one CIDR block, or two comma-separated (dual-stack)
 *   _quantity  a resource quantity ("4", "500m", "32Gi"), not negative */
bool ck_flags_check_ip(const char *command, const char *flag, const char *value);
bool ck_flags_check_cidrs(const char *command, const char *flag, const char *value);
bool ck_flags_check_quantity(const char *command, const char *flag, const char *value);

#endif

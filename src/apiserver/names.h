/* names.h - the syntax checks apimachinery's util/validation package applies to names, label keys
 * and values (DNS-1123 labels and subdomains, qualified names, label values, C identifiers).
 *
 * Each check returns NULL when the string is valid, else a newly allocated message worded as
 * upstream words it (several problems joined with "; "), so callers can build field.Error text:
 *   `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, ...`.
 */
#ifndef CK_NAMES_H
#define CK_NAMES_H

#include <stdbool.h>

char *ck_check_dns1123_label(const char *s);
char *ck_check_dns1123_subdomain(const char *s);
char *ck_check_dns1035_label(const char *s);
char *ck_check_qualified_name(const char *s);     /* label/annotation keys: [prefix/]name */
char *ck_check_label_value(const char *s);
char *ck_check_config_map_key(const char *s);     /* configmap/secret data keys */
char *ck_check_env_var_name(const char *s);
char *ck_check_port_name(const char *s);          /* IANA_SVC_NAME */

/* Go's %q for a string (ASCII-safe, escapes as strconv.Quote); caller frees. */
char *ck_go_quote(const char *s);

#endif

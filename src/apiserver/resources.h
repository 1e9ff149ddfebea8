/* resources.h - every resource type the API server serves: the one table that discovery,
 * OpenAPI, routing, storage keys, tables and validation all read. */
#ifndef CK_RESOURCES_H
#define CK_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ck_resource {
    const char *group;        /* "" for the core group */
    const char *version;      /* "v1" */
    const char *resource;     /* plural, "pods" */
    const char *singular;     /* "pod" */
    const char *kind;         /* "Pod" */
    bool namespaced;
    const char *short_names;  /* space-separated, "" if none: "po" */
    const char *categories;   /* space-separated, "all" */
    const char *verbs;        /* space-separated upstream verbs */
    const char *subresources; /* space-separated: "status binding log exec attach portforward" */
} ck_resource;

extern const ck_resource ck_resources[];
extern const size_t ck_nresources;

/* Lookups: NULL if not served. */
const ck_resource *ck_resource_find(const char *group, const char *version, const char *resource);
const ck_resource *ck_resource_by_kind(const char *group, const char *kind);
/* "apps/v1" or "v1" for a resource. Static storage per resource (do not free). */
const char *ck_resource_api_version(const ck_resource *r);
/* Storage key prefix of a resource type: "/registry/pods/" (core) or
 * "/registry/apps/deployments/"; of one namespace: "/registry/pods/default/". Caller frees. */
char *ck_resource_key_prefix(const ck_resource *r, const char *namespace_);
/* Key of one object: "/registry/pods/default/web-1", "/registry/namespaces/kube-system".  Caller frees. */
char *ck_resource_key(const ck_resource *r, const char *namespace_, const char *name);
/* Whether a space-separated list contains a word. */
bool ck_word_in(const char *words, const char *word);
/* The next word of a space-separated list at *p (NULL or past the end: none): its start, with
 * its length in *len, *p moved past it; NULL when only spaces are left. */
const char *ck_word_next(const char **p, size_t *len);

#endif

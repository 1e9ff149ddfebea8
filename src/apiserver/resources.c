/* resources.c - the served resource types (see resources.h).  Scopes, short names, categories,
 * verbs and subresources follow upstream's discovery documents for Kubernetes 1.30. */
#include "apiserver/resources.h"
#include "lib/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RW "create delete deletecollection get list patch update watch"
#define RO "get list"

const ck_resource ck_resources[] = {
    /* core/v1 */
    {"", "v1", "bindings", "binding", "Binding", true, "", "", "create", ""},
    {"", "v1", "componentstatuses", "componentstatus", "ComponentStatus", false, "cs", "", "get list", ""},
    {"", "v1", "configmaps", "configmap", "ConfigMap", true, "cm", "", RW, ""},
    {"", "v1", "endpoints", "endpoints", "Endpoints", true, "ep", "", RW, ""},
    {"", "v1", "events", "event", "Event", true, "ev", "", RW, ""},
    {"", "v1", "limitranges", "limitrange", "LimitRange", true, "limits", "", RW, ""},
    {"", "v1", "namespaces", "namespace", "Namespace", false, "ns", "",
     "create delete get list patch update watch", "status finalize"},
    {"", "v1", "nodes", "node", "Node", false, "no", "", RW, "status proxy"},
    {"", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, "pvc", "", RW, "status"},
    {"", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, "pv", "", RW, "status"},
    {"", "v1", "pods", "pod", "Pod", true, "po", "all", RW,
     "status binding log exec attach portforward eviction ephemeralcontainers proxy"},
    {"", "v1", "podtemplates", "podtemplate", "PodTemplate", true, "", "", RW, ""},
    {"", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", true, "rc", "all", RW, "status scale"},
    {"", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true, "quota", "", RW, "status"},
    {"", "v1", "secrets", "secret", "Secret", true, "", "", RW, ""},
    {"", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, "sa", "", RW, "token"},
    {"", "v1", "services", "service", "Service", true, "svc", "all",
     "create delete deletecollection get list patch update watch", "status proxy"},
    /* apps/v1 */
    {"apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, "", "", RW, ""},
    {"apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, "ds", "all", RW, "status"},
    {"apps", "v1", "deployments", "deployment", "Deployment", true, "deploy", "all", RW, "status scale"},
    {"apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, "rs", "all", RW, "status scale"},
    {"apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, "sts", "all", RW, "status scale"},
    /* authentication / authorization: create-only review APIs */
    {"authentication.k8s.io", "v1", "selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview", false, "", "", "create", ""},
    /* kubectl 1.27 `auth whoami` asks v1beta1 (GA, v1, came in 1.28) */
    {"authentication.k8s.io", "v1beta1", "selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview", false, "", "", "create", ""},
    {"authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview", false, "", "", "create", ""},
    {"authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview", "SelfSubjectAccessReview", false, "", "", "create", ""},
    {"authorization.k8s.io", "v1", "selfsubjectrulesreviews", "selfsubjectrulesreview", "SelfSubjectRulesReview", false, "", "", "create", ""},
    {"authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview", "SubjectAccessReview", false, "", "", "create", ""},
    /* batch/v1 */
    {"batch", "v1", "cronjobs", "cronjob", "CronJob", true, "cj", "all", RW, "status"},
    {"batch", "v1", "jobs", "job", "Job", true, "", "all", RW, "status"},
    /* coordination, discovery, events, policy */
    {"coordination.k8s.io", "v1", "leases", "lease", "Lease", true, "", "", RW, ""},
    {"discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, "", "", RW, ""},
    {"events.k8s.io", "v1", "events", "event", "Event", true, "ev", "", RW, ""},
    {"policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, "pdb", "", RW, "status"},
    /* rbac */
    {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, "", "", RW, ""},
    {"rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, "", "", RW, ""},
    {"rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, "", "", RW, ""},
    {"rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, "", "", RW, ""},
    /* scheduling, storage */
    {"scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", false, "pc", "", RW, ""},
    {"storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, "sc", "", RW, ""},
};

const size_t ck_nresources = ARRAY_SIZE(ck_resources);

const char *ck_word_next(const char **p, size_t *len)
{
    const char *w = *p;
    if (!w)
        return NULL;
    while (*w == ' ')
        w++;
    if (!*w)
        return NULL;
    *len = strcspn(w, " ");
    *p = w + *len;
    return w;
}

bool ck_word_in(const char *words, const char *word)
{
    size_t n = strlen(word), len;
    for (const char *p = words, *w; (w = ck_word_next(&p, &len));)
        if (len == n && !strncmp(w, word, n))
            return true;
    return false;
}

const ck_resource *ck_resource_find(const char *group, const char *version, const char *resource)
{
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        if (!strcmp(r->group, group) && !strcmp(r->version, version) && !strcmp(r->resource, resource))
            return r;
    }
    return NULL;
}

const ck_resource *ck_resource_by_kind(const char *group, const char *kind)
{
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        /* core and events.k8s.io both serve Event: prefer the exact group */
        if (!strcmp(r->group, group) && !strcmp(r->kind, kind))
            return r;
    }
    return NULL;
}

const char *ck_resource_api_version(const ck_resource *r)
{
    static __thread char buf[128];
    if (!r->group[0])
        return r->version;
    snprintf(buf, sizeof buf, "%s/%s", r->group, r->version);
    return buf;
}

/* "/registry/" + the non-empty parts, each followed by '/', + last (may be "").  Joined by hand:
 * every request builds a key, and vasprintf's format parsing was most of that. */
static char *join_key(const char *const parts[3], const char *last)
{
    static const char root[] = "/registry/";
    size_t lens[3] = {0}, n = sizeof root - 1, ln = strlen(last);
    for (int i = 0; i < 3; i++)
        if (parts[i])
            n += (lens[i] = strlen(parts[i])) + 1;
    char *out = xmalloc(n + ln + 1), *p = out;
    memcpy(p, root, sizeof root - 1);
    p += sizeof root - 1;
    for (int i = 0; i < 3; i++) {
        if (!parts[i])
            continue;
        memcpy(p, parts[i], lens[i]);
        p += lens[i];
        *p++ = '/';
    }
    memcpy(p, last, ln + 1);   /* callers pass a validated name, never NULL */
    return out;
}

char *ck_resource_key_prefix(const ck_resource *r, const char *namespace_)
{
    const char *parts[3] = {r->group[0] ? r->group : NULL, r->resource,
                            namespace_ && r->namespaced ? namespace_ : NULL};
    return join_key(parts, "");
}

char *ck_resource_key(const ck_resource *r, const char *namespace_, const char *name)
{
    const char *parts[3] = {r->group[0] ? r->group : NULL, r->resource,
                            namespace_ && r->namespaced ? namespace_ : NULL};
    return join_key(parts, name);
}

/* bootstrap.c - what every cluster has from its first second, created at each start if missing
 * (idempotent): namespaces default, kube-system, kube-public, kube-node-lease; the `kubernetes`
 * Service in default (10.96.0.1:443 -> the secure port) with its Endpoints and EndpointSlice
 * (reconciled to this server's address and port); PriorityClasses system-cluster-critical and
 * system-node-critical; the `default` ServiceAccount of those four namespaces. */
#include "apiserver/apiserver.h"
#include "lib/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Create obj through the normal create path unless it exists. */
static int ensure(ck_apiserver *s, const char *group, const char *resource, const char *ns,
                  json_t *obj, ck_error **err)
{
    const ck_resource *r = ck_resource_find(group, "v1", resource);
    cleanup_free char *name = xstrdup(ck_meta_str(obj, "name") ?: "");
    ck_error *e = NULL;
    json_t *cur = ck_rest_read(s, r, ns, name, NULL, &e);
    if (cur) {
        json_decref(cur);
        json_decref(obj);
        return 0;
    }
    if (e->code != CK_E_NOT_FOUND) {
        ck_error_pass(err, e);
        json_decref(obj);
        return ck_error_wrap(err, "bootstrap %s/%s", resource, name);
    }
    ck_error_free(e);
    e = NULL;
    ck_reqctx c = {.srv = s};
    ck_buf_init(&c.warnings, 4096);
    ck_write_opts o = {.manager = "kube-apiserver", .field_validation = "Ignore"};
    json_t *out = ck_rest_create_obj(&c, r, ns, obj, &o, &e);
    json_decref(obj);
    json_decref(c.causes);
    ck_buf_free(&c.warnings);
    free(c.route.name);
    if (!out && e->code == CK_E_EXISTS) {        /* another apiserver won the race */
        ck_error_free(e);
        return 0;
    }
    if (!out) {
        ck_error_pass(err, e);
        return ck_error_wrap(err, "bootstrap %s/%s", resource, name);
    }
    json_decref(out);
    return 0;
}

/* Make the stored object's field equal `want` (the endpoints of this server). */
static int reconcile(ck_apiserver *s, const char *group, const char *resource, const char *ns,
                     const char *name, const char *field, json_t *want, ck_error **err)
{
    const ck_resource *r = ck_resource_find(group, "v1", resource);
    int64_t rev = 0;
    json_t *cur = ck_rest_read(s, r, ns, name, &rev, err);
    if (!cur) {
        json_decref(want);
        return -1;
    }
    int rc = 0;
    if (!json_equal(json_object_get(cur, field), want)) {
        json_object_set(cur, field, want);
        rc = ck_rest_store_update(s, r, cur, rev, err);
    }
    json_decref(cur);
    json_decref(want);
    return rc;
}

int ck_bootstrap(ck_apiserver *s, ck_error **err)
{
    static const char *const namespaces[] = {"default", "kube-system", "kube-public",
                                             "kube-node-lease"};
    for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++)
        if (ensure(s, "", "namespaces", NULL,
                   json_pack("{s:{s:s}}", "metadata", "name", namespaces[i]), err) < 0)
            return -1;
    /* The serviceaccount controller makes these too; having them from the start means pods in
     * the system namespaces pass the ServiceAccount admission plugin before the controller
     * manager is up. */
    for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++)
        if (ensure(s, "", "serviceaccounts", namespaces[i],
                   json_pack("{s:{s:s,s:s}}", "metadata", "name", "default", "namespace",
                             namespaces[i]), err) < 0)
            return -1;
    const char *ip = s->advertise_ip ? s->advertise_ip : "127.0.0.1";
    int port = s->secure_port;
    if (ensure(s, "", "services", "default",
               json_pack("{s:{s:s,s:s,s:{s:s,s:s}},s:{s:s,s:s,s:s,s:[{s:s,s:i,s:s,s:i}]}}",
                         "metadata", "name", "kubernetes", "namespace", "default", "labels",
                         "component", "apiserver", "provider", "kubernetes", "spec", "type",
                         "ClusterIP", "clusterIP", "10.96.0.1", "sessionAffinity", "None", "ports",
                         "name", "https", "port", 443, "protocol", "TCP", "targetPort", port),
               err) < 0)
        return -1;
    if (reconcile(s, "", "services", "default", "kubernetes", "spec",
                  json_pack("{s:s,s:s,s:[s],s:[s],s:s,s:s,s:s,s:[{s:s,s:i,s:s,s:i}]}", "type",
                            "ClusterIP", "clusterIP", "10.96.0.1", "clusterIPs", "10.96.0.1",
                            "ipFamilies", "IPv4", "ipFamilyPolicy", "SingleStack",
                            "sessionAffinity", "None", "internalTrafficPolicy", "Cluster", "ports",
                            "name", "https", "port", 443, "protocol", "TCP", "targetPort", port),
                  err) < 0)
        return -1;
    json_t *subsets = json_pack("[{s:[{s:s}],s:[{s:s,s:i,s:s}]}]", "addresses", "ip", ip, "ports",
                                "name", "https", "port", port, "protocol", "TCP");
    if (ensure(s, "", "endpoints", "default",
               json_pack("{s:{s:s,s:s,s:{s:s}},s:O}", "metadata", "name", "kubernetes",
                         "namespace", "default", "labels",
                         "endpointslice.kubernetes.io/skip-mirror", "true", "subsets", subsets),
               err) < 0 ||
        reconcile(s, "", "endpoints", "default", "kubernetes", "subsets", json_incref(subsets),
                  err) < 0) {
        json_decref(subsets);
        return -1;
    }
    json_decref(subsets);
    json_t *eps = json_pack("[{s:[s],s:{s:b}}]", "addresses", ip, "conditions", "ready", 1);
    json_t *ports = json_pack("[{s:s,s:i,s:s}]", "name", "https", "port", port, "protocol", "TCP");
    int rc = ensure(s, "discovery.k8s.io", "endpointslices", "default",
                    json_pack("{s:{s:s,s:s,s:{s:s}},s:s,s:O,s:O}", "metadata", "name",
                              "kubernetes", "namespace", "default", "labels",
                              "kubernetes.io/service-name", "kubernetes", "addressType", "IPv4",
                              "endpoints", eps, "ports", ports), err);
    if (rc == 0)
        rc = reconcile(s, "discovery.k8s.io", "endpointslices", "default", "kubernetes",
                       "endpoints", json_incref(eps), err);
    if (rc == 0)
        rc = reconcile(s, "discovery.k8s.io", "endpointslices", "default", "kubernetes", "ports",
                       json_incref(ports), err);
    json_decref(eps);
    json_decref(ports);
    if (rc < 0)
        return -1;
    static const struct { const char *name; int value; const char *desc; } pcs[] = {
        {"system-cluster-critical", 2000000000,
         "Used for system critical pods that must run in the cluster, but can be moved to another "
         "node if necessary."},
        {"system-node-critical", 2000001000,
         "Used for system critical pods that must not be moved from their current node."},
    };
    for (size_t i = 0; i < ARRAY_SIZE(pcs); i++)
        if (ensure(s, "scheduling.k8s.io", "priorityclasses", NULL,
                   json_pack("{s:{s:s},s:i,s:s,s:b,s:s}", "metadata", "name", pcs[i].name, "value",
                             pcs[i].value, "description", pcs[i].desc, "globalDefault", 0,
                             "preemptionPolicy", "PreemptLowerPriority"), err) < 0)
            return -1;
    return 0;
}

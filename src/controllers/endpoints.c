/* endpoints.c - the Endpoints controller: for every Service with a selector, an Endpoints object
 * of the same name listing the matching pods that have an IP - ready ones (or all, with
 * publishNotReadyAddresses) under addresses, the others under notReadyAddresses - grouped into
 * subsets by the container ports the Service's ports resolve to (named targetPorts are looked up
 * per pod).  Terminating pods are left out, as upstream does for Endpoints.
 */
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/util.h"

typedef struct epc {
    cm *m;
    cm_service_keys keys;   /* services, pods, queue */
    ck_informer *eps;
} epc;

static int by_ip_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int r = strcmp(cm_str(x, "ip") ?: "", cm_str(y, "ip") ?: "");
    return r ? r : strcmp(cm_str(x, "targetRef.name") ?: "", cm_str(y, "targetRef.name") ?: "");
}

/* The subsets for svc from the cached pods.  NEW array. */
static json_t *build_subsets(epc *c, const json_t *svc)
{
    json_t *groups = json_object();   /* ports text -> subset */
    json_t *pods = ck_informer_list(c->keys.pods);
    bool publish = cm_bool(svc, "spec.publishNotReadyAddresses", false);
    size_t i;
    json_t *pod;
    json_array_foreach(pods, i, pod) {
        if (strcmp(cm_ns(pod) ?: "", cm_ns(svc) ?: "") || !cm_service_selects(svc, pod))
            continue;
        const char *ip = cm_str(pod, "status.podIP");
        if (!ip || !*ip || !cm_pod_active(pod))
            continue;
        json_t *ports = cm_endpoint_ports(svc, pod, false);
        char *pk = json_dumps(ports, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *sub = json_object_get(groups, pk);
        if (!sub) {
            sub = json_pack("{s:[], s:[], s:O}", "addresses", "notReadyAddresses", "ports", ports);
            json_object_set_new(groups, pk, sub);
        }
        free(pk);
        json_decref(ports);
        json_t *addr = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "ip", ip, "targetRef", "kind",
                                 "Pod", "namespace", cm_ns(pod), "name", cm_name(pod), "uid",
                                 cm_uid(pod) ?: "");
        if (cm_str(pod, "spec.nodeName"))
            json_object_set_new(addr, "nodeName", json_string(cm_str(pod, "spec.nodeName")));
        json_array_append_new(json_object_get(sub, (publish || cm_pod_ready(pod)) ? "addresses"
                                                                                  : "notReadyAddresses"),
                              addr);
    }
    json_decref(pods);
    json_t *subsets = json_array();
    const char *k;
    json_t *sub;
    json_object_foreach(groups, k, sub) {
        cm_sort_array(json_object_get(sub, "addresses"), by_ip_name);
        cm_sort_array(json_object_get(sub, "notReadyAddresses"), by_ip_name);
        if (!json_array_size(json_object_get(sub, "addresses")))
            json_object_del(sub, "addresses");
        if (!json_array_size(json_object_get(sub, "notReadyAddresses")))
            json_object_del(sub, "notReadyAddresses");
        if (!json_array_size(json_object_get(sub, "ports")))
            json_object_del(sub, "ports");
        json_array_append(subsets, sub);
    }
    json_decref(groups);
    return subsets;
}

static int sync_svc(void *self, const char *key, ck_error **err)
{
    epc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    const ck_resource *epres = cm_res("", "endpoints");
    json_t *svc = ck_informer_get(c->keys.services, ns, name);
    json_t *cur = ck_informer_get(c->eps, ns, name);
    int rc = 0;
    if (!svc) {
        if (cur)
            rc = cm_delete(c->m, epres, ns, name, cm_uid(cur), NULL, err);
        json_decref(cur);
        return rc;
    }
    if (!json_object_size(cm_get(svc, "spec.selector")) ||
        !strcmp(cm_str(svc, "spec.type") ?: "", "ExternalName")) {
        json_decref(svc);
        json_decref(cur);
        return 0;
    }
    json_t *subsets = build_subsets(c, svc);
    json_t *labels = cm_get(svc, "metadata.labels");
    bool same = cur && json_equal(cm_get(cur, "subsets") ?: json_array(), subsets) &&
                (!labels || json_equal(cm_get(cur, "metadata.labels"), labels));
    if (!same) {
        json_t *obj = cur ? json_deep_copy(cur)
                          : json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                                      "Endpoints", "metadata", "name", name, "namespace", ns);
        json_object_set(obj, "subsets", subsets);
        if (labels)
            json_object_set_new(json_object_get(obj, "metadata"), "labels", json_deep_copy(labels));
        json_t *out = cur ? ck_client_update(cm_client(c->m), epres, ns, obj, err)
                          : ck_client_create(cm_client(c->m), epres, ns, obj, err);
        json_decref(obj);
        if (!out)
            rc = -1;
        json_decref(out);
    }
    json_decref(subsets);
    json_decref(svc);
    json_decref(cur);
    return rc;
}

int cm_endpoints_init(cm *m)
{
    epc *c = xcalloc(1, sizeof *c);
    c->m = m;
    cm_service_keys_init(m, &c->keys, cm_queue(m, "endpoints-controller", 4, sync_svc, c));
    ck_informer_handlers eh = {NULL, NULL, cm_service_keys_enqueue};   /* deleted by hand: recreate */
    c->eps = cm_informer(m, "", "endpoints", &eh, &c->keys);
    return 0;
}

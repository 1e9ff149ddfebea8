/* bench/pod_writes.c - the API server's per-object work for one pod of bench/scheduler.sh,
 * without I/O or store: the create (decode the body, field/type check, defaults, the token
 * volume, metadata, validation, managedFields, print for the store), the pods/binding (the text
 * edit of podbind.c), the kubelet's status merge patch (parse the stored pod, merge the status,
 * the status shell, type check, defaults, validation, managedFields, print), a Lease renewal
 * (the text path of leasetext.c as rest.c runs it, and the tree path it falls back to: parse,
 * merge patch, field check, validation, managedFields, print), and the watch line of an event
 * (the stored text with its revision spliced in).  Prints ns/op for each; run it under
 * `valgrind --tool=callgrind --toggle-collect=<case>_one` for instruction counts, which a loaded
 * machine does not blur: bench/pod_writes [N]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/apiserver.h"
#include "apiserver/codec.h"
#include "apiserver/openapi.h"
#include "apiserver/patch.h"
#include "apiserver/validate.h"
#include "lib/util.h"

static const char *pod_body =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"bench-17\",\"namespace\":\"bench\","
    "\"labels\":{\"app\":\"g0\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
    "\"registry.k8s.io/pause:3.9\",\"resources\":{\"requests\":{\"cpu\":\"10m\",\"memory\":\"50Mi\"}}}]}}";

static const char *status_patch =
    "{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\","
    "\"lastTransitionTime\":\"2026-11-26T05:00:00Z\"},{\"type\":\"Initialized\",\"status\":\"True\","
    "\"lastTransitionTime\":\"2026-11-26T05:00:00Z\"},{\"type\":\"ContainersReady\",\"status\":\"True\","
    "\"lastTransitionTime\":\"2026-11-26T05:00:00Z\"},{\"type\":\"Ready\",\"status\":\"True\","
    "\"lastTransitionTime\":\"2026-11-26T05:00:00Z\"}],\"containerStatuses\":[{\"name\":\"c\",\"ready\":true,"
    "\"started\":true,\"restartCount\":0,\"image\":\"registry.k8s.io/pause:3.9\",\"imageID\":"
    "\"registry.k8s.io/pause:3.9\",\"containerID\":\"hollow://0\",\"state\":{\"running\":{\"startedAt\":"
    "\"2026-11-26T05:00:00Z\"}}}],\"hostIP\":\"127.0.0.1\",\"podIP\":\"127.0.0.1\",\"startTime\":"
    "\"2026-11-26T05:00:00Z\",\"qosClass\":\"Burstable\"}}";

static const char *lease_text =
    "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"hollow-17\","
    "\"namespace\":\"kube-node-lease\",\"uid\":\"0b5a2c7e-1a56-4b0e-9d7e-3c0c1c2d3e4f\","
    "\"creationTimestamp\":\"2026-11-26T05:00:00Z\",\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":"
    "\"Node\",\"name\":\"hollow-17\",\"uid\":\"7a1b\"}],\"managedFields\":[{\"manager\":\"hollow-node\","
    "\"operation\":\"Update\",\"apiVersion\":\"coordination.k8s.io/v1\",\"time\":\"2026-11-26T05:00:00Z\","
    "\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{\"f:ownerReferences\":{\".\":{},"
    "\"k:{\\\"uid\\\":\\\"7a1b\\\"}\":{}}},\"f:spec\":{\"f:holderIdentity\":{},\"f:leaseDurationSeconds\":{},"
    "\"f:renewTime\":{}}}}]},\"spec\":{\"holderIdentity\":\"hollow-17\",\"leaseDurationSeconds\":40,"
    "\"renewTime\":\"2026-11-26T05:00:00.000000Z\"}}";

static const char *lease_patch =
    "{\"spec\":{\"holderIdentity\":\"hollow-17\",\"leaseDurationSeconds\":40,\"renewTime\":"
    "\"2026-11-26T05:00:10.000000Z\"}}";

static double secs(int64_t a, int64_t b) { return (double)(b - a) / 1e9; }

/* rest.c's status shell: a new top level and metadata, the rest (spec) shared with old */
static json_t *shell_of(const json_t *old, const json_t *st)
{
    json_t *n = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)old, k, v) {
        if (!strcmp(k, "status"))
            json_object_set(n, k, (json_t *)st);
        else if (!strcmp(k, "metadata"))
            json_object_set_new(n, k, json_copy(v));
        else
            json_object_set(n, k, v);
    }
    return n;
}

__attribute__((noinline)) static char *create_one(const ck_resource *pods)
{
    json_t *d = json_array();
    json_t *o = ck_json_load(pod_body, strlen(pod_body), d, NULL);
    json_decref(d);
    json_t *unknown = json_array();
    ck_type_error te;
    ck_openapi_check(pods, o, unknown, &te);
    json_decref(unknown);
    ck_default(pods, o);
    ck_admission_mount_token(json_object_get(o, "spec"));
    /* rest.c's prepare_create for a pod */
    json_object_set_new(o, "status", json_pack("{s:s,s:s}", "phase", "Pending", "qosClass", "Burstable"));
    ck_meta_on_create(pods, o, 1700000000);
    ck_default(pods, o);
    json_decref(ck_validate(pods, o, NULL));
    ck_managed_fields_record(o, NULL, "sched_bench", "Update", "v1");
    size_t len;
    char *text = ck_meta_dump_for_store(o, &len);
    json_decref(o);
    return text;
}

__attribute__((noinline)) static char *status_one(const ck_resource *pods, const char *stored)
{
    /* subres.c reads the pod with its spec raw (codec.h) for a status merge patch */
    json_t *old = ck_json_load_raw(stored, strlen(stored), CK_STATUS_RAW_KEYS);
    if (!old) {
        fprintf(stderr, "pod_writes: the raw-spec load declined\n");
        exit(1);
    }
    ck_meta_set_rv(old, 42);
    json_t *patch = ck_json_load(status_patch, strlen(status_patch), NULL, NULL);
    json_t *st = ck_patch_merge(json_object_get(old, "status"), json_object_get(patch, "status"), NULL);
    /* subres.c types the patched shell: status and the type keys */
    json_t *typed = json_pack("{s:O,s:s,s:s}", "status", st, "apiVersion", "v1", "kind", "Pod");
    ck_type_error te;
    ck_openapi_check(pods, typed, NULL, &te);
    json_decref(typed);
    json_t *n = shell_of(old, st);
    json_decref(st);
    ck_default(pods, n);
    ck_meta_on_update(pods, n, old);
    json_decref(ck_validate(pods, n, old));
    ck_managed_fields_record_sub(n, old, "hollow-node", "Update", "v1", "status");
    size_t len;
    char *text = ck_meta_dump_for_store(n, &len);
    json_decref(n);
    json_decref(patch);
    json_decref(old);
    return text;
}

/* the renewal as rest.c runs it: the text path of leasetext.c */
__attribute__((noinline)) static char *lease_one(const ck_resource *leases)
{
    (void)leases;
    json_t *patch = ck_json_load(lease_patch, strlen(lease_patch), NULL, NULL);
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    ck_buf out;
    ck_buf_init(&out, 0);
    if (!ck_lease_renew_text(lease_text, strlen(lease_text), patch, "hollow-node", now, &out)) {
        fprintf(stderr, "pod_writes: the Lease renewal's text path declined\n");
        exit(1);
    }
    json_decref(patch);
    return ck_buf_steal(&out);
}

/* the tree path the text path stands in for (and the one taken when it declines) */
__attribute__((noinline)) static char *leasetree_one(const ck_resource *leases)
{
    json_t *old = ck_json_load_fast(lease_text, strlen(lease_text), 0);
    ck_meta_set_rv(old, 42);
    json_t *patch = ck_json_load(lease_patch, strlen(lease_patch), NULL, NULL);
    json_t *n = ck_patch_merge(old, patch, NULL);
    json_t *unknown = json_array();
    ck_type_error te;
    ck_openapi_check(leases, n, unknown, &te);
    json_decref(unknown);
    ck_default(leases, n);
    ck_meta_on_update(leases, n, old);
    json_decref(ck_validate(leases, n, old));
    ck_managed_fields_record(n, old, "hollow-node", "Update", "coordination.k8s.io/v1");
    size_t len;
    char *text = ck_meta_dump_for_store(n, &len);
    json_decref(n);
    json_decref(patch);
    json_decref(old);
    return text;
}

/* pods/binding on the stored text, as subres.c's bind_pod does it */
__attribute__((noinline)) static char *bind_one(const char *created)
{
    ck_buf out;
    ck_buf_init(&out, 0);
    char *assigned = NULL;
    if (ck_pod_bind_text(created, strlen(created), "hollow-17", "2026-11-26T05:00:00Z", &out,
                         &assigned) != CK_BIND_OK) {
        fprintf(stderr, "pod_writes: the binding's text edit declined\n");
        exit(1);
    }
    free(assigned);
    return ck_buf_steal(&out);
}

/* one watch line of a MODIFIED event, as watch.c's raw_line builds it (once per event) */
__attribute__((noinline)) static char *watch_one(const char *stored)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_printf(&b, "{\"type\":\"%s\",\"object\":", "MODIFIED");
    ck_json_splice_rv(stored, strlen(stored), 4242, &b);
    ck_buf_add(&b, "}\n", 2);
    return ck_buf_steal(&b);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    const ck_resource *pods = ck_resource_find("", "v1", "pods");
    const ck_resource *leases = ck_resource_find("coordination.k8s.io", "v1", "leases");
    char *created = create_one(pods);
    free(leasetree_one(leases));    /* one-time setup (OpenAPI models) out of the first case */
    /* the stored pod after binding: nodeName and PodScheduled, as podbind.c leaves it */
    char *stored = bind_one(created);
    static const char *const names[] = {"pod create (tree work)", "pods/binding (text)",
                                        "pod status merge patch", "lease renewal (text)",
                                        "lease renewal (tree)", "watch line (splice)"};
    for (int c = 0; c < (int)ARRAY_SIZE(names); c++) {
        int64_t t0 = ck_now_ns();
        for (int i = 0; i < n; i++) {
            char *t = c == 0   ? create_one(pods)
                      : c == 1 ? bind_one(created)
                      : c == 2 ? status_one(pods, stored)
                      : c == 3 ? lease_one(leases)
                      : c == 4 ? leasetree_one(leases)
                               : watch_one(stored);
            free(t);
        }
        printf("%-28s %8.0f ns/op\n", names[c], secs(t0, ck_now_ns()) * 1e9 / n);
    }
    free(created);
    free(stored);
    return 0;
}

/* bench/kube_json.c - per-request costs of the JSON toolkit on a typical pod: decode (JSON, YAML,
 * protobuf), default + validate, managedFields for an update, strategic merge patch (set image),
 * server-side apply, and label/field selector matching.  Prints ns/op for each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/codec.h"
#include "apiserver/patch.h"
#include "apiserver/selector.h"
#include "apiserver/validate.h"
#include "lib/util.h"

static const char *pod_json =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\","
    "\"uid\":\"6f1c\",\"labels\":{\"app\":\"web\",\"tier\":\"front\",\"pod-template-hash\":\"5d4f\"},"
    "\"annotations\":{\"note\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.25\","
    "\"ports\":[{\"containerPort\":80,\"name\":\"http\"}],\"env\":[{\"name\":\"A\",\"value\":\"1\"},"
    "{\"name\":\"B\",\"value\":\"2\"}],\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"}},"
    "\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/data\"}]},{\"name\":\"side\",\"image\":\"busybox\","
    "\"args\":[\"sleep\",\"1000\"]}],\"volumes\":[{\"name\":\"data\",\"emptyDir\":{}}],\"nodeName\":\"n1\"},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.244.0.5\"}}";

static const char *pod_yaml =
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1\n  namespace: default\n  labels: {app: web, tier: front}\n"
    "spec:\n  containers:\n  - name: web\n    image: nginx:1.25\n    ports:\n    - containerPort: 80\n      name: http\n"
    "    env:\n    - {name: A, value: \"1\"}\n    - {name: B, value: \"2\"}\n  - name: side\n    image: busybox\n"
    "    args: [sleep, \"1000\"]\n";

#define N 20000

static double secs(int64_t a, int64_t b) { return (double)(b - a) / 1e9; }

#define BENCH(label, body)                                                     \
    do {                                                                       \
        int64_t t0 = ck_now_ns();                                              \
        for (int i = 0; i < N; i++) { body; }                                  \
        int64_t t1 = ck_now_ns();                                              \
        printf("%-34s %8.0f ns/op\n", label, secs(t0, t1) * 1e9 / N);          \
    } while (0)

int main(int argc, char **argv)
{
    const ck_resource *pods = ck_resource_find("", "v1", "pods");
    size_t jl = strlen(pod_json), yl = strlen(pod_yaml);
    json_t *pod = ck_json_load(pod_json, jl, NULL, NULL);
    BENCH("decode JSON (dup check)", { json_t *d = json_array(); json_decref(ck_json_load(pod_json, jl, d, NULL)); json_decref(d); });
    BENCH("decode YAML", json_decref(ck_yaml_load(pod_yaml, yl, NULL)));
    char *pb = NULL;
    size_t pbl = 0;
    if (argc > 1 && ck_read_file(argv[1], 1 << 20, &pb, &pbl) == 0)
        BENCH("decode protobuf (argv[1])", json_decref(ck_protobuf_decode(pb, pbl, NULL)));
    free(pb);
    BENCH("default + validate", {
        json_t *c = json_deep_copy(pod);
        ck_default(pods, c);
        json_decref(ck_validate(pods, c, NULL));
        json_decref(c);
    });
    json_t *updated = json_deep_copy(pod);
    json_object_set_new(json_array_get(json_object_get(json_object_get(updated, "spec"), "containers"), 0), "image",
                        json_string("nginx:1.26"));
    BENCH("managedFields record (update)", {
        json_t *c = json_deep_copy(updated);
        ck_managed_fields_record(c, pod, "kubectl", "Update", "v1");
        json_decref(c);
    });
    json_t *patch = json_loads("{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1.27\"}]}}", 0, NULL);
    BENCH("strategic merge patch (set image)", json_decref(ck_patch_strategic(pod, patch, pods, NULL)));
    BENCH("server-side apply (create)", json_decref(ck_patch_apply(NULL, pod, pods, "kubectl", false, NULL)));
    json_t *live = ck_patch_apply(NULL, pod, pods, "kubectl", false, NULL);
    BENCH("server-side apply (re-apply)", json_decref(ck_patch_apply(live, updated, pods, "kubectl", false, NULL)));
    ck_selector *ls = ck_label_selector_parse("app=web,tier in (front,back),!canary", NULL);
    ck_selector *fs = ck_field_selector_parse("spec.nodeName=n1,status.phase!=Failed", pods, NULL);
    const json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
    volatile int m = 0;
    BENCH("label selector match", m += ck_label_selector_matches(ls, labels));
    BENCH("field selector match", m += ck_field_selector_matches(fs, pod));
    BENCH("label selector parse", ck_selector_free(ck_label_selector_parse("app=web,tier in (front,back),!canary", NULL)));
    ck_selector_free(ls);
    ck_selector_free(fs);
    json_decref(live);
    json_decref(patch);
    json_decref(updated);
    json_decref(pod);
    return 0;
}

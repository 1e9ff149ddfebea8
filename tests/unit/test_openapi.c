/* Unit tests for apiserver/openapi: root index, per-group-version documents (PATCH operations with
 * fieldValidation and x-kubernetes-group-version-kind for every kind, kind schemas for explain,
 * every $ref resolvable), /openapi/v2 negotiation, and unknown-field detection on realistic
 * manifests (no false positives) and on typos (the right path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "apiserver/openapi.h"
#include "apiserver/resources.h"

static char *gv_path(const ck_resource *r)
{
    static char buf[160];
    if (r->group[0])
        snprintf(buf, sizeof buf, "apis/%s/%s", r->group, r->version);
    else
        snprintf(buf, sizeof buf, "api/%s", r->version);
    return buf;
}

static void test_root(void **state)
{
    json_t *root = ck_openapi_v3_root();
    json_t *paths = json_object_get(root, "paths");
    for (size_t i = 0; i < ck_nresources; i++) {
        json_t *p = json_object_get(paths, gv_path(&ck_resources[i]));
        if (!p)
            fail_msg("root lacks %s", gv_path(&ck_resources[i]));
        const char *url = json_string_value(json_object_get(p, "serverRelativeURL"));
        char want[200];
        snprintf(want, sizeof want, "/openapi/v3/%s?hash=", gv_path(&ck_resources[i]));
        assert_non_null(url);
        assert_memory_equal(url, want, strlen(want));
        assert_true(strlen(url) > strlen(want) + 16);
    }
    /* the cached text is the document, and its hash is the root's */
    size_t len = 0;
    const char *hash = NULL;
    const char *text = ck_openapi_v3_document_json("apis/apps/v1", &len, &hash);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    json_t *parsed = json_loadb(text, len, 0, NULL);
    json_t *doc = ck_openapi_v3_document("apis/apps/v1");
    assert_true(json_equal(parsed, doc));
    json_decref(parsed);
    json_decref(doc);
    const char *url = json_string_value(json_object_get(json_object_get(paths, "apis/apps/v1"), "serverRelativeURL"));
    assert_string_equal(strstr(url, "hash=") + 5, hash);
    assert_null(ck_openapi_v3_document_json("apis/nope/v1", &len, &hash));
    json_t *again = ck_openapi_v3_root();
    assert_true(json_equal(root, again));   /* hashes are stable */
    json_decref(again);
    json_decref(root);
    assert_null(ck_openapi_v3_document("apis/nope.k8s.io/v1"));
    assert_null(ck_openapi_v3_document("apis/apps"));
    assert_null(ck_openapi_v3_document("bogus"));
}

/* Every {"$ref": "#/components/schemas/X"} in doc names a schema of doc. */
static void check_refs(json_t *schemas, json_t *node, int *nrefs)
{
    if (json_is_object(node)) {
        const char *ref = json_string_value(json_object_get(node, "$ref"));
        if (ref) {
            const char *pfx = "#/components/schemas/";
            assert_memory_equal(ref, pfx, strlen(pfx));
            if (!json_object_get(schemas, ref + strlen(pfx)))
                fail_msg("dangling $ref %s", ref);
            (*nrefs)++;
        }
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v) check_refs(schemas, v, nrefs);
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v) check_refs(schemas, v, nrefs);
    }
}

static json_t *kind_schema(json_t *doc, const char *g, const char *v, const char *k)
{
    const char *name;
    json_t *s;
    json_object_foreach(json_object_get(json_object_get(doc, "components"), "schemas"), name, s) {
        size_t i;
        json_t *gvk;
        json_array_foreach(json_object_get(s, "x-kubernetes-group-version-kind"), i, gvk)
            if (!strcmp(json_string_value(json_object_get(gvk, "group")), g) &&
                !strcmp(json_string_value(json_object_get(gvk, "version")), v) &&
                !strcmp(json_string_value(json_object_get(gvk, "kind")), k))
                return s;
    }
    return NULL;
}

static json_t *resolve(json_t *doc, json_t *s)
{
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    for (int i = 0; i < 4 && s; i++) {
        const char *ref = json_string_value(json_object_get(s, "$ref"));
        json_t *all = json_object_get(s, "allOf");
        if (all)
            ref = json_string_value(json_object_get(json_array_get(all, 0), "$ref"));
        if (!ref)
            return s;
        s = json_object_get(schemas, ref + strlen("#/components/schemas/"));
    }
    return s;
}

static void test_documents(void **state)
{
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        json_t *doc = ck_openapi_v3_document(gv_path(r));
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.0");
        json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
        json_t *ks = kind_schema(doc, r->group, r->version, r->kind);
        if (!ks)
            fail_msg("%s %s: no schema with its x-kubernetes-group-version-kind", gv_path(r), r->kind);
        assert_non_null(json_string_value(json_object_get(ks, "description")));
        assert_non_null(json_object_get(json_object_get(ks, "properties"), "metadata"));
        assert_non_null(json_object_get(json_object_get(ks, "properties"), "apiVersion"));
        /* a PATCH for the kind with fieldValidation, when the resource is patchable */
        if (ck_word_in(r->verbs, "patch")) {
            int found = 0, missing = 0;
            const char *p;
            json_t *item;
            json_object_foreach(json_object_get(doc, "paths"), p, item) {
                json_t *op = json_object_get(item, "patch");
                json_t *gvk = json_object_get(op, "x-kubernetes-group-version-kind");
                if (!op || strcmp(json_string_value(json_object_get(gvk, "kind")), r->kind))
                    continue;
                assert_string_equal(json_string_value(json_object_get(op, "x-kubernetes-action")), "patch");
                int has = 0;
                size_t k;
                json_t *param;
                json_array_foreach(json_object_get(op, "parameters"), k, param)
                    has |= !strcmp(json_string_value(json_object_get(param, "name")), "fieldValidation");
                found += has;
                missing += !has;
            }
            if (!found || missing)
                fail_msg("%s: %d PATCH ops with fieldValidation, %d without", r->kind, found, missing);
        }
        int nrefs = 0;
        check_refs(schemas, doc, &nrefs);
        assert_true(nrefs > 0);
        json_decref(doc);
    }
}

/* kubectl explain pod.spec.containers / deployment.spec.strategy walk these. */
static void test_explain_paths(void **state)
{
    json_t *doc = ck_openapi_v3_document("api/v1");
    json_t *pod = kind_schema(doc, "", "v1", "Pod");
    json_t *spec = resolve(doc, json_object_get(json_object_get(pod, "properties"), "spec"));
    json_t *containers = json_object_get(json_object_get(spec, "properties"), "containers");
    assert_non_null(json_string_value(json_object_get(containers, "description")));
    assert_string_equal(json_string_value(json_object_get(containers, "type")), "array");
    json_t *c = resolve(doc, json_object_get(containers, "items"));
    static const char *const want[] = {"name", "image", "command", "args", "env", "envFrom", "ports", "resources",
                                       "livenessProbe", "readinessProbe", "startupProbe", "securityContext",
                                       "volumeMounts", "lifecycle", "imagePullPolicy", "restartPolicy"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!json_object_get(json_object_get(c, "properties"), want[i]))
            fail_msg("Container lacks %s", want[i]);
    assert_string_equal(json_string_value(json_object_get(containers, "x-kubernetes-patch-merge-key")), "name");
    assert_string_equal(json_string_value(json_object_get(containers, "x-kubernetes-patch-strategy")), "merge");
    json_t *vols = json_object_get(json_object_get(spec, "properties"), "volumes");
    assert_string_equal(json_string_value(json_object_get(vols, "x-kubernetes-patch-strategy")), "merge,retainKeys");
    json_t *ports = json_object_get(json_object_get(c, "properties"), "ports");
    assert_string_equal(json_string_value(json_object_get(ports, "x-kubernetes-patch-merge-key")), "containerPort");
    json_t *req = json_object_get(c, "required");
    assert_string_equal(json_string_value(json_array_get(req, 0)), "name");
    json_t *probe = resolve(doc, json_object_get(json_object_get(c, "properties"), "livenessProbe"));
    json_t *hg = resolve(doc, json_object_get(json_object_get(probe, "properties"), "httpGet"));
    json_t *port = resolve(doc, json_object_get(json_object_get(hg, "properties"), "port"));
    assert_string_equal(json_string_value(json_object_get(port, "format")), "int-or-string");
    json_decref(doc);

    doc = ck_openapi_v3_document("apis/apps/v1");
    json_t *d = kind_schema(doc, "apps", "v1", "Deployment");
    json_t *ds = resolve(doc, json_object_get(json_object_get(d, "properties"), "spec"));
    json_t *st = resolve(doc, json_object_get(json_object_get(ds, "properties"), "strategy"));
    assert_non_null(json_object_get(json_object_get(st, "properties"), "rollingUpdate"));
    assert_non_null(json_object_get(json_object_get(st, "properties"), "type"));
    json_t *strat = json_object_get(json_object_get(ds, "properties"), "strategy");
    assert_string_equal(json_string_value(json_object_get(strat, "x-kubernetes-patch-strategy")), "retainKeys");
    /* deployments/scale patches autoscaling/v1 Scale, whose schema is in the document */
    json_t *scale = json_object_get(json_object_get(doc, "paths"), "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale");
    json_t *gvk = json_object_get(json_object_get(scale, "patch"), "x-kubernetes-group-version-kind");
    assert_string_equal(json_string_value(json_object_get(gvk, "group")), "autoscaling");
    assert_string_equal(json_string_value(json_object_get(gvk, "kind")), "Scale");
    assert_non_null(kind_schema(doc, "autoscaling", "v1", "Scale"));
    json_decref(doc);
}

static void test_v2(void **state)
{
    const char *ct, *body;
    size_t len;
    ck_openapi_v2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", &ct, &body, &len);
    assert_null(strchr(ct, '@'));
    assert_string_equal(ct, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf");
    assert_int_equal(len, 0);
    ck_openapi_v2("application/json", &ct, &body, &len);
    assert_string_equal(ct, "application/json");
    json_t *j = json_loadb(body, len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "swagger")), "2.0");
    json_decref(j);
}

static const char *const valid_manifests[][2] = {
    {"Deployment",
     "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"default\","
     "\"labels\":{\"app\":\"web\"},\"annotations\":{\"x\":\"y\"}},\"spec\":{\"replicas\":3,\"revisionHistoryLimit\":5,"
     "\"progressDeadlineSeconds\":600,\"minReadySeconds\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"},"
     "\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"fe\"]}]},"
     "\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":\"25%\",\"maxUnavailable\":0}},"
     "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"},\"annotations\":{\"kubectl.kubernetes.io/restartedAt\":\"x\"}},"
     "\"spec\":{\"serviceAccountName\":\"web\",\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":\"ClusterFirst\","
     "\"restartPolicy\":\"Always\",\"nodeSelector\":{\"kubernetes.io/os\":\"linux\"},"
     "\"securityContext\":{\"runAsNonRoot\":true,\"runAsUser\":1000,\"fsGroup\":2000,\"seccompProfile\":{\"type\":\"RuntimeDefault\"}},"
     "\"affinity\":{\"podAntiAffinity\":{\"preferredDuringSchedulingIgnoredDuringExecution\":[{\"weight\":100,"
     "\"podAffinityTerm\":{\"labelSelector\":{\"matchLabels\":{\"app\":\"web\"}},\"topologyKey\":\"kubernetes.io/hostname\"}}]}},"
     "\"tolerations\":[{\"key\":\"k\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\",\"tolerationSeconds\":5}],"
     "\"topologySpreadConstraints\":[{\"maxSkew\":1,\"topologyKey\":\"zone\",\"whenUnsatisfiable\":\"ScheduleAnyway\","
     "\"labelSelector\":{\"matchLabels\":{\"app\":\"web\"}},\"matchLabelKeys\":[\"pod-template-hash\"],\"minDomains\":1}],"
     "\"initContainers\":[{\"name\":\"init\",\"image\":\"busybox\",\"command\":[\"sh\",\"-c\",\"true\"]},"
     "{\"name\":\"sidecar\",\"image\":\"envoy\",\"restartPolicy\":\"Always\"}],"
     "\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx:1.25\",\"imagePullPolicy\":\"IfNotPresent\","
     "\"args\":[\"-g\",\"daemon off;\"],\"workingDir\":\"/\",\"ports\":[{\"name\":\"http\",\"containerPort\":80,\"protocol\":\"TCP\"}],"
     "\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"POD\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}},"
     "{\"name\":\"S\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"s\",\"key\":\"k\",\"optional\":true}}},"
     "{\"name\":\"C\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"c\",\"key\":\"k\"}}},"
     "{\"name\":\"M\",\"valueFrom\":{\"resourceFieldRef\":{\"resource\":\"limits.memory\",\"divisor\":\"1Mi\"}}}],"
     "\"envFrom\":[{\"configMapRef\":{\"name\":\"c\"},\"prefix\":\"C_\"},{\"secretRef\":{\"name\":\"s\"}}],"
     "\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"},\"limits\":{\"cpu\":1,\"memory\":\"128Mi\"}},"
     "\"livenessProbe\":{\"httpGet\":{\"path\":\"/\",\"port\":\"http\",\"scheme\":\"HTTP\",\"httpHeaders\":[{\"name\":\"X\",\"value\":\"y\"}]},"
     "\"initialDelaySeconds\":5,\"periodSeconds\":10,\"timeoutSeconds\":1,\"failureThreshold\":3,\"successThreshold\":1},"
     "\"readinessProbe\":{\"tcpSocket\":{\"port\":80}},\"startupProbe\":{\"exec\":{\"command\":[\"true\"]}},"
     "\"lifecycle\":{\"preStop\":{\"exec\":{\"command\":[\"sleep\",\"5\"]}},\"postStart\":{\"sleep\":{\"seconds\":1}}},"
     "\"securityContext\":{\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,"
     "\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"NET_BIND_SERVICE\"]},\"privileged\":false},"
     "\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/data\",\"readOnly\":true,\"subPath\":\"x\"}],"
     "\"terminationMessagePath\":\"/dev/termination-log\",\"terminationMessagePolicy\":\"File\",\"stdin\":false,\"tty\":false}],"
     "\"volumes\":[{\"name\":\"data\",\"emptyDir\":{\"sizeLimit\":\"1Gi\",\"medium\":\"Memory\"}},"
     "{\"name\":\"cfg\",\"configMap\":{\"name\":\"c\",\"defaultMode\":420,\"items\":[{\"key\":\"a\",\"path\":\"a\"}]}},"
     "{\"name\":\"sec\",\"secret\":{\"secretName\":\"s\",\"optional\":true}},"
     "{\"name\":\"pvc\",\"persistentVolumeClaim\":{\"claimName\":\"c\"}},"
     "{\"name\":\"hp\",\"hostPath\":{\"path\":\"/tmp\",\"type\":\"Directory\"}},"
     "{\"name\":\"proj\",\"projected\":{\"sources\":[{\"serviceAccountToken\":{\"path\":\"t\",\"expirationSeconds\":3600}},"
     "{\"downwardAPI\":{\"items\":[{\"path\":\"labels\",\"fieldRef\":{\"fieldPath\":\"metadata.labels\"}}]}}]}}]}}},"
     "\"status\":{\"replicas\":3,\"someFutureField\":1}}"},
    {"Service",
     "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"web\"},\"spec\":{\"type\":\"NodePort\","
     "\"selector\":{\"app\":\"web\"},\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":\"http\",\"nodePort\":30080,"
     "\"protocol\":\"TCP\",\"appProtocol\":\"http\"}],\"sessionAffinity\":\"ClientIP\",\"sessionAffinityConfig\":"
     "{\"clientIP\":{\"timeoutSeconds\":100}},\"externalTrafficPolicy\":\"Local\",\"internalTrafficPolicy\":\"Cluster\","
     "\"ipFamilies\":[\"IPv4\"],\"ipFamilyPolicy\":\"SingleStack\",\"clusterIP\":\"10.96.0.20\",\"clusterIPs\":[\"10.96.0.20\"],"
     "\"publishNotReadyAddresses\":false,\"trafficDistribution\":\"PreferClose\"}}"},
    {"Pod",
     "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"generateName\":\"p-\",\"finalizers\":[\"x\"],"
     "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"rs\",\"uid\":\"u\",\"controller\":true,"
     "\"blockOwnerDeletion\":true}],\"managedFields\":[{\"manager\":\"kubectl\",\"operation\":\"Apply\",\"apiVersion\":\"v1\","
     "\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:containers\":{}}},\"time\":\"2025-01-01T00:00:00Z\"}],"
     "\"uid\":\"u\",\"resourceVersion\":\"5\",\"creationTimestamp\":\"2025-01-01T00:00:00Z\",\"generation\":1},"
     "\"spec\":{\"os\":{\"name\":\"linux\"},\"hostUsers\":false,\"schedulingGates\":[{\"name\":\"g\"}],"
     "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\",\"stdin\":true,\"tty\":true,"
     "\"resizePolicy\":[{\"resourceName\":\"cpu\",\"restartPolicy\":\"NotRequired\"}],"
     "\"livenessProbe\":{\"grpc\":{\"port\":9000}},\"securityContext\":{\"appArmorProfile\":{\"type\":\"RuntimeDefault\"}}}],"
     "\"ephemeralContainers\":[{\"name\":\"dbg\",\"image\":\"busybox\",\"targetContainerName\":\"c\"}],"
     "\"hostAliases\":[{\"ip\":\"127.0.0.1\",\"hostnames\":[\"foo\"]}],\"dnsConfig\":{\"nameservers\":[\"1.1.1.1\"],"
     "\"options\":[{\"name\":\"ndots\",\"value\":\"2\"}]},\"readinessGates\":[{\"conditionType\":\"x\"}],"
     "\"imagePullSecrets\":[{\"name\":\"reg\"}],\"priorityClassName\":\"high\",\"nodeName\":\"n1\","
     "\"volumes\":[{\"name\":\"v\",\"ephemeral\":{\"volumeClaimTemplate\":{\"spec\":{\"accessModes\":[\"ReadWriteOnce\"],"
     "\"resources\":{\"requests\":{\"storage\":\"1Gi\"}}}}}},{\"name\":\"d\",\"downwardAPI\":{\"items\":[{\"path\":\"cpu\","
     "\"resourceFieldRef\":{\"containerName\":\"c\",\"resource\":\"requests.cpu\"}}]}}]},"
     "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.244.0.5\"}}"},
    {"ConfigMap",
     "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"labels\":{\"a\":\"b\"}},"
     "\"data\":{\"game.properties\":\"x=1\",\"ui\":\"y\"},\"binaryData\":{\"b\":\"AA==\"},\"immutable\":false}"},
    {"Secret",
     "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"},\"type\":\"Opaque\","
     "\"data\":{\"a\":\"AA==\"},\"stringData\":{\"b\":\"c\"}}"},
    {"StatefulSet",
     "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"db\"},\"spec\":{\"serviceName\":\"db\","
     "\"replicas\":1,\"podManagementPolicy\":\"Parallel\",\"ordinals\":{\"start\":0},\"persistentVolumeClaimRetentionPolicy\":"
     "{\"whenDeleted\":\"Retain\",\"whenScaled\":\"Delete\"},\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
     "{\"partition\":0,\"maxUnavailable\":1}},\"selector\":{\"matchLabels\":{\"app\":\"db\"}},\"template\":{\"metadata\":"
     "{\"labels\":{\"app\":\"db\"}},\"spec\":{\"containers\":[{\"name\":\"db\",\"image\":\"postgres\"}]}},"
     "\"volumeClaimTemplates\":[{\"metadata\":{\"name\":\"data\"},\"spec\":{\"accessModes\":[\"ReadWriteOnce\"],"
     "\"storageClassName\":\"local\",\"resources\":{\"requests\":{\"storage\":\"1Gi\"}}}}]}}"},
    {"CronJob",
     "{\"apiVersion\":\"batch/v1\",\"kind\":\"CronJob\",\"metadata\":{\"name\":\"cj\"},\"spec\":{\"schedule\":\"*/1 * * * *\","
     "\"timeZone\":\"Etc/UTC\",\"concurrencyPolicy\":\"Forbid\",\"successfulJobsHistoryLimit\":3,\"failedJobsHistoryLimit\":1,"
     "\"startingDeadlineSeconds\":10,\"suspend\":false,\"jobTemplate\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":"
     "{\"backoffLimit\":2,\"ttlSecondsAfterFinished\":100,\"completions\":3,\"parallelism\":2,\"completionMode\":\"Indexed\","
     "\"backoffLimitPerIndex\":1,\"podFailurePolicy\":{\"rules\":[{\"action\":\"FailJob\",\"onExitCodes\":{\"operator\":\"In\","
     "\"values\":[42]}}]},\"template\":{\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}}}}}"},
    {"DaemonSet",
     "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"ds\"},\"spec\":{\"selector\":{\"matchLabels\":"
     "{\"a\":\"b\"}},\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxUnavailable\":1,\"maxSurge\":0}},"
     "\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":{\"hostNetwork\":true,\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}}}"},
    {"Role",
     "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"Role\",\"metadata\":{\"name\":\"r\"},\"rules\":[{\"apiGroups\":[\"\"],"
     "\"resources\":[\"pods\"],\"verbs\":[\"get\",\"list\"],\"resourceNames\":[\"x\"]}]}"},
    {"RoleBinding",
     "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"RoleBinding\",\"metadata\":{\"name\":\"rb\"},\"roleRef\":{\"apiGroup\":"
     "\"rbac.authorization.k8s.io\",\"kind\":\"Role\",\"name\":\"r\"},\"subjects\":[{\"kind\":\"ServiceAccount\",\"name\":\"d\",\"namespace\":\"x\"}]}"},
    {"PodDisruptionBudget",
     "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"minAvailable\":\"50%\","
     "\"selector\":{\"matchLabels\":{\"a\":\"b\"}},\"unhealthyPodEvictionPolicy\":\"AlwaysAllow\"}}"},
    {"Namespace", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"n\"},\"spec\":{\"finalizers\":[\"kubernetes\"]}}"},
    {"Lease", "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"l\"},\"spec\":{\"holderIdentity\":\"h\","
     "\"leaseDurationSeconds\":40,\"renewTime\":\"2025-01-01T00:00:00.000000Z\",\"leaseTransitions\":1}}"},
    {"EndpointSlice", "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"e\"},\"addressType\":\"IPv4\","
     "\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"conditions\":{\"ready\":true,\"serving\":true,\"terminating\":false},"
     "\"nodeName\":\"n\",\"zone\":\"z\",\"targetRef\":{\"kind\":\"Pod\",\"name\":\"p\"},\"hints\":{\"forZones\":[{\"name\":\"z\"}]}}],"
     "\"ports\":[{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\",\"appProtocol\":\"http\"}]}"},
    {"Node", "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n\"},\"spec\":{\"podCIDR\":\"10.244.0.0/24\","
     "\"podCIDRs\":[\"10.244.0.0/24\"],\"taints\":[{\"key\":\"k\",\"effect\":\"NoSchedule\"}],\"unschedulable\":false,\"providerID\":\"x\"}}"},
    {"PersistentVolume", "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolume\",\"metadata\":{\"name\":\"pv\"},\"spec\":{\"capacity\":"
     "{\"storage\":\"5Gi\"},\"volumeMode\":\"Filesystem\",\"accessModes\":[\"ReadWriteOnce\"],\"persistentVolumeReclaimPolicy\":\"Retain\","
     "\"storageClassName\":\"local\",\"mountOptions\":[\"hard\"],\"claimRef\":{\"namespace\":\"d\",\"name\":\"c\"},"
     "\"local\":{\"path\":\"/mnt\"},\"nodeAffinity\":{\"required\":{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":"
     "\"kubernetes.io/hostname\",\"operator\":\"In\",\"values\":[\"n1\"]}]}]}}}}"},
    {"PersistentVolumeClaim", "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":\"c\"},\"spec\":"
     "{\"accessModes\":[\"ReadWriteOnce\"],\"volumeMode\":\"Filesystem\",\"resources\":{\"requests\":{\"storage\":\"1Gi\"},"
     "\"limits\":{\"storage\":\"2Gi\"}},\"storageClassName\":\"local\",\"volumeName\":\"pv\",\"selector\":{\"matchLabels\":{\"a\":\"b\"}},"
     "\"dataSourceRef\":{\"apiGroup\":\"snapshot.storage.k8s.io\",\"kind\":\"VolumeSnapshot\",\"name\":\"s\",\"namespace\":\"n\"}}}"},
    {"StorageClass", "{\"apiVersion\":\"storage.k8s.io/v1\",\"kind\":\"StorageClass\",\"metadata\":{\"name\":\"local\",\"annotations\":"
     "{\"storageclass.kubernetes.io/is-default-class\":\"true\"}},\"provisioner\":\"kubernetes.io/no-provisioner\",\"parameters\":"
     "{\"type\":\"x\"},\"reclaimPolicy\":\"Delete\",\"volumeBindingMode\":\"WaitForFirstConsumer\",\"allowVolumeExpansion\":true,"
     "\"mountOptions\":[\"debug\"],\"allowedTopologies\":[{\"matchLabelExpressions\":[{\"key\":\"zone\",\"values\":[\"a\"]}]}]}"},
    {"ServiceAccount", "{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"sa\"},\"automountServiceAccountToken\":false,"
     "\"imagePullSecrets\":[{\"name\":\"r\"}],\"secrets\":[{\"name\":\"s\"}]}"},
    {"LimitRange", "{\"apiVersion\":\"v1\",\"kind\":\"LimitRange\",\"metadata\":{\"name\":\"l\"},\"spec\":{\"limits\":[{\"type\":\"Container\","
     "\"default\":{\"cpu\":\"500m\"},\"defaultRequest\":{\"cpu\":\"100m\"},\"max\":{\"cpu\":\"1\"},\"min\":{\"cpu\":\"10m\"},"
     "\"maxLimitRequestRatio\":{\"cpu\":\"10\"}}]}}"},
    {"ResourceQuota", "{\"apiVersion\":\"v1\",\"kind\":\"ResourceQuota\",\"metadata\":{\"name\":\"q\"},\"spec\":{\"hard\":{\"pods\":\"10\","
     "\"requests.cpu\":\"4\"},\"scopes\":[\"NotTerminating\"],\"scopeSelector\":{\"matchExpressions\":[{\"scopeName\":\"PriorityClass\","
     "\"operator\":\"In\",\"values\":[\"high\"]}]}}}"},
    {"Job", "{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":{\"name\":\"j\"},\"spec\":{\"completions\":5,\"parallelism\":2,"
     "\"backoffLimit\":3,\"activeDeadlineSeconds\":100,\"ttlSecondsAfterFinished\":10,\"suspend\":false,\"manualSelector\":false,"
     "\"podReplacementPolicy\":\"Failed\",\"completionMode\":\"Indexed\",\"maxFailedIndexes\":1,\"backoffLimitPerIndex\":1,"
     "\"successPolicy\":{\"rules\":[{\"succeededIndexes\":\"0-2\",\"succeededCount\":1}]},"
     "\"podFailurePolicy\":{\"rules\":[{\"action\":\"Ignore\",\"onPodConditions\":[{\"type\":\"DisruptionTarget\"}]}]},"
     "\"template\":{\"spec\":{\"restartPolicy\":\"OnFailure\",\"containers\":[{\"name\":\"c\",\"image\":\"perl\",\"command\":[\"perl\"]}]}}}}"},
    {"Event", "{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"metadata\":{\"name\":\"e\"},\"involvedObject\":{\"kind\":\"Pod\",\"name\":\"p\","
     "\"namespace\":\"d\",\"uid\":\"u\",\"apiVersion\":\"v1\",\"resourceVersion\":\"1\",\"fieldPath\":\"spec.containers{c}\"},"
     "\"reason\":\"Pulled\",\"message\":\"m\",\"source\":{\"component\":\"kubelet\",\"host\":\"n\"},\"firstTimestamp\":\"2025-01-01T00:00:00Z\","
     "\"lastTimestamp\":\"2025-01-01T00:00:00Z\",\"count\":1,\"type\":\"Normal\",\"eventTime\":null,\"reportingComponent\":\"kubelet\","
     "\"reportingInstance\":\"n\",\"action\":\"Pull\",\"series\":{\"count\":2,\"lastObservedTime\":\"2025-01-01T00:00:00.000000Z\"}}"},
    {"ReplicationController", "{\"apiVersion\":\"v1\",\"kind\":\"ReplicationController\",\"metadata\":{\"name\":\"rc\"},\"spec\":{\"replicas\":1,"
     "\"minReadySeconds\":1,\"selector\":{\"app\":\"rc\"},\"template\":{\"metadata\":{\"labels\":{\"app\":\"rc\"}},\"spec\":{\"containers\":"
     "[{\"name\":\"c\",\"image\":\"i\"}]}}}}"},
    {"PodTemplate", "{\"apiVersion\":\"v1\",\"kind\":\"PodTemplate\",\"metadata\":{\"name\":\"t\"},\"template\":{\"metadata\":{\"labels\":"
     "{\"a\":\"b\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}}"},
    {"ClusterRole", "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"cr\"},\"rules\":"
     "[{\"nonResourceURLs\":[\"/healthz\"],\"verbs\":[\"get\"]}],\"aggregationRule\":{\"clusterRoleSelectors\":[{\"matchLabels\":{\"a\":\"b\"}}]}}"},
    {"ClusterRoleBinding", "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":\"crb\"},"
     "\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"cr\"},\"subjects\":[{\"kind\":\"User\","
     "\"apiGroup\":\"rbac.authorization.k8s.io\",\"name\":\"alice\"},{\"kind\":\"Group\",\"name\":\"g\"}]}"},
    {"Endpoints", "{\"apiVersion\":\"v1\",\"kind\":\"Endpoints\",\"metadata\":{\"name\":\"e\"},\"subsets\":[{\"addresses\":[{\"ip\":\"10.0.0.1\","
     "\"hostname\":\"h\",\"nodeName\":\"n\",\"targetRef\":{\"kind\":\"Pod\",\"name\":\"p\"}}],\"notReadyAddresses\":[],\"ports\":[{\"name\":\"http\","
     "\"port\":80,\"protocol\":\"TCP\",\"appProtocol\":\"http\"}]}]}"},
    {"ControllerRevision", "{\"apiVersion\":\"apps/v1\",\"kind\":\"ControllerRevision\",\"metadata\":{\"name\":\"r\"},\"data\":{\"spec\":{}},\"revision\":3}"},
    {"ReplicaSet", "{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"rs\"},\"spec\":{\"replicas\":2,\"minReadySeconds\":0,"
     "\"selector\":{\"matchLabels\":{\"a\":\"b\"}},\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}}}"},
    {"PriorityClass", "{\"apiVersion\":\"scheduling.k8s.io/v1\",\"kind\":\"PriorityClass\",\"metadata\":{\"name\":\"h\"},\"value\":1000,"
     "\"globalDefault\":false,\"preemptionPolicy\":\"Never\",\"description\":\"d\"}"},
};

static void test_unknown_none(void **state)
{
    for (size_t i = 0; i < sizeof valid_manifests / sizeof valid_manifests[0]; i++) {
        json_error_t e;
        json_t *obj = json_loads(valid_manifests[i][1], 0, &e);
        if (!obj)
            fail_msg("manifest %s: %s", valid_manifests[i][0], e.text);
        const char *av = json_string_value(json_object_get(obj, "apiVersion"));
        const char *slash = strchr(av, '/');
        char group[64] = "";
        if (slash)
            snprintf(group, sizeof group, "%.*s", (int)(slash - av), av);
        const ck_resource *r = ck_resource_by_kind(group, valid_manifests[i][0]);
        assert_non_null(r);
        json_t *unknown = json_array();
        ck_openapi_unknown_fields(r, obj, unknown);
        if (json_array_size(unknown)) {
            char *s = json_dumps(unknown, 0);
            fail_msg("%s: false unknown fields %s", valid_manifests[i][0], s);
        }
        json_decref(unknown);
        json_decref(obj);
    }
}

/* Every realistic manifest passes the type check too, in the same walk. */
static void test_types_valid(void **state)
{
    for (size_t i = 0; i < sizeof valid_manifests / sizeof valid_manifests[0]; i++) {
        json_t *obj = json_loads(valid_manifests[i][1], 0, NULL);
        assert_non_null(obj);
        const char *av = json_string_value(json_object_get(obj, "apiVersion"));
        const char *slash = strchr(av, '/');
        char group[64] = "";
        if (slash)
            snprintf(group, sizeof group, "%.*s", (int)(slash - av), av);
        const ck_resource *r = ck_resource_by_kind(group, valid_manifests[i][0]);
        assert_non_null(r);
        ck_type_error te;
        json_t *unknown = json_array();
        if (ck_openapi_check(r, obj, unknown, &te))
            fail_msg("%s: false type error at %s: %s", valid_manifests[i][0], te.path, te.msg);
        assert_int_equal(json_array_size(unknown), 0);
        json_decref(unknown);
        json_decref(obj);
    }
}

/* Wrong JSON types, worded as upstream's decoder words them (nil: accepted). */
static const struct {
    const char *group, *kind, *body, *msg, *path;
} type_cases[] = {
    {"", "ConfigMap", "{\"metadata\":{\"name\":\"c\"},\"data\":[1]}",
     "json: cannot unmarshal array into Go struct field ConfigMap.data of type map[string]string", "data"},
    {"", "ConfigMap", "{\"data\":{\"a\":5}}",
     "json: cannot unmarshal number into Go struct field ConfigMap.data of type string", "data.a"},
    {"", "ConfigMap", "{\"metadata\":\"x\"}",
     "json: cannot unmarshal string into Go struct field ConfigMap.metadata of type v1.ObjectMeta", "metadata"},
    {"", "ConfigMap", "{\"metadata\":{\"name\":12}}",
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string", "metadata.name"},
    {"", "ConfigMap", "{\"metadata\":{\"labels\":{\"a\":{\"b\":1}}}}",
     "json: cannot unmarshal object into Go struct field ObjectMeta.metadata.labels of type string",
     "metadata.labels.a"},
    {"", "ConfigMap", "{\"immutable\":\"yes\"}",
     "json: cannot unmarshal string into Go struct field ConfigMap.immutable of type bool", "immutable"},
    {"", "ConfigMap", "{\"kind\":7}",
     "json: cannot unmarshal number into Go struct field ConfigMap.kind of type string", "kind"},
    {"", "Pod", "{\"spec\":{\"containers\":\"x\"}}",
     "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type []v1.Container",
     "spec.containers"},
    {"", "Pod", "{\"spec\":{\"containers\":[null,1]}}",
     "json: cannot unmarshal number into Go struct field PodSpec.spec.containers of type v1.Container",
     "spec.containers[1]"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"name\":\"a\",\"ports\":[{\"containerPort\":1.5}]}]}}",
     "json: cannot unmarshal number 1.5 into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32",
     "spec.containers[0].ports[0].containerPort"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":3000000000}]}]}}",
     "json: cannot unmarshal number 3000000000 into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32",
     "spec.containers[0].ports[0].containerPort"},
    {"", "Pod", "{\"spec\":{\"terminationGracePeriodSeconds\":3000000000,\"activeDeadlineSeconds\":\"1\"}}",
     "json: cannot unmarshal string into Go struct field PodSpec.spec.activeDeadlineSeconds of type int64",
     "spec.activeDeadlineSeconds"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"livenessProbe\":{\"httpGet\":{\"port\":true}}}]}}",
     "json: cannot unmarshal bool into Go struct field HTTPGetAction.spec.containers.livenessProbe.httpGet.port of type int32",
     "spec.containers[0].livenessProbe.httpGet.port"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"livenessProbe\":{\"httpGet\":{\"port\":\"http\"}}}]}}", NULL, NULL},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"cpu\":\"lots\"}}}]}}",
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
     "spec.containers[0].resources.limits.cpu"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"cpu\":\"1Qi\"}}}]}}",
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
     "spec.containers[0].resources.limits.cpu"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"memory\":\"1Gb\"}}}]}}",
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
     "spec.containers[0].resources.limits.memory"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"memory\":\"1KM\"}}}]}}",
     "unable to parse quantity's suffix", "spec.containers[0].resources.limits.memory"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"memory\":\"1.2.3\"}}}]}}",
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
     "spec.containers[0].resources.limits.memory"},
    {"", "Pod", "{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"cpu\":0.5,\"memory\":\"1e3\",\"x\":\" 2Ki \"},"
     "\"requests\":{\"cpu\":\"-1.5m\",\"memory\":\"12E\"}}}]}}", NULL, NULL},
    {"", "Pod", "{\"spec\":{\"volumes\":{\"a\":1}}}",
     "json: cannot unmarshal object into Go struct field PodSpec.spec.volumes of type []v1.Volume", "spec.volumes"},
    {"", "Pod", "{\"metadata\":{\"creationTimestamp\":5}}",
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp of type string",
     "metadata.creationTimestamp"},
    {"", "Pod", "{\"status\":{\"phase\":1}}",
     "json: cannot unmarshal number into Go struct field PodStatus.status.phase of type string", "status.phase"},
    {"", "Pod", "{\"status\":{\"someFutureField\":[1]},\"spec\":null,\"metadata\":null}", NULL, NULL},
    {"apps", "Deployment", "{\"spec\":{\"replicas\":\"3\"}}",
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32", "spec.replicas"},
    {"apps", "Deployment", "{\"spec\":{\"template\":7}}",
     "json: cannot unmarshal number into Go struct field DeploymentSpec.spec.template of type v1.PodTemplateSpec",
     "spec.template"},
    {"apps", "Deployment", "{\"spec\":{\"strategy\":{\"rollingUpdate\":{\"maxSurge\":{}}}}}",
     "json: cannot unmarshal object into Go struct field RollingUpdateDeployment.spec.strategy.rollingUpdate.maxSurge of type int32",
     "spec.strategy.rollingUpdate.maxSurge"},
    {"", "Service", "{\"spec\":{\"ports\":[{\"port\":\"x\"}]}}",
     "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32", "spec.ports[0].port"},
    {"", "Secret", "{\"data\":{\"a\":[]}}",
     "json: cannot unmarshal array into Go struct field Secret.data of type string", "data.a"},
    /* fields the schema does not know are not typed (the decoder drops them) */
    {"", "ConfigMap", "{\"bogus\":[1],\"metadata\":{\"bogus\":{}}}", NULL, NULL},
};

static void test_types_mismatch(void **state)
{
    for (size_t i = 0; i < sizeof type_cases / sizeof type_cases[0]; i++) {
        const ck_resource *r = ck_resource_by_kind(type_cases[i].group, type_cases[i].kind);
        assert_non_null(r);
        json_t *obj = json_loads(type_cases[i].body, 0, NULL);
        assert_non_null(obj);
        ck_type_error te;
        bool found = ck_openapi_check(r, obj, NULL, &te);
        if (!type_cases[i].msg) {
            if (found)
                fail_msg("case %zu: unexpected type error %s", i, te.msg);
        } else {
            if (!found)
                fail_msg("case %zu: no type error, want %s", i, type_cases[i].msg);
            assert_string_equal(te.msg, type_cases[i].msg);
            assert_string_equal(te.path, type_cases[i].path);
        }
        json_decref(obj);
    }
}

static void test_unknown_typos(void **state)
{
    static const struct {
        const char *kind, *group, *obj, *want;
    } cases[] = {
        {"Deployment", "apps",
         "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"template\":{\"spec\":"
         "{\"containers\":[{\"name\":\"a\",\"image\":\"i\"},{\"name\":\"b\",\"image\":\"i\",\"imagePullPolicyy\":\"Always\"}]}}}}",
         "[\".spec.template.spec.containers[1].imagePullPolicyy\"]"},
        {"Pod", "", "{\"metadata\":{\"name\":\"x\",\"lables\":{}},\"spec\":{\"containers\":[]}}", "[\".metadata.lables\"]"},
        {"Pod", "", "{\"spec\":{\"containers\":[{\"name\":\"a\",\"ports\":[{\"containerport\":80}]}]}}",
         "[\".spec.containers[0].ports[0].containerport\"]"},
        {"Pod", "", "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":\"X\",\"valueFrom\":{\"fieldRef\":{\"path\":\"x\"}}}]}]}}",
         "[\".spec.containers[0].env[0].valueFrom.fieldRef.path\"]"},
        {"Service", "", "{\"spec\":{\"selectr\":{\"a\":\"b\"},\"ports\":[{\"port\":80,\"target\":80}]}}",
         "[\".spec.ports[0].target\",\".spec.selectr\"]"},
        {"ConfigMap", "", "{\"data\":{\"a\":\"b\"},\"dta\":{}}", "[\".dta\"]"},
        {"Deployment", "apps", "{\"spec\":{\"strategy\":{\"rollingUpdate\":{\"maxSurge\":1,\"maxSurgee\":2}}}}",
         "[\".spec.strategy.rollingUpdate.maxSurgee\"]"},
        {"Pod", "", "{\"spec\":{\"volumes\":[{\"name\":\"v\",\"emptyDir\":{\"size\":\"1Gi\"}}]}}",
         "[\".spec.volumes[0].emptyDir.size\"]"},
        /* free-form maps and preserve-unknown subtrees are never unknown */
        {"Pod", "", "{\"metadata\":{\"labels\":{\"anything\":\"x\"},\"managedFields\":[{\"fieldsV1\":{\"f:any\":{}}}]},"
         "\"spec\":{\"nodeSelector\":{\"whatever\":\"x\"}}}", "[]"},
        {"ControllerRevision", "apps", "{\"data\":{\"spec\":{\"anything\":1}},\"revision\":1}", "[]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *obj = json_loads(cases[i].obj, 0, NULL);
        assert_non_null(obj);
        json_t *unknown = json_array();
        ck_openapi_unknown_fields(ck_resource_by_kind(cases[i].group, cases[i].kind), obj, unknown);
        char *got = json_dumps(unknown, JSON_COMPACT);
        /* order-insensitive compare: sort both */
        json_t *want = json_loads(cases[i].want, 0, NULL);
        int ok = json_array_size(want) == json_array_size(unknown);
        size_t a;
        json_t *w;
        json_array_foreach(want, a, w) {
            int hit = 0;
            size_t b;
            json_t *u;
            json_array_foreach(unknown, b, u) hit |= json_equal(u, w);
            ok &= hit;
        }
        if (!ok)
            fail_msg("case %zu: got %s want %s", i, got, cases[i].want);
        free(got);
        json_decref(want);
        json_decref(unknown);
        json_decref(obj);
    }
}

static void test_unknown_subresources(void **state)
{
    static const struct {
        const char *resource, *group, *sub, *obj, *want;
    } cases[] = {
        /* kubectl create token: a TokenRequest without kind */
        {"serviceaccounts", "", "token", "{\"spec\":{\"audiences\":[\"a\"],\"expirationSeconds\":600}}", "[]"},
        {"serviceaccounts", "", "token", "{\"spec\":{\"audience\":[\"a\"]}}", "[\".spec.audience\"]"},
        /* kubectl scale: a merge patch on /scale */
        {"deployments", "apps", "scale", "{\"spec\":{\"replicas\":3}}", "[]"},
        {"deployments", "apps", "scale", "{\"spec\":{\"replica\":3}}", "[\".spec.replica\"]"},
        {"deployments", "apps", "scale", "{\"apiVersion\":\"autoscaling/v1\",\"kind\":\"Scale\",\"metadata\":{\"name\":\"d\"},"
         "\"spec\":{\"replicas\":3},\"status\":{\"replicas\":1,\"selector\":\"a=b\"}}", "[]"},
        {"pods", "", "eviction", "{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"p\"},"
         "\"deleteOptions\":{\"gracePeriodSeconds\":0}}", "[]"},
        {"pods", "", "binding", "{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":\"p\"},"
         "\"target\":{\"kind\":\"Node\",\"name\":\"n1\"}}", "[]"},
        {"pods", "", "status", "{\"status\":{\"phase\":\"Running\"},\"spec\":{\"nodeNam\":\"x\"}}", "[\".spec.nodeNam\"]"},
        {"pods", "", "log", "{\"anything\":1}", "[]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *obj = json_loads(cases[i].obj, 0, NULL);
        assert_non_null(obj);
        json_t *unknown = json_array();
        ck_openapi_subresource_unknown_fields(ck_resource_find(cases[i].group, "v1", cases[i].resource), cases[i].sub,
                                              obj, unknown);
        json_t *want = json_loads(cases[i].want, 0, NULL);
        if (!json_equal(want, unknown)) {
            char *got = json_dumps(unknown, JSON_COMPACT);
            fail_msg("case %zu: got %s want %s", i, got, cases[i].want);
        }
        json_decref(want);
        json_decref(unknown);
        json_decref(obj);
    }
    /* a body whose kind names a subresource kind is checked against that kind */
    json_t *obj = json_loads("{\"kind\":\"Scale\",\"spec\":{\"replicas\":1}}", 0, NULL);
    json_t *unknown = json_array();
    ck_openapi_unknown_fields(ck_resource_find("apps", "v1", "statefulsets"), obj, unknown);
    assert_int_equal(json_array_size(unknown), 0);
    json_decref(unknown);
    json_decref(obj);
}

/* With CK_OPENAPI_DUMP=DIR write the documents for the stub-server check (see test_discovery). */
static void test_dump(void **state)
{
    const char *dir = getenv("CK_OPENAPI_DUMP");
    if (!dir)
        return;
    char path[512];
    json_t *root = ck_openapi_v3_root();
    snprintf(path, sizeof path, "%s/openapi_v3.json", dir);
    assert_int_equal(json_dump_file(root, path, JSON_COMPACT), 0);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(root, "paths"), k, v) {
        json_t *doc = ck_openapi_v3_document(k);
        char name[256];
        snprintf(name, sizeof name, "%s", k);
        for (char *p = name; *p; p++)
            if (*p == '/')
                *p = '_';
        snprintf(path, sizeof path, "%s/openapi_v3_%s.json", dir, name);
        assert_int_equal(json_dump_file(doc, path, JSON_COMPACT), 0);
        json_decref(doc);
    }
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_explain_paths),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_unknown_none),
        cmocka_unit_test(test_types_valid),
        cmocka_unit_test(test_types_mismatch),
        cmocka_unit_test(test_unknown_typos),
        cmocka_unit_test(test_unknown_subresources),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for apiserver/table: every kind's cells align with its columns, pod STATUS/READY/
 * RESTARTS as upstream computes them, service ports and external IPs, human ages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <libgen.h>
#include <openssl/sha.h>
#include <unistd.h>

#include "apiserver/resources.h"
#include "apiserver/table.h"
#include "lib/util.h"

#define NOW 1764000000 /* 2025-11-24T16:00:00Z */

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s: %s", e.text, s);
    return j;
}

static const ck_resource *res(const char *group, const char *resource)
{
    const ck_resource *r = ck_resource_find(group, "v1", resource);
    assert_non_null(r);
    return r;
}

static void test_columns_match_cells(void **state)
{
    /* an empty object and a busy one for every served kind */
    json_t *busy = parse("{\"metadata\":{\"name\":\"x\",\"creationTimestamp\":\"2025-11-24T15:00:00Z\","
                         "\"labels\":{\"a\":\"b\"}},\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"a\":\"b\"}},"
                         "\"template\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}},"
                         "\"ports\":[{\"port\":80}]},\"status\":{\"replicas\":3}}");
    json_t *empty = json_object();
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        json_t *cols = ck_table_columns(r);
        assert_true(json_array_size(cols) >= 2);
        size_t k;
        json_t *c;
        json_array_foreach(cols, k, c) {
            assert_non_null(json_string_value(json_object_get(c, "name")));
            assert_non_null(json_string_value(json_object_get(c, "type")));
            assert_non_null(json_string_value(json_object_get(c, "format")));
            assert_non_null(json_string_value(json_object_get(c, "description")));
            assert_true(json_is_integer(json_object_get(c, "priority")));
        }
        json_t *objs[2] = {busy, empty};
        for (int o = 0; o < 2; o++) {
            json_t *cells = ck_table_cells(r, objs[o], NOW);
            if (json_array_size(cells) != json_array_size(cols))
                fail_msg("%s: %zu columns, %zu cells", r->kind, json_array_size(cols), json_array_size(cells));
            json_decref(cells);
        }
        json_decref(cols);
    }
    json_decref(busy);
    json_decref(empty);
}

static const char *cell(json_t *cells, size_t i)
{
    const char *s = json_string_value(json_array_get(cells, i));
    return s ? s : "(not a string)";
}

static void test_pod_status(void **state)
{
    static const struct {
        const char *pod;
        const char *ready, *status, *restarts;
    } cases[] = {
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Pending\"}}", "0/1", "Pending", "0"},
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]},\"status\":{\"phase\":\"Running\","
         "\"containerStatuses\":[{\"name\":\"a\",\"ready\":true,\"restartCount\":0,\"state\":{\"running\":{}}},"
         "{\"name\":\"b\",\"ready\":true,\"restartCount\":0,\"state\":{\"running\":{}}}]}}", "2/2", "Running", "0"},
        /* waiting reason wins */
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Pending\",\"containerStatuses\":"
         "[{\"name\":\"a\",\"ready\":false,\"restartCount\":0,\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\"}}}]}}",
         "0/1", "ImagePullBackOff", "0"},
        /* crash loop with restarts and a last termination 5 minutes ago */
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Running\",\"containerStatuses\":"
         "[{\"name\":\"a\",\"ready\":false,\"restartCount\":4,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}},"
         "\"lastState\":{\"terminated\":{\"exitCode\":1,\"finishedAt\":\"2025-11-24T15:55:00Z\"}}}]}}",
         "0/1", "CrashLoopBackOff", "4 (5m ago)"},
        /* completed */
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Succeeded\",\"containerStatuses\":"
         "[{\"name\":\"a\",\"ready\":false,\"restartCount\":0,\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}}]}}",
         "0/1", "Completed", "0"},
        /* terminated without reason: exit code / signal */
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Failed\",\"containerStatuses\":"
         "[{\"name\":\"a\",\"state\":{\"terminated\":{\"exitCode\":137}}}]}}", "0/1", "ExitCode:137", "0"},
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Failed\",\"containerStatuses\":"
         "[{\"name\":\"a\",\"state\":{\"terminated\":{\"exitCode\":0,\"signal\":9}}}]}}", "0/1", "Signal:9", "0"},
        /* init containers: second of two running */
        {"{\"spec\":{\"initContainers\":[{\"name\":\"i1\"},{\"name\":\"i2\"}],\"containers\":[{\"name\":\"a\"}]},"
         "\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":["
         "{\"name\":\"i1\",\"state\":{\"terminated\":{\"exitCode\":0}}},{\"name\":\"i2\",\"state\":{\"running\":{}}}],"
         "\"containerStatuses\":[{\"name\":\"a\",\"state\":{\"waiting\":{\"reason\":\"PodInitializing\"}}}]}}",
         "0/1", "Init:1/2", "0"},
        /* init container failing */
        {"{\"spec\":{\"initContainers\":[{\"name\":\"i1\"}],\"containers\":[{\"name\":\"a\"}]},"
         "\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":["
         "{\"name\":\"i1\",\"restartCount\":2,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}]}}",
         "0/1", "Init:CrashLoopBackOff", "2"},
        {"{\"spec\":{\"initContainers\":[{\"name\":\"i1\"}],\"containers\":[{\"name\":\"a\"}]},"
         "\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":["
         "{\"name\":\"i1\",\"state\":{\"terminated\":{\"exitCode\":3}}}]}}", "0/1", "Init:ExitCode:3", "0"},
        /* sidecar init container counts in READY */
        {"{\"spec\":{\"initContainers\":[{\"name\":\"s\",\"restartPolicy\":\"Always\"}],\"containers\":[{\"name\":\"a\"}]},"
         "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Initialized\",\"status\":\"True\"}],"
         "\"initContainerStatuses\":[{\"name\":\"s\",\"started\":true,\"ready\":true,\"state\":{\"running\":{}}}],"
         "\"containerStatuses\":[{\"name\":\"a\",\"ready\":true,\"state\":{\"running\":{}}}]}}", "2/2", "Running", "0"},
        /* terminating */
        {"{\"metadata\":{\"deletionTimestamp\":\"2025-11-24T15:59:00Z\"},\"spec\":{\"containers\":[{\"name\":\"a\"}]},"
         "\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"a\",\"ready\":true,\"state\":{\"running\":{}}}]}}",
         "1/1", "Terminating", "0"},
        /* status.reason (Evicted) */
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Failed\",\"reason\":\"Evicted\"}}",
         "0/1", "Evicted", "0"},
        /* scheduling gated */
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Pending\",\"conditions\":"
         "[{\"type\":\"PodScheduled\",\"status\":\"False\",\"reason\":\"SchedulingGated\"}]}}", "0/1", "SchedulingGated", "0"},
        /* Completed but one container still running and ready condition -> Running */
        {"{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]},\"status\":{\"phase\":\"Running\","
         "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],\"containerStatuses\":["
         "{\"name\":\"a\",\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}},"
         "{\"name\":\"b\",\"ready\":true,\"state\":{\"running\":{}}}]}}", "1/2", "Running", "0"},
    };
    const ck_resource *r = res("", "pods");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *pod = parse(cases[i].pod);
        json_t *cells = ck_table_cells(r, pod, NOW);
        if (strcmp(cell(cells, 1), cases[i].ready) || strcmp(cell(cells, 2), cases[i].status) ||
            strcmp(cell(cells, 3), cases[i].restarts))
            fail_msg("case %zu: got %s %s %s, want %s %s %s", i, cell(cells, 1), cell(cells, 2), cell(cells, 3),
                     cases[i].ready, cases[i].status, cases[i].restarts);
        json_decref(cells);
        json_decref(pod);
    }
    /* wide cells */
    json_t *pod = parse("{\"metadata\":{\"name\":\"p\",\"creationTimestamp\":\"2025-11-24T15:58:30Z\"},"
                        "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"a\"}],\"readinessGates\":[{\"conditionType\":\"x\"}]},"
                        "\"status\":{\"podIPs\":[{\"ip\":\"10.244.0.5\"}],\"conditions\":[{\"type\":\"x\",\"status\":\"True\"}]}}");
    json_t *cells = ck_table_cells(r, pod, NOW);
    assert_string_equal(cell(cells, 0), "p");
    assert_string_equal(cell(cells, 4), "90s");
    assert_string_equal(cell(cells, 5), "10.244.0.5");
    assert_string_equal(cell(cells, 6), "n1");
    assert_string_equal(cell(cells, 7), "<none>");
    assert_string_equal(cell(cells, 8), "1/1");
    json_decref(cells);
    json_decref(pod);
}

static void test_service(void **state)
{
    static const struct {
        const char *svc;
        const char *type, *cip, *ext, *ports, *sel;
    } cases[] = {
        {"{\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"10.96.0.10\",\"clusterIPs\":[\"10.96.0.10\"],"
         "\"ports\":[{\"port\":53,\"protocol\":\"UDP\"},{\"port\":53,\"protocol\":\"TCP\"}],\"selector\":{\"k8s-app\":\"dns\"}}}",
         "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "k8s-app=dns"},
        {"{\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.96.1.1\",\"ports\":[{\"port\":80,\"nodePort\":30080,"
         "\"protocol\":\"TCP\"}],\"selector\":{\"b\":\"2\",\"a\":\"1\"}}}",
         "NodePort", "10.96.1.1", "<none>", "80:30080/TCP", "a=1,b=2"},
        {"{\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.96.1.2\",\"ports\":[{\"port\":443,\"nodePort\":31443}]}}",
         "LoadBalancer", "10.96.1.2", "<pending>", "443:31443/TCP", "<none>"},
        {"{\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.96.1.2\",\"ports\":[{\"port\":443,\"nodePort\":31443}]},"
         "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"192.0.2.1\"}]}}}",
         "LoadBalancer", "10.96.1.2", "192.0.2.1", "443:31443/TCP", "<none>"},
        /* load balancer addresses sorted and deduplicated, then external IPs */
        {"{\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.96.1.2\",\"externalIPs\":[\"192.0.2.50\"],"
         "\"ports\":[{\"port\":443,\"nodePort\":31443}]},\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"192.0.2.9\"},"
         "{\"hostname\":\"lb.example\"},{\"ip\":\"192.0.2.1\"},{\"ip\":\"192.0.2.9\"}]}}}",
         "LoadBalancer", "10.96.1.2", "192.0.2.1,192.0.2.9,lb.example,192.0.2.50", "443:31443/TCP", "<none>"},
        {"{\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"example.com\"}}",
         "ExternalName", "<none>", "example.com", "<none>", "<none>"},
        {"{\"spec\":{\"clusterIP\":\"None\",\"ports\":[{\"port\":80}],\"externalIPs\":[\"192.0.2.9\"]}}",
         "ClusterIP", "None", "192.0.2.9", "80/TCP", "<none>"},
    };
    const ck_resource *r = res("", "services");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *svc = parse(cases[i].svc);
        json_t *cells = ck_table_cells(r, svc, NOW);
        if (strcmp(cell(cells, 1), cases[i].type) || strcmp(cell(cells, 2), cases[i].cip) ||
            strcmp(cell(cells, 3), cases[i].ext) || strcmp(cell(cells, 4), cases[i].ports) ||
            strcmp(cell(cells, 6), cases[i].sel))
            fail_msg("case %zu: got %s|%s|%s|%s|%s", i, cell(cells, 1), cell(cells, 2), cell(cells, 3),
                     cell(cells, 4), cell(cells, 6));
        json_decref(cells);
        json_decref(svc);
    }
}

static void test_age(void **state)
{
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {-5, "<invalid>"}, {-1, "0s"}, {0, "0s"}, {59, "59s"}, {119, "119s"}, {120, "2m"}, {150, "2m30s"},
        {599, "9m59s"}, {600, "10m"}, {3 * 3600 - 1, "179m"}, {3 * 3600, "3h"}, {3 * 3600 + 60, "3h1m"},
        {8 * 3600, "8h"}, {47 * 3600, "47h"}, {48 * 3600, "2d"}, {50 * 3600, "2d2h"}, {8 * 86400, "8d"},
        {400 * 86400, "400d"}, {730 * 86400, "2y"}, {735 * 86400, "2y5d"}, {9 * 365 * 86400, "9y"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        ck_table_age(cases[i].s, out);
        if (strcmp(out, cases[i].want))
            fail_msg("%lld: got %s want %s", (long long)cases[i].s, out, cases[i].want);
    }
}

static void test_other_kinds(void **state)
{
    /* deployment READY and wide selector */
    json_t *d = parse("{\"metadata\":{\"name\":\"web\"},\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"},"
                      "\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]},"
                      "{\"key\":\"canary\",\"operator\":\"DoesNotExist\"}]},\"template\":{\"spec\":{\"containers\":"
                      "[{\"name\":\"nginx\",\"image\":\"nginx:1.25\"},{\"name\":\"side\",\"image\":\"busybox\"}]}}},"
                      "\"status\":{\"readyReplicas\":2,\"updatedReplicas\":3,\"availableReplicas\":2}}");
    json_t *c = ck_table_cells(res("apps", "deployments"), d, NOW);
    assert_string_equal(cell(c, 1), "2/3");
    assert_int_equal(json_integer_value(json_array_get(c, 2)), 3);
    assert_string_equal(cell(c, 5), "nginx,side");
    assert_string_equal(cell(c, 6), "nginx:1.25,busybox");
    assert_string_equal(cell(c, 7), "app=web,!canary,tier in (a,b)");
    json_decref(c);
    json_decref(d);
    /* empty selectors: "" for deployments, <none> where upstream uses FormatLabelSelector */
    d = parse("{\"spec\":{\"selector\":{}}}");
    c = ck_table_cells(res("apps", "deployments"), d, NOW);
    assert_string_equal(cell(c, 7), "");
    json_decref(c);
    c = ck_table_cells(res("apps", "replicasets"), d, NOW);
    assert_string_equal(cell(c, 7), "<none>");
    json_decref(c);
    c = ck_table_cells(res("", "replicationcontrollers"), d, NOW);
    assert_string_equal(cell(c, 7), "<none>");
    json_decref(c);
    json_decref(d);

    /* rolebinding subjects */
    json_t *rb = parse("{\"roleRef\":{\"kind\":\"ClusterRole\",\"name\":\"view\"},\"subjects\":[{\"kind\":\"User\",\"name\":\"a\"},"
                       "{\"kind\":\"User\",\"name\":\"b\"},{\"kind\":\"ServiceAccount\",\"namespace\":\"ns\",\"name\":\"sa\"}]}");
    c = ck_table_cells(res("rbac.authorization.k8s.io", "rolebindings"), rb, NOW);
    assert_string_equal(cell(c, 1), "ClusterRole/view");
    assert_string_equal(cell(c, 3), "a, b");
    assert_string_equal(cell(c, 4), "");
    assert_string_equal(cell(c, 5), "ns/sa");
    json_decref(c);
    json_decref(rb);

    /* job 1.30 columns */
    json_t *j = parse("{\"metadata\":{\"name\":\"pi\"},\"spec\":{\"completions\":1},\"status\":{\"succeeded\":1,"
                      "\"startTime\":\"2025-11-24T15:00:00Z\",\"completionTime\":\"2025-11-24T15:00:42Z\","
                      "\"conditions\":[{\"type\":\"Complete\",\"status\":\"True\"}]}}");
    c = ck_table_cells(res("batch", "jobs"), j, NOW);
    assert_string_equal(cell(c, 1), "Complete");
    assert_string_equal(cell(c, 2), "1/1");
    assert_string_equal(cell(c, 3), "42s");
    json_decref(c);
    json_decref(j);
    j = parse("{\"metadata\":{\"name\":\"pi\"},\"spec\":{\"parallelism\":2},\"status\":{}}");
    c = ck_table_cells(res("batch", "jobs"), j, NOW);
    assert_string_equal(cell(c, 1), "Running");
    assert_string_equal(cell(c, 2), "0/1 of 2");
    assert_string_equal(cell(c, 3), "");
    json_decref(c);
    json_decref(j);

    /* node status and roles */
    json_t *n = parse("{\"metadata\":{\"name\":\"n1\",\"labels\":{\"node-role.kubernetes.io/control-plane\":\"\","
                      "\"node-role.kubernetes.io/master\":\"\"}},\"spec\":{\"unschedulable\":true},\"status\":{"
                      "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],\"addresses\":[{\"type\":\"InternalIP\","
                      "\"address\":\"10.0.0.1\"}],\"nodeInfo\":{\"kubeletVersion\":\"v1.30.0\"}}}");
    c = ck_table_cells(res("", "nodes"), n, NOW);
    assert_string_equal(cell(c, 1), "Ready,SchedulingDisabled");
    assert_string_equal(cell(c, 2), "control-plane,master");
    assert_string_equal(cell(c, 4), "v1.30.0");
    assert_string_equal(cell(c, 5), "10.0.0.1");
    assert_string_equal(cell(c, 6), "<none>");
    assert_string_equal(cell(c, 7), "<unknown>");
    json_decref(c);
    json_decref(n);

    /* event object and count */
    json_t *e = parse("{\"metadata\":{\"name\":\"p.1\"},\"involvedObject\":{\"kind\":\"Pod\",\"name\":\"p\"},"
                      "\"reason\":\"Pulled\",\"type\":\"Normal\",\"message\":\" pulled \\n\",\"lastTimestamp\":"
                      "\"2025-11-24T15:59:00Z\",\"firstTimestamp\":\"2025-11-24T15:50:00Z\",\"count\":3,"
                      "\"source\":{\"component\":\"kubelet\",\"host\":\"n1\"}}");
    c = ck_table_cells(res("", "events"), e, NOW);
    assert_string_equal(cell(c, 0), "60s");
    assert_string_equal(cell(c, 3), "pod/p");
    assert_string_equal(cell(c, 5), "kubelet, n1");
    assert_string_equal(cell(c, 6), "pulled");
    assert_string_equal(cell(c, 7), "10m");
    assert_int_equal(json_integer_value(json_array_get(c, 8)), 3);
    json_decref(c);
    json_decref(e);

    /* endpoints: 3 shown then "+ N more..." */
    json_t *ep = parse("{\"subsets\":[{\"addresses\":[{\"ip\":\"10.0.0.1\"},{\"ip\":\"10.0.0.2\"},{\"ip\":\"10.0.0.3\"},"
                       "{\"ip\":\"10.0.0.4\"}],\"ports\":[{\"port\":80}]}]}");
    c = ck_table_cells(res("", "endpoints"), ep, NOW);
    assert_string_equal(cell(c, 1), "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...");
    json_decref(c);
    json_decref(ep);

    /* configmap data counts data + binaryData; secret type */
    json_t *cm = parse("{\"data\":{\"a\":\"1\",\"b\":\"2\"},\"binaryData\":{\"c\":\"AA==\"}}");
    c = ck_table_cells(res("", "configmaps"), cm, NOW);
    assert_int_equal(json_integer_value(json_array_get(c, 1)), 3);
    json_decref(c);
    json_decref(cm);

    /* resource quota request/limit split */
    json_t *q = parse("{\"spec\":{\"hard\":{\"pods\":\"10\",\"limits.cpu\":\"2\",\"requests.cpu\":\"1\"}},"
                      "\"status\":{\"hard\":{\"pods\":\"10\",\"limits.cpu\":\"2\",\"requests.cpu\":\"1\"},"
                      "\"used\":{\"pods\":\"1\",\"limits.cpu\":\"500m\"}}}");
    c = ck_table_cells(res("", "resourcequotas"), q, NOW);
    assert_string_equal(cell(c, 1), "pods: 1/10, requests.cpu: 0/1");
    assert_string_equal(cell(c, 2), "limits.cpu: 500m/2");
    json_decref(c);
    json_decref(q);

    /* controller revision owner */
    json_t *cr = parse("{\"metadata\":{\"name\":\"r\",\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\","
                       "\"name\":\"ds\",\"controller\":true}]},\"revision\":2}");
    c = ck_table_cells(res("apps", "controllerrevisions"), cr, NOW);
    assert_string_equal(cell(c, 1), "daemonset.apps/ds");
    json_decref(c);
    json_decref(cr);

    /* roles use the default table */
    json_t *cols = ck_table_columns(res("rbac.authorization.k8s.io", "roles"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(cols, 1), "name")), "Created At");
    json_decref(cols);
}

static void test_accept_and_table(void **state)
{
    static const struct {
        const char *accept, *want;
    } cases[] = {
        {"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
         "meta.k8s.io/v1"},
        {"application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", "meta.k8s.io/v1beta1"},
        {"application/json; as=Table; v=v1; g=meta.k8s.io", "meta.k8s.io/v1"},
        {"application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io",
         "meta.k8s.io/v1"},
        {"application/json", NULL},
        {"application/json,application/json;as=Table;v=v1;g=meta.k8s.io", NULL},
        {"application/yaml", NULL},
        {"", NULL},
        {NULL, NULL},
        {"application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = ck_table_accept(cases[i].accept);
        if ((got == NULL) != (cases[i].want == NULL) || (got && strcmp(got, cases[i].want)))
            fail_msg("case %zu: got %s want %s", i, got ? got : "NULL", cases[i].want ? cases[i].want : "NULL");
    }

    json_t *objs = parse("[{\"metadata\":{\"name\":\"a\",\"namespace\":\"default\",\"labels\":{\"x\":\"y\"}}},"
                         "{\"metadata\":{\"name\":\"b\",\"namespace\":\"kube-system\"}}]");
    json_t *t = ck_table_new(res("", "configmaps"), objs, NULL, "42", "tok", NOW);
    assert_string_equal(json_string_value(json_object_get(t, "kind")), "Table");
    assert_string_equal(json_string_value(json_object_get(t, "apiVersion")), "meta.k8s.io/v1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(t, "metadata"), "resourceVersion")), "42");
    assert_string_equal(json_string_value(json_object_get(json_object_get(t, "metadata"), "continue")), "tok");
    json_t *rows = json_object_get(t, "rows");
    assert_int_equal(json_array_size(rows), 2);
    json_t *row = json_array_get(rows, 1);
    json_t *obj = json_object_get(row, "object");
    assert_string_equal(json_string_value(json_object_get(obj, "kind")), "PartialObjectMetadata");
    assert_string_equal(json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace")), "kube-system");
    assert_int_equal(json_array_size(json_object_get(row, "cells")), json_array_size(json_object_get(t, "columnDefinitions")));
    json_decref(t);
    json_decref(objs);
}

static char *data_path(const char *name)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    return xasprintf("%s/tests/data/table/%s", dirname(dirname(dirname(exe))), name);
}

/* Every served kind's Table (columns and the cells of every fixture in tests/data/table/
 * objects.json, printed as on the wire) against a digest kept in golden.json, so a change to
 * any printer's output shows up by kind.  CK_TABLE_GOLDEN_WRITE=1 rewrites the digests (only
 * after checking the new output is right). */
static void test_golden(void **state)
{
    char *op = data_path("objects.json"), *gp = data_path("golden.json");
    json_error_t je;
    json_t *objs = json_load_file(op, 0, &je);
    if (!objs)
        fail_msg("%s: %s", op, je.text);
    bool write = getenv("CK_TABLE_GOLDEN_WRITE") != NULL;
    json_t *golden = write ? json_object() : json_load_file(gp, 0, &je);
    if (!golden)
        fail_msg("%s: %s", gp, je.text);
    size_t checked = 0;
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        json_t *t = ck_table_new(r, objs, NULL, "42", "tok", NOW);
        char *text = json_dumps(t, JSON_COMPACT);
        json_decref(t);
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)text, strlen(text), md);
        free(text);
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        for (size_t k = 0; k < SHA256_DIGEST_LENGTH; k++)
            snprintf(hex + 2 * k, 3, "%02x", md[k]);
        char *key = xasprintf("%s/%s/%s", r->group, r->version, r->resource);
        if (write) {
            json_object_set_new(golden, key, json_string(hex));
        } else {
            const char *want = json_string_value(json_object_get(golden, key));
            if (!want || strcmp(want, hex))
                fail_msg("%s: table output changed (digest %s, golden %s)", key, hex, want ? want : "none");
            checked++;
        }
        free(key);
    }
    if (write)
        assert_int_equal(json_dump_file(golden, gp, JSON_INDENT(1) | JSON_SORT_KEYS), 0);
    else
        assert_int_equal(checked, json_object_size(golden));
    json_decref(golden);
    json_decref(objs);
    free(op);
    free(gp);
}

/* With CK_TABLE_DUMP=DIR write Tables the stub serves to the real kubectl (tests/e2e). */
static void test_dump(void **state)
{
    const char *dir = getenv("CK_TABLE_DUMP");
    if (!dir)
        return;
    int64_t now = ck_wall_ns() / 1000000000;
    char created[32], started[32];
    ck_rfc3339(now - 300, created);
    ck_rfc3339(now - 120, started);
    char *pods = xasprintf(
        "[{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\",\"creationTimestamp\":\"%s\",\"labels\":{\"app\":\"web\"}},"
        "\"spec\":{\"nodeName\":\"node-1\",\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Running\","
        "\"podIPs\":[{\"ip\":\"10.244.0.5\"}],\"containerStatuses\":[{\"name\":\"a\",\"ready\":true,\"restartCount\":2,"
        "\"state\":{\"running\":{}},\"lastState\":{\"terminated\":{\"exitCode\":1,\"finishedAt\":\"%s\"}}}]}},"
        "{\"metadata\":{\"name\":\"job-x\",\"namespace\":\"default\",\"creationTimestamp\":\"%s\"},"
        "\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Succeeded\",\"containerStatuses\":"
        "[{\"name\":\"a\",\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}}]}}]",
        created, started, created);
    char *svcs = xasprintf(
        "[{\"metadata\":{\"name\":\"web\",\"namespace\":\"default\",\"creationTimestamp\":\"%s\"},\"spec\":"
        "{\"type\":\"NodePort\",\"clusterIP\":\"10.96.0.20\",\"ports\":[{\"port\":80,\"nodePort\":30080,\"protocol\":\"TCP\"}],"
        "\"selector\":{\"app\":\"web\"}}}]", created);
    const struct {
        const char *file, *resource;
        char *items;
    } dumps[] = {{"api_v1_namespaces_default_pods", "pods", pods}, {"api_v1_namespaces_default_services", "services", svcs}};
    for (size_t i = 0; i < sizeof dumps / sizeof dumps[0]; i++) {
        json_t *items = parse(dumps[i].items);
        json_t *t = ck_table_new(res("", dumps[i].resource), items, NULL, "7", NULL, now);
        char path[512];
        snprintf(path, sizeof path, "%s/%s.table.json", dir, dumps[i].file);
        assert_int_equal(json_dump_file(t, path, JSON_COMPACT), 0);
        json_decref(t);
        json_decref(items);
        free(dumps[i].items);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_match_cells),
        cmocka_unit_test(test_pod_status),
        cmocka_unit_test(test_service),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_other_kinds),
        cmocka_unit_test(test_accept_and_table),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

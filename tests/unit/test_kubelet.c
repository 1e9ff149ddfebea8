/* Unit tests for the kubelet's pure parts: image references, CRI log reading (tail, since,
 * timestamps, partial lines, limitBytes), OCI config generation (argv, user, caps, resources,
 * mounts), the command runner, and image import of a docker-archive (no root needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "kubelet/kubelet.h"
#include "lib/util.h"

static void test_normalize(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        {"busybox", "docker.io/library/busybox:latest"},
        {"busybox:1.36", "docker.io/library/busybox:1.36"},
        {"user/app", "docker.io/user/app:latest"},
        {"localhost:5000/app", "localhost:5000/app:latest"},
        {"localhost/app:v1", "localhost/app:v1"},
        {"ckube.test/busybox:1", "ckube.test/busybox:1"},
        {"reg.io/a/b@sha256:abcd", "reg.io/a/b@sha256:abcd"},
        {"127.0.0.1:5000/x/y:z", "127.0.0.1:5000/x/y:z"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *n = ck_image_normalize(cases[i].in);
        assert_string_equal(n, cases[i].out);
        free(n);
    }
}

typedef struct sink {
    ck_buf b;
} sink;

static int sink_write(void *ctx, const char *d, size_t n)
{
    sink *s = ctx;
    ck_buf_add(&s->b, d, n);
    return 0;
}

static char *write_log(const char *text)
{
    char tmpl[] = "/tmp/ck-kubelet-log-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return xstrdup(tmpl);
}

static const char LOG[] =
    "2026-11-25T10:00:00.000000001Z stdout F one\n"
    "2026-11-25T10:00:01.000000000Z stderr F two\n"
    "2026-11-25T10:00:02.000000000Z stdout P thr\n"
    "2026-11-25T10:00:02.500000000Z stdout F ee\n"
    "2026-11-25T10:00:03.000000000Z stdout F four\n";

static void test_logs_read(void **state)
{
    char *path = write_log(LOG);
    static const struct {
        long tail;
        int64_t since;
        bool ts;
        long limit;
        const char *want;
    } cases[] = {
        {-1, 0, false, 0, "one\ntwo\nthree\nfour\n"},
        {2, 0, false, 0, "three\nfour\n"},
        {1, 0, false, 0, "four\n"},
        {0, 0, false, 0, ""},
        {10, 0, false, 0, "one\ntwo\nthree\nfour\n"},
        {-1, 1795600801000000000LL, false, 0, "two\nthree\nfour\n"},
        {1, 0, true, 0, "2026-11-25T10:00:03.000000000Z four\n"},
        {-1, 0, false, 6, "one\ntw"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        sink s;
        ck_buf_init(&s.b, 0);
        ck_log_opts o = {.tail_lines = cases[i].tail, .since_ns = cases[i].since,
                         .timestamps = cases[i].ts, .limit_bytes = cases[i].limit};
        assert_int_equal(ck_logs_read(path, &o, sink_write, &s, NULL, NULL), 0);
        assert_string_equal(s.b.data ? s.b.data : "", cases[i].want);
        ck_buf_free(&s.b);
    }
    ck_error *err = NULL;
    ck_log_opts o = {.tail_lines = -1};
    assert_int_equal(ck_logs_read("/nonexistent/x.log", &o, sink_write, NULL, NULL, &err), -1);
    assert_int_equal(err->code, CK_E_NOT_FOUND);
    ck_error_free(err);
    unlink(path);
    free(path);
}

static void test_cri_time(void **state)
{
    char t[40];
    ck_cri_format_time(1795600800000000001LL, t);
    assert_string_equal(t, "2026-11-25T10:00:00.000000001Z");
}

static json_t *oci_for(const char *container_json, const char *image_cfg)
{
    json_t *pod = json_loads("{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"uid\":\"u\"},"
                             "\"spec\":{\"securityContext\":{\"runAsUser\":1000}}}", 0, NULL);
    json_t *c = json_loads(container_json, 0, NULL);
    ck_image img = {.config = json_loads(image_cfg, 0, NULL)};
    json_t *env = json_pack("[s]", "A=1");
    json_t *mounts = json_array();
    ck_oci_input in = {.pod = pod, .container = c, .image = &img, .rootfs = "/r", .netns = "/n",
                       .cgroup_path = "/ckube/podu/x", .pod_dir = "/pd", .env = env,
                       .mounts = mounts};
    ck_error *err = NULL;
    json_t *cfg = ck_oci_config(&in, &err);
    if (!cfg) {
        assert_non_null(err);
        ck_error_free(err);
    }
    json_decref(pod);
    json_decref(c);
    json_decref(img.config);
    json_decref(env);
    json_decref(mounts);
    return cfg;
}

static char *args_of(json_t *cfg)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(json_object_get(cfg, "process"), "args"), i, a)
        ck_buf_printf(&b, "%s%s", i ? " " : "", json_string_value(a));
    return ck_buf_steal(&b);
}

static void test_oci_args(void **state)
{
    static const struct { const char *ctr, *img, *want; } cases[] = {
        {"{\"name\":\"c\"}", "{\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"a\"]}", "/ep a"},
        {"{\"name\":\"c\",\"args\":[\"x\"]}", "{\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"a\"]}", "/ep x"},
        {"{\"name\":\"c\",\"command\":[\"/c\"]}", "{\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"a\"]}", "/c"},
        {"{\"name\":\"c\",\"command\":[\"/c\"],\"args\":[\"y\"]}", "{\"Cmd\":[\"a\"]}", "/c y"},
        {"{\"name\":\"c\"}", "{\"Cmd\":[\"/bin/sh\"]}", "/bin/sh"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *cfg = oci_for(cases[i].ctr, cases[i].img);
        assert_non_null(cfg);
        char *a = args_of(cfg);
        assert_string_equal(a, cases[i].want);
        free(a);
        json_decref(cfg);
    }
    /* nothing to run: an error, not a config */
    assert_null(oci_for("{\"name\":\"c\"}", "{}"));
}

static void test_oci_security_resources(void **state)
{
    json_t *cfg = oci_for("{\"name\":\"c\",\"command\":[\"x\"],\"workingDir\":\"/w\","
                          "\"securityContext\":{\"runAsUser\":7,\"readOnlyRootFilesystem\":true,"
                          "\"capabilities\":{\"add\":[\"NET_ADMIN\"],\"drop\":[\"KILL\"]}},"
                          "\"resources\":{\"limits\":{\"memory\":\"64Mi\",\"cpu\":\"500m\"}}}",
                          "{\"User\":\"3:4\",\"WorkingDir\":\"/img\"}");
    assert_non_null(cfg);
    json_t *p = json_object_get(cfg, "process");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "gid")), 4);
    assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/w");
    assert_true(json_is_true(json_object_get(json_object_get(cfg, "root"), "readonly")));
    char *caps = json_dumps(json_object_get(json_object_get(p, "capabilities"), "bounding"), 0);
    assert_non_null(strstr(caps, "CAP_NET_ADMIN"));
    assert_null(strstr(caps, "CAP_KILL"));
    assert_non_null(strstr(caps, "CAP_CHOWN"));
    free(caps);
    json_t *res = json_object_get(json_object_get(cfg, "linux"), "resources");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")), 64 * 1024 * 1024);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "quota")), 50000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "shares")), 512);
    assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "linux"), "cgroupsPath")),
                        "/ckube/podu/x");
    /* the network namespace is the pod's, by path */
    char *ns = json_dumps(json_object_get(json_object_get(cfg, "linux"), "namespaces"), 0);
    assert_non_null(strstr(ns, "\"path\": \"/n\""));
    free(ns);
    json_decref(cfg);
    /* pod-level runAsUser when the container has none; privileged gets every capability */
    cfg = oci_for("{\"name\":\"c\",\"command\":[\"x\"],\"securityContext\":{\"privileged\":true}}", "{}");
    p = json_object_get(cfg, "process");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 1000);
    caps = json_dumps(json_object_get(json_object_get(p, "capabilities"), "bounding"), 0);
    assert_non_null(strstr(caps, "CAP_SYS_ADMIN"));
    free(caps);
    assert_null(json_object_get(json_object_get(cfg, "linux"), "maskedPaths"));
    json_decref(cfg);
}

/* QoS class as upstream's GetPodQOS; the pod cgroup's settings as ResourceConfigForPod */
#define C(res) "{\"name\":\"c\",\"resources\":" res "}"
static void test_pod_qos_resources(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *qos;
        long long shares, quota, mem;
    } cases[] = {
        {"{\"containers\":[{\"name\":\"c\"}]}", "BestEffort", 2, 0, 0},
        {"{\"containers\":[" C("{\"requests\":{\"ephemeral-storage\":\"1Gi\"}}") "]}", "BestEffort", 2, 0, 0},
        {"{\"containers\":[" C("{\"requests\":{\"cpu\":\"0\"}}") "]}", "BestEffort", 2, 0, 0},
        {"{\"containers\":[" C("{\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"},"
                                 "\"requests\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"}}") "]}",
         "Guaranteed", 512, 50000, 64 << 20},
        /* requests default to limits; "1" and "1000m" are the same quantity */
        {"{\"containers\":[" C("{\"limits\":{\"cpu\":\"1\",\"memory\":\"1Gi\"},"
                                 "\"requests\":{\"cpu\":\"1000m\"}}") "]}",
         "Guaranteed", 1024, 100000, 1LL << 30},
        {"{\"containers\":[" C("{\"limits\":{\"cpu\":\"1\"}}") "]}", "Burstable", 1024, 100000, 0},
        {"{\"containers\":[" C("{\"requests\":{\"memory\":\"1Gi\"}}") "]}", "Burstable", 2, 0, 0},
        {"{\"containers\":[" C("{\"limits\":{\"cpu\":\"200m\",\"memory\":\"64Mi\"},"
                                 "\"requests\":{\"cpu\":\"100m\"}}") "]}",
         "Burstable", 102, 20000, 64 << 20},
        /* one container without limits: no pod quota or memory limit; shares still summed */
        {"{\"containers\":[" C("{\"limits\":{\"cpu\":\"1\",\"memory\":\"64Mi\"}}") ","
                              "{\"name\":\"d\",\"resources\":{\"requests\":{\"cpu\":\"250m\"}}}]}",
         "Burstable", 1280, 0, 0},
        /* two Guaranteed containers: limits summed */
        {"{\"containers\":[" C("{\"limits\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"}}") ","
                              "{\"name\":\"d\",\"resources\":{\"limits\":{\"cpu\":\"200m\",\"memory\":\"32Mi\"}}}]}",
         "Guaranteed", 307, 30000, 64 << 20},
        /* an init container without limits makes the pod Burstable; a bigger init request wins */
        {"{\"initContainers\":[{\"name\":\"i\",\"resources\":{\"requests\":{\"cpu\":\"2\"}}}],"
         "\"containers\":[" C("{\"limits\":{\"cpu\":\"1\",\"memory\":\"64Mi\"}}") "]}",
         "Burstable", 2048, 0, 0},
        /* tiny quota is raised to the kernel minimum */
        {"{\"containers\":[" C("{\"limits\":{\"cpu\":\"1m\",\"memory\":\"8Mi\"}}") "]}",
         "Guaranteed", 2, 1000, 8 << 20},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t je;
        json_t *spec = json_loads(cases[i].spec, 0, &je);
        if (!spec)
            fail_msg("case %zu: %s", i, je.text);
        ck_pod_res res;
        ck_pod_resources(spec, &res);
        if (strcmp(ck_pod_qos(spec), cases[i].qos) || strcmp(res.qos, cases[i].qos) ||
            res.cpu_shares != cases[i].shares || res.cpu_quota != cases[i].quota ||
            res.memory_limit != cases[i].mem)
            fail_msg("case %zu: got %s shares %lld quota %lld mem %lld", i, res.qos,
                     (long long)res.cpu_shares, (long long)res.cpu_quota, (long long)res.memory_limit);
        json_decref(spec);
    }
    char *p = ck_pod_cgroup("u1", "Guaranteed");
    assert_string_equal(p, "/ckube/kubepods/podu1");
    free(p);
    p = ck_pod_cgroup("u1", "Burstable");
    assert_string_equal(p, "/ckube/kubepods/burstable/podu1");
    free(p);
    p = ck_pod_cgroup("u1", "BestEffort");
    assert_string_equal(p, "/ckube/kubepods/besteffort/podu1");
    free(p);
}
#undef C

/* hostPorts -> CNI portMappings: only ports with a hostPort, protocol lower-cased, hostIP kept */
static void test_port_mappings(void **state)
{
    (void)state;
    static const struct { const char *spec, *want; } cases[] = {
        {"{\"containers\":[{\"name\":\"c\"}]}", "[]"},
        {"{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":80}]}]}", "[]"},
        {"{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":80,\"hostPort\":8080}]}]}",
         "[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\",\"hostIP\":\"\"}]"},
        {"{\"containers\":[{\"name\":\"a\",\"ports\":[{\"containerPort\":53,\"hostPort\":5353,\"protocol\":\"UDP\",\"hostIP\":\"127.0.0.1\"}]},"
         "{\"name\":\"b\",\"ports\":[{\"containerPort\":9,\"hostPort\":70000},{\"containerPort\":7,\"hostPort\":7007,\"protocol\":\"SCTP\"}]}]}",
         "[{\"hostPort\":5353,\"containerPort\":53,\"protocol\":\"udp\",\"hostIP\":\"127.0.0.1\"},"
         "{\"hostPort\":7007,\"containerPort\":7,\"protocol\":\"sctp\",\"hostIP\":\"\"}]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *spec = json_loads(cases[i].spec, 0, NULL);
        json_t *want = json_loads(cases[i].want, 0, NULL);
        assert_non_null(spec);
        assert_non_null(want);
        json_t *got = ck_sandbox_port_mappings(spec);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_COMPACT);
            fail_msg("case %zu: got %s", i, g);
        }
        json_decref(got);
        json_decref(want);
        json_decref(spec);
    }
}

/* imagePullSecrets: which auths entry answers for which registry host */
/* the kubelet's admission: pods count, cpu and memory requests, then hostPorts (upstream's
 * reasons and messages) */
static void test_admit(void **state)
{
    (void)state;
#define CP(port, extra) "{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":80,\"hostPort\":" #port extra "}]}]}"
#define CR(cpu, mem) "{\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":\"" cpu "\",\"memory\":\"" mem "\"}}}]}"
    static const struct {
        const char *spec, *others, *reason, *msg;
        int64_t pods;
    } cases[] = {
        {CP(8080, ""), "[]", NULL, NULL, 110},
        {CP(8080, ""), "[" CP(8081, "") "]", NULL, NULL, 110},
        {CP(8080, ""), "[" CP(8080, "") "]", "NodePorts",
         "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports", 110},
        /* another protocol is another port */
        {CP(8080, ",\"protocol\":\"UDP\""), "[" CP(8080, "") "]", NULL, NULL, 110},
        /* two specific host IPs do not collide; 0.0.0.0 (or none) collides with any */
        {CP(8080, ",\"hostIP\":\"127.0.0.1\""), "[" CP(8080, ",\"hostIP\":\"127.0.0.2\"") "]", NULL, NULL, 110},
        {CP(8080, ",\"hostIP\":\"127.0.0.1\""), "[" CP(8080, "") "]", "NodePorts", NULL, 110},
        {CP(8080, ""), "[" CP(8080, ",\"hostIP\":\"10.0.0.1\"") "]", "NodePorts", NULL, 110},
        {CP(8080, ",\"protocol\":\"TCP\",\"hostIP\":\"0.0.0.0\""), "[" CP(8080, "") "]", "NodePorts", NULL, 110},
        /* pods, then cpu, then memory */
        {CR("100m", "1Mi"), "[" CR("1", "1Mi") "]", "OutOfpods",
         "Node didn't have enough resource: pods, requested: 1, used: 1, capacity: 1", 1},
        {CR("1500m", "1Mi"), "[" CR("1", "1Mi") "]", "OutOfcpu",
         "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000", 110},
        {CR("1", "1Mi"), "[" CR("1", "1Mi") "]", NULL, NULL, 110},
        {CR("100m", "3Gi"), "[" CR("100m", "2Gi") "]", "OutOfmemory",
         "Node didn't have enough resource: memory, requested: 3221225472, used: 2147483648, capacity: 4294967296", 110},
        /* no request: nothing to run out of */
        {"{\"containers\":[{\"name\":\"c\"}]}", "[" CR("2", "4Gi") "]", NULL, NULL, 110},
        /* the ports of an init container count too */
        {"{\"initContainers\":[{\"name\":\"i\",\"ports\":[{\"containerPort\":1,\"hostPort\":9000}]}],\"containers\":[{\"name\":\"c\"}]}",
         "[" CP(9000, "") "]", "NodePorts", NULL, 110},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *spec = json_loads(cases[i].spec, 0, NULL), *others = json_loads(cases[i].others, 0, NULL);
        assert_non_null(spec);
        assert_non_null(others);
        ck_node_alloc alloc = {.cpu_milli = 2000, .memory = 4LL << 30, .pods = cases[i].pods};
        char *reason = NULL, *msg = NULL;
        int rc = ck_kubelet_admit(spec, others, &alloc, &reason, &msg);
        if (!cases[i].reason) {
            if (rc != 0)
                fail_msg("case %zu: rejected: %s %s", i, reason, msg);
        } else {
            if (rc != -1 || strcmp(reason, cases[i].reason))
                fail_msg("case %zu: got rc %d reason %s", i, rc, reason ? reason : "(none)");
            if (cases[i].msg && strcmp(msg, cases[i].msg))
                fail_msg("case %zu: message %s", i, msg);
        }
        free(reason);
        free(msg);
        json_decref(spec);
        json_decref(others);
    }
#undef CP
#undef CR
}

static void test_registry_creds(void **state)
{
    (void)state;
    /* auth = base64("bob:pw2") */
    json_t *auths = json_loads(
        "{\"auths\":{\"127.0.0.1:5000\":{\"username\":\"alice\",\"password\":\"pw1\"},"
        "\"https://reg.example.com/v1/\":{\"auth\":\"Ym9iOnB3Mg==\"},"
        "\"*.corp.example\":{\"username\":\"w\",\"password\":\"x:y\"},"
        "\"https://index.docker.io/v1/\":{\"username\":\"hub\",\"password\":\"h\"},"
        "\"bad.example\":{\"auth\":\"bm9jb2xvbg==\"}}}", 0, NULL);
    assert_non_null(auths);
    static const struct { const char *host, *user, *pass; } cases[] = {
        {"127.0.0.1:5000", "alice", "pw1"},
        {"127.0.0.1:5001", NULL, NULL},          /* the port is part of the key */
        {"127.0.0.1", NULL, NULL},
        {"reg.example.com", "bob", "pw2"},        /* scheme and path ignored, auth decoded */
        {"a.corp.example", "w", "x:y"},           /* wildcard: one label; password keeps ':' */
        {"a.b.corp.example", NULL, NULL},
        {"corp.example", NULL, NULL},
        {"docker.io", "hub", "h"},                /* docker.io aliases index.docker.io */
        {"bad.example", NULL, NULL},              /* auth without ':' is skipped */
        {"other.example", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *u = NULL, *p = NULL;
        int rc = ck_registry_creds(auths, cases[i].host, &u, &p);
        if (!cases[i].user) {
            assert_int_equal(rc, -1);
            assert_null(u);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(u, cases[i].user);
        assert_string_equal(p, cases[i].pass);
        free(u);
        free(p);
    }
    char *u = NULL, *p = NULL;
    assert_int_equal(ck_registry_creds(NULL, "127.0.0.1:5000", &u, &p), -1);
    json_decref(auths);
}

static void test_run_cmd(void **state)
{
    char *out = NULL;
    char *a1[] = {"sh", "-c", "cat; echo err >&2; exit 3", NULL};
    assert_int_equal(ck_run_cmd(a1, "in\n", NULL, 5000, &out, NULL), 3);
    assert_string_equal(out, "in\nerr\n");
    free(out);
    ck_error *err = NULL;
    char *a2[] = {"sleep", "5", NULL};
    int64_t t0 = ck_now_ns();
    assert_int_equal(ck_run_cmd(a2, NULL, NULL, 200, NULL, &err), -1);
    assert_int_equal(err->code, CK_E_TIMEOUT);
    assert_true(ck_now_ns() - t0 < 3000000000LL);
    ck_error_free(err);
    char *a3[] = {"/no/such/cmd", NULL};
    assert_int_equal(ck_run_cmd(a3, NULL, NULL, 5000, NULL, NULL), 127);
}

/* A docker-archive (docker save) with one layer imports, and a bad file is refused. */
static void test_import_docker_archive(void **state)
{
    char dir[] = "/tmp/ck-kubelet-img-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *script = xasprintf(
        "set -e; cd %s; mkdir -p src/layer/bin; echo hi > src/layer/bin/hello; "
        "tar -C src/layer -cf src/layer.tar .; "
        "echo '{\"config\":{\"Cmd\":[\"/bin/hello\"],\"Env\":[\"X=1\"]},\"rootfs\":{\"type\":\"layers\"}}' > src/cfg.json; "
        "echo '[{\"Config\":\"cfg.json\",\"RepoTags\":[\"example.org/t:1\"],\"Layers\":[\"layer.tar\"]}]' > src/manifest.json; "
        "rm -rf src/layer; tar -C src -cf archive.tar .", dir);
    char *argv[] = {"sh", "-c", script, NULL};
    assert_int_equal(ck_run_cmd(argv, NULL, NULL, 10000, NULL, NULL), 0);
    free(script);
    char *root = xasprintf("%s/root", dir);
    char *file = xasprintf("%s/archive.tar", dir);
    ck_error *err = NULL;
    json_t *refs = ck_images_import(root, file, NULL, &err);
    assert_non_null(refs);
    assert_string_equal(json_string_value(json_array_get(refs, 0)), "example.org/t:1");
    json_decref(refs);
    ck_image *img = ck_images_get(root, "example.org/t:1", &err);
    assert_non_null(img);
    assert_int_equal(img->nlayers, 1);
    char *hello = xasprintf("%s/bin/hello", img->layers[0]);
    assert_int_equal(access(hello, F_OK), 0);
    free(hello);
    assert_string_equal(json_string_value(json_array_get(json_object_get(img->config, "Cmd"), 0)), "/bin/hello");
    ck_image_free(img);
    assert_null(ck_images_get(root, "example.org/t:2", &err));
    assert_int_equal(err->code, CK_E_NOT_FOUND);
    ck_error_free(err);
    err = NULL;
    assert_null(ck_images_import(root, "/etc/hostname", NULL, &err));
    assert_non_null(err);
    ck_error_free(err);
    char *rm[] = {"rm", "-rf", dir, NULL};
    ck_run_cmd(rm, NULL, NULL, 10000, NULL, NULL);
    free(root);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_logs_read),
        cmocka_unit_test(test_cri_time),
        cmocka_unit_test(test_oci_args),
        cmocka_unit_test(test_oci_security_resources),
        cmocka_unit_test(test_registry_creds),
        cmocka_unit_test(test_pod_qos_resources),
        cmocka_unit_test(test_port_mappings),
        cmocka_unit_test(test_admit),
        cmocka_unit_test(test_run_cmd),
        cmocka_unit_test(test_import_docker_archive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

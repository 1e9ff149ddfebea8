/* Unit tests for the kubelet's pod cgroups on a fake cgroupfs (a directory tree in a temp dir):
 * per cgroup mode (v2 unified, v1) and QoS class, which files the kubelet writes and what; the
 * v2 controllers enabled down the path as the tree offers them; the mode detected from
 * mountinfo text (unified, hybrid as on this project's host, legacy v1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "kubelet/kubelet.h"
#include "lib/util.h"

static char *read_str(const char *root, const char *rel)
{
    cleanup_free char *path = xasprintf("%s/%s", root, rel);
    char *data = NULL;
    size_t len;
    if (ck_read_file(path, 4096, &data, &len) < 0)
        return NULL;
    return data;
}

static char *make_tree(const char *controllers)
{
    char tmpl[] = "/tmp/ckube-test-cgroups.XXXXXX";
    char *root = xstrdup(mkdtemp(tmpl));
    if (controllers) {
        cleanup_free char *f = xasprintf("%s/cgroup.controllers", root);
        assert_int_equal(ck_write_file_nosync(f, controllers, strlen(controllers), 0644), 0);
    }
    return root;
}

static void rm_tree(const char *root)
{
    ck_rm_tree(root);
}

#define G "{\"containers\":[{\"name\":\"c\",\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"}}}]}"
#define B "{\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":\"250m\"},\"limits\":{\"memory\":\"32Mi\"}}}]}"
#define E "{\"containers\":[{\"name\":\"c\"}]}"
#define ALL "cpuset cpu io memory hugetlb pids rdma misc\n"
#define SC "+cpu +io +memory +pids"

typedef struct file_want {
    const char *path, *content;   /* content NULL: must not exist */
} file_want;

static void test_create_pod(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        ck_cgroup_mode mode;
        const char *controllers;   /* v2: the root's cgroup.controllers */
        const char *spec, *cg;
        file_want files[12];
    } cases[] = {
        {"v2 Guaranteed", CK_CGROUP_V2, ALL, G, "/ckube/kubepods/podu1",
         {{"cgroup.subtree_control", SC},
          {"ckube/cgroup.subtree_control", SC},
          {"ckube/kubepods/cgroup.subtree_control", SC},
          {"ckube/kubepods/podu1/cgroup.subtree_control", SC},
          {"ckube/kubepods/podu1/cpu.weight", "20"},          /* shares 512 */
          {"ckube/kubepods/podu1/cpu.max", "50000 100000"},
          {"ckube/kubepods/podu1/memory.max", "67108864"},
          {"ckube/kubepods/podu1/pids.max", "max"},
          {"ckube/kubepods/besteffort/cpu.weight", "1"}}},
        {"v2 Burstable", CK_CGROUP_V2, ALL, B, "/ckube/kubepods/burstable/podu1",
         {{"ckube/kubepods/burstable/cgroup.subtree_control", SC},
          {"ckube/kubepods/burstable/podu1/cgroup.subtree_control", SC},
          {"ckube/kubepods/burstable/podu1/cpu.weight", "10"},  /* shares 256 */
          {"ckube/kubepods/burstable/podu1/cpu.max", "max 100000"},
          {"ckube/kubepods/burstable/podu1/memory.max", "33554432"},   /* every container limits memory */
          {"ckube/kubepods/burstable/podu1/pids.max", "max"}}},
        {"v2 BestEffort", CK_CGROUP_V2, ALL, E, "/ckube/kubepods/besteffort/podu1",
         {{"ckube/kubepods/besteffort/cgroup.subtree_control", SC},
          {"ckube/kubepods/besteffort/cpu.weight", "1"},
          {"ckube/kubepods/besteffort/podu1/cpu.weight", "1"},   /* shares 2 */
          {"ckube/kubepods/besteffort/podu1/cpu.max", "max 100000"},
          {"ckube/kubepods/besteffort/podu1/memory.max", "max"},
          {"ckube/kubepods/besteffort/podu1/pids.max", "max"}}},
        /* only what the root offers is enabled, and only its files are written */
        {"v2 without io and pids", CK_CGROUP_V2, "cpu memory\n", B, "/ckube/kubepods/burstable/podu1",
         {{"cgroup.subtree_control", "+cpu +memory"},
          {"ckube/kubepods/burstable/podu1/cgroup.subtree_control", "+cpu +memory"},
          {"ckube/kubepods/burstable/podu1/cpu.weight", "10"},
          {"ckube/kubepods/burstable/podu1/memory.max", "33554432"},
          {"ckube/kubepods/burstable/podu1/pids.max", NULL}}},
        {"v1 Guaranteed", CK_CGROUP_V1, NULL, G, "/ckube/kubepods/podu1",
         {{"cpu/ckube/kubepods/podu1/cpu.shares", "512"},
          {"cpu/ckube/kubepods/podu1/cpu.cfs_period_us", "100000"},
          {"cpu/ckube/kubepods/podu1/cpu.cfs_quota_us", "50000"},
          {"memory/ckube/kubepods/podu1/memory.limit_in_bytes", "67108864"},
          {"cpu/ckube/kubepods/besteffort/cpu.shares", "2"},
          {"cgroup.subtree_control", NULL},
          {"ckube/kubepods/podu1/cpu.max", NULL}}},
        {"v1 Burstable", CK_CGROUP_V1, NULL, B, "/ckube/kubepods/burstable/podu1",
         {{"cpu/ckube/kubepods/burstable/podu1/cpu.shares", "256"},
          {"cpu/ckube/kubepods/burstable/podu1/cpu.cfs_quota_us", "-1"},
          {"memory/ckube/kubepods/burstable/podu1/memory.limit_in_bytes", "33554432"}}},
        {"hybrid runs as v1", CK_CGROUP_HYBRID, NULL, E, "/ckube/kubepods/besteffort/podu1",
         {{"cpu/ckube/kubepods/besteffort/podu1/cpu.shares", "2"},
          {"memory/ckube/kubepods/besteffort/podu1/memory.limit_in_bytes", "-1"},
          {"ckube/kubepods/besteffort/podu1/cpu.weight", NULL}}},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *root = make_tree(cases[i].controllers);
        ck_cgroup_set_root(root, cases[i].mode);
        assert_int_equal(ck_cgroup_mode_get(), cases[i].mode);
        json_t *spec = json_loads(cases[i].spec, 0, NULL);
        assert_non_null(spec);
        char *path = NULL;
        ck_error *err = NULL;
        if (ck_cgroup_create_pod(spec, "u1", &path, &err) < 0)
            fail_msg("%s: %s", cases[i].name, err->msg);
        assert_string_equal(path, cases[i].cg);
        for (size_t f = 0; f < ARRAY_SIZE(cases[i].files) && cases[i].files[f].path; f++) {
            char *got = read_str(root, cases[i].files[f].path);
            const char *want = cases[i].files[f].content;
            if (want ? !got || strcmp(got, want) : got != NULL)
                fail_msg("%s: %s = \"%s\", want \"%s\"", cases[i].name, cases[i].files[f].path,
                         got ? got : "(none)", want ? want : "(none)");
            free(got);
        }
        free(path);
        json_decref(spec);
        rm_tree(root);
        free(root);
    }
    ck_cgroup_set_root("/sys/fs/cgroup", ck_cgroup_detect("", "/sys/fs/cgroup"));
}

/* v2 with a limit whose controller the tree does not offer: an error, not a silent pod */
static void test_create_missing_controller(void **state)
{
    (void)state;
    char *root = make_tree("pids\n");
    ck_cgroup_set_root(root, CK_CGROUP_V2);
    json_t *spec = json_loads(G, 0, NULL);
    char *path = NULL;
    ck_error *err = NULL;
    assert_int_equal(ck_cgroup_create_pod(spec, "u2", &path, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err->msg, "not available"));
    ck_error_free(err);
    /* a BestEffort pod needs none of them */
    json_decref(spec);
    spec = json_loads(E, 0, NULL);
    assert_int_equal(ck_cgroup_create_pod(spec, "u3", &path, &err), 0);
    free(path);
    json_decref(spec);
    rm_tree(root);
    free(root);
}

/* removal finds the pod cgroup under whichever QoS parent (v2: one tree; v1: each hierarchy) */
static void test_remove_pod(void **state)
{
    (void)state;
    for (int v2 = 0; v2 < 2; v2++) {
        char *root = make_tree(NULL);
        ck_cgroup_set_root(root, v2 ? CK_CGROUP_V2 : CK_CGROUP_V1);
        const char *dirs[] = {"ckube/kubepods/burstable/podu9/ctr", "cpu/ckube/kubepods/podu9/ctr",
                              "memory/ckube/kubepods/besteffort/podu9"};
        for (size_t d = 0; d < (v2 ? 1 : 3); d++) {
            cleanup_free char *p = xasprintf("%s/%s", root, d || v2 ? dirs[d] : "cpu/ckube/kubepods/burstable/podu9/ctr");
            assert_int_equal(ck_mkdir_p(p, 0755), 0);
        }
        assert_int_equal(ck_cgroup_remove_pod("u9"), 0);
        cleanup_free char *gone = xasprintf("%s/%s", root, v2 ? "ckube/kubepods/burstable/podu9" : "cpu/ckube/kubepods/podu9");
        struct stat st;
        assert_int_equal(stat(gone, &st), -1);
        rm_tree(root);
        free(root);
    }
    ck_cgroup_set_root("/sys/fs/cgroup", CK_CGROUP_V1);
}

/* ck_cgroup_remove: the cgroup goes from the one tree (v2) or every hierarchy (v1, where a
 * hierarchy without it does not count); one that still has a child is counted as left. */
static void test_remove_cgroup(void **state)
{
    (void)state;
    for (int v2 = 0; v2 < 2; v2++) {
        char *root = make_tree(NULL);
        ck_cgroup_set_root(root, v2 ? CK_CGROUP_V2 : CK_CGROUP_V1);
        const char *hiers[] = {"cpu", "memory"};
        for (size_t h = 0; h < (v2 ? 1 : 2); h++) {
            cleanup_free char *p = xasprintf("%s%s%s/ckube/ctr-a", root, v2 ? "" : "/",
                                             v2 ? "" : hiers[h]);
            assert_int_equal(ck_mkdir_p(p, 0755), 0);
            cleanup_free char *q = xasprintf("%s%s%s/ckube/ctr-b/child", root, v2 ? "" : "/",
                                             v2 ? "" : hiers[h]);
            assert_int_equal(ck_mkdir_p(q, 0755), 0);
        }
        if (!v2) {
            cleanup_free char *pids = xasprintf("%s/pids", root);      /* has neither */
            assert_int_equal(ck_mkdir_p(pids, 0755), 0);
            cleanup_free char *file = xasprintf("%s/release_agent", root);   /* not a directory */
            assert_int_equal(ck_write_file_nosync(file, "", 0, 0644), 0);
        }
        assert_int_equal(ck_cgroup_remove("/ckube/ctr-a"), 0);
        assert_int_equal(ck_cgroup_remove("/ckube/ctr-b"), v2 ? 1 : 2);
        assert_int_equal(ck_cgroup_remove("/ckube/never-made"), 0);
        cleanup_free char *gone = xasprintf("%s%s/ckube/ctr-a", root, v2 ? "" : "/memory");
        struct stat st;
        assert_int_equal(stat(gone, &st), -1);
        rm_tree(root);
        free(root);
    }
    ck_cgroup_set_root("/sys/fs/cgroup", CK_CGROUP_V1);
}

/* Processes that outlived their containers keep the pod cgroup busy: ck_cgroup_kill_pod SIGKILLs
 * what the pod's cgroup.procs files list (a fake tree here: a child we fork stands in). */
static void test_kill_pod(void **state)
{
    (void)state;
    for (int v2 = 0; v2 < 2; v2++) {
        char *root = make_tree(NULL);
        ck_cgroup_set_root(root, v2 ? CK_CGROUP_V2 : CK_CGROUP_V1);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            pause();
            _exit(0);
        }
        cleanup_free char *dir = xasprintf("%s/%s", root, v2 ? "ckube/kubepods/besteffort/podk1/ctr"
                                                               : "memory/ckube/kubepods/besteffort/podk1/ctr");
        assert_int_equal(ck_mkdir_p(dir, 0755), 0);
        cleanup_free char *procs = xasprintf("%s/cgroup.procs", dir);
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", (int)child);
        assert_int_equal(ck_write_file_nosync(procs, line, (size_t)n, 0644), 0);
        assert_int_equal(ck_cgroup_kill_pod("nobody"), 0);   /* another pod: nothing signalled */
        assert_int_equal(ck_cgroup_kill_pod("k1"), 1);
        int status = 0;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        rm_tree(root);
        free(root);
    }
    ck_cgroup_set_root("/sys/fs/cgroup", CK_CGROUP_V1);
}

/* The v2 code on a real cgroup2 filesystem where the host has one: this hybrid host's
 * /sys/fs/cgroup/unified (its controllers are bound to the v1 hierarchies, so it offers none of
 * cpu/io/memory/pids).  A BestEffort pod's cgroups are made and removed there (real mkdir and
 * rmdir on cgroup2); a Guaranteed pod is refused for want of the cpu and memory controllers. */
static void test_real_cgroup2_mount(void **state)
{
    (void)state;
    const char *root = "/sys/fs/cgroup/unified";
    cleanup_free char *mi = NULL;
    size_t len;
    if (getuid() != 0 || access("/sys/fs/cgroup/unified/cgroup.controllers", W_OK) < 0 ||
        ck_read_file("/proc/self/mountinfo", 1 << 22, &mi, &len) < 0 ||
        ck_cgroup_detect(mi, root) != CK_CGROUP_V2) {
        skip();
        return;
    }
    ck_cgroup_set_root(root, CK_CGROUP_V2);
    char uid[64];
    snprintf(uid, sizeof uid, "ck-unit-%d", (int)getpid());
    json_t *spec = json_loads(E, 0, NULL);
    char *path = NULL;
    ck_error *err = NULL;
    if (ck_cgroup_create_pod(spec, uid, &path, &err) < 0)
        fail_msg("BestEffort on %s: %s", root, err->msg);
    cleanup_free char *dir = xasprintf("%s%s", root, path);
    cleanup_free char *procs = xasprintf("%s/cgroup.procs", dir);
    assert_int_equal(access(procs, F_OK), 0);   /* the kernel made it a cgroup */
    assert_int_equal(ck_cgroup_remove_pod(uid), 0);
    assert_int_equal(access(dir, F_OK), -1);
    free(path);
    json_decref(spec);
    spec = json_loads(G, 0, NULL);
    path = NULL;
    bool has_cpu = false;
    cleanup_free char *ctl = NULL;
    if (ck_read_file("/sys/fs/cgroup/unified/cgroup.controllers", 4096, &ctl, &len) == 0)
        has_cpu = strstr(ctl, "cpu ") || strstr(ctl, "cpu\n");
    int rc = ck_cgroup_create_pod(spec, uid, &path, &err);
    if (!has_cpu) {
        assert_int_equal(rc, -1);
        ck_error_free(err);
    }
    free(path);
    ck_cgroup_remove_pod(uid);
    json_decref(spec);
    ck_cgroup_set_root("/sys/fs/cgroup", CK_CGROUP_V1);
}

static void test_shares_to_weight(void **state)
{
    (void)state;
    static const int64_t cases[][2] = {{0, 1}, {2, 1}, {256, 10}, {512, 20}, {1024, 39},
                                       {262144, 10000}, {1 << 20, 10000}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (ck_cpu_shares_to_weight(cases[i][0]) != cases[i][1])
            fail_msg("shares %lld -> %lld, want %lld", (long long)cases[i][0],
                     (long long)ck_cpu_shares_to_weight(cases[i][0]), (long long)cases[i][1]);
}

static void test_detect(void **state)
{
    (void)state;
    static const struct {
        const char *name, *mountinfo;
        ck_cgroup_mode want;
    } cases[] = {
        {"unified", "22 1 0:21 / /sys rw - sysfs sysfs rw\n"
                    "25 22 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n", CK_CGROUP_V2},
        {"unified with optional tags", "25 22 0:23 / /sys/fs/cgroup rw shared:9 master:1 - cgroup2 cgroup2 rw\n", CK_CGROUP_V2},
        {"hybrid (this host)", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
                               "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
                               "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                               "40 31 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", CK_CGROUP_HYBRID},
        {"legacy v1", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n", CK_CGROUP_V1},
        {"nothing", "", CK_CGROUP_V1},
        {"a cgroup2 mount elsewhere only", "50 1 0:40 / /mnt/cg rw - cgroup2 cgroup2 rw\n", CK_CGROUP_V1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (ck_cgroup_detect(cases[i].mountinfo, "/sys/fs/cgroup") != cases[i].want)
            fail_msg("%s: got %d want %d", cases[i].name,
                     ck_cgroup_detect(cases[i].mountinfo, "/sys/fs/cgroup"), cases[i].want);
    /* this machine: the detection agrees with whether /sys/fs/cgroup is a cgroup2 root */
    cleanup_free char *mi = NULL;
    size_t len;
    assert_int_equal(ck_read_file("/proc/self/mountinfo", 1 << 22, &mi, &len), 0);
    bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    assert_int_equal(ck_cgroup_detect(mi, "/sys/fs/cgroup") == CK_CGROUP_V2, v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_pod),
        cmocka_unit_test(test_create_missing_controller),
        cmocka_unit_test(test_remove_pod),
        cmocka_unit_test(test_remove_cgroup),
        cmocka_unit_test(test_kill_pod),
        cmocka_unit_test(test_real_cgroup2_mount),
        cmocka_unit_test(test_shares_to_weight),
        cmocka_unit_test(test_detect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

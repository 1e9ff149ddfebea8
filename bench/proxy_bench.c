/* proxy_bench.c - rule sync time of one proxy mode (run it inside a scratch network namespace:
 * bench/proxy.sh does).
 *
 *   proxy_bench MODE NSERVICES NEPS
 *
 * Builds NSERVICES Services (cluster IPs in 10.96.0.0/12, one TCP port, every 10th a NodePort)
 * with NEPS ready endpoints each through the same model the proxy uses, then times: a full sync,
 * one service's endpoints changed (model rebuild + partial sync), one service added, one deleted.
 * Prints one line per step: "MODE N full_ms change_ms add_ms delete_ms".
 *
 *   proxy_bench MODE serve PODIP PORT
 *
 * Programs one Service 10.96.0.50:80 -> PODIP:PORT and keeps it (the userspace mode carries
 * the traffic itself) until stdin closes: the data-path benchmark's proxy.
 */
#include <jansson.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "proxy/model.h"
#include "proxy/proxy.h"

static json_t *service(int i)
{
    char ip[32];
    snprintf(ip, sizeof ip, "10.96.%d.%d", 1 + i / 250, 1 + i % 250);
    char name[32];
    snprintf(name, sizeof name, "svc-%d", i);
    json_t *port = json_pack("{s:s,s:i,s:s}", "name", "http", "port", 80, "protocol", "TCP");
    const char *type = "ClusterIP";
    if (i % 10 == 0) {
        type = "NodePort";
        json_object_set_new(port, "nodePort", json_integer(30000 + i / 10));
    }
    return json_pack("{s:{s:s,s:s},s:{s:s,s:s,s:[o]}}", "metadata", "name", name, "namespace",
                     "default", "spec", "type", type, "clusterIP", ip, "ports", port);
}

static json_t *slice(int i, int neps, int gen)
{
    char name[32], svc[32];
    snprintf(name, sizeof name, "svc-%d-abc", i);
    snprintf(svc, sizeof svc, "svc-%d", i);
    json_t *eps = json_array();
    for (int j = 0; j < neps; j++) {
        int n = i * neps + j + gen;
        char ip[32];
        snprintf(ip, sizeof ip, "10.%d.%d.%d", 128 + (n >> 16) % 64, (n >> 8) & 255, n & 255);
        json_array_append_new(eps, json_pack("{s:[s],s:{s:b},s:s}", "addresses", ip, "conditions",
                                             "ready", 1, "nodeName", j == 0 ? "node1" : "node2"));
    }
    return json_pack("{s:{s:s,s:s,s:{s:s}},s:s,s:[{s:s,s:i,s:s}],s:o}", "metadata", "name", name,
                     "namespace", "default", "labels", "kubernetes.io/service-name", svc,
                     "addressType", "IPv4", "ports", "name", "http", "port", 8080, "protocol", "TCP",
                     "endpoints", eps);
}

static double ms_since(int64_t t0)
{
    return (double)(ck_now_ns() - t0) / 1e6;
}

/* CPU time (user + system) of this process and its waited-for children (iptables-restore, nft)
 * in ms: on a shared, loaded machine wall time mostly measures the neighbours. */
static double cpu_ms(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    double us = 0;
    const struct rusage *r[2] = {&self, &kids};
    for (int i = 0; i < 2; i++)
        us += (double)(r[i]->ru_utime.tv_sec + r[i]->ru_stime.tv_sec) * 1e6 +
              (double)(r[i]->ru_utime.tv_usec + r[i]->ru_stime.tv_usec);
    return us / 1000;
}

static double load1(void)
{
    double l = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = 0;
        fclose(f);
    }
    return l;
}

static int serve(const ck_proxy_mode *mode, const char *ip, const char *port)
{
    ck_error *e = NULL;
    ck_proxy_opts o = {.node_name = "node1", .cluster_cidr = "10.244.0.0/16",
                       .kernel_relay = getenv("PROXY_BENCH_KERNEL_RELAY") != NULL,
                       .epoll_relay = getenv("PROXY_BENCH_EPOLL") != NULL,
                       .workers = getenv("PROXY_BENCH_WORKERS") ? atoi(getenv("PROXY_BENCH_WORKERS")) : 0};
    void *st = mode->new(&o, &e);
    if (!st) {
        fprintf(stderr, "%s\n", e ? e->msg : "mode failed");
        return 1;
    }
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = json_pack("{s:{s:s,s:s},s:{s:s,s:[{s:s,s:i,s:s}]}}", "metadata", "name", "bench",
                            "namespace", "default", "spec", "clusterIP", "10.96.0.50", "ports",
                            "name", "http", "port", 80, "protocol", "TCP");
    json_t *sl = json_pack("{s:{s:s,s:s,s:{s:s}},s:[{s:s,s:i,s:s}],s:[{s:[s],s:{s:b}}]}", "metadata",
                           "name", "bench-1", "namespace", "default", "labels",
                           "kubernetes.io/service-name", "bench", "ports", "name", "http", "port",
                           atoi(port), "protocol", "TCP", "endpoints", "addresses", ip, "conditions",
                           "ready", 1);
    ck_proxy_model_set_service(m, svc);
    ck_proxy_model_set_slice(m, sl);
    json_decref(ck_proxy_model_take_changes(m));
    if (mode->sync(st, m, NULL, &e) < 0) {
        fprintf(stderr, "sync: %s\n", e->msg);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    mode->free(st);
    mode->cleanup(NULL);
    ck_proxy_model_free(m);
    json_decref(svc);
    json_decref(sl);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 5 && !strcmp(argv[2], "serve") && ck_proxy_mode_find(argv[1]))
        return serve(ck_proxy_mode_find(argv[1]), argv[3], argv[4]);
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODE NSERVICES NEPS\n", argv[0]);
        return 2;
    }
    const ck_proxy_mode *mode = ck_proxy_mode_find(argv[1]);
    int nsvc = atoi(argv[2]), neps = atoi(argv[3]);
    if (!mode || nsvc <= 0 || neps <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    ck_error *e = NULL;
    if (mode->probe(&e) < 0) {
        fprintf(stderr, "%s\n", e->msg);
        return 1;
    }
    ck_proxy_opts o = {.node_name = "node1", .cluster_cidr = "10.128.0.0/10",
                       .dry_run = getenv("PROXY_BENCH_DRY") != NULL};
    void *st = mode->new(&o, &e);
    ck_proxy_model *m = ck_proxy_model_new("node1");
    for (int i = 0; i < nsvc; i++) {
        json_t *s = service(i), *sl = slice(i, neps, 0);
        ck_proxy_model_set_service(m, s);
        ck_proxy_model_set_slice(m, sl);
        json_decref(s);
        json_decref(sl);
    }
    int64_t t0 = ck_now_ns();
    json_decref(ck_proxy_model_take_changes(m));
    double build = ms_since(t0);
    t0 = ck_now_ns();
    double c0 = cpu_ms();
    if (mode->sync(st, m, NULL, &e) < 0) {
        fprintf(stderr, "full sync: %s\n", e->msg);
        return 1;
    }
    double full = ms_since(t0), full_cpu = cpu_ms() - c0;
    if (getenv("PROXY_BENCH_DUMP") && mode->last_script) {
        FILE *f = fopen(getenv("PROXY_BENCH_DUMP"), "w");
        if (f) {
            fputs(mode->last_script(st), f);
            fclose(f);
        }
    }

    /* one service's endpoints change (one pod replaced) */
    json_t *sl = slice(nsvc / 2, neps, 7);
    t0 = ck_now_ns();
    c0 = cpu_ms();
    ck_proxy_model_set_slice(m, sl);
    json_t *ch = ck_proxy_model_take_changes(m);
    if (mode->sync(st, m, ch, &e) < 0) {
        fprintf(stderr, "change sync: %s\n", e->msg);
        return 1;
    }
    double change = ms_since(t0), change_cpu = cpu_ms() - c0;
    json_decref(ch);
    json_decref(sl);

    /* one service added, then deleted */
    json_t *s = service(nsvc), *sl2 = slice(nsvc, neps, 0);
    t0 = ck_now_ns();
    ck_proxy_model_set_service(m, s);
    ck_proxy_model_set_slice(m, sl2);
    ch = ck_proxy_model_take_changes(m);
    if (mode->sync(st, m, ch, &e) < 0) {
        fprintf(stderr, "add sync: %s\n", e->msg);
        return 1;
    }
    double add = ms_since(t0);
    json_decref(ch);
    t0 = ck_now_ns();
    ck_proxy_model_delete_service(m, s);
    ck_proxy_model_delete_slice(m, sl2);
    ch = ck_proxy_model_take_changes(m);
    if (mode->sync(st, m, ch, &e) < 0) {
        fprintf(stderr, "delete sync: %s\n", e->msg);
        return 1;
    }
    double del = ms_since(t0);
    json_decref(ch);
    json_decref(s);
    json_decref(sl2);
    const char *script = mode->last_script ? mode->last_script(st) : NULL;
    printf("%s services=%d eps=%d model_ms=%.0f full_ms=%.0f change_ms=%.1f add_ms=%.1f "
           "delete_ms=%.1f full_cpu_ms=%.0f change_cpu_ms=%.1f last_script_bytes=%zu load=%.1f\n",
           mode->name, nsvc, neps, build, full, change, add, del, full_cpu, change_cpu,
           script ? strlen(script) : 0, load1());
    mode->free(st);
    ck_proxy_model_free(m);
    return 0;
}

/* client_bench.c - what one API request costs the client process (client/client.h over libcurl):
 * T threads each send N/T requests back to back to a running API server, and the process's own
 * user and system CPU (getrusage) per request is printed with the rate.  The API server's CPU is
 * not counted, so the figure is the client library's floor per write (a hollow kubelet's Lease
 * renewal, a scheduler's binding), steadier under a loaded machine than end-to-end runs.
 *
 *   client_bench --kubeconfig F [--requests 5000] [--threads 1] [--op patch|get]
 *     patch: a merge PATCH of a Lease's renewTime (body from a text template, answer not decoded)
 *     get:   a GET of that Lease, decoded whole
 *     sender: the patch through one ck_sender with --threads connections (many in flight from
 *             one thread, as the scheduler's bindings and the hollow node's writes go)
 * Thread i works on its own Lease, default/client-bench-i (as each kubelet renews its own), created
 * first if missing and left in place.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "client/client.h"
#include "client/leader.h"
#include "lib/flags.h"
#include "lib/util.h"

typedef struct run {
    ck_client *c;
    const char *op;
    char *path;
    long n;
    long errors;
} run;

static void *worker(void *arg)
{
    run *r = arg;
    for (long i = 0; i < r->n; i++) {
        ck_error *err = NULL;
        int rc;
        if (!strcmp(r->op, "get")) {
            json_t *o = ck_client_request(r->c, "GET", r->path, NULL, NULL, &err);
            rc = o ? 0 : -1;
            json_decref(o);
        } else {
            char now[48], body[160];
            ck_micro_time(ck_wall_ns(), now);
            int len = snprintf(body, sizeof body, "{\"spec\":{\"renewTime\":\"%s\"}}", now);
            rc = ck_client_send_text(r->c, "PATCH", r->path, body, (size_t)len,
                                     "application/merge-patch+json", &err);
        }
        if (rc < 0) {
            if (!r->errors++)
                fprintf(stderr, "client_bench: %s (%s)\n", err->msg, ck_error_name(err->code));
            ck_error_free(err);
        }
    }
    return NULL;
}

static void sent(void *ctx, const ck_error *err)
{
    long *errors = ctx;
    if (err && !__atomic_fetch_add(errors, 1, __ATOMIC_RELAXED))
        fprintf(stderr, "client_bench: %s (%s)\n", err->msg, ck_error_name(err->code));
}

/* n patches through s, round robin over paths[0..np); waits for every answer. */
static void send_all(ck_sender *s, char **paths, long np, long n, long *errors)
{
    for (long i = 0; i < n; i++) {
        char now[48];
        ck_micro_time(ck_wall_ns(), now);
        char *body = xasprintf("{\"spec\":{\"renewTime\":\"%s\"}}", now);
        ck_sender_send(s, "PATCH", paths[i % np], body, strlen(body),
                       "application/merge-patch+json", sent, errors);
    }
    ck_sender_drain(s);
}

static double cpu_s(int who, bool sys)
{
    struct rusage ru;
    getrusage(who, &ru);
    struct timeval t = sys ? ru.ru_stime : ru.ru_utime;
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    char *kubeconfig = NULL, *op = "patch";
    long requests = 5000, threads = 1;
    ck_flag flags[] = {
        {"kubeconfig", CK_FLAG_STRING, &kubeconfig, "kubeconfig of the cluster (required)"},
        {"requests", CK_FLAG_INT, &requests, "requests in all (default 5000)"},
        {"threads", CK_FLAG_INT, &threads, "sending threads (default 1)"},
        {"op", CK_FLAG_STRING, &op, "patch (default), get or sender"},
    };
    ck_flags_parse("client_bench", "CPU per API request of the client", argc, argv, flags,
                   ARRAY_SIZE(flags));
    if (!kubeconfig || requests < 1 || threads < 1 || threads > 256 ||
        (strcmp(op, "patch") && strcmp(op, "get") && strcmp(op, "sender"))) {
        fprintf(stderr, "client_bench: --kubeconfig required; --op patch|get|sender; --threads 1..256\n");
        return 2;
    }
    ck_error *err = NULL;
    ck_client *c = ck_client_from_file(kubeconfig, "client-bench", &err);
    if (!c) {
        fprintf(stderr, "client_bench: %s\n", err->msg);
        return 1;
    }
    const ck_resource *leases = ck_resource_find("coordination.k8s.io", "v1", "leases");
    char **paths = xcalloc((size_t)threads, sizeof *paths);
    for (long i = 0; i < threads; i++) {
        char name[64];
        snprintf(name, sizeof name, "client-bench-%ld", i);
        json_t *lease = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion",
                                  "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
                                  name, "namespace", "default", "spec", "holderIdentity", name);
        json_decref(ck_client_create(c, leases, "default", lease, NULL));
        json_decref(lease);
        paths[i] = ck_client_path(leases, "default", name, NULL);
    }

    if (!strcmp(op, "sender")) {
        long errors = 0;
        ck_sender *snd = ck_sender_new(c, (int)threads);
        send_all(snd, paths, threads, threads, &errors);      /* connections, handshakes */
        double u0 = cpu_s(RUSAGE_SELF, false), s0 = cpu_s(RUSAGE_SELF, true);
        int64_t t0 = ck_now_ns();
        send_all(snd, paths, threads, requests, &errors);
        double wall = (double)(ck_now_ns() - t0) / 1e9;
        double u = cpu_s(RUSAGE_SELF, false) - u0, s = cpu_s(RUSAGE_SELF, true) - s0;
        printf("op=%s requests=%ld conns=%ld errors=%ld rate=%.0f/s cpu_per_request_us=%.1f "
               "(user %.1f, sys %.1f)\n", op, requests, threads, errors, (double)requests / wall,
               (u + s) * 1e6 / (double)requests, u * 1e6 / (double)requests,
               s * 1e6 / (double)requests);
        ck_sender_free(snd);
        for (long i = 0; i < threads; i++)
            free(paths[i]);
        free(paths);
        ck_client_free(c);
        return errors ? 1 : 0;
    }
    run *runs = xcalloc((size_t)threads, sizeof *runs);
    pthread_t *th = xcalloc((size_t)threads, sizeof *th);
    /* one request per thread first: connections and TLS handshakes are not what is measured */
    for (long i = 0; i < threads; i++) {
        runs[i] = (run){.c = c, .op = op, .path = paths[i], .n = 1};
        pthread_create(&th[i], NULL, worker, &runs[i]);
    }
    for (long i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double u0 = cpu_s(RUSAGE_SELF, false), s0 = cpu_s(RUSAGE_SELF, true);
    int64_t t0 = ck_now_ns();
    for (long i = 0; i < threads; i++) {
        runs[i] = (run){.c = c, .op = op, .path = paths[i],
                        .n = requests / threads + (i < requests % threads)};
        pthread_create(&th[i], NULL, worker, &runs[i]);
    }
    long errors = 0;
    for (long i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        errors += runs[i].errors;
    }
    double wall = (double)(ck_now_ns() - t0) / 1e9;
    double u = cpu_s(RUSAGE_SELF, false) - u0, s = cpu_s(RUSAGE_SELF, true) - s0;
    printf("op=%s requests=%ld threads=%ld errors=%ld rate=%.0f/s cpu_per_request_us=%.1f "
           "(user %.1f, sys %.1f)\n", op, requests, threads, errors, (double)requests / wall,
           (u + s) * 1e6 / (double)requests, u * 1e6 / (double)requests,
           s * 1e6 / (double)requests);
    for (long i = 0; i < threads; i++)
        free(paths[i]);
    free(paths);
    free(runs);
    free(th);
    ck_client_free(c);
    return errors ? 1 : 0;
}

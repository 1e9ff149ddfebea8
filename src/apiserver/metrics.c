/* metrics.c - /metrics in the Prometheus text format: apiserver_request_total{verb,resource,code},
 * apiserver_request_duration_seconds{verb,resource} (histogram), apiserver_registered_watchers,
 * and store latency (ckube_store_request_duration_seconds{operation}).  Series live in a small
 * fixed table behind one mutex: a few hundred label sets at most, found by linear search. */
#include "apiserver/apiserver.h"

#include <stdio.h>
#include <string.h>

#define MAX_SERIES 1024
#define NBUCKETS 12
static const double buckets[NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,   0.25,   0.5,   1,    5,     30};

typedef struct counter {
    char verb[24], resource[64];
    int code;
    uint64_t n;
} counter;

typedef struct hist {
    char a[24], b[64];          /* verb/resource, or operation/"" for the store */
    uint64_t bucket[NBUCKETS], count;
    double sum;
} hist;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static counter counters[MAX_SERIES];
static size_t ncounters;
static hist req_hist[MAX_SERIES / 4], store_hist[32];
static size_t nreq_hist, nstore_hist;
static long watchers;

static void hist_observe(hist *tab, size_t *n, size_t cap, const char *a, const char *b, double v)
{
    hist *h = NULL;
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(tab[i].a, a) && !strcmp(tab[i].b, b)) {
            h = &tab[i];
            break;
        }
    if (!h) {
        if (*n == cap)
            return;
        h = &tab[(*n)++];
        memset(h, 0, sizeof *h);
        snprintf(h->a, sizeof h->a, "%s", a);
        snprintf(h->b, sizeof h->b, "%s", b);
    }
    for (int i = 0; i < NBUCKETS; i++)
        if (v <= buckets[i])
            h->bucket[i]++;
    h->count++;
    h->sum += v;
}

void ck_metrics_request(const char *verb, const char *resource, int code, double seconds)
{
    pthread_mutex_lock(&mu);
    counter *c = NULL;
    for (size_t i = 0; i < ncounters; i++)
        if (counters[i].code == code && !strcmp(counters[i].verb, verb) &&
            !strcmp(counters[i].resource, resource)) {
            c = &counters[i];
            break;
        }
    if (!c && ncounters < MAX_SERIES) {
        c = &counters[ncounters++];
        snprintf(c->verb, sizeof c->verb, "%s", verb);
        snprintf(c->resource, sizeof c->resource, "%s", resource);
        c->code = code;
        c->n = 0;
    }
    if (c)
        c->n++;
    hist_observe(req_hist, &nreq_hist, ARRAY_SIZE(req_hist), verb, resource, seconds);
    pthread_mutex_unlock(&mu);
}

void ck_metrics_store(const char *op, double seconds)
{
    pthread_mutex_lock(&mu);
    hist_observe(store_hist, &nstore_hist, ARRAY_SIZE(store_hist), op, "", seconds);
    pthread_mutex_unlock(&mu);
}

void ck_metrics_watchers(int delta)
{
    pthread_mutex_lock(&mu);
    watchers += delta;
    pthread_mutex_unlock(&mu);
}

static void render_hist(ck_buf *b, const char *name, const hist *h, const char *labels)
{
    for (int i = 0; i < NBUCKETS; i++)
        ck_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, buckets[i],
                      (unsigned long long)h->bucket[i]);
    ck_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                  (unsigned long long)h->count);
    ck_buf_printf(b, "%s_sum{%s} %.6f\n", name, labels, h->sum);
    ck_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

char *ck_metrics_render(void)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    char labels[160];
    pthread_mutex_lock(&mu);
    ck_buf_addstr(&b, "# HELP apiserver_request_total Counter of apiserver requests broken out by "
                      "verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
    for (size_t i = 0; i < ncounters; i++)
        ck_buf_printf(&b, "apiserver_request_total{verb=\"%s\",resource=\"%s\",code=\"%d\"} %llu\n",
                      counters[i].verb, counters[i].resource, counters[i].code,
                      (unsigned long long)counters[i].n);
    ck_buf_addstr(&b, "# HELP apiserver_request_duration_seconds Response latency distribution in "
                      "seconds for each verb and resource.\n"
                      "# TYPE apiserver_request_duration_seconds histogram\n");
    for (size_t i = 0; i < nreq_hist; i++) {
        snprintf(labels, sizeof labels, "verb=\"%.23s\",resource=\"%.63s\"", req_hist[i].a, req_hist[i].b);
        render_hist(&b, "apiserver_request_duration_seconds", &req_hist[i], labels);
    }
    ck_buf_addstr(&b, "# HELP apiserver_registered_watchers Number of currently registered "
                      "watchers.\n# TYPE apiserver_registered_watchers gauge\n");
    ck_buf_printf(&b, "apiserver_registered_watchers %ld\n", watchers);
    ck_buf_addstr(&b, "# HELP ckube_store_request_duration_seconds Store request latency in "
                      "seconds by operation.\n# TYPE ckube_store_request_duration_seconds histogram\n");
    for (size_t i = 0; i < nstore_hist; i++) {
        snprintf(labels, sizeof labels, "operation=\"%.23s\"", store_hist[i].a);
        render_hist(&b, "ckube_store_request_duration_seconds", &store_hist[i], labels);
    }
    pthread_mutex_unlock(&mu);
    return ck_buf_steal(&b);
}

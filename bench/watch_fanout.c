/* watch_fanout - watch fan-out latency of the API server.
 *
 * Usage: watch_fanout URL CAFILE TOKEN [WATCHERS] [EVENTS]
 * Opens WATCHERS (default 1000) HTTPS watches on default/configmaps (libcurl multi, one thread),
 * then creates EVENTS (default 20) ConfigMaps one at a time and measures, for each, the time from
 * sending the create until every watcher has received its event.  Prints p50/p99/max of that
 * "delivered to all" latency.  Talks only to the URL given (loopback in bench/apiserver.sh).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

typedef struct watcher {
    CURL *h;
    long lines;
} watcher;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    watcher *w = ud;
    for (size_t i = 0; i < sz * n; i++)
        if (p[i] == '\n')
            w->lines++;
    return sz * n;
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    return sz * n;
}

static size_t collect(char *p, size_t sz, size_t n, void *ud)
{
    return ck_buf_add(ud, p, sz * n) < 0 ? 0 : sz * n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: watch_fanout URL CAFILE TOKEN [WATCHERS] [EVENTS]\n");
        return 2;
    }
    const char *url = argv[1], *ca = argv[2], *token = argv[3];
    int n = argc > 4 ? atoi(argv[4]) : 1000, events = argc > 5 ? atoi(argv[5]) : 20;
    if (n <= 0 || events <= 0)
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n + 8);
    char *auth = xasprintf("Authorization: Bearer %s", token);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    struct curl_slist *phdrs = curl_slist_append(curl_slist_append(NULL, auth),
                                                 "Content-Type: application/json");
    /* watch from the current revision, as an informer does after its list */
    ck_buf lb;
    ck_buf_init(&lb, 1 << 20);
    CURL *l = curl_easy_init();
    char *lurl = xasprintf("%s/api/v1/namespaces/default/configmaps?limit=1", url);
    curl_easy_setopt(l, CURLOPT_URL, lurl);
    curl_easy_setopt(l, CURLOPT_CAINFO, ca);
    curl_easy_setopt(l, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(l, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(l, CURLOPT_WRITEDATA, &lb);
    CURLcode rc = curl_easy_perform(l);
    curl_easy_cleanup(l);
    free(lurl);
    const char *rvp = lb.data ? strstr(lb.data, "\"resourceVersion\":\"") : NULL;
    if (rc != CURLE_OK || !rvp) {
        fprintf(stderr, "watch_fanout: cannot list %s\n", url);
        return 1;
    }
    long long rv = atoll(rvp + 19);
    ck_buf_free(&lb);
    char *wurl = xasprintf("%s/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=600"
                           "&labelSelector=fanout%%3Dyes&resourceVersion=%lld", url, rv);
    watcher *ws = xcalloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) {
        ws[i].h = curl_easy_init();
        curl_easy_setopt(ws[i].h, CURLOPT_URL, wurl);
        curl_easy_setopt(ws[i].h, CURLOPT_CAINFO, ca);
        curl_easy_setopt(ws[i].h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(ws[i].h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(ws[i].h, CURLOPT_WRITEDATA, &ws[i]);
        curl_multi_add_handle(m, ws[i].h);
    }
    /* connected when every watcher got its response head */
    int running = 0;
    int64_t t0 = ck_now_ns();
    for (;;) {
        curl_multi_perform(m, &running);
        int ready = 0;
        for (int i = 0; i < n; i++) {
            long code = 0;
            curl_easy_getinfo(ws[i].h, CURLINFO_RESPONSE_CODE, &code);
            ready += code == 200;
        }
        if (ready == n)
            break;
        if ((ck_now_ns() - t0) / 1000000000 > 60) {
            fprintf(stderr, "watch_fanout: only %d of %d watches connected\n", ready, n);
            return 1;
        }
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    printf("%d watches connected in %.2f s\n", n, (double)(ck_now_ns() - t0) / 1e9);
    double *lat = xcalloc((size_t)events, sizeof *lat);
    char *purl = xasprintf("%s/api/v1/namespaces/default/configmaps", url);
    for (int e = 0; e < events; e++) {
        char body[160];
        snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"fan-%d-%lld\",\"labels\":"
                 "{\"fanout\":\"yes\"}}}", e, (long long)ck_wall_ns());
        CURL *p = curl_easy_init();
        curl_easy_setopt(p, CURLOPT_URL, purl);
        curl_easy_setopt(p, CURLOPT_CAINFO, ca);
        curl_easy_setopt(p, CURLOPT_HTTPHEADER, phdrs);
        curl_easy_setopt(p, CURLOPT_COPYPOSTFIELDS, body);
        curl_easy_setopt(p, CURLOPT_WRITEFUNCTION, discard);
        int64_t start = ck_now_ns();
        curl_multi_add_handle(m, p);
        for (;;) {
            curl_multi_perform(m, &running);
            long minl = -1;
            for (int i = 0; i < n; i++)
                if (minl < 0 || ws[i].lines < minl)
                    minl = ws[i].lines;
            if (minl > e)
                break;
            if ((ck_now_ns() - start) / 1000000000 > 30) {
                fprintf(stderr, "watch_fanout: event %d not delivered to all in 30 s\n", e);
                return 1;
            }
            curl_multi_poll(m, NULL, 0, 5, NULL);
        }
        lat[e] = (double)(ck_now_ns() - start) / 1e6;
        curl_multi_remove_handle(m, p);
        curl_easy_cleanup(p);
    }
    qsort(lat, (size_t)events, sizeof *lat, cmp);
    printf("watch fan-out to %d watchers (%d events): delivered-to-all p50=%.1f ms p99=%.1f ms "
           "max=%.1f ms\n", n, events, lat[events / 2], lat[(events * 99) / 100], lat[events - 1]);
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, ws[i].h);
        curl_easy_cleanup(ws[i].h);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(phdrs);
    free(ws);
    free(lat);
    free(purl);
    free(wurl);
    free(auth);
    curl_global_cleanup();
    return 0;
}

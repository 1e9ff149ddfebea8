/* curl_lazy.c - libcurl, loaded on first use instead of at every process start.
 *
 * ckube is one binary, and linking libcurl made every component load it and its ~25 dependencies
 * (GnuTLS, Kerberos, LDAP, SSH, nghttp2, brotli, ...) at exec: about 3 MB of resident pages in
 * processes that never make an HTTP request (the API server, for one, serves with libevent and
 * only uses libcurl for etcd and log proxying).  So the binary does not link libcurl: this file
 * defines the libcurl functions ckube calls as trampolines that dlopen("libcurl.so.4") on the
 * first call and jump to the real ones.  Callers include <curl/curl.h> and call libcurl as usual.
 *
 * Contract: every libcurl function called anywhere in ckube must be listed here (a missing one
 * is a link error, not a runtime surprise).  If libcurl cannot be loaded the process stops with a
 * one-line message (it is a hard dependency, like any linked library).  The variadic setopt
 * calls forward their one argument with the type libcurl documents for the option's range.
 */
#define CURL_DISABLE_TYPECHECK 1   /* the type-checking macros would rename our definitions */
#include <curl/curl.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void *curl_lib;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_load(void)
{
    curl_lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!curl_lib) {
        fprintf(stderr, "ckube: cannot load libcurl: %s\n", dlerror());
        abort();
    }
}

static void *curl_sym(const char *name)
{
    pthread_once(&curl_once, curl_load);
    void *p = dlsym(curl_lib, name);
    if (!p) {
        fprintf(stderr, "ckube: libcurl has no %s\n", name);
        abort();
    }
    return p;
}

/* The real function, looked up once per name (a racing first lookup stores the same value). */
#define REAL(name)                                                                              \
    static __typeof__(&name) real_;                                                              \
    __typeof__(&name) fn_ = __atomic_load_n(&real_, __ATOMIC_ACQUIRE);                           \
    if (!fn_) {                                                                                  \
        fn_ = (__typeof__(&name))curl_sym(#name);                                                \
        __atomic_store_n(&real_, fn_, __ATOMIC_RELEASE);                                         \
    }

/* ---- global ---- */

CURLcode curl_global_init(long flags) { REAL(curl_global_init); return fn_(flags); }
void curl_global_cleanup(void) { REAL(curl_global_cleanup); fn_(); }
char *curl_version(void) { REAL(curl_version); return fn_(); }
curl_version_info_data *curl_version_info(CURLversion v) { REAL(curl_version_info); return fn_(v); }
void curl_free(void *p) { REAL(curl_free); fn_(p); }
time_t curl_getdate(const char *s, const time_t *unused) { REAL(curl_getdate); return fn_(s, unused); }

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    REAL(curl_slist_append);
    return fn_(l, s);
}
void curl_slist_free_all(struct curl_slist *l) { REAL(curl_slist_free_all); fn_(l); }

/* ---- easy ---- */

CURL *curl_easy_init(void) { REAL(curl_easy_init); return fn_(); }
CURL *curl_easy_duphandle(CURL *c) { REAL(curl_easy_duphandle); return fn_(c); }
void curl_easy_reset(CURL *c) { REAL(curl_easy_reset); fn_(c); }
void curl_easy_cleanup(CURL *c) { REAL(curl_easy_cleanup); fn_(c); }
CURLcode curl_easy_perform(CURL *c) { REAL(curl_easy_perform); return fn_(c); }
CURLcode curl_easy_pause(CURL *c, int bitmask) { REAL(curl_easy_pause); return fn_(c, bitmask); }
const char *curl_easy_strerror(CURLcode e) { REAL(curl_easy_strerror); return fn_(e); }

char *curl_easy_escape(CURL *c, const char *s, int len)
{
    REAL(curl_easy_escape);
    return fn_(c, s, len);
}

char *curl_easy_unescape(CURL *c, const char *s, int len, int *outlen)
{
    REAL(curl_easy_unescape);
    return fn_(c, s, len, outlen);
}

CURLcode curl_easy_recv(CURL *c, void *buf, size_t len, size_t *n)
{
    REAL(curl_easy_recv);
    return fn_(c, buf, len, n);
}

CURLcode curl_easy_send(CURL *c, const void *buf, size_t len, size_t *n)
{
    REAL(curl_easy_send);
    return fn_(c, buf, len, n);
}

/* Option numbers carry their argument's type: long below OBJECTPOINT, then pointers, function
 * pointers, curl_off_t, blobs (curl.h CURLOPTTYPE_*); the same ranges hold for multi options. */
CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
    REAL(curl_easy_setopt);
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = fn_(c, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        rc = fn_(c, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = fn_(c, opt, va_arg(ap, void (*)(void)));
    else if (opt < CURLOPTTYPE_BLOB)
        rc = fn_(c, opt, va_arg(ap, curl_off_t));
    else
        rc = fn_(c, opt, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
    REAL(curl_easy_getinfo);
    va_list ap;
    va_start(ap, info);
    CURLcode rc = fn_(c, info, va_arg(ap, void *));   /* always a pointer to the result */
    va_end(ap);
    return rc;
}

/* ---- multi ---- */

CURLM *curl_multi_init(void) { REAL(curl_multi_init); return fn_(); }
CURLMcode curl_multi_cleanup(CURLM *m) { REAL(curl_multi_cleanup); return fn_(m); }
CURLMcode curl_multi_wakeup(CURLM *m) { REAL(curl_multi_wakeup); return fn_(m); }
const char *curl_multi_strerror(CURLMcode e) { REAL(curl_multi_strerror); return fn_(e); }

CURLMcode curl_multi_add_handle(CURLM *m, CURL *c)
{
    REAL(curl_multi_add_handle);
    return fn_(m, c);
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c)
{
    REAL(curl_multi_remove_handle);
    return fn_(m, c);
}

CURLMcode curl_multi_perform(CURLM *m, int *running)
{
    REAL(curl_multi_perform);
    return fn_(m, running);
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd extra[], unsigned int n, int timeout_ms,
                          int *numfds)
{
    REAL(curl_multi_poll);
    return fn_(m, extra, n, timeout_ms, numfds);
}

CURLMcode curl_multi_wait(CURLM *m, struct curl_waitfd extra[], unsigned int n, int timeout_ms,
                          int *numfds)
{
    REAL(curl_multi_wait);
    return fn_(m, extra, n, timeout_ms, numfds);
}

CURLMcode curl_multi_timeout(CURLM *m, long *timeout_ms)
{
    REAL(curl_multi_timeout);
    return fn_(m, timeout_ms);
}

CURLMcode curl_multi_fdset(CURLM *m, fd_set *r, fd_set *w, fd_set *e, int *maxfd)
{
    REAL(curl_multi_fdset);
    return fn_(m, r, w, e, maxfd);
}

CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev_bitmask, int *running)
{
    REAL(curl_multi_socket_action);
    return fn_(m, s, ev_bitmask, running);
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    REAL(curl_multi_info_read);
    return fn_(m, left);
}

CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p)
{
    REAL(curl_multi_assign);
    return fn_(m, s, p);
}

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    REAL(curl_multi_setopt);
    va_list ap;
    va_start(ap, opt);
    CURLMcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = fn_(m, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        rc = fn_(m, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = fn_(m, opt, va_arg(ap, void (*)(void)));
    else
        rc = fn_(m, opt, va_arg(ap, curl_off_t));
    va_end(ap);
    return rc;
}

/* ---- share ---- */

CURLSH *curl_share_init(void) { REAL(curl_share_init); return fn_(); }
CURLSHcode curl_share_cleanup(CURLSH *s) { REAL(curl_share_cleanup); return fn_(s); }

CURLSHcode curl_share_setopt(CURLSH *s, CURLSHoption opt, ...)
{
    REAL(curl_share_setopt);
    va_list ap;
    va_start(ap, opt);
    CURLSHcode rc;
    /* CURLSHOPT_SHARE/UNSHARE take an int (promoted), the callbacks pointers */
    if (opt == CURLSHOPT_SHARE || opt == CURLSHOPT_UNSHARE)
        rc = fn_(s, opt, va_arg(ap, int));
    else if (opt == CURLSHOPT_USERDATA)
        rc = fn_(s, opt, va_arg(ap, void *));
    else
        rc = fn_(s, opt, va_arg(ap, void (*)(void)));
    va_end(ap);
    return rc;
}

/* ---- URL API ---- */

CURLU *curl_url(void) { REAL(curl_url); return fn_(); }
CURLU *curl_url_dup(CURLU *u) { REAL(curl_url_dup); return fn_(u); }
void curl_url_cleanup(CURLU *u) { REAL(curl_url_cleanup); fn_(u); }

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
    REAL(curl_url_get);
    return fn_(u, what, part, flags);
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
    REAL(curl_url_set);
    return fn_(u, what, part, flags);
}

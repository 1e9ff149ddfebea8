/* admission.c - the built-in admission plugins upstream enables by default, in the create and
 * update paths of rest.c (docs/apiserver.md "Admission").
 *
 * Mutating, after defaulting and before the strategy (status reset, QoS class), in upstream's
 * order: LimitRanger (container default requests/limits, min/max), ServiceAccount
 * (spec.serviceAccountName `default`, the account must exist, its imagePullSecrets, the
 * kube-api-access-* projected token volume in every container), Priority
 * (spec.priority and preemptionPolicy from the PriorityClass, the globalDefault class when none
 * is named; one globalDefault class), DefaultTolerationSeconds (not-ready/unreachable NoExecute
 * for 300 s).  Validating, after validation and just before the store write: ResourceQuota.
 *
 * State comes from the store on every call (LimitRanges, quotas, PriorityClasses are few and
 * small); there is no informer.  Quota usage is recounted from the stored objects of the kind
 * being created whenever a quota in the namespace tracks it, under one mutex per API server held
 * from the count to the store write, so concurrent creates cannot overshoot a hard limit (one
 * API server per store, as alloc.c assumes).  Errors are 403 Forbidden with upstream's texts. */
#include "apiserver/apiserver.h"
#include "lib/log.h"
#include "lib/quantity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a cache of what admission reads on every create ----
 *
 * LimitRanges and ResourceQuotas of a namespace, PriorityClasses, ServiceAccounts: read on every
 * pod create (four store reads, ~25% of a pod create's time), written rarely.  Entries are keyed
 * by kind and namespace/name and stamped with the kind's write generation, which every write of
 * that kind through this server bumps (ck_admission_note_write, called at rest.c's three store
 * writes), and with the time: an entry is used only if no write of its kind happened since and
 * it is less than a second old, so a write made through another API server on the same store is
 * seen within a second, as with upstream's informers.  A server without a cache (unit tests
 * build ck_apiserver by hand) reads the store every time. */
enum { K_LR, K_RQ, K_PC, K_SA, K__COUNT };
#define CACHE_SLOTS 1024
#define CACHE_TTL_NS 1000000000LL

typedef struct cache_slot {
    int kind;
    char *key;
    uint64_t gen;
    int64_t at;
    json_t *val;
} cache_slot;

struct ck_admission_cache {
    uint64_t gens[K__COUNT];   /* atomic */
    pthread_mutex_t mu;
    cache_slot slots[CACHE_SLOTS];
};

ck_admission_cache *ck_admission_cache_new(void)
{
    ck_admission_cache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void ck_admission_cache_free(ck_admission_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(c->slots[i].key);
        json_decref(c->slots[i].val);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int cache_kind(const ck_resource *r)
{
    if (!strcmp(r->group, "scheduling.k8s.io") && !strcmp(r->resource, "priorityclasses"))
        return K_PC;
    if (r->group[0])
        return -1;
    if (!strcmp(r->resource, "limitranges"))
        return K_LR;
    if (!strcmp(r->resource, "resourcequotas"))
        return K_RQ;
    if (!strcmp(r->resource, "serviceaccounts"))
        return K_SA;
    return -1;
}

void ck_admission_note_write(ck_apiserver *s, const ck_resource *r)
{
    int k = s->admit_cache ? cache_kind(r) : -1;
    if (k >= 0)
        __atomic_add_fetch(&s->admit_cache->gens[k], 1, __ATOMIC_SEQ_CST);
}

static uint64_t cache_gen(ck_apiserver *s, int kind)
{
    return s->admit_cache ? __atomic_load_n(&s->admit_cache->gens[kind], __ATOMIC_SEQ_CST) : 0;
}

static cache_slot *slot_of(ck_admission_cache *c, int kind, const char *key)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &c->slots[h % CACHE_SLOTS];
}

/* NEW reference of a fresh entry, or NULL. */
static json_t *cache_get(ck_apiserver *s, int kind, const char *key)
{
    ck_admission_cache *c = s->admit_cache;
    if (!c)
        return NULL;
    uint64_t gen = cache_gen(s, kind);
    json_t *v = NULL;
    pthread_mutex_lock(&c->mu);
    cache_slot *sl = slot_of(c, kind, key);
    if (sl->key && sl->kind == kind && !strcmp(sl->key, key) && sl->gen == gen &&
        ck_now_ns() - sl->at < CACHE_TTL_NS)
        v = json_incref(sl->val);
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* gen: the kind's generation read before the store read that produced val (a write in between
 * leaves the entry stale, never wrong). */
static void cache_put(ck_apiserver *s, int kind, const char *key, uint64_t gen, json_t *val)
{
    ck_admission_cache *c = s->admit_cache;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    cache_slot *sl = slot_of(c, kind, key);
    free(sl->key);
    json_decref(sl->val);
    sl->kind = kind;
    sl->key = xstrdup(key);
    sl->gen = gen;
    sl->at = ck_now_ns();
    sl->val = json_incref(val);
    pthread_mutex_unlock(&c->mu);
}

static bool off(const ck_apiserver *s, unsigned plugin)
{
    return (s->admission_off & plugin) != 0;
}

static const struct {
    const char *name;
    unsigned bit;
} plugins[] = {
    {"LimitRanger", CK_ADMIT_LIMITRANGER},
    {"ServiceAccount", CK_ADMIT_SERVICEACCOUNT},
    {"Priority", CK_ADMIT_PRIORITY},
    {"DefaultTolerationSeconds", CK_ADMIT_TOLERATIONS},
    {"ResourceQuota", CK_ADMIT_RESOURCEQUOTA},
};

int ck_admission_parse_disabled(const char *list, unsigned *out, ck_error **err)
{
    *out = 0;
    if (!list || !*list)
        return 0;
    cleanup_free char *copy = xstrdup(list);
    char *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        while (*w == ' ')
            w++;
        bool found = false;
        for (size_t i = 0; i < ARRAY_SIZE(plugins); i++)
            if (!strcmp(w, plugins[i].name)) {
                *out |= plugins[i].bit;
                found = true;
            }
        if (!found)
            return ck_error_set(err, CK_E_USAGE,
                                "unknown admission plugin \"%s\" (known: LimitRanger, "
                                "ServiceAccount, Priority, DefaultTolerationSeconds, "
                                "ResourceQuota)", w);
    }
    return 0;
}

static int forbidden(ck_error **err, const ck_resource *r, const char *name, const char *msg)
{
    return ck_error_set(err, CK_E_FORBIDDEN, "%s \"%s\" is forbidden: %s", ck_res_qualified(r),
                        name ? name : "", msg);
}

static bool is_core(const ck_resource *r, const char *resource)
{
    return !r->group[0] && !strcmp(r->resource, resource);
}

/* Every stored object under a resource's key prefix (one namespace, or all for cluster scope),
 * with resourceVersion set.  NEW array, NULL on a store failure. */
static json_t *list_objs(ck_apiserver *s, const ck_resource *r, const char *ns, ck_error **err)
{
    cleanup_free char *prefix = ck_resource_key_prefix(r, r->namespaced ? ns : NULL);
    ck_list l = {0};
    ck_list_opts o = {0};
    if (ck_store_list(s->store, prefix, &o, &l, err) < 0)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; i < l.n; i++) {
        json_t *obj = json_loadb(l.items[i].value, l.items[i].value_len, 0, NULL);
        if (!json_is_object(obj)) {
            json_decref(obj);
            continue;
        }
        ck_meta_set_rv(obj, l.items[i].mod_revision);
        json_array_append_new(a, obj);
    }
    ck_list_free(&l);
    return a;
}

/* list_objs through the cache (LimitRanges, ResourceQuotas of ns; PriorityClasses).  The
 * result is shared: read it, do not change it. */
static json_t *list_cached(ck_apiserver *s, const ck_resource *r, const char *ns, ck_error **err)
{
    int kind = cache_kind(r);
    const char *key = ns ? ns : "";
    json_t *v = cache_get(s, kind, key);
    if (v)
        return v;
    uint64_t gen = cache_gen(s, kind);
    v = list_objs(s, r, ns, err);
    if (v)
        cache_put(s, kind, key, gen, v);
    return v;
}

static json_t *get_path(const json_t *o, const char *a, const char *b)
{
    json_t *x = json_object_get(o, a);
    return b ? json_object_get(x, b) : x;
}

/* ---- quantities ---- */

static bool qty(const json_t *v, int64_t *milli)
{
    if (json_is_string(v))
        return ck_quantity_parse_milli(json_string_value(v), milli) == 0;
    if (json_is_integer(v)) {
        *milli = json_integer_value(v) * 1000;
        return true;
    }
    return false;
}

static bool binary_suffix(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    return n >= 2 && s[n - 1] == 'i';
}

/* resource.Quantity's canonical text for a milli-value: "250m", "2", "128Mi" (binary when the
 * inputs were), "3k". */
static void qty_format(int64_t milli, bool binary, char out[32])
{
    if (milli % 1000) {
        snprintf(out, 32, "%lldm", (long long)milli);
        return;
    }
    int64_t v = milli / 1000;
    if (v == 0) {
        snprintf(out, 32, "0");
        return;
    }
    static const char *const bin[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    static const char *const dec[] = {"", "k", "M", "G", "T", "P", "E"};
    int k = 0;
    if (binary) {
        while (k < 6 && v % 1024 == 0) {
            v /= 1024;
            k++;
        }
        snprintf(out, 32, "%lld%s", (long long)v, bin[k]);
        return;
    }
    while (k < 6 && v % 1000 == 0) {
        v /= 1000;
        k++;
    }
    snprintf(out, 32, "%lld%s", (long long)v, dec[k]);
}

/* ---- LimitRanger ---- */

static void merge_defaults(json_t *res, const char *which, const json_t *dflt)
{
    if (!json_object_size(dflt))
        return;
    json_t *have = json_object_get(res, which);
    if (!json_is_object(have)) {
        have = json_object();
        json_object_set_new(res, which, have);
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)dflt, k, v)
        if (!json_object_get(have, k))
            json_object_set_new(have, k, json_deep_copy(v));   /* v belongs to a cached list */
}

static void limit_msg(ck_buf *b, size_t *n, const char *fmt, const char *res, const char *bound,
                      const char *have)
{
    (*n)++;
    if (b->len)
        ck_buf_add(b, ", ", 2);
    ck_buf_printf(b, fmt, res, bound, have);
}

/* min/max of one container against one LimitRange item of type Container. */
static void limit_check(const json_t *item, const json_t *ctr, ck_buf *msg, size_t *n)
{
    json_t *res = json_object_get(ctr, "resources");
    json_t *req = json_object_get(res, "requests"), *lim = json_object_get(res, "limits");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get((json_t *)item, "min"), k, v) {
        int64_t bound, have;
        json_t *rv = json_object_get(req, k);
        if (!qty(v, &bound))
            continue;
        if (!rv)
            limit_msg(msg, n, "minimum %s usage per Container is %s.  No request is specified", k,
                      json_string_value(v) ?: "", "");
        else if (qty(rv, &have) && have < bound)
            limit_msg(msg, n, "minimum %s usage per Container is %s, but request is %s", k,
                      json_string_value(v) ?: "", json_string_value(rv) ?: "");
    }
    json_object_foreach(json_object_get((json_t *)item, "max"), k, v) {
        int64_t bound, have;
        json_t *lv = json_object_get(lim, k);
        if (!qty(v, &bound))
            continue;
        if (!lv)
            limit_msg(msg, n, "maximum %s usage per Container is %s.  No limit is specified", k,
                      json_string_value(v) ?: "", "");
        else if (qty(lv, &have) && have > bound)
            limit_msg(msg, n, "maximum %s usage per Container is %s, but limit is %s", k,
                      json_string_value(v) ?: "", json_string_value(lv) ?: "");
    }
}

static int limit_ranger(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                        json_t *pod, ck_error **err)
{
    const ck_resource *lr = ck_resource_find("", "v1", "limitranges");
    json_t *ranges = list_cached(s, lr, ns, err);
    if (!ranges)
        return -1;
    json_t *spec = json_object_get(pod, "spec");
    static const char *const lists[] = {"containers", "initContainers"};
    size_t i, j, l;
    json_t *range, *item, *ctr;
    /* defaults first (from every range), then the bounds on the defaulted pod */
    json_array_foreach(ranges, i, range)
        json_array_foreach(get_path(range, "spec", "limits"), j, item) {
            if (strcmp(json_string_value(json_object_get(item, "type")) ?: "", "Container"))
                continue;
            for (l = 0; l < 2; l++) {
                size_t k;
                json_array_foreach(json_object_get(spec, lists[l]), k, ctr) {
                    json_t *res = json_object_get(ctr, "resources");
                    if (!json_is_object(res)) {
                        res = json_object();
                        json_object_set_new(ctr, "resources", res);
                    }
                    merge_defaults(res, "limits", json_object_get(item, "default"));
                    merge_defaults(res, "requests", json_object_get(item, "defaultRequest"));
                }
            }
        }
    ck_buf msg;
    ck_buf_init(&msg, 16 * 1024);
    size_t nmsg = 0;
    json_array_foreach(ranges, i, range)
        json_array_foreach(get_path(range, "spec", "limits"), j, item) {
            if (strcmp(json_string_value(json_object_get(item, "type")) ?: "", "Container"))
                continue;
            for (l = 0; l < 2; l++) {
                size_t k;
                json_array_foreach(json_object_get(spec, lists[l]), k, ctr)
                    limit_check(item, ctr, &msg, &nmsg);
            }
        }
    json_decref(ranges);
    int rc = 0;
    if (msg.len) {
        /* an aggregate of several errors is printed in brackets */
        cleanup_free char *m = xasprintf(nmsg > 1 ? "[%s]" : "%s", msg.data);
        rc = forbidden(err, r, name, m);
    }
    ck_buf_free(&msg);
    return rc;
}

/* ---- ServiceAccount ---- */

/* tries < 0: wait here between lookups, as upstream.  tries >= 0: this is the request's
 * (tries+1)-th lookup, and while the default account may still come, 1 asks the caller to serve
 * the request again later (SA_RETRY_MS) instead of holding its thread. */
static int service_account(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                           json_t *pod, int tries, ck_error **err)
{
    const json_t *ann = get_path(pod, "metadata", "annotations");
    if (json_object_get((json_t *)ann, "kubernetes.io/config.mirror"))
        return 0;   /* mirror pods are the kubelet's, left as they are */
    json_t *spec = json_object_get(pod, "spec");
    if (!json_is_object(spec))
        return 0;
    const char *sa = json_string_value(json_object_get(spec, "serviceAccountName"));
    if (!sa || !*sa) {
        json_object_set_new(spec, "serviceAccountName", json_string("default"));
        json_object_set_new(spec, "serviceAccount", json_string("default"));
        sa = "default";
    }
    const ck_resource *sar = ck_resource_find("", "v1", "serviceaccounts");
    /* the default account is made by the serviceaccount controller right after a namespace:
     * like upstream, look it up a few more times before giving up */
    int attempts = strcmp(sa, "default") ? 1 : CK_ADMIT_SA_LOOKUPS;
    json_t *acct = NULL;
    ck_error *e = NULL;
    cleanup_free char *ckey = xasprintf("%s/%s", ns, sa);
    uint64_t gen = cache_gen(s, K_SA);
    acct = cache_get(s, K_SA, ckey);
    int first = tries > 0 ? tries : 0, last = tries >= 0 ? first + 1 : attempts;
    for (int i = first; i < last && !acct; i++) {
        if (i > first) {
            struct timespec ts = {0, (CK_ADMIT_SA_RETRY_MS + rand() % 100) * 1000000L};
            nanosleep(&ts, NULL);
        }
        ck_error_free(e);
        e = NULL;
        acct = ck_rest_read(s, sar, ns, sa, NULL, &e);
        if (!acct && e->code != CK_E_NOT_FOUND)
            break;
    }
    if (!acct && tries >= 0 && e && e->code == CK_E_NOT_FOUND && first + 1 < attempts) {
        ck_error_free(e);
        return 1;
    }
    if (!acct) {
        cleanup_free char *m = xasprintf("error looking up service account %s/%s: %s", ns, sa,
                                         e ? e->msg : "not found");
        ck_error_free(e);
        return forbidden(err, r, name, m);
    }
    ck_error_free(e);
    cache_put(s, K_SA, ckey, gen, acct);
    json_t *ips = json_object_get(acct, "imagePullSecrets");
    if (!json_array_size(json_object_get(spec, "imagePullSecrets")) && json_array_size(ips))
        json_object_set_new(spec, "imagePullSecrets", json_deep_copy(ips));
    /* the pod's automountServiceAccountToken wins, then the account's; default true.  Without a
     * signing key no token could be issued, so no volume is added (a deviation: upstream always
     * has a key). */
    json_t *am = json_object_get(spec, "automountServiceAccountToken");
    if (!json_is_boolean(am))
        am = json_object_get(acct, "automountServiceAccountToken");
    if (!json_is_false(am) && ck_sa_keys_can_sign(s->sa_keys))
        ck_admission_mount_token(spec);
    json_decref(acct);
    return 0;
}

/* The volume is built member by member rather than with json_pack: a pod create made the same
 * tree through json_pack's format parser and checked UTF-8 of every constant key and value, a
 * tenth of the create's tree work (test_admission compares the two). */
static json_t *obj(void)
{
    return json_object();
}

static json_t *put(json_t *o, const char *k, json_t *v)
{
    json_object_set_new_nocheck(o, k, v);
    return o;
}

static json_t *str(const char *s)
{
    return json_string_nocheck(s);
}

static json_t *one(json_t *v)
{
    json_t *a = json_array();
    json_array_append_new(a, v);
    return a;
}

json_t *ck_admission_token_volume(const char *name)
{
    json_t *sources = json_array();
    json_array_append_new(sources, put(obj(), "serviceAccountToken",
                                       put(put(obj(), "expirationSeconds",
                                               json_integer(CK_SA_TOKEN_VOLUME_SECONDS)),
                                           "path", str("token"))));
    json_array_append_new(sources, put(obj(), "configMap",
                                       put(put(obj(), "name", str("kube-root-ca.crt")), "items",
                                           one(put(put(obj(), "key", str("ca.crt")), "path",
                                                   str("ca.crt"))))));
    json_array_append_new(sources, put(obj(), "downwardAPI",
                                       put(obj(), "items",
                                           one(put(put(obj(), "path", str("namespace")), "fieldRef",
                                                   put(put(obj(), "apiVersion", str("v1")),
                                                       "fieldPath", str("metadata.namespace")))))));
    return put(put(obj(), "name", json_string(name)), "projected",
               put(put(obj(), "defaultMode", json_integer(0644)), "sources", sources));
}

void ck_admission_mount_token(json_t *spec)
{
    json_t *vols = json_object_get(spec, "volumes");
    char vname[32] = "";
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v) {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (n && !strncmp(n, "kube-api-access-", 16) && strlen(n) < sizeof vname) {
            snprintf(vname, sizeof vname, "%s", n);
            break;
        }
    }
    bool have_volume = vname[0];
    if (!have_volume) {
        char sfx[6];
        ck_meta_random_suffix(sfx);
        snprintf(vname, sizeof vname, "kube-api-access-%s", sfx);
    }
    bool needed = false;
    static const char *const lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++) {
        json_t *c;
        json_array_foreach(json_object_get(spec, lists[l]), i, c) {
            json_t *mounts = json_object_get(c, "volumeMounts");
            bool mounted = false;
            size_t j;
            json_t *m;
            json_array_foreach(mounts, j, m)
                if (!strcmp(json_string_value(json_object_get(m, "mountPath")) ?: "",
                            CK_SA_TOKEN_MOUNT_PATH))
                    mounted = true;
            if (mounted)
                continue;
            if (!json_is_array(mounts)) {
                mounts = json_array();
                json_object_set_new(c, "volumeMounts", mounts);
            }
            json_array_append_new(mounts, put(put(put(obj(), "name", json_string(vname)), "readOnly",
                                                  json_true()),
                                              "mountPath", str(CK_SA_TOKEN_MOUNT_PATH)));
            needed = true;
        }
    }
    if (have_volume || !needed)
        return;
    if (!json_is_array(vols)) {
        vols = json_array();
        json_object_set_new(spec, "volumes", vols);
    }
    json_array_append_new(vols, ck_admission_token_volume(vname));
}

/* ---- Priority ---- */

/* The class named `name`, or with name NULL the globalDefault one (JSON null when there is
 * none), as a NEW reference from the cached list; upstream's NotFound for a name not there. */
static json_t *priority_class(ck_apiserver *s, const char *name, ck_error **err)
{
    const ck_resource *pcr = ck_resource_find("scheduling.k8s.io", "v1", "priorityclasses");
    json_t *all = list_cached(s, pcr, NULL, err);
    if (!all)
        return NULL;
    json_t *best = NULL;
    size_t i;
    json_t *pc;
    /* more than one globalDefault (a race): the lowest value wins, as upstream */
    json_array_foreach(all, i, pc)
        if (name ? !strcmp(ck_meta_str(pc, "name") ?: "", name)
                 : json_is_true(json_object_get(pc, "globalDefault")) &&
                       (!best || json_integer_value(json_object_get(best, "value")) >
                                     json_integer_value(json_object_get(pc, "value"))))
            best = pc;
    json_t *out = best ? json_incref(best) : name ? NULL : json_null();
    json_decref(all);
    if (!out)
        ck_err_not_found(err, pcr, name);
    return out;
}

static int priority(ck_apiserver *s, const ck_resource *r, const char *name, json_t *pod,
                    ck_error **err)
{
    json_t *spec = json_object_get(pod, "spec");
    if (!json_is_object(spec))
        return 0;
    const char *cls = json_string_value(json_object_get(spec, "priorityClassName"));
    json_int_t value = 0;
    const char *policy = "PreemptLowerPriority";
    json_t *pc = NULL;
    if (!cls || !*cls) {
        pc = priority_class(s, NULL, err);
        if (!pc)
            return ck_error_wrap(err, "failed to get default priority class");
        if (json_is_object(pc))
            json_object_set_new(spec, "priorityClassName", json_string(ck_meta_str(pc, "name") ?: ""));
    } else {
        ck_error *e = NULL;
        pc = priority_class(s, cls, &e);
        if (!pc) {
            if (e->code == CK_E_NOT_FOUND) {
                ck_error_free(e);
                cleanup_free char *m = xasprintf("no PriorityClass with name %s was found", cls);
                return forbidden(err, r, name, m);
            }
            ck_error_pass(err, e);
            return ck_error_wrap(err, "failed to get PriorityClass with name %s", cls);
        }
    }
    if (json_is_object(pc)) {
        value = json_integer_value(json_object_get(pc, "value"));
        policy = json_string_value(json_object_get(pc, "preemptionPolicy"));
    }
    json_t *have = json_object_get(spec, "priority");
    if (json_is_integer(have) && json_integer_value(have) != value) {
        json_decref(pc);
        cleanup_free char *m = xasprintf("the integer value of priority (%lld) must not be provided "
                                         "in pod spec; priority admission controller computed %lld "
                                         "from the given PriorityClass name",
                                         (long long)json_integer_value(have), (long long)value);
        return forbidden(err, r, name, m);
    }
    json_object_set_new(spec, "priority", json_integer(value));
    if (policy) {
        const char *hp = json_string_value(json_object_get(spec, "preemptionPolicy"));
        if (hp && strcmp(hp, policy)) {
            cleanup_free char *m = xasprintf("the string value of PreemptionPolicy (%s) must not be "
                                             "provided in pod spec; priority admission controller "
                                             "computed %s from the given PriorityClass name", hp,
                                             policy);
            json_decref(pc);
            return forbidden(err, r, name, m);
        }
        json_object_set_new(spec, "preemptionPolicy", json_string(policy));
    }
    json_decref(pc);
    return 0;
}

/* A PriorityClass asking to be the globalDefault while another one is. */
static int priority_class_check(ck_apiserver *s, const ck_resource *r, const json_t *pc, bool create,
                                ck_error **err)
{
    if (!json_is_true(json_object_get(pc, "globalDefault")))
        return 0;
    json_t *dpc = priority_class(s, NULL, err);
    if (!dpc)
        return -1;
    const char *dname = ck_meta_str(dpc, "name"), *name = ck_meta_str(pc, "name");
    int rc = 0;
    if (dname && (create || strcmp(dname, name ? name : ""))) {
        cleanup_free char *m = xasprintf("PriorityClass %s is already marked as default. Only one "
                                         "default can exist", dname);
        rc = forbidden(err, r, name, m);
    }
    json_decref(dpc);
    return rc;
}

/* ---- DefaultTolerationSeconds ---- */

static void default_tolerations(json_t *pod)
{
    json_t *spec = json_object_get(pod, "spec");
    if (!json_is_object(spec))
        return;
    static const char *const keys[] = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"};
    json_t *tols = json_object_get(spec, "tolerations");
    for (size_t k = 0; k < 2; k++) {
        bool tolerated = false;
        size_t i;
        json_t *t;
        json_array_foreach(tols, i, t) {
            const char *key = json_string_value(json_object_get(t, "key")) ?: "";
            const char *eff = json_string_value(json_object_get(t, "effect")) ?: "";
            if ((!*key || !strcmp(key, keys[k])) && (!*eff || !strcmp(eff, "NoExecute")))
                tolerated = true;
        }
        if (tolerated)
            continue;
        if (!json_is_array(tols)) {
            tols = json_array();
            json_object_set_new(spec, "tolerations", tols);
        }
        json_array_append_new(tols, json_pack("{s:s,s:s,s:s,s:I}", "key", keys[k], "operator",
                                              "Exists", "effect", "NoExecute",
                                              "tolerationSeconds", (json_int_t)300));
    }
}

/* ---- entry points (mutating) ---- */

int ck_admit_create(ck_apiserver *s, const ck_resource *r, const char *ns, json_t *obj,
                    ck_error **err)
{
    return ck_admit_create_try(s, r, ns, obj, -1, err);
}

int ck_admit_create_try(ck_apiserver *s, const ck_resource *r, const char *ns, json_t *obj,
                        int tries, ck_error **err)
{
    const char *name = ck_meta_str(obj, "name");
    if (is_core(r, "pods")) {
        if (!off(s, CK_ADMIT_LIMITRANGER) && limit_ranger(s, r, ns, name, obj, err) < 0)
            return -1;
        if (!off(s, CK_ADMIT_SERVICEACCOUNT)) {
            int rc = service_account(s, r, ns, name, obj, tries, err);
            if (rc != 0)
                return rc;
        }
        if (!off(s, CK_ADMIT_PRIORITY) && priority(s, r, name, obj, err) < 0)
            return -1;
        if (!off(s, CK_ADMIT_TOLERATIONS))
            default_tolerations(obj);
    } else if (!strcmp(r->group, "scheduling.k8s.io") && !strcmp(r->resource, "priorityclasses")) {
        if (!off(s, CK_ADMIT_PRIORITY) && priority_class_check(s, r, obj, true, err) < 0)
            return -1;
    }
    return 0;
}

int ck_admit_update(ck_apiserver *s, const ck_resource *r, json_t *obj, const json_t *old,
                    ck_error **err)
{
    if (is_core(r, "pods")) {
        /* Priority set these on create; an update that leaves them out keeps them */
        json_t *spec = json_object_get(obj, "spec"), *ospec = json_object_get(old, "spec");
        if (!off(s, CK_ADMIT_PRIORITY) && json_is_object(spec)) {
            static const char *const keep[] = {"priority", "preemptionPolicy"};
            for (size_t i = 0; i < 2; i++)
                if (!json_object_get(spec, keep[i]) && json_object_get(ospec, keep[i]))
                    json_object_set(spec, keep[i], json_object_get(ospec, keep[i]));
        }
        if (!off(s, CK_ADMIT_TOLERATIONS))
            default_tolerations(obj);
    } else if (!strcmp(r->group, "scheduling.k8s.io") && !strcmp(r->resource, "priorityclasses")) {
        if (!off(s, CK_ADMIT_PRIORITY) && priority_class_check(s, r, obj, false, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- ResourceQuota ---- */

/* The resource a quota key counts: "pods", "requests.cpu" -> pods; "count/deployments.apps" ->
 * deployments; NULL for keys we do not track. */
static const ck_resource *quota_resource(const char *key)
{
    static const char *const pod_keys[] = {"pods", "cpu", "memory", "ephemeral-storage", "requests.cpu",
                                           "requests.memory", "requests.ephemeral-storage",
                                           "limits.cpu", "limits.memory", "limits.ephemeral-storage",
                                           NULL};
    for (const char *const *k = pod_keys; *k; k++)
        if (!strcmp(key, *k))
            return ck_resource_find("", "v1", "pods");
    if (!strcmp(key, "services.nodeports") || !strcmp(key, "services.loadbalancers"))
        return ck_resource_find("", "v1", "services");
    if (!strcmp(key, "requests.storage"))
        return ck_resource_find("", "v1", "persistentvolumeclaims");
    if (!strncmp(key, "count/", 6)) {
        const char *res = key + 6, *dot = strchr(res, '.');
        cleanup_free char *plural = dot ? xstrndup(res, (size_t)(dot - res)) : xstrdup(res);
        const char *group = dot ? dot + 1 : "";
        for (size_t i = 0; i < ck_nresources; i++)
            if (!strcmp(ck_resources[i].group, group) && !strcmp(ck_resources[i].resource, plural))
                return &ck_resources[i];
        return NULL;
    }
    static const char *const counted = "services configmaps secrets replicationcontrollers "
                                       "resourcequotas persistentvolumeclaims";
    if (ck_word_in(counted, key))
        return ck_resource_find("", "v1", key);
    return NULL;
}

typedef struct usage {
    json_t *milli;    /* key -> integer milli-units */
    json_t *binary;   /* key -> true when a contributing quantity had a binary suffix */
} usage;

static void use_add(usage *u, const char *key, int64_t milli, bool binary)
{
    json_t *v = json_object_get(u->milli, key);
    json_object_set_new(u->milli, key, json_integer((v ? json_integer_value(v) : 0) + milli));
    if (binary)
        json_object_set_new(u->binary, key, json_true());
}

static bool pod_terminal(const json_t *pod)
{
    const char *ph = json_string_value(get_path(pod, "status", "phase"));
    return ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"));
}

/* Pod compute usage: containers summed, the largest init container if larger (upstream's
 * PodRequests/PodLimits). */
static void pod_compute(usage *u, const json_t *pod)
{
    static const struct { const char *which, *res, *keys[2]; } map[] = {
        {"requests", "cpu", {"requests.cpu", "cpu"}},
        {"requests", "memory", {"requests.memory", "memory"}},
        {"requests", "ephemeral-storage", {"requests.ephemeral-storage", "ephemeral-storage"}},
        {"limits", "cpu", {"limits.cpu", NULL}},
        {"limits", "memory", {"limits.memory", NULL}},
        {"limits", "ephemeral-storage", {"limits.ephemeral-storage", NULL}},
    };
    const json_t *spec = json_object_get(pod, "spec");
    for (size_t m = 0; m < ARRAY_SIZE(map); m++) {
        int64_t sum = 0, init_max = 0;
        bool bin = false, any = false;
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(spec, "containers"), i, c) {
            json_t *v = get_path(get_path(c, "resources", NULL), map[m].which, map[m].res);
            int64_t x;
            if (v && qty(v, &x)) {
                sum += x;
                bin |= binary_suffix(v);
                any = true;
            }
        }
        json_array_foreach(json_object_get(spec, "initContainers"), i, c) {
            json_t *v = get_path(get_path(c, "resources", NULL), map[m].which, map[m].res);
            int64_t x;
            if (v && qty(v, &x) && x > init_max) {
                init_max = x;
                bin |= binary_suffix(v);
                any = true;
            }
        }
        if (!any)
            continue;
        for (size_t k = 0; k < 2 && map[m].keys[k]; k++)
            use_add(u, map[m].keys[k], sum > init_max ? sum : init_max, bin);
    }
}

/* What one object of resource r counts against a quota. */
static void object_usage(usage *u, const ck_resource *r, const json_t *obj)
{
    if (is_core(r, "pods") && pod_terminal(obj))
        return;
    cleanup_free char *count = r->group[0] ? xasprintf("count/%s.%s", r->resource, r->group)
                                           : xasprintf("count/%s", r->resource);
    use_add(u, count, 1000, false);
    if (!r->group[0] && quota_resource(r->resource) == r)
        use_add(u, r->resource, 1000, false);
    if (is_core(r, "pods")) {
        pod_compute(u, obj);
    } else if (is_core(r, "services")) {
        const json_t *spec = json_object_get(obj, "spec");
        const char *type = json_string_value(json_object_get(spec, "type")) ?: "";
        bool lb = !strcmp(type, "LoadBalancer");
        if (lb)
            use_add(u, "services.loadbalancers", 1000, false);
        if (lb || !strcmp(type, "NodePort"))
            use_add(u, "services.nodeports", 1000 * (int64_t)json_array_size(json_object_get(spec, "ports")), false);
    } else if (is_core(r, "persistentvolumeclaims")) {
        json_t *v = get_path(get_path(obj, "spec", "resources"), "requests", "storage");
        int64_t x;
        if (v && qty(v, &x))
            use_add(u, "requests.storage", x, binary_suffix(v));
    }
}

static void usage_init(usage *u)
{
    u->milli = json_object();
    u->binary = json_object();
}

static void usage_free(usage *u)
{
    json_decref(u->milli);
    json_decref(u->binary);
}


/* Terminating / NotTerminating / BestEffort / NotBestEffort scopes (pods only). */
static bool quota_matches(const json_t *quota, const ck_resource *r, const json_t *obj)
{
    size_t i;
    json_t *sc;
    json_array_foreach(get_path(quota, "spec", "scopes"), i, sc) {
        const char *scope = json_string_value(sc) ?: "";
        if (!is_core(r, "pods"))
            return false;   /* scoped quotas count pods only */
        const json_t *spec = json_object_get(obj, "spec");
        bool terminating = json_object_get(spec, "activeDeadlineSeconds") != NULL;
        usage u;
        usage_init(&u);
        pod_compute(&u, obj);
        bool best_effort = json_object_size(u.milli) == 0;
        usage_free(&u);
        if ((!strcmp(scope, "Terminating") && !terminating) ||
            (!strcmp(scope, "NotTerminating") && terminating) ||
            (!strcmp(scope, "BestEffort") && !best_effort) ||
            (!strcmp(scope, "NotBestEffort") && best_effort))
            return false;
    }
    return true;
}

/* Sum the usage of every stored object of r in ns that the quota's scopes select. */
static int recount(ck_apiserver *s, const ck_resource *r, const char *ns, const json_t *quota,
                   usage *u, ck_error **err)
{
    json_t *objs = list_objs(s, r, ns, err);
    if (!objs)
        return -1;
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o)
        if (quota_matches(quota, r, o))
            object_usage(u, r, o);
    json_decref(objs);
    return 0;
}

/* "k1=v1,k2=v2" in key order, for the keys in `keys`. */
static char *pretty(const json_t *milli, const json_t *binary, const json_t *keys)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)keys, k, v) {
        json_t *m = json_object_get(milli, k);
        char q[32];
        qty_format(m ? json_integer_value(m) : 0, json_is_true(json_object_get(binary, k)), q);
        ck_buf_printf(&b, "%s%s=%s", b.len ? "," : "", k, q);
    }
    char *out = xstrdup(b.len ? b.data : "");
    ck_buf_free(&b);
    return out;
}

/* Constraints: a quota on cpu or memory needs every container to state it (upstream keeps this
 * for backward compatibility). */
static char *pod_missing(const json_t *hard, const json_t *pod)
{
    static const struct { const char *key, *which, *res; } need[] = {
        {"cpu", "requests", "cpu"}, {"limits.cpu", "limits", "cpu"},
        {"limits.memory", "limits", "memory"}, {"memory", "requests", "memory"},
        {"requests.cpu", "requests", "cpu"}, {"requests.memory", "requests", "memory"},
    };
    ck_buf b;
    ck_buf_init(&b, 0);
    static const char *const lists[] = {"containers", "initContainers"};
    for (size_t n = 0; n < ARRAY_SIZE(need); n++) {
        if (!json_object_get((json_t *)hard, need[n].key))
            continue;
        ck_buf names;
        ck_buf_init(&names, 0);
        for (size_t l = 0; l < 2; l++) {
            size_t i;
            json_t *c;
            json_array_foreach(get_path(pod, "spec", lists[l]), i, c)
                if (!get_path(get_path(c, "resources", NULL), need[n].which, need[n].res))
                    ck_buf_printf(&names, "%s%s", names.len ? "," : "",
                                  json_string_value(json_object_get(c, "name")) ?: "");
        }
        if (names.len)
            ck_buf_printf(&b, "%s%s for: %s", b.len ? "; " : "", need[n].key, names.data);
        ck_buf_free(&names);
    }
    char *out = b.len ? xasprintf("must specify %s", b.data) : NULL;
    ck_buf_free(&b);
    return out;
}

/* status.used for every key of hard whose resource is r (recounted) plus whatever the quota
 * had for the other keys; NEW object of quantity strings. */
static json_t *used_for(const json_t *quota, const json_t *hard, const ck_resource *r,
                        const usage *u, const usage *extra)
{
    json_t *used = json_object();
    json_t *old = get_path(quota, "status", "used");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)hard, k, v) {
        const ck_resource *kr = quota_resource(k);
        if (kr != r) {
            json_t *o = json_object_get(old, k);
            json_object_set_new(used, k, o ? json_incref(o) : json_string("0"));
            continue;
        }
        json_t *m = json_object_get(u->milli, k);
        json_t *x = extra ? json_object_get(extra->milli, k) : NULL;
        int64_t total = (m ? json_integer_value(m) : 0) + (x ? json_integer_value(x) : 0);
        bool bin = json_is_true(json_object_get(u->binary, k)) || binary_suffix(v) ||
                   (extra && json_is_true(json_object_get(extra->binary, k)));
        char q[32];
        qty_format(total, bin, q);
        json_object_set_new(used, k, json_string(q));
    }
    return used;
}

static int write_quota_status(ck_apiserver *s, json_t *quota, json_t *used /* stolen */,
                              ck_error **err)
{
    const ck_resource *rq = ck_resource_find("", "v1", "resourcequotas");
    json_t *st = json_object_get(quota, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(quota, "status", st);
    }
    json_t *hard = get_path(quota, "spec", "hard");
    if (json_equal(json_object_get(st, "used"), used) && json_equal(json_object_get(st, "hard"), hard)) {
        json_decref(used);
        return 0;
    }
    json_object_set_new(st, "hard", json_is_object(hard) ? json_incref(hard) : json_object());
    json_object_set_new(st, "used", used);
    const char *rv = ck_meta_str(quota, "resourceVersion");
    return ck_rest_store_update(s, rq, quota, rv ? strtoll(rv, NULL, 10) : 0, err);
}

void ck_quota_fill_status(ck_apiserver *s, json_t *quota)
{
    if (off(s, CK_ADMIT_RESOURCEQUOTA))
        return;
    const char *ns = ck_meta_str(quota, "namespace");
    json_t *hard = get_path(quota, "spec", "hard");
    json_t *used = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(hard, k, v) {
        const ck_resource *kr = quota_resource(k);
        usage u;
        usage_init(&u);
        if (kr && recount(s, kr, ns, quota, &u, NULL) == 0) {
            json_t *m = json_object_get(u.milli, k);
            char q[32];
            qty_format(m ? json_integer_value(m) : 0,
                       json_is_true(json_object_get(u.binary, k)) || binary_suffix(v), q);
            json_object_set_new(used, k, json_string(q));
        } else {
            json_object_set_new(used, k, json_string("0"));
        }
        usage_free(&u);
    }
    json_t *st = json_object();
    json_object_set_new(st, "hard", json_is_object(hard) ? json_incref(hard) : json_object());
    json_object_set_new(st, "used", used);
    json_object_set_new(quota, "status", st);
}

static pthread_mutex_t quota_mu = PTHREAD_MUTEX_INITIALIZER;

int ck_quota_admit(ck_apiserver *s, const ck_resource *r, const char *ns, const json_t *obj,
                   bool dry_run, bool *locked, ck_error **err)
{
    *locked = false;
    if (off(s, CK_ADMIT_RESOURCEQUOTA) || !r->namespaced || !ns)
        return 0;
    const ck_resource *rq = ck_resource_find("", "v1", "resourcequotas");
    json_t *quotas = list_cached(s, rq, ns, err);
    if (!quotas)
        return -1;
    if (!json_array_size(quotas)) {
        json_decref(quotas);
        return 0;
    }
    usage req;
    usage_init(&req);
    object_usage(&req, r, obj);
    const char *name = ck_meta_str(obj, "name");
    pthread_mutex_lock(&quota_mu);
    *locked = true;
    /* re-read under the lock: another create may have charged them meanwhile */
    json_decref(quotas);
    quotas = list_objs(s, rq, ns, err);
    int rc = quotas ? 0 : -1;
    json_t *updated = json_array();   /* [quota, new status.used] pairs */
    size_t i;
    json_t *q;
    json_array_foreach(quotas, i, q) {
        json_t *hard = get_path(q, "spec", "hard");
        json_t *tracked = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(hard, k, v)
            if (quota_resource(k) == r)
                json_object_set(tracked, k, v);
        if (!json_object_size(tracked) || !quota_matches(q, r, obj)) {
            json_decref(tracked);
            continue;
        }
        if (is_core(r, "pods")) {
            char *miss = pod_missing(hard, obj);
            if (miss) {
                cleanup_free char *m = xasprintf("failed quota: %s: %s", ck_meta_str(q, "name"), miss);
                free(miss);
                json_decref(tracked);
                rc = forbidden(err, r, name, m);
                break;
            }
        }
        usage cur;
        usage_init(&cur);
        if (recount(s, r, ns, q, &cur, err) < 0) {
            usage_free(&cur);
            json_decref(tracked);
            rc = -1;
            break;
        }
        json_t *exceeded = json_object();
        json_object_foreach(tracked, k, v) {
            int64_t limit = 0;
            json_t *m = json_object_get(cur.milli, k), *x = json_object_get(req.milli, k);
            if (!x)
                continue;   /* only what this object asks for is compared */
            int64_t after = (m ? json_integer_value(m) : 0) + json_integer_value(x);
            if (qty(v, &limit) && after > limit)
                json_object_set(exceeded, k, v);
        }
        json_decref(tracked);
        if (json_object_size(exceeded)) {
            cleanup_free char *rs = pretty(req.milli, req.binary, exceeded);
            cleanup_free char *us = pretty(cur.milli, cur.binary, exceeded);
            /* the limits as the quota states them */
            ck_buf lb;
            ck_buf_init(&lb, 0);
            json_object_foreach(exceeded, k, v) {
                int64_t lm = 0;
                char qs[32];
                qty(v, &lm);
                qty_format(lm, binary_suffix(v), qs);
                ck_buf_printf(&lb, "%s%s=%s", lb.len ? "," : "", k, qs);
            }
            cleanup_free char *m = xasprintf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
                                             ck_meta_str(q, "name"), rs, us, lb.data ? lb.data : "");
            ck_buf_free(&lb);
            json_decref(exceeded);
            usage_free(&cur);
            rc = forbidden(err, r, name, m);
            break;
        }
        json_decref(exceeded);
        json_array_append_new(updated, json_pack("[O,o]", q, used_for(q, hard, r, &cur, &req)));
        usage_free(&cur);
    }
    if (rc == 0 && !dry_run) {
        json_t *pair;
        json_array_foreach(updated, i, pair) {
            q = json_array_get(pair, 0);
            ck_error *e = NULL;
            if (write_quota_status(s, q, json_incref(json_array_get(pair, 1)), &e) < 0) {
                /* the count is redone on the next write; a lost update only delays status */
                log_warn("resourcequota %s/%s: status: %s", ns, ck_meta_str(q, "name"), e->msg);
                ck_error_free(e);
            }
        }
    }
    json_decref(updated);
    json_decref(quotas);
    usage_free(&req);
    if (rc < 0 || dry_run) {
        pthread_mutex_unlock(&quota_mu);
        *locked = false;
    }
    return rc;
}

void ck_quota_done(bool locked)
{
    if (locked)
        pthread_mutex_unlock(&quota_mu);
}

bool ck_quota_may_track(ck_apiserver *s, const ck_resource *r, const char *ns)
{
    if (off(s, CK_ADMIT_RESOURCEQUOTA) || !r->namespaced || !ns)
        return false;
    const ck_resource *rq = ck_resource_find("", "v1", "resourcequotas");
    json_t *quotas = list_cached(s, rq, ns, NULL);
    bool any = !quotas || json_array_size(quotas) > 0;   /* unknown: assume one */
    json_decref(quotas);
    return any;
}

void ck_quota_refresh(ck_apiserver *s, const ck_resource *r, const char *ns)
{
    if (off(s, CK_ADMIT_RESOURCEQUOTA) || !r->namespaced || !ns)
        return;
    const ck_resource *rq = ck_resource_find("", "v1", "resourcequotas");
    json_t *quotas = list_cached(s, rq, ns, NULL);
    if (!json_array_size(quotas)) {
        json_decref(quotas);
        return;
    }
    pthread_mutex_lock(&quota_mu);
    json_decref(quotas);
    quotas = list_objs(s, rq, ns, NULL);
    size_t i;
    json_t *q;
    json_array_foreach(quotas, i, q) {
        json_t *hard = get_path(q, "spec", "hard");
        bool relevant = false;
        const char *k;
        json_t *v;
        json_object_foreach(hard, k, v)
            if (quota_resource(k) == r)
                relevant = true;
        if (!relevant)
            continue;
        usage cur;
        usage_init(&cur);
        ck_error *e = NULL;
        if (recount(s, r, ns, q, &cur, &e) < 0 ||
            write_quota_status(s, q, used_for(q, hard, r, &cur, NULL), &e) < 0) {
            log_warn("resourcequota %s/%s: status: %s", ns, ck_meta_str(q, "name"), e->msg);
            ck_error_free(e);
        }
        usage_free(&cur);
    }
    pthread_mutex_unlock(&quota_mu);
    json_decref(quotas);
}

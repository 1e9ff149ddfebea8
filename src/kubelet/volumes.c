/* volumes.c - a pod's volumes and its containers' environment.
 *
 * Volumes live in POD/volumes/<name> and are bind-mounted into containers (volumeMounts with
 * readOnly and subPath).  emptyDir: a directory, or a tmpfs for medium Memory (sizeLimit as its
 * size).  hostPath: the host path (DirectoryOrCreate / FileOrCreate make it).  configMap, secret,
 * downwardAPI and projected: files written once at pod start (keys or items, defaultMode/mode;
 * secret data base64-decoded); they are not refreshed while the pod runs, except projected
 * serviceAccountToken sources: a TokenRequest bound to the pod (audience, expirationSeconds),
 * requested again once 80% of the token's lifetime has passed, as upstream's token manager does.
 *
 * Env: the image's Env, the `kubernetes` Service's KUBERNETES_SERVICE_HOST/PORT family (as
 * upstream gives every pod; other services' links are not made), then env in order with $(VAR)
 * references to earlier entries expanded, valueFrom fieldRef / resourceFieldRef / configMapKeyRef
 * / secretKeyRef, and envFrom prefixes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kubelet/pods.h"
#include "lib/base64.h"
#include "lib/quantity.h"
#include "lib/util.h"

static char *vol_dir(const pod_rec *r, const char *name)
{
    return xasprintf("%s/volumes/%s", r->dir, name);
}

/* A Secret's data as bytes: data (base64), else stringData (an API server that keeps it). */
static char *secret_value(json_t *obj, const char *key, size_t *len)
{
    const char *v = json_string_value(json_object_get(json_object_get(obj, "data"), key));
    if (v)
        return (char *)ck_b64_decode(v, len);
    v = json_string_value(json_object_get(json_object_get(obj, "stringData"), key));
    if (!v)
        return NULL;
    *len = strlen(v);
    return xstrdup(v);
}

/* All of a Secret's keys, values decoded (a NEW object). */
static json_t *secret_all(json_t *obj)
{
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(obj, "stringData"), key, v)
        json_object_set(out, key, v);
    json_object_foreach(json_object_get(obj, "data"), key, v) {
        size_t l;
        char *d = (char *)ck_b64_decode(json_string_value(v) ?: "", &l);
        json_object_set_new(out, key, json_stringn(d ? d : "", d ? l : 0));
        free(d);
    }
    return out;
}

static json_t *get_obj(ck_kubelet *k, const char *resource, const char *ns, const char *name,
                       ck_error **err)
{
    return ck_client_get(k->client, ck_resource_find("", "v1", resource), ns, name, err);
}

/* A field of the pod by fieldRef path ("metadata.name", "metadata.labels['app']", ...). */
static char *field_value(pod_rec *r, json_t *pod, const char *path, ck_error **err)
{
    json_t *md = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
    const char *v = NULL;
    if (!strcmp(path, "metadata.name"))
        v = r->name;
    else if (!strcmp(path, "metadata.namespace"))
        v = r->ns;
    else if (!strcmp(path, "metadata.uid"))
        v = r->uid;
    else if (!strcmp(path, "spec.nodeName"))
        v = json_string_value(json_object_get(spec, "nodeName"));
    else if (!strcmp(path, "spec.serviceAccountName"))
        v = json_string_value(json_object_get(spec, "serviceAccountName"));
    else if (!strcmp(path, "status.podIP") || !strcmp(path, "status.podIPs"))
        v = r->ip;
    else if (!strcmp(path, "status.hostIP") || !strcmp(path, "status.hostIPs"))
        v = NULL;
    else if (!strncmp(path, "metadata.labels['", 17) || !strncmp(path, "metadata.annotations['", 22)) {
        bool lab = path[9] == 'l';
        const char *ks = path + (lab ? 17 : 22);
        size_t kl = strcspn(ks, "'");
        cleanup_free char *key = xstrndup(ks, kl);
        v = json_string_value(json_object_get(json_object_get(md, lab ? "labels" : "annotations"), key));
        return xstrdup(v ? v : "");
    } else if (!strcmp(path, "metadata.labels") || !strcmp(path, "metadata.annotations")) {
        ck_buf b;
        ck_buf_init(&b, 0);
        const char *key;
        json_t *val;
        json_object_foreach(json_object_get(md, path + 9), key, val)
            ck_buf_printf(&b, "%s=\"%s\"\n", key, json_string_value(val));
        return ck_buf_steal(&b);
    } else {
        ck_error_set(err, CK_E_INVALID, "unsupported fieldRef %s", path);
        return NULL;
    }
    return xstrdup(v ? v : "");
}

static char *resource_value(json_t *pod, const char *cname, json_t *ref, ck_error **err)
{
    const char *res = json_string_value(json_object_get(ref, "resource"));
    const char *cn = json_string_value(json_object_get(ref, "containerName"));
    if (!cn || !*cn)
        cn = cname;
    if (!res)
        return ck_error_set(err, CK_E_INVALID, "resourceFieldRef without resource"), NULL;
    json_t *c = NULL, *x;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, x)
        if (!strcmp(json_string_value(json_object_get(x, "name")) ?: "", cn))
            c = x;
    const char *dot = strchr(res, '.');
    if (!dot)
        return ck_error_set(err, CK_E_INVALID, "bad resource %s", res), NULL;
    cleanup_free char *kind = xstrndup(res, (size_t)(dot - res));
    const char *q = json_string_value(json_object_get(json_object_get(json_object_get(c, "resources"), kind), dot + 1));
    bool cpu = !strcmp(dot + 1, "cpu");
    if (!q)
        return xstrdup(cpu ? "2" : "0");  /* unset limit: the node's allocatable; requests: 0 */
    const char *div = json_string_value(json_object_get(ref, "divisor"));
    int64_t v, d = 1;
    if (cpu) {
        ck_quantity_parse_milli(q, &v);
        if (div)
            ck_quantity_parse_milli(div, &d);
        else
            d = 1000;
    } else {
        ck_quantity_parse(q, &v);
        if (div)
            ck_quantity_parse(div, &d);
    }
    if (d <= 0)
        d = 1;
    return xasprintf("%lld", (long long)((v + d - 1) / d));
}

static char *key_ref(ck_kubelet *k, pod_rec *r, json_t *ref, bool secret, ck_error **err)
{
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *key = json_string_value(json_object_get(ref, "key"));
    bool optional = json_is_true(json_object_get(ref, "optional"));
    ck_error *e = NULL;
    json_t *obj = name ? get_obj(k, secret ? "secrets" : "configmaps", r->ns, name, &e) : NULL;
    if (!obj) {
        if (optional) {
            ck_error_free(e);
            return NULL;
        }
        ck_error_set(err, CK_E_NOT_FOUND, "%s \"%s\" not found", secret ? "secret" : "configmap", name ? name : "");
        ck_error_free(e);
        return NULL;
    }
    const char *v = json_string_value(json_object_get(json_object_get(obj, "data"), key ? key : ""));
    char *out = NULL;
    if (secret) {
        size_t l;
        out = secret_value(obj, key ? key : "", &l);
    } else if (v) {
        out = xstrdup(v);
    } else if (!secret && (v = json_string_value(json_object_get(json_object_get(obj, "binaryData"), key ? key : "")))) {
        out = xstrdup(v);
    }
    json_decref(obj);
    if (!out && !optional)
        ck_error_set(err, CK_E_NOT_FOUND, "couldn't find key %s in %s %s/%s", key ? key : "",
                     secret ? "Secret" : "ConfigMap", r->ns, name);
    return out;
}

/* $(VAR) -> value of VAR defined earlier; $$(VAR) -> $(VAR) literally. */
static char *expand(const char *s, json_t *vars)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    for (const char *p = s; *p;) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '(') {
            ck_buf_addstr(&b, "$");
            p += 2;
            continue;
        }
        if (p[0] == '$' && p[1] == '(') {
            const char *end = strchr(p + 2, ')');
            if (end) {
                cleanup_free char *name = xstrndup(p + 2, (size_t)(end - p - 2));
                const char *v = json_string_value(json_object_get(vars, name));
                if (v) {
                    ck_buf_addstr(&b, v);
                    p = end + 1;
                    continue;
                }
            }
        }
        ck_buf_add(&b, p, 1);
        p++;
    }
    return ck_buf_steal(&b);
}

/* The default/kubernetes Service as docker-link env vars, cached for 30 s (it rarely changes and
 * every container start wants it).  No service, no vars (upstream waits for the service lister's
 * sync; we do not hold a container back for it). */
static pthread_mutex_t master_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *master_vars;
static int64_t master_at;

static json_t *master_env_build(json_t *svc)
{
    json_t *out = json_object();
    json_t *spec = json_object_get(svc, "spec");
    const char *ip = json_string_value(json_object_get(spec, "clusterIP"));
    json_t *ports = json_object_get(spec, "ports");
    if (!ip || !*ip || !strcmp(ip, "None") || !json_array_size(ports))
        return out;
    json_object_set_new(out, "KUBERNETES_SERVICE_HOST", json_string(ip));
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p) {
        long port = (long)json_integer_value(json_object_get(p, "port"));
        const char *name = json_string_value(json_object_get(p, "name"));
        const char *proto = json_string_value(json_object_get(p, "protocol")) ?: "TCP";
        char lp[16], buf[128], key[160];
        snprintf(lp, sizeof lp, "%s", proto);
        for (char *c = lp; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        snprintf(buf, sizeof buf, "%ld", port);
        if (i == 0) {
            json_object_set_new(out, "KUBERNETES_SERVICE_PORT", json_string(buf));
            json_object_set_new(out, "KUBERNETES_PORT",
                                json_sprintf("%s://%s:%ld", lp, ip, port));
        }
        if (name && *name) {
            snprintf(key, sizeof key, "KUBERNETES_SERVICE_PORT_%s", name);
            for (char *c = key; *c; c++)
                *c = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
            json_object_set_new(out, key, json_string(buf));
        }
        char pfx[96];
        snprintf(pfx, sizeof pfx, "KUBERNETES_PORT_%ld_%s", port, proto);
        json_object_set_new(out, pfx, json_sprintf("%s://%s:%ld", lp, ip, port));
        snprintf(key, sizeof key, "%s_PROTO", pfx);
        json_object_set_new(out, key, json_string(lp));
        snprintf(key, sizeof key, "%s_PORT", pfx);
        json_object_set_new(out, key, json_string(buf));
        snprintf(key, sizeof key, "%s_ADDR", pfx);
        json_object_set_new(out, key, json_string(ip));
    }
    return out;
}

static void master_service_env(ck_kubelet *k, json_t *vars)
{
    int64_t now = ck_now_ns();
    pthread_mutex_lock(&master_mu);
    if (!master_vars || now - master_at > 30 * 1000000000LL) {
        ck_error *e = NULL;
        json_t *svc = get_obj(k, "services", "default", "kubernetes", &e);
        ck_error_free(e);
        if (svc || !master_vars) {
            json_decref(master_vars);
            master_vars = master_env_build(svc);
            master_at = now;
        }
        json_decref(svc);
    }
    json_object_update(vars, master_vars);
    pthread_mutex_unlock(&master_mu);
}

json_t *ck_env_resolve(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *container,
                       const ck_image *img, ck_error **err)
{
    json_t *vars = json_object();  /* ordered by insertion in jansson >= 2.8 */
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(img ? img->config : NULL, "Env"), i, e) {
        const char *kv = json_string_value(e);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq)
            continue;
        cleanup_free char *key = xstrndup(kv, (size_t)(eq - kv));
        json_object_set_new(vars, key, json_string(eq + 1));
    }
    if (!json_object_get(vars, "PATH"))
        json_object_set_new(vars, "PATH", json_string("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    json_object_set_new(vars, "HOSTNAME", json_string(r->name));
    master_service_env(k, vars);
    const char *cname = json_string_value(json_object_get(container, "name"));
    json_array_foreach(json_object_get(container, "envFrom"), i, e) {
        const char *prefix = json_string_value(json_object_get(e, "prefix"));
        json_t *ref = json_object_get(e, "configMapRef");
        bool secret = false;
        if (!ref) {
            ref = json_object_get(e, "secretRef");
            secret = true;
        }
        const char *name = json_string_value(json_object_get(ref, "name"));
        if (!name)
            continue;
        ck_error *ge = NULL;
        json_t *obj = get_obj(k, secret ? "secrets" : "configmaps", r->ns, name, &ge);
        if (!obj) {
            ck_error_free(ge);
            if (json_is_true(json_object_get(ref, "optional")))
                continue;
            ck_error_set(err, CK_E_NOT_FOUND, "%s \"%s\" not found", secret ? "secret" : "configmap", name);
            json_decref(vars);
            return NULL;
        }
        const char *key;
        json_t *v;
        json_t *data = secret ? secret_all(obj) : json_incref(json_object_get(obj, "data"));
        json_object_foreach(data, key, v) {
            cleanup_free char *full = xasprintf("%s%s", prefix ? prefix : "", key);
            json_object_set(vars, full, v);
        }
        json_decref(data);
        json_decref(obj);
    }
    json_array_foreach(json_object_get(container, "env"), i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name)
            continue;
        json_t *vf = json_object_get(e, "valueFrom");
        char *val = NULL;
        if (!vf) {
            const char *v = json_string_value(json_object_get(e, "value"));
            val = expand(v ? v : "", vars);
        } else if (json_object_get(vf, "fieldRef")) {
            val = field_value(r, pod, json_string_value(json_object_get(json_object_get(vf, "fieldRef"), "fieldPath")) ?: "", err);
        } else if (json_object_get(vf, "resourceFieldRef")) {
            val = resource_value(pod, cname, json_object_get(vf, "resourceFieldRef"), err);
        } else if (json_object_get(vf, "configMapKeyRef")) {
            val = key_ref(k, r, json_object_get(vf, "configMapKeyRef"), false, err);
            if (!val && err && !*err)
                continue;
        } else if (json_object_get(vf, "secretKeyRef")) {
            val = key_ref(k, r, json_object_get(vf, "secretKeyRef"), true, err);
            if (!val && err && !*err)
                continue;
        }
        if (!val) {
            json_decref(vars);
            return NULL;
        }
        json_object_set_new(vars, name, json_string(val));
        free(val);
    }
    json_t *out = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(vars, key, v) {
        char *kv = xasprintf("%s=%s", key, json_string_value(v));
        json_array_append_new(out, json_string(kv));
        free(kv);
    }
    json_decref(vars);
    return out;
}

json_t *ck_pull_auths(ck_kubelet *k, pod_rec *r, json_t *pod)
{
    json_t *auths = json_object();
    size_t i;
    json_t *ref;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "imagePullSecrets"), i, ref) {
        const char *name = json_string_value(json_object_get(ref, "name"));
        ck_error *e = NULL;
        json_t *sec = name ? get_obj(k, "secrets", r->ns, name, &e) : NULL;
        ck_error_free(e);
        if (!sec)
            continue;
        const char *type = json_string_value(json_object_get(sec, "type")) ?: "";
        bool cfgjson = !strcmp(type, "kubernetes.io/dockerconfigjson");
        size_t len = 0;
        cleanup_free char *raw = !cfgjson && strcmp(type, "kubernetes.io/dockercfg") ? NULL
                                 : secret_value(sec, cfgjson ? ".dockerconfigjson" : ".dockercfg", &len);
        json_t *doc = raw ? json_loadb(raw, len, 0, NULL) : NULL;
        /* .dockercfg is the bare auths map; .dockerconfigjson wraps it in "auths" */
        json_t *map = cfgjson ? json_object_get(doc, "auths") : doc;
        const char *key;
        json_t *v;
        json_object_foreach(map, key, v)
            if (!json_object_get(auths, key))   /* the first secret naming a registry wins */
                json_object_set(auths, key, v);
        json_decref(doc);
        json_decref(sec);
    }
    return json_pack("{s:o}", "auths", auths);
}

/* ---------------- volumes ---------------- */

static int write_item(const char *dir, const char *path, const char *data, size_t len, int mode,
                      ck_error **err)
{
    if (strstr(path, "..") || path[0] == '/')
        return ck_error_set(err, CK_E_INVALID, "invalid volume item path %s", path);
    cleanup_free char *full = xasprintf("%s/%s", dir, path);
    char *slash = strrchr(full, '/');
    *slash = '\0';
    ck_mkdir_p(full, 0755);
    *slash = '/';
    /* no fsync: a restarted kubelet writes every volume again */
    if (ck_write_file_nosync(full, data, len, mode) < 0)
        return ck_error_sys(err, CK_E_IO, "write %s", full);
    return 0;
}

/* configMap / secret keys (or items) into dir. */
static int keys_volume(ck_kubelet *k, pod_rec *r, json_t *src, bool secret, const char *dir,
                       int def_mode, ck_error **err)
{
    const char *name = json_string_value(json_object_get(src, secret ? "secretName" : "name"));
    bool optional = json_is_true(json_object_get(src, "optional"));
    json_t *m = json_object_get(src, "defaultMode");
    int mode = json_is_integer(m) ? (int)json_integer_value(m) : def_mode;
    ck_error *e = NULL;
    json_t *obj = name ? get_obj(k, secret ? "secrets" : "configmaps", r->ns, name, &e) : NULL;
    if (!obj) {
        ck_error_free(e);
        if (optional)
            return 0;
        return ck_error_set(err, CK_E_NOT_FOUND, "%s \"%s\" not found", secret ? "secret" : "configmap",
                            name ? name : "");
    }
    json_t *data = secret ? secret_all(obj) : json_incref(json_object_get(obj, "data"));
    json_t *items = json_object_get(src, "items");
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(data, key, v) {
        const char *path = key;
        int imode = mode;
        if (json_array_size(items)) {
            path = NULL;
            size_t i;
            json_t *it;
            json_array_foreach(items, i, it)
                if (!strcmp(json_string_value(json_object_get(it, "key")) ?: "", key)) {
                    path = json_string_value(json_object_get(it, "path"));
                    if (json_is_integer(json_object_get(it, "mode")))
                        imode = (int)json_integer_value(json_object_get(it, "mode"));
                }
            if (!path)
                continue;
        }
        const char *s = json_string_value(v);
        rc = write_item(dir, path, s ? s : "", s ? json_string_length(v) : 0, imode, err);
        if (rc < 0)
            break;
    }
    json_decref(data);
    json_decref(obj);
    return rc;
}

static int downward_volume(pod_rec *r, json_t *pod, json_t *src, const char *dir, ck_error **err)
{
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(src, "items"), i, it) {
        const char *path = json_string_value(json_object_get(it, "path"));
        if (!path)
            continue;
        char *v = NULL;
        if (json_object_get(it, "fieldRef"))
            v = field_value(r, pod, json_string_value(json_object_get(json_object_get(it, "fieldRef"), "fieldPath")) ?: "", err);
        else if (json_object_get(it, "resourceFieldRef"))
            v = resource_value(pod, "", json_object_get(it, "resourceFieldRef"), err);
        if (!v)
            return -1;
        int rc = write_item(dir, path, v, strlen(v), 0644, err);
        free(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* A projected serviceAccountToken source: a TokenRequest for the pod's service account bound to
 * the pod, written to its path; *refresh_at lowered to the wall second it is due for renewal. */
static int token_source(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *src, const char *dir,
                        int mode, int64_t *refresh_at, ck_error **err)
{
    const char *path = json_string_value(json_object_get(src, "path"));
    if (!path || !*path)
        return ck_error_set(err, CK_E_INVALID, "serviceAccountToken: path is required");
    json_t *es = json_object_get(src, "expirationSeconds");
    json_int_t secs = json_is_integer(es) ? json_integer_value(es) : 3600;
    const char *aud = json_string_value(json_object_get(src, "audience"));
    json_t *spec = json_object_get(pod, "spec");
    const char *sa = json_string_value(json_object_get(spec, "serviceAccountName"));
    if (!sa || !*sa)
        sa = "default";
    json_t *req = json_pack("{s:s,s:s,s:{s:I,s:{s:s,s:s,s:s,s:s}}}", "apiVersion",
                            "authentication.k8s.io/v1", "kind", "TokenRequest", "spec",
                            "expirationSeconds", secs, "boundObjectRef", "apiVersion", "v1",
                            "kind", "Pod", "name", r->name, "uid", r->uid);
    if (aud && *aud)
        json_object_set_new(json_object_get(req, "spec"), "audiences", json_pack("[s]", aud));
    cleanup_free char *url = ck_client_path(ck_resource_find("", "v1", "serviceaccounts"), r->ns,
                                            sa, "token");
    json_t *resp = ck_client_request(k->client, "POST", url, req, NULL, err);
    json_decref(req);
    if (!resp)
        return ck_error_wrap(err, "failed to fetch token");
    json_t *st = json_object_get(resp, "status");
    const char *tok = json_string_value(json_object_get(st, "token"));
    const char *exps = json_string_value(json_object_get(st, "expirationTimestamp"));
    int64_t now = ck_wall_ns() / 1000000000, exp = 0;
    if (!tok || !exps || ck_parse_rfc3339(exps, &exp) < 0) {
        json_decref(resp);
        return ck_error_set(err, CK_E_INTERNAL, "failed to fetch token: no token in the response");
    }
    int rc = write_item(dir, path, tok, strlen(tok), mode, err);
    json_decref(resp);
    if (rc < 0)
        return -1;
    /* renew at 80% of the lifetime, or after 24 h, whichever comes first */
    int64_t ttl = exp > now ? exp - now : 0;
    int64_t at = now + (ttl * 8 / 10 < 86400 ? ttl * 8 / 10 : 86400);
    if (!*refresh_at || at < *refresh_at)
        *refresh_at = at;
    return 0;
}

static int projected_mode(json_t *src)
{
    json_t *m = json_object_get(src, "defaultMode");
    return json_is_integer(m) ? (int)json_integer_value(m) : 0644;
}

int ck_volumes_refresh_tokens(ck_kubelet *k, pod_rec *r, json_t *pod, ck_error **err)
{
    int64_t at = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "volumes"), i, v) {
        json_t *src = json_object_get(v, "projected");
        const char *name = json_string_value(json_object_get(v, "name"));
        if (!src || !name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
            continue;
        cleanup_free char *dir = vol_dir(r, name);
        size_t j;
        json_t *ps, *t;
        json_array_foreach(json_object_get(src, "sources"), j, ps)
            if ((t = json_object_get(ps, "serviceAccountToken")) &&
                token_source(k, r, pod, t, dir, projected_mode(src), &at, err) < 0)
                return ck_error_wrap(err, "volume %s", name);
    }
    r->token_refresh_at = at;
    return 0;
}

/* A claim bound to a hostPath or local volume: its path bind-mounted at dir.  An unbound claim
 * is an error the sync loop retries (the pod stays ContainerCreating). */
static int pvc_volume(ck_kubelet *k, pod_rec *r, json_t *src, const char *dir, ck_error **err)
{
    const char *cn = json_string_value(json_object_get(src, "claimName"));
    if (!cn || !*cn)
        return ck_error_set(err, CK_E_INVALID, "persistentVolumeClaim without claimName");
    ck_error *e = NULL;
    json_t *pvc = get_obj(k, "persistentvolumeclaims", r->ns, cn, &e);
    if (!pvc) {
        bool nf = e->code == CK_E_NOT_FOUND;
        ck_error_set(err, e->code, nf ? "persistentvolumeclaim \"%s\" not found" : "persistentvolumeclaim \"%s\": %s",
                     cn, e->msg);
        ck_error_free(e);
        return -1;
    }
    cleanup_free char *phase = xstrdup(json_string_value(json_object_get(json_object_get(pvc, "status"), "phase")) ?: "Pending");
    cleanup_free char *vn = xstrdup(json_string_value(json_object_get(json_object_get(pvc, "spec"), "volumeName")) ?: "");
    bool deleting = json_object_get(json_object_get(pvc, "metadata"), "deletionTimestamp") != NULL;
    json_decref(pvc);
    if (deleting)
        return ck_error_set(err, CK_E_INVALID, "persistentvolumeclaim \"%s\" is being deleted", cn);
    if (strcmp(phase, "Bound") || !*vn)
        return ck_error_set(err, CK_E_UNAVAILABLE, "persistentvolumeclaim \"%s\" is not bound (phase %s)",
                            cn, phase);
    json_t *pv = ck_client_get(k->client, ck_resource_find("", "v1", "persistentvolumes"), NULL, vn, &e);
    if (!pv) {
        ck_error_set(err, e->code, "persistentvolume \"%s\" of claim \"%s\": %s", vn, cn, e->msg);
        ck_error_free(e);
        return -1;
    }
    json_t *spec = json_object_get(pv, "spec");
    json_t *hp = json_object_get(spec, "hostPath"), *local = json_object_get(spec, "local");
    cleanup_free char *path = xstrdup(json_string_value(json_object_get(hp ? hp : local, "path")) ?: "");
    bool create = hp && !strcmp(json_string_value(json_object_get(hp, "type")) ?: "", "DirectoryOrCreate");
    json_decref(pv);
    if (!hp && !local)
        return ck_error_set(err, CK_E_INVALID, "persistentvolume \"%s\": only hostPath and local volumes are supported", vn);
    if (path[0] != '/')
        return ck_error_set(err, CK_E_INVALID, "persistentvolume \"%s\": path must be absolute", vn);
    if (create)
        ck_mkdir_p(path, 0755);
    struct stat st;
    if (stat(path, &st) < 0)
        return ck_error_sys(err, CK_E_NOT_FOUND, "persistentvolume \"%s\": path %s", vn, path);
    /* a restarted kubelet mounts again: drop an older mount first so they do not stack */
    umount2(dir, MNT_DETACH);
    if (mount(path, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
        return ck_error_sys(err, CK_E_IO, "bind-mount %s", path);
    if (json_is_true(json_object_get(src, "readOnly")) &&
        mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, NULL) < 0) {
        umount2(dir, MNT_DETACH);
        return ck_error_sys(err, CK_E_IO, "remount %s read-only", dir);
    }
    return 0;
}

int ck_volumes_setup(ck_kubelet *k, pod_rec *r, json_t *pod, ck_error **err)
{
    int64_t refresh_at = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "volumes"), i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        if (!name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
            return ck_error_set(err, CK_E_INVALID, "invalid volume name");
        cleanup_free char *dir = vol_dir(r, name);
        json_t *src;
        if ((src = json_object_get(v, "hostPath"))) {
            const char *path = json_string_value(json_object_get(src, "path"));
            const char *type = json_string_value(json_object_get(src, "type"));
            struct stat st;
            if (!path || path[0] != '/')
                return ck_error_set(err, CK_E_INVALID, "volume %s: hostPath must be absolute", name);
            if (type && !strcmp(type, "DirectoryOrCreate"))
                ck_mkdir_p(path, 0755);
            else if (type && !strcmp(type, "FileOrCreate") && stat(path, &st) < 0) {
                int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
                if (fd >= 0)
                    close(fd);
            }
            if (type && *type && strcmp(type, "DirectoryOrCreate") && strcmp(type, "FileOrCreate") &&
                stat(path, &st) < 0)
                return ck_error_set(err, CK_E_NOT_FOUND, "volume %s: hostPath type check failed: %s is not a %s",
                                    name, path, type);
            continue;
        }
        ck_mkdir_p(dir, 0777);
        if ((src = json_object_get(v, "emptyDir"))) {
            const char *medium = json_string_value(json_object_get(src, "medium"));
            if (medium && !strcmp(medium, "Memory")) {
                const char *lim = json_string_value(json_object_get(src, "sizeLimit"));
                int64_t size = 0;
                if (lim)
                    ck_quantity_parse(lim, &size);
                char opts[64];
                if (size > 0)
                    snprintf(opts, sizeof opts, "mode=0777,size=%lld", (long long)size);
                else
                    snprintf(opts, sizeof opts, "mode=0777");
                umount2(dir, MNT_DETACH);
                if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                    return ck_error_sys(err, CK_E_IO, "volume %s: mount tmpfs", name);
            }
            chmod(dir, 0777);
        } else if ((src = json_object_get(v, "configMap"))) {
            if (keys_volume(k, r, src, false, dir, 0644, err) < 0)
                return ck_error_wrap(err, "volume %s", name);
        } else if ((src = json_object_get(v, "secret"))) {
            if (keys_volume(k, r, src, true, dir, 0644, err) < 0)
                return ck_error_wrap(err, "volume %s", name);
        } else if ((src = json_object_get(v, "downwardAPI"))) {
            if (downward_volume(r, pod, src, dir, err) < 0)
                return ck_error_wrap(err, "volume %s", name);
        } else if ((src = json_object_get(v, "projected"))) {
            size_t j;
            json_t *ps;
            int pmode = projected_mode(src);
            json_array_foreach(json_object_get(src, "sources"), j, ps) {
                json_t *s2;
                int rc = 0;
                if ((s2 = json_object_get(ps, "configMap"))) {
                    json_t *c2 = json_deep_copy(s2);   /* sources have item modes only */
                    json_object_del(c2, "defaultMode");
                    rc = keys_volume(k, r, c2, false, dir, pmode, err);
                    json_decref(c2);
                } else if ((s2 = json_object_get(ps, "secret"))) {
                    /* projected secrets name the secret "name" */
                    json_t *c2 = json_deep_copy(s2);
                    json_object_del(c2, "defaultMode");
                    json_object_set(c2, "secretName", json_object_get(s2, "name"));
                    rc = keys_volume(k, r, c2, true, dir, pmode, err);
                    json_decref(c2);
                } else if ((s2 = json_object_get(ps, "downwardAPI")))
                    rc = downward_volume(r, pod, s2, dir, err);
                else if ((s2 = json_object_get(ps, "serviceAccountToken")))
                    rc = token_source(k, r, pod, s2, dir, pmode, &refresh_at, err);
                if (rc < 0)
                    return ck_error_wrap(err, "volume %s", name);
            }
        } else if ((src = json_object_get(v, "persistentVolumeClaim"))) {
            if (pvc_volume(k, r, src, dir, err) < 0)
                return ck_error_wrap(err, "volume %s", name);
        }
    }
    r->token_refresh_at = refresh_at;
    return 0;
}

void ck_volumes_teardown(ck_kubelet *k, pod_rec *r)
{
    (void)k;
    cleanup_free char *dir = xasprintf("%s/volumes", r->dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            cleanup_free char *p = xasprintf("%s/%s", dir, e->d_name);
            umount2(p, MNT_DETACH);
        }
    closedir(d);
}

json_t *ck_volume_mounts(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *container, ck_error **err)
{
    (void)k;
    json_t *out = json_array();
    json_t *vols = json_object_get(json_object_get(pod, "spec"), "volumes");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(container, "volumeMounts"), i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *dst = json_string_value(json_object_get(m, "mountPath"));
        const char *sub = json_string_value(json_object_get(m, "subPath"));
        bool ro = json_is_true(json_object_get(m, "readOnly"));
        json_t *vol = NULL, *v;
        size_t j;
        json_array_foreach(vols, j, v)
            if (name && !strcmp(json_string_value(json_object_get(v, "name")) ?: "", name))
                vol = v;
        if (!vol || !dst || dst[0] != '/') {
            json_decref(out);
            ck_error_set(err, CK_E_INVALID, "volumeMount %s: no such volume or bad mountPath", name ? name : "");
            return NULL;
        }
        char *src;
        json_t *hp = json_object_get(vol, "hostPath");
        if (hp)
            src = xstrdup(json_string_value(json_object_get(hp, "path")));
        else
            src = vol_dir(r, name);
        if (sub && *sub) {
            if (strstr(sub, "..") || sub[0] == '/') {
                free(src);
                json_decref(out);
                ck_error_set(err, CK_E_INVALID, "subPath %s must be a relative path without '..'", sub);
                return NULL;
            }
            char *full = xasprintf("%s/%s", src, sub);
            free(src);
            src = full;
            struct stat st;
            if (stat(src, &st) < 0)
                ck_mkdir_p(src, 0777);
        }
        json_t *opts = json_pack("[s, s]", "rbind", "rprivate");
        if (ro)
            json_array_append_new(opts, json_string("ro"));
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type",
                                             "bind", "source", src, "options", opts));
        free(src);
    }
    return out;
}

/* validate.c - see validate.h.  Each check appends a cause {reason, message, field} worded as
 * apimachinery's field.Error renders it ("Required value", `Invalid value: "x": detail`,
 * `Unsupported value: "x": supported values: "a", "b"`, ...).  Values that are not strings or
 * integers are shown as compact JSON. */
#include "apiserver/validate.h"
#include "apiserver/names.h"
#include "apiserver/selector.h"
#include "lib/tz.h"
#include "lib/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

struct v {
    json_t *causes;
};

static void add(struct v *v, const char *reason, const char *field, const char *msg)
{
    json_array_append_new(v->causes, json_pack("{s:s,s:s,s:s}", "reason", reason, "message", msg, "field", field));
}

static char *render(const json_t *val)
{
    if (json_is_string(val))
        return ck_go_quote(json_string_value(val));
    char *s = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    return s ? s : xstrdup("null");
}

static void required(struct v *v, const char *field, const char *detail)
{
    cleanup_free char *m = detail && *detail ? xasprintf("Required value: %s", detail) : xstrdup("Required value");
    add(v, "FieldValueRequired", field, m);
}

static void invalid(struct v *v, const char *field, const json_t *val, const char *detail)
{
    cleanup_free char *r = render(val);
    cleanup_free char *m = detail && *detail ? xasprintf("Invalid value: %s: %s", r, detail)
                                             : xasprintf("Invalid value: %s", r);
    add(v, "FieldValueInvalid", field, m);
}

static void invalid_str(struct v *v, const char *field, const char *val, const char *detail)
{
    json_t *j = json_string(val);
    if (!j)
        j = json_string("<invalid UTF-8>");
    invalid(v, field, j, detail);
    json_decref(j);
}

static void invalid_int(struct v *v, const char *field, long long val, const char *detail)
{
    json_t *j = json_integer(val);
    invalid(v, field, j, detail);
    json_decref(j);
}

static void not_supported(struct v *v, const char *field, const json_t *val, const char *const *ok)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    cleanup_free char *r = render(val);
    ck_buf_printf(&b, "Unsupported value: %s", r);
    if (ok && *ok) {
        ck_buf_addstr(&b, ": supported values: ");
        for (size_t i = 0; ok[i]; i++)
            ck_buf_printf(&b, "%s\"%s\"", i ? ", " : "", ok[i]);
    }
    add(v, "FieldValueNotSupported", field, b.data);
    ck_buf_free(&b);
}

/* not_supported for a value that may be absent (shown as "") */
static void not_supported_opt(struct v *v, const char *field, const json_t *val, const char *const *ok)
{
    json_t *empty = val ? NULL : json_string("");
    not_supported(v, field, val ? val : empty, ok);
    json_decref(empty);
}

static void duplicate(struct v *v, const char *field, const json_t *val)
{
    cleanup_free char *r = render(val);
    cleanup_free char *m = xasprintf("Duplicate value: %s", r);
    add(v, "FieldValueDuplicate", field, m);
}

static void forbidden(struct v *v, const char *field, const char *detail)
{
    cleanup_free char *m = xasprintf("Forbidden: %s", detail);
    add(v, "FieldValueForbidden", field, m);
}

static void too_long(struct v *v, const char *field, const char *detail)
{
    cleanup_free char *m = xasprintf("Too long: %s", detail);
    add(v, "FieldValueTooLong", field, m);
}

static void not_found(struct v *v, const char *field, const json_t *val)
{
    cleanup_free char *r = render(val);
    cleanup_free char *m = xasprintf("Not found: %s", r);
    add(v, "FieldValueNotFound", field, m);
}

/* Run a names.h check; each of its messages ("; "-joined there) becomes one Invalid cause, as
 * upstream appends one field.Invalid per message. */
static bool check_name(struct v *v, const char *field, const char *val, char *(*fn)(const char *))
{
    cleanup_free char *m = fn(val);
    if (!m)
        return true;
    for (char *p = m;;) {
        char *sep = strstr(p, "; ");
        if (sep)
            *sep = 0;
        invalid_str(v, field, val, p);
        if (!sep)
            break;
        p = sep + 2;
    }
    return false;
}

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static const json_t *get(const json_t *o, const char *k) { return json_is_object(o) ? json_object_get(o, k) : NULL; }

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

/* ---- names per kind ---- */

static char *check_path_segment(const char *s)
{
    if (!strcmp(s, "."))
        return xstrdup("may not be '.'");
    if (!strcmp(s, ".."))
        return xstrdup("may not be '..'");
    if (strchr(s, '/'))
        return xstrdup("may not contain '/'");
    if (strchr(s, '%'))
        return xstrdup("may not contain '%'");
    return NULL;
}

static char *(*name_check(const ck_resource *r))(const char *)
{
    if (!strcmp(r->kind, "Namespace"))
        return ck_check_dns1123_label;
    if (!strcmp(r->kind, "Service"))
        return ck_check_dns1035_label;
    if (!strcmp(r->group, "rbac.authorization.k8s.io"))
        return check_path_segment;
    return ck_check_dns1123_subdomain;
}

/* ---- metadata ---- */

static void validate_labels(struct v *v, const json_t *labels, const char *field)
{
    if (!labels || json_is_null(labels))
        return;
    if (!json_is_object(labels)) {
        invalid(v, field, labels, "must be a map of strings");
        return;
    }
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)labels, k, val) {
        check_name(v, field, k, ck_check_qualified_name);
        if (!json_is_string(val)) {
            invalid(v, field, val, "label values must be strings");
            continue;
        }
        check_name(v, field, json_string_value(val), ck_check_label_value);
    }
}

#define ANNOTATIONS_MAX 262144

static void validate_annotations(struct v *v, const json_t *ann, const char *field)
{
    if (!json_is_object(ann))
        return;
    size_t total = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)ann, k, val) {
        cleanup_free char *lower = xstrdup(k);
        for (char *p = lower; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p += 32;
        cleanup_free char *m = ck_check_qualified_name(lower);
        for (char *p = m; p;) {
            char *sep = strstr(p, "; ");
            if (sep)
                *sep = 0;
            invalid_str(v, field, k, p);
            p = sep ? sep + 2 : NULL;
        }
        total += strlen(k) + (json_is_string(val) ? strlen(json_string_value(val)) : 0);
    }
    if (total > ANNOTATIONS_MAX)
        too_long(v, field, "must have at most 262144 bytes");
}

static void validate_meta(struct v *v, const ck_resource *r, const json_t *meta, const json_t *old_meta,
                          bool top, const char *prefix)
{
    cleanup_free char *fname = xasprintf("%smetadata.name", prefix);
    cleanup_free char *fgen = xasprintf("%smetadata.generateName", prefix);
    cleanup_free char *fns = xasprintf("%smetadata.namespace", prefix);
    cleanup_free char *flabels = xasprintf("%smetadata.labels", prefix);
    cleanup_free char *fann = xasprintf("%smetadata.annotations", prefix);
    const char *name = str(meta, "name"), *gen = str(meta, "generateName"), *ns = str(meta, "namespace");
    if (top) {
        char *(*fn)(const char *) = name_check(r);
        if (gen && *gen) {
            /* a prefix may end in '-': upstream masks a trailing dash before checking */
            cleanup_free char *masked = xstrdup(gen);
            size_t n = strlen(masked);
            if (n && masked[n - 1] == '-')
                masked[n - 1] = 'a';
            cleanup_free char *m = fn(masked);
            for (char *p = m; p;) {
                char *sep = strstr(p, "; ");
                if (sep)
                    *sep = 0;
                invalid_str(v, fgen, gen, p);
                p = sep ? sep + 2 : NULL;
            }
        }
        if (!name || !*name) {
            if (!gen || !*gen)
                required(v, fname, "name or generateName is required");
        } else {
            check_name(v, fname, name, fn);
            if (!strcmp(r->kind, "CronJob") && strlen(name) > 52)
                invalid_str(v, fname, name, "must be no more than 52 characters");
        }
        if (r->namespaced) {
            if (!ns || !*ns)
                required(v, fns, "");
            else
                check_name(v, fns, ns, ck_check_dns1123_label);
        } else if (ns && *ns) {
            forbidden(v, fns, "not allowed on this type");
        }
    }
    validate_labels(v, get(meta, "labels"), flabels);
    validate_annotations(v, get(meta, "annotations"), fann);
    const json_t *frs = get(meta, "finalizers");
    size_t i;
    json_t *f;
    json_array_foreach(frs, i, f) {
        cleanup_free char *ff = xasprintf("%smetadata.finalizers[%zu]", prefix, i);
        if (!json_is_string(f))
            invalid(v, ff, f, "must be a string");
        else
            check_name(v, ff, json_string_value(f), ck_check_qualified_name);
    }
    const json_t *ors = get(meta, "ownerReferences");
    json_array_foreach(ors, i, f) {
        static const char *const need[] = {"apiVersion", "kind", "name", "uid", NULL};
        for (const char *const *k = need; *k; k++) {
            const char *s = str(f, *k);
            if (!s || !*s) {
                cleanup_free char *ff = xasprintf("%smetadata.ownerReferences.%s", prefix, *k);
                if (!strcmp(*k, "apiVersion"))
                    invalid_str(v, ff, "", "version must not be empty");
                else if (!strcmp(*k, "kind"))
                    invalid_str(v, ff, "", "kind must not be empty");
                else if (!strcmp(*k, "name"))
                    invalid_str(v, ff, "", "name must not be empty");
                else
                    invalid_str(v, ff, "", "uid must not be empty");
            }
        }
    }
    if (old_meta && top) {
        static const char *const immutable[] = {"name", "namespace", "uid", "creationTimestamp", NULL};
        for (const char *const *k = immutable; *k; k++) {
            const json_t *a = get(meta, *k), *b = get(old_meta, *k);
            if (b && a && !json_equal(a, b)) {
                cleanup_free char *ff = xasprintf("%smetadata.%s", prefix, *k);
                invalid(v, ff, a, "field is immutable");
            }
        }
    }
}

/* ---- pods ---- */

static const char *const restart_policies[] = {"Always", "Never", "OnFailure", NULL};
static const char *const dns_policies[] = {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None", NULL};
static const char *const pull_policies[] = {"Always", "IfNotPresent", "Never", NULL};
static const char *const protocols[] = {"SCTP", "TCP", "UDP", NULL};

static void validate_port_number(struct v *v, const char *field, const json_t *p, bool zero_ok)
{
    if (!json_is_integer(p)) {
        invalid(v, field, p, "must be an integer");
        return;
    }
    long long n = json_integer_value(p);
    if (n == 0 && zero_ok)
        return;
    if (n < 1 || n > 65535)
        invalid_int(v, field, n, "must be between 1 and 65535, inclusive");
}

static void validate_container(struct v *v, const json_t *c, const char *field, json_t *names,
                               const json_t *volume_names)
{
    cleanup_free char *fname = xasprintf("%s.name", field);
    cleanup_free char *fimage = xasprintf("%s.image", field);
    const char *name = str(c, "name");
    if (!name || !*name) {
        required(v, fname, "");
    } else if (check_name(v, fname, name, ck_check_dns1123_label)) {
        if (json_object_get(names, name))
            duplicate(v, fname, get(c, "name"));
        json_object_set_new(names, name, json_true());
    }
    const char *image = str(c, "image");
    if (!image || !*image)
        required(v, fimage, "");
    const json_t *pp = get(c, "imagePullPolicy");
    if (json_is_string(pp) && !in_list(json_string_value(pp), pull_policies)) {
        cleanup_free char *f = xasprintf("%s.imagePullPolicy", field);
        not_supported(v, f, pp, pull_policies);
    }
    json_t *port_names = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(get(c, "ports"), i, p) {
        cleanup_free char *pf = xasprintf("%s.ports[%zu]", field, i);
        cleanup_free char *fcp = xasprintf("%s.containerPort", pf);
        const json_t *cp = get(p, "containerPort");
        if (!cp || (json_is_integer(cp) && json_integer_value(cp) == 0))
            required(v, fcp, "");
        else
            validate_port_number(v, fcp, cp, false);
        if (get(p, "hostPort")) {
            cleanup_free char *fhp = xasprintf("%s.hostPort", pf);
            validate_port_number(v, fhp, get(p, "hostPort"), true);
        }
        const json_t *proto = get(p, "protocol");
        if (proto && !(json_is_string(proto) && in_list(json_string_value(proto), protocols))) {
            cleanup_free char *f = xasprintf("%s.protocol", pf);
            not_supported(v, f, proto, protocols);
        }
        const char *pn = str(p, "name");
        if (pn && *pn) {
            cleanup_free char *f = xasprintf("%s.name", pf);
            if (check_name(v, f, pn, ck_check_port_name)) {
                if (json_object_get(port_names, pn))
                    duplicate(v, f, get(p, "name"));
                json_object_set_new(port_names, pn, json_true());
            }
        }
    }
    json_decref(port_names);
    json_array_foreach(get(c, "env"), i, p) {
        cleanup_free char *f = xasprintf("%s.env[%zu].name", field, i);
        const char *en = str(p, "name");
        if (!en || !*en)
            required(v, f, "");
        else
            check_name(v, f, en, ck_check_env_var_name);
    }
    json_array_foreach(get(c, "volumeMounts"), i, p) {
        cleanup_free char *fn = xasprintf("%s.volumeMounts[%zu].name", field, i);
        cleanup_free char *fm = xasprintf("%s.volumeMounts[%zu].mountPath", field, i);
        const char *vn = str(p, "name"), *mp = str(p, "mountPath");
        if (!vn || !*vn)
            required(v, fn, "");
        else if (volume_names && !json_object_get(volume_names, vn))
            not_found(v, fn, get(p, "name"));
        if (!mp || !*mp)
            required(v, fm, "");
    }
}

static const char *const volume_sources[] = {
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image", NULL,
};

static void validate_pod_spec(struct v *v, const json_t *spec, const char *field, const char *const *restart_ok)
{
    if (!json_is_object(spec)) {
        required(v, field, "");
        return;
    }
    json_t *volume_names = json_object();
    size_t i;
    json_t *vol;
    json_array_foreach(get(spec, "volumes"), i, vol) {
        cleanup_free char *f = xasprintf("%s.volumes[%zu].name", field, i);
        const char *vn = str(vol, "name");
        if (!vn || !*vn) {
            required(v, f, "");
        } else if (check_name(v, f, vn, ck_check_dns1123_label)) {
            if (json_object_get(volume_names, vn))
                duplicate(v, f, get(vol, "name"));
            json_object_set_new(volume_names, vn, json_true());
        }
        int nsrc = 0;
        for (const char *const *s = volume_sources; *s; s++)
            if (get(vol, *s))
                nsrc++;
        if (nsrc == 0) {
            cleanup_free char *fv = xasprintf("%s.volumes[%zu]", field, i);
            required(v, fv, "must specify a volume type");
        } else if (nsrc > 1) {
            cleanup_free char *fv = xasprintf("%s.volumes[%zu]", field, i);
            forbidden(v, fv, "may not specify more than 1 volume type");
        }
    }
    json_t *names = json_object();
    const json_t *cs = get(spec, "containers");
    cleanup_free char *fcs = xasprintf("%s.containers", field);
    if (!json_array_size(cs))
        required(v, fcs, "");
    json_t *c;
    json_array_foreach(cs, i, c) {
        cleanup_free char *f = xasprintf("%s[%zu]", fcs, i);
        validate_container(v, c, f, names, volume_names);
    }
    json_array_foreach(get(spec, "initContainers"), i, c) {
        cleanup_free char *f = xasprintf("%s.initContainers[%zu]", field, i);
        validate_container(v, c, f, names, volume_names);
    }
    json_decref(names);
    json_decref(volume_names);
    const json_t *rp = get(spec, "restartPolicy");
    if (rp) {
        cleanup_free char *f = xasprintf("%s.restartPolicy", field);
        if (!json_is_string(rp) || !in_list(json_string_value(rp), restart_ok))
            not_supported(v, f, rp, restart_ok);
    }
    const json_t *dp = get(spec, "dnsPolicy");
    if (dp && !(json_is_string(dp) && in_list(json_string_value(dp), dns_policies))) {
        cleanup_free char *f = xasprintf("%s.dnsPolicy", field);
        not_supported(v, f, dp, dns_policies);
    }
    const json_t *ads = get(spec, "activeDeadlineSeconds");
    if (json_is_integer(ads) && json_integer_value(ads) <= 0) {
        cleanup_free char *f = xasprintf("%s.activeDeadlineSeconds", field);
        invalid_int(v, f, json_integer_value(ads), "must be between 1 and 2147483647, inclusive");
    }
    const json_t *tgp = get(spec, "terminationGracePeriodSeconds");
    if (json_is_integer(tgp) && json_integer_value(tgp) < 0) {
        cleanup_free char *f = xasprintf("%s.terminationGracePeriodSeconds", field);
        invalid_int(v, f, json_integer_value(tgp), "must be greater than or equal to 0");
    }
    cleanup_free char *fns = xasprintf("%s.nodeSelector", field);
    validate_labels(v, get(spec, "nodeSelector"), fns);
}

static const char *const pod_update_msg =
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

static void copy_images(json_t *to, const json_t *from, const char *list)
{
    json_t *a = json_object_get(to, list);
    const json_t *b = get(from, list);
    for (size_t i = 0; i < json_array_size(a) && i < json_array_size(b); i++) {
        const json_t *img = get(json_array_get(b, i), "image");
        if (img)
            json_object_set(json_array_get(a, i), "image", (json_t *)img);
    }
}

static void validate_pod_update(struct v *v, const json_t *spec, const json_t *old_spec)
{
    if (!json_is_object(spec) || !json_is_object(old_spec))
        return;
    json_t *mut = json_deep_copy(spec);
    copy_images(mut, old_spec, "containers");
    copy_images(mut, old_spec, "initContainers");
    static const char *const free_fields[] = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds",
                                              "schedulingGates", NULL};
    for (const char *const *k = free_fields; *k; k++) {
        const json_t *o = get(old_spec, *k);
        if (o)
            json_object_set(mut, *k, (json_t *)o);
        else
            json_object_del(mut, *k);
    }
    /* nodeName is set once by binding */
    if (!get(old_spec, "nodeName"))
        json_object_del(mut, "nodeName");
    else
        json_object_set(mut, "nodeName", (json_t *)get(old_spec, "nodeName"));
    if (!json_equal(mut, old_spec))
        forbidden(v, "spec", pod_update_msg);
    json_decref(mut);
    /* tolerations: only additions */
    const json_t *ot = get(old_spec, "tolerations"), *nt = get(spec, "tolerations");
    size_t i;
    json_t *t;
    json_array_foreach(ot, i, t) {
        bool kept = false;
        size_t j;
        json_t *u;
        json_array_foreach(nt, j, u)
            if (json_equal(t, u))
                kept = true;
        if (!kept) {
            forbidden(v, "spec.tolerations", "existing toleration can not be modified except its tolerationSeconds");
            break;
        }
    }
}

/* ---- workloads ---- */

static const char *const only_always[] = {"Always", NULL};
static const char *const job_restart[] = {"OnFailure", "Never", NULL};

static void nonneg(struct v *v, const json_t *spec, const char *key, const char *prefix)
{
    const json_t *x = get(spec, key);
    if (json_is_integer(x) && json_integer_value(x) < 0) {
        cleanup_free char *f = xasprintf("%s.%s", prefix, key);
        invalid_int(v, f, json_integer_value(x), "must be greater than or equal to 0");
    }
}

/* selector (a metav1.LabelSelector) + template whose labels it must select */
static void validate_selector_template(struct v *v, const ck_resource *r, const json_t *spec, bool selector_required,
                                       const char *const *restart_ok)
{
    const json_t *sel = get(spec, "selector"), *tmpl = get(spec, "template");
    const json_t *tlabels = get(get(tmpl, "metadata"), "labels");
    if (!sel || json_is_null(sel)) {
        if (selector_required)
            required(v, "spec.selector", "");
    } else {
        ck_error *e = NULL;
        /* a v1 ReplicationController's selector is a plain label map, not a LabelSelector */
        bool rc = !strcmp(r->kind, "ReplicationController");
        json_t *wrapped = rc ? json_pack("{s:O}", "matchLabels", (json_t *)sel) : NULL;
        ck_selector *s = ck_label_selector_from_json(rc ? wrapped : sel, &e);
        json_decref(wrapped);
        if (!s) {
            invalid(v, "spec.selector", sel, e->msg);
            ck_error_free(e);
        } else {
            if (ck_selector_is_empty(s) && strcmp(r->kind, "Job"))
                invalid(v, "spec.selector", sel, "empty selector is invalid for deployment");
            else if (tmpl && !ck_label_selector_matches(s, tlabels)) {
                json_t *shown = tlabels ? json_incref((json_t *)tlabels) : json_object();
                invalid(v, "spec.template.metadata.labels", shown, "`selector` does not match template `labels`");
                json_decref(shown);
            }
            ck_selector_free(s);
        }
        if (rc)
            validate_labels(v, sel, "spec.selector");
        else
            validate_labels(v, get(sel, "matchLabels"), "spec.selector.matchLabels");
    }
    if (!tmpl) {
        required(v, "spec.template", "");
        return;
    }
    validate_meta(v, r, get(tmpl, "metadata"), NULL, false, "spec.template.");
    if (!strcmp(r->kind, "Job") && !get(get(tmpl, "spec"), "restartPolicy")) {
        required(v, "spec.template.spec.restartPolicy", "valid values: \"OnFailure\", \"Never\"");
        validate_pod_spec(v, get(tmpl, "spec"), "spec.template.spec", restart_policies);
    } else {
        validate_pod_spec(v, get(tmpl, "spec"), "spec.template.spec", restart_ok);
    }
}

static void validate_workload(struct v *v, const ck_resource *r, const json_t *obj, const json_t *old)
{
    const json_t *spec = get(obj, "spec");
    const char *k = r->kind;
    if (!json_is_object(spec)) {
        required(v, "spec", "");
        return;
    }
    bool is_job = !strcmp(k, "Job");
    /* upstream's order: replicas, selector, template, then the rest */
    nonneg(v, spec, "replicas", "spec");
    validate_selector_template(v, r, spec, !is_job && strcmp(k, "ReplicationController"),
                               is_job ? job_restart : only_always);
    nonneg(v, spec, "minReadySeconds", "spec");
    nonneg(v, spec, "revisionHistoryLimit", "spec");
    if (!strcmp(k, "Deployment")) {
        const json_t *st = get(spec, "strategy");
        const char *t = str(st, "type");
        static const char *const types[] = {"Recreate", "RollingUpdate", NULL};
        if (t && !in_list(t, types))
            not_supported(v, "spec.strategy.type", get(st, "type"), types);
        if (t && !strcmp(t, "Recreate") && get(st, "rollingUpdate"))
            forbidden(v, "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'");
        const json_t *pds = get(spec, "progressDeadlineSeconds"), *mrs = get(spec, "minReadySeconds");
        if (json_is_integer(pds) && json_is_integer(mrs) && json_integer_value(pds) <= json_integer_value(mrs))
            invalid_int(v, "spec.progressDeadlineSeconds", json_integer_value(pds),
                        "must be greater than minReadySeconds");
    }
    if (is_job) {
        nonneg(v, spec, "parallelism", "spec");
        nonneg(v, spec, "completions", "spec");
        nonneg(v, spec, "backoffLimit", "spec");
        const json_t *ads = get(spec, "activeDeadlineSeconds");
        if (json_is_integer(ads) && json_integer_value(ads) <= 0)
            invalid_int(v, "spec.activeDeadlineSeconds", json_integer_value(ads), "must be greater than or equal to 0");
    }
    if (old) {
        const json_t *os = get(old, "spec");
        if (strcmp(k, "ReplicationController") && get(os, "selector") && !json_equal(get(os, "selector"), get(spec, "selector")))
            invalid(v, "spec.selector", get(spec, "selector") ? get(spec, "selector") : json_null(), "field is immutable");
        if (is_job) {
            /* the template may change only while the job is suspended and has not started */
            const json_t *susp = get(spec, "suspend");
            if (!json_is_true(susp) && !json_equal(get(os, "template"), get(spec, "template")))
                invalid(v, "spec.template", get(spec, "template") ? get(spec, "template") : json_null(),
                        "field is immutable");
            if (get(os, "completions") && !json_equal(get(os, "completions"), get(spec, "completions")) &&
                strcmp(str(spec, "completionMode") ? str(spec, "completionMode") : "", "Indexed"))
                invalid(v, "spec.completions", get(spec, "completions") ? get(spec, "completions") : json_null(),
                        "field is immutable");
        }
        if (!strcmp(k, "StatefulSet")) {
            static const char *const fixed[] = {"serviceName", "volumeClaimTemplates", "podManagementPolicy", NULL};
            for (const char *const *f = fixed; *f; f++)
                if (!json_equal(get(os, *f) ? get(os, *f) : json_null(), get(spec, *f) ? get(spec, *f) : json_null())) {
                    forbidden(v, "spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                         "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                                         "'minReadySeconds' are forbidden");
                    break;
                }
        }
    }
}

/* One '/'-separated part of an IANA name as upstream tolerates it: 1-14 of [A-Za-z0-9.+_-], not
 * "." or "..", not starting with '-'. */
static bool tz_part_ok(const char *p, size_t n)
{
    if (n == 0 || n > 14 || p[0] == '-' || (n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2)))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)p[i]) || strchr(".-_+", p[i])))
            return false;
    return true;
}

/* spec.timeZone as upstream's validateTimeZone: a name tzdata has, never "Local". */
static void validate_time_zone(struct v *v, const json_t *tzv)
{
    if (!tzv || json_is_null(tzv) || !json_is_string(tzv))
        return;
    const char *tz = json_string_value(tzv);
    if (!*tz) {
        invalid(v, "spec.timeZone", tzv, "timeZone must be nil or non-empty string");
        return;
    }
    cleanup_free char *unknown = xasprintf("unknown time zone %s", tz);
    for (const char *p = tz;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!tz_part_ok(p, n)) {
            invalid(v, "spec.timeZone", tzv, unknown);
            return;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    if (!strcasecmp(tz, "Local")) {
        invalid(v, "spec.timeZone", tzv,
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones");
        if (!strcmp(tz, "Local"))   /* Go's LoadLocation("Local") succeeds */
            return;
    }
    ck_error *err = NULL;
    ck_tz *loaded = ck_tz_load(tz, NULL, &err);
    if (!loaded)
        invalid(v, "spec.timeZone", tzv, unknown);
    ck_tz_free(loaded);
    ck_error_free(err);
}

static void validate_cronjob(struct v *v, const ck_resource *r, const json_t *obj, const json_t *old)
{
    const json_t *spec = get(obj, "spec");
    const char *sched = str(spec, "schedule");
    if (!sched || !*sched)
        required(v, "spec.schedule", "");
    const json_t *tzv = get(spec, "timeZone");
    bool has_tz = tzv && !json_is_null(tzv);
    if (sched && strstr(sched, "TZ")) {
        /* a TZ= prefix is tolerated only where the stored object already had one */
        const char *old_sched = str(get(old, "spec"), "schedule");
        if (has_tz)
            invalid_str(v, "spec.schedule", sched, "cannot use both timeZone field and TZ or CRON_TZ in schedule");
        else if (!old_sched || !strstr(old_sched, "TZ"))
            invalid_str(v, "spec.schedule", sched, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead");
    }
    validate_time_zone(v, tzv);
    static const char *const cp[] = {"Allow", "Forbid", "Replace", NULL};
    const json_t *c = get(spec, "concurrencyPolicy");
    if (c && !(json_is_string(c) && in_list(json_string_value(c), cp)))
        not_supported(v, "spec.concurrencyPolicy", c, cp);
    const json_t *jt = get(spec, "jobTemplate");
    const json_t *tmpl = get(get(jt, "spec"), "template");
    if (!tmpl) {
        required(v, "spec.jobTemplate.spec.template", "");
        return;
    }
    validate_pod_spec(v, get(tmpl, "spec"), "spec.jobTemplate.spec.template.spec", job_restart);
}

/* ---- services ---- */

static void validate_service(struct v *v, const json_t *obj, const json_t *old)
{
    const json_t *spec = get(obj, "spec");
    static const char *const types[] = {"ClusterIP", "ExternalName", "LoadBalancer", "NodePort", NULL};
    static const char *const affinity[] = {"ClientIP", "None", NULL};
    const char *type = str(spec, "type");
    if (type && !in_list(type, types))
        not_supported(v, "spec.type", get(spec, "type"), types);
    bool external = type && !strcmp(type, "ExternalName");
    const char *cip = str(spec, "clusterIP");
    bool headless = cip && !strcmp(cip, "None");
    const json_t *ports = get(spec, "ports");
    if (!json_array_size(ports) && !external && !headless)
        required(v, "spec.ports", "");
    if (external) {
        const char *en = str(spec, "externalName");
        if (!en || !*en)
            required(v, "spec.externalName", "");
    }
    json_t *names = json_object(), *seen = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p) {
        cleanup_free char *pf = xasprintf("spec.ports[%zu]", i);
        cleanup_free char *fname = xasprintf("%s.name", pf);
        cleanup_free char *fport = xasprintf("%s.port", pf);
        const char *pn = str(p, "name");
        if (json_array_size(ports) > 1 && (!pn || !*pn)) {
            required(v, fname, "");
        } else if (pn && *pn && check_name(v, fname, pn, ck_check_dns1123_label)) {
            if (json_object_get(names, pn))
                duplicate(v, fname, get(p, "name"));
            json_object_set_new(names, pn, json_true());
        }
        const json_t *port = get(p, "port");
        if (!port)
            required(v, fport, "");
        else
            validate_port_number(v, fport, port, false);
        const json_t *proto = get(p, "protocol");
        if (proto && !(json_is_string(proto) && in_list(json_string_value(proto), protocols))) {
            cleanup_free char *f = xasprintf("%s.protocol", pf);
            not_supported(v, f, proto, protocols);
        }
        if (json_is_integer(port)) {
            cleanup_free char *key = xasprintf("%lld/%s", (long long)json_integer_value(port),
                                               str(p, "protocol") ? str(p, "protocol") : "TCP");
            if (json_object_get(seen, key)) {
                json_t *dup = json_pack("{s:O,s:s}", "port", port, "protocol",
                                        str(p, "protocol") ? str(p, "protocol") : "TCP");
                duplicate(v, pf, dup);
                json_decref(dup);
            }
            json_object_set_new(seen, key, json_true());
        }
        const json_t *tp = get(p, "targetPort");
        if (tp) {
            cleanup_free char *f = xasprintf("%s.targetPort", pf);
            if (json_is_integer(tp))
                validate_port_number(v, f, tp, false);
            else if (json_is_string(tp))
                check_name(v, f, json_string_value(tp), ck_check_port_name);
        }
        const json_t *np = get(p, "nodePort");
        if (np && json_is_integer(np) && json_integer_value(np) != 0) {
            cleanup_free char *f = xasprintf("%s.nodePort", pf);
            if (!type || (strcmp(type, "NodePort") && strcmp(type, "LoadBalancer")))
                forbidden(v, f, "may not be used when `type` is 'ClusterIP'");
            else
                validate_port_number(v, f, np, false);
        }
    }
    json_decref(names);
    json_decref(seen);
    const json_t *sa = get(spec, "sessionAffinity");
    if (sa && !(json_is_string(sa) && in_list(json_string_value(sa), affinity)))
        not_supported(v, "spec.sessionAffinity", sa, affinity);
    validate_labels(v, get(spec, "selector"), "spec.selector");
    if (old) {
        const char *ocip = str(get(old, "spec"), "clusterIP");
        const char *otype = str(get(old, "spec"), "type");
        bool was_external = otype && !strcmp(otype, "ExternalName");
        if (ocip && *ocip && cip && *cip && strcmp(ocip, cip) && !was_external && !external) {
            json_t *ips = json_pack("[s]", cip);
            ck_buf b;
            ck_buf_init(&b, 0);
            cleanup_free char *q = ck_go_quote(cip);
            ck_buf_printf(&b, "Invalid value: []string{%s}: may not change once set", q);
            add(v, "FieldValueInvalid", "spec.clusterIPs[0]", b.data);
            ck_buf_free(&b);
            json_decref(ips);
        }
    }
}

/* ---- config maps and secrets ---- */

static size_t validate_data(struct v *v, const json_t *data, const char *fname, const json_t *other,
                            const char *other_name, bool base64)
{
    size_t total = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)data, k, val) {
        cleanup_free char *f = xasprintf("%s[%s]", fname, k);
        check_name(v, f, k, ck_check_config_map_key);
        if (other && json_object_get(other, k)) {
            cleanup_free char *m = xasprintf("duplicate of key present in %s", other_name);
            invalid_str(v, f, k, m);
        }
        if (!json_is_string(val)) {
            if (!json_is_null(val))
                invalid(v, f, val, "must be a string");
            continue;
        }
        const char *s = json_string_value(val);
        size_t n = strlen(s);
        if (base64) {
            bool ok = n % 4 == 0;
            for (size_t i = 0; ok && i < n; i++) {
                char c = s[i];
                bool pad = c == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '=');
                ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                     c == '/' || pad;
            }
            if (!ok)
                invalid(v, f, val, "illegal base64 data");
            total += n / 4 * 3;
        } else {
            total += n;
        }
    }
    return total;
}

static void validate_immutable_data(struct v *v, const json_t *obj, const json_t *old, const char *const *fields)
{
    if (!old || !json_is_true(get(old, "immutable")))
        return;
    if (!json_is_true(get(obj, "immutable")))
        forbidden(v, "immutable", "field is immutable when `immutable` is set");
    for (const char *const *f = fields; *f; f++) {
        const json_t *a = get(obj, *f), *b = get(old, *f);
        bool ea = !a || json_is_null(a) || (json_is_object(a) && !json_object_size(a));
        bool eb = !b || json_is_null(b) || (json_is_object(b) && !json_object_size(b));
        if ((ea != eb) || (!ea && !json_equal(a, b)))
            forbidden(v, *f, "field is immutable when `immutable` is set");
    }
}

static void validate_configmap(struct v *v, const json_t *obj, const json_t *old)
{
    size_t total = validate_data(v, get(obj, "data"), "data", get(obj, "binaryData"), "binaryData", false);
    total += validate_data(v, get(obj, "binaryData"), "binaryData", NULL, NULL, true);
    if (total > 1048576)
        too_long(v, "", "must have at most 1048576 bytes");
    static const char *const fields[] = {"data", "binaryData", NULL};
    validate_immutable_data(v, obj, old, fields);
}

static void validate_secret(struct v *v, const json_t *obj, const json_t *old)
{
    const json_t *data = get(obj, "data");
    size_t total = validate_data(v, data, "data", NULL, NULL, true);
    if (total > 1048576)
        too_long(v, "data", "must have at most 1048576 bytes");
    const char *type = str(obj, "type");
    if (type) {
        const char *need[3] = {NULL, NULL, NULL};
        if (!strcmp(type, "kubernetes.io/service-account-token")) {
            const char *san = str(get(get(obj, "metadata"), "annotations"), "kubernetes.io/service-account.name");
            if (!san || !*san)
                required(v, "metadata.annotations[kubernetes.io/service-account.name]", "");
        } else if (!strcmp(type, "kubernetes.io/dockercfg")) {
            need[0] = ".dockercfg";
        } else if (!strcmp(type, "kubernetes.io/dockerconfigjson")) {
            need[0] = ".dockerconfigjson";
        } else if (!strcmp(type, "kubernetes.io/basic-auth")) {
            if (!get(data, "username") && !get(data, "password")) {
                required(v, "data[username]", "");
                required(v, "data[password]", "");
            }
        } else if (!strcmp(type, "kubernetes.io/ssh-auth")) {
            need[0] = "ssh-privatekey";
        } else if (!strcmp(type, "kubernetes.io/tls")) {
            need[0] = "tls.key";
            need[1] = "tls.crt";
        }
        for (int i = 0; need[i]; i++)
            if (!get(data, need[i])) {
                cleanup_free char *f = xasprintf("data[%s]", need[i]);
                required(v, f, "");
            }
    }
    if (old) {
        const char *ot = str(old, "type");
        if (ot && type && strcmp(ot, type))
            invalid_str(v, "type", type, "field is immutable");
    }
    static const char *const fields[] = {"data", NULL};
    validate_immutable_data(v, obj, old, fields);
}

/* ---- rbac, storage, scheduling, coordination ---- */

static void validate_rules(struct v *v, const json_t *rules, bool namespaced)
{
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        cleanup_free char *base = xasprintf("rules[%zu]", i);
        cleanup_free char *fv = xasprintf("%s.verbs", base);
        cleanup_free char *fn = xasprintf("%s.nonResourceURLs", base);
        cleanup_free char *fg = xasprintf("%s.apiGroups", base);
        cleanup_free char *fr = xasprintf("%s.resources", base);
        if (!json_array_size(get(r, "verbs")))
            required(v, fv, "verbs must contain at least one value");
        const json_t *urls = get(r, "nonResourceURLs");
        if (json_array_size(urls)) {
            if (namespaced)
                invalid(v, fn, urls, "namespaced rules cannot apply to non-resource URLs");
            if (json_array_size(get(r, "apiGroups")) || json_array_size(get(r, "resources")) ||
                json_array_size(get(r, "resourceNames")))
                invalid(v, fn, urls, "rules cannot apply to both regular resources and non-resource URLs");
            continue;
        }
        if (!json_array_size(get(r, "apiGroups")))
            required(v, fg, "resource rules must supply at least one api group");
        if (!json_array_size(get(r, "resources")))
            required(v, fr, "resource rules must supply at least one resource");
    }
}

static void validate_binding(struct v *v, const json_t *obj, const json_t *old, bool cluster)
{
    static const char *const groups[] = {"rbac.authorization.k8s.io", NULL};
    static const char *const ns_kinds[] = {"Role", "ClusterRole", NULL};
    static const char *const cl_kinds[] = {"ClusterRole", NULL};
    static const char *const subject_kinds[] = {"ServiceAccount", "User", "Group", NULL};
    const json_t *ref = get(obj, "roleRef");
    const json_t *g = get(ref, "apiGroup"), *k = get(ref, "kind");
    if (!g || !json_is_string(g) || !in_list(json_string_value(g), groups))
        not_supported_opt(v, "roleRef.apiGroup", g, groups);
    const char *const *kinds = cluster ? cl_kinds : ns_kinds;
    if (!k || !json_is_string(k) || !in_list(json_string_value(k), kinds))
        not_supported_opt(v, "roleRef.kind", k, kinds);
    const char *rn = str(ref, "name");
    if (!rn || !*rn)
        required(v, "roleRef.name", "");
    else
        check_name(v, "roleRef.name", rn, check_path_segment);
    size_t i;
    json_t *sj;
    json_array_foreach(get(obj, "subjects"), i, sj) {
        cleanup_free char *fk = xasprintf("subjects[%zu].kind", i);
        cleanup_free char *fn = xasprintf("subjects[%zu].name", i);
        cleanup_free char *fg = xasprintf("subjects[%zu].apiGroup", i);
        const char *sk = str(sj, "kind"), *sn = str(sj, "name"), *sg = str(sj, "apiGroup");
        if (!sn || !*sn)
            required(v, fn, "");
        if (!sk || !in_list(sk, subject_kinds)) {
            not_supported_opt(v, fk, get(sj, "kind"), subject_kinds);
        } else if (!strcmp(sk, "ServiceAccount")) {
            static const char *const none[] = {"", NULL};
            if (sg && *sg)
                not_supported(v, fg, get(sj, "apiGroup"), none);
            if (cluster) {
                const char *sns = str(sj, "namespace");
                if (!sns || !*sns) {
                    cleanup_free char *fns = xasprintf("subjects[%zu].namespace", i);
                    required(v, fns, "");
                }
            }
        } else if (!sg || strcmp(sg, "rbac.authorization.k8s.io")) {
            not_supported_opt(v, fg, get(sj, "apiGroup"), groups);
        }
    }
    if (old && get(old, "roleRef") && !json_equal(get(old, "roleRef"), ref))
        invalid(v, "roleRef", ref ? ref : json_null(), "cannot change roleRef");
}

static void validate_pvc(struct v *v, const json_t *obj)
{
    static const char *const modes[] = {"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod", NULL};
    const json_t *spec = get(obj, "spec");
    const json_t *am = get(spec, "accessModes");
    if (!json_array_size(am))
        required(v, "spec.accessModes", "at least 1 access mode is required");
    size_t i;
    json_t *m;
    json_array_foreach(am, i, m)
        if (!json_is_string(m) || !in_list(json_string_value(m), modes))
            not_supported(v, "spec.accessModes", m, modes);
    if (!get(get(get(spec, "resources"), "requests"), "storage") && !get(spec, "dataSourceRef"))
        required(v, "spec.resources[storage]", "");
}

/* ---- entry points ---- */

json_t *ck_validate(const ck_resource *r, const json_t *obj, const json_t *old)
{
    struct v v = {json_array()};
    if (!r || !json_is_object(obj)) {
        if (!json_is_object(obj))
            invalid(&v, "", obj ? obj : json_null(), "must be an object");
        return v.causes;
    }
    const json_t *meta = get(obj, "metadata");
    validate_meta(&v, r, json_is_object(meta) ? meta : NULL, old ? get(old, "metadata") : NULL, true, "");
    const char *k = r->kind;
    if (!strcmp(k, "Pod")) {
        /* a status write shares the stored spec (rest.c's status shell): that spec was
         * validated when it was written and cannot have changed (upstream's status update does
         * not look at spec either); a deep copy and compare of it was a tenth of a kubelet
         * status report */
        const json_t *spec = get(obj, "spec");
        if (!old || !spec || spec != get(old, "spec")) {
            validate_pod_spec(&v, spec, "spec", restart_policies);
            if (old)
                validate_pod_update(&v, spec, get(old, "spec"));
        }
    } else if (!strcmp(k, "Deployment") || !strcmp(k, "ReplicaSet") || !strcmp(k, "DaemonSet") ||
               !strcmp(k, "StatefulSet") || !strcmp(k, "Job") || !strcmp(k, "ReplicationController")) {
        validate_workload(&v, r, obj, old);
    } else if (!strcmp(k, "CronJob")) {
        validate_cronjob(&v, r, obj, old);
    } else if (!strcmp(k, "Service")) {
        validate_service(&v, obj, old);
    } else if (!strcmp(k, "ConfigMap")) {
        validate_configmap(&v, obj, old);
    } else if (!strcmp(k, "Secret")) {
        validate_secret(&v, obj, old);
    } else if (!strcmp(k, "Role") || !strcmp(k, "ClusterRole")) {
        validate_rules(&v, get(obj, "rules"), !strcmp(k, "Role"));
    } else if (!strcmp(k, "RoleBinding") || !strcmp(k, "ClusterRoleBinding")) {
        validate_binding(&v, obj, old, !strcmp(k, "ClusterRoleBinding"));
    } else if (!strcmp(k, "PersistentVolumeClaim")) {
        validate_pvc(&v, obj);
    } else if (!strcmp(k, "PriorityClass")) {
        if (old && get(old, "value") && !json_equal(get(old, "value"), get(obj, "value") ? get(obj, "value") : json_null()))
            forbidden(&v, "value", "may not be changed in an update.");
    } else if (!strcmp(k, "Lease")) {
        const json_t *d = get(get(obj, "spec"), "leaseDurationSeconds");
        if (json_is_integer(d) && json_integer_value(d) <= 0)
            invalid_int(&v, "spec.leaseDurationSeconds", json_integer_value(d), "must be greater than 0");
    } else if (!strcmp(k, "PodTemplate")) {
        const json_t *t = get(obj, "template");
        validate_meta(&v, r, get(t, "metadata"), NULL, false, "template.");
        validate_pod_spec(&v, get(t, "spec"), "template.spec", restart_policies);
    }
    return v.causes;
}

char *ck_validate_message(const ck_resource *r, const char *name, const json_t *causes)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    cleanup_free char *q = ck_go_quote(name ? name : "");
    if (r && *r->group)
        ck_buf_printf(&b, "%s.%s %s is invalid", r->kind, r->group, q);
    else
        ck_buf_printf(&b, "%s %s is invalid", r ? r->kind : "Object", q);
    /* utilerrors.Aggregate: duplicates dropped, one error bare, several in brackets */
    json_t *seen = json_object();
    json_t *lines = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(causes, i, c) {
        const char *f = str(c, "field"), *m = str(c, "message");
        char *line = f && *f ? xasprintf("%s: %s", f, m ? m : "") : xstrdup(m ? m : "");
        if (!json_object_get(seen, line)) {
            json_object_set_new(seen, line, json_true());
            json_array_append_new(lines, json_string(line));
        }
        free(line);
    }
    size_t n = json_array_size(lines);
    if (n == 1)
        ck_buf_printf(&b, ": %s", json_string_value(json_array_get(lines, 0)));
    else if (n > 1) {
        ck_buf_addstr(&b, ": [");
        json_array_foreach(lines, i, c)
            ck_buf_printf(&b, "%s%s", i ? ", " : "", json_string_value(c));
        ck_buf_addstr(&b, "]");
    }
    json_decref(seen);
    json_decref(lines);
    return ck_buf_steal(&b);
}

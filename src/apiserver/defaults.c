/* defaults.c - ck_default (validate.h): the defaults upstream's pkg/apis/<group>/v1 defaulting
 * functions apply to the built-in kinds, in place.  Only unset fields are filled. */
#include "apiserver/validate.h"
#include "lib/base64.h"
#include "lib/util.h"

#include <string.h>

static json_t *obj_at(json_t *o, const char *k)
{
    json_t *c = json_object_get(o, k);
    if (!json_is_object(c)) {
        c = json_object();
        if (json_is_object(o))
            json_object_set_new(o, k, c);
        else
            json_decref(c), c = NULL;   /* set_default and friends ignore a NULL parent */
    }
    return c;
}

static void set_default(json_t *o, const char *k, json_t *v /* stolen */)
{
    if (json_is_object(o) && !json_object_get(o, k))
        json_object_set_new(o, k, v);
    else
        json_decref(v);
}

/* IfNotPresent unless the image has no tag or the tag is latest (a digest counts as pinned). */
static const char *pull_policy(const char *image)
{
    if (!image)
        return "IfNotPresent";
    if (strchr(image, '@'))
        return "IfNotPresent";
    const char *slash = strrchr(image, '/');
    const char *colon = strrchr(slash ? slash : image, ':');
    if (!colon || !strcmp(colon + 1, "latest"))
        return "Always";
    return "IfNotPresent";
}

static void default_probe(json_t *p)
{
    if (!json_is_object(p))
        return;
    set_default(p, "timeoutSeconds", json_integer(1));
    set_default(p, "periodSeconds", json_integer(10));
    set_default(p, "successThreshold", json_integer(1));
    set_default(p, "failureThreshold", json_integer(3));
    json_t *hg = json_object_get(p, "httpGet");
    if (json_is_object(hg)) {
        set_default(hg, "path", json_string("/"));
        set_default(hg, "scheme", json_string("HTTP"));
    }
}

static void default_container(json_t *c)
{
    if (!json_is_object(c))
        return;
    set_default(c, "imagePullPolicy", json_string(pull_policy(json_string_value(json_object_get(c, "image")))));
    set_default(c, "terminationMessagePath", json_string("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json_string("File"));
    set_default(c, "resources", json_object());
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(c, "ports"), i, p)
        set_default(p, "protocol", json_string("TCP"));
    json_array_foreach(json_object_get(c, "env"), i, p) {
        json_t *fr = json_object_get(json_object_get(p, "valueFrom"), "fieldRef");
        if (json_is_object(fr))
            set_default(fr, "apiVersion", json_string("v1"));
    }
    default_probe(json_object_get(c, "livenessProbe"));
    default_probe(json_object_get(c, "readinessProbe"));
    default_probe(json_object_get(c, "startupProbe"));
}

static void default_pod_spec(json_t *spec)
{
    if (!json_is_object(spec))
        return;
    set_default(spec, "restartPolicy", json_string("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json_integer(30));
    set_default(spec, "dnsPolicy", json_string("ClusterFirst"));
    set_default(spec, "securityContext", json_object());
    set_default(spec, "schedulerName", json_string("default-scheduler"));
    /* v1 keeps the deprecated serviceAccount in step with serviceAccountName */
    json_t *san = json_object_get(spec, "serviceAccountName"), *sa = json_object_get(spec, "serviceAccount");
    if (json_is_string(san) && !sa)
        json_object_set(spec, "serviceAccount", san);
    else if (json_is_string(sa) && !san)
        json_object_set(spec, "serviceAccountName", sa);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c)
        default_container(c);
    json_array_foreach(json_object_get(spec, "initContainers"), i, c)
        default_container(c);
    json_array_foreach(json_object_get(spec, "volumes"), i, c) {
        json_t *cm = json_object_get(c, "configMap"), *sec = json_object_get(c, "secret");
        if (json_is_object(cm))
            set_default(cm, "defaultMode", json_integer(420));
        if (json_is_object(sec))
            set_default(sec, "defaultMode", json_integer(420));
        json_t *proj = json_object_get(c, "projected");
        if (json_is_object(proj))
            set_default(proj, "defaultMode", json_integer(420));
        json_t *dapi = json_object_get(c, "downwardAPI");
        if (json_is_object(dapi))
            set_default(dapi, "defaultMode", json_integer(420));
        json_t *hp = json_object_get(c, "hostPath");
        if (json_is_object(hp))
            set_default(hp, "type", json_string(""));
    }
}

static void default_template(json_t *spec)
{
    json_t *t = json_object_get(spec, "template");
    if (json_is_object(t))
        default_pod_spec(json_object_get(t, "spec"));
}

static void default_job_spec(json_t *spec, const json_t *meta)
{
    if (!json_is_object(spec))
        return;
    json_t *c = json_object_get(spec, "completions"), *p = json_object_get(spec, "parallelism");
    if (!c && !p) {
        json_object_set_new(spec, "completions", json_integer(1));
        json_object_set_new(spec, "parallelism", json_integer(1));
    }
    set_default(spec, "parallelism", json_integer(1));
    set_default(spec, "backoffLimit", json_integer(6));
    set_default(spec, "completionMode", json_string("NonIndexed"));
    set_default(spec, "suspend", json_false());
    set_default(spec, "podReplacementPolicy", json_string("TerminatingOrFailed"));
    default_template(spec);
    /* the generated selector (the job controller's uid label), as the job REST strategy does */
    const char *uid = json_string_value(json_object_get(meta, "uid"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    if (uid && !json_object_get(spec, "selector") && !json_is_true(json_object_get(spec, "manualSelector"))) {
        json_object_set_new(spec, "selector",
                            json_pack("{s:{s:s}}", "matchLabels", "batch.kubernetes.io/controller-uid", uid));
        json_t *tm = obj_at(obj_at(spec, "template"), "metadata");
        json_t *labels = obj_at(tm, "labels");
        json_object_set_new(labels, "batch.kubernetes.io/controller-uid", json_string(uid));
        json_object_set_new(labels, "controller-uid", json_string(uid));
        if (name) {
            json_object_set_new(labels, "batch.kubernetes.io/job-name", json_string(name));
            json_object_set_new(labels, "job-name", json_string(name));
        }
    }
}

/* SetDefaults_Pod: a container that states a limit but no request requests its limit. */
static void requests_from_limits(json_t *res)
{
    json_t *lim = json_object_get(res, "limits");
    if (!json_object_size(lim))
        return;
    json_t *req = obj_at(res, "requests");
    const char *k;
    json_t *v;
    json_object_foreach(lim, k, v)
        set_default(req, k, json_incref(v));
}

/* Container items: default limit <- max, default request <- default limit, then <- min. */
static void default_limit_item(json_t *item)
{
    if (!json_is_object(item) || strcmp(json_string_value(json_object_get(item, "type")) ?: "", "Container"))
        return;
    static const char *const from[] = {"max", "default", "min"};
    static const char *const to[] = {"default", "defaultRequest", "defaultRequest"};
    for (size_t i = 0; i < 3; i++) {
        json_t *src = json_object_get(item, from[i]);
        if (!json_object_size(src))
            continue;
        json_t *dst = obj_at(item, to[i]);
        const char *k;
        json_t *v;
        json_object_foreach(src, k, v)
            set_default(dst, k, json_incref(v));
    }
}

/* v1 Secret conversion: stringData is write-only, merged into data (base64) over any key of
 * the same name, and never stored. */
static void merge_string_data(json_t *secret)
{
    json_t *sd = json_object_get(secret, "stringData");
    if (!sd)
        return;
    if (json_object_size(sd)) {
        json_t *data = obj_at(secret, "data");
        const char *k;
        json_t *v;
        json_object_foreach(sd, k, v) {
            const char *plain = json_string_value(v);
            if (!plain)
                continue;
            cleanup_free char *b64 = ck_b64_encode(plain, strlen(plain));
            json_object_set_new(data, k, json_string(b64));
        }
    }
    json_object_del(secret, "stringData");
}

void ck_default(const ck_resource *r, json_t *obj)
{
    if (!r || !json_is_object(obj))
        return;
    const char *k = r->kind;
    json_t *spec = json_object_get(obj, "spec");
    if (!strcmp(k, "Pod")) {
        default_pod_spec(spec);
        if (json_is_object(spec)) {
            /* priority and preemptionPolicy come from the Priority admission plugin */
            set_default(spec, "enableServiceLinks", json_true());
            static const char *const lists[] = {"containers", "initContainers"};
            for (size_t l = 0; l < 2; l++) {
                size_t i;
                json_t *c;
                json_array_foreach(json_object_get(spec, lists[l]), i, c)
                    requests_from_limits(json_object_get(c, "resources"));
            }
        }
    } else if (!strcmp(k, "PodTemplate")) {
        json_t *t = json_object_get(obj, "template");
        if (json_is_object(t))
            default_pod_spec(json_object_get(t, "spec"));
    } else if (!strcmp(k, "Deployment") && json_is_object(spec)) {
        set_default(spec, "replicas", json_integer(1));
        json_t *st = obj_at(spec, "strategy");
        set_default(st, "type", json_string("RollingUpdate"));
        const char *t = json_string_value(json_object_get(st, "type"));
        if (t && !strcmp(t, "RollingUpdate")) {
            json_t *ru = obj_at(st, "rollingUpdate");
            set_default(ru, "maxUnavailable", json_string("25%"));
            set_default(ru, "maxSurge", json_string("25%"));
        }
        set_default(spec, "revisionHistoryLimit", json_integer(10));
        set_default(spec, "progressDeadlineSeconds", json_integer(600));
        default_template(spec);
    } else if (!strcmp(k, "ReplicaSet") && json_is_object(spec)) {
        set_default(spec, "replicas", json_integer(1));
        default_template(spec);
    } else if (!strcmp(k, "ReplicationController") && json_is_object(spec)) {
        set_default(spec, "replicas", json_integer(1));
        json_t *tl = json_object_get(json_object_get(json_object_get(spec, "template"), "metadata"), "labels");
        if (json_is_object(tl) && !json_object_get(spec, "selector"))
            json_object_set_new(spec, "selector", json_deep_copy(tl));
        json_t *meta = obj_at(obj, "metadata");
        if (json_is_object(tl) && !json_object_get(meta, "labels"))
            json_object_set_new(meta, "labels", json_deep_copy(tl));
        default_template(spec);
    } else if (!strcmp(k, "DaemonSet") && json_is_object(spec)) {
        json_t *us = obj_at(spec, "updateStrategy");
        set_default(us, "type", json_string("RollingUpdate"));
        const char *t = json_string_value(json_object_get(us, "type"));
        if (t && !strcmp(t, "RollingUpdate")) {
            json_t *ru = obj_at(us, "rollingUpdate");
            set_default(ru, "maxUnavailable", json_integer(1));
            set_default(ru, "maxSurge", json_integer(0));
        }
        set_default(spec, "revisionHistoryLimit", json_integer(10));
        default_template(spec);
    } else if (!strcmp(k, "StatefulSet") && json_is_object(spec)) {
        set_default(spec, "replicas", json_integer(1));
        set_default(spec, "podManagementPolicy", json_string("OrderedReady"));
        json_t *us = obj_at(spec, "updateStrategy");
        set_default(us, "type", json_string("RollingUpdate"));
        const char *t = json_string_value(json_object_get(us, "type"));
        if (t && !strcmp(t, "RollingUpdate")) {
            json_t *ru = obj_at(us, "rollingUpdate");
            set_default(ru, "partition", json_integer(0));
            /* maxUnavailable is behind the MaxUnavailableStatefulSet gate, alpha and off in 1.33:
             * the API server drops it, as upstream's dropStatefulSetDisabledFields */
            json_object_del(ru, "maxUnavailable");
        }
        set_default(spec, "revisionHistoryLimit", json_integer(10));
        json_t *pr = obj_at(spec, "persistentVolumeClaimRetentionPolicy");
        set_default(pr, "whenDeleted", json_string("Retain"));
        set_default(pr, "whenScaled", json_string("Retain"));
        default_template(spec);
    } else if (!strcmp(k, "Job")) {
        default_job_spec(spec, json_object_get(obj, "metadata"));
    } else if (!strcmp(k, "CronJob") && json_is_object(spec)) {
        set_default(spec, "concurrencyPolicy", json_string("Allow"));
        set_default(spec, "suspend", json_false());
        set_default(spec, "successfulJobsHistoryLimit", json_integer(3));
        set_default(spec, "failedJobsHistoryLimit", json_integer(1));
        json_t *js = json_object_get(json_object_get(spec, "jobTemplate"), "spec");
        if (json_is_object(js)) {
            /* the job template is defaulted like a job, without a generated selector */
            json_t *c = json_object_get(js, "completions"), *p = json_object_get(js, "parallelism");
            if (!c && !p) {
                json_object_set_new(js, "completions", json_integer(1));
                json_object_set_new(js, "parallelism", json_integer(1));
            }
            set_default(js, "parallelism", json_integer(1));
            set_default(js, "backoffLimit", json_integer(6));
            set_default(js, "completionMode", json_string("NonIndexed"));
            set_default(js, "suspend", json_false());
            set_default(js, "podReplacementPolicy", json_string("TerminatingOrFailed"));
            default_template(js);
        }
    } else if (!strcmp(k, "Service") && json_is_object(spec)) {
        set_default(spec, "type", json_string("ClusterIP"));
        set_default(spec, "sessionAffinity", json_string("None"));
        const char *type = json_string_value(json_object_get(spec, "type"));
        bool external = type && !strcmp(type, "ExternalName");
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(spec, "ports"), i, p) {
            set_default(p, "protocol", json_string("TCP"));
            json_t *port = json_object_get(p, "port");
            if (port && !external)
                set_default(p, "targetPort", json_incref(port));
        }
        if (!external) {
            set_default(spec, "internalTrafficPolicy", json_string("Cluster"));
            set_default(spec, "ipFamilyPolicy", json_string("SingleStack"));
            set_default(spec, "ipFamilies", json_pack("[s]", "IPv4"));
        }
        if (type && (!strcmp(type, "NodePort") || !strcmp(type, "LoadBalancer")))
            set_default(spec, "externalTrafficPolicy", json_string("Cluster"));
        if (type && !strcmp(type, "LoadBalancer"))
            set_default(spec, "allocateLoadBalancerNodePorts", json_true());
    } else if (!strcmp(k, "Namespace")) {
        set_default(obj_at(obj, "spec"), "finalizers", json_pack("[s]", "kubernetes"));
        set_default(obj_at(obj, "status"), "phase", json_string("Active"));
    } else if (!strcmp(k, "Secret")) {
        set_default(obj, "type", json_string("Opaque"));
        merge_string_data(obj);
    } else if (!strcmp(k, "LimitRange") && json_is_object(spec)) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(spec, "limits"), i, item)
            default_limit_item(item);
    } else if (!strcmp(k, "PersistentVolumeClaim") && json_is_object(spec)) {
        set_default(spec, "volumeMode", json_string("Filesystem"));
    } else if (!strcmp(k, "PersistentVolume") && json_is_object(spec)) {
        set_default(spec, "persistentVolumeReclaimPolicy", json_string("Retain"));
        set_default(spec, "volumeMode", json_string("Filesystem"));
    } else if (!strcmp(k, "Endpoints")) {
        size_t i, j;
        json_t *s, *p;
        json_array_foreach(json_object_get(obj, "subsets"), i, s)
            json_array_foreach(json_object_get(s, "ports"), j, p)
                set_default(p, "protocol", json_string("TCP"));
    } else if (!strcmp(k, "PriorityClass")) {
        set_default(obj, "preemptionPolicy", json_string("PreemptLowerPriority"));
    } else if (!strcmp(k, "StorageClass")) {
        set_default(obj, "reclaimPolicy", json_string("Delete"));
        set_default(obj, "volumeBindingMode", json_string("Immediate"));
    }
}

/* protobuf.c - the Kubernetes protobuf envelope ("k8s\0" + runtime.Unknown) decoded into the JSON
 * tree the JSON encoding of the same object gives, for the kinds kubectl 1.32+ sends as protobuf
 * (wire doc section 3: every `kubectl create <kind>` of a served kind, plus create token and the
 * auth reviews) plus a few neighbours.
 *
 * A small table-driven wire decoder: each message type is a table of (field number, JSON name,
 * type, nested table).  Field numbers are facts from upstream's generated.proto files.  Go's
 * protobuf writes every non-pointer field, zero or not, while its JSON uses omitempty: so zero
 * scalars are dropped unless the field is a pointer upstream (OPT below: replicas: 0 stays).
 * Unknown fields are skipped by wire type; anything malformed is CK_E_BAD_REQUEST; nesting is
 * bounded. */
#include "apiserver/codec.h"
#include "lib/util.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

enum pt {
    P_STR, P_BYTES, P_I32, P_I64, P_BOOL, P_MSG, P_MAP_SS, P_MAP_SB, P_MAP_SQ, P_TIME, P_IOS, P_QTY,
};

typedef struct pmsg pmsg;
typedef struct pfield {
    unsigned num;
    const char *name;
    enum pt type;
    unsigned flags;
    const pmsg *msg;
} pfield;
struct pmsg {
    const pfield *f;
};

#define REP 1u      /* repeated */
#define OPT 2u      /* a pointer upstream: a zero value on the wire is kept */
#define INL 4u      /* embedded struct: its fields go into the parent object */
#define END {0}

#define MSG(name, ...) static const pfield name##_f[] = {__VA_ARGS__, END}; static const pmsg name = {name##_f}

/* ---- meta/v1 ---- */
MSG(m_owner_ref, {1, "kind", P_STR}, {3, "name", P_STR}, {4, "uid", P_STR}, {5, "apiVersion", P_STR},
    {6, "controller", P_BOOL, OPT}, {7, "blockOwnerDeletion", P_BOOL, OPT});
MSG(m_meta, {1, "name", P_STR}, {2, "generateName", P_STR}, {3, "namespace", P_STR}, {4, "selfLink", P_STR},
    {5, "uid", P_STR}, {6, "resourceVersion", P_STR}, {7, "generation", P_I64}, {8, "creationTimestamp", P_TIME},
    {9, "deletionTimestamp", P_TIME}, {10, "deletionGracePeriodSeconds", P_I64, OPT}, {11, "labels", P_MAP_SS},
    {12, "annotations", P_MAP_SS}, {13, "ownerReferences", P_MSG, REP, &m_owner_ref},
    {14, "finalizers", P_STR, REP});
MSG(m_selector_req, {1, "key", P_STR}, {2, "operator", P_STR}, {3, "values", P_STR, REP});
MSG(m_selector, {1, "matchLabels", P_MAP_SS}, {2, "matchExpressions", P_MSG, REP, &m_selector_req});

/* ---- core/v1 ---- */
MSG(m_local_ref, {1, "name", P_STR});
MSG(m_key_to_path, {1, "key", P_STR}, {2, "path", P_STR}, {3, "mode", P_I32, OPT});
MSG(m_cm_key, {1, "", P_MSG, INL, &m_local_ref}, {2, "key", P_STR}, {3, "optional", P_BOOL, OPT});
MSG(m_field_ref, {1, "apiVersion", P_STR}, {2, "fieldPath", P_STR});
MSG(m_res_field_ref, {1, "containerName", P_STR}, {2, "resource", P_STR}, {3, "divisor", P_QTY});
MSG(m_env_source, {1, "fieldRef", P_MSG, 0, &m_field_ref}, {2, "resourceFieldRef", P_MSG, 0, &m_res_field_ref},
    {3, "configMapKeyRef", P_MSG, 0, &m_cm_key}, {4, "secretKeyRef", P_MSG, 0, &m_cm_key});
MSG(m_env, {1, "name", P_STR}, {2, "value", P_STR}, {3, "valueFrom", P_MSG, 0, &m_env_source});
MSG(m_cm_env, {1, "", P_MSG, INL, &m_local_ref}, {2, "optional", P_BOOL, OPT});
MSG(m_env_from, {1, "prefix", P_STR}, {2, "configMapRef", P_MSG, 0, &m_cm_env}, {3, "secretRef", P_MSG, 0, &m_cm_env});
MSG(m_port, {1, "name", P_STR}, {2, "hostPort", P_I32}, {3, "containerPort", P_I32, OPT}, {4, "protocol", P_STR},
    {5, "hostIP", P_STR});
MSG(m_res_claim, {1, "name", P_STR}, {2, "request", P_STR});
MSG(m_resources, {1, "limits", P_MAP_SQ}, {2, "requests", P_MAP_SQ}, {3, "claims", P_MSG, REP, &m_res_claim});
MSG(m_mount, {1, "name", P_STR}, {2, "readOnly", P_BOOL}, {3, "mountPath", P_STR}, {4, "subPath", P_STR},
    {5, "mountPropagation", P_STR, OPT}, {6, "subPathExpr", P_STR}, {7, "recursiveReadOnly", P_STR, OPT});
MSG(m_exec, {1, "command", P_STR, REP});
MSG(m_http_header, {1, "name", P_STR}, {2, "value", P_STR});
MSG(m_http_get, {1, "path", P_STR}, {2, "port", P_IOS}, {3, "host", P_STR}, {4, "scheme", P_STR},
    {5, "httpHeaders", P_MSG, REP, &m_http_header});
MSG(m_tcp, {1, "port", P_IOS}, {2, "host", P_STR});
MSG(m_handler, {1, "exec", P_MSG, 0, &m_exec}, {2, "httpGet", P_MSG, 0, &m_http_get}, {3, "tcpSocket", P_MSG, 0, &m_tcp});
MSG(m_probe, {1, "", P_MSG, INL, &m_handler}, {2, "initialDelaySeconds", P_I32}, {3, "timeoutSeconds", P_I32},
    {4, "periodSeconds", P_I32}, {5, "successThreshold", P_I32}, {6, "failureThreshold", P_I32},
    {7, "terminationGracePeriodSeconds", P_I64, OPT});
MSG(m_container, {1, "name", P_STR}, {2, "image", P_STR}, {3, "command", P_STR, REP}, {4, "args", P_STR, REP},
    {5, "workingDir", P_STR}, {6, "ports", P_MSG, REP, &m_port}, {7, "env", P_MSG, REP, &m_env},
    {8, "resources", P_MSG, 0, &m_resources}, {9, "volumeMounts", P_MSG, REP, &m_mount},
    {10, "livenessProbe", P_MSG, 0, &m_probe}, {11, "readinessProbe", P_MSG, 0, &m_probe},
    {13, "terminationMessagePath", P_STR}, {14, "imagePullPolicy", P_STR}, {16, "stdin", P_BOOL},
    {17, "stdinOnce", P_BOOL}, {18, "tty", P_BOOL}, {19, "envFrom", P_MSG, REP, &m_env_from},
    {20, "terminationMessagePolicy", P_STR}, {22, "startupProbe", P_MSG, 0, &m_probe},
    {24, "restartPolicy", P_STR, OPT});
MSG(m_host_path, {1, "path", P_STR}, {2, "type", P_STR, OPT});
MSG(m_empty_dir, {1, "medium", P_STR}, {2, "sizeLimit", P_QTY});
MSG(m_secret_vol, {1, "secretName", P_STR}, {2, "items", P_MSG, REP, &m_key_to_path}, {3, "defaultMode", P_I32, OPT},
    {4, "optional", P_BOOL, OPT});
MSG(m_pvc_vol, {1, "claimName", P_STR}, {2, "readOnly", P_BOOL});
MSG(m_cm_vol, {1, "", P_MSG, INL, &m_local_ref}, {2, "items", P_MSG, REP, &m_key_to_path},
    {3, "defaultMode", P_I32, OPT}, {4, "optional", P_BOOL, OPT});
MSG(m_volume_source, {1, "hostPath", P_MSG, 0, &m_host_path}, {2, "emptyDir", P_MSG, 0, &m_empty_dir},
    {6, "secret", P_MSG, 0, &m_secret_vol}, {10, "persistentVolumeClaim", P_MSG, 0, &m_pvc_vol},
    {19, "configMap", P_MSG, 0, &m_cm_vol});
MSG(m_volume, {1, "name", P_STR}, {2, "", P_MSG, INL, &m_volume_source});
MSG(m_toleration, {1, "key", P_STR}, {2, "operator", P_STR}, {3, "value", P_STR}, {4, "effect", P_STR},
    {5, "tolerationSeconds", P_I64, OPT});
MSG(m_host_alias, {1, "ip", P_STR}, {2, "hostnames", P_STR, REP});
MSG(m_pod_security, {4, "runAsUser", P_I64, OPT}, {5, "runAsNonRoot", P_BOOL, OPT}, {6, "supplementalGroups", P_I64, REP},
    {7, "fsGroup", P_I64, OPT}, {8, "runAsGroup", P_I64, OPT});
MSG(m_pod_spec, {1, "volumes", P_MSG, REP, &m_volume}, {2, "containers", P_MSG, REP, &m_container},
    {3, "restartPolicy", P_STR}, {4, "terminationGracePeriodSeconds", P_I64, OPT},
    {5, "activeDeadlineSeconds", P_I64, OPT}, {6, "dnsPolicy", P_STR}, {7, "nodeSelector", P_MAP_SS},
    {8, "serviceAccountName", P_STR}, {9, "serviceAccount", P_STR}, {10, "nodeName", P_STR},
    {11, "hostNetwork", P_BOOL}, {12, "hostPID", P_BOOL}, {13, "hostIPC", P_BOOL},
    {14, "securityContext", P_MSG, 0, &m_pod_security}, {15, "imagePullSecrets", P_MSG, REP, &m_local_ref},
    {16, "hostname", P_STR}, {17, "subdomain", P_STR}, {19, "schedulerName", P_STR},
    {20, "initContainers", P_MSG, REP, &m_container}, {21, "automountServiceAccountToken", P_BOOL, OPT},
    {22, "tolerations", P_MSG, REP, &m_toleration}, {23, "hostAliases", P_MSG, REP, &m_host_alias},
    {24, "priorityClassName", P_STR}, {25, "priority", P_I32, OPT}, {29, "runtimeClassName", P_STR, OPT},
    {30, "enableServiceLinks", P_BOOL, OPT}, {31, "preemptionPolicy", P_STR, OPT});
MSG(m_template, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_pod_spec});
MSG(m_condition, {1, "type", P_STR}, {2, "status", P_STR}, {3, "lastProbeTime", P_TIME},
    {4, "lastTransitionTime", P_TIME}, {5, "reason", P_STR}, {6, "message", P_STR});
MSG(m_pod_status, {1, "phase", P_STR}, {2, "conditions", P_MSG, REP, &m_condition}, {3, "message", P_STR},
    {4, "reason", P_STR}, {5, "hostIP", P_STR}, {6, "podIP", P_STR});
MSG(m_pod, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_pod_spec}, {3, "status", P_MSG, 0, &m_pod_status});

MSG(m_configmap, {1, "metadata", P_MSG, 0, &m_meta}, {2, "data", P_MAP_SS}, {3, "binaryData", P_MAP_SB},
    {4, "immutable", P_BOOL, OPT});
MSG(m_secret, {1, "metadata", P_MSG, 0, &m_meta}, {2, "data", P_MAP_SB}, {3, "type", P_STR}, {4, "stringData", P_MAP_SS},
    {5, "immutable", P_BOOL, OPT});
MSG(m_ns_spec, {1, "finalizers", P_STR, REP});
MSG(m_ns_status, {1, "phase", P_STR});
MSG(m_namespace, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_ns_spec}, {3, "status", P_MSG, 0, &m_ns_status});
MSG(m_object_ref, {1, "kind", P_STR}, {2, "namespace", P_STR}, {3, "name", P_STR}, {4, "uid", P_STR},
    {5, "apiVersion", P_STR}, {6, "resourceVersion", P_STR}, {7, "fieldPath", P_STR});
MSG(m_service_account, {1, "metadata", P_MSG, 0, &m_meta}, {2, "secrets", P_MSG, REP, &m_object_ref},
    {3, "imagePullSecrets", P_MSG, REP, &m_local_ref}, {4, "automountServiceAccountToken", P_BOOL, OPT});
MSG(m_service_port, {1, "name", P_STR}, {2, "protocol", P_STR}, {3, "port", P_I32, OPT}, {4, "targetPort", P_IOS},
    {5, "nodePort", P_I32}, {6, "appProtocol", P_STR, OPT});
MSG(m_service_spec, {1, "ports", P_MSG, REP, &m_service_port}, {2, "selector", P_MAP_SS}, {3, "clusterIP", P_STR},
    {4, "type", P_STR}, {5, "externalIPs", P_STR, REP}, {7, "sessionAffinity", P_STR}, {8, "loadBalancerIP", P_STR},
    {9, "loadBalancerSourceRanges", P_STR, REP}, {10, "externalName", P_STR}, {11, "externalTrafficPolicy", P_STR},
    {12, "healthCheckNodePort", P_I32}, {13, "publishNotReadyAddresses", P_BOOL}, {17, "ipFamilyPolicy", P_STR, OPT},
    {18, "clusterIPs", P_STR, REP}, {19, "ipFamilies", P_STR, REP}, {20, "allocateLoadBalancerNodePorts", P_BOOL, OPT},
    {21, "loadBalancerClass", P_STR, OPT}, {22, "internalTrafficPolicy", P_STR, OPT});
MSG(m_lb_status, {1, "ingress", P_MSG, REP, &m_local_ref});
MSG(m_service_status, {1, "loadBalancer", P_MSG, 0, &m_lb_status});
MSG(m_service, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_service_spec},
    {3, "status", P_MSG, 0, &m_service_status});

/* ---- apps/v1, batch/v1 ---- */
MSG(m_rolling, {1, "maxUnavailable", P_IOS}, {2, "maxSurge", P_IOS});
MSG(m_strategy, {1, "type", P_STR}, {2, "rollingUpdate", P_MSG, 0, &m_rolling});
MSG(m_deploy_spec, {1, "replicas", P_I32, OPT}, {2, "selector", P_MSG, 0, &m_selector}, {3, "template", P_MSG, 0, &m_template},
    {4, "strategy", P_MSG, 0, &m_strategy}, {5, "minReadySeconds", P_I32}, {6, "revisionHistoryLimit", P_I32, OPT},
    {7, "paused", P_BOOL}, {9, "progressDeadlineSeconds", P_I32, OPT});
MSG(m_workload_status, {1, "observedGeneration", P_I64}, {2, "replicas", P_I32}, {3, "updatedReplicas", P_I32},
    {4, "availableReplicas", P_I32}, {5, "unavailableReplicas", P_I32}, {7, "readyReplicas", P_I32});
MSG(m_deployment, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_deploy_spec},
    {3, "status", P_MSG, 0, &m_workload_status});
MSG(m_job_spec, {1, "parallelism", P_I32, OPT}, {2, "completions", P_I32, OPT}, {3, "activeDeadlineSeconds", P_I64, OPT},
    {4, "selector", P_MSG, 0, &m_selector}, {5, "manualSelector", P_BOOL, OPT}, {6, "template", P_MSG, 0, &m_template},
    {7, "backoffLimit", P_I32, OPT}, {8, "ttlSecondsAfterFinished", P_I32, OPT}, {9, "completionMode", P_STR, OPT},
    {10, "suspend", P_BOOL, OPT}, {12, "backoffLimitPerIndex", P_I32, OPT}, {13, "maxFailedIndexes", P_I32, OPT},
    {14, "podReplacementPolicy", P_STR, OPT}, {16, "managedBy", P_STR, OPT});
MSG(m_job_status, {5, "active", P_I32}, {6, "succeeded", P_I32}, {7, "failed", P_I32});
MSG(m_job, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_job_spec}, {3, "status", P_MSG, 0, &m_job_status});
MSG(m_job_template, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_job_spec});
MSG(m_cronjob_spec, {1, "schedule", P_STR}, {2, "startingDeadlineSeconds", P_I64, OPT}, {3, "concurrencyPolicy", P_STR},
    {4, "suspend", P_BOOL, OPT}, {5, "jobTemplate", P_MSG, 0, &m_job_template},
    {6, "successfulJobsHistoryLimit", P_I32, OPT}, {7, "failedJobsHistoryLimit", P_I32, OPT},
    {8, "timeZone", P_STR, OPT});
MSG(m_cronjob_status, {1, "active", P_MSG, REP, &m_object_ref}, {4, "lastScheduleTime", P_TIME},
    {5, "lastSuccessfulTime", P_TIME});
MSG(m_cronjob, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_cronjob_spec},
    {3, "status", P_MSG, 0, &m_cronjob_status});

/* ---- core/v1 ResourceQuota, scheduling.k8s.io/v1, policy/v1 (kubectl create quota, priorityclass,
 * poddisruptionbudget) ---- */
MSG(m_scoped_req, {1, "scopeName", P_STR}, {2, "operator", P_STR}, {3, "values", P_STR, REP});
MSG(m_scope_selector, {1, "matchExpressions", P_MSG, REP, &m_scoped_req});
MSG(m_quota_spec, {1, "hard", P_MAP_SQ}, {2, "scopes", P_STR, REP}, {3, "scopeSelector", P_MSG, 0, &m_scope_selector});
MSG(m_quota_status, {1, "hard", P_MAP_SQ}, {2, "used", P_MAP_SQ});
MSG(m_quota, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_quota_spec},
    {3, "status", P_MSG, 0, &m_quota_status});
/* value has no omitempty upstream: a 0 is kept */
MSG(m_priority_class, {1, "metadata", P_MSG, 0, &m_meta}, {2, "value", P_I32, OPT}, {3, "globalDefault", P_BOOL},
    {4, "description", P_STR}, {5, "preemptionPolicy", P_STR, OPT});
MSG(m_pdb_spec, {1, "minAvailable", P_IOS}, {2, "selector", P_MSG, 0, &m_selector}, {3, "maxUnavailable", P_IOS},
    {4, "unhealthyPodEvictionPolicy", P_STR, OPT});
/* the counts have no omitempty upstream */
MSG(m_pdb_status, {1, "observedGeneration", P_I64}, {3, "disruptionsAllowed", P_I32, OPT},
    {4, "currentHealthy", P_I32, OPT}, {5, "desiredHealthy", P_I32, OPT}, {6, "expectedPods", P_I32, OPT});
MSG(m_pdb, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_pdb_spec}, {3, "status", P_MSG, 0, &m_pdb_status});

/* ---- rbac.authorization.k8s.io/v1 (kubectl create role, clusterrole, rolebinding, clusterrolebinding) ---- */
MSG(m_policy_rule, {1, "verbs", P_STR, REP}, {2, "apiGroups", P_STR, REP}, {3, "resources", P_STR, REP},
    {4, "resourceNames", P_STR, REP}, {5, "nonResourceURLs", P_STR, REP});
MSG(m_aggregation, {1, "clusterRoleSelectors", P_MSG, REP, &m_selector});
MSG(m_role, {1, "metadata", P_MSG, 0, &m_meta}, {2, "rules", P_MSG, REP, &m_policy_rule});
MSG(m_cluster_role, {1, "metadata", P_MSG, 0, &m_meta}, {2, "rules", P_MSG, REP, &m_policy_rule},
    {3, "aggregationRule", P_MSG, 0, &m_aggregation});
MSG(m_subject, {1, "kind", P_STR}, {2, "apiGroup", P_STR}, {3, "name", P_STR}, {4, "namespace", P_STR});
MSG(m_role_ref, {1, "apiGroup", P_STR}, {2, "kind", P_STR}, {3, "name", P_STR});
MSG(m_binding, {1, "metadata", P_MSG, 0, &m_meta}, {2, "subjects", P_MSG, REP, &m_subject},
    {3, "roleRef", P_MSG, 0, &m_role_ref});

/* ---- authentication.k8s.io/v1, authorization.k8s.io/v1 ---- */
MSG(m_bound_ref, {1, "kind", P_STR}, {2, "apiVersion", P_STR}, {3, "name", P_STR}, {4, "uid", P_STR});
MSG(m_token_spec, {1, "audiences", P_STR, REP}, {3, "boundObjectRef", P_MSG, 0, &m_bound_ref},
    {4, "expirationSeconds", P_I64, OPT});
MSG(m_token_status, {1, "token", P_STR, OPT}, {2, "expirationTimestamp", P_TIME});
MSG(m_token_request, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_token_spec},
    {3, "status", P_MSG, 0, &m_token_status});
MSG(m_field_sel_req, {1, "key", P_STR}, {2, "operator", P_STR}, {3, "values", P_STR, REP});
MSG(m_field_sel_attr, {1, "rawSelector", P_STR}, {2, "requirements", P_MSG, REP, &m_field_sel_req});
MSG(m_label_sel_attr, {1, "rawSelector", P_STR}, {2, "requirements", P_MSG, REP, &m_selector_req});
MSG(m_res_attr, {1, "namespace", P_STR}, {2, "verb", P_STR}, {3, "group", P_STR}, {4, "version", P_STR},
    {5, "resource", P_STR}, {6, "subresource", P_STR}, {7, "name", P_STR},
    {8, "fieldSelector", P_MSG, 0, &m_field_sel_attr}, {9, "labelSelector", P_MSG, 0, &m_label_sel_attr});
MSG(m_nonres_attr, {1, "path", P_STR}, {2, "verb", P_STR});
MSG(m_ssar_spec, {1, "resourceAttributes", P_MSG, 0, &m_res_attr}, {2, "nonResourceAttributes", P_MSG, 0, &m_nonres_attr});
MSG(m_sar_status, {1, "allowed", P_BOOL, OPT}, {2, "reason", P_STR}, {3, "evaluationError", P_STR}, {4, "denied", P_BOOL});
MSG(m_ssar, {1, "metadata", P_MSG, 0, &m_meta}, {2, "spec", P_MSG, 0, &m_ssar_spec}, {3, "status", P_MSG, 0, &m_sar_status});
MSG(m_user_info, {1, "username", P_STR}, {2, "uid", P_STR}, {3, "groups", P_STR, REP});
MSG(m_ssr_status, {1, "userInfo", P_MSG, 0, &m_user_info});
MSG(m_ssr, {1, "metadata", P_MSG, 0, &m_meta}, {2, "status", P_MSG, 0, &m_ssr_status});

static const struct {
    const char *api_version, *kind;
    const pmsg *msg;
} kinds[] = {
    {"v1", "Pod", &m_pod},
    {"v1", "ConfigMap", &m_configmap},
    {"v1", "Secret", &m_secret},
    {"v1", "Namespace", &m_namespace},
    {"v1", "ServiceAccount", &m_service_account},
    {"v1", "Service", &m_service},
    {"apps/v1", "Deployment", &m_deployment},
    {"batch/v1", "Job", &m_job},
    {"batch/v1", "CronJob", &m_cronjob},
    {"v1", "ResourceQuota", &m_quota},
    {"scheduling.k8s.io/v1", "PriorityClass", &m_priority_class},
    {"policy/v1", "PodDisruptionBudget", &m_pdb},
    {"rbac.authorization.k8s.io/v1", "Role", &m_role},
    {"rbac.authorization.k8s.io/v1", "ClusterRole", &m_cluster_role},
    {"rbac.authorization.k8s.io/v1", "RoleBinding", &m_binding},
    {"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &m_binding},
    {"authentication.k8s.io/v1", "TokenRequest", &m_token_request},
    {"authentication.k8s.io/v1", "SelfSubjectReview", &m_ssr},
    {"authorization.k8s.io/v1", "SelfSubjectAccessReview", &m_ssar},
};

/* ---- wire reading ---- */

#define MAX_DEPTH 64

struct rd {
    const uint8_t *p, *end;
};

static int varint(struct rd *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int bytes(struct rd *r, struct rd *sub)
{
    uint64_t n;
    if (varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

static int skip(struct rd *r, unsigned wire)
{
    uint64_t v;
    struct rd sub;
    switch (wire) {
    case 0: return varint(r, &v);
    case 1: if (r->end - r->p < 8) return -1; r->p += 8; return 0;
    case 2: return bytes(r, &sub);
    case 5: if (r->end - r->p < 4) return -1; r->p += 4; return 0;
    default: return -1;   /* groups (3, 4) are not used by Kubernetes */
    }
}

static json_t *decode_msg(struct rd r, const pmsg *m, int depth, ck_error **err);

static int bad(ck_error **err, const char *what)
{
    return ck_error_set(err, CK_E_BAD_REQUEST, "unable to decode protobuf body: %s", what);
}

static json_t *jstr(struct rd s, ck_error **err)
{
    json_t *j = json_stringn((const char *)s.p, (size_t)(s.end - s.p));
    if (!j)
        bad(err, "string is not valid UTF-8");
    return j;
}

static json_t *jbase64(struct rd s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (size_t)(s.end - s.p);
    char *out = xmalloc((n + 2) / 3 * 4 + 1), *w = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s.p[i] << 16 | (i + 1 < n ? (uint32_t)s.p[i + 1] << 8 : 0) | (i + 2 < n ? s.p[i + 2] : 0);
        *w++ = tbl[v >> 18 & 63];
        *w++ = tbl[v >> 12 & 63];
        *w++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *w++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *w = 0;
    json_t *j = json_string(out);
    free(out);
    return j;
}

/* Time{1 seconds, 2 nanos} -> RFC 3339; JSON null for the zero time. */
static json_t *jtime(struct rd s, ck_error **err)
{
    int64_t secs = 0;
    while (s.p < s.end) {
        uint64_t tag, v;
        if (varint(&s, &tag) < 0)
            return bad(err, "truncated time"), NULL;
        if ((tag >> 3) == 1 && (tag & 7) == 0) {
            if (varint(&s, &v) < 0)
                return bad(err, "truncated time"), NULL;
            secs = (int64_t)v;
        } else if (skip(&s, tag & 7) < 0) {
            return bad(err, "truncated time"), NULL;
        }
    }
    if (!secs)
        return json_null();
    char out[32];
    ck_rfc3339(secs, out);
    return json_string(out);
}

/* IntOrString{1 type, 2 intVal, 3 strVal} */
static json_t *jios(struct rd s, ck_error **err)
{
    uint64_t type = 0, iv = 0;
    json_t *sv = NULL;
    while (s.p < s.end) {
        uint64_t tag;
        if (varint(&s, &tag) < 0)
            goto fail;
        unsigned f = (unsigned)(tag >> 3), w = tag & 7;
        if (f == 1 && w == 0) {
            if (varint(&s, &type) < 0)
                goto fail;
        } else if (f == 2 && w == 0) {
            if (varint(&s, &iv) < 0)
                goto fail;
        } else if (f == 3 && w == 2) {
            struct rd sub;
            if (bytes(&s, &sub) < 0)
                goto fail;
            json_decref(sv);
            if (!(sv = jstr(sub, err)))
                return NULL;
        } else if (skip(&s, w) < 0) {
            goto fail;
        }
    }
    if (type == 1) {
        return sv ? sv : json_string("");
    }
    json_decref(sv);
    return json_integer((int32_t)iv);
fail:
    json_decref(sv);
    bad(err, "truncated IntOrString");
    return NULL;
}

/* Quantity{1 string} */
static json_t *jqty(struct rd s, ck_error **err)
{
    json_t *out = NULL;
    while (s.p < s.end) {
        uint64_t tag;
        struct rd sub;
        if (varint(&s, &tag) < 0)
            goto fail;
        if ((tag >> 3) == 1 && (tag & 7) == 2) {
            if (bytes(&s, &sub) < 0)
                goto fail;
            json_decref(out);
            if (!(out = jstr(sub, err)))
                return NULL;
        } else if (skip(&s, tag & 7) < 0) {
            goto fail;
        }
    }
    return out ? out : json_string("0");
fail:
    json_decref(out);
    bad(err, "truncated Quantity");
    return NULL;
}

/* One map entry {1 key, 2 value} into obj. */
static int map_entry(json_t *obj, struct rd s, enum pt type, ck_error **err)
{
    json_t *key = NULL, *val = NULL;
    while (s.p < s.end) {
        uint64_t tag = 0;
        struct rd sub;
        if (varint(&s, &tag) < 0)
            goto fail;
        if ((tag & 7) != 2) {
            if (skip(&s, tag & 7) < 0)
                goto fail;
            continue;
        }
        if (bytes(&s, &sub) < 0)
            goto fail;
        unsigned f = (unsigned)(tag >> 3);
        if (f == 1) {
            json_decref(key);
            if (!(key = jstr(sub, err)))
                goto out;
        } else if (f == 2) {
            json_decref(val);
            val = type == P_MAP_SS ? jstr(sub, err) : type == P_MAP_SB ? jbase64(sub) : jqty(sub, err);
            if (!val)
                goto out;
        }
    }
    if (!val)
        val = type == P_MAP_SQ ? json_string("0") : json_string("");
    json_object_set_new(obj, key ? json_string_value(key) : "", val);
    json_decref(key);
    return 0;
fail:
    bad(err, "truncated map entry");
out:
    json_decref(key);
    json_decref(val);
    return -1;
}

static const pfield *find_field(const pmsg *m, unsigned num)
{
    for (const pfield *f = m->f; f->name; f++)
        if (f->num == num)
            return f;
    return NULL;
}

static unsigned wire_of(enum pt t)
{
    return t == P_I32 || t == P_I64 || t == P_BOOL ? 0 : 2;
}

static json_t *decode_msg(struct rd r, const pmsg *m, int depth, ck_error **err)
{
    if (depth > MAX_DEPTH) {
        ck_error_set(err, CK_E_TOO_LARGE, "unable to decode protobuf body: nesting deeper than %d", MAX_DEPTH);
        return NULL;
    }
    json_t *obj = json_object();
    while (r.p < r.end) {
        uint64_t tag;
        if (varint(&r, &tag) < 0 || (tag >> 3) == 0) {
            bad(err, "invalid field tag");
            goto fail;
        }
        unsigned num = (unsigned)(tag >> 3), wire = tag & 7;
        const pfield *f = find_field(m, num);
        if (!f || wire != wire_of(f->type)) {
            /* unknown field, or a packed/foreign encoding we do not read: skip safely */
            if (skip(&r, wire) < 0) {
                bad(err, "truncated field");
                goto fail;
            }
            continue;
        }
        json_t *val = NULL;
        if (wire == 0) {
            uint64_t v;
            if (varint(&r, &v) < 0) {
                bad(err, "truncated varint");
                goto fail;
            }
            bool zero = v == 0;
            if (zero && !(f->flags & (OPT | REP)))
                continue;
            val = f->type == P_BOOL ? json_boolean(v != 0)
                : f->type == P_I32 ? json_integer((int32_t)v) : json_integer((int64_t)v);
        } else {
            struct rd sub;
            if (bytes(&r, &sub) < 0) {
                bad(err, "truncated length-delimited field");
                goto fail;
            }
            switch (f->type) {
            case P_STR:
                if (sub.p == sub.end && !(f->flags & (OPT | REP)))
                    continue;
                val = jstr(sub, err);
                break;
            case P_BYTES:
                if (sub.p == sub.end && !(f->flags & (OPT | REP)))
                    continue;
                val = jbase64(sub);
                break;
            case P_MSG:
                val = decode_msg(sub, f->msg, depth + 1, err);
                break;
            case P_TIME:   /* a zero Time marshals to JSON null, as metav1.Time does */
                val = jtime(sub, err);
                break;
            case P_IOS:
                val = jios(sub, err);
                break;
            case P_QTY:
                val = jqty(sub, err);
                break;
            case P_MAP_SS: case P_MAP_SB: case P_MAP_SQ: {
                json_t *map = json_object_get(obj, f->name);
                if (!map) {
                    map = json_object();
                    json_object_set_new(obj, f->name, map);
                }
                if (map_entry(map, sub, f->type, err) < 0)
                    goto fail;
                continue;
            }
            default:
                continue;
            }
            if (!val)
                goto fail;
        }
        if (f->flags & INL) {
            json_object_update(obj, val);
            json_decref(val);
        } else if (f->flags & REP) {
            json_t *arr = json_object_get(obj, f->name);
            if (!json_is_array(arr)) {
                arr = json_array();
                json_object_set_new(obj, f->name, arr);
            }
            json_array_append_new(arr, val);
        } else {
            json_object_set_new(obj, f->name, val);
        }
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

json_t *ck_protobuf_decode(const void *buf, size_t len, ck_error **err)
{
    static const uint8_t magic[4] = {'k', '8', 's', 0};
    /* upstream's protobuf serializer words for a body that is not its envelope */
    if (len == 0 || len < 4 || memcmp(buf, magic, 4)) {
        ck_error_set(err, CK_E_BAD_REQUEST, len ? "provided data does not appear to be a protobuf "
                     "message, expected prefix [107 56 115 0]" : "empty data");
        return NULL;
    }
    if (len == 4) {
        ck_error_set(err, CK_E_BAD_REQUEST, "empty body");
        return NULL;
    }
    struct rd r = {(const uint8_t *)buf + 4, (const uint8_t *)buf + len};
    json_t *api_version = NULL, *kind = NULL;
    struct rd raw = {NULL, NULL};
    bool have_raw = false;
    json_t *out = NULL;
    while (r.p < r.end) {
        uint64_t tag = 0;
        struct rd sub;
        if (varint(&r, &tag) < 0 || ((tag & 7) != 2 && skip(&r, tag & 7) < 0) ||
            ((tag & 7) == 2 && bytes(&r, &sub) < 0)) {
            bad(err, "truncated runtime.Unknown");
            goto done;
        }
        if ((tag & 7) != 2)
            continue;
        switch (tag >> 3) {
        case 1:   /* typeMeta {1 apiVersion, 2 kind} */
            while (sub.p < sub.end) {
                uint64_t t2;
                struct rd s2;
                if (varint(&sub, &t2) < 0 || (t2 & 7) != 2 || bytes(&sub, &s2) < 0) {
                    bad(err, "truncated TypeMeta");
                    goto done;
                }
                json_t **slot = (t2 >> 3) == 1 ? &api_version : (t2 >> 3) == 2 ? &kind : NULL;
                if (!slot)
                    continue;
                json_decref(*slot);
                if (!(*slot = jstr(s2, err)))
                    goto done;
            }
            break;
        case 2:
            raw = sub;
            have_raw = true;
            break;
        case 3:
            if (sub.p != sub.end) {
                ck_error_set(err, CK_E_UNSUPPORTED_TYPE, "unable to decode protobuf body: content encoding %.*s is not supported",
                             (int)(sub.end - sub.p), (const char *)sub.p);
                goto done;
            }
            break;
        default:
            break;
        }
    }
    const char *av = json_string_value(api_version), *k = json_string_value(kind);
    if (!av || !k || !*k) {
        ck_error_set(err, CK_E_BAD_REQUEST, "Object 'Kind' is missing in protobuf body");
        goto done;
    }
    const pmsg *m = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (!strcmp(kinds[i].api_version, av) && !strcmp(kinds[i].kind, k))
            m = kinds[i].msg;
    if (!m) {
        ck_error_set(err, CK_E_UNSUPPORTED_TYPE, "no protobuf decoder for %s, Kind=%s: send it as application/json", av, k);
        goto done;
    }
    json_t *body = have_raw ? decode_msg(raw, m, 0, err) : json_object();
    if (!body)
        goto done;
    out = json_object();
    json_object_set(out, "kind", kind);
    json_object_set(out, "apiVersion", api_version);
    json_object_update(out, body);
    json_decref(body);
done:
    json_decref(api_version);
    json_decref(kind);
    return out;
}

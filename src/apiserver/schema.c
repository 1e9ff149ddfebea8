/* schema.c - see schema.h.  The tables are facts from upstream's types.go tags. */
#include "apiserver/schema.h"

#include <string.h>

/* Positional initializers for the common cases leave later fields zero on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define END {0}

static const ck_pfield empty_fields[] = {END};
static const ck_ptype t_empty = {empty_fields};

static const ck_pfield owner_ref_fields[] = {END};
static const ck_ptype t_owner_ref = {owner_ref_fields};

static const ck_pfield meta_fields[] = {
    {"finalizers", CK_LIST_SET},
    {"ownerReferences", CK_LIST_MAP, "uid", .type = &t_owner_ref},
    {"labels", .granular = true},
    {"annotations", .granular = true},
    {"managedFields", CK_LIST_ATOMIC},
    END,
};
static const ck_ptype t_meta = {meta_fields};

static const ck_pfield resources_fields[] = {
    {"limits", .granular = true},
    {"requests", .granular = true},
    {"claims", CK_LIST_MAP, "name"},
    END,
};
static const ck_ptype t_resources = {resources_fields};

static const ck_pfield container_fields[] = {
    {"ports", CK_LIST_MAP, "containerPort", "protocol", "TCP"},
    {"env", CK_LIST_MAP, "name"},
    {"volumeMounts", CK_LIST_MAP, "mountPath"},
    {"volumeDevices", CK_LIST_MAP, "devicePath"},
    {"resources", .type = &t_resources},
    END,
};
static const ck_ptype t_container = {container_fields};

static const ck_pfield volume_fields[] = {END};
static const ck_ptype t_volume = {volume_fields};

static const ck_pfield pod_spec_fields[] = {
    {"containers", CK_LIST_MAP, "name", .type = &t_container},
    {"initContainers", CK_LIST_MAP, "name", .type = &t_container},
    {"ephemeralContainers", CK_LIST_MAP, "name", .type = &t_container},
    {"volumes", CK_LIST_MAP, "name", .retain_keys = true, .type = &t_volume},
    {"imagePullSecrets", CK_LIST_MAP, "name"},
    {"hostAliases", CK_LIST_MAP, "ip"},
    {"topologySpreadConstraints", CK_LIST_MAP, "topologyKey", "whenUnsatisfiable"},
    {"resourceClaims", CK_LIST_MAP, "name", .retain_keys = true},
    {"schedulingGates", CK_LIST_MAP, "name"},
    {"nodeSelector", .granular = true},
    {"overhead", .granular = true},
    END,
};
static const ck_ptype t_pod_spec = {pod_spec_fields};

static const ck_pfield conditions_status_fields[] = {
    {"conditions", CK_LIST_MAP, "type"},
    END,
};
static const ck_ptype t_status = {conditions_status_fields};

static const ck_pfield pod_status_fields[] = {
    {"conditions", CK_LIST_MAP, "type"},
    {"podIPs", CK_LIST_MAP, "ip"},
    {"hostIPs", CK_LIST_MAP, "ip"},
    END,
};
static const ck_ptype t_pod_status = {pod_status_fields};

static const ck_pfield template_fields[] = {
    {"metadata", .type = &t_meta},
    {"spec", .type = &t_pod_spec},
    END,
};
static const ck_ptype t_template = {template_fields};

/* Deployment, ReplicaSet, DaemonSet, StatefulSet, ReplicationController, Job specs. */
static const ck_pfield workload_spec_fields[] = {
    {"selector", .atomic = true},
    {"template", .type = &t_template},
    {"strategy", .retain_keys = true},
    {"updateStrategy", .retain_keys = true},
    END,
};
static const ck_ptype t_workload_spec = {workload_spec_fields};

static const ck_pfield rc_spec_fields[] = {
    {"selector", .granular = true},
    {"template", .type = &t_template},
    END,
};
static const ck_ptype t_rc_spec = {rc_spec_fields};

static const ck_pfield job_template_fields[] = {
    {"metadata", .type = &t_meta},
    {"spec", .type = &t_workload_spec},
    END,
};
static const ck_ptype t_job_template = {job_template_fields};

static const ck_pfield cronjob_spec_fields[] = {
    {"jobTemplate", .type = &t_job_template},
    END,
};
static const ck_ptype t_cronjob_spec = {cronjob_spec_fields};

static const ck_pfield service_port_fields[] = {END};
static const ck_ptype t_service_port = {service_port_fields};

static const ck_pfield service_spec_fields[] = {
    {"ports", CK_LIST_MAP, "port", "protocol", "TCP", .type = &t_service_port},
    {"selector", .granular = true},
    END,
};
static const ck_ptype t_service_spec = {service_spec_fields};

static const ck_pfield node_spec_fields[] = {
    {"podCIDRs", CK_LIST_SET},
    END,
};
static const ck_ptype t_node_spec = {node_spec_fields};

static const ck_pfield node_status_fields[] = {
    {"conditions", CK_LIST_MAP, "type"},
    {"addresses", CK_LIST_MAP, "type"},
    {"capacity", .granular = true},
    {"allocatable", .granular = true},
    END,
};
static const ck_ptype t_node_status = {node_status_fields};

static const ck_pfield pdb_spec_fields[] = {
    {"selector", .atomic = true},
    END,
};
static const ck_ptype t_pdb_spec = {pdb_spec_fields};

#define ROOT(name, spec, status)                                                          \
    static const ck_pfield name##_fields[] = {                                            \
        {"metadata", .type = &t_meta},                                                    \
        {"spec", .type = spec},                                                           \
        {"status", .type = status},                                                       \
        {"data", .granular = true},                                                       \
        {"binaryData", .granular = true},                                                 \
        {"stringData", .granular = true},                                                 \
        END,                                                                              \
    };                                                                                    \
    static const ck_ptype name = {name##_fields};

ROOT(t_generic, &t_empty, &t_status)
ROOT(t_pod, &t_pod_spec, &t_pod_status)
ROOT(t_workload, &t_workload_spec, &t_status)
ROOT(t_rc, &t_rc_spec, &t_status)
ROOT(t_cronjob, &t_cronjob_spec, &t_status)
ROOT(t_service, &t_service_spec, &t_status)
ROOT(t_node, &t_node_spec, &t_node_status)
ROOT(t_pdb, &t_pdb_spec, &t_status)

static const ck_pfield podtemplate_fields[] = {
    {"metadata", .type = &t_meta},
    {"template", .type = &t_template},
    END,
};
static const ck_ptype t_podtemplate = {podtemplate_fields};

const ck_ptype *ck_schema_root(const ck_resource *r)
{
    if (!r)
        return &t_generic;
    const char *k = r->kind;
    if (!strcmp(k, "Pod"))
        return &t_pod;
    if (!strcmp(k, "Deployment") || !strcmp(k, "ReplicaSet") || !strcmp(k, "DaemonSet") ||
        !strcmp(k, "StatefulSet") || !strcmp(k, "Job"))
        return &t_workload;
    if (!strcmp(k, "ReplicationController"))
        return &t_rc;
    if (!strcmp(k, "CronJob"))
        return &t_cronjob;
    if (!strcmp(k, "Service"))
        return &t_service;
    if (!strcmp(k, "Node"))
        return &t_node;
    if (!strcmp(k, "PodTemplate"))
        return &t_podtemplate;
    if (!strcmp(k, "PodDisruptionBudget"))
        return &t_pdb;
    return &t_generic;
}

const ck_pfield *ck_schema_field(const ck_ptype *t, const char *name)
{
    if (!t)
        return NULL;
    for (const ck_pfield *f = t->fields; f->name; f++)
        if (!strcmp(f->name, name))
            return f;
    return NULL;
}

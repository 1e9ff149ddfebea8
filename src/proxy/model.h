/* model.h - the proxy's view of Services and EndpointSlices, shared by every mode.
 *
 * Informer handlers feed raw objects in (set/delete service, set/delete slice); the model keeps,
 * per Service ("ns/name"), its service ports (upstream ServicePortName "ns/name:port") with the
 * endpoints for each, rebuilt only for Services touched since the last sync.  A mode asks for
 * the changed keys (partial sync) or walks every service (full sync) and renders rules.
 *
 * The model is not locked: the caller (proxy.c) serialises handlers and syncs with one mutex.
 */
#ifndef CK_PROXY_MODEL_H
#define CK_PROXY_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

typedef struct ck_proxy_ep {
    char ip[46];
    int port;
    bool ready, serving, terminating;
    bool local;               /* nodeName (or hostname topology) is this node */
} ck_proxy_ep;

typedef struct ck_proxy_port {
    char *name;               /* "ns/name:portname" (":" dropped when the port is unnamed) */
    char *port_name;          /* the ServicePort name, "" when unnamed */
    const char *proto;        /* "tcp", "udp", "sctp" */
    int family;               /* 4 or 6: the cluster IP's family; endpoints and external IPs
                               * are of the same family (upstream: a proxier per family) */
    char cluster_ip[46];      /* "" for headless / none */
    int port, node_port;
    char **external;          /* externalIPs then LB ingress IPs */
    size_t n_external;
    bool affinity;            /* sessionAffinity ClientIP */
    int affinity_timeout;     /* seconds */
    bool ext_local, int_local;/* externalTrafficPolicy / internalTrafficPolicy Local */
    ck_proxy_ep *eps;
    size_t n_eps;
} ck_proxy_port;

typedef struct ck_proxy_service {
    char *key;                /* "ns/name" */
    ck_proxy_port *ports;
    size_t n_ports;
} ck_proxy_service;

typedef struct ck_proxy_model ck_proxy_model;

ck_proxy_model *ck_proxy_model_new(const char *node_name);
void ck_proxy_model_free(ck_proxy_model *m);

/* Objects are borrowed (the model keeps its own reference). */
void ck_proxy_model_set_service(ck_proxy_model *m, json_t *svc);
void ck_proxy_model_delete_service(ck_proxy_model *m, json_t *svc);
void ck_proxy_model_set_slice(ck_proxy_model *m, json_t *slice);
void ck_proxy_model_delete_slice(ck_proxy_model *m, json_t *slice);

/* Rebuild every Service touched since the last call and hand out their keys (a NEW array of
 * strings; a key whose Service is gone is still listed: the mode removes its rules). */
json_t *ck_proxy_model_take_changes(ck_proxy_model *m);
/* Mark every Service changed (a full resync). */
void ck_proxy_model_mark_all(ck_proxy_model *m);

/* NULL when the Service is gone or has no proxied ports (headless, ExternalName). */
const ck_proxy_service *ck_proxy_model_get(ck_proxy_model *m, const char *key);
size_t ck_proxy_model_count(ck_proxy_model *m);
/* Every service, in no particular order; stop early by returning false. */
void ck_proxy_model_foreach(ck_proxy_model *m, bool (*fn)(void *ctx, const ck_proxy_service *s),
                            void *ctx);

/* The endpoints a path uses (upstream CategorizeEndpoints): ready ones, or when none is ready the
 * serving-and-terminating ones; local_only keeps this node's.  out must hold p->n_eps entries;
 * returns the count. */
size_t ck_proxy_port_pick(const ck_proxy_port *p, bool local_only, const ck_proxy_ep **out);
/* Whether the port has any endpoint at all in use for the cluster (internal) path. */
bool ck_proxy_port_has_eps(const ck_proxy_port *p);

/* Build one Service's ports from the Service and its slices (an array); exposed for tests.
 * A dual-stack Service gives each of its ports twice, IPv4 first (clusterIPs order), each with
 * the endpoints of slices of its addressType.  Returns NULL (and *n = 0) for
 * headless/ExternalName Services. */
ck_proxy_port *ck_proxy_build_ports(const json_t *svc, const json_t *slices, const char *node_name,
                                    size_t *n);
void ck_proxy_ports_free(ck_proxy_port *ports, size_t n);

/* 4 or 6 for an address literal, 0 when it is neither. */
int ck_proxy_ip_family(const char *ip);
/* The CIDR of family fam (4 or 6) in a comma-separated (dual-stack) list, or NULL.  Caller frees. */
char *ck_proxy_cidr_of(const char *list, int fam);

/* A stable chain-name suffix (upstream style: base32 of sha256, 16 chars) of a string. */
void ck_proxy_hash16(const char *s, char out[17]);

#endif

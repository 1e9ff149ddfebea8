/* discovery.h - what the API server says it serves: legacy discovery (/api APIVersions,
 * /apis APIGroupList, /api/v1 and /apis/<g>/<v> APIResourceList) and aggregated discovery
 * (apidiscovery.k8s.io v2 and v2beta1), all generated from the resource table (resources.h).
 * Every function returns a NEW json tree (caller decrefs). */
#ifndef CK_DISCOVERY_H
#define CK_DISCOVERY_H

#include <jansson.h>

enum ck_discovery_format { CK_DISCOVERY_LEGACY, CK_DISCOVERY_V2BETA1, CK_DISCOVERY_V2 };

/* Pick the format from an Accept header, in the client's order of preference (kubectl-wire.md 1). */
enum ck_discovery_format ck_discovery_negotiate(const char *accept);
/* The Content-Type to answer with for a format ("application/json" for legacy). */
const char *ck_discovery_content_type(enum ck_discovery_format f);

json_t *ck_discovery_api_versions(void);                /* GET /api (legacy) */
json_t *ck_discovery_api_groups(void);                  /* GET /apis (legacy) */
/* GET /api/v1 or /apis/<group>/<version>; NULL if not served.  group "" = core. */
json_t *ck_discovery_resource_list(const char *group, const char *version);
/* Aggregated: core = true for /api, false for /apis. */
json_t *ck_discovery_aggregated(int core, enum ck_discovery_format f);

#endif

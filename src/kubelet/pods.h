/* pods.h - a pod's record on this node and the steps the sync loop takes on it (internal to
 * src/kubelet/).  pods.c owns the records and the loop; containers.c starts, watches, restarts
 * and stops containers and computes the pod status; volumes.c prepares volumes and env;
 * probes.c runs probes and lifecycle hooks.  A record is touched by one worker at a time (the
 * work queue never hands one key to two workers). */
#ifndef CK_KUBELET_PODS_H
#define CK_KUBELET_PODS_H

#include "kubelet/kubelet.h"

typedef struct ck_pods ck_pods;

enum probe_kind { PROBE_LIVENESS, PROBE_READINESS, PROBE_STARTUP, PROBE__COUNT };

typedef struct probe_state {
    int successes, failures;
    int64_t next_ns;        /* monotonic: when it is due */
    bool result;            /* the last verdict after thresholds */
    bool known;
} probe_state;

typedef struct ctr_state {
    char *name;
    bool init;
    int attempt;            /* -1: never started; else the current/last attempt (log file N.log) */
    char *id;               /* runtime id of the current attempt */
    pid_t pid;
    int64_t started_ns;     /* wall */
    char *image, *image_id;
    bool exited;
    int exit_code;
    int64_t finished_ns;    /* wall */
    int64_t dead_since;     /* monotonic: pid gone, no exit file yet */
    char *term_reason;      /* Completed, Error, OOMKilled */
    char *wait_reason, *wait_msg;   /* why it is not running (ErrImagePull, CrashLoopBackOff, ...) */
    int64_t backoff_until;  /* wall ns */
    int64_t backoff_ms;
    int restarts;
    struct {
        int exit_code;
        char *reason, *id;
        int64_t started_ns, finished_ns;
    } last;                 /* the previous attempt (lastState.terminated) */
    bool post_start_done;
    probe_state probes[PROBE__COUNT];
    bool kill_requested;    /* liveness/startup failure: restart it */
} ctr_state;

typedef struct pod_rec {
    char *key, *ns, *name, *uid, *dir;
    char *netns, *ip;
    char *cgroup;           /* the pod cgroup ("/ckube/kubepods/burstable/pod<uid>") once made */
    char *start_time;
    char *last_status;
    int64_t created_ns;
    ctr_state *ctrs;
    size_t nctrs;
    bool volumes_ready;
    char *volume_error;
    int64_t token_refresh_at;   /* wall seconds: when projected SA tokens are due (0: none) */
    bool term_started;
    int64_t term_deadline;  /* monotonic */
    bool killed;
    bool terminating;       /* a terminator thread owns the record (pods.c) */
    json_t *spec;           /* the admitted pod's spec (admission counts its requests, ports) */
    bool admitted;          /* passed the kubelet's admission (or adopted after a restart) */
    bool refused;           /* never to run: rejected by admission, or terminal on arrival */
    char *refuse_reason, *refuse_msg;
    bool finished;          /* phase Succeeded or Failed: its resources and ports are free */
} pod_rec;

/* pods.c */
ctr_state *ck_rec_ctr(pod_rec *r, const char *name, bool init);
void ck_ctr_free(ctr_state *c);
void ck_rec_save(pod_rec *r);
/* Records an Event about the pod (type "Normal"/"Warning"), from the kubelet on this node. */
void ck_pod_event(ck_kubelet *k, pod_rec *r, const char *type, const char *reason, const char *msg);

/* containers.c */
/* ROOT/pods/<uid>/c/<name>-<attempt>: the bundle, exit file and attach socket of an attempt. */
char *ck_ctr_dir(const pod_rec *r, const ctr_state *c, int attempt);
char *ck_pod_log_dir(ck_kubelet *k, const pod_rec *r);
void ck_ctrs_refresh(ck_kubelet *k, pod_rec *r);
/* One step toward the spec; returns ms until it wants to look again (0 = on the next resync). */
int64_t ck_pod_advance(ck_kubelet *k, pod_rec *r, json_t *pod);
/* Graceful termination of every running container (blocking: the caller is the pod's own
 * terminator thread): preStop hooks in parallel, SIGTERM, SIGKILL at the end of the grace
 * period (0: SIGKILL at once); true once all stopped, false if the kubelet is stopping. */
bool ck_pod_kill(ck_kubelet *k, pod_rec *r, json_t *pod, int64_t grace_s);
json_t *ck_pod_status(ck_kubelet *k, pod_rec *r, json_t *pod);
void ck_ctr_remove(ck_kubelet *k, pod_rec *r, ctr_state *c);

/* volumes.c */
int ck_volumes_setup(ck_kubelet *k, pod_rec *r, json_t *pod, ck_error **err);
void ck_volumes_teardown(ck_kubelet *k, pod_rec *r);
/* OCI mounts for a container's volumeMounts (NEW array). */
json_t *ck_volume_mounts(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *container, ck_error **err);
/* Env as "K=V" strings: image env, then env/envFrom resolved (NEW array). */
/* Re-request the pod's projected service account tokens (when r->token_refresh_at is due). */
int ck_volumes_refresh_tokens(ck_kubelet *k, pod_rec *r, json_t *pod, ck_error **err);
json_t *ck_env_resolve(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *container,
                       const ck_image *img, ck_error **err);

/* The pod's imagePullSecrets merged into one docker config {"auths": {...}} (NEW; empty when
 * none): kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg secrets; a missing secret
 * is skipped (upstream pulls anonymously then). */
json_t *ck_pull_auths(ck_kubelet *k, pod_rec *r, json_t *pod);

/* probes.c */
/* Runs a handler (exec/httpGet/tcpSocket) against a container; 0 = success. */
int ck_handler_run(ck_kubelet *k, pod_rec *r, ctr_state *c, json_t *handler, int timeout_ms,
                   char **msg);
/* Runs due probes; updates c->probes and c->kill_requested. */
void ck_probes_run(ck_kubelet *k, pod_rec *r, ctr_state *c, json_t *container);

#endif

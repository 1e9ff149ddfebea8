/* containers.c - one pod's containers: start (image, overlay rootfs, OCI config, shim), watch
 * (exit file / pid), restart by restartPolicy with CrashLoopBackOff (10 s doubling to 5 min,
 * the first restart at once, as upstream), init containers in order, graceful termination
 * (preStop, SIGTERM, grace, SIGKILL), and the pod status the API sees.
 *
 * A container attempt N of container C lives in POD/c/C-N (config.json, rootfs = overlay of the
 * image layers with upper/work beside it, the shim's init.pid and exit files); its log is
 * ROOT/logs/<ns>_<pod>_<uid>/C/N.log, kept after the attempt is removed for --previous.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kubelet/pods.h"
#include "lib/log.h"
#include "lib/util.h"

#define BACKOFF_MAX_MS_C 300000

static void set_str(char **dst, const char *v)
{
    char *copy = v ? xstrdup(v) : NULL;  /* v may be *dst itself */
    free(*dst);
    *dst = copy;
}

static void set_wait(ctr_state *c, const char *reason, const char *msg)
{
    set_str(&c->wait_reason, reason);
    set_str(&c->wait_msg, msg);
}

char *ck_pod_log_dir(ck_kubelet *k, const pod_rec *r)
{
    return xasprintf("%s/logs/%s_%s_%s", k->root, r->ns, r->name, r->uid);
}

char *ck_ctr_dir(const pod_rec *r, const ctr_state *c, int attempt)
{
    return xasprintf("%s/c/%s-%d", r->dir, c->name, attempt);
}

/* exited: the attempt's init is known to have exited (its exit file), so its runtime state and
 * cgroups can go without a runtime exec; otherwise `runc delete --force`. */
static void remove_attempt(ck_kubelet *k, pod_rec *r, ctr_state *c, const char *id, int attempt,
                           bool exited)
{
    if (id && exited && r->cgroup) {
        cleanup_free char *cg = xasprintf("%s/%s", r->cgroup, id);
        ck_runtime_forget(&k->rt, id, cg, NULL);
    } else if (id) {
        ck_runtime_delete(&k->rt, id, NULL);
    }
    cleanup_free char *dir = ck_ctr_dir(r, c, attempt);
    cleanup_free char *rootfs = xasprintf("%s/rootfs", dir);
    umount2(rootfs, MNT_DETACH);
    ck_rm_tree(dir);
}

void ck_ctr_remove(ck_kubelet *k, pod_rec *r, ctr_state *c)
{
    if (c->attempt >= 0)
        remove_attempt(k, r, c, c->id, c->attempt, c->exited);
}

/* Learn whether running containers have exited (the shim's exit file). */
void ck_ctrs_refresh(ck_kubelet *k, pod_rec *r)
{
    (void)k;
    for (size_t i = 0; i < r->nctrs; i++) {
        ctr_state *c = &r->ctrs[i];
        if (!c->id || c->exited)
            continue;
        cleanup_free char *dir = ck_ctr_dir(r, c, c->attempt);
        cleanup_free char *exitf = xasprintf("%s/exit", dir);
        char *data = NULL;
        size_t len;
        if (ck_read_file(exitf, 256, &data, &len) == 0) {
            long long fin = 0;
            int code = -1;
            sscanf(data, "%d %lld", &code, &fin);
            free(data);
            c->exited = true;
            c->exit_code = code < 0 ? 255 : code;
            c->finished_ns = fin ? fin : ck_wall_ns();
            set_str(&c->term_reason, c->exit_code == 0 ? "Completed" : "Error");
            continue;
        }
        if (c->pid > 0 && kill(c->pid, 0) < 0 && errno == ESRCH) {
            /* the shim writes the exit file right after; give it a moment, then give up */
            if (!c->dead_since)
                c->dead_since = ck_now_ns();
            else if (ck_now_ns() - c->dead_since > 5000000000LL) {
                c->exited = true;
                c->exit_code = 137;
                c->finished_ns = ck_wall_ns();
                set_str(&c->term_reason, "Error");
            }
        }
    }
}

static void write_etc(ck_kubelet *k, pod_rec *r, json_t *pod)
{
    json_t *spec = json_object_get(pod, "spec");
    const char *hn = json_string_value(json_object_get(spec, "hostname"));
    const char *name = hn && *hn ? hn : r->name;
    const char *sub = json_string_value(json_object_get(spec, "subdomain"));
    cleanup_free char *fqdn = sub && *sub ? xasprintf("%s.%s.%s.svc.cluster.local", name, sub, r->ns) : NULL;
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_printf(&b, "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                      "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
    if (r->ip)
        ck_buf_printf(&b, "%s\t%s%s%s\n", r->ip, fqdn ? fqdn : "", fqdn ? "\t" : "", name);
    size_t i;
    json_t *ha;
    json_array_foreach(json_object_get(spec, "hostAliases"), i, ha) {
        const char *ip = json_string_value(json_object_get(ha, "ip"));
        if (!ip)
            continue;
        ck_buf_printf(&b, "\n# Entries added by HostAliases.\n%s", ip);
        size_t j;
        json_t *h;
        json_array_foreach(json_object_get(ha, "hostnames"), j, h)
            ck_buf_printf(&b, "\t%s", json_string_value(h));
        ck_buf_addstr(&b, "\n");
    }
    cleanup_free char *hosts = xasprintf("%s/etc-hosts", r->dir);
    ck_write_file_nosync(hosts, b.data, b.len, 0644);
    ck_buf_reset(&b);
    /* cluster DNS lives at the conventional service IP; nothing outside is named */
    ck_buf_printf(&b, "search %s.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n", r->ns);
    cleanup_free char *resolv = xasprintf("%s/etc-resolv.conf", r->dir);
    ck_write_file_nosync(resolv, b.data, b.len, 0644);
    ck_buf_reset(&b);
    ck_buf_printf(&b, "%s\n", name);
    cleanup_free char *hostname = xasprintf("%s/etc-hostname", r->dir);
    ck_write_file_nosync(hostname, b.data, b.len, 0644);
    ck_buf_free(&b);
    (void)k;
}

static const char *pull_policy(json_t *c)
{
    const char *p = json_string_value(json_object_get(c, "imagePullPolicy"));
    if (p)
        return p;
    const char *img = json_string_value(json_object_get(c, "image"));
    const char *last = img ? strrchr(img, '/') : NULL;
    last = last ? last : img;
    bool latest = !last || !strchr(last, ':') || !strcmp(strchr(last, ':'), ":latest");
    return latest && !(img && strchr(img, '@')) ? "Always" : "IfNotPresent";
}

static ck_image *ensure_image(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *spec_c,
                              ctr_state *c)
{
    const char *ref = json_string_value(json_object_get(spec_c, "image"));
    if (!ref || !*ref) {
        set_wait(c, "InvalidImageName", "no image given");
        return NULL;
    }
    const char *policy = pull_policy(spec_c);
    ck_error *err = NULL;
    ck_image *img = NULL;
    bool present = (img = ck_images_get(k->root, ref, &err)) != NULL;
    if (err)
        ck_error_free(err), err = NULL;
    if (present && strcmp(policy, "Always"))
        return img;
    if (!present && !strcmp(policy, "Never")) {
        cleanup_free char *m = xasprintf("Container image \"%s\" is not present with pull policy of Never", ref);
        set_wait(c, "ErrImageNeverPull", m);
        return NULL;
    }
    /* Always: a present image is used as is when the pull fails (offline nodes keep working) */
    json_t *auths = ck_pull_auths(k, r, pod);
    int prc = ck_images_pull(k->root, ref, auths, &err);
    json_decref(auths);
    if (prc < 0) {
        if (present) {
            ck_error_free(err);
            return img;
        }
        int64_t now = ck_wall_ns();
        c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > BACKOFF_MAX_MS_C ? BACKOFF_MAX_MS_C : c->backoff_ms * 2) : 10000;
        c->backoff_until = now + c->backoff_ms * 1000000;
        cleanup_free char *m = xasprintf("failed to pull image \"%s\": %s", ref, err->msg);
        set_wait(c, "ErrImagePull", m);
        log_warn("pod %s: %s", r->key, m);
        ck_error_free(err);
        return NULL;
    }
    ck_image_free(img);
    img = ck_images_get(k->root, ref, &err);
    if (!img) {
        set_wait(c, "ErrImagePull", err->msg);
        ck_error_free(err);
    }
    return img;
}

static int mount_rootfs(const ck_image *img, const char *dir, char **rootfs, ck_error **err)
{
    cleanup_free char *upper = xasprintf("%s/upper", dir);
    cleanup_free char *work = xasprintf("%s/work", dir);
    char *rfs = xasprintf("%s/rootfs", dir);
    ck_mkdir_p(upper, 0755);
    ck_mkdir_p(work, 0755);
    ck_mkdir_p(rfs, 0755);
    ck_buf o;
    ck_buf_init(&o, 0);
    ck_buf_addstr(&o, "lowerdir=");
    for (size_t i = img->nlayers; i-- > 0;)
        ck_buf_printf(&o, "%s%s", img->layers[i], i ? ":" : "");
    if (img->nlayers == 0) {
        /* an image without layers: an empty lower dir */
        cleanup_free char *empty = xasprintf("%s/empty", dir);
        ck_mkdir_p(empty, 0755);
        ck_buf_addstr(&o, empty);
    }
    ck_buf_printf(&o, ",upperdir=%s,workdir=%s", upper, work);
    int rc = mount("overlay", rfs, "overlay", 0, o.data);
    ck_buf_free(&o);
    if (rc < 0) {
        ck_error_sys(err, CK_E_INTERNAL, "mount overlay rootfs");
        free(rfs);
        return -1;
    }
    *rootfs = rfs;
    return 0;
}

/* Start attempt c->attempt+1 of a container.  On failure the waiting reason says why. */
static int start_container(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *spec_c, ctr_state *c)
{
    ck_image *img = ensure_image(k, r, pod, spec_c, c);
    if (!img)
        return -1;
    int attempt = c->attempt + 1;
    cleanup_free char *id = xasprintf("%s-%s-%d", r->uid, c->name, attempt);
    cleanup_free char *dir = ck_ctr_dir(r, c, attempt);
    if (access(dir, F_OK) == 0)
        remove_attempt(k, r, c, id, attempt, false);  /* leftovers of a failed try */
    ck_mkdir_p(dir, 0755);
    cleanup_free char *logdir0 = ck_pod_log_dir(k, r);
    cleanup_free char *logdir = xasprintf("%s/%s", logdir0, c->name);
    ck_mkdir_p(logdir, 0755);
    cleanup_free char *log_path = xasprintf("%s/%d.log", logdir, attempt);
    cleanup_free char *exit_path = xasprintf("%s/exit", dir);
    unlink(log_path);
    ck_error *err = NULL;
    /* every cleanup_ variable is set before the first goto (jumping past one frees garbage) */
    cleanup_free char *rootfs = NULL;
    cleanup_free char *cg = xasprintf("%s/%s", r->cgroup, id);
    cleanup_free char *cfg_path = xasprintf("%s/config.json", dir);
    json_t *env = NULL, *mounts = NULL, *cfg = NULL;
    const char *reason = "CreateContainerConfigError";
    if (!(env = ck_env_resolve(k, r, pod, spec_c, img, &err)) ||
        !(mounts = ck_volume_mounts(k, r, pod, spec_c, &err)))
        goto fail;
    reason = "CreateContainerError";
    if (mount_rootfs(img, dir, &rootfs, &err) < 0)
        goto fail;
    ck_oci_input in = {.pod = pod, .container = spec_c, .image = img, .rootfs = rootfs,
                       .netns = r->netns, .cgroup_path = cg, .pod_dir = r->dir, .env = env,
                       .mounts = mounts};
    if (!(cfg = ck_oci_config(&in, &err)))
        goto fail;
    if (json_dump_file(cfg, cfg_path, JSON_COMPACT) < 0) {
        ck_error_sys(&err, CK_E_IO, "write %s", cfg_path);
        goto fail;
    }
    reason = "RunContainerError";
    unsigned io = (json_is_true(json_object_get(spec_c, "stdin")) ? CK_SHIM_STDIN : 0) |
                  (json_is_true(json_object_get(spec_c, "stdinOnce")) ? CK_SHIM_STDIN_ONCE : 0) |
                  (json_is_true(json_object_get(spec_c, "tty")) ? CK_SHIM_TTY : 0);
    pid_t pid = ck_runtime_run(&k->rt, id, dir, log_path, exit_path, io, &err);
    if (pid < 0)
        goto fail;
    /* the previous attempt becomes lastState; its rootfs goes, its log stays */
    if (c->attempt >= 0 && c->id) {
        set_str(&c->last.id, c->id);
        set_str(&c->last.reason, c->term_reason ? c->term_reason : "Error");
        c->last.exit_code = c->exit_code;
        c->last.started_ns = c->started_ns;
        c->last.finished_ns = c->finished_ns;
        remove_attempt(k, r, c, c->id, c->attempt, c->exited);
        c->restarts++;
    }
    c->attempt = attempt;
    set_str(&c->id, id);
    c->pid = pid;
    c->started_ns = ck_wall_ns();
    c->exited = false;
    c->exit_code = 0;
    c->finished_ns = 0;
    c->dead_since = 0;
    c->post_start_done = false;
    c->kill_requested = false;
    memset(c->probes, 0, sizeof c->probes);
    set_str(&c->term_reason, NULL);
    set_str(&c->image, json_string_value(json_object_get(spec_c, "image")));
    set_str(&c->image_id, img->id);
    set_wait(c, NULL, NULL);
    json_decref(env);
    json_decref(mounts);
    json_decref(cfg);
    ck_image_free(img);
    ck_rec_save(r);
    /* postStart: the container is not Running until it returns; a failure kills it */
    json_t *ps = json_object_get(json_object_get(spec_c, "lifecycle"), "postStart");
    if (ps) {
        char *msg = NULL;
        if (ck_handler_run(k, r, c, ps, 30000, &msg) != 0) {
            log_warn("pod %s container %s: postStart hook failed: %s", r->key, c->name, msg ? msg : "");
            ck_runtime_signal(&k->rt, c->id, c->pid, SIGKILL, NULL);
        }
        free(msg);
    }
    c->post_start_done = true;
    log_info("pod %s: started container %s (attempt %d, pid %d) %lld ms after its first sync",
             r->key, c->name, attempt, (int)pid, (long long)((ck_now_ns() - r->created_ns) / 1000000));
    return 0;
fail:
    log_warn("pod %s container %s: %s", r->key, c->name, err ? err->msg : reason);
    set_wait(c, reason, err ? err->msg : reason);
    ck_error_free(err);
    json_decref(env);
    json_decref(mounts);
    json_decref(cfg);
    ck_image_free(img);
    if (rootfs)
        umount2(rootfs, MNT_DETACH);
    ck_rm_tree(dir);
    int64_t now = ck_wall_ns();
    c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > BACKOFF_MAX_MS_C ? BACKOFF_MAX_MS_C : c->backoff_ms * 2) : 10000;
    c->backoff_until = now + c->backoff_ms * 1000000;
    return -1;
}

static bool should_restart(const char *policy, const ctr_state *c)
{
    if (!strcmp(policy, "Always"))
        return true;
    if (!strcmp(policy, "OnFailure"))
        return c->exit_code != 0;
    return false;
}

/* Exited (or never started): start it now, or say how long to wait.  Returns ms to wait. */
static int64_t maybe_start(ck_kubelet *k, pod_rec *r, json_t *pod, json_t *spec_c, ctr_state *c,
                           const char *policy)
{
    int64_t now = ck_wall_ns();
    if (c->id && c->exited) {
        if (!should_restart(policy, c))
            return 0;
        /* ran 10 minutes cleanly: forget the backoff */
        if (c->finished_ns - c->started_ns > 600LL * 1000000000)
            c->backoff_ms = 0;
        if (c->backoff_ms && now < c->finished_ns + c->backoff_ms * 1000000) {
            cleanup_free char *m = xasprintf("back-off %llds restarting failed container=%s pod=%s_%s(%s)",
                                             (long long)c->backoff_ms / 1000, c->name, r->name, r->ns, r->uid);
            set_wait(c, "CrashLoopBackOff", m);
            return (c->finished_ns + c->backoff_ms * 1000000 - now) / 1000000 + 1;
        }
        c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > BACKOFF_MAX_MS_C ? BACKOFF_MAX_MS_C : c->backoff_ms * 2) : 10000;
    } else if (c->wait_reason && now < c->backoff_until) {
        /* a failed pull or create waits out its backoff */
        if (!strcmp(c->wait_reason, "ErrImagePull"))
            set_wait(c, "ImagePullBackOff", c->wait_msg);
        return (c->backoff_until - now) / 1000000 + 1;
    }
    if (start_container(k, r, pod, spec_c, c) < 0)
        return (c->backoff_until - ck_wall_ns()) / 1000000 + 1;
    return 0;
}

static int64_t min_pos(int64_t a, int64_t b)
{
    if (a <= 0)
        return b;
    if (b <= 0)
        return a;
    return a < b ? a : b;
}

int64_t ck_pod_advance(ck_kubelet *k, pod_rec *r, json_t *pod)
{
    json_t *spec = json_object_get(pod, "spec");
    const char *policy = json_string_value(json_object_get(spec, "restartPolicy"));
    if (!policy)
        policy = "Always";
    if (!r->start_time) {
        char now[32];
        ck_rfc3339(ck_wall_ns() / 1000000000, now);
        r->start_time = xstrdup(now);
    }
    json_t *ads = json_object_get(spec, "activeDeadlineSeconds");
    if (json_is_integer(ads) && r->start_time) {
        int64_t st;
        if (ck_parse_rfc3339(r->start_time, &st) == 0 &&
            ck_wall_ns() / 1000000000 - st >= json_integer_value(ads)) {
            for (size_t i = 0; i < r->nctrs; i++)
                if (r->ctrs[i].id && !r->ctrs[i].exited)
                    ck_runtime_signal(&k->rt, r->ctrs[i].id, r->ctrs[i].pid, SIGKILL, NULL);
            r->killed = true;  /* DeadlineExceeded */
            return 0;
        }
    }
    if (!r->netns) {
        ck_mkdir_p(r->dir, 0755);   /* once, not on every resync */
        ck_error *err = NULL;
        char *netns = NULL, *ip = NULL;
        json_t *maps = ck_sandbox_port_mappings(spec);
        int src = ck_sandbox_create(&k->sb, r->uid, maps, &netns, &ip, &err);
        json_decref(maps);
        if (src < 0) {
            log_warn("pod %s: sandbox: %s", r->key, err->msg);
            free(r->volume_error);
            r->volume_error = xasprintf("failed to create pod sandbox: %s", err->msg);
            ck_error_free(err);
            return 2000;
        }
        r->netns = netns;
        r->ip = ip;
        write_etc(k, r, pod);
        ck_rec_save(r);
    }
    if (!r->volumes_ready) {
        ck_error *err = NULL;
        if (ck_volumes_setup(k, r, pod, &err) < 0) {
            /* one event per distinct reason, not one per retry */
            if (!r->volume_error || strcmp(r->volume_error, err->msg)) {
                cleanup_free char *m = xasprintf("Unable to attach or mount volumes: %s", err->msg);
                ck_pod_event(k, r, "Warning", "FailedMount", m);
            }
            free(r->volume_error);
            r->volume_error = xstrdup(err->msg);
            ck_error_free(err);
            return 2000;
        }
        free(r->volume_error);
        r->volume_error = NULL;
        r->volumes_ready = true;
    } else if (r->token_refresh_at && ck_wall_ns() / 1000000000 >= r->token_refresh_at) {
        ck_error *err = NULL;
        if (ck_volumes_refresh_tokens(k, r, pod, &err) < 0) {
            /* the old token stays until it expires; try again in a while */
            log_warn("pod %s: %s", r->key, err->msg);
            ck_error_free(err);
            r->token_refresh_at = ck_wall_ns() / 1000000000 + 10;
        }
    }
    if (!r->cgroup) {
        ck_error *err = NULL;
        if (ck_cgroup_create_pod(spec, r->uid, &r->cgroup, &err) < 0) {
            log_warn("pod %s: %s", r->key, err->msg);
            free(r->volume_error);
            r->volume_error = xstrdup(err->msg);
            ck_error_free(err);
            return 2000;
        }
    }
    if (r->killed)
        return 0;
    /* init containers, one at a time, in order */
    size_t i;
    json_t *sc;
    json_array_foreach(json_object_get(spec, "initContainers"), i, sc) {
        const char *name = json_string_value(json_object_get(sc, "name"));
        if (!name)
            continue;
        ctr_state *c = ck_rec_ctr(r, name, true);
        if (c->id && c->exited && c->exit_code == 0)
            continue;
        if (c->id && !c->exited)
            return 0;
        return maybe_start(k, r, pod, sc, c, !strcmp(policy, "Never") ? "Never" : "OnFailure");
    }
    int64_t next = 0;
    json_array_foreach(json_object_get(spec, "containers"), i, sc) {
        const char *name = json_string_value(json_object_get(sc, "name"));
        if (!name)
            continue;
        ctr_state *c = ck_rec_ctr(r, name, false);
        if (c->id && !c->exited) {
            ck_probes_run(k, r, c, sc);
            if (c->kill_requested) {
                log_info("pod %s: container %s failed its liveness probe, restarting", r->key, c->name);
                json_t *ps = json_object_get(json_object_get(sc, "lifecycle"), "preStop");
                if (ps)
                    ck_handler_run(k, r, c, ps, 10000, NULL);
                ck_runtime_signal(&k->rt, c->id, c->pid, SIGKILL, NULL);
                c->kill_requested = false;
                c->backoff_ms = 0;  /* a liveness restart is not a crash loop */
                next = min_pos(next, 200);
            }
            continue;
        }
        next = min_pos(next, maybe_start(k, r, pod, sc, c, policy));
    }
    return next;
}

typedef struct prestop_job {
    ck_kubelet *k;
    pod_rec *r;
    ctr_state *c;
    json_t *hook;
    int64_t deadline;
    pthread_t th;
} prestop_job;

/* A container's preStop hook (within what is left of the grace period), then SIGTERM. */
static void *prestop_run(void *arg)
{
    prestop_job *j = arg;
    int64_t left = (j->deadline - ck_now_ns()) / 1000000;
    if (left > 0) {
        char *msg = NULL;
        if (ck_handler_run(j->k, j->r, j->c, j->hook, (int)(left > 120000 ? 120000 : left), &msg) != 0)
            log_warn("pod %s container %s: preStop hook failed: %s", j->r->key, j->c->name,
                     msg ? msg : "");
        free(msg);
    }
    ck_runtime_signal(&j->k->rt, j->c->id, j->c->pid, SIGTERM, NULL);
    return NULL;
}

static bool all_stopped(const pod_rec *r)
{
    for (size_t i = 0; i < r->nctrs; i++)
        if (r->ctrs[i].id && !r->ctrs[i].exited)
            return false;
    return true;
}

bool ck_pod_kill(ck_kubelet *k, pod_rec *r, json_t *pod, int64_t grace_s)
{
    json_t *spec = json_object_get(pod, "spec");
    ck_ctrs_refresh(k, r);
    if (all_stopped(r))
        return true;
    r->term_deadline = ck_now_ns() + grace_s * 1000000000LL;
    /* every container at once, as upstream's killContainer goroutines: a preStop hook delays
     * only its own container's SIGTERM */
    prestop_job *jobs = xcalloc(r->nctrs ? r->nctrs : 1, sizeof *jobs);
    size_t njobs = 0;
    for (size_t i = 0; i < r->nctrs; i++) {
        ctr_state *c = &r->ctrs[i];
        if (!c->id || c->exited)
            continue;
        json_t *hook = NULL;
        size_t j;
        json_t *sc;
        json_array_foreach(json_object_get(spec, "containers"), j, sc)
            if (!c->init && !strcmp(json_string_value(json_object_get(sc, "name")) ?: "", c->name))
                hook = json_object_get(json_object_get(sc, "lifecycle"), "preStop");
        if (!hook || grace_s <= 0) {
            ck_runtime_signal(&k->rt, c->id, c->pid, grace_s > 0 ? SIGTERM : SIGKILL, NULL);
            continue;
        }
        prestop_job *pj = &jobs[njobs];
        *pj = (prestop_job){.k = k, .r = r, .c = c, .hook = hook, .deadline = r->term_deadline};
        if (pthread_create(&pj->th, NULL, prestop_run, pj) == 0)
            njobs++;
        else
            prestop_run(pj);
    }
    for (size_t i = 0; i < njobs; i++)
        pthread_join(jobs[i].th, NULL);
    free(jobs);
    /* wait for the exits (the shims' exit files); SIGKILL what is left at the deadline */
    int64_t killed_at = 0;
    while (!k->stop) {
        ck_ctrs_refresh(k, r);
        if (all_stopped(r))
            return true;
        int64_t now = ck_now_ns();
        if (!killed_at && now >= r->term_deadline) {
            killed_at = now;
            r->killed = true;
            for (size_t i = 0; i < r->nctrs; i++)
                if (r->ctrs[i].id && !r->ctrs[i].exited)
                    ck_runtime_signal(&k->rt, r->ctrs[i].id, r->ctrs[i].pid, SIGKILL, NULL);
        } else if (killed_at && now - killed_at > 30 * 1000000000LL) {
            log_warn("pod %s: containers still running 30 s after SIGKILL; removing them", r->key);
            return true;
        }
        usleep(50 * 1000);
    }
    return false;
}

/* ---------------- status ---------------- */

static void rfc(int64_t wall_ns, char out[32])
{
    ck_rfc3339(wall_ns / 1000000000, out);
}

static json_t *ctr_status(const pod_rec *r, const ctr_state *c, json_t *spec_c, bool ready)
{
    json_t *state, *last = json_object();
    char t1[32], t2[32];
    if (c->id && !c->exited) {
        rfc(c->started_ns, t1);
        state = json_pack("{s:{s:s}}", "running", "startedAt", t1);
    } else if (c->id && c->exited && !c->wait_reason) {
        rfc(c->started_ns, t1);
        rfc(c->finished_ns, t2);
        cleanup_free char *cid = xasprintf("%s://%s", "runc", c->id);
        state = json_pack("{s:{s:i, s:s, s:s, s:s, s:s}}", "terminated", "exitCode", c->exit_code,
                          "reason", c->term_reason ? c->term_reason : "Error", "startedAt", t1,
                          "finishedAt", t2, "containerID", cid);
    } else {
        const char *reason = c->wait_reason ? c->wait_reason : "ContainerCreating";
        state = c->wait_msg ? json_pack("{s:{s:s, s:s}}", "waiting", "reason", reason, "message", c->wait_msg)
                            : json_pack("{s:{s:s}}", "waiting", "reason", reason);
    }
    /* lastState: the previous attempt, or the exited current one while it waits to restart */
    if (c->id && c->exited && c->wait_reason) {
        rfc(c->started_ns, t1);
        rfc(c->finished_ns, t2);
        cleanup_free char *cid = xasprintf("runc://%s", c->id);
        json_object_set_new(last, "terminated", json_pack("{s:i, s:s, s:s, s:s, s:s}", "exitCode", c->exit_code,
                            "reason", c->term_reason ? c->term_reason : "Error", "startedAt", t1,
                            "finishedAt", t2, "containerID", cid));
    } else if (c->last.id) {
        rfc(c->last.started_ns, t1);
        rfc(c->last.finished_ns, t2);
        cleanup_free char *cid = xasprintf("runc://%s", c->last.id);
        json_object_set_new(last, "terminated", json_pack("{s:i, s:s, s:s, s:s, s:s}", "exitCode", c->last.exit_code,
                            "reason", c->last.reason ? c->last.reason : "Error", "startedAt", t1,
                            "finishedAt", t2, "containerID", cid));
    }
    const char *image = json_string_value(json_object_get(spec_c, "image"));
    json_t *s = json_pack("{s:s, s:o, s:o, s:b, s:i, s:s, s:s}", "name", c->name, "state", state,
                          "lastState", last, "ready", ready, "restartCount", c->restarts,
                          "image", image ? image : "", "imageID", c->image_id ? c->image_id : "");
    if (c->id) {
        cleanup_free char *cid = xasprintf("runc://%s", c->id);
        json_object_set_new(s, "containerID", json_string(cid));
    }
    if (!c->init)
        json_object_set_new(s, "started", json_boolean(c->id && !c->exited &&
                                                       (!c->probes[PROBE_STARTUP].known || c->probes[PROBE_STARTUP].result)));
    (void)r;
    return s;
}

static json_t *cond(const char *type, bool ok, const char *reason, const char *now_or_prev)
{
    json_t *c = json_pack("{s:s, s:s, s:n, s:s}", "type", type, "status", ok ? "True" : "False",
                          "lastProbeTime", "lastTransitionTime", now_or_prev);
    if (reason)
        json_object_set_new(c, "reason", json_string(reason));
    return c;
}

/* Keep a condition's lastTransitionTime while its status is unchanged. */
static const char *prev_transition(json_t *pod, const char *type, bool ok, const char *dflt)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "type")) ?: "", type))
            continue;
        const char *st = json_string_value(json_object_get(c, "status"));
        const char *t = json_string_value(json_object_get(c, "lastTransitionTime"));
        if (st && t && !strcmp(st, ok ? "True" : "False"))
            return t;
    }
    return dflt;
}

json_t *ck_pod_status(ck_kubelet *k, pod_rec *r, json_t *pod)
{
    json_t *spec = json_object_get(pod, "spec");
    const char *policy = json_string_value(json_object_get(spec, "restartPolicy"));
    if (!policy)
        policy = "Always";
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    json_t *inits = json_array(), *ctrs = json_array();
    bool init_done = true, init_failed = false;
    size_t i;
    json_t *sc;
    json_array_foreach(json_object_get(spec, "initContainers"), i, sc) {
        const char *name = json_string_value(json_object_get(sc, "name"));
        if (!name)
            continue;
        ctr_state *c = ck_rec_ctr(r, name, true);
        bool ok = c->id && c->exited && c->exit_code == 0;
        if (!ok)
            init_done = false;
        if (c->id && c->exited && c->exit_code != 0 && !strcmp(policy, "Never"))
            init_failed = true;
        json_array_append_new(inits, ctr_status(r, c, sc, ok));
    }
    size_t n = 0, running = 0, succeeded = 0, failed = 0, ready = 0, waiting_restart = 0;
    json_array_foreach(json_object_get(spec, "containers"), i, sc) {
        const char *name = json_string_value(json_object_get(sc, "name"));
        if (!name)
            continue;
        ctr_state *c = ck_rec_ctr(r, name, false);
        n++;
        bool run = c->id && !c->exited;
        bool rdy = run && (!json_object_get(sc, "readinessProbe") ||
                           (c->probes[PROBE_READINESS].known && c->probes[PROBE_READINESS].result)) &&
                   (!c->probes[PROBE_STARTUP].known || c->probes[PROBE_STARTUP].result) &&
                   !(json_object_get(sc, "startupProbe") && !c->probes[PROBE_STARTUP].known) &&
                   !r->term_started;
        if (run)
            running++;
        else if (c->id && c->exited) {
            if (should_restart(policy, c))
                waiting_restart++;
            else if (c->exit_code == 0)
                succeeded++;
            else
                failed++;
        }
        ready += rdy;
        json_array_append_new(ctrs, ctr_status(r, c, sc, rdy));
    }
    const char *phase = "Pending", *reason = NULL, *message = NULL;
    if (init_failed)
        phase = "Failed";
    else if (init_done && running + waiting_restart > 0)
        phase = "Running";
    else if (init_done && n && succeeded + failed == n)
        phase = failed ? "Failed" : "Succeeded";
    if (r->killed && !r->term_started) {
        phase = "Failed";
        reason = "DeadlineExceeded";
        message = "Pod was active on the node longer than the specified deadline";
    }
    bool cready = n && ready == n;
    json_t *conds = json_array();
    json_array_append_new(conds, cond("PodReadyToStartContainers", r->netns != NULL, NULL,
                                      prev_transition(pod, "PodReadyToStartContainers", r->netns != NULL, now)));
    json_array_append_new(conds, cond("Initialized", init_done, init_done ? NULL : "ContainersNotInitialized",
                                      prev_transition(pod, "Initialized", init_done, now)));
    json_array_append_new(conds, cond("Ready", cready, cready ? NULL : "ContainersNotReady",
                                      prev_transition(pod, "Ready", cready, now)));
    json_array_append_new(conds, cond("ContainersReady", cready, cready ? NULL : "ContainersNotReady",
                                      prev_transition(pod, "ContainersReady", cready, now)));
    json_array_append_new(conds, cond("PodScheduled", true, NULL, prev_transition(pod, "PodScheduled", true, now)));
    json_t *st = json_pack("{s:s, s:o, s:o, s:s, s:[{s:s}], s:s}", "phase", phase, "conditions",
                           conds, "containerStatuses", ctrs, "hostIP", k->node_ip, "hostIPs",
                           "ip", k->node_ip, "qosClass", ck_pod_qos(spec));
    if (json_array_size(inits))
        json_object_set_new(st, "initContainerStatuses", inits);
    else
        json_decref(inits);
    if (r->start_time)
        json_object_set_new(st, "startTime", json_string(r->start_time));
    if (r->ip) {
        json_object_set_new(st, "podIP", json_string(r->ip));
        json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", r->ip));
    }
    if (reason) {
        json_object_set_new(st, "reason", json_string(reason));
        json_object_set_new(st, "message", json_string(message));
    } else if (r->volume_error) {
        json_object_set_new(st, "message", json_string(r->volume_error));
    }
    return st;
}

/* leader.c - see leader.h. */
#include "client/leader.h"
#include "lib/log.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct ck_leader {
    ck_client *client;
    ck_leader_config cfg;
    char *ns, *name, *identity;
    pthread_t thread;
    pthread_mutex_t lock;
    bool leading;
    ck_cancel stop;                /* ck_leader_stop fires it: ends the nap between tries */
    /* what we last saw of the lease */
    char *observed_holder;
    char *observed_renew;
    int64_t observed_at_ns;        /* our monotonic clock when the record last changed */
};

void ck_micro_time(int64_t wall_ns, char out[48])
{
    char base[32];
    ck_rfc3339(wall_ns / 1000000000, base);
    base[strlen(base) - 1] = '\0';   /* drop the Z */
    snprintf(out, 48, "%s.%06ldZ", base, (long)((wall_ns % 1000000000) / 1000));
}

static const ck_resource *lease_resource(void)
{
    return ck_resource_find("coordination.k8s.io", "v1", "leases");
}

static json_t *lease_body(ck_leader *l, const json_t *existing, bool release)
{
    char now[48];
    ck_micro_time(ck_wall_ns(), now);
    json_t *obj = existing ? json_deep_copy(existing) : json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{}}", "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
        "metadata", "name", l->name, "namespace", l->ns, "spec");
    json_t *spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(obj, "spec", spec);
    }
    const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
    bool transition = !holder || strcmp(holder, l->identity);
    if (release) {
        json_object_set_new(spec, "holderIdentity", json_string(""));
        json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
    } else {
        json_object_set_new(spec, "holderIdentity", json_string(l->identity));
        json_object_set_new(spec, "leaseDurationSeconds",
                            json_integer(l->cfg.lease_duration_ms / 1000));
        if (transition) {
            json_object_set_new(spec, "acquireTime", json_string(now));
            json_int_t t = json_integer_value(json_object_get(spec, "leaseTransitions"));
            if (existing)
                json_object_set_new(spec, "leaseTransitions", json_integer(t + 1));
        }
        json_object_set_new(spec, "renewTime", json_string(now));
    }
    return obj;
}

/* One attempt to take or keep the lease.  true = we hold it now. */
static bool try_acquire_or_renew(ck_leader *l)
{
    const ck_resource *r = lease_resource();
    ck_error *err = NULL;
    json_t *cur = ck_client_get(l->client, r, l->ns, l->name, &err);
    if (!cur) {
        if (err->code != CK_E_NOT_FOUND) {
            log_warn("leader election %s/%s: %s", l->ns, l->name, err->msg);
            ck_error_free(err);
            return false;
        }
        ck_error_free(err);
        err = NULL;
        json_t *body = lease_body(l, NULL, false);
        json_t *made = ck_client_create(l->client, r, l->ns, body, &err);
        json_decref(body);
        if (!made) {
            ck_error_free(err);
            return false;
        }
        json_decref(made);
        return true;
    }
    json_t *spec = json_object_get(cur, "spec");
    const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
    const char *renew = json_string_value(json_object_get(spec, "renewTime"));
    json_int_t dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
    bool mine = holder && !strcmp(holder, l->identity);

    /* Track when the record last changed, on our own clock. */
    if (!l->observed_holder || strcmp(l->observed_holder, holder ? holder : "") ||
        !l->observed_renew || strcmp(l->observed_renew, renew ? renew : "")) {
        free(l->observed_holder);
        free(l->observed_renew);
        l->observed_holder = xstrdup(holder ? holder : "");
        l->observed_renew = xstrdup(renew ? renew : "");
        l->observed_at_ns = ck_now_ns();
    }
    bool held_by_other = holder && *holder && !mine;
    if (held_by_other && ck_now_ns() - l->observed_at_ns < (int64_t)dur * 1000000000LL) {
        json_decref(cur);
        return false;
    }
    json_t *body = lease_body(l, cur, false);
    json_decref(cur);
    json_t *updated = ck_client_update(l->client, r, l->ns, body, &err);
    json_decref(body);
    if (!updated) {   /* CAS lost to another candidate, or the server is away */
        ck_error_free(err);
        return false;
    }
    json_decref(updated);
    return true;
}

static void set_leading(ck_leader *l, bool leading)
{
    pthread_mutex_lock(&l->lock);
    bool was = l->leading;
    l->leading = leading;
    pthread_mutex_unlock(&l->lock);
    if (leading && !was) {
        log_info("leader election %s/%s: %s became leader", l->ns, l->name, l->identity);
        if (l->cfg.on_started_leading)
            l->cfg.on_started_leading(l->cfg.ctx);
    } else if (!leading && was) {
        log_warn("leader election %s/%s: %s lost the lease", l->ns, l->name, l->identity);
        if (l->cfg.on_stopped_leading)
            l->cfg.on_stopped_leading(l->cfg.ctx);
    }
}


static void *leader_main(void *arg)
{
    ck_leader *l = arg;
    int64_t last_renew = 0;
    while (!ck_cancel_fired(&l->stop)) {
        bool ok = try_acquire_or_renew(l);
        if (ok) {
            last_renew = ck_now_ns();
            set_leading(l, true);
        } else if (ck_leader_is_leader(l) &&
                   ck_now_ns() - last_renew > (int64_t)l->cfg.renew_deadline_ms * 1000000) {
            set_leading(l, false);
        }
        ck_cancel_sleep(&l->stop, l->cfg.retry_period_ms);
    }
    return NULL;
}

ck_leader *ck_leader_start(ck_client *c, const ck_leader_config *cfg)
{
    ck_leader *l = xcalloc(1, sizeof *l);
    l->client = c;
    l->cfg = *cfg;
    if (!l->cfg.lease_duration_ms)
        l->cfg.lease_duration_ms = 15000;
    if (!l->cfg.renew_deadline_ms)
        l->cfg.renew_deadline_ms = 10000;
    if (!l->cfg.retry_period_ms)
        l->cfg.retry_period_ms = 2000;
    l->ns = xstrdup(cfg->lease_namespace ? cfg->lease_namespace : "kube-system");
    l->name = xstrdup(cfg->lease_name);
    if (cfg->identity) {
        l->identity = xstrdup(cfg->identity);
    } else {
        char host[256] = "ckube";
        gethostname(host, sizeof host - 1);
        char uuid[37];
        ck_uuid4(uuid);
        l->identity = xasprintf("%s_%s", host, uuid);
    }
    l->cfg.lease_namespace = l->ns;
    l->cfg.lease_name = l->name;
    l->cfg.identity = l->identity;
    pthread_mutex_init(&l->lock, NULL);
    ck_cancel_init(&l->stop);
    pthread_create(&l->thread, NULL, leader_main, l);
    return l;
}

bool ck_leader_is_leader(ck_leader *l)
{
    pthread_mutex_lock(&l->lock);
    bool v = l->leading;
    pthread_mutex_unlock(&l->lock);
    return v;
}

const char *ck_leader_identity(ck_leader *l)
{
    return l->identity;
}

void ck_leader_stop(ck_leader *l)
{
    if (!l)
        return;
    ck_cancel_fire(&l->stop);
    pthread_join(l->thread, NULL);
    if (l->leading) {   /* release so a standby need not wait out the lease */
        ck_error *err = NULL;
        const ck_resource *r = lease_resource();
        json_t *cur = ck_client_get(l->client, r, l->ns, l->name, &err);
        const char *holder = cur ? json_string_value(json_object_get(
                                       json_object_get(cur, "spec"), "holderIdentity"))
                                 : NULL;
        if (holder && !strcmp(holder, l->identity)) {
            json_t *body = lease_body(l, cur, true);
            json_decref(ck_client_update(l->client, r, l->ns, body, &err));
            json_decref(body);
        }
        json_decref(cur);
        ck_error_free(err);
    }
    free(l->observed_holder);
    free(l->observed_renew);
    free(l->ns);
    free(l->name);
    free(l->identity);
    pthread_mutex_destroy(&l->lock);
    ck_cancel_destroy(&l->stop);
    free(l);
}

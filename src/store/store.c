/* store.c - helpers shared by the store backends (see store.h). */
#include "store/store.h"

#include <stdlib.h>

void ck_kv_free(ck_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    kv->key = kv->value = NULL;
    kv->value_len = 0;
}

void ck_list_free(ck_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        ck_kv_free(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void ck_event_free(ck_event *ev)
{
    if (!ev)
        return;
    ck_kv_free(&ev->kv);
    ck_kv_free(&ev->prev);
}

void ck_store_write_async(ck_store *s, const ck_write *w, ck_write_done_cb done, void *ctx)
{
    if (s->ops->write_async)
        return s->ops->write_async(s, w, done, ctx);
    int64_t rev = 0;
    ck_error *err = NULL;
    int rc = w->kind == CK_STORE_CREATE ? s->ops->create(s, w->key, w->val, w->len, &rev, &err)
             : w->kind == CK_STORE_UPDATE ? s->ops->update(s, w->key, w->val, w->len, w->expected,
                                                           &rev, &err)
                                          : s->ops->delete(s, w->key, w->expected, NULL, &rev, &err);
    if (rc < 0 && !err)
        ck_error_set(&err, CK_E_INTERNAL, "write failed");
    done(ctx, rc < 0 ? 0 : rev, rc < 0 ? err : NULL);
}

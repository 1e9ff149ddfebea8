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

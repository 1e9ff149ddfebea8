/* cancel.c - see cancel.h. */
#include "lib/cancel.h"

#include <sys/socket.h>
#include <time.h>

void ck_cancel_init(ck_cancel *c)
{
    atomic_init(&c->fired, false);
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->fd = -1;
}

void ck_cancel_destroy(ck_cancel *c)
{
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

void ck_cancel_fire(ck_cancel *c)
{
    pthread_mutex_lock(&c->lock);
    atomic_store(&c->fired, true);
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);   /* the blocked recv returns; the fd stays the waiter's */
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

bool ck_cancel_fired(const ck_cancel *c)
{
    return c && atomic_load_explicit(&c->fired, memory_order_acquire);
}

int ck_cancel_attach(ck_cancel *c, int fd)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    bool fired = atomic_load(&c->fired);
    if (!fired)
        c->fd = fd;
    pthread_mutex_unlock(&c->lock);
    return fired ? -1 : 0;
}

void ck_cancel_detach(ck_cancel *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->fd = -1;
    pthread_mutex_unlock(&c->lock);
}

bool ck_cancel_sleep(ck_cancel *c, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    while (!atomic_load(&c->fired) && rc == 0)
        rc = pthread_cond_timedwait(&c->cond, &c->lock, &until);
    bool fired = atomic_load(&c->fired);
    pthread_mutex_unlock(&c->lock);
    return fired;
}

/* cancel.h - a cancellation one thread fires and another, blocked, notices at once.
 *
 * Why: a thread blocked in a socket read (a watch) or a sleep (a retry's backoff) used to give up
 * every 250 ms to look at a flag, so an idle component woke four times a second a watch.  Here
 * the waiter tells the cancel what it blocks on, and firing it ends the wait: a socket it
 * attached is shut down (its blocked recv returns at once), a ck_cancel_sleep is signalled.
 *
 * Contract:
 *  - Firing is for good (there is no reset) and safe from any thread, any number of times.
 *  - At most one socket is attached at a time.  ck_cancel_attach fails (-1) when the cancel has
 *    already fired, so a fire that came before the attach is not missed; the waiter detaches
 *    before it closes the socket, so a fire never shuts down a descriptor reused by someone else.
 *  - A shut-down socket is of no further use: the waiter sees EOF or an error from it and must
 *    check ck_cancel_fired before taking either as the peer's doing.
 *  - ck_cancel_fired is a lock-free load (cheap enough for every event); a NULL cancel never
 *    fires.
 */
#ifndef CK_CANCEL_H
#define CK_CANCEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct ck_cancel {
    atomic_bool fired;
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* ck_cancel_sleep waits on it */
    int fd;                  /* the attached socket, or -1 */
} ck_cancel;

void ck_cancel_init(ck_cancel *c);
void ck_cancel_destroy(ck_cancel *c);
void ck_cancel_fire(ck_cancel *c);
bool ck_cancel_fired(const ck_cancel *c);
/* fd: a socket the caller is about to block on.  0, or -1 when c already fired (fd untouched).
 * c may be NULL (then 0, nothing attached). */
int ck_cancel_attach(ck_cancel *c, int fd);
void ck_cancel_detach(ck_cancel *c);
/* Sleeps ms milliseconds or until c fires: true when it fired. */
bool ck_cancel_sleep(ck_cancel *c, int ms);

#endif

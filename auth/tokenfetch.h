/* tokenfetch: one environment's fetch state machine. An attempt reads the shared cache,
 * takes its lock (or waits for the holder to publish), posts the form through the
 * transport, installs and publishes the token, or records the failure and schedules the
 * retry with capped jittered backoff. Internal to auth/.
 *
 *   timer -> [share GET] -hit-> install
 *               | miss
 *            [share LOCK] -lost-> poll (GET again) ... lease x2 -> direct
 *               | won                                  store error -> direct
 *            [share GET] -hit-> install, UNLOCK   (published between our GET and LOCK)
 *               | miss or store error
 *            [HTTP POST] -ok-> install, PUT sealed, UNLOCK
 *                        -error-> failure, UNLOCK, retry timer
 *
 * Invariant: at most one attempt per environment (e->fetch); every callback of an attempt
 * checks that it is still attached, so an abandoned attempt touches nothing freed. */
#ifndef FOGATE_TOKENFETCH_H
#define FOGATE_TOKENFETCH_H

#include <stdint.h>

struct tenv;

/* Creates e's timer. Returns 0, or -1 out of memory. */
int tokenfetch_init(struct tenv *e);

/* Abandons the attempt in flight (cancels the request, releases the lock) and frees the
 * timer. */
void tokenfetch_cleanup(struct tenv *e);

/* Runs an attempt delay_ms from now (0: on the next loop turn), replacing the armed time;
 * no-op while an attempt is in flight. */
void tokenfetch_arm(struct tenv *e, int64_t delay_ms);

/* Arms the timer for an immediate attempt unless one is in flight or a retry is already
 * due (a token_get with no usable token, a reload, an invalidation). */
void tokenfetch_kick(struct tenv *e);

#endif

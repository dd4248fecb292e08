/* curlev: drives one libcurl multi handle from a libevent loop: one event per socket,
 * allocated when libcurl first names the socket and re-armed in place when its interest
 * changes, and one timer. Invariant: libcurl is only entered (socket_action, pause) through
 * this module, which knows when it is inside libcurl (curlev_busy) so callers can defer
 * whatever libcurl forbids from its callbacks (removing a handle, re-entering). */
#ifndef FOGATE_CURLEV_H
#define FOGATE_CURLEV_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/event.h>

struct curlev;

/* Counters for benchmarks: how often the loop woke libcurl. */
struct curlev_stats {
    uint64_t socket_events;   /* socket readiness callbacks handled */
    uint64_t timer_events;    /* timer expiries handled */
    uint64_t rearms;          /* event_del/event_add pairs because libcurl changed interest */
    uint64_t sockets;         /* sockets libcurl asked to watch, in total */
};

/* A new driver on `base` (borrowed, must outlive it). Returns NULL on failure; free with
 * curlev_free. `on_done(arg, easy, rc)` is called once per finished transfer with libcurl's
 * result, from the event loop (never from inside a libcurl callback); `easy` is still in the
 * multi and the callee must remove it (curlev_remove). `arg` is borrowed. */
struct curlev *curlev_new(struct event_base *base,
                          void (*on_done)(void *arg, CURL *easy, CURLcode rc), void *arg);

/* Closes every connection and frees the driver. All easy handles must have been removed.
 * Never call it from a callback of this module. NULL is a no-op. */
void curlev_free(struct curlev *ev);

/* The multi handle (borrowed), for curl_multi_setopt by the owner. */
CURLM *curlev_multi(struct curlev *ev);

/* Sets the socket open/close callbacks of `easy` (borrowed; CURLOPT_OPENSOCKETFUNCTION,
 * CURLOPT_CLOSESOCKETFUNCTION and their data: the caller must not set those), once per
 * handle, before its first curlev_add: they stay set while the handle is reused (never
 * curl_easy_reset). Returns 0, or -1 when libcurl refuses. */
int curlev_prepare(struct curlev *ev, CURL *easy);

/* Adds `easy` (still owned by the caller, prepared by curlev_prepare) to the multi.
 * Returns 0, or -1 when libcurl refuses. Must not be called while curlev_busy(). */
int curlev_add(struct curlev *ev, CURL *easy);

/* Removes `easy` from the multi (closing its connection if the transfer was not complete).
 * Must not be called while curlev_busy(). */
void curlev_remove(struct curlev *ev, CURL *easy);

/* curl_easy_pause(easy, bitmask) with curlev_busy() true during the call, since libcurl
 * may run write callbacks from inside it. Must not be called while curlev_busy(). */
CURLcode curlev_pause(struct curlev *ev, CURL *easy, int bitmask);

/* True while libcurl is running (and so may be calling a transfer's callbacks). */
bool curlev_busy(const struct curlev *ev);

/* Copies the counters into *out. */
void curlev_stats(const struct curlev *ev, struct curlev_stats *out);

#endif

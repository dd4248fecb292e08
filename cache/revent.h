/* revent: attaches a hiredict async context to a libevent base, cheaper per command than
 * hiredict's stock adapter: the read event is registered once, and writes are flushed
 * once per loop iteration (event_active, no syscall) instead of re-registering EV_WRITE
 * for every command. EV_WRITE is only registered while connecting or when the socket
 * buffer is full. Invariant: the context owns the adapter (freed by its cleanup hook). */
#ifndef FOGATE_REVENT_H
#define FOGATE_REVENT_H

#include <stddef.h>
#include <event2/event.h>
#include <hiredict/async.h>

/* Called from the read event, outside any hiredict callback, when more than `max_unparsed`
 * bytes sit unparsed in the reader (a reply larger than the cap). The callee is expected
 * to free the context. */
typedef void revent_overflow_fn(redictAsyncContext *ac);

/* Attaches `ac` to `base` (both borrowed). Call before setting the connect callback.
 * max_unparsed 0 means no cap. Returns 0, or -1 (no memory, or already attached). */
int revent_attach(redictAsyncContext *ac, struct event_base *base, size_t max_unparsed,
                  revent_overflow_fn *on_overflow);

#endif

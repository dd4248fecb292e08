/* revent: hiredict <-> libevent glue with batched writes (see revent.h).
 * hiredict may free the context (and so call our cleanup hook) from inside one of our
 * event callbacks; `entered`/`deleted` defer freeing the adapter until the callback ends. */
#include "revent.h"

#include <stdbool.h>
#include <stdlib.h>

struct revent {
    redictAsyncContext *ac; /* borrowed: the context owns this adapter */
    struct event *rd;       /* owned: persistent EV_READ */
    struct event *wr;       /* owned: persistent EV_WRITE, only while needed */
    struct event *flush;    /* owned: activated to write at the end of this iteration */
    size_t max_unparsed;
    revent_overflow_fn *on_overflow;
    bool rd_on, wr_on, flush_on, in_write, entered, deleted;
};

static void enter(struct revent *e)
{
    e->entered = true;
}

/* Returns true if the adapter was freed and must not be touched. */
static bool leave(struct revent *e)
{
    e->entered = false;
    if (!e->deleted)
        return false;
    free(e);
    return true;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct revent *e = arg;
    redictReader *r = e->ac->c.reader;

    enter(e);
    if (e->max_unparsed && r && r->len - r->pos > e->max_unparsed)
        e->on_overflow(e->ac);
    else
        redictAsyncHandleRead(e->ac);
    leave(e);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct revent *e = arg;

    enter(e);
    e->flush_on = false;
    e->in_write = true;
    redictAsyncHandleWrite(e->ac);
    e->in_write = false;
    leave(e);
}

static void add_read(void *arg)
{
    struct revent *e = arg;

    if (!e->rd_on && event_add(e->rd, NULL) == 0)
        e->rd_on = true;
}

static void del_read(void *arg)
{
    struct revent *e = arg;

    if (e->rd_on && event_del(e->rd) == 0)
        e->rd_on = false;
}

/* While connected and not inside a write, batch: the flush runs once after the current
 * callbacks, however many commands they queue. Otherwise the socket must say when. */
static void add_write(void *arg)
{
    struct revent *e = arg;

    if (e->wr_on)
        return;
    if ((e->ac->c.flags & REDICT_CONNECTED) && !e->in_write) {
        if (!e->flush_on)
            event_active(e->flush, EV_WRITE, 0);
        e->flush_on = true;
        return;
    }
    if (event_add(e->wr, NULL) == 0)
        e->wr_on = true;
}

static void del_write(void *arg)
{
    struct revent *e = arg;

    if (e->wr_on && event_del(e->wr) == 0)
        e->wr_on = false;
}

static void cleanup(void *arg)
{
    struct revent *e = arg;

    if (!e)
        return;
    if (e->rd)
        event_free(e->rd);
    if (e->wr)
        event_free(e->wr);
    if (e->flush)
        event_free(e->flush);
    e->rd = e->wr = e->flush = NULL;
    e->ac->ev.data = NULL;
    if (e->entered)
        e->deleted = true;
    else
        free(e);
}

int revent_attach(redictAsyncContext *ac, struct event_base *base, size_t max_unparsed,
                  revent_overflow_fn *on_overflow)
{
    struct revent *e = NULL;
    int fd = ac->c.fd;

    if (ac->ev.data || (max_unparsed && !on_overflow))
        return -1;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    e->ac = ac;
    e->max_unparsed = max_unparsed;
    e->on_overflow = on_overflow;
    e->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, e);
    e->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, e);
    e->flush = event_new(base, -1, 0, on_writable, e);
    if (!e->rd || !e->wr || !e->flush) {
        cleanup(e);
        return -1;
    }
    ac->ev.data = e;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.scheduleTimer = NULL;
    return 0;
}

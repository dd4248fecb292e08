/* connidle: the idle list of a server's connections (conn.h's struct conn_list): the
 * connections waiting for a next request with nothing received and nothing to send, oldest
 * first, so that the connection cap closes the one idle longest in O(1); and parking.
 *
 * Parking: beyond the newest CONN_HOT_IDLE idle connections, the one idle longest gives
 * back its bufferevent, request and timer (conn_detach) and waits on one event for the
 * socket to become readable or its deadline to pass: a few hundred bytes instead of ~2 KB.
 * The park event is added before the bufferevent goes and the bufferevent is back before
 * the park event goes, so the descriptor stays registered with epoll throughout: parking
 * and waking cost allocations, no epoll_ctl (the woken bufferevent reads at the loop's next
 * turn: one more epoll_wait).
 * Invariants: a connection is on the list exactly while c->is_idle, and never once dead;
 * the parked ones are the list's front, up to hot_first. */
#include "conn.h"

#include <errno.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conn_server.h"
#include "connpriv.h"

void conn_idle_leave(struct conn *c)
{
    struct conn_list *l = c->list;

    if (!c->is_idle)
        return;
    if (l->hot_first == c)
        l->hot_first = c->idle_next;
    if (c->parked)
        l->parked--;
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        l->idle_first = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    else
        l->idle_last = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->is_idle = false;
    l->idle_count--;
    conn_server_idle_changed(c->srv);
}

/* Bytes arrived (or the client closed): the connection gets its parts back and the
 * bufferevent reads them at the loop's next turn (the socket stays readable). */
static void wake(struct conn *c)
{
    conn_idle_leave(c);
    c->parked = false;
    if (conn_attach(c, event_get_base(c->park_ev)) != 0) {
        conn_kill(c);
        return;
    }
    event_del(c->park_ev);
}

/* True when the client closed (or reset) the connection: then it needs no parts to close.
 * A burst of clients leaving must not allocate a bufferevent for each of them. */
static bool peer_gone(evutil_socket_t fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void on_park_event(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    conn_enter(c);
    if (c->state != ST_DEAD && (what & EV_READ) && !peer_gone(fd))
        wake(c);
    else if (c->state != ST_DEAD && (what & EV_READ))
        conn_kill_why(c, CONN_CLIENT_CLOSED); /* nothing in flight: no log line */
    else if (c->state != ST_DEAD)
        conn_kill_why(c, CONN_CLIENT_TIMEOUT); /* silent keep-alive, or no first byte */
    conn_leave(c);
}

/* Returns true when `c` is parked now; false when it cannot be at the moment (inside one
 * of its callbacks, a log line or bytes pending, or out of memory). */
static bool park(struct conn *c)
{
    unsigned ms = deadline_left_ms(&c->dl);
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

    if (c->busy || c->log_pending || c->body_direct ||
        evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        return false;
    if (!c->park_ev) {
        c->park_ev = conn_park_event(c);
        event_assign(c->park_ev, bufferevent_get_base(c->bev), c->fd, EV_READ | EV_PERSIST,
                     on_park_event, c);
    }
    if (event_add(c->park_ev, c->dl.kind ? &tv : NULL) != 0)
        return false;
    conn_detach(c);
    c->parked = true;
    return true;
}

/* Waiting for a next request with nothing received and nothing to send: sheddable, and
 * parked once CONN_HOT_IDLE newer ones wait too. */
void conn_idle_enter(struct conn *c)
{
    struct conn_list *l = c->list;

    if (c->is_idle || c->state != ST_HEAD || c->head_started || evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return;
    c->is_idle = true;
    c->idle_prev = l->idle_last;
    c->idle_next = NULL;
    if (l->idle_last)
        l->idle_last->idle_next = c;
    else
        l->idle_first = c;
    l->idle_last = c;
    if (!l->hot_first)
        l->hot_first = c;
    l->idle_count++;
    if (l->idle_count - l->parked > CONN_HOT_IDLE && park(l->hot_first)) {
        l->hot_first = l->hot_first->idle_next;
        l->parked++;
    }
    conn_server_idle_changed(c->srv);
}

bool conn_list_shed_idle(struct conn_list *list)
{
    struct conn *c = list->idle_first;

    if (!c)
        return false;
    conn_enter(c);
    conn_kill_why(c, CONN_OK); /* nothing in flight: no log line */
    conn_leave(c);
    return true;
}

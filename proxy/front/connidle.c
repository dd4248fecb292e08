/* connidle: the idle list of a server's connections (conn.h's struct conn_list): the
 * connections waiting for a next request with nothing received and nothing to send, oldest
 * first, so that the connection cap closes the one idle longest in O(1).
 * Invariant: a connection is on the list exactly while c->is_idle, and never once dead. */
#include "conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conn_server.h"
#include "connpriv.h"

void conn_idle_leave(struct conn *c)
{
    struct conn_list *l = c->list;

    if (!c->is_idle)
        return;
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

/* Waiting for a next request with nothing received and nothing to send: sheddable. */
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
    l->idle_count++;
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

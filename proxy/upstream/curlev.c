/* curlev: libcurl multi socket interface on a libevent loop (see curlev.h).
 * One struct sockev per socket libcurl watches, linked into the driver so that none is
 * left behind; the event inside it is allocated once and re-armed only on a change.
 * A connection socket libcurl stops watching (it went idle in the connection cache) keeps
 * its sockev and its epoll registration ("parked") until libcurl closes it, so reusing a
 * keep-alive connection costs no epoll_ctl. Only sockets opened and closed through this
 * module's callbacks are parked: their close is always seen, so a parked registration
 * never outlives its socket (a reused descriptor number would otherwise look armed). */
#include "curlev.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define FD_SLOTS_MAX (1 << 20)   /* descriptors above this are never parked */

struct sockev {
    struct curlev *owner;        /* borrowed */
    curl_socket_t fd;
    struct event *ev;            /* owned */
    short armed;                 /* EV_READ|EV_WRITE currently added; 0 = none */
    bool parked;                 /* libcurl no longer watches it; see the file comment */
    struct sockev *prev, *next;  /* in owner->socks */
};

/* Per descriptor number: opened by on_open_socket and not closed yet, and its parked
 * sockev if any (borrowed from owner->socks). */
struct fdslot {
    bool ours;
    struct sockev *parked;
};

struct curlev {
    struct event_base *base;     /* borrowed */
    CURLM *multi;                /* owned */
    struct event *timer;         /* owned */
    struct sockev *socks;        /* owned list */
    void (*on_done)(void *arg, CURL *easy, CURLcode rc);
    void *arg;                   /* borrowed */
    int busy;                    /* depth of calls into libcurl */
    struct fdslot *fds;          /* owned, indexed by descriptor; n_fds entries */
    size_t n_fds;
    struct curlev_stats stats;
};

/* Hands every finished transfer to on_done. Runs outside libcurl, so the callee may remove
 * handles, add new ones and pause or resume others. */
static void drain(struct curlev *ev)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(ev->multi, &left))) {
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;

        if (m->msg == CURLMSG_DONE)
            ev->on_done(ev->arg, easy, rc);
    }
}

static void act(struct curlev *ev, curl_socket_t fd, int flags)
{
    int running;

    ev->busy++;
    curl_multi_socket_action(ev->multi, fd, flags, &running);
    ev->busy--;
    drain(ev);
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct sockev *se = arg;
    struct curlev *ev = se->owner;  /* se may be freed inside act() */
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
                ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    if (se->parked) { /* an idle connection closed or spoke: libcurl finds out on reuse */
        event_del(se->ev);
        se->armed = 0;
        return;
    }
    ev->stats.socket_events++;
    act(ev, fd, flags);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    struct curlev *ev = arg;

    ev->stats.timer_events++;
    act(ev, CURL_SOCKET_TIMEOUT, 0);
}

/* The slot of descriptor `fd`, grown to fit when `grow`; NULL if out of range or memory. */
static struct fdslot *fd_slot(struct curlev *ev, curl_socket_t fd, bool grow)
{
    size_t n;
    struct fdslot *p;

    if (fd < 0 || fd >= FD_SLOTS_MAX)
        return NULL;
    if ((size_t)fd < ev->n_fds)
        return &ev->fds[fd];
    if (!grow)
        return NULL;
    n = ev->n_fds ? ev->n_fds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    p = realloc(ev->fds, n * sizeof *p);
    if (!p)
        return NULL;
    for (size_t i = ev->n_fds; i < n; i++)
        p[i] = (struct fdslot){ 0 };
    ev->fds = p;
    ev->n_fds = n;
    return &ev->fds[fd];
}

static void sock_free(struct curlev *ev, struct sockev *se)
{
    struct fdslot *slot = se->parked ? fd_slot(ev, se->fd, false) : NULL;

    if (slot)
        slot->parked = NULL;
    if (se->prev)
        se->prev->next = se->next;
    else
        ev->socks = se->next;
    if (se->next)
        se->next->prev = se->prev;
    event_free(se->ev);
    free(se);
}

static struct sockev *sock_new(struct curlev *ev, curl_socket_t fd)
{
    struct sockev *se = calloc(1, sizeof(*se));

    if (!se)
        return NULL;
    se->ev = event_new(ev->base, fd, 0, on_sock_event, se);
    if (!se->ev) {
        free(se);
        return NULL;
    }
    se->owner = ev;
    se->fd = fd;
    se->next = ev->socks;
    if (ev->socks)
        ev->socks->prev = se;
    ev->socks = se;
    curl_multi_assign(ev->multi, fd, se);
    ev->stats.sockets++;
    return se;
}

/* Keeps a connection socket's sockev while libcurl does not watch it; false if it is not
 * one of ours (its close would not be seen). */
static bool park(struct curlev *ev, struct sockev *se)
{
    struct fdslot *slot = fd_slot(ev, se->fd, false);

    if (!slot || !slot->ours || slot->parked)
        return false;
    slot->parked = se;
    se->parked = true;
    return true;
}

static struct sockev *unpark(struct curlev *ev, curl_socket_t fd)
{
    struct fdslot *slot = fd_slot(ev, fd, false);
    struct sockev *se = slot ? slot->parked : NULL;

    if (!se)
        return NULL;
    slot->parked = NULL;
    se->parked = false;
    curl_multi_assign(ev->multi, fd, se);
    return se;
}

/* CURLMOPT_SOCKETFUNCTION: libcurl says which readiness it wants on `fd`. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct curlev *ev = userp;
    struct sockev *se = socketp;
    short want;

    if (what == CURL_POLL_REMOVE) {
        if (se && !park(ev, se))
            sock_free(ev, se);
        return 0;
    }
    if (!se && !(se = unpark(ev, fd)) && !(se = sock_new(ev, fd)))
        return -1;
    want = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
    if (want == se->armed)
        return 0;
    if (se->armed) {
        event_del(se->ev);
        ev->stats.rearms++;
    }
    se->armed = 0;
    if (!want)
        return 0;
    event_assign(se->ev, ev->base, fd, want | EV_PERSIST, on_sock_event, se);
    if (event_add(se->ev, NULL) != 0)
        return -1;
    se->armed = want;
    return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: libcurl's own socket() call, remembered so that the
 * socket may be parked. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *a)
{
    struct curlev *ev = clientp;
    curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
    struct fdslot *slot = fd >= 0 ? fd_slot(ev, fd, true) : NULL;

    if (slot)
        *slot = (struct fdslot){ .ours = true };
    return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the registration goes before the socket does. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    struct curlev *ev = clientp;
    struct fdslot *slot = fd_slot(ev, fd, false);

    if (slot && slot->parked)
        sock_free(ev, slot->parked);
    if (slot)
        slot->ours = false;
    return close(fd);
}

/* CURLMOPT_TIMERFUNCTION: one timer, moved (never re-created) when libcurl asks. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct curlev *ev = userp;
    struct timeval tv;

    if (timeout_ms < 0)
        return event_del(ev->timer);
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return event_add(ev->timer, &tv);
}

struct curlev *curlev_new(struct event_base *base,
                          void (*on_done)(void *arg, CURL *easy, CURLcode rc), void *arg)
{
    struct curlev *ev = calloc(1, sizeof(*ev));

    if (!ev)
        return NULL;
    ev->base = base;
    ev->on_done = on_done;
    ev->arg = arg;
    ev->multi = curl_multi_init();
    ev->timer = evtimer_new(base, on_timer_event, ev);
    if (!ev->multi || !ev->timer) {
        curlev_free(ev);
        return NULL;
    }
    curl_multi_setopt(ev->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(ev->multi, CURLMOPT_SOCKETDATA, ev);
    curl_multi_setopt(ev->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(ev->multi, CURLMOPT_TIMERDATA, ev);
    return ev;
}

void curlev_free(struct curlev *ev)
{
    if (!ev)
        return;
    if (ev->multi)
        curl_multi_cleanup(ev->multi);  /* may still report sockets as removed */
    while (ev->socks)
        sock_free(ev, ev->socks);
    if (ev->timer)
        event_free(ev->timer);
    free(ev->fds);
    free(ev);
}

CURLM *curlev_multi(struct curlev *ev)
{
    return ev->multi;
}

int curlev_prepare(struct curlev *ev, CURL *easy)
{
    if (curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, ev) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, ev) != CURLE_OK)
        return -1;
    return 0;
}

int curlev_add(struct curlev *ev, CURL *easy)
{
    return curl_multi_add_handle(ev->multi, easy) == CURLM_OK ? 0 : -1;
}

void curlev_remove(struct curlev *ev, CURL *easy)
{
    curl_multi_remove_handle(ev->multi, easy);
}

CURLcode curlev_pause(struct curlev *ev, CURL *easy, int bitmask)
{
    CURLcode rc;

    ev->busy++;
    rc = curl_easy_pause(easy, bitmask);
    ev->busy--;
    /* Let libcurl run the resumed transfer from the loop on this iteration, whether or not
     * this libcurl version moved its timer for it. */
    if (bitmask != CURLPAUSE_ALL)
        event_active(ev->timer, EV_TIMEOUT, 0);
    return rc;
}

bool curlev_busy(const struct curlev *ev)
{
    return ev->busy > 0;
}

void curlev_stats(const struct curlev *ev, struct curlev_stats *out)
{
    *out = ev->stats;
}

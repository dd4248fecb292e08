/* listener: bind, listen, accept through evconnlistener, back off on accept errors. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "log.h"

#define BACKLOG 511
#define ACCEPT_PAUSE_MS 100

struct listener {
    struct evconnlistener *evl;   /* owned; closes the socket */
    struct event *resume;         /* owned: re-enables accepting after an error pause */
    listener_on_accept on_accept;
    void *arg;                    /* borrowed */
    bool held;                    /* listener_hold: not accepting until released */
};

void listener_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
        snprintf(buf, len, "[%s]:%d", ip, port);
        return;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
    }
    snprintf(buf, len, "%s:%d", ip, port);
}

static int make_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (port < 0 || port > 65535)
        return -1;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return 0;
    }
    return -1;
}

/* socket + bind + listen, so that a failure reports the real errno. */
static int open_socket(const char *host, int port, unsigned flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    if (make_addr(host, port, &ss, &len) < 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        ((flags & LISTENER_REUSEPORT) &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, BACKLOG) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void on_evl_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    struct listener *l = arg;
    l->on_accept(fd, sa, l->arg);
}

/* Out of descriptors or buffers: the pending connection stays queued and the socket stays
 * readable, so retrying at once would spin. Pause, then try again. */
static void on_evl_error(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
    int err = EVUTIL_SOCKET_ERROR();

    log_msg(LOG_LVL_WARN, "accept failed (%s); pausing accepts for %d ms", strerror(err),
            ACCEPT_PAUSE_MS);
    evconnlistener_disable(l->evl);
    evtimer_add(l->resume, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    if (!l->held)
        evconnlistener_enable(l->evl);
}

void listener_hold(struct listener *l, bool hold)
{
    if (!l || l->held == hold)
        return;
    l->held = hold;
    if (hold)
        evconnlistener_disable(l->evl);
    else if (!evtimer_pending(l->resume, NULL))
        evconnlistener_enable(l->evl);
}

static void bound_name(int fd, char *bound, size_t bound_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        listener_format_addr((struct sockaddr *)&ss, bound, bound_len);
    else
        snprintf(bound, bound_len, "?");
}

struct listener *listener_new(struct event_base *base, const char *host, int port,
                              unsigned flags, listener_on_accept on_accept, void *arg,
                              char *bound, size_t bound_len)
{
    struct listener *l = calloc(1, sizeof *l);
    int fd = -1, err = ENOMEM;

    if (!l)
        goto out;
    l->on_accept = on_accept;
    l->arg = arg;
    l->resume = evtimer_new(base, on_resume, l);
    if (!l->resume)
        goto out;
    fd = open_socket(host, port, flags);
    if (fd < 0) {
        err = errno;
        goto out;
    }
    bound_name(fd, bound, bound_len);
    l->evl = evconnlistener_new(base, on_evl_accept, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!l->evl)
        goto out;
    evconnlistener_set_error_cb(l->evl, on_evl_error);
    return l;
out:
    if (fd >= 0)
        close(fd);
    listener_free(l);
    errno = err;
    return NULL;
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    if (l->evl)
        evconnlistener_free(l->evl);
    if (l->resume)
        event_free(l->resume);
    free(l);
}

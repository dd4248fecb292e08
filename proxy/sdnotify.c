/* sdnotify: the sd_notify datagram protocol in a few lines instead of libsystemd.
 * Why not libsystemd: the protocol is a documented, stable interface that systemd invites
 * programs to speak themselves (sd_notify(3), "Notes"); fogate needs four messages of it,
 * and doing it here keeps libsystemd0 out of the .deb's and the image's dependencies.
 * Invariant: formatting is pure; sdnotify_open/sdnotify_send are the only I/O. */
#include "sdnotify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct sdnotify {
    int fd;                    /* owned: an unbound AF_UNIX datagram socket */
    struct sockaddr_un addr;
    socklen_t addr_len;
};

int sdnotify_address(const char *value, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = value ? strlen(value) : 0;

    if (n < 2 || (value[0] != '/' && value[0] != '@') || n > sizeof sa->sun_path - 1)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, value, n);
    if (value[0] == '@') { /* abstract: the name is the bytes after a NUL, unterminated */
        sa->sun_path[0] = '\0';
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

static const char *state_line(enum sdnotify_state state)
{
    switch (state) {
    case SDNOTIFY_READY: return "READY=1\n";
    case SDNOTIFY_RELOADING: return "RELOADING=1\n";
    case SDNOTIFY_STOPPING: return "STOPPING=1\n";
    default: return "";
    }
}

int sdnotify_format(char *buf, size_t cap, enum sdnotify_state state, uint64_t usec,
                    const char *status)
{
    int n = snprintf(buf, cap, "%s", state_line(state));

    if (n >= 0 && state == SDNOTIFY_RELOADING && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "MONOTONIC_USEC=%llu\n",
                      (unsigned long long)usec);
    if (n >= 0 && status && (size_t)n < cap) {
        int len = (int)strcspn(status, "\n");
        n += snprintf(buf + n, cap - (size_t)n, "STATUS=%.*s\n", len, status);
    }
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return -1;
    }
    return n;
}

int sdnotify_status_text(char *buf, size_t cap, const struct sdnotify_health *h)
{
    char ledger[64];
    int n;

    if (h->ledger < 0)
        snprintf(ledger, sizeof ledger, "ledger off");
    else if ((unsigned)h->ledger >= h->workers)
        snprintf(ledger, sizeof ledger, "ledger: Redis up");
    else
        snprintf(ledger, sizeof ledger, "ledger: Redis DOWN in %u/%u workers",
                 h->workers - (unsigned)h->ledger, h->workers);
    n = snprintf(buf, cap, "serving: %zu connection%s; tokens ready for %u/%u environments; %s",
                 h->connections, h->connections == 1 ? "" : "s", h->envs_ready, h->envs,
                 ledger);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? n : (int)(cap ? cap - 1 : 0);
}

int sdnotify_open(struct sdnotify **out)
{
    const char *value = getenv("NOTIFY_SOCKET");
    struct sdnotify *n = NULL;

    *out = NULL;
    if (!value || !value[0])
        return 0;
    if (!(n = calloc(1, sizeof *n)))
        return -1;
    if (sdnotify_address(value, &n->addr, &n->addr_len) < 0) {
        log_msg(LOG_LVL_ERROR, "NOTIFY_SOCKET is not a socket path or @name fogate can use; "
                               "not telling the service manager anything");
        free(n);
        return -1;
    }
    if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot open a socket for NOTIFY_SOCKET: %s", strerror(errno));
        free(n);
        return -1;
    }
    *out = n;
    return 0;
}

static uint64_t monotonic_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int sdnotify_send(struct sdnotify *n, enum sdnotify_state state, const char *status)
{
    char msg[SDNOTIFY_MSG_MAX];
    int len;

    if (!n)
        return 0;
    len = sdnotify_format(msg, sizeof msg, state, monotonic_usec(), status);
    if (len < 0)
        return -1;
    if (sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&n->addr,
               n->addr_len) < 0) {
        log_msg(LOG_LVL_WARN, "cannot notify the service manager: %s", strerror(errno));
        return -1;
    }
    return 0;
}

bool sdnotify_enabled(const struct sdnotify *n)
{
    return n != NULL;
}

void sdnotify_free(struct sdnotify *n)
{
    if (!n)
        return;
    close(n->fd);
    free(n);
}

/* redisopen: one Redis connection (rconn) from the `redis` config block, shared by the
 * token share (tokenwire) and the ack ledger (ledgerflow). The password is read from its
 * file or environment variable only for the call and wiped afterwards. */
#ifndef FOGATE_REDISOPEN_H
#define FOGATE_REDISOPEN_H

#include <event2/dns.h>
#include <event2/event.h>

#include "conf.h"
#include "rconn.h"

/* Opens an rconn on `base` (borrowed) for `r` (borrowed): host and port or unix socket,
 * db, ACL user, password, TLS, timeouts. For a host name *dns gets a new evdns base that
 * the caller owns (evdns_base_free(dns, 0)) even when this fails; else *dns is NULL.
 * Returns the connection (owned; rconn_free) or NULL, a reason logged after the prefix
 * `who` (e.g. "ledger: "; never the password). */
struct rconn *redisopen_new(struct event_base *base, const struct conf_redis *r,
                            const char *who, struct evdns_base **dns);

#endif

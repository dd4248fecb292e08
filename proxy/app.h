/* app: fogate's runtime: the event loop, the client listener, the routes, signals.
 * Invariant: the app owns its config snapshot and everything built from it; nothing is
 * global, so two apps could run side by side (the tests start real processes instead). */
#ifndef FOGATE_APP_H
#define FOGATE_APP_H

#include "conf.h"
#include "conn_server.h"

struct app;

/* Builds an app from `conf` (taken: the app frees it). Returns NULL on failure, after
 * logging why; `conf` is freed then too. */
struct app *app_new(struct conf *conf);

/* Listens on conf->listen_host:listen_port and logs {"msg":"listening","address":..}
 * with the address actually bound (so port 0 shows the port the kernel chose). Serves
 * until SIGTERM or SIGINT, then stops accepting, lets requests in flight finish for up
 * to timeouts.shutdown_grace_ms and returns 0; a second signal ends at once. Returns 1
 * if it could not listen. */
int app_run(struct app *app);

/* Frees the app, its connections and its conf. NULL is a no-op. */
void app_free(struct app *app);

/* Fills the connection layer's options from a config (pure). */
void app_conn_options(const struct conf *conf, struct conn_options *out);

#endif

/* app: one worker of fogate's runtime: the event loop, the client listener, the routes.
 * Invariant: the app owns its config snapshot and everything built from it; nothing is
 * global, so several apps run side by side, one per worker thread (workers.h). */
#ifndef FOGATE_APP_H
#define FOGATE_APP_H

#include "conf.h"
#include "conn_server.h"

struct app;

/* Builds the app of worker `worker` (0-based) of `workers` from `conf` (taken: the app
 * frees it). With several workers the listener uses SO_REUSEPORT and each app takes its
 * share of limits.max_connections. Returns NULL on failure, after logging why; `conf` is
 * freed then too. */
struct app *app_new(struct conf *conf, unsigned worker, unsigned workers);

/* Listens on conf->listen_host and `port` (-1 = conf->listen_port) and logs
 * {"msg":"listening","address":..} with the address actually bound (so port 0 shows the
 * port the kernel chose). Returns the bound port, or -1 after logging why. */
int app_listen(struct app *app, int port);

/* Runs the loop until a stop (app_signal) has drained. Returns 0. Call on one thread. */
int app_serve(struct app *app);

/* Handles `sig` on the app's loop thread: SIGTERM/SIGINT stop accepting, let requests in
 * flight finish for up to timeouts.shutdown_grace_ms, then end app_serve; a second one
 * ends at once. SIGHUP reloads the config file (listener, limits, workers and Redis
 * settings stay as they were at start). Returns 0, or -1 when a reload was refused (the
 * running config stays; logged). */
int app_signal(struct app *app, int sig);

/* How the app is doing, for the service manager's status line (sdnotify). */
struct app_health {
    size_t connections;     /* client connections open */
    unsigned envs;          /* environments in the running config */
    unsigned envs_ready;    /* of which this app holds a usable token */
    int ledger;             /* -1 ledger off, 0 its Redis is down, 1 up */
};

/* Fills `out`; call on the app's loop thread. */
void app_health(const struct app *app, struct app_health *out);

/* The app's event loop (owned by the app). */
struct event_base *app_base(const struct app *app);

/* Frees the app, its connections and its conf. NULL is a no-op. */
void app_free(struct app *app);

/* Fills the connection layer's options from a config for one of `workers` (pure). */
void app_conn_options(const struct conf *conf, unsigned workers, struct conn_options *out);

#endif

/* workers: runs fogate as N apps, one per thread, each with its own event loop, its own
 * SO_REUSEPORT listener on the same address, upstream client, Redis connections and token
 * manager. The main thread takes SIGTERM, SIGINT and SIGHUP and passes each to every
 * worker through the worker's own pipe.
 * Invariant: once the threads run, an app is touched by its own thread only; the main
 * thread writes signal numbers to pipes and joins. No lock is on the request path. */
#ifndef FOGATE_WORKERS_H
#define FOGATE_WORKERS_H

struct conf;

/* The number of CPUs this process may run on (its affinity mask; the online CPUs if that
 * cannot be read), at least 1. */
unsigned workers_cpus(void);

/* The number of workers for a configured count: `configured` itself if above 0; for 0
 * ("auto") `cpus`, at least 1. Pure. */
unsigned workers_resolve(unsigned configured, unsigned cpus);

/* The open-file limit fogate wants for `max_connections` clients over `workers` workers:
 * one descriptor per client connection, up to one per upstream connection, and 64 per worker
 * for listeners, pipes, Redis and the event loop. Pure. */
unsigned long long workers_nofile_need(unsigned max_connections, unsigned workers);

/* Runs fogate with `conf` (taken: freed here). Warns when RLIMIT_NOFILE is below
 * workers_nofile_need (the unit's LimitNOFILE=). Builds one app per worker (worker 0 gets
 * `conf`, the others a fresh load of conf->path), binds the listeners (the others on the
 * port worker 0 bound, so port 0 works), starts one thread per worker and passes signals
 * on until every worker has stopped: SIGTERM/SIGINT drain each worker as one instance
 * does, a second one ends at once; SIGHUP reloads in every worker. Blocks those signals
 * in the calling thread. Returns 0, or 1 if it could not start. */
int workers_run(struct conf *conf);

#endif

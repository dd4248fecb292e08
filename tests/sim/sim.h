/* sim: the fosim application object shared by its modules, plus the request router,
 * counters and the common reply helpers. Invariant: all state hangs off struct sim; the
 * event loop is single-threaded (worker threads only touch their own job objects). */
#ifndef SIM_H
#define SIM_H

#include <event2/event.h>
#include <jansson.h>

#include "simconf.h"
#include "simhttp.h"

struct simjwt_key;
struct simqueue;
struct simmemq;
struct simfault;
struct simpkg;
struct simbearer;
struct simblob;
struct simprotect;

struct sim {
    struct event_base *base;        /* borrowed */
    struct simhttp_server *http;    /* owned */
    json_t *conf_doc;               /* owned: merged config document */
    struct simconf *conf;           /* owned: built from conf_doc */
    struct simjwt_key *key;         /* owned: token signing key */
    struct simbearer *bearer;       /* owned: verified-token cache */
    struct simqueue *queue;         /* owned: connector messages */
    struct simmemq *memq;           /* owned: export messages made on demand (bulk?memory=1) */
    struct simfault *faults;        /* owned: fault rules */
    struct simpkg *pkg;             /* owned: package executions */
    struct simblob *blobs;          /* owned: the blob store (blob_store "self") */
    struct simprotect *protect;     /* owned: service protection and the call log */
    json_t *counters;               /* owned */
    char *data_dir;                 /* owned */
    char base_url[80];              /* http://127.0.0.1:PORT */
    char hostport[64];              /* 127.0.0.1:PORT */
    double clock_offset;            /* seconds added to the wall clock (control API) */
    unsigned long seq;              /* file name sequence */
    unsigned long tokens_issued;    /* the next token's fosim_seq claim */
    unsigned long revoked_below;    /* tokens whose fosim_seq is lower answer 401 (revoked
                                       through the control API: a rotated secret, a
                                       disabled app; reset clears it) */
};

/* A route: the endpoint label for counters and faults plus its two handlers. */
struct sim_route {
    const char *endpoint;
    void (*on_head)(struct sim *s, struct simhttp_req *req);    /* may be NULL */
    void (*on_request)(struct sim *s, struct simhttp_req *req);
};

/* Creates the app: loads `conf_doc` (reference stolen), generates the key, binds
 * host:port. Returns NULL and writes err on failure. */
struct sim *sim_new(struct event_base *base, json_t *conf_doc, const char *host, int port,
                    const char *data_dir, char *err, size_t errcap);
void sim_free(struct sim *s);

/* Replaces the config with conf_doc merged with `patch` (borrowed). Returns 0 or -1
 * (err written; the old config stays). */
int sim_reconfigure(struct sim *s, const json_t *patch, char *err, size_t errcap);

/* The simulated clock: wall clock plus the control API's offset, in seconds. */
double sim_now(const struct sim *s);
/* The D365 environment URL tokens must carry as aud. */
const char *sim_audience(const struct sim *s);
/* Writes a fresh path inside the data dir ("<dir>/<prefix>-<seq>") into out. */
void sim_data_path(struct sim *s, const char *prefix, char *out, size_t cap);

/* counters[group][key] += n (group NULL: counters[key] += n). */
void sim_count(struct sim *s, const char *group, const char *key, long n);
/* Resets all counters to their initial shape. */
void sim_counters_reset(struct sim *s);

/* Replies with JSON (reference stolen), compact, with Content-Type ctype. */
void sim_reply_json(struct simhttp_req *req, int status, const char *ctype, json_t *body);
/* Adds the response headers a real D365 front end sends (ms-dyn-*, nosniff, ...). */
void sim_d365_headers(struct simhttp_req *req);
/* Formats epoch seconds as ISO-8601 UTC "YYYY-MM-DDTHH:MM:SSZ" (frac=0) or with
 * 7 fractional digits (frac=1). */
void sim_iso8601(double t, int frac, char *out, size_t cap);

#endif

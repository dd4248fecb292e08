/* conf: loads fogate's JSON config file into plain structs and validates it.
 * Invariant: the runtime never sees JSON; a loaded `struct conf` is an immutable snapshot
 * (reload = load a new one and swap the pointer). It never holds a secret, only where to
 * find one (a file path or an environment variable name). */
#ifndef FOGATE_CONF_H
#define FOGATE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "guid.h"
#include "log.h"

#define CONF_ERR_PATH_MAX 256
#define CONF_ERR_MSG_MAX 512

/* Filled by conf_load on failure. `path` is the JSON path of the offending value
 * ("environments.prod.base_url", "" for the whole file), `line` its 1-based line in the
 * file (0 when unknown; for a missing key, the line of its parent), `message` ready to
 * print: "<file>:<line>: <path>: <what is wrong and what to do>". */
struct conf_error {
    char path[CONF_ERR_PATH_MAX];
    int line;
    char message[CONF_ERR_MSG_MAX];
};

enum conf_credential {
    CONF_CRED_SECRET_FILE,
    CONF_CRED_SECRET_ENV,
    CONF_CRED_CERTIFICATE,
    CONF_CRED_ASSERTION_FILE,   /* workload identity federation: a JWT re-read per request */
    CONF_CRED_MANAGED_IDENTITY  /* Azure managed identity (IMDS or IDENTITY_ENDPOINT) */
};
enum conf_cert_alg { CONF_ALG_PS256, CONF_ALG_RS256 };
enum conf_token_version { CONF_TOKEN_V2, CONF_TOKEN_V1 };
enum conf_direction { CONF_DIR_IMPORT, CONF_DIR_EXPORT };
enum conf_password_source { CONF_PASSWORD_NONE, CONF_PASSWORD_FILE, CONF_PASSWORD_ENV };

/* One D365 environment and the Entra app fogate uses to get tokens for it. */
struct conf_env {
    char *name;                  /* owned; the key under "environments" */
    char *base_url;              /* owned; as configured, trailing slashes stripped */
    char *resource;              /* owned; base_url lower-cased: the token audience (ref §2.6) */
    char *tenant;                /* owned; tenant id or domain */
    char *client_id;             /* owned; canonical lower-case GUID */
    enum conf_credential credential;
    char *client_secret_file;    /* owned; set iff credential == CONF_CRED_SECRET_FILE */
    char *client_secret_env;     /* owned; set iff credential == CONF_CRED_SECRET_ENV */
    char *cert_file;             /* owned; set iff credential == CONF_CRED_CERTIFICATE */
    char *key_file;              /* owned; set iff credential == CONF_CRED_CERTIFICATE */
    enum conf_cert_alg cert_algorithm; /* PS256 unless configured */
    char *client_assertion_file; /* owned; set iff credential == CONF_CRED_ASSERTION_FILE */
    bool managed_identity;       /* credential == CONF_CRED_MANAGED_IDENTITY */
    char *mi_client_id;          /* owned; user-assigned identity's client id (canonical
                                    GUID), NULL = system-assigned */
    char *mi_endpoint;           /* owned; IMDS token URL, resolved (default link-local) */
    enum conf_token_version token_version;
    char *token_endpoint;        /* owned; resolved: the override or the Entra default */
    bool allow_http;             /* tests only: http:// base_url / token_endpoint allowed */
    long long secret_expires;    /* client_secret_expires as Unix seconds (UTC midnight);
                                    0 = not configured */
};

/* One recurring data job (connector API activity) or data-package job. */
struct conf_job {
    char *name;                  /* owned; the key under "jobs" */
    char *env_name;              /* owned; as configured (== env->name) */
    const struct conf_env *env;  /* borrowed from the same conf */
    char *activity_id_raw;       /* owned; exactly as written in the file */
    char activity_id[GUID_CANON_SIZE]; /* canonical: lower-case, no braces, 36 chars */
    char *entity;                /* owned; NULL when not configured (data-package jobs) */
    char *company;               /* owned; NULL when not configured */
    char *project;               /* owned; data project (definitionGroupId) of a package
                                    job (package API); NULL for recurring jobs */
    char *callback_url;          /* owned; where receipts of this job go; NULL = none */
    enum conf_direction direction;
};

/* One API client: who it is (hash of its API key) and which jobs it may use. */
struct conf_client {
    char *name;                         /* owned; the key under "clients" */
    unsigned char api_key_sha256[32];   /* raw SHA-256 of the client's API key */
    char **job_names;                   /* owned array of owned strings, as configured */
    const struct conf_job **jobs;       /* owned array; elements borrowed from the conf */
    size_t n_jobs;                      /* length of both arrays */
};

/* One sentinel of redis.sentinel.addresses. */
struct conf_sentinel_addr {
    char *host;                  /* owned; IP literal or DNS name, IPv6 without brackets */
    int port;                    /* default 26379 */
};

/* redis.sentinel: the Sentinels that name the current master (failover). */
struct conf_sentinel {
    char *master_name;           /* owned; NULL = no Sentinel (redis.url names the server) */
    struct conf_sentinel_addr *addrs; /* owned array, config order */
    size_t n_addrs;
    char *username;              /* owned; ACL user on the sentinels, NULL = default */
    enum conf_password_source password_source;
    char *password_file;         /* owned; set iff password_source == CONF_PASSWORD_FILE */
    char *password_env;          /* owned; set iff password_source == CONF_PASSWORD_ENV */
    bool tls;                    /* the sentinels speak TLS; default: redis.tls (the scheme) */
    bool tls_set;                /* sentinel.tls was given (else it follows the scheme) */
};

/* Redis connection, parsed from redis.url plus the redis.* keys. Exactly one of host or
 * unix_path is set, unless sentinel.master_name is set: then neither is (the sentinels
 * name the master's address at each connect). */
struct conf_redis {
    char *url;                   /* owned; as configured (never holds a password) */
    bool tls;                    /* rediss:// */
    char *host;                  /* owned; NULL for unix sockets; IPv6 without brackets */
    int port;                    /* default 6379 */
    char *unix_path;             /* owned; NULL for TCP */
    int db;                      /* default 0 */
    char *username;              /* owned; NULL = default user */
    enum conf_password_source password_source;
    char *password_file;         /* owned; set iff password_source == CONF_PASSWORD_FILE */
    char *password_env;          /* owned; set iff password_source == CONF_PASSWORD_ENV */
    char *ca_file;               /* owned; NULL = system trust store (tls only) */
    char *server_name;           /* owned; SNI and name to verify; default host (tls only) */
    unsigned connect_timeout_ms;
    unsigned command_timeout_ms;
    struct conf_sentinel sentinel;
};

struct conf_limits {
    size_t max_header_bytes;     /* whole request head */
    unsigned max_headers;
    size_t max_body_bytes;       /* default for routes without a specific limit */
    size_t max_enqueue_bytes;    /* connector enqueue bodies */
    size_t max_package_bytes;    /* data packages */
    size_t replay_body_bytes;    /* streamed bodies kept for a replay after a 401 */
    unsigned max_connections;
    unsigned max_connections_per_ip; /* 0: no cap per client address */
};

struct conf_timeouts {
    unsigned request_head_ms;
    unsigned idle_ms;
    unsigned upstream_connect_ms;
    unsigned upstream_total_ms;
    unsigned upstream_first_byte_ms; /* request sent -> first response byte */
    unsigned upstream_stall_ms;  /* no byte either way */
    unsigned import_first_byte_ms; /* ImportFromPackage's first byte (it answers late) */
    unsigned shutdown_grace_ms;
};

/* The token manager (auth/token.h): refresh tuning and the shared token cache. */
struct conf_tokens {
    char *cache_key_file;        /* owned; NULL = no cache shared through Redis */
    unsigned refresh_percent;    /* refresh after this % of a token's lifetime */
    unsigned safety_margin_s;    /* never send a token expiring within this */
    unsigned retry_min_ms;       /* first retry delay after a failed fetch */
    unsigned retry_max_ms;       /* largest retry delay */
    unsigned request_timeout_ms; /* one token request */
};

/* The ack ledger (cache/ledger.h) on the export paths; Redis is the `redis` section. */
struct conf_ledger {
    bool enabled;                /* consult the ledger on every dequeue and ack */
    bool fail_open;              /* Redis unavailable: deliver without the ledger (counted) */
    unsigned lease_s;            /* delivery lease; below D365's 30-minute visibility */
    unsigned max_skips;          /* duplicates / leased-elsewhere skipped per dequeue */
    unsigned outbox_interval_ms; /* outbox claim period */
    unsigned outbox_lease_ms;    /* an outbox entry stays with its instance this long */
    unsigned ack_retry_min_ms;   /* first delay after a failed upstream ack */
    unsigned ack_retry_max_ms;   /* cap of that delay */
    unsigned stats_interval_ms;  /* gauges refresh period */
    unsigned warn_unacked_s;     /* warn when the oldest unconfirmed/unacked is this old */
    unsigned retry_after_s;      /* Retry-After of a fail-closed 503 */
};

/* Package imports (proxy/package*.c): the per-environment lock and its wait. */
struct conf_packages {
    bool shared;                 /* lock and Idempotency-Keys in Redis */
    unsigned lock_lease_ms;      /* Redis lock and reservation lease, renewed while held */
    unsigned lock_wait_ms;       /* longest wait for the environment's turn */
    size_t block_bytes;          /* Put Block size of package uploads */
};

/* admin: the operators' listener (proxy/admin): /metrics, /healthz, /readyz, /admin/... */
struct conf_admin {
    char *listen_host;           /* owned; NULL = no admin listener */
    int listen_port;
    char *token_file;            /* owned; bearer token: non-loopback peers, every action */
    unsigned drain_notice_ms;    /* drain by API: /readyz 503 this long before stopping */
};

/* History of every file (proxy/history) and its receipts, in Redis. */
struct conf_history {
    bool enabled;                /* record every file in Redis */
    unsigned retention_days;     /* a record expires this long after its last change */
    unsigned max_records;        /* cap of each environment's and job's index */
    unsigned follow_hours;       /* an import's status is followed this long at most */
    unsigned follow_min_ms;      /* first delay of the status follow-up; doubles */
    unsigned follow_max_ms;      /* cap of that delay */
    unsigned write_timeout_ms;   /* each history write to Redis */
    unsigned max_page;           /* largest ?limit= of GET /v1/history */
};

struct conf_receipts {
    char *key_file;              /* owned; HMAC-SHA256 key file; NULL = receipts off */
    bool allow_http;             /* http:// callback URLs (tests) */
    unsigned retry_min_ms;       /* first retry delay of a receipt; doubles */
    unsigned retry_max_ms;       /* cap of that delay */
    unsigned max_attempts;       /* a receipt is given up after this many attempts */
    unsigned timeout_ms;         /* one POST to the receiver */
    unsigned unconfirmed_s;      /* an export unconfirmed this long gets a receipt */
    unsigned interval_ms;        /* how often an instance works off the receipt queue */
};

/* D365's service-protection budget kept by fogate (proxy/d365/budget.c), per environment
 * identity; `shared` also makes the 429 gate cluster-wide. */
struct conf_budget {
    bool enabled;                /* calls take a slot before they go to D365 */
    bool shared;                 /* through Redis: one budget and one gate for all instances */
    unsigned concurrent;         /* calls in flight per environment, all instances */
    unsigned requests;           /* calls per window per environment, all instances */
    unsigned window_ms;          /* the sliding window */
    unsigned wait_ms;            /* longest wait for a slot before 503 */
    unsigned queue_per_job;      /* calls of one job waiting at once on one worker */
    unsigned instances;          /* expected instances: the share of each while Redis is down */
    unsigned lease_ms;           /* a shared slot's lease, renewed while the call runs */
    unsigned gate_refresh_ms;    /* how often the cluster gate is read from Redis */
    unsigned poll_ms;            /* how often a waiting worker asks Redis again */
    unsigned redis_timeout_ms;   /* time limit of each budget command */
};

struct conf_upstream {
    bool native;                 /* client "native": fogate's own HTTP/1.1 client */
};

struct conf {
    char *path;                  /* owned; the file it was loaded from */
    char *listen_host;           /* owned; IP literal, IPv6 without brackets */
    int listen_port;
    char *public_base_url;       /* owned; scheme://host[:port][/path], no trailing slash */
    enum log_level log_level;
    unsigned workers;            /* worker threads; 0 = "auto" (workers.h resolves it) */
    struct conf_env *envs;       /* owned array, file order */
    size_t n_envs;
    struct conf_job *jobs;       /* owned array, file order */
    size_t n_jobs;
    struct conf_client *clients; /* owned array, file order */
    size_t n_clients;
    struct conf_redis redis;
    struct conf_limits limits;
    struct conf_timeouts timeouts;
    struct conf_upstream upstream;
    struct conf_tokens tokens;
    struct conf_ledger ledger;
    struct conf_packages packages;
    struct conf_admin admin;
    struct conf_history history;
    struct conf_receipts receipts;
    struct conf_budget d365_budget;
};

/* Reads, shape-checks and validates the config at `path`. Returns a new conf the caller
 * owns (free with conf_free), or NULL with *err filled. Checks that secret files are
 * readable and secret env vars set, but never reads a secret. Relative file paths in
 * the config are resolved against the config file's directory. `err` may be NULL. */
struct conf *conf_load(const char *path, struct conf_error *err);

/* Same as conf_load but from `len` bytes of JSON text; `name` (borrowed) is used as the
 * conf's path. Relative file paths inside are taken as they are (relative to the cwd). */
struct conf *conf_load_buffer(const char *text, size_t len, const char *name,
                              struct conf_error *err);

/* Frees everything conf_load allocated. NULL is a no-op. */
void conf_free(struct conf *conf);

/* Lookups by name; return a pointer into `conf` (borrowed, lives as long as conf) or NULL. */
const struct conf_env *conf_env_find(const struct conf *conf, const char *name);
const struct conf_job *conf_job_find(const struct conf *conf, const char *name);
const struct conf_client *conf_client_find(const struct conf *conf, const char *name);

/* Finds the job whose activity ID equals `activity_id` (`len` bytes, any spelling
 * guid_canonical accepts, e.g. a raw URL path segment). NULL if none or malformed. */
const struct conf_job *conf_job_find_by_activity(const struct conf *conf,
                                                 const char *activity_id, size_t len);

/* Finds the client whose api_key_sha256 equals `sha256` (32 bytes), comparing every
 * client in constant time. Returns a borrowed pointer or NULL. */
const struct conf_client *conf_client_find_by_key(const struct conf *conf,
                                                  const unsigned char sha256[32]);

/* True iff `client` is allowed to use `job` (both borrowed from the same conf). */
bool conf_client_allows(const struct conf_client *client, const struct conf_job *job);

/* Writes the key reference (Markdown, the content of conf/CONFIG.md) generated from the
 * key table to `out`. Returns 0, or -1 on a write error. */
int conf_print_reference(FILE *out);

#endif

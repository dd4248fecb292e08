/* confkeys: the key table, the shape check and the generated key reference.
 * Invariant: every key fogate reads is in this table, and nothing else is accepted. */
#include "confkeys.h"

#include <stdbool.h>
#include <string.h>

#include "conferr.h"

#define STRING_MAX 4096 /* longest string value accepted anywhere */
#define NAME_MAX_LEN 64 /* longest entry name (environments.<name> ...) */

/* T_COUNT: an integer within min..max, or the string "auto" (resolved at run time) */
enum key_type { T_STRING, T_INT, T_BOOL, T_OBJECT, T_MAP, T_STRINGS, T_COUNT };

struct key {
    const char *name;
    enum key_type type;
    bool required;
    const char *def;            /* JSON text of the default; NULL = none */
    long long min, max;         /* T_INT: value bounds; T_STRINGS: element count bounds */
    const char *const *choices; /* T_STRING: allowed values, NULL-terminated; NULL = any */
    const struct key *sub;      /* T_OBJECT: its keys; T_MAP: the keys of each entry */
    const char *doc;
};

#define REQ(n, t, d) { .name = (n), .type = (t), .required = true, .doc = (d) }
#define OPT(n, t, d) { .name = (n), .type = (t), .doc = (d) }
#define INT(n, dflt, lo, hi, d) \
    { .name = (n), .type = T_INT, .def = (dflt), .min = (lo), .max = (hi), .doc = (d) }
#define DESCRIPTION OPT("description", T_STRING, "Free text for operators; not used by fogate.")

static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const algorithms[] = { "PS256", "RS256", NULL };
static const char *const token_versions[] = { "v2", "v1", NULL };
static const char *const directions[] = { "import", "export", NULL };
static const char *const upstream_clients[] = { "curl", "native", NULL };

static const struct key certificate_keys[] = {
    REQ("cert_file", T_STRING, "Path of the PEM certificate registered on the Entra app."),
    REQ("key_file", T_STRING,
        "Path of the PEM private key of that certificate (keep it mode 0600)."),
    { .name = "algorithm", .type = T_STRING, .def = "\"PS256\"", .choices = algorithms,
      .doc = "Signature algorithm of the client assertion JWT." },
    { 0 }
};

static const struct key managed_identity_keys[] = {
    OPT("client_id", T_STRING,
        "Client ID (a GUID) of the user-assigned managed identity to use. Omit it for the "
        "system-assigned identity."),
    OPT("endpoint", T_STRING,
        "Token URL of the Azure Instance Metadata Service. Default: "
        "`http://169.254.169.254/metadata/identity/oauth2/token`. http:// only to a loopback "
        "or link-local host (or with `allow_http`). Not used when the environment variables "
        "`IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (App Service, Container Apps): "
        "fogate then asks that endpoint."),
    { 0 }
};

static const struct key env_keys[] = {
    DESCRIPTION,
    REQ("base_url", T_STRING,
        "URL of the D365 F&O environment, e.g. `https://contoso.operations.dynamics.com`. "
        "https only, unless `allow_http` is true; no user, query or fragment. The token "
        "audience (resource) is this URL lower-cased without trailing slashes."),
    REQ("tenant", T_STRING,
        "Entra tenant ID (a GUID) or domain (`contoso.onmicrosoft.com`). Not `common`, "
        "`organizations` or `consumers`: D365 needs a token from the tenant endpoint."),
    REQ("client_id", T_STRING, "Application (client) ID of the Entra app, a GUID."),
    OPT("client_secret_file", T_STRING,
        "Credential, option 1: path of a file holding the client secret (its value, not its "
        "ID). Exactly one of `client_secret_file`, `client_secret_env`, "
        "`client_certificate`, `client_assertion_file` and `managed_identity` must be set. "
        "The file must be readable and not empty."),
    OPT("client_secret_env", T_STRING,
        "Credential, option 2: name of an environment variable holding the client secret. "
        "It must be set and not empty when fogate starts."),
    { .name = "client_certificate", .type = T_OBJECT, .sub = certificate_keys,
      .doc = "Credential, option 3: a certificate; fogate signs a client assertion with it." },
    OPT("client_assertion_file", T_STRING,
        "Credential, option 4 (workload identity federation, no secret): path of a file "
        "holding a JWT issued by an identity provider Entra trusts for this app, e.g. the "
        "value of `AZURE_FEDERATED_TOKEN_FILE` on AKS. Re-read for every token request, "
        "never sent past its own `exp`. It may be missing at start (reported in `/readyz`)."),
    { .name = "managed_identity", .type = T_OBJECT, .sub = managed_identity_keys,
      .doc = "Credential, option 5 (Azure managed identity, no secret): `{}` for the "
             "system-assigned identity, `{\"client_id\": \"...\"}` for a user-assigned one. "
             "`client_id` of the environment is still the identity's application (client) "
             "ID as registered in D365." },
    { .name = "token_version", .type = T_STRING, .def = "\"v2\"", .choices = token_versions,
      .doc = "Entra token endpoint: `v2` (sends `scope=<resource>/.default`) or `v1` "
             "(sends `resource=<resource>`)." },
    OPT("token_endpoint", T_STRING,
        "Full token endpoint URL. Default: `https://login.microsoftonline.com/<tenant>/oauth2/"
        "v2.0/token`, or `.../oauth2/token` for v1. For tests and sovereign clouds."),
    { .name = "allow_http", .type = T_BOOL, .def = "false",
      .doc = "Allow http:// in `base_url` and `token_endpoint`. For tests against a local "
             "simulator only." },
    OPT("client_secret_expires", T_STRING,
        "Expiry date of the client secret as `YYYY-MM-DD` (UTC), as Entra shows it under "
        "Certificates & secrets (Entra does not tell a client). Exported as "
        "`fogate_credential_expiry_timestamp_seconds` so that an alert fires before it "
        "expires. For a certificate the date is read from the certificate (notAfter)."),
    { 0 }
};

static const struct key job_keys[] = {
    DESCRIPTION,
    REQ("environment", T_STRING, "Name of the environment (a key of `environments`)."),
    OPT("activity_id", T_STRING,
        "Activity ID of the recurring data job in D365, a GUID. Braces, `%7B`/`%7D` and any "
        "case are accepted here and from clients. Required unless `project` is set."),
    OPT("project", T_STRING,
        "Makes this a package job (package API, `/v1/packages/...`): the data project name "
        "(definitionGroupId) imported into or exported from. Set this or `activity_id`, "
        "not both."),
    OPT("entity", T_STRING,
        "Data entity name sent as `entity=` on enqueue, e.g. `Customer groups`. Omit for "
        "recurring data-package jobs. On a package job (`project`), the entity whose staging "
        "and target error files `/v1/executions/{id}/errors` reports."),
    OPT("company", T_STRING, "Default legal entity (dataAreaId) sent as `company=`, e.g. `usmf`."),
    { .name = "direction", .type = T_STRING, .required = true, .choices = directions,
      .doc = "`import` (clients enqueue) or `export` (clients dequeue, download and ack)." },
    OPT("callback_url", T_STRING,
        "Where fogate POSTs signed receipts of this job's files (docs/history.md): an "
        "import's final status, an export left unconfirmed for `receipts.unconfirmed_s`. "
        "https only, unless `receipts.allow_http`. Needs `history.enabled` and "
        "`receipts.key_file`."),
    { 0 }
};

static const struct key client_keys[] = {
    DESCRIPTION,
    REQ("api_key_sha256", T_STRING,
        "SHA-256 of the client's API key as 64 hex digits (`printf %s \"$KEY\" | "
        "sha256sum`). The key itself is never stored. Each client's must differ."),
    { .name = "jobs", .type = T_STRINGS, .required = true, .min = 1, .max = 1000,
      .doc = "Names of the jobs (keys of `jobs`) this client may use." },
    { 0 }
};

static const struct key redis_tls_keys[] = {
    OPT("ca_file", T_STRING,
        "PEM file of the CA(s) that signed the Redis server certificate. Default: the "
        "system trust store."),
    OPT("server_name", T_STRING,
        "Name sent in SNI and verified in the server certificate. Default: the host of `url` "
        "(with `sentinel`: the master's address as the sentinels name it)."),
    { 0 }
};

static const struct key redis_sentinel_keys[] = {
    REQ("master_name", T_STRING, "Name of the master as the sentinels monitor it "
        "(`sentinel monitor <name> ...`)."),
    { .name = "addresses", .type = T_STRINGS, .required = true, .min = 1, .max = 32,
      .doc = "Sentinels as `host:port` (`[v6]:port`; port 26379 by default), asked in turn, "
             "starting with the one that answered last. Prefer IP addresses: a name is "
             "resolved with the system resolver, which blocks fogate while it waits." },
    OPT("username", T_STRING, "ACL user on the sentinels (they may have their own)."),
    OPT("password_file", T_STRING, "Path of a file holding the sentinels' password. At most "
        "one of `password_file` and `password_env`; neither = no AUTH on the sentinels."),
    OPT("password_env", T_STRING,
        "Name of an environment variable holding the sentinels' password."),
    OPT("tls", T_BOOL, "Whether the sentinels speak TLS (with `redis.tls.ca_file`; the name "
        "verified is `redis.tls.server_name` or else each sentinel's host). Default: as the "
        "scheme of `url`."),
    { 0 }
};

static const struct key redis_keys[] = {
    OPT("url", T_STRING,
        "`redis://[user@]host[:port][/db]`, `rediss://...` for TLS, or "
        "`unix:///path/redis.sock[?db=N]`. Port 6379 and db 0 by default. A password "
        "in the URL is refused: use `password_file` or `password_env`. Default "
        "`redis://127.0.0.1:6379`; with `sentinel`, it must not name a host "
        "(`redis://`, `rediss://[user@]/db`; default `redis://`)."),
    OPT("username", T_STRING, "ACL user (Redis 6+). May be given here or in `url`, not both."),
    OPT("password_file", T_STRING,
        "Path of a file holding the Redis password. At most one of `password_file` and "
        "`password_env`."),
    OPT("password_env", T_STRING, "Name of an environment variable holding the Redis password."),
    { .name = "tls", .type = T_OBJECT, .sub = redis_tls_keys,
      .doc = "TLS settings; only with a `rediss://` URL, which turns TLS on." },
    INT("connect_timeout_ms", "2000", 1, 600000, "Time limit to connect (and handshake)."),
    INT("command_timeout_ms", "2000", 1, 600000, "Time limit of each Redis command."),
    { .name = "sentinel", .type = T_OBJECT, .sub = redis_sentinel_keys,
      .doc = "Redis Sentinel: before each (re)connect, ask the sentinels for the master of "
             "`master_name` (each sentinel within `connect_timeout_ms`) and check it with ROLE; a "
             "READONLY reply or a demoted master makes fogate reconnect through them." },
    { 0 }
};

static const struct key limits_keys[] = {
    INT("max_header_bytes", "16384", 1024, 1048576,
        "Largest request head (request line and headers) accepted."),
    INT("max_headers", "100", 1, 10000, "Most header fields accepted in a request."),
    INT("max_body_bytes", "1048576", 1, 1073741824LL,
        "Largest request body on routes without a limit of their own (dequeue, ack, "
        "OData actions)."),
    INT("max_enqueue_bytes", "104857600", 1, 68719476736LL,
        "Largest connector enqueue body. D365 itself has answered 413 at about 36-50 MB "
        "(no documented limit; reference §3.1); that 413 reaches the client as "
        "`d365_enqueue_too_large`, naming this limit and pointing to the package API."),
    INT("max_package_bytes", "2147483648", 1, 68719476736LL,
        "Largest data package uploaded through fogate."),
    INT("replay_body_bytes", "1048576", 0, 67108864,
        "Streamed request bodies (enqueue) up to this size are kept while they are sent, so "
        "that a call D365 refuses with 401 (a revoked or rotated token) is sent once more "
        "with a fresh token. A larger body is not kept: the client gets 503 "
        "`d365_token_retry` (nothing was enqueued, a retry is safe). 0 keeps none."),
    INT("max_connections", "1024", 1, 1000000,
        "Most client connections served at once; at the cap the longest-idle keep-alive "
        "connection is closed to make room, and with none idle new connections wait in the "
        "listen backlog. With several `workers` each worker takes an equal share (rounded "
        "up)."),
    INT("max_connections_per_ip", "0", 0, 1000000,
        "Most connections from one client address (IPv4, or IPv6 /128) at once; 0 = no "
        "limit. Beyond it a new connection from that address is closed at once. With "
        "several `workers` each worker takes an equal share (rounded up)."),
    { 0 }
};

static const struct key timeouts_keys[] = {
    INT("request_head_ms", "10000", 1, 86400000,
        "Time a client has to send the request line and headers."),
    INT("idle_ms", "60000", 1, 86400000,
        "Time a client connection may stay silent (between requests or inside a body)."),
    INT("upstream_connect_ms", "10000", 1, 86400000,
        "Time limit to connect to D365 or Entra, TLS handshake included."),
    INT("upstream_total_ms", "3600000", 1, 86400000,
        "Time limit of one whole upstream exchange. Long on purpose: package imports take "
        "over 30 minutes."),
    INT("upstream_first_byte_ms", "180000", 1, 86400000,
        "Time limit from the last request byte sent to the first response byte, for every "
        "upstream call but ImportFromPackage (`import_first_byte_ms`). D365 answers "
        "connector and OData calls in seconds; 3 minutes leaves room for a loaded AOS while "
        "cutting the hangs seen in the field (download not answering until the next "
        "dequeue). An idempotent call is then retried within `upstream_total_ms`; an enqueue "
        "is not re-sent and is answered 504 `d365_outcome_unknown`."),
    INT("upstream_stall_ms", "60000", 1, 86400000,
        "Longest time an upstream transfer may go without a byte moving either way (time in "
        "which fogate itself waits for its client does not count). Healthy D365 and blob "
        "transfers never pause for a minute (a 120 MB download taking 3 minutes still moves "
        "0.7 MB/s). Idempotent calls (dequeue, download, status, ack, blob blocks) are "
        "retried within `upstream_total_ms`; a download already streaming resumes where it "
        "stopped."),
    INT("import_first_byte_ms", "1800000", 1, 86400000,
        "`upstream_first_byte_ms` for ImportFromPackage, which answers only once the package "
        "is unpacked into staging (over 180 s measured for a 228-entity package; at least 30 "
        "minutes advised). It is never re-sent: when it expires the import is answered 202 "
        "with `outcome: unknown` and its execution status tells."),
    INT("shutdown_grace_ms", "30000", 0, 86400000,
        "On shutdown, time given to requests in flight before connections are closed."),
    { 0 }
};

static const struct key tokens_keys[] = {
    OPT("cache_key_file", T_STRING,
        "Path of a file holding 64 hex digits (`openssl rand -hex 32`; mode 0600 or 0640): "
        "the AES-256-GCM key that seals tokens shared between fogate instances through "
        "Redis, so one instance fetches and the others read. Every instance needs the same "
        "key. Without it each instance fetches its own tokens."),
    INT("refresh_percent", "75", 10, 100,
        "Refresh a token in the background after this percentage of its lifetime (up to "
        "10 points earlier, at random, so instances spread out)."),
    INT("safety_margin_s", "60", 0, 3600,
        "Never send a token that expires within this many seconds."),
    INT("retry_min_ms", "500", 1, 600000,
        "First retry delay after a failed token request; it doubles (with jitter) up to "
        "`retry_max_ms`."),
    INT("retry_max_ms", "60000", 1, 86400000, "Largest retry delay after failed token requests."),
    INT("request_timeout_ms", "10000", 1, 600000, "Time limit of one token request to Entra ID."),
    { 0 }
};

static const struct key ledger_keys[] = {
    { .name = "enabled", .type = T_BOOL, .def = "false",
      .doc = "Keep every export message's state in Redis (the ack ledger): a message a "
             "consumer confirmed is never delivered again, an unconfirmed one is redelivered "
             "marked `X-Fogate-Redelivery: true`, upstream acks are retried from an outbox." },
    { .name = "fail_open", .type = T_BOOL, .def = "false",
      .doc = "When Redis is unavailable: false answers dequeues 503 with Retry-After and "
             "dequeues nothing from D365; true delivers without the ledger (counted)." },
    INT("lease_s", "1200", 1, 86400,
        "How long a delivered message belongs to its consumer before a re-offer by D365 is "
        "a redelivery. Keep it below D365's 30-minute visibility timeout."),
    INT("max_skips", "16", 1, 1000,
        "Most messages one dequeue skips (already confirmed, or leased elsewhere) before it "
        "answers 204; the next poll goes on."),
    INT("outbox_interval_ms", "1000", 10, 600000,
        "How often each instance claims confirmed messages whose upstream ack is due."),
    INT("outbox_lease_ms", "60000", 300, 3600000,
        "How long a confirmed message's upstream ack stays with the instance that took it "
        "(renewed while the ack runs); after a crash another instance takes it over then."),
    INT("ack_retry_min_ms", "1000", 1, 3600000,
        "First delay after a failed upstream ack; it doubles (with jitter) up to "
        "`ack_retry_max_ms`."),
    INT("ack_retry_max_ms", "60000", 1, 86400000, "Largest delay between upstream ack attempts."),
    INT("stats_interval_ms", "5000", 100, 3600000,
        "How often the ledger's counters and ages are read for /admin/status and the logs."),
    INT("warn_unacked_s", "1200", 1, 86400,
        "Log a warning when the oldest unconfirmed or unacked message is this old (D365 "
        "offers it again after 30 minutes)."),
    INT("retry_after_s", "2", 1, 3600, "Retry-After of a dequeue refused because Redis is down."),
    { 0 }
};

static const struct key packages_keys[] = {
    { .name = "shared", .type = T_BOOL, .def = "false",
      .doc = "Keep the per-environment import lock and the Idempotency-Key records in Redis "
             "(`redis`), so they hold across several fogate instances or workers. When false "
             "they live in this process only, which is right for one instance with one worker. "
             "With true, imports fail closed (503) while Redis is unavailable." },
    INT("lock_lease_ms", "30000", 1000, 3600000,
        "With `shared`: lease of the per-environment import lock and of an Idempotency-Key "
        "reservation, renewed while the import runs; after a crash another instance goes on "
        "once it expires."),
    INT("lock_wait_ms", "300000", 0, 86400000,
        "Longest time an import waits for its environment's turn (queue and lock) before it "
        "is answered 503 `package_lock_timeout`."),
    INT("block_bytes", "4194304", 65536, 4194304000LL,
        "Package uploads go to blob storage as Put Block of this size, then one Put Block "
        "List, so memory stays bounded and a failed block is re-sent alone. Lowered to the "
        "largest block the SAS version allows (4 MiB before 2016-05-31, which D365's "
        "sv=2014-02-14 is; 100 MiB before 2019-12-12). A package of at most one block goes "
        "as one Put Blob."),
    { 0 }
};

static const struct key admin_keys[] = {
    OPT("listen", T_STRING,
        "IP address and port of the admin listener, e.g. `127.0.0.1:9091`: `/metrics` "
        "(Prometheus), `/healthz`, `/readyz`, `/admin/status`. Absent = no admin listener "
        "(a fixed default port would collide with a second instance on the host). Served by "
        "worker 0's event loop. Read at start only."),
    OPT("token_file", T_STRING,
        "Path of a file holding the bearer token (at least 16 characters, one line) that "
        "peers other than loopback must send as `Authorization: Bearer <token>`. Without "
        "it the admin listener answers loopback peers only. Never a client API key. "
        "Every admin action (`POST /admin/api/...`: pause, resume, retry-ack, release, "
        "repoll, drain) needs this token, from loopback too; without a token file actions "
        "are refused (403 `admin_token_required`)."),
    INT("drain_notice_ms", "5000", 0, 600000,
        "A drain asked through `POST /admin/api/drain` (or SIGUSR2): `/readyz` answers 503 "
        "for this long, so that load balancers stop sending, then the instance drains as "
        "on SIGTERM (`timeouts.shutdown_grace_ms`)."),
    { 0 }
};

static const struct key history_keys[] = {
    { .name = "enabled", .type = T_BOOL, .def = "false",
      .doc = "Record every file through fogate in Redis (`redis`): enqueues, exports, their "
             "statuses, served by `GET /v1/history` (docs/history.md). Writing history never "
             "delays or fails a transfer; writes lost while Redis is down are counted." },
    INT("retention_days", "14", 1, 366,
        "A record (and an Idempotency-Key of an enqueue) expires this many days after its "
        "last change."),
    INT("max_records", "100000", 10, 10000000,
        "Most records each environment's and each job's index keeps (the oldest drop out)."),
    INT("follow_hours", "24", 0, 720,
        "An import's status is polled in the background until it is final, for at most "
        "this many hours after the enqueue; 0 = no background follow-up."),
    INT("follow_min_ms", "2000", 10, 3600000,
        "First delay of the background status follow-up; it doubles (with jitter) up to "
        "`follow_max_ms`."),
    INT("follow_max_ms", "60000", 10, 86400000, "Largest delay between two status polls."),
    INT("write_timeout_ms", "1000", 1, 60000, "Time limit of each history write to Redis."),
    INT("max_page", "500", 1, 10000, "Largest `limit` of one `GET /v1/history` page."),
    { 0 }
};

static const struct key receipts_keys[] = {
    OPT("key_file", T_STRING,
        "Path of a file holding the HMAC-SHA256 key that signs receipts (any bytes; e.g. "
        "`openssl rand -hex 32`), shared with the receivers. Without it no receipt is sent."),
    { .name = "allow_http", .type = T_BOOL, .def = "false",
      .doc = "Allow http:// in jobs' `callback_url`. For tests only." },
    INT("retry_min_ms", "1000", 1, 3600000,
        "First delay after a failed receipt POST; it doubles (with jitter) up to "
        "`retry_max_ms`."),
    INT("retry_max_ms", "300000", 1, 86400000, "Largest delay between two receipt attempts."),
    INT("max_attempts", "20", 1, 1000, "A receipt is given up (and logged) after this many "
        "failed attempts."),
    INT("timeout_ms", "10000", 1, 600000, "Time limit of one receipt POST."),
    INT("unconfirmed_s", "900", 1, 86400,
        "An export delivered and not confirmed for this long gets a receipt "
        "(`status` `unconfirmed`)."),
    INT("interval_ms", "1000", 10, 600000,
        "How often each instance takes due receipts from the queue in Redis."),
    { 0 }
};

static const struct key budget_keys[] = {
    { .name = "enabled", .type = T_BOOL, .def = "true",
      .doc = "Every call to D365 first takes a slot of its environment's budget (below); calls "
             "that find none wait in a per-job queue, served round-robin, and get 503 "
             "`d365_budget_exhausted` with Retry-After after `wait_ms`, without reaching D365. "
             "Blob transfers and Entra token requests do not count (docs/protect-budget.md)." },
    { .name = "shared", .type = T_BOOL, .def = "false",
      .doc = "Keep the budget and the 429 gate in Redis (`redis`), so the limits hold for all "
             "instances together and a 429 seen by one instance stops all of them. When false, "
             "or while Redis is unavailable, each worker keeps its share: the limits divided by "
             "`instances` times `workers`, and its own 429 gate." },
    INT("concurrent", "48", 1, 10000,
        "Calls in flight per environment (identity), all instances together. D365 allows 52 "
        "per user per web server."),
    INT("requests", "5000", 1, 1000000,
        "Calls per environment in any `window_ms`, all instances together. D365 allows 6000 "
        "per 300 s per user per web server."),
    INT("window_ms", "300000", 100, 86400000,
        "The sliding window of `requests`. Keep it at least D365's 300 s."),
    INT("wait_ms", "10000", 0, 3600000,
        "Longest time a call waits for a slot before it is answered 503 "
        "`d365_budget_exhausted` (a call's own wait bound may be shorter)."),
    INT("queue_per_job", "1000", 1, 1000000,
        "Calls of one job waiting for a slot at once on one worker; more are answered 503 at "
        "once."),
    INT("instances", "1", 1, 1000,
        "fogate instances expected to share the budget: each worker's share without Redis."),
    INT("lease_ms", "30000", 1000, 3600000,
        "With `shared`: lease of a slot in Redis, renewed every third of it while the call "
        "runs; a crashed instance's slots come back after it."),
    INT("gate_refresh_ms", "50", 5, 60000,
        "With `shared`: how often each worker reads the cluster's 429 gates from Redis (the "
        "request path reads the cached value, never waits on Redis)."),
    INT("poll_ms", "20", 1, 60000,
        "With `shared`: how often a worker with waiting calls asks Redis again while the "
        "concurrency is used up (a release on this worker asks at once)."),
    INT("redis_timeout_ms", "250", 1, 60000,
        "With `shared`: time limit of each budget command; on expiry the call uses this "
        "worker's share instead."),
    { 0 }
};

static const struct key upstream_keys[] = {
    { .name = "client", .type = T_STRING, .def = "\"native\"", .choices = upstream_clients,
      .doc = "HTTP client of upstream calls: `native` (fogate's own HTTP/1.1 client: the "
             "streamed calls (pass-through, downloads, uploads) and the whole-body calls "
             "(token requests, dequeue, OData actions, the status route), over https, or http "
             "where allowed; half libcurl's CPU per small request) or `curl` (libcurl, the "
             "client before 2026-12: the way back if the own client misbehaves with a peer). "
             "History's delivery receipts always use libcurl. Read at start only (a reload "
             "keeps the client)." },
    { 0 }
};

static const struct key top_keys[] = {
    DESCRIPTION,
    REQ("listen", T_STRING,
        "IP address and port to listen on: `127.0.0.1:8080`, `0.0.0.0:8080`, `[::1]:8080`."),
    REQ("public_base_url", T_STRING,
        "https URL clients reach fogate under (the load balancer's), e.g. "
        "`https://d365-gateway.example.com`; download links are rewritten to it. No query or "
        "fragment; a trailing slash is dropped. http only for a loopback host (tests)."),
    { .name = "log_level", .type = T_STRING, .def = "\"info\"", .choices = levels,
      .doc = "Least severe log level written." },
    { .name = "workers", .type = T_COUNT, .def = "1", .min = 1, .max = 256,
      .doc = "Worker threads, each with its own event loop, `SO_REUSEPORT` listener on "
             "`listen` (the kernel spreads new connections over them), upstream client, "
             "Redis connections and token manager. `auto` = the CPUs fogate may run on "
             "(its affinity mask). Read at start only (a reload keeps the count)." },
    { .name = "environments", .type = T_MAP, .required = true, .sub = env_keys,
      .doc = "D365 environments, keyed by a short name (letters, digits, `_`, `-`)." },
    { .name = "jobs", .type = T_MAP, .required = true, .sub = job_keys,
      .doc = "Jobs clients may use, keyed by a short name." },
    { .name = "clients", .type = T_MAP, .required = true, .sub = client_keys,
      .doc = "API clients, keyed by a short name (shown in logs)." },
    { .name = "redis", .type = T_OBJECT, .def = "{}", .sub = redis_keys,
      .doc = "The Redis server holding fogate's shared state." },
    { .name = "limits", .type = T_OBJECT, .def = "{}", .sub = limits_keys,
      .doc = "Size and count limits." },
    { .name = "timeouts", .type = T_OBJECT, .def = "{}", .sub = timeouts_keys,
      .doc = "Time limits, in milliseconds." },
    { .name = "upstream", .type = T_OBJECT, .def = "{}", .sub = upstream_keys,
      .doc = "How fogate talks to D365 and Entra." },
    { .name = "tokens", .type = T_OBJECT, .def = "{}", .sub = tokens_keys,
      .doc = "Entra ID tokens: background refresh, retries and the cache shared through Redis." },
    { .name = "ledger", .type = T_OBJECT, .def = "{}", .sub = ledger_keys,
      .doc = "The ack ledger on the export paths (needs `redis`)." },
    { .name = "packages", .type = T_OBJECT, .def = "{}", .sub = packages_keys,
      .doc = "Package imports: the per-environment lock and Idempotency-Keys (in Redis with "
             "`shared`)." },
    { .name = "admin", .type = T_OBJECT, .def = "{}", .sub = admin_keys,
      .doc = "The operators' listener: metrics, health, status (docs/operations.md)." },
    { .name = "history", .type = T_OBJECT, .def = "{}", .sub = history_keys,
      .doc = "History of every file, idempotent enqueue, background status follow-up "
             "(needs `redis`)." },
    { .name = "receipts", .type = T_OBJECT, .def = "{}", .sub = receipts_keys,
      .doc = "Signed receipts POSTed to jobs' `callback_url` (needs `history.enabled`)." },
    { .name = "d365_budget", .type = T_OBJECT, .def = "{}", .sub = budget_keys,
      .doc = "D365's service-protection limits kept by fogate per environment: a concurrency "
             "limit, a request rate, a fair queue per job, the 429 gate (cluster-wide with "
             "`shared`)." },
    { 0 }
};

/* ---- shape check ---- */

/* Copies a user-supplied name for a message: at most 64 chars, non-printables as '?'. */
static const char *printable(char *dst, size_t n, const char *src)
{
    size_t i = 0;

    for (; src[i] && i + 1 < n && i < NAME_MAX_LEN; i++)
        dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
    dst[i] = '\0';
    return dst;
}

static void join(char *dst, size_t n, const char *parent, const char *name)
{
    char safe[NAME_MAX_LEN + 1];

    conferr_pathf(dst, n,
                  "%s%s%s", parent, parent[0] ? "." : "", printable(safe, sizeof safe, name));
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a fractional number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static const char *wanted_name(enum key_type t)
{
    switch (t) {
    case T_STRING: return "a string";
    case T_INT: return "an integer";
    case T_BOOL: return "true or false";
    case T_STRINGS: return "an array of strings";
    case T_COUNT: return "an integer or \"auto\"";
    default: return "an object";
    }
}

static const struct key *find_key(const struct key *keys, const char *name)
{
    for (; keys->name; keys++)
        if (strcmp(keys->name, name) == 0)
            return keys;
    return NULL;
}

static void list_names(char *dst, size_t n, const struct key *keys)
{
    size_t off = 0;

    dst[0] = '\0';
    for (; keys->name && off < n; keys++)
        off += (size_t)snprintf(dst + off, n - off, "%s%s", off ? ", " : "", keys->name);
}

static void list_choices(char *dst, size_t n, const char *const *choices)
{
    size_t off = 0;

    dst[0] = '\0';
    for (; *choices && off < n; choices++)
        off += (size_t)snprintf(dst + off, n - off, "%s\"%s\"", off ? ", " : "", *choices);
}

static int check_string(const json_t *v, const struct key *k, const char *path,
                        struct conf_error *err)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);

    if (strlen(s) != len)
        return conferr_fail(err, path, "must not contain a NUL character");
    if (len == 0)
        return conferr_fail(err, path, "must not be empty");
    if (len > STRING_MAX)
        return conferr_fail(err, path, "is too long (%zu characters, at most %d)", len, STRING_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return conferr_fail(err, path, "must not contain control characters");
    if (!k || !k->choices)
        return 0;
    for (const char *const *c = k->choices; *c; c++)
        if (strcmp(*c, s) == 0)
            return 0;
    char choices[200];
    list_choices(choices, sizeof choices, k->choices);
    return conferr_fail(err, path, "must be one of %s", choices);
}

static int check_object(json_t *obj, const struct key *keys, const char *path,
                        struct conf_error *err);

/* Entry names become parts of JSON paths and log fields, so they are kept plain. */
static int check_name(const char *name, const char *path, struct conf_error *err)
{
    size_t len = strlen(name);
    char safe[NAME_MAX_LEN + 1];
    bool ok = len > 0 && len <= NAME_MAX_LEN;

    for (size_t i = 0; ok && i < len; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }
    if (!ok)
        return conferr_fail(err, path,
                            "bad name \"%s\": names are 1 to %d letters, digits, '_' or '-'",
                            printable(safe, sizeof safe, name), NAME_MAX_LEN);
    return 0;
}

static int check_map(json_t *map, const struct key *k, const char *path,
                     struct conf_error *err)
{
    const char *name;
    json_t *entry;
    char sub[CONF_ERR_PATH_MAX];

    json_object_foreach(map, name, entry) {
        if (check_name(name, path, err) < 0)
            return -1;
        join(sub, sizeof sub, path, name);
        if (!json_is_object(entry))
            return conferr_fail(err, sub, "must be an object, not %s", type_name(entry));
        if (check_object(entry, k->sub, sub, err) < 0)
            return -1;
    }
    return 0;
}

static int check_strings(json_t *arr, const struct key *k, const char *path,
                         struct conf_error *err)
{
    size_t n = json_array_size(arr), i;
    json_t *v;
    char sub[CONF_ERR_PATH_MAX];

    if ((long long)n < k->min || (long long)n > k->max)
        return conferr_fail(err, path,
                            "must hold %lld to %lld entries, not %zu", k->min, k->max, n);
    json_array_foreach(arr, i, v) {
        conferr_pathf(sub, sizeof sub, "%s[%zu]", path, i);
        if (!json_is_string(v))
            return conferr_fail(err, sub, "must be a string, not %s", type_name(v));
        if (check_string(v, NULL, sub, err) < 0)
            return -1;
    }
    return 0;
}

static bool type_ok(const json_t *v, enum key_type t)
{
    switch (t) {
    case T_STRING: return json_is_string(v);
    case T_INT: return json_is_integer(v);
    case T_BOOL: return json_is_boolean(v);
    case T_STRINGS: return json_is_array(v);
    case T_COUNT: return json_is_integer(v) || json_is_string(v);
    default: return json_is_object(v);
    }
}

static int check_value(json_t *v, const struct key *k, const char *path, struct conf_error *err)
{
    if (!type_ok(v, k->type))
        return conferr_fail(err, path, "must be %s, not %s", wanted_name(k->type), type_name(v));
    switch (k->type) {
    case T_STRING: return check_string(v, k, path, err);
    case T_COUNT:
        if (json_is_string(v) && strcmp(json_string_value(v), "auto") != 0)
            return conferr_fail(err, path, "must be an integer from %lld to %lld or \"auto\"",
                                k->min, k->max);
        if (json_is_string(v))
            return 0;
        /* fall through - an integer is checked like T_INT */
    case T_INT: {
        long long n = json_integer_value(v);
        if (n < k->min || n > k->max)
            return conferr_fail(err, path,
                                "must be between %lld and %lld, not %lld", k->min, k->max, n);
        return 0;
    }
    case T_OBJECT: return check_object(v, k->sub, path, err);
    case T_MAP: return check_map(v, k, path, err);
    case T_STRINGS: return check_strings(v, k, path, err);
    default: return 0;
    }
}

/* Returns 1 if k is present in obj (after inserting its default), 0 if absent, -1 on error. */
static int ensure_present(json_t *obj, const struct key *k, const char *path,
                          struct conf_error *err)
{
    if (json_object_get(obj, k->name))
        return 1;
    if (k->required)
        return conferr_fail(err, path, "required key is missing");
    if (!k->def)
        return 0;
    json_t *def = json_loads(k->def, JSON_DECODE_ANY, NULL);
    if (!def || json_object_set_new(obj, k->name, def) < 0)
        return conferr_fail(err, path, "out of memory");
    return 1;
}

static int check_object(json_t *obj, const struct key *keys, const char *path,
                        struct conf_error *err)
{
    const char *name;
    json_t *v;
    char sub[CONF_ERR_PATH_MAX];

    json_object_foreach(obj, name, v) {
        if (!find_key(keys, name)) {
            char known[300];
            join(sub, sizeof sub, path, name);
            list_names(known, sizeof known, keys);
            return conferr_fail(err, sub, "unknown key (known keys here: %s)", known);
        }
    }
    for (const struct key *k = keys; k->name; k++) {
        join(sub, sizeof sub, path, k->name);
        int present = ensure_present(obj, k, sub, err);
        if (present < 0)
            return -1;
        if (present && check_value(json_object_get(obj, k->name), k, sub, err) < 0)
            return -1;
    }
    return 0;
}

int confkeys_check(json_t *root, struct conf_error *err)
{
    if (!json_is_object(root))
        return conferr_fail(err, "", "the file must hold one JSON object, not %s", type_name(root));
    return check_object(root, top_keys, "", err);
}

/* ---- reference ---- */

static void print_type(FILE *out, const struct key *k)
{
    switch (k->type) {
    case T_STRING:
        if (!k->choices) {
            fputs("string", out);
            break;
        }
        fputs("one of", out);
        for (const char *const *c = k->choices; *c; c++)
            fprintf(out, "%s `%s`", c == k->choices ? "" : ",", *c);
        break;
    case T_INT: fprintf(out, "integer, %lld to %lld", k->min, k->max); break;
    case T_COUNT: fprintf(out, "integer, %lld to %lld, or `auto`", k->min, k->max); break;
    case T_BOOL: fputs("boolean", out); break;
    case T_OBJECT: fputs("object", out); break;
    case T_MAP: fputs("object of named objects", out); break;
    case T_STRINGS: fprintf(out, "array of %lld to %lld strings", k->min, k->max); break;
    }
}

/* Table cells: a '|' would end the cell, so it is escaped (GFM allows that in code too). */
static void print_cell(FILE *out, const char *text)
{
    for (; *text; text++) {
        if (*text == '|')
            fputc('\\', out);
        fputc(*text, out);
    }
}

static void print_rows(FILE *out, const struct key *keys, const char *prefix)
{
    char path[CONF_ERR_PATH_MAX];

    for (const struct key *k = keys; k->name; k++) {
        conferr_pathf(path, sizeof path, "%s%s", prefix, k->name);
        fprintf(out, "| `%s` | ", path);
        print_type(out, k);
        if (k->required)
            fputs(" | required", out);
        else if (k->def && strcmp(k->def, "{}") == 0)
            fputs(" | optional, all defaults", out);
        else if (k->def)
            fprintf(out, " | default `%s`", k->def);
        else
            fputs(" | optional", out);
        fputs(" | ", out);
        print_cell(out, k->doc);
        fputs(" |\n", out);
        if (k->type == T_OBJECT || k->type == T_MAP) {
            char sub[CONF_ERR_PATH_MAX];
            conferr_pathf(sub, sizeof sub, "%s%s", path, k->type == T_MAP ? ".<name>." : ".");
            print_rows(out, k->sub, sub);
        }
    }
}

int confkeys_print_reference(FILE *out)
{
    fputs("# fogate configuration keys\n\n"
          "<!-- Generated from the key table in conf/confkeys.c; do not edit by hand.\n"
          "     Regenerate: cmake --build <build-dir> --target conf-reference -->\n\n"
          "fogate reads one JSON file (`fogate --check-config FILE` validates it). Unknown keys,\n"
          "duplicate keys and wrong types are errors that name the key's path and line.\n"
          "Strings must be 1 to 4096 characters without control characters. Names of\n"
          "environments, jobs and clients are 1 to 64 letters, digits, `_` or `-`.\n"
          "Relative file paths are resolved against the directory of the config file.\n"
          "A file path may start with `${CREDENTIALS_DIRECTORY}/`, which fogate replaces\n"
          "with that environment variable: systemd sets it for a unit with `LoadCredential=`\n"
          "(`client_secret_file`, `key_file`, `password_file`, `cache_key_file`: see\n"
          "`deploy/systemd/fogate.service` and docs/install.md); a config using it does not\n"
          "load where the variable is unset. No other `${...}` is expanded.\n"
          "Secrets are never written in this file: it names a file or an environment\n"
          "variable that holds them. `conf/fogate.example.json` is a complete example.\n\n"
          "| Key | Type | Required / default | Description |\n"
          "|---|---|---|---|\n",
          out);
    print_rows(out, top_keys, "");
    return ferror(out) ? -1 : 0;
}

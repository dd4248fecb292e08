/* simfault: fault-injection rules and their selection (pure). A rule names an endpoint label
 * ("dequeue", "token", "odata:GetMessageStatus"; families "connector", "odata", "*"), a
 * kind, and how many matching calls it hits. Invariant: each hit consumes one count. */
#ifndef SIMFAULT_H
#define SIMFAULT_H

#include <stddef.h>
#include <time.h>
#include <jansson.h>

enum simfault_kind {
    SF_STATUS,        /* reply `status` (429 gets Retry-After and a §5.1 message) */
    SF_CLOSE,         /* close the connection without a reply */
    SF_AADSTS,        /* token endpoint refuses with an AADSTS error */
    SF_TOO_LARGE,     /* 413 for bodies above `size` */
    SF_SLOW,          /* response body at `rate` bytes per second */
    SF_STALL,         /* headers (and `bytes` body bytes when > 0), then nothing */
    SF_TRUNCATE,      /* close after `bytes` body bytes */
    SF_NULL_LOCATION, /* dequeue answers DownloadLocation: null */
    SF_HANG,          /* the request is handled, but no response head is ever sent */
    SF_STALL_UPLOAD,  /* stop reading the request body after `bytes` bytes */
};

struct simfault_rule {
    char endpoint[96];
    enum simfault_kind kind;
    int status;
    long retry_after;      /* seconds */
    int retry_after_date;  /* 1: Retry-After as an HTTP date (now + retry_after), 0: seconds */
    char error[64];        /* AADSTS error string */
    long code;             /* AADSTS code */
    char message[512];
    long long size;        /* too_large threshold */
    long rate;             /* slow: bytes per second */
    long long bytes;       /* truncate / stall after this many body bytes */
    long remaining;        /* hits left; -1 = unlimited */
    long skip;             /* matching calls to let through first */
};

struct simfault;

struct simfault *simfault_new(void);
void simfault_free(struct simfault *f);
void simfault_clear(struct simfault *f);

/* Adds a rule from JSON {endpoint, kind, count?, after?, status?, retry_after?,
 * retry_after_form? ("seconds" | "date"), limit?, message?, code?, error?, size?, rate?,
 * bytes?}. Returns 0, or -1 with err written. */
int simfault_add(struct simfault *f, const json_t *rule, char *err, size_t errcap);

/* The rules as a JSON array (new reference). */
json_t *simfault_list(const struct simfault *f);

/* The first live rule for `endpoint` whose kind is in `kinds` (a bit mask of
 * 1 << simfault_kind), consuming one hit; copied into *out. Returns 1 hit, 0 none. */
int simfault_match(struct simfault *f, const char *endpoint, unsigned kinds,
                   struct simfault_rule *out);

/* Shorthand: 1 if a rule of kind name ("null_location", ...) hits `endpoint`. */
int simfault_take(struct simfault *f, const char *endpoint, const char *kind);

/* Writes the rule's Retry-After value into buf: whole seconds, or with retry_after_date the
 * IMF-fixdate of now + retry_after ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 §5.6.7).
 * Returns 0, or -1 when it does not fit in cap (32 bytes always do). */
int simfault_retry_after(const struct simfault_rule *r, time_t now, char *buf, size_t cap);

/* The §5.1 service-protection message for a limit name (requests, time, concurrent,
 * resource). Static string. */
const char *simfault_spl_message(const char *limit);

#endif

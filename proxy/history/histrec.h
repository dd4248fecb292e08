/* histrec: the pure side of the file history: Redis key names, the API JSON of a record
 * from its stored fields, the query filter and its matching, the opaque page cursor and
 * RFC 3339 times. Invariant: no I/O, no event loop; every output has a caller cap. */
#ifndef FOGATE_HISTREC_H
#define FOGATE_HISTREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define HISTREC_ID_SIZE 33        /* 32 hex digits, NUL included */
#define HISTREC_KEY_SIZE 384      /* any key built here, NUL included */
#define HISTREC_CURSOR_SIZE 50    /* "c" + 16 hex score + 32 hex id, NUL included */
#define HISTREC_PREFIX "fogate:hist:r:"
#define HISTREC_RECEIPTS "fogate:hist:receipts"   /* receipt queue: "<id>:<status>" by due */
#define HISTREC_TODAY "fogate:hist:t:"     /* per-day final counts: <env>:<YYYY-MM-DD> */
#define HISTREC_JOB_INDEX "fogate:hist:j:" /* per-job index: <job> */

/* The record id of the export of message `msg_id` in environment `env`: the first 128
 * bits of SHA-256("<env>\n<msg_id>") in hex, so every instance names it alike. 0 / -1. */
int histrec_export_id(const char *env, const char *msg_id, char out[HISTREC_ID_SIZE]);

/* "fogate:hist:<kind>:<a>[:<b>]" into out[HISTREC_KEY_SIZE]: kind "r" record (a = id),
 * "e" environment index (a = env), "j" job index (a = job), "m" message map (a = env,
 * b = message id). Returns 0, or -1 when it does not fit. */
int histrec_key(char out[HISTREC_KEY_SIZE], const char *kind, const char *a, const char *b);

/* What GET /v1/history asks for. Strings are "" when not given. */
struct histrec_filter {
    char job[128];
    char status[64];              /* matches the record's status, case-insensitive */
    char file[256];               /* a substring of the record's file name */
    int64_t since_ms, until_ms;   /* received within [since, until]; 0 = open */
    unsigned limit;
    bool has_cursor;
    int64_t cursor_score;         /* continue strictly after (score, id), newest first */
    char cursor_id[HISTREC_ID_SIZE];
};

/* True iff `rec` (an API record, histrec_json) passes the status and file filters. */
bool histrec_match(const struct histrec_filter *f, const json_t *rec);

/* Writes the cursor of (score, id) into out[HISTREC_CURSOR_SIZE]. */
void histrec_cursor_encode(int64_t score, const char *id, char out[HISTREC_CURSOR_SIZE]);

/* Parses a cursor into f->cursor_*; sets f->has_cursor. Returns 0, or -1 if malformed. */
int histrec_cursor_decode(const char *s, struct histrec_filter *f);

/* Parses RFC 3339 UTC ("2026-12-07T11:00:00Z", optional .fff, "Z" or "+00:00") or
 * milliseconds since the epoch (digits only). Returns 0 with *ms, or -1. */
int histrec_time_parse(const char *s, int64_t *ms);

/* Formats `ms` as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (cap >= 25). */
void histrec_time_format(int64_t ms, char *out, size_t cap);

#define HISTREC_SIG_SIZE 96       /* "t=<seconds>,v1=<64 hex>", NUL included */

/* The receipt signature header value for `body` (`len` bytes) at unix time `t`:
 * "t=<t>,v1=<hex HMAC-SHA256(key, "<t>." || body)>". Returns 0, or -1. */
int histrec_sign(const unsigned char *key, size_t keylen, long long t, const char *body,
                 size_t len, char out[HISTREC_SIG_SIZE]);

/* The API JSON of a record from its stored fields (`n` names and values, HGETALL order;
 * vals[i] is vlen[i] bytes). Returns a new object (the caller owns it), or NULL when the
 * fields are empty (an expired record) or memory ran out. */
json_t *histrec_json(size_t n, const char *const *names, const char *const *vals,
                     const size_t *vlen);

#endif

/* ledgerkey: the identity of a D365 export message, read from a raw dequeue (or consumer
 * ack) body, so the ack ledger can recognise a redelivery. Pure: no I/O, no allocation
 * that outlives a call. Invariant: the body is only read, never re-serialised; the same
 * message gives the same id whether or not D365 changed its CorrelationId.
 *
 * Identity: the blob GUID of DownloadLocation (`...?correlation-id=..&blob=<guid>`), which
 * stays the same on every redelivery, canonicalised (lower case, no braces, %7B/%7D
 * accepted) and scoped by environment name + canonical activity id:
 *     "<env>:<activity>:blob:<blob guid>"
 * Only when DownloadLocation is null, missing or holds no blob GUID does the id fall back
 * to the CorrelationId: "<env>:<activity>:corr:<correlation guid>". The ledger then looks
 * the CorrelationId up in its alias table (filled from every dequeue that had a blob id),
 * so a null-location redelivery that kept its CorrelationId still finds its message. */
#ifndef FOGATE_LEDGERKEY_H
#define FOGATE_LEDGERKEY_H

#include <stddef.h>

#include "guid.h"

#define LEDGERKEY_BODY_MAX 16384 /* larger bodies are refused (a real one is ~600 bytes) */
#define LEDGERKEY_POP_MAX 512    /* longest PopReceipt kept (base64, ~28 bytes real) */
#define LEDGERKEY_ENV_MAX 64     /* environment names: 1..64 of [A-Za-z0-9_-], as conf */
/* "<env>:<activity>" plus ":blob:" or ":corr:" plus a GUID, plus the NUL. */
#define LEDGERKEY_SCOPE_SIZE (LEDGERKEY_ENV_MAX + 1 + GUID_CANON_SIZE)
#define LEDGERKEY_ID_SIZE (LEDGERKEY_SCOPE_SIZE - 1 + 6 + GUID_CANON_SIZE)

enum ledgerkey_kind {
    LEDGERKEY_BLOB, /* keyed by the blob GUID: survives a new CorrelationId */
    LEDGERKEY_CORR, /* fallback: keyed by the CorrelationId (no blob GUID in the body) */
};

enum ledgerkey_err {
    LEDGERKEY_OK,
    LEDGERKEY_BAD_ARGS,        /* NULL body/out, bad env name or activity id */
    LEDGERKEY_TOO_BIG,         /* more than LEDGERKEY_BODY_MAX bytes */
    LEDGERKEY_NOT_JSON,        /* not one JSON object, or a field name twice (any case) */
    LEDGERKEY_BAD_CORRELATION, /* CorrelationId missing, not a string, or not a GUID */
    LEDGERKEY_BAD_POP,         /* PopReceipt not a string/null, longer than the max, or
                                  holding control characters */
};

struct ledgerkey {
    enum ledgerkey_kind kind;
    char id[LEDGERKEY_ID_SIZE];             /* the ledger id (see top of file) */
    char scope[LEDGERKEY_SCOPE_SIZE];       /* "<env>:<activity>" */
    char correlation[GUID_CANON_SIZE];      /* canonical CorrelationId */
    char blob[GUID_CANON_SIZE];             /* canonical blob GUID; "" when kind == CORR */
    char pop_receipt[LEDGERKEY_POP_MAX + 1]; /* as sent (JSON-unescaped); "" if absent/null */
};

/* Parses `len` bytes of `body` (borrowed) sent for environment `env` (a conf entry name)
 * and activity `activity` (any GUID spelling) into *out. Field names are matched without
 * regard to case (D365 sends CorrelationId, PopReceipt, DownloadLocation, ...; consumers
 * may re-serialise); other fields are ignored. Returns LEDGERKEY_OK, or the reason the
 * body cannot be keyed (*out is then zeroed). Never logs. */
enum ledgerkey_err ledgerkey_parse(const char *body, size_t len, const char *env,
                                   const char *activity, struct ledgerkey *out);

/* The blob GUID in a DownloadLocation URL: the value of its query parameter "blob" (name
 * matched without case), canonicalised into out. Scheme, host, port and path do not
 * matter (http://host:80, https, fogate's public URL). Returns 0, or -1 when there is no
 * query, no blob parameter, two different ones, or the value is not a GUID. */
int ledgerkey_blob_from_url(const char *url, size_t len, char out[GUID_CANON_SIZE]);

/* Checks that `id` is a well-formed ledger id. Returns its kind, or -1. When it is a CORR
 * id and alias is not NULL, writes "<env>:<activity>:<correlation guid>" (the alias-table
 * suffix) into alias (LEDGERKEY_ID_SIZE bytes). */
int ledgerkey_id_check(const char *id, char *alias);

/* A short stable name for err ("ok", "too_big", ...). */
const char *ledgerkey_err_str(enum ledgerkey_err err);

#endif

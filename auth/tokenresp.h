/* tokenresp: turn an Entra ID token endpoint response (HTTP status + body) into a token or
 * a classified error. Pure: no I/O, no clock (the caller passes `now`).
 * Invariant: the access token is only ever held in tokenresp.access_token, which
 * tokenresp_cleanup wipes; nothing else in the struct can contain it. */
#ifndef FOGATE_TOKENRESP_H
#define FOGATE_TOKENRESP_H

#include <stddef.h>
#include <stdint.h>

#define TOKENRESP_BODY_MAX (64 * 1024)   /* larger bodies are not parsed */
#define TOKENRESP_TOKEN_MAX (16 * 1024)  /* longer access tokens are MALFORMED */
#define TOKENRESP_LIFETIME_MAX 86400     /* a lifetime above 24 h is absurd */
#define TOKENRESP_LIFETIME_DEFAULT 60    /* used when no sane lifetime is given */
#define TOKENRESP_ERROR_MAX 63           /* caps of the copied error fields (bytes) */
#define TOKENRESP_DESC_MAX 512
#define TOKENRESP_ID_MAX 40

enum tokenresp_class {
    TOKENRESP_OK,               /* a usable token */
    TOKENRESP_WRONG_SECRET,     /* AADSTS7000215 (bad secret), 700027 (bad assertion) */
    TOKENRESP_EXPIRED_SECRET,   /* AADSTS7000222 */
    TOKENRESP_UNKNOWN_APP,      /* AADSTS700016 */
    TOKENRESP_UNKNOWN_TENANT,   /* AADSTS90002, 900023 */
    TOKENRESP_INVALID_SCOPE,    /* AADSTS70011 */
    TOKENRESP_INVALID_RESOURCE, /* AADSTS500011 */
    TOKENRESP_CONSENT,          /* AADSTS65001: no consent, or the audience's case or
                                   trailing slash is wrong (d365 spec §2.4) */
    TOKENRESP_THROTTLED,        /* HTTP 429 */
    TOKENRESP_UNAVAILABLE,      /* HTTP 5xx */
    TOKENRESP_MALFORMED,        /* not a token response nor an Entra error */
    TOKENRESP_ASSERTION_TIME,   /* AADSTS700024: the federated assertion is not within its
                                   valid time range (expired, or a clock is wrong) */
    TOKENRESP_NO_FEDERATION,    /* AADSTS70021, 700211-700213: no federated identity
                                   credential on the app matches iss/sub/aud */
    TOKENRESP_NO_IDENTITY,      /* managed identity: "Identity not found" (the identity is
                                   not assigned to this VM / app) */
    TOKENRESP_OTHER             /* a well-formed Entra error not listed above (last) */
};

/* The parse result. Embedded by the caller; every field is set by tokenresp_parse. */
struct tokenresp {
    enum tokenresp_class cls;
    int http_status;
    /* TOKENRESP_OK only: */
    char *access_token;  /* owned, NUL-terminated; never log it. NULL unless OK */
    size_t access_token_len;
    int64_t expires_at;  /* absolute unix seconds = now + lifetime */
    int64_t lifetime;    /* seconds, 1..TOKENRESP_LIFETIME_MAX */
    int lifetime_defaulted; /* 1 if no sane expires_in/expires_on: lifetime is DEFAULT */
    /* Errors (may also be set on 429/5xx): empty strings / 0 when absent. Printable
     * ASCII only; control and non-ASCII bytes become spaces; longer values cut. */
    long aadsts;         /* first AADSTS code: error_codes[0], else from the description */
    char error[TOKENRESP_ERROR_MAX + 1];      /* the "error" string, e.g. invalid_client */
    char description[TOKENRESP_DESC_MAX + 1]; /* error_description */
    char trace_id[TOKENRESP_ID_MAX + 1];
    char correlation_id[TOKENRESP_ID_MAX + 1];
};

/* Parses `len` bytes of `body` (borrowed; it holds the token, so the caller should wipe
 * it afterwards) received with `http_status`, at unix time `now`.
 * Success needs a 2xx status, a JSON object, an access_token of RFC 6750 b64token
 * characters no longer than TOKENRESP_TOKEN_MAX and token_type absent or "Bearer".
 * Lifetime: the first sane one of expires_in (relative to now) and expires_on (absolute);
 * numbers may be JSON integers (v2) or decimal strings (v1). Otherwise
 * TOKENRESP_LIFETIME_DEFAULT. Classification, first rule that applies:
 *   429 -> THROTTLED; 5xx -> UNAVAILABLE; 2xx with a valid token -> OK;
 *   known AADSTS code -> its class; 2xx -> MALFORMED; JSON with an "error" string ->
 *   OTHER; else MALFORMED.
 * Returns r->cls. Call tokenresp_cleanup(r) afterwards whatever the result. */
enum tokenresp_class tokenresp_parse(struct tokenresp *r, const char *body, size_t len,
                                     int http_status, int64_t now);

/* Moves the access token out: returns it (the caller owns it and must wipe it before
 * free(), e.g. with OPENSSL_clear_free) and leaves r->access_token NULL. */
char *tokenresp_take_token(struct tokenresp *r);

/* Wipes and frees the token if still held, and zeroes *r. Safe to call twice. */
void tokenresp_cleanup(struct tokenresp *r);

/* Refines the class of a managed identity endpoint's answer (IMDS or App Service), whose
 * errors are not Entra's: 404 and 410 (IMDS is updating) -> UNAVAILABLE; an
 * "Identity not found" description -> NO_IDENTITY. Returns the new r->cls. */
enum tokenresp_class tokenresp_mi_class(struct tokenresp *r);

/* A stable lower-case name for a class ("wrong_secret"), for logs and metrics. */
const char *tokenresp_class_name(enum tokenresp_class cls);

/* 1 if retrying later may help (THROTTLED, UNAVAILABLE, MALFORMED, OTHER: Entra has
 * transient errors of its own; ASSERTION_TIME: the kubelet writes a fresh assertion),
 * 0 if the configuration must change first (credential, app, tenant, scope, resource,
 * consent, federation, identity), and 0 for OK. */
int tokenresp_retryable(enum tokenresp_class cls);

#endif

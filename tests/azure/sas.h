/* sas: Azure Blob Storage shared access signatures (a service SAS for one blob, an account
 * SAS for container management) and the percent-encoding they need. Pure: no I/O, no clock
 * (callers pass the times), no global state, so it is safe from any thread.
 * Invariant: every output is NUL-terminated and fits its cap, or the call returns -1. */
#ifndef FOGATE_SAS_H
#define FOGATE_SAS_H

#include <stddef.h>
#include <time.h>

/* The signed version (sv) of every SAS made here. D365 emits sv=2014-02-14, but Azurite
 * signs versions older than 2018-11-09 with the 2015-04-05 layout (extra sip/spr lines),
 * which real Azure does not use for 2014-02-14. 2018-11-09 is the oldest version whose
 * string-to-sign is the same in Azurite and in Azure, so a URL made here is also a URL
 * Azure itself would accept. The query looks like D365's otherwise: sv, sr, sig, st, se, sp. */
#define SAS_VERSION "2018-11-09"

/* Worst-case sizes, for callers sizing buffers. */
#define SAS_TIME_LEN 21  /* "2020-06-05T07:21:33Z" + NUL */
#define SAS_SIG_LEN  45  /* base64 of a 32-byte HMAC-SHA256 + NUL */
#define SAS_URL_MAX  2048

/* A storage account. All strings are borrowed; the struct is usually on the caller's stack. */
struct sas_account {
    const char *endpoint; /* borrowed: blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1
                           * (no trailing slash; path-style as Azurite uses it) */
    const char *name;     /* borrowed: account name, e.g. devstoreaccount1 */
    const char *key_b64;  /* borrowed: account key, base64 (secret: never log it) */
};

/* The well-known Azurite development account (public, documented by Microsoft). */
#define SAS_DEV_ACCOUNT "devstoreaccount1"
#define SAS_DEV_KEY                                                                  \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBe" \
    "ksoGMGw=="

/* Writes the full SAS URL of one blob into out:
 *   <endpoint>/<container>/<blob, percent-encoded, '/' kept>?sv=..&sr=b&sig=..&st=..&se=..&sp=..
 * perms is the signed permission string in Azure's canonical order, e.g. "r", "w", "rw",
 * "racwd". container follows Azure's rule (3-63 of a-z 0-9 '-'); blob is 1-1024 bytes without
 * control characters. start 0 omits st; expiry must be after start. Returns 0, or -1 if an
 * argument is invalid, the key is not base64, or out (cap bytes) is too small. */
int sas_blob_url(char *out, size_t cap, const struct sas_account *acct, const char *container,
                 const char *blob, const char *perms, time_t start, time_t expiry);

/* Like sas_blob_url but writes only the query string, without the leading '?'. */
int sas_blob_query(char *out, size_t cap, const struct sas_account *acct,
                   const char *container, const char *blob, const char *perms, time_t start,
                   time_t expiry);

/* Writes the query string (no '?') of an account SAS for the blob service (ss=b).
 * resource_types is srt ("s", "c", "o" or a mix, e.g. "sc"); perms is sp (e.g. "rwdlac").
 * Used to create containers, which a blob service SAS cannot do. Returns 0 or -1. */
int sas_account_query(char *out, size_t cap, const struct sas_account *acct,
                      const char *resource_types, const char *perms, time_t start,
                      time_t expiry);

/* Writes the string-to-sign of a blob service SAS (version SAS_VERSION, sr=b) into out.
 * Exposed for tests and debugging; it contains no secret. Returns 0 or -1. */
int sas_blob_string_to_sign(char *out, size_t cap, const char *account, const char *container,
                            const char *blob, const char *perms, time_t start, time_t expiry);

/* Writes base64(HMAC-SHA256(base64-decoded key_b64, msg)) into out (cap >= SAS_SIG_LEN).
 * Returns 0, or -1 if the key is not valid base64 or out is too small. */
int sas_sign(char *out, size_t cap, const char *key_b64, const char *msg);

/* Percent-encodes in into out: RFC 3986 unreserved bytes (A-Z a-z 0-9 - . _ ~) stay, and
 * '/' stays too when keep_slash is non-zero (for URL paths); every other byte becomes %XX
 * with upper-case hex. Returns 0 or -1 if out is too small. */
int sas_url_encode(char *out, size_t cap, const char *in, int keep_slash);

/* Formats t as UTC "YYYY-MM-DDThh:mm:ssZ" into out (cap >= SAS_TIME_LEN). Returns 0 or -1. */
int sas_format_time(char *out, size_t cap, time_t t);

#endif

/* dlrewrite: rewrites DownloadLocation in a dequeue response body so that the download
 * goes through fogate: "http://host:80/api/connector/download/X?q" becomes
 * "<public_base_url>/api/connector/download/X?q" (path and query byte for byte).
 * Invariant: every byte outside the DownloadLocation string value is kept as it was
 * (field order, casing such as IsDownLoadFileExist, whitespace). Pure, no I/O. */
#ifndef FOGATE_DLREWRITE_H
#define FOGATE_DLREWRITE_H

#include <stddef.h>

#define DLREWRITE_MAX_DEPTH 32   /* nesting deeper than this is refused as malformed */

enum dlrewrite_result {
    DLREWRITE_REWRITTEN,  /* *out holds the new body */
    DLREWRITE_UNCHANGED,  /* no DownloadLocation, null, not a string, or not a D365 download
                             URL (e.g. a blob SAS URL): pass the body through as it is */
    DLREWRITE_MALFORMED,  /* not a JSON object; pass through as it is */
    DLREWRITE_NOMEM,
};

/* Rewrites `len` bytes of `body` (borrowed) with `public_base` (NUL-terminated, no
 * trailing slash). On DLREWRITE_REWRITTEN stores a malloc'd buffer (NUL-terminated, the
 * caller frees) in *out and its length in *out_len; otherwise *out is NULL. */
enum dlrewrite_result dlrewrite(const char *body, size_t len, const char *public_base,
                                char **out, size_t *out_len);

#endif

/* upreq: checks an outbound request's method and header lines, builds the exact header
 * list libcurl will send, and sets the options every transfer gets (https only, TLS
 * verified, no redirects, no proxy from the environment, HTTP/1.1, timeouts): once per
 * easy handle for those of the client, per transfer for URL, method and timeouts.
 * Invariant: nothing the caller did not give is sent except Host/Content-Length/
 * Transfer-Encoding, which libcurl manages; no line can inject CR/LF. No I/O. */
#ifndef FOGATE_UPREQ_H
#define FOGATE_UPREQ_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include <curl/curl.h>

#include "upstream.h"

/* True iff `method` is a non-empty HTTP token of at most 32 bytes. */
bool upreq_method_ok(const char *method);

/* Length of the field name of "Name: value" (a token before ':'), 0 when the line is not
 * one. Shared with h1out, which writes the own client's request heads. */
size_t upreq_name_len(const char *line);

/* True when the first `n` bytes of `line` are `name`, ASCII case-insensitive. */
bool upreq_named(const char *line, size_t n, const char *name);

/* True for the lines the client writes itself and drops from the caller's: Content-Length,
 * Transfer-Encoding (both from body_len) and Expect (100-continue is never used). `n` is
 * upreq_name_len(line). */
bool upreq_framing(const char *line, size_t n);

/* A request's limit: its own (`req`), else the client's default; UPSTREAM_NO_LIMIT = none
 * (0). */
unsigned upreq_limit(unsigned req, unsigned dflt);

/* Builds the list for CURLOPT_HTTPHEADER from `n` lines "Name: value" (borrowed):
 * Content-Length, Transfer-Encoding and Expect lines are dropped; an empty value is sent
 * as such ("Name;" in libcurl's notation); "Expect:" is appended so libcurl never waits
 * for 100-continue, and "Accept:" unless the caller gave an Accept line, so libcurl adds
 * no Accept of its own. Returns 0 and the new list in *out, nodes and strings in one
 * allocation (caller frees it with free(), not curl_slist_free_all), or -1 when a line is
 * malformed (no token name, no colon, CR or LF inside) or memory ran out, with *out NULL. */
int upreq_headers(const char *const *lines, size_t n, struct curl_slist **out);

/* Sets the method options on `e` (borrowed): GET, HEAD (no body expected) or another
 * method without a body when body_len is UPSTREAM_BODY_NONE; otherwise an upload of
 * body_len bytes (or chunked for UPSTREAM_BODY_CHUNKED) with that method. Every method
 * option is set, so a handle reused from another transfer keeps none of its method. The
 * read callback is the caller's to set. Returns libcurl's first error. */
CURLcode upreq_method(CURL *e, const char *method, int64_t body_len);

/* Sets what every transfer of one client gets, once per easy handle: protocols (https,
 * plus http if o->allow_http), redirects off, proxy (o->proxy or none, never the
 * environment's), TLS verification with o->ca_file, HTTP/1.1, TCP keep-alive, the receive
 * buffer, the path sent as given. `o` must have its defaults filled. Returns libcurl's
 * first error. */
CURLcode upreq_transport(CURL *e, const struct upstream_opts *o);

/* Sets one transfer's URL and timeouts (req's, else o's). Returns libcurl's first error. */
CURLcode upreq_target(CURL *e, const struct upstream_opts *o, const struct upstream_req *req);

#endif

/* tokenform: the x-www-form-urlencoded body of a client-credentials token request, and
 * the canonical D365 resource (audience) for an environment URL.
 * Invariant: a body holds the client secret or assertion; release it with tokenform_free,
 * which wipes it. */
#ifndef FOGATE_TOKENFORM_H
#define FOGATE_TOKENFORM_H

#include <stddef.h>

#define TOKENFORM_ID_MAX 256             /* client_id */
#define TOKENFORM_RESOURCE_MAX 512       /* resource / base URL */
#define TOKENFORM_SECRET_MAX 1024        /* client_secret */
#define TOKENFORM_ASSERTION_MAX 16384    /* client_assertion (a JWT) */

enum tokenform_endpoint {
    TOKENFORM_V1, /* /{tenant}/oauth2/token:      resource=<resource> */
    TOKENFORM_V2  /* /{tenant}/oauth2/v2.0/token: scope=<resource>/.default */
};

/* What to ask for. All pointers borrowed. Exactly one of client_secret and
 * client_assertion is non-NULL. */
struct tokenform_req {
    enum tokenform_endpoint endpoint;
    const char *client_id;        /* application (client) id */
    const char *resource;         /* canonical resource, see tokenform_resource */
    const char *client_secret;    /* secret credential, or NULL */
    const char *client_assertion; /* signed JWT (see assertion.h), or NULL */
};

/* Builds the request body, every value percent-encoded (RFC 3986 unreserved characters
 * kept, everything else %XX). Field order follows what real clients send (d365 spec
 * §2.2, §2.3):
 *   v1: grant_type=client_credentials&client_id=..&<credential>&resource=..
 *   v2: client_id=..&scope=<resource>%2F.default&<credential>&grant_type=client_credentials
 * where <credential> is client_secret=.. or
 *   client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer
 *   &client_assertion=..
 * Returns a NUL-terminated body owned by the caller (release with tokenform_free) and
 * its length in *len (if len is not NULL); NULL if a field is missing, empty, over its
 * cap, both or neither credential is given, or out of memory. */
char *tokenform_build(const struct tokenform_req *req, size_t *len);

/* Builds a managed identity token URL (no secret in it): `endpoint` (IMDS or
 * IDENTITY_ENDPOINT; '&' is used if it has a query already) followed by
 * api-version=..&resource=..[&client_id=..], values percent-encoded as in a form.
 * client_id NULL = the system-assigned identity. Returns a NUL-terminated URL the caller
 * owns (free()), or NULL if a value is missing, over its cap, the endpoint has control
 * bytes, spaces or a fragment, or out of memory. */
char *tokenform_mi_url(const char *endpoint, const char *api_version, const char *resource,
                       const char *client_id);

/* Wipes the body (up to its NUL) and frees it. NULL is a no-op. */
void tokenform_free(char *body);

/* Writes the canonical resource for an environment base URL into out (outsz bytes):
 * "http(s)://host[:port]" lower-cased, path, trailing slashes and the scheme's default
 * port removed (D365 accepts only that audience form, d365 spec §2.6), e.g.
 * "https://Contoso.operations.dynamics.com/" -> "https://contoso.operations.dynamics.com".
 * Returns 0, or -1 if the URL is not http(s), has no host, has user info, a query, a
 * fragment, whitespace or control bytes, an invalid port, or does not fit. */
int tokenform_resource(const char *base_url, char *out, size_t outsz);

#endif

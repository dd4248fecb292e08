/* adminauth: who may use the admin listener: loopback peers as they are, anyone else
 * with the bearer token of admin.token_file. Pure (no I/O) but for adminauth_load.
 * Invariant: the comparison takes the same time whichever bytes of the token matched, and
 * the token itself is kept only as its SHA-256 digest. */
#ifndef FOGATE_ADMINAUTH_H
#define FOGATE_ADMINAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "apikey.h"

enum adminauth_verdict {
    ADMINAUTH_OK,
    ADMINAUTH_MISSING,    /* not loopback, no Authorization: 401 */
    ADMINAUTH_WRONG,      /* not loopback, a token that does not match (or none configured): 403 */
};

/* The admin token's digest; `set` is false when no token file is configured. */
struct adminauth_token {
    bool set;
    unsigned char digest[APIKEY_DIGEST_LEN];
};

/* Reads the token file at `path` (NULL: no token; *tok is cleared) the way other secrets
 * are read (bounded, private mode), keeps its first line's SHA-256 and wipes the text.
 * Returns 0, or -1 with a reason (naming the path, never the contents) in err. */
int adminauth_load(const char *path, struct adminauth_token *tok, char *err, size_t errlen);

/* True for a peer address string ("ip:port") on the loopback interface. Pure. */
bool adminauth_loopback(const char *client);

/* The verdict for a peer `client` ("ip:port") that sent `authorization` (`len` bytes of
 * the Authorization header value, borrowed; NULL when absent). Pure. */
enum adminauth_verdict adminauth_check(const struct adminauth_token *tok, const char *client,
                                       const char *authorization, size_t len);

/* For a state-changing action, from any peer (loopback too): ADMINAUTH_OK when
 * `authorization` carries the configured token, MISSING without the header, WRONG when it
 * does not match or no token is configured. On OK, `fp` (13 bytes) gets the token's
 * fingerprint: the first 12 hex digits of its SHA-256 (safe to log). Pure. */
enum adminauth_verdict adminauth_action(const struct adminauth_token *tok,
                                        const char *authorization, size_t len, char fp[13]);

#endif

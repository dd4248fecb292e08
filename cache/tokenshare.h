/* tokenshare: the cluster-wide token cache in Redis, on an rconn: a sealed blob per
 * environment (opaque here: the token manager seals and opens it) and a lock with an
 * owner token and a lease, so one instance fetches and the others read.
 * Invariant: this module never sees a plaintext token or secret; key names are built from
 * the caller's name (no secret) and each operation's callback runs exactly once.
 *
 * Keys: <prefix>token:<name> (the blob, with a TTL) and <prefix>token-lock:<name>.
 * The functions take `void *ctx` (a struct tokenshare *) so that proxy/ can put them
 * straight into auth's struct token_share_ops; the TOKENSHARE_* results equal
 * TOKEN_SHARE_* there. */
#ifndef FOGATE_TOKENSHARE_H
#define FOGATE_TOKENSHARE_H

#include <stddef.h>

struct rconn;
struct tokenshare;

#define TOKENSHARE_OK 0    /* get: found; lock: acquired; put: stored; unlock: released */
#define TOKENSHARE_MISS 1  /* get: no value; lock: held by another; unlock: not ours */
#define TOKENSHARE_ERROR 2 /* Redis unavailable, timed out, refused, or freed meanwhile */

#define TOKENSHARE_NAME_MAX 200    /* names: 1..200 bytes of [A-Za-z0-9_.:-] */
#define TOKENSHARE_OWNER_MAX 128   /* owner tokens: 1..128 bytes of the same set */
#define TOKENSHARE_BLOB_MAX 65536  /* larger blobs are refused, and ignored when read */

/* `val` (get: the blob) is borrowed for the duration of the call; NULL otherwise. */
typedef void tokenshare_done(void *arg, int result, const char *val, size_t len);

/* Creates the store on `conn` (borrowed; must outlive every pending operation, and
 * rconn_free completes them with TOKENSHARE_ERROR). `prefix` (copied; NULL = "fogate:")
 * starts every key. timeout_ms <= 0 uses the connection's command timeout.
 * Returns NULL on bad arguments or out of memory. */
struct tokenshare *tokenshare_new(struct rconn *conn, const char *prefix, int timeout_ms);

/* Frees the store. Pending operations still complete (their callbacks do not touch the
 * store). NULL is a no-op. */
void tokenshare_free(struct tokenshare *ts);

/* Every operation below returns 0 (done will be called exactly once, later) or -1 (bad
 * arguments, out of memory, connection being freed; done is never called). */

/* GET the blob published under `name`. */
int tokenshare_get(void *ts, const char *name, tokenshare_done *done, void *arg);

/* Takes the lock of `name` for `owner` (a random token of the caller) for lease_ms
 * (SET NX PX): OK if acquired, MISS if someone holds it. */
int tokenshare_lock(void *ts, const char *name, const char *owner, unsigned lease_ms,
                    tokenshare_done *done, void *arg);

/* Stores `len` bytes of `blob` (a sealed token; borrowed for the call) under `name` with a
 * TTL of ttl_ms (>= 1), replacing any previous one. */
int tokenshare_put(void *ts, const char *name, const char *blob, size_t len, unsigned ttl_ms,
                   tokenshare_done *done, void *arg);

/* Releases the lock of `name` if `owner` still holds it (compare-and-delete in one Lua
 * script): OK if released, MISS if it had expired or another owner holds it. */
int tokenshare_unlock(void *ts, const char *name, const char *owner, tokenshare_done *done,
                      void *arg);

/* The compare-and-delete script (static storage), for tests: its sha1 is hard-coded. */
struct rconn_script;
const struct rconn_script *tokenshare_unlock_script(void);

#endif

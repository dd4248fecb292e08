/* tokenshare: sealed-token blobs and fetch locks in Redis (see tokenshare.h).
 * Invariant: an operation's state lives in its own struct op, never in the store, so a
 * callback that arrives after tokenshare_free touches nothing freed. */
#include "tokenshare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rconn.h"

#define PREFIX_MAX 64
#define KEY_MAX (PREFIX_MAX + 16 + TOKENSHARE_NAME_MAX)

/* Compare-and-delete. The SHA1 is of the body exactly; test_tokenshare checks it against
 * rconn_script_init, so the two cannot drift apart. Constant: outlives any pending eval. */
#define UNLOCK_BODY \
    "if redis.call(\"GET\", KEYS[1]) == ARGV[1] then return redis.call(\"DEL\", KEYS[1]) end return 0"
static const struct rconn_script unlock_script = {
    UNLOCK_BODY, "bb69021340f0876bd55888dfc77dd19b7caf5a78"
};

struct tokenshare {
    struct rconn *conn; /* borrowed */
    char prefix[PREFIX_MAX + 1];
    int timeout_ms;
};

enum op_kind { OP_GET, OP_LOCK, OP_PUT, OP_UNLOCK };

/* One pending command: what to call back and how to read the reply. */
struct op {
    enum op_kind kind;
    tokenshare_done *done;
    void *arg; /* borrowed: the caller's */
};

static int valid_word(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.' || c == ':';
        if (!ok)
            return 0;
    }
    return 1;
}

struct tokenshare *tokenshare_new(struct rconn *conn, const char *prefix, int timeout_ms)
{
    struct tokenshare *ts;

    if (!prefix)
        prefix = "fogate:";
    if (!conn || strlen(prefix) > PREFIX_MAX || (prefix[0] && !valid_word(prefix, PREFIX_MAX)))
        return NULL;
    ts = calloc(1, sizeof(*ts));
    if (!ts)
        return NULL;
    ts->conn = conn;
    snprintf(ts->prefix, sizeof(ts->prefix), "%s", prefix);
    ts->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    return ts;
}

void tokenshare_free(struct tokenshare *ts)
{
    free(ts);
}

/* Writes <prefix><what>:<name>. Returns 0, or -1 if the name is not acceptable. */
static int make_key(const struct tokenshare *ts, const char *what, const char *name,
                    char key[KEY_MAX])
{
    if (!valid_word(name, TOKENSHARE_NAME_MAX))
        return -1;
    int n = snprintf(key, KEY_MAX, "%s%s:%s", ts->prefix, what, name);
    return n > 0 && n < KEY_MAX ? 0 : -1;
}

/* Maps a reply to a result, per operation. Anything unexpected is an error. */
static int classify(const struct op *o, const redictReply *r)
{
    if (!r || r->type == REDICT_REPLY_ERROR)
        return TOKENSHARE_ERROR;
    switch (o->kind) {
    case OP_GET:
        if (r->type == REDICT_REPLY_NIL)
            return TOKENSHARE_MISS;
        if (r->type == REDICT_REPLY_STRING && r->len > 0 && r->len <= TOKENSHARE_BLOB_MAX)
            return TOKENSHARE_OK;
        return r->type == REDICT_REPLY_STRING ? TOKENSHARE_MISS : TOKENSHARE_ERROR;
    case OP_LOCK:
    case OP_PUT:
        if (o->kind == OP_LOCK && r->type == REDICT_REPLY_NIL)
            return TOKENSHARE_MISS; /* NX: someone holds the lock */
        return r->type == REDICT_REPLY_STATUS && strcmp(r->str, "OK") == 0 ? TOKENSHARE_OK
                                                                          : TOKENSHARE_ERROR;
    case OP_UNLOCK:
        if (r->type != REDICT_REPLY_INTEGER)
            return TOKENSHARE_ERROR;
        return r->integer == 1 ? TOKENSHARE_OK : TOKENSHARE_MISS;
    }
    return TOKENSHARE_ERROR;
}

static void on_reply(void *arg, enum rconn_result res, const redictReply *r)
{
    struct op *o = arg;
    int result = res == RCONN_OK ? classify(o, r) : TOKENSHARE_ERROR;

    if (result == TOKENSHARE_OK && o->kind == OP_GET)
        o->done(o->arg, result, r->str, r->len);
    else
        o->done(o->arg, result, NULL, 0);
    free(o);
}

static struct op *op_new(enum op_kind kind, tokenshare_done *done, void *arg)
{
    struct op *o = done ? calloc(1, sizeof(*o)) : NULL;

    if (o)
        *o = (struct op){ .kind = kind, .done = done, .arg = arg };
    return o;
}

/* Sends argv for a new op; returns 0 or -1 (op freed, done not called). */
static int send_op(struct tokenshare *ts, enum op_kind kind, tokenshare_done *done, void *arg,
                   int argc, const char **argv, const size_t *argvlen)
{
    struct op *o = op_new(kind, done, arg);
    int rc;

    if (!o)
        return -1;
    if (kind == OP_UNLOCK)
        rc = rconn_evalv(ts->conn, &unlock_script, on_reply, o, ts->timeout_ms, 1, argc, argv,
                         argvlen);
    else
        rc = rconn_command_argv(ts->conn, on_reply, o, ts->timeout_ms, argc, argv, argvlen);
    if (rc != 0)
        free(o);
    return rc;
}

int tokenshare_get(void *ctx, const char *name, tokenshare_done *done, void *arg)
{
    struct tokenshare *ts = ctx;
    char key[KEY_MAX];

    if (!ts || make_key(ts, "token", name, key) != 0)
        return -1;
    const char *argv[] = { "GET", key };
    return send_op(ts, OP_GET, done, arg, 2, argv, NULL);
}

int tokenshare_lock(void *ctx, const char *name, const char *owner, unsigned lease_ms,
                    tokenshare_done *done, void *arg)
{
    struct tokenshare *ts = ctx;
    char key[KEY_MAX], px[24];

    if (!ts || lease_ms == 0 || !valid_word(owner, TOKENSHARE_OWNER_MAX) ||
        make_key(ts, "token-lock", name, key) != 0)
        return -1;
    snprintf(px, sizeof(px), "%u", lease_ms);
    const char *argv[] = { "SET", key, owner, "NX", "PX", px };
    return send_op(ts, OP_LOCK, done, arg, 6, argv, NULL);
}

int tokenshare_put(void *ctx, const char *name, const char *blob, size_t len, unsigned ttl_ms,
                   tokenshare_done *done, void *arg)
{
    struct tokenshare *ts = ctx;
    char key[KEY_MAX], px[24];

    if (!ts || !blob || len == 0 || len > TOKENSHARE_BLOB_MAX || ttl_ms == 0 ||
        make_key(ts, "token", name, key) != 0)
        return -1;
    snprintf(px, sizeof(px), "%u", ttl_ms);
    const char *argv[] = { "SET", key, blob, "PX", px };
    const size_t argvlen[] = { 3, strlen(key), len, 2, strlen(px) };
    return send_op(ts, OP_PUT, done, arg, 5, argv, argvlen);
}

int tokenshare_unlock(void *ctx, const char *name, const char *owner, tokenshare_done *done,
                      void *arg)
{
    struct tokenshare *ts = ctx;
    char key[KEY_MAX];

    if (!ts || !valid_word(owner, TOKENSHARE_OWNER_MAX) ||
        make_key(ts, "token-lock", name, key) != 0)
        return -1;
    const char *argv[] = { key, owner };
    return send_op(ts, OP_UNLOCK, done, arg, 2, argv, NULL);
}

const struct rconn_script *tokenshare_unlock_script(void)
{
    return &unlock_script;
}

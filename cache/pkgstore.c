/* pkgstore: compare-first leases in Redis for package imports (see pkgstore.h). */
#include "pkgstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rconn.h"

/* The SHA1 of each body exactly; test_pkgstore checks them with rconn_script_init. */
static const struct rconn_script scripts[] = {
    { "local v = redis.call(\"GET\", KEYS[1]) if v then return v end "
      "redis.call(\"SET\", KEYS[1], ARGV[1], \"PX\", ARGV[2]) return false",
      "1fb93c724631c856ccc0ca2c4e47e06f59973f27" },
    { "if redis.call(\"GET\", KEYS[1]) == ARGV[1] then "
      "return redis.call(\"PEXPIRE\", KEYS[1], ARGV[2]) end return 0",
      "6d27bc457c9df84bca8d716661c4a679a1c7ae35" },
    { "if redis.call(\"GET\", KEYS[1]) == ARGV[1] then "
      "redis.call(\"SET\", KEYS[1], ARGV[2], \"PX\", ARGV[3]) return 1 end return 0",
      "3dedf392a392f1be87cba815b97291f0d686f85e" },
    { "if redis.call(\"GET\", KEYS[1]) == ARGV[1] then "
      "return redis.call(\"DEL\", KEYS[1]) end return 0",
      "bb69021340f0876bd55888dfc77dd19b7caf5a78" },
};

enum op_kind { OP_TAKE, OP_RENEW, OP_SWAP, OP_RELEASE };

struct pkgstore {
    struct rconn *conn; /* borrowed */
    int timeout_ms;
};

struct op {
    enum op_kind kind;
    pkgstore_done *done; /* may be NULL */
    void *arg;           /* borrowed: the caller's */
};

struct pkgstore *pkgstore_new(struct rconn *conn, int timeout_ms)
{
    struct pkgstore *ps = conn ? calloc(1, sizeof *ps) : NULL;

    if (ps) {
        ps->conn = conn;
        ps->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    }
    return ps;
}

void pkgstore_free(struct pkgstore *ps)
{
    free(ps);
}

static enum pkgstore_result classify(enum op_kind kind, const redictReply *r)
{
    if (!r || r->type == REDICT_REPLY_ERROR)
        return PKGSTORE_ERROR;
    if (kind == OP_TAKE) {
        if (r->type == REDICT_REPLY_NIL)
            return PKGSTORE_OK;
        return r->type == REDICT_REPLY_STRING ? PKGSTORE_HELD : PKGSTORE_ERROR;
    }
    if (r->type != REDICT_REPLY_INTEGER)
        return PKGSTORE_ERROR;
    return r->integer == 1 ? PKGSTORE_OK : PKGSTORE_HELD;
}

static void on_reply(void *arg, enum rconn_result res, const redictReply *r)
{
    struct op *o = arg;
    enum pkgstore_result pr = res == RCONN_OK ? classify(o->kind, r) : PKGSTORE_ERROR;

    if (o->done && pr == PKGSTORE_HELD && o->kind == OP_TAKE)
        o->done(o->arg, pr, r->str, r->len);
    else if (o->done)
        o->done(o->arg, pr, NULL, 0);
    free(o);
}

static int run(struct pkgstore *ps, enum op_kind kind, pkgstore_done *done, void *arg,
               int argc, const char **argv)
{
    struct op *o;

    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return -1;
    if (!ps || !(o = calloc(1, sizeof *o)))
        return -1;
    *o = (struct op){ .kind = kind, .done = done, .arg = arg };
    if (rconn_evalv(ps->conn, &scripts[kind], on_reply, o, ps->timeout_ms, 1, argc, argv,
                    NULL) != 0) {
        free(o);
        return -1;
    }
    return 0;
}

int pkgstore_take(struct pkgstore *ps, const char *key, const char *val, unsigned ttl_ms,
                  pkgstore_done *done, void *arg)
{
    char px[24];

    snprintf(px, sizeof px, "%u", ttl_ms);
    return ttl_ms ? run(ps, OP_TAKE, done, arg, 3, (const char *[]){ key, val, px }) : -1;
}

int pkgstore_renew(struct pkgstore *ps, const char *key, const char *val, unsigned ttl_ms,
                   pkgstore_done *done, void *arg)
{
    char px[24];

    snprintf(px, sizeof px, "%u", ttl_ms);
    return ttl_ms ? run(ps, OP_RENEW, done, arg, 3, (const char *[]){ key, val, px }) : -1;
}

int pkgstore_swap(struct pkgstore *ps, const char *key, const char *old, const char *val,
                  unsigned ttl_ms, pkgstore_done *done, void *arg)
{
    char px[24];

    snprintf(px, sizeof px, "%u", ttl_ms);
    return ttl_ms ? run(ps, OP_SWAP, done, arg, 4, (const char *[]){ key, old, val, px }) : -1;
}

int pkgstore_release(struct pkgstore *ps, const char *key, const char *val,
                     pkgstore_done *done, void *arg)
{
    return run(ps, OP_RELEASE, done, arg, 2, (const char *[]){ key, val });
}

const struct rconn_script *pkgstore_script(unsigned i)
{
    return i < sizeof scripts / sizeof scripts[0] ? &scripts[i] : NULL;
}

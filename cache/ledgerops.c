/* ledgerops: operator actions and lists on the ack ledger's keys (see ledgerops.h; the
 * key layout is ledger.h's, with the default prefix "fogate:"). */
#include "ledgerops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P "fogate:ledger:"
#define ID_MAX 300

#define NOW                                                                       \
    "local t = redis.call('TIME')\n"                                              \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* KEYS[1] the message hash. Only the lease ends; everything else stays. */
static const char release_body[] =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if not st then return 'not_found' end\n"
    "if st ~= 'leased' and st ~= 'delivered' then return st end\n"
    "redis.call('HSET', KEYS[1], 'lease_until', 0, 'holder', '', 'released', 1)\n"
    "return 'done'\n";

/* KEYS[1] the message hash, KEYS[2] the outbox; ARGV[1] the id. */
static const char retry_body[] = NOW
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if not st then return 'not_found' end\n"
    "if st ~= 'confirmed' then return st end\n"
    "redis.call('HSET', KEYS[1], 'ob_owner', '')\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "return 'done'\n";

/* KEYS: unconfirmed, unacked, outbox; ARGV[1] the message key prefix, ARGV[2] max. */
static const char list_body[] = NOW
    "local f = {'state', 'corr', 'client', 'holder', 'deliveries', 'first_ms', "
    "'last_dequeue_ms', 'delivered_ms', 'confirmed_ms', 'confirmed_by', 'ob_attempts', "
    "'lease_until', 'released'}\n"
    "local function list(z)\n"
    "  local out = {}\n"
    "  for _, id in ipairs(redis.call('ZRANGE', z, 0, tonumber(ARGV[2]) - 1)) do\n"
    "    local h = redis.call('HMGET', ARGV[1] .. id, unpack(f))\n"
    "    if h[1] then\n"
    "      local e = {id = id, due_ms = tonumber(redis.call('ZSCORE', KEYS[3], id))}\n"
    "      for i, name in ipairs(f) do\n"
    "        local v = h[i]\n"
    "        if v and v ~= '' then e[name] = tonumber(v) or v end\n"
    "      end\n"
    "      e.message_id = e.corr; e.corr = nil\n"
    "      out[#out + 1] = e\n"
    "    end\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "local u, a = list(KEYS[1]), list(KEYS[2])\n"
    "return cjson.encode({now_ms = now, unconfirmed = #u > 0 and u or nil, "
    "unacked = #a > 0 and a or nil})\n";

struct op {
    ledgerops_done *done;
    ledgerops_list_cb *listed;
    void *arg;
    struct rconn_script s;
};

static void on_reply(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct op *op = arg;
    bool ok = res == RCONN_OK && reply && reply->type == REDICT_REPLY_STRING;
    char outcome[32] = "";

    if (ok)
        snprintf(outcome, sizeof outcome, "%.*s", (int)reply->len, reply->str);
    if (op->done)
        op->done(op->arg, ok ? outcome : NULL);
    else
        op->listed(op->arg, ok ? reply->str : NULL, ok ? reply->len : 0);
    free(op);
}

static struct op *op_new(const char *body, ledgerops_done *done, ledgerops_list_cb *listed,
                         void *arg)
{
    struct op *op = calloc(1, sizeof *op);

    if (!op)
        return NULL;
    *op = (struct op){ .done = done, .listed = listed, .arg = arg };
    if (rconn_script_init(&op->s, body) < 0) {
        free(op);
        return NULL;
    }
    return op;
}

static int run(struct rconn *rc, struct op *op, int nkeys, int argc, const char **argv)
{
    if (!op)
        return -1;
    if (rconn_evalv(rc, &op->s, on_reply, op, 0, nkeys, argc, argv, NULL) < 0) {
        free(op);
        return -1;
    }
    return 0;
}

static bool id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(id[i] == '-' || id[i] == ':' || id[i] == '.' || id[i] == '_' ||
              (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= 'A' && id[i] <= 'Z')))
            return false;
    return true;
}

int ledgerops_release(struct rconn *rc, const char *id, ledgerops_done *cb, void *arg)
{
    char key[ID_MAX + 64];

    if (!id_ok(id))
        return -1;
    snprintf(key, sizeof key, P "m:%s", id);
    const char *argv[] = { key };
    return run(rc, op_new(release_body, cb, NULL, arg), 1, 1, argv);
}

int ledgerops_retry_ack(struct rconn *rc, const char *id, ledgerops_done *cb, void *arg)
{
    char key[ID_MAX + 64];

    if (!id_ok(id))
        return -1;
    snprintf(key, sizeof key, P "m:%s", id);
    const char *argv[] = { key, P "outbox", id };
    return run(rc, op_new(retry_body, cb, NULL, arg), 2, 3, argv);
}

int ledgerops_list(struct rconn *rc, unsigned max, ledgerops_list_cb *cb, void *arg)
{
    char n[16];

    if (max < 1 || max > LEDGEROPS_LIST_MAX)
        return -1;
    snprintf(n, sizeof n, "%u", max);
    const char *argv[] = { P "unconfirmed", P "unacked", P "outbox", P "m:", n };
    return run(rc, op_new(list_body, NULL, cb, arg), 3, 5, argv);
}

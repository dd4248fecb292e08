/* budgetlua: keys, scripts and replies of the shared D365 budget. See budgetlua.h. */
#include "budgetlua.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#define NOW "local t = redis.call('TIME')\n" \
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

static const char *const scripts[BUDGETLUA_COUNT] = {
    [BUDGETLUA_ACQUIRE] =
        NOW
        "local gate = redis.call('PTTL', KEYS[3])\n"
        "if gate > 0 then return {-1, gate} end\n"
        "local lease = tonumber(ARGV[4])\n"
        "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
        "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return {0, 0} end\n"
        "local win = tonumber(ARGV[3])\n"
        "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - win)\n"
        "local rate = tonumber(ARGV[2])\n"
        "local n = redis.call('ZCARD', KEYS[2])\n"
        "if n >= rate then\n"
        "  local o = redis.call('ZRANGE', KEYS[2], n - rate, n - rate, 'WITHSCORES')\n"
        "  local ms = tonumber(o[2]) + win - now\n"
        "  if ms < 1 then ms = 1 end\n"
        "  return {0, ms}\n"
        "end\n"
        "redis.call('ZADD', KEYS[1], now + lease, ARGV[5])\n"
        "redis.call('ZADD', KEYS[2], now, ARGV[5])\n"
        "redis.call('PEXPIRE', KEYS[1], lease)\n"
        "redis.call('PEXPIRE', KEYS[2], win)\n"
        "return {1, 0}\n",
    [BUDGETLUA_RENEW] =
        NOW
        "local lease = tonumber(ARGV[1])\n"
        "local n = 0\n"
        "for i = 2, #ARGV do\n"
        "  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i])\n"
        "end\n"
        "redis.call('PEXPIRE', KEYS[1], lease)\n"
        "return n\n",
    [BUDGETLUA_RELEASE] = "return redis.call('ZREM', KEYS[1], ARGV[1])\n",
    [BUDGETLUA_CLOSE] =
        "local ms = tonumber(ARGV[1])\n"
        "local left = redis.call('PTTL', KEYS[1])\n"
        "if left < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) return ms end\n"
        "return left\n",
    [BUDGETLUA_PEEK] =
        "local out = {}\n"
        "for i = 1, #KEYS do\n"
        "  local ms = redis.call('PTTL', KEYS[i])\n"
        "  if ms < 0 then ms = 0 end\n"
        "  out[i] = ms\n"
        "end\n"
        "return out\n",
};

const char *budgetlua_script(enum budgetlua_id id)
{
    return (unsigned)id < BUDGETLUA_COUNT ? scripts[id] : NULL;
}

int budgetlua_keys(const char *resource, const char *client_id, struct budgetlua_keys *out)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;
    char id[17];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && resource && client_id && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, resource, strlen(resource)) &&
             EVP_DigestUpdate(ctx, "\n", 1) &&
             EVP_DigestUpdate(ctx, client_id, strlen(client_id)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;

    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    for (int i = 0; i < 8; i++) {
        id[2 * i] = digits[md[i] >> 4];
        id[2 * i + 1] = digits[md[i] & 15];
    }
    id[16] = '\0';
    snprintf(out->sem, sizeof out->sem, "fogate:d365:{%s}:sem", id);
    snprintf(out->win, sizeof out->win, "fogate:d365:{%s}:win", id);
    snprintf(out->gate, sizeof out->gate, "fogate:d365:{%s}:gate", id);
    return 0;
}

enum budgetlua_verdict budgetlua_acquire_reply(const redictReply *r, int64_t *ms)
{
    *ms = 0;
    if (!r || r->type != REDICT_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDICT_REPLY_INTEGER || r->element[1]->type != REDICT_REPLY_INTEGER)
        return BUDGETLUA_BAD;
    long long code = r->element[0]->integer, v = r->element[1]->integer;
    if (code == 1)
        return BUDGETLUA_GRANTED;
    if (code == -1) {
        *ms = v > 0 ? v : 1;
        return BUDGETLUA_GATED;
    }
    if (code != 0)
        return BUDGETLUA_BAD;
    if (v <= 0)
        return BUDGETLUA_BUSY;
    *ms = v;
    return BUDGETLUA_RATE;
}

int budgetlua_peek_reply(const redictReply *r, int64_t *ms, size_t n)
{
    if (!r || r->type != REDICT_REPLY_ARRAY || r->elements != n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (r->element[i]->type != REDICT_REPLY_INTEGER)
            return -1;
        ms[i] = r->element[i]->integer > 0 ? r->element[i]->integer : 0;
    }
    return 0;
}

/* ledgerlua: Lua texts of the ledger scripts (layout in ledgerlua.h). Each branch has its
 * twin in ledgerrule.c. Invariant: every write refreshes the TTL of what it wrote. */
#include "ledgerlua.h"

#include "rconn.h"

/* Server time in ms, and the message prelude: resolve a CORR id through its alias, read
 * the entry, and helpers to count and to refresh TTLs. */
#define NOW                                                                       \
    "local t = redis.call('TIME')\n"                                              \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
#define PRELUDE                                                                   \
    NOW                                                                           \
    "local id, key = ARGV[3], KEYS[1]\n"                                          \
    "if ARGV[1] == 'corr' then\n"                                                 \
    "  local a = redis.call('GET', KEYS[2])\n"                                    \
    "  if a then id = a; key = ARGV[2] .. a end\n"                                \
    "end\n"                                                                       \
    "local ttl, inst = tonumber(ARGV[4]), ARGV[5]\n"                              \
    "local h = redis.call('HMGET', key, 'state', 'holder', 'lease_until', "       \
    "'ob_owner', 'deliveries')\n"                                                 \
    "local state = h[1] or ''\n"                                                  \
    "local function stat(name)\n"                                                 \
    "  redis.call('HINCRBY', KEYS[3], name, 1)\n"                                 \
    "  redis.call('PEXPIRE', KEYS[3], ttl)\n"                                     \
    "end\n"                                                                       \
    "local function touch()\n"                                                    \
    "  redis.call('PEXPIRE', key, ttl)\n"                                         \
    "  for i = 3, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end\n"                 \
    "end\n"                                                                       \
    "local function unconfirmed() return state == 'leased' or state == 'delivered' end\n"

/* ledgerrule_dequeue. Every verdict records the newest body: the upstream ack must carry
 * the latest PopReceipt, and D365's 30-minute clock restarts at each dequeue. */
static const char dequeue_body[] = PRELUDE
    "local verdict = 'redelivery'\n"
    "if state == '' then verdict = 'new'\n"
    "elseif not unconfirmed() then verdict = 'duplicate'\n"
    "elseif tonumber(h[3] or 0) > now then verdict = 'leased' end\n"
    "redis.call('HSET', key, 'body', ARGV[6], 'corr', ARGV[7], 'pop', ARGV[8], "
    "'last_dequeue_ms', now)\n"
    "redis.call('HINCRBY', key, 'dequeues', 1)\n"
    "if ARGV[1] == 'blob' then redis.call('SET', KEYS[2], id, 'PX', ttl)\n"
    "else stat('fallback_ids') end\n"
    "local deliveries, holder, left, body = tonumber(h[5] or 0), '', 0, ''\n"
    "if verdict == 'leased' then\n"
    "  redis.call('ZADD', KEYS[5], now, id)\n"
    "  holder, left = h[2] or '', tonumber(h[3]) - now\n"
    "  stat('leased_elsewhere')\n"
    "elseif verdict == 'duplicate' then\n"
    "  redis.call('HSET', key, 'state', 'confirmed', 'ob_owner', inst)\n"
    "  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[11]), id)\n"
    "  redis.call('ZADD', KEYS[6], now, id)\n"
    "  body = ARGV[6]\n"
    "  stat('duplicates_suppressed')\n"
    "else\n"
    "  if verdict == 'new' then redis.call('HSET', key, 'first_ms', now); stat('new')\n"
    "  else stat('redeliveries') end\n"
    "  redis.call('HSET', key, 'state', 'leased', 'holder', inst, 'client', ARGV[9], "
    "'lease_until', now + tonumber(ARGV[10]))\n"
    "  deliveries = redis.call('HINCRBY', key, 'deliveries', 1)\n"
    "  redis.call('ZADD', KEYS[5], now, id)\n"
    "end\n"
    "touch()\n"
    "return {verdict, id, deliveries, holder, left, body}\n";

/* ledgerrule_deliver */
static const char deliver_body[] = PRELUDE
    "if state == '' then return {'not_found', id, ''} end\n"
    "if not unconfirmed() then return {'already', id, ''} end\n"
    "if h[2] ~= inst then return {'not_holder', id, ''} end\n"
    "if state == 'delivered' then return {'already', id, ''} end\n"
    "redis.call('HSET', key, 'state', 'delivered', 'delivered_ms', now)\n"
    "touch()\n"
    "return {'done', id, ''}\n";

/* ledgerrule_confirm: the confirmation and its outbox entry (leased to this instance,
 * which acks upstream at once) in one step. */
static const char confirm_body[] = PRELUDE
    "if state == '' then return {'not_found', id, ''} end\n"
    "if not unconfirmed() then stat('confirm_repeats'); return {'already', id, ''} end\n"
    "local last = tonumber(redis.call('HGET', key, 'last_dequeue_ms') or now)\n"
    "redis.call('HSET', key, 'state', 'confirmed', 'confirmed_ms', now, 'confirmed_by', "
    "ARGV[6], 'ob_owner', inst, 'ob_attempts', 0)\n"
    "redis.call('ZADD', KEYS[4], now + tonumber(ARGV[7]), id)\n"
    "redis.call('ZREM', KEYS[5], id)\n"
    "redis.call('ZADD', KEYS[6], last, id)\n"
    "stat('confirmed')\n"
    "touch()\n"
    "return {'done', id, redis.call('HGET', key, 'body') or ''}\n";

/* ledgerrule_ack */
static const char ack_body[] = PRELUDE
    "if state == '' then return {'not_found', id, ''} end\n"
    "if state == 'acked' then return {'already', id, ''} end\n"
    "redis.call('HSET', key, 'state', 'acked', 'acked_ms', now, 'ob_owner', '')\n"
    "redis.call('ZREM', KEYS[4], id)\n"
    "redis.call('ZREM', KEYS[5], id)\n"
    "redis.call('ZREM', KEYS[6], id)\n"
    "stat('acked')\n"
    "touch()\n"
    "return {'done', id, ''}\n";

/* ledgerrule_outbox: renew the lease, or release it due again after a delay. */
static const char outbox_body[] = PRELUDE
    "if state == 'acked' then return {'already', id, ''} end\n"
    "if state ~= 'confirmed' then return {'not_found', id, ''} end\n"
    "if h[4] ~= inst then return {'not_holder', id, ''} end\n"
    "redis.call('ZADD', KEYS[4], now + tonumber(ARGV[7]), id)\n"
    "if ARGV[6] == 'release' then redis.call('HSET', key, 'ob_owner', '') end\n"
    "touch()\n"
    "return {'done', id, ''}\n";

/* Hands out due outbox entries (ledgerrule_claimable); drops the rest from the outbox. */
static const char claim_body[] = NOW
    "local ttl, lease = tonumber(ARGV[2]), tonumber(ARGV[5])\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, "
    "tonumber(ARGV[4]))\n"
    "local out = {}\n"
    "for _, id in ipairs(due) do\n"
    "  local key = ARGV[1] .. id\n"
    "  local h = redis.call('HMGET', key, 'state', 'body')\n"
    "  if h[1] == 'confirmed' then\n"
    "    local n = redis.call('HINCRBY', key, 'ob_attempts', 1)\n"
    "    redis.call('HSET', key, 'ob_owner', ARGV[3])\n"
    "    redis.call('PEXPIRE', key, ttl)\n"
    "    redis.call('ZADD', KEYS[2], now + lease, id)\n"
    "    out[#out + 1] = id; out[#out + 1] = h[2] or ''; out[#out + 1] = n\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[2], id)\n"
    "  end\n"
    "end\n"
    "if #due > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end\n"
    "return out\n";

/* Gauges and counters. Members whose entry expired are dropped while looking for the
 * oldest (at most 16 per call, so the script stays short). */
static const char stats_body[] = NOW
    "local function oldest(z)\n"
    "  for i = 1, 16 do\n"
    "    local m = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')\n"
    "    if #m == 0 then return 0 end\n"
    "    if i == 16 or redis.call('EXISTS', ARGV[1] .. m[1]) == 1 then\n"
    "      return math.max(0, now - tonumber(m[2]))\n"
    "    end\n"
    "    redis.call('ZREM', z, m[1])\n"
    "  end\n"
    "end\n"
    "local ou, oa = oldest(KEYS[3]), oldest(KEYS[4])\n"
    "return {redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]), ou, "
    "redis.call('ZCARD', KEYS[4]), oa, redis.call('HGETALL', KEYS[1])}\n";

/* SHA1s of the bodies above, checked by test_ledger. */
static const struct rconn_script scripts[LEDGERLUA_COUNT] = {
    [LEDGERLUA_DEQUEUE] = { dequeue_body, "f3ff600c85c0c2ae361d72fdefac8d3216f16d4a" },
    [LEDGERLUA_DELIVER] = { deliver_body, "1dc8f55b05593dc3f836f280c6d012194d04475c" },
    [LEDGERLUA_CONFIRM] = { confirm_body, "cbba017074bce4d5c27b71ded43e53cfb48eecea" },
    [LEDGERLUA_ACK] = { ack_body, "a6afca03ba294420efbf4e45bc5d9aa8f4828f82" },
    [LEDGERLUA_OUTBOX] = { outbox_body, "7382cc1306faac5aa7573f0d9d6a4fc4d93fd663" },
    [LEDGERLUA_CLAIM] = { claim_body, "f9922716eb35256a651a2f7c8cbc691890bec62f" },
    [LEDGERLUA_STATS] = { stats_body, "d8fc93951b5338fee1ace21eb7d539595b01d39b" },
};

const struct rconn_script *ledgerlua_script(enum ledgerlua_id id)
{
    return (unsigned)id < LEDGERLUA_COUNT ? &scripts[id] : NULL;
}

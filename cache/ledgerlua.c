/* ledgerlua: Lua texts of the ledger scripts (layout in ledgerlua.h). Each branch has its
 * twin in ledgerrule.c. Invariant: every key written has a TTL (see PRELUDE). */
#include "ledgerlua.h"

#include "rconn.h"

/* Server time in ms, and the message prelude: resolve a CORR id through its alias, read
 * the entry, and helpers to count, to add to an index and to refresh TTLs. */
#define NOW                                                                       \
    "local t = redis.call('TIME')\n"                                              \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
/* The four index keys' TTLs are refreshed only when the caller asks (ARGV[6], at most
 * once a second per instance) or when this call may have created the key (a counter
 * that became 1, a first member): a key is never left without a TTL, and the ~8-day TTL
 * does not need refreshing 10,000 times a second (6 of a dequeue's 16 commands were
 * PEXPIREs, each also written to the AOF and the replicas). */
#define PRELUDE                                                                   \
    NOW                                                                           \
    "local id, key = ARGV[3], KEYS[1]\n"                                          \
    "if ARGV[1] == 'corr' then\n"                                                 \
    "  local a = redis.call('GET', KEYS[2])\n"                                    \
    "  if a then id = a; key = ARGV[2] .. a end\n"                                \
    "end\n"                                                                       \
    "local ttl, inst, refresh = tonumber(ARGV[4]), ARGV[5], ARGV[6] == '1'\n"     \
    "local h = redis.call('HMGET', key, 'state', 'holder', 'lease_until', "       \
    "'ob_owner', 'deliveries', 'dequeues')\n"                                      \
    "local state = h[1] or ''\n"                                                  \
    "local function stat(name)\n"                                                 \
    "  if redis.call('HINCRBY', KEYS[3], name, 1) == 1 and not refresh then\n"    \
    "    redis.call('PEXPIRE', KEYS[3], ttl)\n"                                   \
    "  end\n"                                                                     \
    "end\n"                                                                       \
    "local function zadd(z, score, member)\n"                                     \
    "  if redis.call('ZADD', z, score, member) == 1 and not refresh and "         \
    "redis.call('ZCARD', z) == 1 then redis.call('PEXPIRE', z, ttl) end\n"        \
    "end\n"                                                                       \
    "local function touch()\n"                                                    \
    "  redis.call('PEXPIRE', key, ttl)\n"                                         \
    "  if refresh then for i = 3, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end end\n" \
    "end\n"                                                                       \
    "local function unconfirmed() return state == 'leased' or state == 'delivered' end\n"

/* ledgerrule_dequeue. Every verdict records the newest body: the upstream ack must carry
 * the latest PopReceipt, and D365's 30-minute clock restarts at each dequeue. One HSET
 * writes every field (counters computed from the HMGET: the script runs atomically). */
static const char dequeue_body[] = PRELUDE
    "local verdict = 'redelivery'\n"
    "if state == '' then verdict = 'new'\n"
    "elseif not unconfirmed() then verdict = 'duplicate'\n"
    "elseif tonumber(h[3] or 0) > now then verdict = 'leased' end\n"
    "local f = {'body', ARGV[7], 'corr', ARGV[8], 'pop', ARGV[9], 'last_dequeue_ms', now, "
    "'dequeues', tonumber(h[6] or 0) + 1}\n"
    "if ARGV[1] == 'blob' then redis.call('SET', KEYS[2], id, 'PX', ttl)\n"
    "else stat('fallback_ids') end\n"
    "local deliveries, holder, left, body = tonumber(h[5] or 0), '', 0, ''\n"
    "if verdict == 'leased' then\n"
    "  zadd(KEYS[5], now, id)\n"
    "  holder, left = h[2] or '', tonumber(h[3]) - now\n"
    "  stat('leased_elsewhere')\n"
    "elseif verdict == 'duplicate' then\n"
    "  for _, v in ipairs({'state', 'confirmed', 'ob_owner', inst}) do f[#f + 1] = v end\n"
    "  zadd(KEYS[4], now + tonumber(ARGV[12]), id)\n"
    "  zadd(KEYS[6], now, id)\n"
    "  body = ARGV[7]\n"
    "  stat('duplicates_suppressed')\n"
    "else\n"
    "  if verdict == 'new' then f[#f + 1] = 'first_ms'; f[#f + 1] = now; stat('new')\n"
    "  else stat('redeliveries') end\n"
    "  deliveries = deliveries + 1\n"
    "  for _, v in ipairs({'state', 'leased', 'holder', inst, 'client', ARGV[10], "
    "'lease_until', now + tonumber(ARGV[11]), 'deliveries', deliveries}) do f[#f + 1] = v end\n"
    "  zadd(KEYS[5], now, id)\n"
    "end\n"
    "redis.call('HSET', key, unpack(f))\n"
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
    "ARGV[7], 'ob_owner', inst, 'ob_attempts', 0)\n"
    "zadd(KEYS[4], now + tonumber(ARGV[8]), id)\n"
    "redis.call('ZREM', KEYS[5], id)\n"
    "zadd(KEYS[6], last, id)\n"
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
    "zadd(KEYS[4], now + tonumber(ARGV[8]), id)\n"
    "if ARGV[7] == 'release' then redis.call('HSET', key, 'ob_owner', '') end\n"
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
    [LEDGERLUA_DEQUEUE] = { dequeue_body, "d231b167d7bae99a685b72487fcba0870ad07c4a" },
    [LEDGERLUA_DELIVER] = { deliver_body, "ed3a712c0d7b77b51bd88c7814f203c4af686745" },
    [LEDGERLUA_CONFIRM] = { confirm_body, "28cdec5549c4e0b00166368dc5971d829458fb31" },
    [LEDGERLUA_ACK] = { ack_body, "fb87903871ab28a98c69522832657e26675d8584" },
    [LEDGERLUA_OUTBOX] = { outbox_body, "6f93a9be5aa3a3b0623ec332c9758702451b0a16" },
    [LEDGERLUA_CLAIM] = { claim_body, "f9922716eb35256a651a2f7c8cbc691890bec62f" },
    [LEDGERLUA_STATS] = { stats_body, "d8fc93951b5338fee1ace21eb7d539595b01d39b" },
};

const struct rconn_script *ledgerlua_script(enum ledgerlua_id id)
{
    return (unsigned)id < LEDGERLUA_COUNT ? &scripts[id] : NULL;
}

/* histlua: Lua texts of the history scripts (layout in histlua.h). */
#include "histlua.h"

#include <stddef.h>

/* "YYYY-MM-DD" (UTC) of `ms` since 1970: Hinnant's civil_from_days (Lua has no os.date
 * inside Redis). */
#define DAY                                                                                \
    "local function day(ms)\n"                                                             \
    "  local z = math.floor(ms / 86400000) + 719468\n"                                     \
    "  local era = math.floor(z / 146097)\n"                                               \
    "  local doe = z - era * 146097\n"                                                     \
    "  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - "   \
    "math.floor(doe / 146096)) / 365)\n"                                                   \
    "  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))\n"      \
    "  local mp = math.floor((5 * doy + 2) / 153)\n"                                       \
    "  local d = doy - math.floor((153 * mp + 2) / 5) + 1\n"                               \
    "  local m = mp < 10 and mp + 3 or mp - 9\n"                                           \
    "  local y = yoe + era * 400 + (m <= 2 and 1 or 0)\n"                                  \
    "  return string.format('%04d-%02d-%02d', y, m, d)\n"                                  \
    "end\n"

static const char put_body[] = DAY
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local id, key = ARGV[1], KEYS[1]\n"
    "if id == '' then\n"
    "  id = redis.call('GET', KEYS[1])\n"
    "  if not id then return false end\n"
    "  key = ARGV[2] .. id\n"
    "end\n"
    "local ttl, cap = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local new = redis.call('HEXISTS', key, 'received') == 0\n"
    "for i = 10, #ARGV - 1, 2 do\n"
    "  local f, v = ARGV[i], ARGV[i + 1]\n"
    "  if v == '@now' then v = tostring(now) end\n"
    "  local op = string.sub(f, 1, 1)\n"
    "  if op == '+' then redis.call('HINCRBY', key, string.sub(f, 2), tonumber(v))\n"
    "  elseif op == '?' then redis.call('HSETNX', key, string.sub(f, 2), v)\n"
    "  elseif op == '-' then\n"
    "    local name = string.sub(f, 2)\n"
    "    local cur = redis.call('HGET', key, name) or ''\n"
    "    local found = false\n"
    "    for w in string.gmatch(cur, '[^,]+') do if w == v then found = true end end\n"
    "    if not found and #cur < 1024 then\n"
    "      redis.call('HSET', key, name, cur == '' and v or (cur .. ',' .. v))\n"
    "    end\n"
    "  else redis.call('HSET', key, f, v) end\n"
    "end\n"
    "local st, only_first = ARGV[6], false\n"
    "if string.sub(st, 1, 1) == '?' then st = string.sub(st, 2); only_first = true end\n"
    "if st ~= '' then\n"
    "  local h = redis.call('HMGET', key, 'status', 'final', 'nevents')\n"
    "  if h[2] ~= '1' and h[1] ~= st and not (only_first and h[1] and h[1] ~= 'Dequeued') then\n"
    "    local n = tonumber(h[3] or 0)\n"
    "    if n < 32 then\n"
    "      local ev = cjson.encode({status = st, at = now})\n"
    "      local cur = redis.call('HGET', key, 'events')\n"
    "      redis.call('HSET', key, 'events', cur and (cur .. ',' .. ev) or ev, "
    "'nevents', n + 1)\n"
    "    end\n"
    "    redis.call('HSET', key, 'status', st, 'status_at', now)\n"
    "    if ARGV[7] == '1' then\n"
    "      redis.call('HSET', key, 'final', '1', 'final_at', now)\n"
    "      if redis.call('HGET', key, 'cb') == '1' then\n"
    "        redis.call('ZADD', KEYS[4], 'NX', now, id .. ':' .. st)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* Today's count: once per record, as soon as it is final and knows its environment and
     * job, whichever write brings the last of the three (an outbox's ack, which names no job,
     * can land before the delivery that does, from another instance), on its final day. */
    "if ARGV[9] ~= '' then\n"
    "  local c = redis.call('HMGET', key, 'final', 'counted', 'env', 'job', 'status', "
    "'final_at')\n"
    "  if c[1] == '1' and c[2] ~= '1' and c[3] and c[4] and c[5] then\n"
    "    local tk = ARGV[9] .. c[3] .. ':' .. day(tonumber(c[6]) or now)\n"
    "    redis.call('HINCRBY', tk, c[4] .. '\\t' .. c[5], 1)\n"
    "    redis.call('PEXPIRE', tk, 172800000)\n"
    "    redis.call('HSET', key, 'counted', '1')\n"
    "  end\n"
    "end\n"
    "if new and ARGV[5] == '1' then\n"
    "  redis.call('HSET', key, 'id', id, 'received', now)\n"
    "  for i = 2, 3 do\n"
    "    redis.call('ZADD', KEYS[i], now, id)\n"
    "    local over = redis.call('ZCARD', KEYS[i]) - cap\n"
    "    if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[i], 0, over - 1) end\n"
    "    redis.call('PEXPIRE', KEYS[i], ttl)\n"
    "  end\n"
    "end\n"
    "if ARGV[8] ~= '' then redis.call('SET', ARGV[8], id, 'PX', ttl) end\n"
    "redis.call('PEXPIRE', key, ttl)\n"
    "return id\n";

static const char page_body[] =
    "local pre, max, cid, min = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local n = tonumber(ARGV[5])\n"
    "local all = {}\n"
    "for _, k in ipairs(KEYS) do\n"
    "  local z = redis.call('ZREVRANGEBYSCORE', k, max, min, 'WITHSCORES', 'LIMIT', 0, n + 64)\n"
    "  for i = 1, #z, 2 do\n"
    "    local s = tonumber(z[i + 1])\n"
    "    if cid == '' or s < tonumber(max) or z[i] < cid then\n"
    "      all[#all + 1] = {z[i], s}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "table.sort(all, function(a, b)\n"
    "  if a[2] ~= b[2] then return a[2] > b[2] end\n"
    "  return a[1] > b[1]\n"
    "end)\n"
    "local out, more = {0}, 0\n"
    "if #all > n then out[1] = 1 end\n"
    "for i = 1, math.min(n, #all) do\n"
    "  local f = redis.call('HGETALL', pre .. all[i][1])\n"
    "  out[#out + 1] = {all[i][1], tostring(all[i][2]), f}\n"
    "end\n"
    "return out\n";

#define NOW                                                                       \
    "local t = redis.call('TIME')\n"                                              \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

static const char due_body[] = NOW
    "local d = tonumber(ARGV[2])\n"
    "if d < 0 then redis.call('ZREM', KEYS[1], ARGV[1]) return 1 end\n"
    "if ARGV[3] == 'nx' then redis.call('ZADD', KEYS[1], 'NX', now + d, ARGV[1])\n"
    "else redis.call('ZADD', KEYS[1], now + d, ARGV[1]) end\n"
    "return 1\n";

static const char claim_body[] = NOW
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, "
    "tonumber(ARGV[2]))\n"
    "local out = {}\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), m)\n"
    "  local id = string.match(m, '^[^:]+')\n"
    "  local f = {}\n"
    "  if #ARGV > 3 then f = redis.call('HMGET', ARGV[1] .. id, unpack(ARGV, 4)) end\n"
    "  for i = 1, #ARGV - 3 do if not f[i] then f[i] = '' end end\n"
    "  out[#out + 1] = {m, f}\n"
    "end\n"
    "return out\n";

static const char today_body[] = DAY NOW
    "local d = day(now)\n"
    "local n = tonumber(ARGV[3])\n"
    "local counts, last = {}, {}\n"
    "for i = 4, 3 + n do\n"
    "  counts[#counts + 1] = {ARGV[i], redis.call('HGETALL', ARGV[1] .. ARGV[i] .. ':' .. d)}\n"
    "end\n"
    "for i = 4 + n, #ARGV do\n"
    "  local z = redis.call('ZREVRANGE', ARGV[2] .. ARGV[i], 0, 0, 'WITHSCORES')\n"
    "  last[#last + 1] = {ARGV[i], z[2] or ''}\n"
    "end\n"
    "return {d, counts, last}\n";

static const char *const bodies[HISTLUA_COUNT] = {
    [HISTLUA_PUT] = put_body,
    [HISTLUA_PAGE] = page_body,
    [HISTLUA_DUE] = due_body,
    [HISTLUA_CLAIM] = claim_body,
    [HISTLUA_TODAY] = today_body,
};

const char *histlua_body(enum histlua_id id)
{
    return (unsigned)id < HISTLUA_COUNT ? bodies[id] : NULL;
}

/* histlua: the Lua scripts of the file history (proxy/history) in Redis. Invariant: time
 * is the Redis server's (TIME), so records written by several instances sort on one clock;
 * every write refreshes the TTL of what it wrote, and every index stays capped.
 *
 * PUT   KEYS: 1 record key (or, with ARGV[1] "", the message map key naming the record),
 *             2 environment index zset, 3 job index zset, 4 receipt queue zset
 *       ARGV: 1 record id or "", 2 record key prefix, 3 ttl ms, 4 index cap,
 *             5 "1" = index the record unless it is indexed (has "received"), 6 status or
 *             "" ("?status": only when the record has no status yet, or only "Dequeued"),
 *             7 "1" = that status is final, 8 message map key to point at the record or "",
 *             9 prefix of the per-day final counts ("fogate:hist:t:"; "" = not counted),
 *             10.. field, value pairs: "+f" n = HINCRBY, "?f" v = HSETNX, "-f" v = add v to
 *             the comma-separated set f; a value "@now" is the server time in ms
 *       -> record id, or false when the map key names no record.
 *       A status differing from the record's appends {"status","at"} to the events (at
 *       most 32) and sets status, status_at (and final, final_at when final); a final
 *       record's status never changes again. A record with field cb = "1" (its job has a
 *       callback_url) that turns final queues the receipt "<id>:<status>" due now. A
 *       final record counts once (field counted = "1" after) in the hash
 *       "<ARGV 9><env>:<YYYY-MM-DD of final_at, UTC>", field "<job>\t<status>" (HINCRBY;
 *       the hash expires 48 h after its last count), by the first write after which it
 *       is final and has env and job, whichever order the writes came in (an outbox's
 *       ack names no job and may land before the delivery that does). The check and the
 *       count are one script, so two instances finalising a record count it once.
 * PAGE  KEYS: the job index zsets to merge
 *       ARGV: 1 record key prefix, 2 max score, 3 cursor id ("" = none), 4 min score,
 *             5 most entries returned
 *       -> {more (0/1), {id, score, {field, value, ...}}, ...}, newest first (score, then
 *          id, descending), entries at score == max only with id < cursor id.
 * DUE   KEYS: 1 queue zset; ARGV: 1 member, 2 delay ms ("-1" removes it), 3 "nx" = only
 *       if absent -> 1
 * CLAIM KEYS: 1 queue zset; ARGV: 1 record key prefix, 2 most members, 3 lease ms,
 *       4.. record fields -> {member, {field values}}, ...: members due now (score <=
 *       server time), each moved to now + lease so no other instance takes it meanwhile.
 *       A member is "<record id>" or "<record id>:<tag>"; fields are the record's.
 * TODAY ARGV: 1 count hash prefix, 2 job index prefix, 3 n environments, 4.. the n
 *       environments, then the jobs -> {"YYYY-MM-DD" (server time, UTC), {{env, HGETALL
 *       of its count hash}, ...}, {{job, newest score of its index or ""}, ...}}
 * Stored fields: see docs/history.md. */
#ifndef FOGATE_HISTLUA_H
#define FOGATE_HISTLUA_H

enum histlua_id {
    HISTLUA_PUT,
    HISTLUA_PAGE,
    HISTLUA_DUE,
    HISTLUA_CLAIM,
    HISTLUA_TODAY,
    HISTLUA_COUNT
};

/* The body of script `id` (static storage), or NULL past the last. */
const char *histlua_body(enum histlua_id id);

#endif

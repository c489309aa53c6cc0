/* Durable survey timers: Lua scripts over a sorted set of due times, a lease set for
 * claimed timers, compact survey records and per-customer fatigue history. See schedule.h. */
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DAY_MS 86400000LL

/* Shared Lua helpers. Redis time is what limits firing, so the scripts avoid per-survey
 * work that can be done once per call: a record is never split whole (head() and tail() read
 * the few fields a script needs), a state change rewrites only the state byte (SETRANGE keeps
 * the value and its TTL; the record stays a plain string whose first byte is the state, which
 * the aggregator relies on), counters are summed in a table and written once per field per
 * call (flush), and batches of keys go to MGET / ZADD / ZREM in chunks of CHUNK arguments
 * (under Lua's unpack limit). */
#define LUA_PRELUDE                                                                             \
    "local P = ARGV[1]\n"                                                                       \
    "local now = tonumber(ARGV[2])\n"                                                           \
    "local now_s = ARGV[2] -- numbers given to redis.call are formatted with %.14g: pass text\n" \
    "local stats = P .. 'stats:dispatcher'\n"                                                   \
    "local sched = P .. 'sched'\n"                                                              \
    "local infl = P .. 'inflight'\n"                                                            \
    "local CHUNK = 1000\n"                                                                      \
    "-- kind, journey, customer (fields 3-5): the value starts with state, SEP, version, SEP\n" \
    "local function head(v)\n"                                                                  \
    "  local a = string.find(v, '\\31', 5, true)\n"                                             \
    "  local b = string.find(v, '\\31', a + 1, true)\n"                                         \
    "  local c = string.find(v, '\\31', b + 1, true)\n"                                         \
    "  return string.sub(v, 5, a - 1), string.sub(v, a + 1, b - 1), string.sub(v, b + 1, c - 1)\n" \
    "end\n"                                                                                     \
    "-- expires and remind_after in ms (fields 17 and 18 of 19; the last one, the suppression\n" \
    "-- reason, holds no SEP): matched backwards from the end\n"                                \
    "local function tail(v)\n"                                                                  \
    "  local e, r = string.match(v, '^.*\\31(%w+)\\31(%w+)\\31[^\\31]*$')\n"                    \
    "  return tonumber(e, 36), tonumber(r, 36)\n"                                               \
    "end\n"                                                                                     \
    "local function fmt(n) return string.format('%d', n) end\n"                                 \
    "local function keep(exp) return fmt(math.max(exp, now) + 86400000) end\n"                  \
    "-- A state change of a record that has no reason to add: one byte, then its lifetime.\n"   \
    "-- fresh[key] remembers the change for a later timer of the same survey in the same call\n" \
    "-- (records are read up front): the new state byte, or the whole new value.\n"            \
    "local fresh = {}\n"                                                                        \
    "local function setbyte(key, st, exp)\n"                                                    \
    "  redis.call('SETRANGE', key, '0', st)\n"                                                  \
    "  redis.call('PEXPIREAT', key, keep(exp))\n"                                               \
    "  fresh[key] = st\n"                                                                       \
    "end\n"                                                                                     \
    "-- The reason is the record's last field: it replaces what was there.\n"                    \
    "local function setstate(key, v, st, reason, exp)\n"                                        \
    "  local nv = st .. string.match(v, '^.(.*\\31)') .. (reason or '')\n"                       \
    "  redis.call('SET', key, nv, 'PXAT', keep(exp))\n"                                         \
    "  fresh[key] = nv\n"                                                                       \
    "end\n"                                                                                     \
    "local function current(key, v)\n"                                                          \
    "  local f = fresh[key]\n"                                                                  \
    "  if not f or not v then return v end\n"                                                   \
    "  if #f == 1 then return f .. string.sub(v, 2) end\n"                                      \
    "  return f\n"                                                                              \
    "end\n"                                                                                     \
    "local counts = {}\n"                                                                       \
    "local function count(field, n) counts[field] = (counts[field] or 0) + (n or 1) end\n"      \
    "local function flush()\n"                                                                  \
    "  for f, n in pairs(counts) do if n ~= 0 then redis.call('HINCRBY', stats, f, n) end end\n" \
    "end\n"                                                                                     \
    "-- cmd key args[1..] in chunks; the replies concatenated (key may be nil)\n"                \
    "local function bulk(cmd, key, args)\n"                                                     \
    "  local out = {}\n"                                                                        \
    "  for i = 1, #args, CHUNK do\n"                                                            \
    "    local j = math.min(i + CHUNK - 1, #args)\n"                                            \
    "    local r\n"                                                                             \
    "    if key then r = redis.call(cmd, key, unpack(args, i, j))\n"                            \
    "    else r = redis.call(cmd, unpack(args, i, j)) end\n"                                    \
    "    if type(r) == 'table' then for k = 1, #r do out[#out + 1] = r[k] end end\n"            \
    "  end\n"                                                                                   \
    "  return out\n"                                                                            \
    "end\n"                                                                                     \
    "-- A survey answered while still pending (the response overtook the acknowledgement, or\n" \
    "-- its claimer died after publishing) was sent: count it fired once and give the record\n"  \
    "-- the lifetime of a settled one (the aggregator keeps the pending record's: none).\n"     \
    "-- A pending record whose reason is a cancel (reopened@<ms> or operator) was cancelled\n"    \
    "-- while its request was in flight.\n"                                                     \
    "-- (most records have no reason: their last byte is SEP, and no pattern runs over them)\n" \
    "local function cancel_waits(v)\n"                                                         \
    "  if string.byte(v, -1) == 31 then return nil end\n"                                     \
    "  return string.match(v, '\\31reopened@%d+$') or string.match(v, '\\31operator$')\n"   \
    "end\n"                                                                                     \
    "local function settle_answered(key, v)\n"                                                  \
    "  if string.sub(v, 1, 1) == 'a' and redis.call('PTTL', key) == -1 then\n"                 \
    "    local _, journey = head(v)\n"                                                          \
    "    count('fired|' .. journey)\n"                                                          \
    "    redis.call('PEXPIREAT', key, keep((tail(v))))\n"                                       \
    "  end\n"                                                                                  \
    "end\n"

/* ARGV: prefix now nops {op...} ncounts {field n}...
 * op ADD:    'a' id value due journey at (no expiry while pending: set when it settles)
 * op CANCEL: 'c' id at until             (the journey is read from the record; at '-': by
 *                                        an operator, reason "operator"; until: see below;
 *                                        'C' instead of 'c': the same reopen as the op before,
 *                                        for another journey)
 * A cancelled record ends with the reason "reopened@<at>"; an ADD of an event that occurred
 * after that reopen replaces it (a completion after the reopen) with the reason
 * "completed@<at>", any other ADD is a duplicate (a redelivery, a client retry, a second
 * completion). A reopen at or before that completion is a duplicate too (delivered again,
 * or late): it cancels nothing.
 * A reopen later than the one that cancelled a record moves the record's reopen time to its
 * own (a completion between the two stays a duplicate when it arrives after both).
 * A reopen that finds no record of any journey (it came before its completion) leaves the
 * marker P"ro:"<id> = at, expiring at until (none when until has passed; a later reopen's
 * time replaces an earlier one's), and P"ro:any" = the latest expiry of any marker,
 * expiring then. An ADD that creates a record reads its marker (while P"ro:any" exists: one
 * EXISTS per call, then one MGET for the new surveys of a call; nothing for duplicates) and
 * deletes it: a completion at or before the reopen creates the record cancelled, as the
 * reopen would have left it (counted cancelled, not scheduled), one after it schedules with
 * the reason "completed@<at>", as above. */
static const char LUA_APPLY[] = LUA_PRELUDE
    "-- The reason a cancel at at leaves in record v: 'operator' (at '-'), or the reopen's\n"
    "-- time; a cancel already there (waiting in a claimed or released survey, or done) keeps\n"
    "-- an operator's, or a later reopen's time (an older reopen, late).\n"
    "local function cancel_why(v, at)\n"
    "  if at == '-' or string.match(v, '\\31operator$') then return 'operator' end\n"
    "  local w = string.match(v, '\\31reopened@(%d+)$')\n"
    "  if w and tonumber(w) > tonumber(at) then at = w end\n"
    "  return 'reopened@' .. at\n"
    "end\n"
    "-- Record v with state st and reason why, its lifetime kept.\n"
    "local function rewrite(key, v, st, why)\n"
    "  redis.call('SET', key, st .. string.match(v, '^.(.*\\31)') .. why, 'KEEPTTL')\n"
    "end\n"
    "local i = 4\n"
    "local res = {}\n"
    "-- the timers of new surveys go into the schedule in one ZADD, before any cancel (which\n"
    "-- looks for the timer) and at the end\n"
    "local timers = {}\n"
    "-- New surveys whose reopen marker is still to be looked for, all in one MGET: before a\n"
    "-- cancel (which may leave or need one), before a survey comes again in this call, before\n"
    "-- the timers go in, and at the end; so the outcome is the same as one at a time.\n"
    "-- pend: the ARGV index of each such ADD's op, then its op number and its timer's place\n"
    "-- P'ro:any' lives as long as the longest-lived marker: without it there is none to look\n"
    "-- for (asked once per call)\n"
    "local pend, pending_id, any = {}, {}, nil\n"
    "local function markers()\n"
    "  if #pend == 0 then return end\n"
    "  if any == nil then any = redis.call('EXISTS', P .. 'ro:any') == 1 end\n"
    "  if not any then\n"
    "    pend, pending_id = {}, {}\n"
    "    return\n"
    "  end\n"
    "  local mkeys = {}\n"
    "  for n = 1, #pend, 3 do mkeys[#mkeys + 1] = P .. 'ro:' .. ARGV[pend[n] + 1] end\n"
    "  local ms = bulk('MGET', nil, mkeys)\n"
    "  local found = {}\n"
    "  for n = 1, #mkeys do\n"
    "    local m = ms[n]\n"
    "    if m then\n"
    "      local a = pend[3 * n - 2]\n"
    "      local key, value, journey, at = P .. 's:' .. ARGV[a + 1], ARGV[a + 2], ARGV[a + 4], ARGV[a + 5]\n"
    "      found[#found + 1] = mkeys[n]\n"
    "      if tonumber(at) <= tonumber(m) then\n"
    "        -- the completion is from before the reopen: cancelled as the reopen had found it\n"
    "        local v = 'x' .. string.sub(value, 2) .. 'reopened@' .. m\n"
    "        redis.call('SET', key, v, 'PXAT', keep((tail(v))))\n"
    "        count('scheduled|' .. journey, -1)\n"
    "        count('cancelled|' .. journey)\n"
    "        timers[pend[3 * n]], res[pend[3 * n - 1]] = false, 0 -- its timer stays out\n"
    "      else\n"
    "        -- completed again after the reopen: as a survey scheduled again\n"
    "        redis.call('SET', key, value .. 'completed@' .. at)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if #found > 0 then bulk('DEL', nil, found) end\n"
    "  pend, pending_id = {}, {}\n"
    "end\n"
    "local function add_timers()\n"
    "  markers()\n"
    "  local keep_t = {}\n"
    "  for n = 1, #timers, 2 do\n"
    "    if timers[n + 1] then\n"
    "      keep_t[#keep_t + 1] = timers[n]\n"
    "      keep_t[#keep_t + 1] = timers[n + 1]\n"
    "    end\n"
    "  end\n"
    "  bulk('ZADD', sched, keep_t)\n"
    "  timers = {}\n"
    "end\n"
    "-- The ops of one reopen, one per journey ('c' then 'C's): when it finds none of its\n"
    "-- interaction's surveys, the completion has not come yet, and each journey gets a marker;\n"
    "-- when it finds one, the completion came (it creates all its surveys at once), and the\n"
    "-- journeys it did not match need none.\n"
    "local g_found, g_missing = false, {}\n"
    "local function end_group()\n"
    "  local last = 0 -- the latest expiry of the markers set\n"
    "  for n = 1, g_found and 0 or #g_missing, 3 do\n"
    "    local mk, at, till = P .. 'ro:' .. g_missing[n], g_missing[n + 1], g_missing[n + 2]\n"
    "    local m = redis.call('GET', mk)\n"
    "    if not m or tonumber(at) > tonumber(m) then\n"
    "      redis.call('SET', mk, at, 'PXAT', till)\n"
    "      last = math.max(last, tonumber(till))\n"
    "    end\n"
    "  end\n"
    "  if last > 0 then\n"
    "    local u = redis.call('GET', P .. 'ro:any')\n"
    "    if not u or last > tonumber(u) then redis.call('SET', P .. 'ro:any', fmt(last), 'PXAT', fmt(last)) end\n"
    "    any = true\n"
    "  end\n"
    "  g_found, g_missing = false, {}\n"
    "end\n"
    "for k = 1, tonumber(ARGV[3]) do\n"
    "  local op, id = ARGV[i], ARGV[i + 1]\n"
    "  local key = P .. 's:' .. id\n"
    "  if op ~= 'C' then end_group() end\n"
    "  if op == 'a' then\n"
    "    if pending_id[id] then markers() end\n"
    "    local old = redis.call('SET', key, ARGV[i + 2], 'NX', 'GET') -- false: it was set\n"
    "    local new = not old\n"
    "    local t = old and string.sub(old, 1, 1) == 'x' and string.match(old, '\\31reopened@(%d+)$')\n"
    "    if t and tonumber(ARGV[i + 5]) > tonumber(t) then\n"
    "      -- pending again; the reason field keeps the time of the completion that did it\n"
    "      new = redis.call('SET', key, ARGV[i + 2] .. 'completed@' .. ARGV[i + 5])\n"
    "    end\n"
    "    local w = old and string.sub(old, 1, 1) == 'p' and string.match(old, '\\31reopened@(%d+)$')\n"
    "    if w and tonumber(ARGV[i + 5]) > tonumber(w) then\n"
    "      -- completed after a reopen that waits for the survey's claim to settle: the\n"
    "      -- survey, still scheduled or in flight, goes out after all (nothing new to schedule)\n"
    "      redis.call('SET', key, ARGV[i + 2] .. 'completed@' .. ARGV[i + 5], 'KEEPTTL')\n"
    "    end\n"
    "    if new then\n"
    "      timers[#timers + 1] = ARGV[i + 3]\n"
    "      timers[#timers + 1] = id\n"
    "      if not old then -- created: its marker, if any, is looked for with the others\n"
    "        local n = #pend\n"
    "        pend[n + 1], pend[n + 2], pend[n + 3] = i, k, #timers\n"
    "        pending_id[id] = true\n"
    "      end\n"
    "      count('scheduled|' .. ARGV[i + 4])\n"
    "      res[k] = 1\n"
    "    else\n"
    "      count('duplicate')\n"
    "      res[k] = 0\n"
    "    end\n"
    "    i = i + 6\n"
    "  else\n"
    "    res[k] = 0\n"
    "    if #timers > 0 or #pend > 0 then add_timers() end\n"
    "    local v = redis.call('GET', key)\n"
    "    if v then g_found = true end\n"
    "    -- a survey scheduled again after a reopen is not cancelled by a reopen from before\n"
    "    -- the completion that scheduled it (that reopen delivered again, or late)\n"
    "    local p = v and string.sub(v, 1, 1) == 'p'\n"
    "    local f = v and string.sub(v, 1, 1) == 'f'\n"
    "    local t = (p or f) and ARGV[i + 2] ~= '-' and string.match(v, '\\31completed@(%d+)$')\n"
    "    if t and tonumber(ARGV[i + 2]) <= tonumber(t) then\n"
    "      if p then count('duplicate') end\n"
    "    elseif f and ARGV[i + 2] ~= '-' and redis.call('ZREM', sched, id .. ':r') == 1 then\n"
    "      -- sent already, and still answerable; only its reminder is dropped\n"
    "      local _, journey = head(v)\n"
    "      count('reminder_cancelled|' .. journey)\n"
    "    elseif f and ARGV[i + 2] ~= '-' and redis.call('ZSCORE', infl, id .. ':r') then\n"
    "      -- its reminder in flight: the reopen waits in the reason field, and the reminder\n"
    "      -- is dropped should it come back to the schedule unsent (the latest reopen's time\n"
    "      -- kept, as in a pending record)\n"
    "      rewrite(key, v, 'f', cancel_why(v, ARGV[i + 2]))\n"
    "    elseif p and redis.call('ZREM', sched, id) == 1 then\n"
    "      local _, journey = head(v)\n"
    "      setstate(key, v, 'x', cancel_why(v, ARGV[i + 2]), (tail(v)))\n"
    "      count('cancelled|' .. journey)\n"
    "      res[k] = 1\n"
    "    elseif p and redis.call('ZSCORE', infl, id) then\n"
    "      -- claimed, its request in flight: the cancel waits in the reason field for the\n"
    "      -- claim to settle (cancelled when claimed again after a release, sent without its\n"
    "      -- reminder when acknowledged); the record stays pending and answerable\n"
    "      rewrite(key, v, 'p', cancel_why(v, ARGV[i + 2]))\n"
    "      res[k] = 2\n"
    "    elseif v and string.sub(v, 1, 1) == 'x' and ARGV[i + 2] ~= '-' then\n"
    "      -- cancelled by an earlier reopen: a later one moves the time, so that a completion\n"
    "      -- from between the two, arriving late, does not schedule it again\n"
    "      local why = cancel_why(v, ARGV[i + 2])\n"
    "      if string.sub(v, -#why - 1) ~= '\\31' .. why then rewrite(key, v, 'x', why) end\n"
    "    elseif not v and ARGV[i + 2] ~= '-' and tonumber(ARGV[i + 3]) > now then\n"
    "      -- no record: perhaps the reopen came before its completion (end_group decides)\n"
    "      local n = #g_missing\n"
    "      g_missing[n + 1], g_missing[n + 2], g_missing[n + 3] = id, ARGV[i + 2], ARGV[i + 3]\n"
    "    end\n"
    "    i = i + 4\n"
    "  end\n"
    "end\n"
    "end_group()\n"
    "local nc = tonumber(ARGV[i])\n"
    "i = i + 1\n"
    "for k = 1, nc do\n"
    "  count(ARGV[i], tonumber(ARGV[i + 1]))\n"
    "  i = i + 2\n"
    "end\n"
    "add_timers()\n"
    "flush()\n"
    "return res\n";

/* ARGV: prefix now max lease_deadline min_gap gap_csat gap_ces gap_nps max30 horizon
 * Returns {{member, record}..., settled, next_due}.
 * The due timers are the first ranks of the schedule (ZRANGEBYSCORE from -inf with a limit),
 * so one ZREMRANGEBYRANK removes exactly them; their records come in one MGET and the claims
 * go to the in-flight set in one ZADD. */
static const char LUA_CLAIM[] = LUA_PRELUDE
    "local max, deadline = tonumber(ARGV[3]), ARGV[4]\n"
    "local min_gap = tonumber(ARGV[5])\n"
    "local gap_kind = {csat = tonumber(ARGV[6]), ces = tonumber(ARGV[7]), nps = tonumber(ARGV[8])}\n"
    "local max30, horizon = tonumber(ARGV[9]), tonumber(ARGV[10])\n"
    "-- The history holds what was sent within the horizon (older entries are trimmed when one\n"
    "-- is added): read it whole, and trim only when an entry is at or past the horizon.\n"
    "local function fatigue(id, kind, customer)\n"
    "  if horizon <= 0 then return nil end\n"
    "  local fh = P .. 'fh:' .. customer\n"
    "  local h = redis.call('ZRANGE', fh, '0', '-1', 'WITHSCORES')\n"
    "  local by_kind, gap, n30, stale = false, false, 0, false\n"
    "  local gk = gap_kind[kind] or -1\n"
    "  local oldest = now - horizon\n"
    "  for j = 1, #h, 2 do\n"
    "    local t = tonumber(h[j + 1])\n"
    "    if t <= oldest then stale = true end\n"
    "    if t >= oldest then\n"
    "      local sep = string.find(h[j], '|', 1, true)\n"
    "      local hid, hkind = string.sub(h[j], 1, sep - 1), string.sub(h[j], sep + 1)\n"
    "      if hid ~= id then\n"
    "        if gk >= 0 and hkind == kind and now - t < gk then by_kind = true end\n"
    "        if min_gap > 0 and now - t < min_gap then gap = true end\n"
    "        if t > now - 2592000000 and t <= now then n30 = n30 + 1 end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if by_kind then return 'min_gap_by_kind' end\n"
    "  if gap then return 'min_gap' end\n"
    "  if max30 > 0 and n30 >= max30 then return 'max_per_30d' end\n"
    "  redis.call('ZADD', fh, now_s, id .. '|' .. kind)\n"
    "  if stale then redis.call('ZREMRANGEBYSCORE', fh, '-inf', fmt(oldest)) end\n"
    "  redis.call('PEXPIRE', fh, ARGV[10])\n"
    "  return nil\n"
    "end\n"
    "local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now_s, 'LIMIT', '0', ARGV[3])\n"
    "if #due > 0 then redis.call('ZREMRANGEBYRANK', sched, '0', fmt(#due - 1)) end\n"
    "local ids, typs, keys = {}, {}, {}\n"
    "for k, m in ipairs(due) do\n"
    "  local id, typ = m, 'f'\n"
    "  local sfx = string.sub(m, -2)\n"
    "  if sfx == ':r' or sfx == ':x' then id, typ = string.sub(m, 1, -3), string.sub(m, -1) end\n"
    "  ids[k], typs[k], keys[k] = id, typ, P .. 's:' .. id\n"
    "end\n"
    "local vals = bulk('MGET', nil, keys)\n"
    "local out, settled, claims = {}, 0, {}\n"
    "for k, m in ipairs(due) do\n"
    "  local id, typ, key = ids[k], typs[k], keys[k]\n"
    "  local v = current(key, vals[k])\n"
    "  local publish = false\n"
    "  if v then\n"
    "    local st = string.sub(v, 1, 1)\n"
    "    if typ == 'x' then\n"
    "      if st == 'f' then\n"
    "        local _, journey = head(v)\n"
    "        setbyte(key, 'e', (tail(v)))\n"
    "        count('expired|' .. journey)\n"
    "      end\n"
    "    elseif typ == 'r' then\n"
    "      publish = st == 'f' and now <= tail(v)\n"
    "      if publish and cancel_waits(v) then\n"
    "        -- reopened while this reminder was in flight, and it came back unsent\n"
    "        local _, journey = head(v)\n"
    "        count('reminder_cancelled|' .. journey)\n"
    "        publish = false\n"
    "      end\n"
    "    elseif st == 'a' then\n"
    "      settle_answered(key, v)\n"
    "    elseif st == 'p' then\n"
    "      local exp = tail(v)\n"
    "      local kind, journey, customer = head(v)\n"
    "      if cancel_waits(v) then\n"
    "        -- cancelled while in flight, and released unsent: cancelled now\n"
    "        setstate(key, v, 'x', string.match(v, '\\31([^\\31]*)$'), exp)\n"
    "        count('cancelled|' .. journey)\n"
    "      elseif now > exp then\n"
    "        setbyte(key, 'e', exp)\n"
    "        count('expired|' .. journey)\n"
    "      else\n"
    "        local why = fatigue(id, kind, customer)\n"
    "        if why then\n"
    "          setstate(key, v, 's', why, exp)\n"
    "          count('suppressed|' .. journey .. '|' .. why)\n"
    "        else\n"
    "          publish = true\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if publish then\n"
    "    claims[#claims + 1] = deadline\n"
    "    claims[#claims + 1] = m\n"
    "    out[#out + 1] = m\n"
    "    out[#out + 1] = v\n"
    "  else\n"
    "    settled = settled + 1\n"
    "  end\n"
    "end\n"
    "bulk('ZADD', infl, claims)\n"
    "flush()\n"
    "local first = redis.call('ZRANGE', sched, '0', '0', 'WITHSCORES')\n"
    "out[#out + 1] = settled\n"
    "out[#out + 1] = first[2] or ''\n"
    "return out\n";

/* ARGV: prefix now {member remind_at len journey expires remind_after}... Returns one 0/1 per
 * member. Which members are still ours comes from one ZMSCORE; they leave the in-flight set
 * in one ZREM, and the timers they schedule go in one ZADD. remind_at 0: now + remind_after.
 * len > 0 (sb_sched_hint: the record ended with its separator when claimed, len bytes long)
 * skips reading the record: one BITFIELD reads its byte len - 1 (still the separator), byte
 * len (past its end: 0, so no reason was added) and sets the state byte, returning the old
 * one. A survey still pending so is fired with the journey and times of the hint; any other
 * record gets its byte back and is read whole (one MGET for all of them), as without a hint;
 * so are reminders, counted only while their record exists. */
static const char LUA_ACK[] = LUA_PRELUDE
    "local res, mine, keys, ids, typs, src, seen = {}, {}, {}, {}, {}, {}, {}\n"
    "local members, rat, hl, hj, he, hr = {}, {}, {}, {}, {}, {}\n"
    "for k = 3, #ARGV, 6 do\n"
    "  local n = #members + 1\n"
    "  members[n], rat[n], hl[n] = ARGV[k], tonumber(ARGV[k + 1]), tonumber(ARGV[k + 2])\n"
    "  hj[n], he[n], hr[n] = ARGV[k + 3], tonumber(ARGV[k + 4]), tonumber(ARGV[k + 5])\n"
    "end\n"
    "local sc = bulk('ZMSCORE', infl, members)\n"
    "for k, m in ipairs(members) do\n"
    "  res[k] = 0\n"
    "  if sc[k] and not seen[m] then\n"
    "    seen[m], res[k] = true, 1\n"
    "    local id, typ = m, 'f'\n"
    "    local sfx = string.sub(m, -2)\n"
    "    if sfx == ':r' or sfx == ':x' then id, typ = string.sub(m, 1, -3), string.sub(m, -1) end\n"
    "    mine[#mine + 1] = m\n"
    "    ids[#mine], typs[#mine], keys[#mine], src[#mine] = id, typ, P .. 's:' .. id, k\n"
    "  end\n"
    "end\n"
    "bulk('ZREM', infl, mine)\n"
    "if #mine > 0 and redis.call('EXISTS', P .. 'claimt') == 1 then bulk('HDEL', P .. 'claimt', mine) end\n"
    "local timers = {}\n"
    "-- a pending survey sent: fired, its reminder (unless a cancel waited) and expiry check\n"
    "local function fired(id, journey, exp, remind, ra, dropped)\n"
    "  count('fired|' .. journey)\n"
    "  local at = ra > 0 and ra or now + remind\n"
    "  if remind > 0 and at < exp then\n"
    "    if dropped then\n"
    "      -- cancelled while in flight, but sent: it stays answerable, without reminder\n"
    "      count('reminder_cancelled|' .. journey)\n"
    "    else\n"
    "      timers[#timers + 1] = fmt(at)\n"
    "      timers[#timers + 1] = id .. ':r'\n"
    "    end\n"
    "  end\n"
    "  timers[#timers + 1] = fmt(exp + 1)\n"
    "  timers[#timers + 1] = id .. ':x'\n"
    "end\n"
    "local slow = {}\n"
    "for j = 1, #mine do\n"
    "  local k, key = src[j], keys[j]\n"
    "  local len = hl[k]\n"
    "  if len > 0 and typs[j] == 'f' then\n"
    "    local r = redis.call('BITFIELD', key, 'GET', 'u8', '#' .. (len - 1),\n"
    "                         'GET', 'u8', '#' .. len, 'SET', 'u8', '#0', '102')\n"
    "    if r[3] == 112 and r[1] == 31 and r[2] == 0 then\n"
    "      redis.call('PEXPIREAT', key, keep(he[k]))\n"
    "      fired(ids[j], hj[k], he[k], hr[k], rat[k], false)\n"
    "    else\n"
    "      -- changed since the claim: as it was, then read whole (a missing record was made)\n"
    "      if r[3] == 0 then redis.call('DEL', key)\n"
    "      elseif r[3] ~= 102 then redis.call('SETRANGE', key, '0', string.char(r[3])) end\n"
    "      slow[#slow + 1] = j\n"
    "    end\n"
    "  else\n"
    "    slow[#slow + 1] = j\n"
    "  end\n"
    "end\n"
    "local skeys = {}\n"
    "for n, j in ipairs(slow) do skeys[n] = keys[j] end\n"
    "local vals = bulk('MGET', nil, skeys)\n"
    "for n, j in ipairs(slow) do\n"
    "  local v, key, id = vals[n], keys[j], ids[j]\n"
    "  if v then\n"
    "    if typs[j] == 'r' then\n"
    "      local _, journey = head(v)\n"
    "      count('reminded|' .. journey)\n"
    "    elseif string.sub(v, 1, 1) == 'p' then\n"
    "      local exp, remind = tail(v)\n"
    "      local _, journey = head(v)\n"
    "      local dropped = cancel_waits(v)\n"
    "      if dropped then setstate(key, v, 'f', nil, exp) else setbyte(key, 'f', exp) end\n"
    "      fired(id, journey, exp, remind, rat[src[j]], dropped)\n"
    "    else\n"
    "      settle_answered(key, v)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "bulk('ZADD', sched, timers)\n"
    "flush()\n"
    "return res\n";

/* ARGV: prefix at members...
 * A survey goes back unsent, so it leaves its customer's fatigue history, where the claim
 * that let it through put it: should it never go out (reopened or expired while it waits),
 * it must not hold back the customer's next survey. The claim that sends it puts it back.
 * Reminders are not in the history, and a survey already answered was sent. */
static const char LUA_RELEASE[] =
    "local infl, sched = ARGV[1] .. 'inflight', ARGV[1] .. 'sched'\n"
    "local ct = redis.call('EXISTS', ARGV[1] .. 'claimt') == 1 and ARGV[1] .. 'claimt'\n"
    "local n = 0\n"
    "for k = 3, #ARGV do\n"
    "  if redis.call('ZREM', infl, ARGV[k]) == 1 then\n"
    "    redis.call('ZADD', sched, ARGV[2], ARGV[k])\n"
    "    n = n + 1\n"
    "    local sfx = string.sub(ARGV[k], -2)\n"
    "    local v = sfx ~= ':r' and sfx ~= ':x' and redis.call('GET', ARGV[1] .. 's:' .. ARGV[k])\n"
    "    -- kind and customer (fields 3 and 5) of a record still pending: one answered was sent\n"
    "    local kind, customer\n"
    "    if v then kind, customer = string.match(v, '^p\\31.\\31([^\\31]*)\\31[^\\31]*\\31([^\\31]*)\\31') end\n"
    "    if customer then redis.call('ZREM', ARGV[1] .. 'fh:' .. customer, ARGV[k] .. '|' .. kind) end\n"
    "  end\n"
    "  if ct then redis.call('HDEL', ct, ARGV[k]) end\n"
    "end\n"
    "return n\n";

/* ARGV: prefix now deadline lease members... Moves the lease deadline of the members still
 * in flight to the given one (never earlier; a member no longer in flight is not added
 * back). The first renewal keeps the claim's time (its deadline - lease) in the hash
 * claimt, where recovery finds it: requests are looked for on Kafka from the claim time.
 * Returns how many were renewed. */
static const char LUA_RENEW[] =
    "local infl, ct, d, lease = ARGV[1] .. 'inflight', ARGV[1] .. 'claimt', tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local n = 0\n"
    "for k = 5, #ARGV do\n"
    "  local sc = redis.call('ZSCORE', infl, ARGV[k])\n"
    "  if sc and tonumber(sc) < d then\n"
    "    redis.call('HSETNX', ct, ARGV[k], string.format('%d', tonumber(sc) - lease))\n"
    "    redis.call('ZADD', infl, 'XX', ARGV[3], ARGV[k])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

struct sb_sched {
    sb_store_t *store;
    const sb_config_t *cfg;
    sb_store_script_t *apply, *claim, *ack, *release, *renew;
    sb_store_args_t args;
    size_t *cnt, cnt_cap;      /* script ops per op of the apply call in hand */
    size_t apply_n, apply_nops; /* its op counts, for sb_sched_apply_recv */
};

sb_sched_t *sb_sched_new(sb_store_t *store, const sb_config_t *cfg)
{
    sb_sched_t *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->store = store;
    s->cfg = cfg;
    s->apply = sb_store_script_new(LUA_APPLY);
    s->claim = sb_store_script_new(LUA_CLAIM);
    s->ack = sb_store_script_new(LUA_ACK);
    s->release = sb_store_script_new(LUA_RELEASE);
    s->renew = sb_store_script_new(LUA_RENEW);
    if (!s->apply || !s->claim || !s->ack || !s->release || !s->renew) abort();
    return s;
}

void sb_sched_free(sb_sched_t *s)
{
    if (!s) return;
    sb_store_script_free(s->apply);
    sb_store_script_free(s->claim);
    sb_store_script_free(s->ack);
    sb_store_script_free(s->release);
    sb_store_script_free(s->renew);
    sb_store_args_free(&s->args);
    free(s->cnt);
    free(s);
}

/* Starts an argument vector with the prefix and now. */
static sb_store_args_t *args_begin(sb_sched_t *s, int64_t now_ms)
{
    sb_store_args_reset(&s->args);
    sb_store_args_str(&s->args, sb_store_prefix(s->store));
    sb_store_args_int(&s->args, now_ms);
    return &s->args;
}

static redisReply *run(sb_sched_t *s, const sb_store_script_t *sc, const char *what)
{
    redisReply *r = sb_store_eval(s->store, sc, 0, s->args.argc, s->args.argv, s->args.lens);
    if (r && r->type == REDIS_REPLY_ERROR) {
        sb_store_refused(s->store, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static redisReply *receive(sb_sched_t *s, const sb_store_script_t *sc, const char *what);

/* How long the marker of a reopen that found no survey of journey j is kept: until a survey
 * of a completion at or before the reopen (at_ms) would be past its expiry anyway (due at
 * most at_ms + delay, moved by quiet hours by less than a day, then expires; one more day
 * of margin). A completion that arrives later is scheduled, but expires when claimed
 * instead of being sent. Saturates (times are bounded by the event's validation). */
static int64_t marker_until(const sb_journey_t *j, int64_t at_ms)
{
    int64_t add[] = {j->delay_ms, j->expires_ms, 2 * DAY_MS};
    int64_t t = at_ms;
    for (size_t k = 0; k < sizeof add / sizeof add[0]; k++)
        t = add[k] > 0 && t > INT64_MAX - add[k] ? INT64_MAX : t + add[k];
    return t;
}

/* Builds the apply script's arguments (records copied in). Encoding comes first: a record
 * that cannot be encoded is logged and skipped (status 0) rather than failing, and so
 * blocking, the whole batch. A cancel expands to one script op per configured journey:
 * survey ids derive from (interaction, journey), so no index is kept. cnt[i] gets the number
 * of script ops of op i; returns their total. */
static size_t apply_args(sb_sched_t *s, const sb_sched_op_t *ops, size_t n,
                         const sb_sched_count_t *counts, size_t n_counts, int64_t now_ms,
                         size_t *cnt)
{
    char **values = calloc(n ? n : 1, sizeof *values);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    if (!values || !lens) abort();
    size_t nops = 0;
    for (size_t i = 0; i < n; i++) {
        cnt[i] = s->cfg->n_journeys;
        if (ops[i].op == SB_SCHED_ADD) {
            values[i] = sb_record_encode(ops[i].rec, &lens[i]);
            cnt[i] = values[i] ? 1 : 0;
            if (!values[i])
                sb_error("cannot encode survey record, skipped interaction=%s journey=%s",
                         ops[i].rec->interaction_id, ops[i].rec->journey);
        }
        nops += cnt[i];
    }
    sb_store_args_t *a = args_begin(s, now_ms);
    sb_store_args_int(a, (int64_t)nops);
    char id[SB_SURVEY_ID_LEN + 1];
    for (size_t i = 0; i < n; i++) {
        const sb_record_t *rec = ops[i].rec;
        if (ops[i].op == SB_SCHED_ADD) {
            if (!values[i]) continue;
            sb_record_survey_id(rec->interaction_id, rec->journey, id);
            sb_store_args_str(a, "a");
            sb_store_args_copy(a, id, SB_SURVEY_ID_LEN);
            /* copies, not borrowed: _recv may send these again (NOSCRIPT) after the caller
             * reused the records */
            sb_store_args_copy(a, values[i], lens[i]);
            sb_store_args_int(a, rec->due_ms);
            sb_store_args_copy(a, rec->journey, strlen(rec->journey));
            sb_store_args_int(a, ops[i].at_ms);
        } else {
            for (size_t j = 0; j < s->cfg->n_journeys; j++) {
                sb_record_survey_id(rec->interaction_id, s->cfg->journeys[j].name, id);
                sb_store_args_str(a, j == 0 ? "c" : "C"); /* C: the same reopen */
                sb_store_args_copy(a, id, SB_SURVEY_ID_LEN);
                sb_store_args_int(a, ops[i].at_ms);
                sb_store_args_int(a, marker_until(&s->cfg->journeys[j], ops[i].at_ms));
            }
        }
    }
    sb_store_args_int(a, (int64_t)n_counts);
    for (size_t i = 0; i < n_counts; i++) {
        sb_store_args_str(a, counts[i].field);
        sb_store_args_int(a, counts[i].n);
    }
    for (size_t i = 0; i < n; i++) free(values[i]);
    free(values);
    free(lens);
    return nops;
}

/* Reads the apply script's reply (freed here) into status[] (may be NULL). */
static int apply_result(redisReply *r, size_t n, size_t nops, const size_t *cnt, int *status)
{
    int rc = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == nops) {
        rc = 0;
        for (size_t i = 0, k = 0; i < n; i++) {
            int v = 0;
            for (size_t e = 0; e < cnt[i]; e++, k++) v += (int)r->element[k]->integer;
            if (status) status[i] = v;
        }
    }
    if (r) freeReplyObject(r);
    return rc;
}

static size_t *apply_cnt(sb_sched_t *s, size_t n)
{
    if (n > s->cnt_cap) {
        free(s->cnt);
        s->cnt_cap = n;
        s->cnt = malloc(n * sizeof *s->cnt);
        if (!s->cnt) abort();
    }
    return s->cnt;
}

int sb_sched_apply(sb_sched_t *s, const sb_sched_op_t *ops, size_t n, const sb_sched_count_t *counts,
                   size_t n_counts, int *status, int64_t now_ms)
{
    size_t *cnt = apply_cnt(s, n ? n : 1);
    size_t nops = apply_args(s, ops, n, counts, n_counts, now_ms, cnt);
    return apply_result(run(s, s->apply, "apply"), n, nops, cnt, status);
}

int sb_sched_apply_send(sb_sched_t *s, const sb_sched_op_t *ops, size_t n,
                        const sb_sched_count_t *counts, size_t n_counts, int64_t now_ms)
{
    size_t *cnt = apply_cnt(s, n ? n : 1);
    s->apply_n = n;
    s->apply_nops = apply_args(s, ops, n, counts, n_counts, now_ms, cnt);
    return sb_store_eval_send(s->store, s->apply, 0, s->args.argc, s->args.argv, s->args.lens);
}

int sb_sched_apply_recv(sb_sched_t *s, int *status)
{
    return apply_result(receive(s, s->apply, "apply"), s->apply_n, s->apply_nops, s->cnt, status);
}

static int64_t fatigue_horizon(const sb_fatigue_t *f)
{
    int64_t h = f->min_gap_ms;
    for (int k = 0; k < SB_KIND__N; k++)
        if (f->min_gap_by_kind_ms[k] > h) h = f->min_gap_by_kind_ms[k];
    if (f->max_per_30d > 0 && h < 30 * DAY_MS) h = 30 * DAY_MS;
    /* a by-kind gap of 0 still forbids a survey of that kind after one sent "in the future"
     * (clock skew between instances): the rules must run, so the horizon cannot be 0 */
    for (int k = 0; k < SB_KIND__N; k++)
        if (f->min_gap_by_kind_ms[k] >= 0 && h < 1) h = 1;
    return h;
}

/* Splits a claimed member "<id>[:r]" into the output slot. */
static int fill_claimed(sb_claimed_t *c, const redisReply *m, const redisReply *v)
{
    char err[128];
    if (m->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
        m->len >= sizeof c->member || m->len < SB_SURVEY_ID_LEN)
        return -1;
    memcpy(c->member, m->str, m->len);
    c->member[m->len] = '\0';
    memcpy(c->survey_id, m->str, SB_SURVEY_ID_LEN);
    c->survey_id[SB_SURVEY_ID_LEN] = '\0';
    c->reminder = m->len == SB_SURVEY_ID_LEN + 2 && m->str[m->len - 1] == 'r';
    bool plain = v->len && v->len < UINT32_MAX && v->str[v->len - 1] == SB_REC_SEP;
    c->plain_len = plain ? (uint32_t)v->len : 0;
    if (sb_record_decode(v->str, v->len, &c->rec, err, sizeof err)) {
        sb_error("bad survey record member=%s err=\"%s\"", c->member, err);
        return -1;
    }
    return 0;
}

/* Fills the handle's argument vector for a claim. */
static void claim_args(sb_sched_t *s, int64_t now_ms, size_t max)
{
    const sb_fatigue_t *f = &s->cfg->fatigue;
    sb_store_args_t *a = args_begin(s, now_ms);
    sb_store_args_int(a, (int64_t)max);
    sb_store_args_int(a, now_ms + s->cfg->tuning.lease_ms);
    sb_store_args_int(a, f->min_gap_ms);
    sb_store_args_int(a, f->min_gap_by_kind_ms[SB_KIND_CSAT]);
    sb_store_args_int(a, f->min_gap_by_kind_ms[SB_KIND_CES]);
    sb_store_args_int(a, f->min_gap_by_kind_ms[SB_KIND_NPS]);
    sb_store_args_int(a, f->max_per_30d);
    sb_store_args_int(a, fatigue_horizon(f));
}

/* Reads the claim script's reply (freed here) into out. */
static int claim_result(redisReply *r, size_t max, sb_claimed_t *out, int64_t *next_due_ms,
                        size_t *settled)
{
    if (!r) return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2) {
        freeReplyObject(r);
        return -1;
    }
    size_t pairs = (r->elements - 2) / 2, n = 0;
    for (size_t i = 0; i < pairs && n < max; i++)
        if (fill_claimed(&out[n], r->element[2 * i], r->element[2 * i + 1]) == 0) n++;
    if (settled) *settled = (size_t)r->element[r->elements - 2]->integer;
    if (next_due_ms) {
        const redisReply *nd = r->element[r->elements - 1];
        *next_due_ms = nd->type == REDIS_REPLY_STRING && nd->len ? strtoll(nd->str, NULL, 10)
                                                                 : INT64_MAX;
    }
    freeReplyObject(r);
    return (int)n;
}

/* Reads the reply of the script sent last on this handle. A server that did not know the
 * script (NOSCRIPT: restarted since) did nothing: the same call, still in the handle's
 * argument vector, runs again through sb_store_eval, which loads the script. */
static redisReply *receive(sb_sched_t *s, const sb_store_script_t *sc, const char *what)
{
    redisReply *r = NULL;
    if (sb_store_pipeline_get(s->store, &r, 1) != 0) return NULL;
    if (r->type == REDIS_REPLY_ERROR && r->str && !strncmp(r->str, "NOSCRIPT", 8)) {
        freeReplyObject(r);
        return run(s, sc, what);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sb_store_refused(s->store, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int sb_sched_claim(sb_sched_t *s, int64_t now_ms, size_t max, sb_claimed_t *out,
                   int64_t *next_due_ms, size_t *settled)
{
    claim_args(s, now_ms, max);
    return claim_result(run(s, s->claim, "claim"), max, out, next_due_ms, settled);
}

int sb_sched_claim_send(sb_sched_t *s, int64_t now_ms, size_t max)
{
    claim_args(s, now_ms, max);
    return sb_store_eval_send(s->store, s->claim, 0, s->args.argc, s->args.argv, s->args.lens);
}

int sb_sched_claim_recv(sb_sched_t *s, size_t max, sb_claimed_t *out, int64_t *next_due_ms,
                        size_t *settled)
{
    return claim_result(receive(s, s->claim, "claim"), max, out, next_due_ms, settled);
}

/* Reads the ack script's reply (freed here). */
static int ack_result(redisReply *r, size_t n, int *done)
{
    if (!r) return -1;
    int rc = r->type == REDIS_REPLY_ARRAY && r->elements == n ? 0 : -1;
    for (size_t i = 0; done && rc == 0 && i < n; i++) done[i] = (int)r->element[i]->integer;
    freeReplyObject(r);
    return rc;
}

static void ack_args(sb_sched_t *s, const char *const *members, const int64_t *remind_at,
                     const sb_sched_hint_t *hints, size_t n, int64_t now_ms)
{
    sb_store_args_t *a = args_begin(s, now_ms);
    for (size_t i = 0; i < n; i++) {
        const sb_sched_hint_t *h = hints && hints[i].len && hints[i].journey ? &hints[i] : NULL;
        sb_store_args_str(a, members[i]);
        sb_store_args_int(a, remind_at && remind_at[i] > 0 ? remind_at[i] : 0);
        sb_store_args_int(a, h ? h->len : 0);
        sb_store_args_str(a, h ? h->journey : "-");
        sb_store_args_int(a, h ? h->expires_ms : 0);
        sb_store_args_int(a, h ? h->remind_after_ms : 0);
    }
}

void sb_sched_hint(const sb_config_t *cfg, const sb_claimed_t *c, sb_sched_hint_t *out)
{
    const sb_journey_t *j = sb_config_journey(cfg, c->rec.journey);
    out->len = j ? c->plain_len : 0;
    out->journey = j ? j->name : NULL;
    out->expires_ms = c->rec.expires_ms;
    out->remind_after_ms = c->rec.remind_after_ms;
}

int sb_sched_ack(sb_sched_t *s, const char *const *members, const int64_t *remind_at,
                 const sb_sched_hint_t *hints, size_t n, int64_t now_ms, int *done)
{
    ack_args(s, members, remind_at, hints, n, now_ms);
    return ack_result(run(s, s->ack, "ack"), n, done);
}

int sb_sched_ack_send(sb_sched_t *s, const char *const *members, const int64_t *remind_at,
                      const sb_sched_hint_t *hints, size_t n, int64_t now_ms)
{
    ack_args(s, members, remind_at, hints, n, now_ms);
    return sb_store_eval_send(s->store, s->ack, 0, s->args.argc, s->args.argv, s->args.lens);
}

int sb_sched_ack_recv(sb_sched_t *s, size_t n, int *done)
{
    return ack_result(receive(s, s->ack, "ack"), n, done);
}

int sb_sched_release(sb_sched_t *s, const char *const *members, size_t n, int64_t at_ms)
{
    sb_store_args_t *a = args_begin(s, at_ms);
    for (size_t i = 0; i < n; i++) sb_store_args_str(a, members[i]);
    redisReply *r = run(s, s->release, "release");
    if (!r) return -1;
    int rc = r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

int sb_sched_renew(sb_sched_t *s, const char *const *members, size_t n, int64_t now_ms,
                   int64_t deadline_ms)
{
    if (n == 0) return 0;
    sb_store_args_t *a = args_begin(s, now_ms);
    sb_store_args_int(a, deadline_ms);
    sb_store_args_int(a, s->cfg->tuning.lease_ms);
    for (size_t i = 0; i < n; i++) sb_store_args_str(a, members[i]);
    redisReply *r = run(s, s->renew, "renew");
    if (!r) return -1;
    int rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    freeReplyObject(r);
    return rc;
}

int sb_sched_expired_leases(sb_sched_t *s, int64_t now_ms, char (*members)[SB_SCHED_MEMBER_MAX],
                            size_t max, int64_t *claimed_since_ms)
{
    char key[300], nowb[24], maxb[24];
    sb_store_key(s->store, key, sizeof key, "inflight");
    snprintf(nowb, sizeof nowb, "%lld", (long long)now_ms);
    snprintf(maxb, sizeof maxb, "%zu", max);
    const char *argv[] = {"ZRANGEBYSCORE", key, "-inf", nowb, "WITHSCORES", "LIMIT", "0", maxb};
    redisReply *r = sb_store_cmdargv(s->store, 8, argv, NULL);
    if (!r) return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    size_t n = 0;
    int64_t oldest = INT64_MAX;
    for (size_t i = 0; i + 1 < r->elements && n < max; i += 2) {
        const redisReply *m = r->element[i];
        if (m->len >= SB_SCHED_MEMBER_MAX) continue;
        memcpy(members[n], m->str, m->len);
        members[n][m->len] = '\0';
        int64_t claimed = strtoll(r->element[i + 1]->str, NULL, 10) - s->cfg->tuning.lease_ms;
        if (claimed < oldest) oldest = claimed;
        n++;
    }
    freeReplyObject(r);
    if (n > 0 && claimed_since_ms) {
        /* claims whose leases were renewed: their claim time is kept in claimt */
        sb_store_key(s->store, key, sizeof key, "claimt");
        const char **hv = malloc((n + 2) * sizeof *hv);
        if (!hv) abort();
        hv[0] = "HMGET", hv[1] = key;
        for (size_t i = 0; i < n; i++) hv[i + 2] = members[i];
        r = sb_store_cmdargv(s->store, (int)n + 2, hv, NULL);
        free(hv);
        if (!r) return -1;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING) {
                int64_t claimed = strtoll(r->element[i]->str, NULL, 10);
                if (claimed < oldest) oldest = claimed;
            }
        freeReplyObject(r);
    }
    if (claimed_since_ms) *claimed_since_ms = oldest;
    return (int)n;
}

int sb_sched_get(sb_sched_t *s, const char *survey_id, sb_record_t *out)
{
    char key[300], err[128];
    sb_store_key(s->store, key, sizeof key, "s:%s", survey_id);
    redisReply *r = sb_store_cmd(s->store, "GET %s", key);
    if (!r) return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING)
        rc = sb_record_decode(r->str, r->len, out, err, sizeof err) == 0 ? 1 : -2;
    else if (r->type != REDIS_REPLY_NIL)
        rc = -1;
    freeReplyObject(r);
    return rc;
}

int sb_sched_cancel_id(sb_sched_t *s, const char *survey_id, int64_t now_ms)
{
    if (strlen(survey_id) != SB_SURVEY_ID_LEN) return 0;
    sb_store_args_t *a = args_begin(s, now_ms);
    sb_store_args_int(a, 1);
    sb_store_args_str(a, "c");
    sb_store_args_str(a, survey_id);
    sb_store_args_str(a, "-"); /* an operator's cancel: final (no reopen time) */
    sb_store_args_int(a, 0);   /* and no marker: it names a survey, not an interaction */
    sb_store_args_int(a, 0);   /* no counters */
    redisReply *r = run(s, s->apply, "cancel");
    if (!r) return -1;
    int rc = r->type == REDIS_REPLY_ARRAY && r->elements == 1 ? (int)r->element[0]->integer : -1;
    freeReplyObject(r);
    return rc;
}

int sb_sched_pending(sb_sched_t *s, const char *customer, sb_record_t *out, size_t max,
                     size_t *unreadable)
{
    char key[300];
    sb_store_key(s->store, key, sizeof key, "sched");
    size_t n = 0, bad = 0;
    const long chunk = 500;
    for (long start = 0; n < max; start += chunk) {
        redisReply *r = sb_store_cmd(s->store, "ZRANGE %s %ld %ld", key, start, start + chunk - 1);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return -1;
        }
        size_t got = r->elements;
        for (size_t i = 0; i < got && n < max; i++) {
            const redisReply *m = r->element[i];
            if (m->len != SB_SURVEY_ID_LEN) continue; /* reminders and expiry checks */
            sb_record_t rec;
            int rc = sb_sched_get(s, m->str, &rec);
            if (rc == -1) {
                freeReplyObject(r);
                return -1;
            }
            bad += rc == -2;
            if (rc != 1 || rec.state != SB_REC_PENDING) continue;
            if (customer && strcmp(customer, rec.customer_id) != 0) continue;
            out[n++] = rec;
        }
        freeReplyObject(r);
        if (got < (size_t)chunk) break;
    }
    if (unreadable) *unreadable = bad;
    return (int)n;
}

int sb_sched_depth(sb_sched_t *s, int64_t *scheduled, int64_t *inflight)
{
    char k1[300], k2[300];
    sb_store_key(s->store, k1, sizeof k1, "sched");
    sb_store_key(s->store, k2, sizeof k2, "inflight");
    const char *a1[] = {"ZCARD", k1}, *a2[] = {"ZCARD", k2};
    redisReply *rep[2] = {NULL, NULL};
    if (sb_store_append_argv(s->store, 2, a1, NULL) || sb_store_append_argv(s->store, 2, a2, NULL) ||
        sb_store_pipeline_get(s->store, rep, 2))
        return -1;
    *scheduled = rep[0]->type == REDIS_REPLY_INTEGER ? rep[0]->integer : -1;
    *inflight = rep[1]->type == REDIS_REPLY_INTEGER ? rep[1]->integer : -1;
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
    return *scheduled >= 0 && *inflight >= 0 ? 0 : -1;
}

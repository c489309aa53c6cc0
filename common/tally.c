/* Aggregator counters in Redis: see tally.h. */
#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DAY_MS INT64_C(86400000)

/* ARGV: prefix now nw {W B ttl}... then the script's own arguments from index `at`.
 * advance() moves each window's watermark to the bucket that starts its window as of now:
 * subtracting the buckets that left, or rebuilding the totals from the buckets in the
 * window when the watermark is too far behind for the old buckets to still exist. */
#define LUA_TALLY_PRELUDE                                                                   \
    "local P = ARGV[1]\n"                                                                   \
    "local now = tonumber(ARGV[2])\n"                                                       \
    "local nw = tonumber(ARGV[3])\n"                                                        \
    "local W, B, TTL = {}, {}, {}\n"                                                        \
    "for k = 1, nw do\n"                                                                    \
    "  W[k], B[k], TTL[k] = tonumber(ARGV[1 + 3 * k]), tonumber(ARGV[2 + 3 * k]), tonumber(ARGV[3 + 3 * k])\n" \
    "end\n"                                                                                 \
    "local at = 4 + 3 * nw\n"                                                               \
    "local function fmt(x) return string.format('%d', x) end\n"                             \
    "local function hw(k) return P .. 'hw:' .. fmt(W[k]) end\n"                            \
    "local function kw(k) return P .. 'kw:' .. fmt(W[k]) end\n"                            \
    "local function hb(b, s) return P .. 'hb:' .. fmt(b) .. ':' .. fmt(s) end\n"            \
    "local function kb(b, s) return P .. 'kb:' .. fmt(b) .. ':' .. fmt(s) end\n"            \
    "local function bitadd(key, ops)\n"                                                     \
    "  local args, n = {}, 0\n"                                                             \
    "  for c, d in pairs(ops) do\n"                                                         \
    "    if d ~= 0 then\n"                                                                  \
    "      args[n + 1], args[n + 2], args[n + 3], args[n + 4] = 'INCRBY', 'u32', '#' .. fmt(c), fmt(d)\n" \
    "      n = n + 4\n"                                                                     \
    "      if n >= 4000 then redis.call('BITFIELD', key, unpack(args, 1, n)) n = 0 end\n"   \
    "    end\n"                                                                             \
    "  end\n"                                                                               \
    "  if n > 0 then redis.call('BITFIELD', key, unpack(args, 1, n)) end\n"                 \
    "end\n"                                                                                 \
    "local function hashadd(key, ops)\n"                                                    \
    "  for f, d in pairs(ops) do\n"                                                         \
    "    if d ~= 0 and redis.call('HINCRBY', key, f, d) == 0 then redis.call('HDEL', key, f) end\n" \
    "  end\n"                                                                               \
    "end\n"                                                                                 \
    "local function fold(k, s, sign)\n"                                                     \
    "  local v = redis.call('GET', hb(B[k], s))\n"                                          \
    "  if v then\n"                                                                         \
    "    local ops = {}\n"                                                                  \
    "    for j = 1, #v - 3, 4 do\n"                                                         \
    "      local a, b, c, d = string.byte(v, j, j + 3)\n"                                   \
    "      local x = ((a * 256 + b) * 256 + c) * 256 + d\n"                                 \
    "      if x > 0 then ops[(j - 1) / 4] = sign * x end\n"                                 \
    "    end\n"                                                                             \
    "    bitadd(hw(k), ops)\n"                                                              \
    "  end\n"                                                                               \
    "  local h = redis.call('HGETALL', kb(B[k], s))\n"                                      \
    "  local ops = {}\n"                                                                    \
    "  for j = 1, #h, 2 do ops[h[j]] = sign * tonumber(h[j + 1]) end\n"                     \
    "  hashadd(kw(k), ops)\n"                                                               \
    "end\n"                                                                                 \
    "local wm = {}\n"                                                                       \
    "local function advance()\n"                                                            \
    "  local names = {}\n"                                                                  \
    "  for k = 1, nw do names[k] = fmt(W[k]) end\n"                                         \
    "  local cur = redis.call('HMGET', P .. 'wm', unpack(names))\n"                         \
    "  for k = 1, nw do\n"                                                                  \
    "    local last = math.floor(now / B[k]) * B[k]\n"                                      \
    "    local first = last - W[k] + B[k]\n"                                                \
    "    local old = tonumber(cur[k])\n"                                                    \
    "    if not old or first > old then\n"                                                  \
    "      if old and first - old <= B[k] + 3600000 then\n"                                 \
    "        for s = old, first - B[k], B[k] do fold(k, s, -1) end\n"                       \
    "      else\n"                                                                          \
    "        redis.call('DEL', hw(k), kw(k))\n"                                             \
    "        for s = first, last, B[k] do fold(k, s, 1) end\n"                              \
    "      end\n"                                                                           \
    "      redis.call('HSET', P .. 'wm', names[k], fmt(first))\n"                           \
    "      wm[k] = first\n"                                                                 \
    "    else\n"                                                                            \
    "      wm[k] = old\n"                                                                   \
    "    end\n"                                                                             \
    "  end\n"                                                                               \
    "end\n"

/* ARGV after the windows: rq_ttl kpi_keep ncounters {field n}... nitems items...
 *  'r' id claim kind cellbase ts alert ns slices...
 *  'q' id ts ns slices...
 *  'k' id ts frt_key frt_ms art_key art_ms fcr tr ns slices... day
 * Returns one result character per item, as one string. */
static const char LUA_APPLY[] = LUA_TALLY_PRELUDE
    "advance()\n"
    "local i = at\n"
    "local rq_ttl, kpi_keep = ARGV[i], tonumber(ARGV[i + 1])\n"
    "i = i + 2\n"
    "local counts = {}\n"
    "local function count(f, n) counts[f] = (counts[f] or 0) + (n or 1) end\n"
    "for k = 1, tonumber(ARGV[i]) do count(ARGV[i + 2 * k - 1], tonumber(ARGV[i + 2 * k])) end\n"
    "i = i + 1 + 2 * tonumber(ARGV[i])\n"
    "local cells, hcells, ttl = {}, {}, {}\n"
    "-- the batch's targets: each window's totals and each bucket, a table cell -> delta\n"
    "-- (string keys) or field -> delta (hash keys), looked up without building key names\n"
    "local wt, wth, bt, bth = {}, {}, {}, {}\n"
    "for k = 1, nw do\n"
    "  wt[k] = {} cells[hw(k)] = wt[k]\n"
    "  wth[k] = {} hcells[kw(k)] = wth[k]\n"
    "end\n"
    "local function bucket(cache, all, mk, b, s, t)\n"
    "  local byb = cache[b]\n"
    "  if not byb then byb = {} cache[b] = byb end\n"
    "  local x = byb[s]\n"
    "  if not x then\n"
    "    local key = mk(b, s)\n"
    "    x = {} byb[s] = x all[key] = x ttl[key] = t\n"
    "  end\n"
    "  return x\n"
    "end\n"
    "-- adds the cells lst[1..n] (+1 each) of an item at ts to every window whose watermark\n"
    "-- its bucket has not passed, and to those buckets, once per bucket\n"
    "local function place(ts, lst, n)\n"
    "  local used, u = {}, 0\n"
    "  for k = 1, nw do\n"
    "    local b = B[k]\n"
    "    local s = ts - ts % b\n"
    "    if s >= wm[k] then\n"
    "      local t = wt[k]\n"
    "      for j = 1, n do local c = lst[j] t[c] = (t[c] or 0) + 1 end\n"
    "      local x = bucket(bt, cells, hb, b, s, TTL[k])\n"
    "      local dup = false\n"
    "      for j = 1, u do if used[j] == x then dup = true end end\n"
    "      if not dup then\n"
    "        u = u + 1 used[u] = x\n"
    "        for j = 1, n do local c = lst[j] x[c] = (x[c] or 0) + 1 end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "-- the same for the KPI fields of an event (field -> delta)\n"
    "local function place_kpi(ts, contrib)\n"
    "  local used, u = {}, 0\n"
    "  for k = 1, nw do\n"
    "    local b = B[k]\n"
    "    local s = ts - ts % b\n"
    "    if s >= wm[k] then\n"
    "      local t = wth[k]\n"
    "      for f, d in pairs(contrib) do t[f] = (t[f] or 0) + d end\n"
    "      local x = bucket(bth, hcells, kb, b, s, TTL[k])\n"
    "      local dup = false\n"
    "      for j = 1, u do if used[j] == x then dup = true end end\n"
    "      if not dup then\n"
    "        u = u + 1 used[u] = x\n"
    "        for f, d in pairs(contrib) do x[f] = (x[f] or 0) + d end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local lst = {}\n"
    "local res, days, alerts, kinds = {}, {}, {}, {}\n"
    "for k = 1, tonumber(ARGV[i]) do\n"
    "  local typ = ARGV[i + 1]\n"
    "  local id = ARGV[i + 2]\n"
    "  local r = 'c'\n"
    "  if typ == 'r' then\n"
    "    local key = P .. 's:' .. id\n"
    "    local kind, base, ts, alert = ARGV[i + 4], tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), ARGV[i + 7]\n"
    "    local old = redis.call('SET', key, ARGV[i + 3], 'XX', 'KEEPTTL', 'GET')\n"
    "    local st = old and string.sub(old, 1, 1)\n"
    "    if not old then\n"
    "      r = 'u'\n"
    "      count('dlq|unknown_survey')\n"
    "    elseif st == 'a' then\n"
    "      r = 'd'\n"
    "      count('duplicate')\n"
    "    elseif st ~= 'p' and st ~= 'f' and st ~= 'e' then\n"
    "      redis.call('SET', key, old, 'KEEPTTL')\n"
    "      r = 'n'\n"
    "      count('dlq|not_sent')\n"
    "    else\n"
    "      kinds[kind] = (kinds[kind] or 0) + 1\n"
    "      local ns = tonumber(ARGV[i + 8])\n"
    "      for j = 1, ns do lst[j] = tonumber(ARGV[i + 8 + j]) * 34 + base end\n"
    "      place(ts, lst, ns)\n"
    "      if alert ~= '' then alerts[#alerts + 1] = alert end\n"
    "    end\n"
    "    i = i + 8 + tonumber(ARGV[i + 8])\n"
    "  elseif typ == 'q' then\n"
    "    local ts, ns = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])\n"
    "    if redis.call('SET', P .. 'rq:' .. id, '1', 'NX', 'PX', rq_ttl) then\n"
    "      count('requests')\n"
    "      for j = 1, ns do lst[j] = tonumber(ARGV[i + 4 + j]) * 34 + 33 end\n"
    "      place(ts, lst, ns)\n"
    "    else\n"
    "      r = 'd'\n"
    "      count('requests_duplicate')\n"
    "    end\n"
    "    i = i + 4 + ns\n"
    "  else\n"
    "    local ts = tonumber(ARGV[i + 3])\n"
    "    local ns = tonumber(ARGV[i + 10])\n"
    "    local day = tonumber(ARGV[i + 11 + ns])\n"
    "    local dk = P .. 'ke:' .. fmt(day)\n"
    "    days[dk] = day\n"
    "    if redis.call('HSETNX', dk, id, '1') == 1 then\n"
    "      count('kpi_events')\n"
    "      local contrib = {}\n"
    "      local fk, fms, ak, ams = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]\n"
    "      local fcr, tr = ARGV[i + 8], ARGV[i + 9]\n"
    "      for j = 1, ns do\n"
    "        local s = ARGV[i + 10 + j] .. ':'\n"
    "        if fk ~= '' then\n"
    "          contrib[s .. 'fn'] = 1 contrib[s .. 'fs'] = tonumber(fms) contrib[s .. 'f:' .. fk] = 1\n"
    "        end\n"
    "        if ak ~= '' then\n"
    "          contrib[s .. 'an'] = 1 contrib[s .. 'as'] = tonumber(ams) contrib[s .. 'a:' .. ak] = 1\n"
    "        end\n"
    "        if fcr ~= '-' then contrib[s .. 'cn'] = 1 contrib[s .. 'c1'] = tonumber(fcr) end\n"
    "        if tr ~= '-' then contrib[s .. 'tn'] = 1 contrib[s .. 't1'] = tonumber(tr) end\n"
    "      end\n"
    "      place_kpi(ts, contrib)\n"
    "    else\n"
    "      r = 'd'\n"
    "      count('kpi_duplicate')\n"
    "    end\n"
    "    i = i + 11 + ns\n"
    "  end\n"
    "  res[k] = r\n"
    "end\n"
    "for key, ops in pairs(cells) do bitadd(key, ops) end\n"
    "for key, ops in pairs(hcells) do hashadd(key, ops) end\n"
    "for key, t in pairs(ttl) do redis.call('PEXPIRE', key, fmt(t)) end\n"
    "for key, day in pairs(days) do redis.call('PEXPIREAT', key, fmt(day + kpi_keep)) end\n"
    "if #alerts > 0 then\n"
    "  local args = {}\n"
    "  for _, a in ipairs(alerts) do args[#args + 1] = fmt(now) args[#args + 1] = a end\n"
    "  for j = 1, #args, 4000 do\n"
    "    redis.call('ZADD', P .. 'alertq', unpack(args, j, math.min(j + 3999, #args)))\n"
    "  end\n"
    "end\n"
    "for kind, n in pairs(kinds) do count('counted|' .. kind, n) end\n"
    "for f, n in pairs(counts) do redis.call('HINCRBY', P .. 'stats:aggregator', f, n) end\n"
    "return table.concat(res)\n";

/* ARGV after the windows: token lease_ms. Returns {0, holder} or {1, {first, cells, kpi}...} */
static const char LUA_READ[] = LUA_TALLY_PRELUDE
    "local token, lease = ARGV[at], ARGV[at + 1]\n"
    "if token ~= '' then\n"
    "  local cur = redis.call('GET', P .. 'leader')\n"
    "  if cur and cur ~= token then return {0, cur} end\n"
    "  redis.call('SET', P .. 'leader', token, 'PX', lease)\n"
    "end\n"
    "advance()\n"
    "local out = {1}\n"
    "for k = 1, nw do\n"
    "  out[#out + 1] = {fmt(wm[k]), redis.call('GET', hw(k)) or '', redis.call('HGETALL', kw(k))}\n"
    "end\n"
    "return out\n";

/* ARGV: prefix cap names... Returns one id per name (-1: past the cap). */
static const char LUA_REGISTER[] =
    "local P, cap = ARGV[1], tonumber(ARGV[2])\n"
    "local out = {}\n"
    "for k = 3, #ARGV do\n"
    "  local name = ARGV[k]\n"
    "  local id = redis.call('HGET', P .. 'slices', name)\n"
    "  if not id then\n"
    "    local sep = string.find(name, '|', 1, true)\n"
    "    local dim, val = string.sub(name, 1, sep - 1), string.sub(name, sep + 1)\n"
    "    local n = tonumber(redis.call('HGET', P .. 'slicen', dim) or '0')\n"
    "    if val == '" SB_TALLY_OTHER "' or n < cap then\n"
    "      id = redis.call('HINCRBY', P .. 'slicen', '#', 1)\n"
    "      redis.call('HSET', P .. 'slices', name, id)\n"
    "      if val ~= '" SB_TALLY_OTHER "' then redis.call('HINCRBY', P .. 'slicen', dim, 1) end\n"
    "    else\n"
    "      id = -1\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = tonumber(id)\n"
    "end\n"
    "return out\n";

/* A small open-addressing map "dim|value" -> id (ids -1 for capped names). */
typedef struct entry {
    char *name;
    int64_t id;
} entry_t;

struct sb_tally {
    sb_store_t *store;
    const sb_config_t *cfg;
    sb_store_script_t *apply, *read, *reg;
    sb_store_args_t args;
    entry_t *map;
    size_t map_n, map_cap;
    char **names; /* id -> name */
    size_t n_names;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static entry_t *map_find(sb_tally_t *t, const char *name)
{
    if (!t->map_cap) return NULL;
    for (size_t i = hash_str(name) & (t->map_cap - 1);; i = (i + 1) & (t->map_cap - 1)) {
        if (!t->map[i].name) return NULL;
        if (!strcmp(t->map[i].name, name)) return &t->map[i];
    }
}

static void map_put(sb_tally_t *t, const char *name, int64_t id)
{
    entry_t *e = map_find(t, name);
    if (e) {
        e->id = id;
        return;
    }
    if ((t->map_n + 1) * 2 > t->map_cap) {
        size_t cap = t->map_cap ? t->map_cap * 2 : 1024;
        entry_t *old = t->map;
        size_t oldcap = t->map_cap;
        t->map = calloc(cap, sizeof *t->map);
        if (!t->map) abort();
        t->map_cap = cap;
        t->map_n = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].name) {
                size_t j = hash_str(old[i].name) & (cap - 1);
                while (t->map[j].name) j = (j + 1) & (cap - 1);
                t->map[j] = old[i];
                t->map_n++;
            }
        free(old);
    }
    size_t j = hash_str(name) & (t->map_cap - 1);
    while (t->map[j].name) j = (j + 1) & (t->map_cap - 1);
    t->map[j].name = strdup(name);
    if (!t->map[j].name) abort();
    t->map[j].id = id;
    t->map_n++;
}

static void name_put(sb_tally_t *t, int64_t id, const char *name)
{
    if (id < 0 || id > 100000000) return;
    if ((size_t)id >= t->n_names) {
        size_t n = (size_t)id + 1024;
        t->names = realloc(t->names, n * sizeof *t->names);
        if (!t->names) abort();
        memset(t->names + t->n_names, 0, (n - t->n_names) * sizeof *t->names);
        t->n_names = n;
    }
    if (!t->names[id]) {
        t->names[id] = strdup(name);
        if (!t->names[id]) abort();
    }
}

sb_tally_t *sb_tally_new(sb_store_t *store, const sb_config_t *cfg)
{
    sb_tally_t *t = calloc(1, sizeof *t);
    if (!t) abort();
    t->store = store;
    t->cfg = cfg;
    t->apply = sb_store_script_new(LUA_APPLY);
    t->read = sb_store_script_new(LUA_READ);
    t->reg = sb_store_script_new(LUA_REGISTER);
    if (!t->apply || !t->read || !t->reg) abort();
    return t;
}

void sb_tally_free(sb_tally_t *t)
{
    if (!t) return;
    sb_store_script_free(t->apply);
    sb_store_script_free(t->read);
    sb_store_script_free(t->reg);
    sb_store_args_free(&t->args);
    for (size_t i = 0; i < t->map_cap; i++) free(t->map[i].name);
    free(t->map);
    for (size_t i = 0; i < t->n_names; i++) free(t->names[i]);
    free(t->names);
    free(t);
}

static redisReply *run(sb_tally_t *t, const sb_store_script_t *sc, const char *what)
{
    redisReply *r = sb_store_eval(t->store, sc, 0, t->args.argc, t->args.argv, t->args.lens);
    if (r && r->type == REDIS_REPLY_ERROR) {
        sb_error("redis script failed op=%s err=\"%s\"", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int sb_tally_slices(sb_tally_t *t, const char *const *names, size_t n, int64_t *ids,
                    bool *capped)
{
    /* register the unknown names (and, for capped ones, their dimension's "_other") */
    for (int pass = 0; pass < 2; pass++) {
        sb_store_args_reset(&t->args);
        sb_store_args_str(&t->args, sb_store_prefix(t->store));
        sb_store_args_int(&t->args, t->cfg->max_dimension_values);
        char other[SB_TALLY_NAME_MAX + 8];
        size_t start = (size_t)t->args.argc;
        for (size_t i = 0; i < n; i++) {
            entry_t *e = map_find(t, names[i]);
            if (!e) {
                if (pass == 0) sb_store_args_str(&t->args, names[i]);
                continue;
            }
            if (e->id < 0 && pass == 1) {
                const char *bar = strchr(names[i], '|');
                snprintf(other, sizeof other, "%.*s|%s", (int)(bar - names[i]), names[i],
                         SB_TALLY_OTHER);
                if (!map_find(t, other)) sb_store_args_copy(&t->args, other, strlen(other));
            }
        }
        if ((size_t)t->args.argc == start) continue;
        redisReply *r = run(t, t->reg, "register");
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)t->args.argc - start) {
            freeReplyObject(r);
            return -1;
        }
        for (size_t k = 0; k < r->elements; k++) {
            const char *nm = t->args.argv[start + k];
            map_put(t, nm, r->element[k]->integer);
            if (r->element[k]->integer > 0) name_put(t, r->element[k]->integer, nm);
        }
        freeReplyObject(r);
    }
    for (size_t i = 0; i < n; i++) {
        entry_t *e = map_find(t, names[i]);
        if (!e) return -1;
        if (capped) capped[i] = e->id < 0;
        if (e->id >= 0) {
            ids[i] = e->id;
            continue;
        }
        char other[SB_TALLY_NAME_MAX + 8];
        const char *bar = strchr(names[i], '|');
        snprintf(other, sizeof other, "%.*s|%s", (int)(bar - names[i]), names[i], SB_TALLY_OTHER);
        entry_t *o = map_find(t, other);
        if (!o || o->id < 0) return -1;
        ids[i] = o->id;
    }
    return 0;
}

const char *sb_tally_slice_name(sb_tally_t *t, int64_t id)
{
    if (id > 0 && (size_t)id < t->n_names && t->names[id]) return t->names[id];
    char key[300];
    sb_store_key(t->store, key, sizeof key, "slices");
    redisReply *r = sb_store_cmd(t->store, "HGETALL %s", key);
    if (!r) return NULL;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            int64_t sid = strtoll(r->element[i + 1]->str, NULL, 10);
            name_put(t, sid, r->element[i]->str);
            map_put(t, r->element[i]->str, sid);
        }
    freeReplyObject(r);
    if (id > 0 && (size_t)id < t->n_names && t->names[id]) return t->names[id];
    return NULL;
}

/* prefix now nw {W B ttl}... */
static void args_windows(sb_tally_t *t, int64_t now_ms)
{
    const sb_config_t *cfg = t->cfg;
    sb_store_args_reset(&t->args);
    sb_store_args_str(&t->args, sb_store_prefix(t->store));
    sb_store_args_int(&t->args, now_ms);
    sb_store_args_int(&t->args, (int64_t)cfg->n_windows);
    for (size_t k = 0; k < cfg->n_windows; k++) {
        int64_t w = cfg->windows_ms[k], b = sb_window_bucket_width(w), ttl = 0;
        /* buckets of one width serve every window of that width: the longest one's TTL */
        for (size_t j = 0; j < cfg->n_windows; j++)
            if (sb_window_bucket_width(cfg->windows_ms[j]) == b) {
                int64_t x = sb_window_bucket_ttl_ms(cfg->windows_ms[j], cfg->allowed_lateness_ms);
                if (x > ttl) ttl = x;
            }
        sb_store_args_int(&t->args, w);
        sb_store_args_int(&t->args, b);
        sb_store_args_int(&t->args, ttl);
    }
}

int sb_tally_apply(sb_tally_t *t, sb_tally_item_t *items, size_t n,
                   const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms)
{
    const sb_config_t *cfg = t->cfg;
    int64_t longest = cfg->n_windows ? cfg->windows_ms[cfg->n_windows - 1] : DAY_MS;
    args_windows(t, now_ms);
    sb_store_args_t *a = &t->args;
    /* a request is counted once while its survey can still be in a window */
    sb_store_args_int(a, longest + cfg->allowed_lateness_ms + 2 * DAY_MS);
    /* KPI event ids are kept until their day can no longer be in any window */
    sb_store_args_int(a, longest + cfg->allowed_lateness_ms + 2 * DAY_MS);
    sb_store_args_int(a, (int64_t)n_counters);
    for (size_t i = 0; i < n_counters; i++) {
        sb_store_args_str(a, counters[i].field);
        sb_store_args_int(a, counters[i].n);
    }
    sb_store_args_int(a, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        const sb_tally_item_t *it = &items[i];
        char typ[2] = {it->type, 0};
        sb_store_args_copy(a, typ, 1);
        sb_store_args_str(a, it->id);
        if (it->type == SB_TALLY_RESPONSE) {
            sb_store_args_add(a, it->claim, it->claim_len);
            sb_store_args_str(a, sb_kind_names[it->kind]);
            sb_store_args_int(a, sb_tally_cell(0, (int)it->kind, it->score));
            sb_store_args_int(a, it->ts_ms);
            sb_store_args_str(a, it->alert ? it->alert : "");
        } else if (it->type == SB_TALLY_REQUEST) {
            sb_store_args_int(a, it->ts_ms);
        } else {
            sb_store_args_int(a, it->ts_ms);
            if (it->has_frt) {
                sb_store_args_int(a, it->frt_key);
                sb_store_args_int(a, it->frt_ms);
            } else {
                sb_store_args_str(a, "");
                sb_store_args_str(a, "");
            }
            if (it->has_art) {
                sb_store_args_int(a, it->art_key);
                sb_store_args_int(a, it->art_ms);
            } else {
                sb_store_args_str(a, "");
                sb_store_args_str(a, "");
            }
            sb_store_args_str(a, it->fcr < 0 ? "-" : it->fcr ? "1" : "0");
            sb_store_args_str(a, it->transferred < 0 ? "-" : it->transferred ? "1" : "0");
        }
        sb_store_args_int(a, (int64_t)it->n_slices);
        for (size_t j = 0; j < it->n_slices; j++) sb_store_args_int(a, it->slices[j]);
        if (it->type == SB_TALLY_KPI)
            sb_store_args_int(a, it->day_ms ? it->day_ms
                                            : sb_window_bucket_start(it->ts_ms, SB_WINDOW_DAY_MS));
    }
    redisReply *r = run(t, t->apply, "tally");
    int rc = -1;
    if (r && r->type == REDIS_REPLY_STRING && r->len == n) {
        for (size_t i = 0; i < n; i++) items[i].result = r->str[i];
        rc = 0;
    } else if (r) {
        sb_error("tally script returned an unexpected reply type=%d", r->type);
    }
    if (r) freeReplyObject(r);
    return rc;
}

int sb_tally_alerts_done(sb_tally_t *t, const char *const *alerts, size_t n)
{
    if (n == 0) return 0;
    char key[300];
    sb_store_key(t->store, key, sizeof key, "alertq");
    sb_store_args_reset(&t->args);
    sb_store_args_str(&t->args, "ZREM");
    sb_store_args_str(&t->args, key);
    for (size_t i = 0; i < n; i++) sb_store_args_str(&t->args, alerts[i]);
    redisReply *r = sb_store_cmdargv(t->store, t->args.argc, t->args.argv, t->args.lens);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (r) freeReplyObject(r);
    return rc;
}

int sb_tally_alerts_stale(sb_tally_t *t, int64_t before_ms, char **out, size_t max)
{
    char key[300];
    sb_store_key(t->store, key, sizeof key, "alertq");
    redisReply *r = sb_store_cmd(t->store, "ZRANGEBYSCORE %s -inf (%lld LIMIT 0 %lld", key,
                                 (long long)before_ms, (long long)max);
    if (!r) return -1;
    int n = -1;
    if (r->type == REDIS_REPLY_ARRAY) {
        n = 0;
        for (size_t i = 0; i < r->elements && (size_t)n < max; i++) {
            out[n] = strdup(r->element[i]->str);
            if (!out[n]) abort();
            n++;
        }
    }
    freeReplyObject(r);
    return n;
}

/* ---------------------------------------------------------------- reading */

static sb_tally_kpi_t *kpi_slot(sb_tally_kpi_t **kpi, size_t *n, size_t *cap, int64_t slice)
{
    /* fields of one slice arrive mostly together: check the last slot first */
    if (*n && (*kpi)[*n - 1].slice == slice) return &(*kpi)[*n - 1];
    for (size_t i = 0; i < *n; i++)
        if ((*kpi)[i].slice == slice) return &(*kpi)[i];
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        sb_tally_kpi_t *k = realloc(*kpi, c * sizeof *k);
        if (!k) return NULL;
        *kpi = k;
        *cap = c;
    }
    sb_tally_kpi_t *k = &(*kpi)[(*n)++];
    memset(k, 0, sizeof *k);
    k->slice = slice;
    return k;
}

static int dist_add(sb_tally_dist_t *d, int64_t key, int64_t count)
{
    if (d->n_keys == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 16;
        int64_t *k = realloc(d->keys, c * sizeof *k);
        if (!k) return -1;
        d->keys = k;
        uint64_t *n = realloc(d->counts, c * sizeof *n);
        if (!n) return -1;
        d->counts = n;
        d->cap = c;
    }
    d->keys[d->n_keys] = key;
    d->counts[d->n_keys] = count > 0 ? (uint64_t)count : 0;
    d->n_keys++;
    return 0;
}

int sb_tally_kpi_field(sb_tally_kpi_t **kpi, size_t *n, size_t *cap, const char *field,
                       int64_t value)
{
    char *end;
    if (field[0] < '0' || field[0] > '9') return 0; /* no sign, no space */
    long long slice = strtoll(field, &end, 10);
    if (*end != ':') return 0;
    const char *f = end + 1;
    /* what the field is, before a slot is made for its slice: unknown fields are ignored */
    enum { NONE, DN, DS, DKEY, CN, C1, TN, T1 } what = NONE;
    long long key = 0;
    if ((f[0] == 'f' || f[0] == 'a') && f[1]) {
        if (!strcmp(f + 1, "n")) what = DN;
        else if (!strcmp(f + 1, "s")) what = DS;
        else if (f[1] == ':' && f[2] >= '0' && f[2] <= '9') {
            key = strtoll(f + 2, &end, 10);
            if (!*end) what = DKEY;
        }
    } else if (!strcmp(f, "cn")) what = CN;
    else if (!strcmp(f, "c1")) what = C1;
    else if (!strcmp(f, "tn")) what = TN;
    else if (!strcmp(f, "t1")) what = T1;
    if (what == NONE) return 0;
    sb_tally_kpi_t *k = kpi_slot(kpi, n, cap, slice);
    if (!k) return -1;
    uint64_t v = value > 0 ? (uint64_t)value : 0;
    sb_tally_dist_t *d = f[0] == 'f' ? &k->frt : &k->art;
    switch (what) {
    case DN: d->n = v; break;
    case DS: d->sum_ms = value; break;
    case DKEY: return dist_add(d, key, value);
    case CN: k->fcr_n = v; break;
    case C1: k->fcr_yes = v; break;
    case TN: k->tr_n = v; break;
    case T1: k->tr_yes = v; break;
    default: break;
    }
    return 0;
}

static int cmp_kpi(const void *a, const void *b)
{
    int64_t x = ((const sb_tally_kpi_t *)a)->slice, y = ((const sb_tally_kpi_t *)b)->slice;
    return x < y ? -1 : x > y;
}

void sb_tally_kpi_sort(sb_tally_kpi_t *kpi, size_t n)
{
    if (n > 1) qsort(kpi, n, sizeof *kpi, cmp_kpi);
}

static const sb_tally_kpi_t *kpi_of(const sb_tally_window_t *w, int64_t slice)
{
    size_t lo = 0, hi = w->n_kpi;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->kpi[mid].slice < slice) lo = mid + 1;
        else hi = mid;
    }
    return lo < w->n_kpi && w->kpi[lo].slice == slice ? &w->kpi[lo] : NULL;
}

bool sb_tally_slice_active(const sb_tally_window_t *w, int64_t slice)
{
    for (int c = 0; c < SB_TALLY_CELLS; c++) {
        size_t i = (size_t)(slice * SB_TALLY_CELLS + c);
        if (i < w->n_cells && w->cells[i]) return true;
    }
    const sb_tally_kpi_t *k = kpi_of(w, slice);
    return k && (k->frt.n || k->art.n || k->fcr_n || k->tr_n);
}

static void hist_of(const sb_tally_window_t *w, int64_t slice, int kind, sb_hist_t *h)
{
    memset(h, 0, sizeof *h);
    for (int s = 0; s <= SB_SCORE_MAX; s++) {
        size_t i = (size_t)sb_tally_cell(slice, kind, s);
        if (i < w->n_cells) h->n[s] = w->cells[i];
    }
}

void sb_tally_metric(const sb_tally_window_t *w, int64_t slice, sb_metric_t m,
                     const sb_config_t *cfg, sb_metric_value_t *out)
{
    sb_hist_t h;
    const sb_tally_kpi_t *k = kpi_of(w, slice);
    static const sb_tally_kpi_t none;
    if (!k) k = &none;
    switch (m) {
    case SB_METRIC_NPS:
        hist_of(w, slice, SB_KIND_NPS, &h);
        sb_stats_nps(&h, out);
        break;
    case SB_METRIC_CSAT:
        hist_of(w, slice, SB_KIND_CSAT, &h);
        sb_stats_csat(&h, &cfg->scales[SB_KIND_CSAT], out);
        break;
    case SB_METRIC_CES:
        hist_of(w, slice, SB_KIND_CES, &h);
        sb_stats_ces(&h, &cfg->scales[SB_KIND_CES], out);
        break;
    case SB_METRIC_RESPONSE_RATE: {
        uint64_t responses = 0, sent = 0;
        for (int kind = 0; kind < SB_KIND__N; kind++) {
            hist_of(w, slice, kind, &h);
            responses += sb_stats_hist_total(&h);
        }
        size_t i = (size_t)sb_tally_cell(slice, -1, 0);
        if (i < w->n_cells) sent = w->cells[i];
        sb_stats_rate(responses, sent, out);
        break;
    }
    case SB_METRIC_FRT:
    case SB_METRIC_ART: {
        const sb_tally_dist_t *d = m == SB_METRIC_FRT ? &k->frt : &k->art;
        if (sb_stats_kpi(d->keys, d->counts, d->n_keys, (double)d->sum_ms / 1000.0, d->n, out))
            memset(out, 0, sizeof *out);
        out->form = SB_STATS_KPI;
        break;
    }
    case SB_METRIC_FCR:
        sb_stats_rate(k->fcr_yes, k->fcr_n, out);
        break;
    case SB_METRIC_TRANSFER_RATE:
        sb_stats_rate(k->tr_yes, k->tr_n, out);
        break;
    default:
        memset(out, 0, sizeof *out);
    }
}

void sb_tally_snapshot_free(sb_tally_snapshot_t *s)
{
    for (size_t k = 0; k < s->n; k++) {
        sb_tally_window_t *w = &s->w[k];
        free(w->cells);
        for (size_t i = 0; i < w->n_kpi; i++) {
            free(w->kpi[i].frt.keys), free(w->kpi[i].frt.counts);
            free(w->kpi[i].art.keys), free(w->kpi[i].art.counts);
        }
        free(w->kpi);
    }
    memset(s, 0, sizeof *s);
}

int sb_tally_read(sb_tally_t *t, int64_t now_ms, const char *leader, int64_t lease_ms,
                  sb_tally_snapshot_t *out)
{
    memset(out, 0, sizeof *out);
    args_windows(t, now_ms);
    sb_store_args_str(&t->args, leader ? leader : "");
    sb_store_args_int(&t->args, lease_ms);
    redisReply *r = run(t, t->read, "read");
    if (!r) return -1;
    int rc = -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) goto done;
    if (r->element[0]->integer == 0) {
        rc = 0;
        goto done;
    }
    if (r->elements != 1 + t->cfg->n_windows) goto done;
    out->as_of_ms = now_ms;
    out->n = t->cfg->n_windows;
    for (size_t k = 0; k < out->n; k++) {
        const redisReply *e = r->element[1 + k];
        sb_tally_window_t *w = &out->w[k];
        w->window_ms = t->cfg->windows_ms[k];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 3) goto bad;
        w->first_ms = strtoll(e->element[0]->str, NULL, 10);
        const redisReply *cells = e->element[1];
        w->n_cells = cells->len / 4;
        w->cells = calloc(w->n_cells ? w->n_cells : 1, sizeof *w->cells);
        if (!w->cells) abort();
        const unsigned char *p = (const unsigned char *)cells->str;
        for (size_t i = 0; i < w->n_cells; i++, p += 4)
            w->cells[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        const redisReply *h = e->element[2];
        size_t cap = 0;
        for (size_t i = 0; i + 1 < h->elements; i += 2)
            if (sb_tally_kpi_field(&w->kpi, &w->n_kpi, &cap, h->element[i]->str,
                                   strtoll(h->element[i + 1]->str, NULL, 10)))
                abort();
        sb_tally_kpi_sort(w->kpi, w->n_kpi);
    }
    rc = 1;
    goto done;
bad:
    sb_tally_snapshot_free(out);
done:
    freeReplyObject(r);
    return rc;
}

int sb_tally_release_lease(sb_tally_t *t, const char *token)
{
    static const char lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                              "return redis.call('DEL', KEYS[1]) end return 0";
    char key[300];
    sb_store_key(t->store, key, sizeof key, "leader");
    redisReply *r = sb_store_cmd(t->store, "EVAL %s 1 %s %s", lua, key, token);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (r) freeReplyObject(r);
    return rc;
}

size_t sb_tally_slice_names(const sb_config_t *cfg, const char (*vals)[SB_STR_MAX + 1],
                            char (*names)[SB_TALLY_NAME_MAX])
{
    size_t n = 0;
    snprintf(names[n++], SB_TALLY_NAME_MAX, "all|all");
    for (size_t i = 0; i < cfg->n_dimensions; i++) {
        sb_dim_t d = cfg->dimensions[i];
        if (d == SB_DIM_ALL || !vals[d][0]) continue;
        snprintf(names[n++], SB_TALLY_NAME_MAX, "%s|%s", sb_dim_names[d], vals[d]);
    }
    return n;
}

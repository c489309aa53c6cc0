/* Aggregator counters in Redis: see tally.h. */
#include "tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DAY_MS INT64_C(86400000)

/* ARGV: prefix now nw {W B}... then the script's own arguments from index `at`.
 * advance() moves each window's watermark to the bucket that starts its window as of now:
 * subtracting the buckets that left, or rebuilding the totals from the buckets in the
 * window when the watermark is too far behind for the old buckets to still exist. */
#define LUA_TALLY_PRELUDE                                                                   \
    "local P = ARGV[1]\n"                                                                   \
    "local now = tonumber(ARGV[2])\n"                                                       \
    "local nw = tonumber(ARGV[3])\n"                                                        \
    "local W, B = {}, {}\n"                                                                 \
    "for k = 1, nw do W[k], B[k] = tonumber(ARGV[2 + 2 * k]), tonumber(ARGV[3 + 2 * k]) end\n" \
    "local at = 4 + 2 * nw\n"                                                               \
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

/* ARGV after the windows:
 *  wm...            the watermark of each window the caller planned with
 *  rq_ttl kpi_keep
 *  nr {id}... responses to claim; nq {id}... requests; nk {id day}... KPI events
 *  ng {type key ttl na args...}...  the planned additions: type 'b' (BITFIELD arguments) or
 *                   'h' (field delta pairs for HINCRBY); ttl '0' or the key's new lifetime
 *  nalerts alerts...  ncounters {field n}...
 * Claims come first. When every claim is new and every watermark is the planned one, the
 * additions are applied and the reply is {1}. Otherwise nothing of the batch stays (claims
 * made are undone) and the reply says why: {0, one result character per claim ('c' new,
 * 'd' duplicate, 'u' unknown survey, 'n' not sent)} or {2, each window's watermark}. */
static const char LUA_APPLY[] = LUA_TALLY_PRELUDE
    "advance()\n"
    "local i = at\n"
    "local cur, moved = {2}, false\n"
    "for k = 1, nw do\n"
    "  cur[k + 1] = fmt(wm[k])\n"
    "  if wm[k] ~= tonumber(ARGV[i + k - 1]) then moved = true end\n"
    "end\n"
    "if moved then return cur end\n"
    "i = i + nw\n"
    "local rq_ttl, kpi_keep = ARGV[i], tonumber(ARGV[i + 1])\n"
    "i = i + 2\n"
    "local res, bad = {}, false\n"
    "local rk, rv, qk, kk, kf, days = {}, {}, {}, {}, {}, {}\n"
    "-- a claim sets the record's first byte, its state, to 'a' and reads the old one: the\n"
    "-- rest of the record and its lifetime stay, and the AOF gets a few bytes, not a record\n"
    "local ANS = string.byte('a')\n"
    "local fresh = {[string.byte('p')] = true, [string.byte('f')] = true, [string.byte('e')] = true}\n"
    "for k = 1, tonumber(ARGV[i]) do\n"
    "  local key = P .. 's:' .. ARGV[i + k]\n"
    "  local old = redis.call('BITFIELD', key, 'SET', 'u8', 0, ANS)[1]\n"
    "  local r = 'c'\n"
    "  if old == 0 then\n"
    "    r = 'u'\n"
    "    redis.call('DEL', key) -- there was no record: BITFIELD made one\n"
    "  elseif old == ANS then\n"
    "    r = 'd'\n"
    "  elseif not fresh[old] then\n"
    "    r = 'n'\n"
    "    redis.call('BITFIELD', key, 'SET', 'u8', 0, old)\n"
    "  end\n"
    "  if r == 'c' then rk[#rk + 1] = key rv[#rv + 1] = old else bad = true end\n"
    "  res[#res + 1] = r\n"
    "end\n"
    "i = i + 1 + tonumber(ARGV[i])\n"
    "for k = 1, tonumber(ARGV[i]) do\n"
    "  local key = P .. 'rq:' .. ARGV[i + k]\n"
    "  if redis.call('SET', key, '1', 'NX', 'PX', rq_ttl) then\n"
    "    qk[#qk + 1] = key res[#res + 1] = 'c'\n"
    "  else\n"
    "    bad = true res[#res + 1] = 'd'\n"
    "  end\n"
    "end\n"
    "i = i + 1 + tonumber(ARGV[i])\n"
    "for k = 1, tonumber(ARGV[i]) do\n"
    "  local id, day = ARGV[i + 2 * k - 1], ARGV[i + 2 * k]\n"
    "  local dk = P .. 'ke:' .. day\n"
    "  days[dk] = tonumber(day)\n"
    "  if redis.call('HSETNX', dk, id, '1') == 1 then\n"
    "    kk[#kk + 1] = dk kf[#kf + 1] = id res[#res + 1] = 'c'\n"
    "  else\n"
    "    bad = true res[#res + 1] = 'd'\n"
    "  end\n"
    "end\n"
    "i = i + 1 + 2 * tonumber(ARGV[i])\n"
    "if bad then\n"
    "  for j = 1, #rk do redis.call('BITFIELD', rk[j], 'SET', 'u8', 0, rv[j]) end\n"
    "  for j = 1, #qk do redis.call('DEL', qk[j]) end\n"
    "  for j = 1, #kk do redis.call('HDEL', kk[j], kf[j]) end\n"
    "  return {0, table.concat(res)}\n"
    "end\n"
    "for g = 1, tonumber(ARGV[i]) do\n"
    "  local typ, key, ttl, na = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])\n"
    "  i = i + 4\n"
    "  if typ == 'b' then\n"
    "    redis.call('BITFIELD', key, unpack(ARGV, i + 1, i + na))\n"
    "  else\n"
    "    for j = i + 1, i + na, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end\n"
    "  end\n"
    "  if ttl ~= '0' then redis.call('PEXPIRE', key, ttl) end\n"
    "  i = i + na\n"
    "end\n"
    "i = i + 1\n"
    "for key, day in pairs(days) do redis.call('PEXPIREAT', key, fmt(day + kpi_keep)) end\n"
    "local na = tonumber(ARGV[i])\n"
    "if na > 0 then\n"
    "  local args = {}\n"
    "  for j = 1, na do args[2 * j - 1] = ARGV[2] args[2 * j] = ARGV[i + j] end\n"
    "  for j = 1, #args, 4000 do\n"
    "    redis.call('ZADD', P .. 'alertq', unpack(args, j, math.min(j + 3999, #args)))\n"
    "  end\n"
    "end\n"
    "i = i + 1 + na\n"
    "for k = 1, tonumber(ARGV[i]) do\n"
    "  redis.call('HINCRBY', P .. 'stats:aggregator', ARGV[i + 2 * k - 1], ARGV[i + 2 * k])\n"
    "end\n"
    "return {1}\n";

/* ARGV after the windows: token lease_ms. Returns {0, holder}, or {1, {first, cells, kpi}...}
 * ({3, ...} when the lease was free and this token has just taken it) */
static const char LUA_READ[] = LUA_TALLY_PRELUDE
    "local token, lease = ARGV[at], ARGV[at + 1]\n"
    "local out = {1}\n"
    "if token ~= '' then\n"
    "  local cur = redis.call('GET', P .. 'leader')\n"
    "  if cur and cur ~= token then return {0, cur} end\n"
    "  if not cur then out[1] = 3 end\n"
    "  redis.call('SET', P .. 'leader', token, 'PX', lease)\n"
    "end\n"
    "advance()\n"
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

/* A batch between planning and the script's answer. */
struct sb_tally_batch {
    int64_t planned[SB_WINDOW_MAX]; /* the watermarks it was planned with */
    int *first;                     /* first occurrence of each item, -1 */
    bool *use;                      /* the items its attempt claims */
    size_t cap;
    sb_store_args_t args; /* the script's arguments */
};

struct sb_tally {
    sb_store_t *store;
    const sb_config_t *cfg;
    sb_store_script_t *apply, *read, *reg;
    sb_store_args_t args; /* scratch of the other calls */
    entry_t *map;
    size_t map_n, map_cap;
    char **names; /* id -> name */
    size_t n_names;
    int64_t wm[SB_WINDOW_MAX]; /* each window's watermark as last seen (a planning guess) */
    sb_tally_batch_t *own;     /* the batch of sb_tally_apply */
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
    t->own = sb_tally_batch_new();
    return t;
}

void sb_tally_free(sb_tally_t *t)
{
    if (!t) return;
    sb_store_script_free(t->apply);
    sb_store_script_free(t->read);
    sb_store_script_free(t->reg);
    sb_store_args_free(&t->args);
    sb_tally_batch_free(t->own);
    for (size_t i = 0; i < t->map_cap; i++) free(t->map[i].name);
    free(t->map);
    for (size_t i = 0; i < t->n_names; i++) free(t->names[i]);
    free(t->names);
    free(t);
}

sb_tally_batch_t *sb_tally_batch_new(void)
{
    sb_tally_batch_t *b = calloc(1, sizeof *b);
    if (!b) abort();
    return b;
}

void sb_tally_batch_free(sb_tally_batch_t *b)
{
    if (!b) return;
    free(b->first);
    free(b->use);
    sb_store_args_free(&b->args);
    free(b);
}

static redisReply *run(sb_tally_t *t, sb_store_t *st, const sb_store_script_t *sc,
                       const char *what)
{
    redisReply *r = sb_store_eval(st, sc, 0, t->args.argc, t->args.argv, t->args.lens);
    if (r && r->type == REDIS_REPLY_ERROR) {
        sb_store_refused(st, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int sb_tally_slices(sb_tally_t *t, const char *const *names, size_t n, int64_t *ids,
                    bool *capped)
{
    return sb_tally_slices_via(t, t->store, names, n, ids, capped);
}

int sb_tally_slices_via(sb_tally_t *t, sb_store_t *via, const char *const *names, size_t n,
                        int64_t *ids, bool *capped)
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
        redisReply *r = run(t, via, t->reg, "register");
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

static int64_t bucket_ttl(const sb_config_t *cfg, int64_t width)
{
    /* buckets of one width serve every window of that width: the longest one's lifetime */
    int64_t ttl = 0;
    for (size_t j = 0; j < cfg->n_windows; j++)
        if (sb_window_bucket_width(cfg->windows_ms[j]) == width) {
            int64_t x = sb_window_bucket_ttl_ms(cfg->windows_ms[j], cfg->allowed_lateness_ms);
            if (x > ttl) ttl = x;
        }
    return ttl;
}

/* prefix now nw {W B}... into a (reset first) */
static void args_windows(sb_tally_t *t, sb_store_args_t *a, int64_t now_ms)
{
    const sb_config_t *cfg = t->cfg;
    sb_store_args_reset(a);
    sb_store_args_str(a, sb_store_prefix(t->store));
    sb_store_args_int(a, now_ms);
    sb_store_args_int(a, (int64_t)cfg->n_windows);
    for (size_t k = 0; k < cfg->n_windows; k++) {
        int64_t w = cfg->windows_ms[k];
        sb_store_args_int(a, w);
        sb_store_args_int(a, sb_window_bucket_width(w));
    }
}

/* ---------------------------------------------------------------- planning */

/* A merge table: (group, code, a, b) -> sum of deltas, open addressing. */
typedef struct acc_slot {
    int64_t g, a, b, d;
    int code;
    bool used;
} acc_slot_t;

typedef struct acc {
    acc_slot_t *s;
    size_t cap, n;
} acc_t;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static size_t acc_hash(int64_t g, int code, int64_t a, int64_t b)
{
    return (size_t)mix64((uint64_t)g * 0x9e3779b97f4a7c15ULL ^ mix64((uint64_t)a) ^
                         mix64((uint64_t)b + 0x632be59bd9b4e019ULL) ^ (uint64_t)code << 56);
}

static void acc_put(acc_t *m, int64_t g, int code, int64_t a, int64_t b, int64_t d);

static void acc_grow(acc_t *m)
{
    acc_t old = *m;
    m->cap = old.cap ? old.cap * 2 : 256;
    m->n = 0;
    m->s = calloc(m->cap, sizeof *m->s);
    if (!m->s) abort();
    for (size_t i = 0; i < old.cap; i++)
        if (old.s[i].used) acc_put(m, old.s[i].g, old.s[i].code, old.s[i].a, old.s[i].b, old.s[i].d);
    free(old.s);
}

static void acc_put(acc_t *m, int64_t g, int code, int64_t a, int64_t b, int64_t d)
{
    if ((m->n + 1) * 2 > m->cap) acc_grow(m);
    for (size_t i = acc_hash(g, code, a, b) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        acc_slot_t *s = &m->s[i];
        if (!s->used) {
            *s = (acc_slot_t){g, a, b, d, code, true};
            m->n++;
            return;
        }
        if (s->g == g && s->code == code && s->a == a && s->b == b) {
            s->d += d;
            return;
        }
    }
}

/* The used slots, compacted to the front of the table (which is then no longer a table). */
static size_t acc_take(acc_t *m)
{
    size_t k = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->s[i].used) m->s[k++] = m->s[i];
    return k;
}

static int cmp_slot_g(const void *x, const void *y)
{
    const acc_slot_t *a = x, *b = y;
    return a->g < b->g ? -1 : a->g > b->g;
}

static int cmp_op(const void *x, const void *y)
{
    const sb_tally_op_t *a = x, *b = y;
    bool ka = a->code != SB_TALLY_OP_CELL, kb = b->code != SB_TALLY_OP_CELL;
#define CMP(f)                                                                                     \
    if (a->f != b->f) return a->f < b->f ? -1 : 1
    CMP(target);
    CMP(width);
    CMP(start);
    if (ka != kb) return ka ? 1 : -1;
    CMP(a);
    CMP(code);
    CMP(b);
#undef CMP
    return 0;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t r = a % b;
        a = b, b = r;
    }
    return a;
}

/* Adds an item's contributions to the class table: score cells, or KPI fields per slice. */
static void plan_item(acc_t *m, int64_t cls, const sb_tally_item_t *it)
{
    for (size_t j = 0; j < it->n_slices; j++) {
        int64_t s = it->slices[j];
        if (it->type == SB_TALLY_RESPONSE) {
            acc_put(m, cls, SB_TALLY_OP_CELL, sb_tally_cell(s, (int)it->kind, it->score), 0, 1);
        } else if (it->type == SB_TALLY_REQUEST) {
            acc_put(m, cls, SB_TALLY_OP_CELL, sb_tally_cell(s, -1, 0), 0, 1);
        } else {
            if (it->has_frt) {
                acc_put(m, cls, SB_TALLY_OP_FRT_N, s, 0, 1);
                acc_put(m, cls, SB_TALLY_OP_FRT_SUM, s, 0, it->frt_ms);
                acc_put(m, cls, SB_TALLY_OP_FRT_KEY, s, it->frt_key, 1);
            }
            if (it->has_art) {
                acc_put(m, cls, SB_TALLY_OP_ART_N, s, 0, 1);
                acc_put(m, cls, SB_TALLY_OP_ART_SUM, s, 0, it->art_ms);
                acc_put(m, cls, SB_TALLY_OP_ART_KEY, s, it->art_key, 1);
            }
            if (it->fcr >= 0) {
                acc_put(m, cls, SB_TALLY_OP_FCR_N, s, 0, 1);
                acc_put(m, cls, SB_TALLY_OP_FCR_YES, s, 0, it->fcr);
            }
            if (it->transferred >= 0) {
                acc_put(m, cls, SB_TALLY_OP_TR_N, s, 0, 1);
                acc_put(m, cls, SB_TALLY_OP_TR_YES, s, 0, it->transferred);
            }
        }
    }
}

size_t sb_tally_plan(const sb_config_t *cfg, const int64_t *wm, const sb_tally_item_t *items,
                     const bool *use, size_t n, sb_tally_op_t **out)
{
    const size_t nw = cfg->n_windows;
    int64_t width[SB_WINDOW_MAX], g = 0;
    for (size_t k = 0; k < nw; k++) {
        width[k] = sb_window_bucket_width(cfg->windows_ms[k]);
        g = gcd64(g, width[k]);
    }
    if (g <= 0) g = 1;
    /* 1: merge by class, the stretch of g ms an item's time falls in: every window places
     * all the items of one class in the same bucket, since g divides every bucket width */
    acc_t byclass = {0};
    for (size_t i = 0; i < n; i++)
        if (!use || use[i])
            plan_item(&byclass, sb_window_bucket_start(items[i].ts_ms, g), &items[i]);
    size_t m1 = acc_take(&byclass);
    qsort(byclass.s, m1, sizeof *byclass.s, cmp_slot_g);
    /* 2: each class to its targets: the windows whose watermark its bucket has not passed,
     * and those buckets, each once */
    struct target { char target; int64_t width, start; } *tg = NULL;
    size_t ntg = 0, tgcap = 0;
    acc_t bytarget = {0};
    for (size_t lo = 0, hi; lo < m1; lo = hi) {
        for (hi = lo; hi < m1 && byclass.s[hi].g == byclass.s[lo].g; hi++) {}
        int64_t cls = byclass.s[lo].g;
        size_t mine[2 * SB_WINDOW_MAX], nm = 0;
        for (size_t k = 0; k < nw; k++) {
            int64_t s = sb_window_bucket_start(cls, width[k]);
            if (s < wm[k]) continue;
            struct target want[2] = {{'w', cfg->windows_ms[k], 0}, {'b', width[k], s}};
            for (int x = 0; x < 2; x++) {
                size_t j = 0;
                while (j < ntg && !(tg[j].target == want[x].target &&
                                    tg[j].width == want[x].width && tg[j].start == want[x].start))
                    j++;
                if (j == ntg) {
                    if (ntg == tgcap) {
                        tgcap = tgcap ? tgcap * 2 : 16;
                        tg = realloc(tg, tgcap * sizeof *tg);
                        if (!tg) abort();
                    }
                    tg[ntg++] = want[x];
                }
                bool seen = false;
                for (size_t y = 0; y < nm; y++) seen |= mine[y] == j;
                if (!seen) mine[nm++] = j;
            }
        }
        for (size_t e = lo; e < hi; e++)
            for (size_t y = 0; y < nm; y++)
                acc_put(&bytarget, (int64_t)mine[y], byclass.s[e].code, byclass.s[e].a,
                        byclass.s[e].b, byclass.s[e].d);
    }
    free(byclass.s);
    size_t m2 = acc_take(&bytarget), k = 0;
    sb_tally_op_t *ops = malloc((m2 ? m2 : 1) * sizeof *ops);
    if (!ops) abort();
    for (size_t e = 0; e < m2; e++) {
        const acc_slot_t *s = &bytarget.s[e];
        if (s->d == 0) continue; /* a KPI "yes" count of an event that said no */
        const struct target *x = &tg[s->g];
        ops[k++] = (sb_tally_op_t){x->target, x->width, x->start, s->code, s->a, s->b, s->d};
    }
    free(bytarget.s);
    free(tg);
    qsort(ops, k, sizeof *ops, cmp_op);
    *out = ops;
    return k;
}

int sb_tally_op_field(const sb_tally_op_t *op, char *buf, size_t len)
{
    static const char *const names[] = {
        [SB_TALLY_OP_FRT_N] = "fn",  [SB_TALLY_OP_FRT_SUM] = "fs", [SB_TALLY_OP_FRT_KEY] = "f:",
        [SB_TALLY_OP_ART_N] = "an",  [SB_TALLY_OP_ART_SUM] = "as", [SB_TALLY_OP_ART_KEY] = "a:",
        [SB_TALLY_OP_FCR_N] = "cn",  [SB_TALLY_OP_FCR_YES] = "c1", [SB_TALLY_OP_TR_N] = "tn",
        [SB_TALLY_OP_TR_YES] = "t1",
    };
    if (op->code == SB_TALLY_OP_CELL) return snprintf(buf, len, "#%lld", (long long)op->a);
    if (op->code < 0 || op->code >= SB_TALLY_OP_CELL) return -1;
    if (op->code == SB_TALLY_OP_FRT_KEY || op->code == SB_TALLY_OP_ART_KEY)
        return snprintf(buf, len, "%lld:%s%lld", (long long)op->a, names[op->code],
                        (long long)op->b);
    return snprintf(buf, len, "%lld:%s", (long long)op->a, names[op->code]);
}

/* ---------------------------------------------------------------- applying */

/* Where an item's fate comes from: its own claim, or (a repeat of an earlier item of the
 * batch with the same type and id, and day for KPI events) the first one's. */
static bool same_item(const sb_tally_item_t *a, const sb_tally_item_t *b)
{
    return a->type == b->type && !strcmp(a->id, b->id) &&
           (a->type != SB_TALLY_KPI || a->day_ms == b->day_ms);
}

static void find_repeats(const sb_tally_item_t *items, size_t n, int *first)
{
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    int *tab = malloc(cap * sizeof *tab);
    if (!tab) abort();
    for (size_t i = 0; i < cap; i++) tab[i] = -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = hash_str(items[i].id) ^ (uint64_t)items[i].type << 48 ^
                     mix64((uint64_t)items[i].day_ms);
        size_t j = (size_t)h & (cap - 1);
        first[i] = -1;
        while (tab[j] >= 0) {
            if (same_item(&items[tab[j]], &items[i])) {
                first[i] = tab[j];
                break;
            }
            j = (j + 1) & (cap - 1);
        }
        if (first[i] < 0) tab[j] = (int)i;
    }
    free(tab);
}

static const char *result_counter(const sb_tally_item_t *it, char r)
{
    static const char *const counted[SB_KIND__N] = {
        [SB_KIND_CSAT] = "counted|csat", [SB_KIND_CES] = "counted|ces", [SB_KIND_NPS] = "counted|nps"};
    if (it->type == SB_TALLY_RESPONSE) {
        switch (r) {
        case 'c': return counted[it->kind] ? counted[it->kind] : "counted|other";
        case 'd': return "duplicate";
        case 'u': return "dlq|unknown_survey";
        default: return "dlq|not_sent";
        }
    }
    if (it->type == SB_TALLY_REQUEST) return r == 'c' ? "requests" : "requests_duplicate";
    return r == 'c' ? "kpi_events" : "kpi_duplicate";
}

/* The final result of item i once the pending ones (result 0) are taken as counted. */
static char result_of(const sb_tally_item_t *items, const int *first, size_t i)
{
    if (first[i] < 0) return items[i].result ? items[i].result : 'c';
    char r = items[first[i]].result ? items[first[i]].result : 'c';
    return r == 'c' ? 'd' : r;
}

/* The end of the script group that starts at ops[lo]: the same key, at most 1000 entries
 * (Lua's unpack takes a few thousand values at most). */
static size_t op_group_end(const sb_tally_op_t *ops, size_t nops, size_t lo)
{
    const sb_tally_op_t *o = &ops[lo];
    bool kpi = o->code != SB_TALLY_OP_CELL;
    size_t hi = lo;
    while (hi < nops && hi - lo < 1000 && ops[hi].target == o->target &&
           ops[hi].width == o->width && ops[hi].start == o->start &&
           (ops[hi].code != SB_TALLY_OP_CELL) == kpi)
        hi++;
    return hi;
}

/* Appends to tb's arguments those of its pending items (use[]), planned with its
 * watermarks. */
static void args_batch(sb_tally_t *t, sb_tally_batch_t *tb, const sb_tally_item_t *items,
                       size_t n, const sb_sched_count_t *counters, size_t n_counters)
{
    const sb_config_t *cfg = t->cfg;
    sb_store_args_t *a = &tb->args;
    const bool *use = tb->use;
    const int *first = tb->first;
    const int64_t *wm = tb->planned;
    int64_t longest = cfg->n_windows ? cfg->windows_ms[cfg->n_windows - 1] : DAY_MS;
    for (size_t k = 0; k < cfg->n_windows; k++) sb_store_args_int(a, wm[k]);
    /* a request is counted once while its survey can still be in a window; KPI event ids are
     * kept until their day can no longer be in any window */
    sb_store_args_int(a, longest + cfg->allowed_lateness_ms + 2 * DAY_MS);
    sb_store_args_int(a, longest + cfg->allowed_lateness_ms + 2 * DAY_MS);
    static const char types[3] = {SB_TALLY_RESPONSE, SB_TALLY_REQUEST, SB_TALLY_KPI};
    for (int ty = 0; ty < 3; ty++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++) cnt += use[i] && items[i].type == types[ty];
        sb_store_args_int(a, (int64_t)cnt);
        for (size_t i = 0; i < n; i++) {
            const sb_tally_item_t *it = &items[i];
            if (!use[i] || it->type != types[ty]) continue;
            sb_store_args_str(a, it->id);
            if (it->type == SB_TALLY_KPI)
                sb_store_args_int(a, it->day_ms ? it->day_ms
                                                : sb_window_bucket_start(it->ts_ms, SB_WINDOW_DAY_MS));
        }
    }
    /* the additions, one group per key (BITFIELD groups split to stay under Lua's unpack
     * limit) */
    sb_tally_op_t *ops;
    size_t nops = sb_tally_plan(cfg, wm, items, use, n, &ops);
    size_t ng = 0;
    for (size_t lo = 0; lo < nops; lo = op_group_end(ops, nops, lo)) ng++;
    sb_store_args_int(a, (int64_t)ng);
    char buf[400];
    for (size_t lo = 0, hi; lo < nops; lo = hi) {
        const sb_tally_op_t *o = &ops[lo];
        bool kpi = o->code != SB_TALLY_OP_CELL;
        hi = op_group_end(ops, nops, lo);
        sb_store_args_str(a, kpi ? "h" : "b");
        if (o->target == 'w')
            snprintf(buf, sizeof buf, "%s%s:%lld", sb_store_prefix(t->store), kpi ? "kw" : "hw",
                     (long long)o->width);
        else
            snprintf(buf, sizeof buf, "%s%s:%lld:%lld", sb_store_prefix(t->store),
                     kpi ? "kb" : "hb", (long long)o->width, (long long)o->start);
        sb_store_args_copy(a, buf, strlen(buf));
        sb_store_args_int(a, o->target == 'b' ? bucket_ttl(cfg, o->width) : 0);
        sb_store_args_int(a, (int64_t)(hi - lo) * (kpi ? 2 : 4));
        for (size_t e = lo; e < hi; e++) {
            int len = sb_tally_op_field(&ops[e], buf, sizeof buf);
            if (!kpi) {
                sb_store_args_str(a, "INCRBY");
                sb_store_args_str(a, "u32");
            }
            sb_store_args_copy(a, buf, (size_t)len);
            sb_store_args_int(a, ops[e].delta);
        }
    }
    free(ops);
    /* alerts of the responses being counted */
    size_t na = 0;
    for (size_t i = 0; i < n; i++)
        na += use[i] && items[i].type == SB_TALLY_RESPONSE && items[i].alert;
    sb_store_args_int(a, (int64_t)na);
    for (size_t i = 0; i < n; i++)
        if (use[i] && items[i].type == SB_TALLY_RESPONSE && items[i].alert)
            sb_store_args_str(a, items[i].alert);
    /* counters: the caller's and the batch's results, as they will be if it applies */
    sb_counts_t c = {0};
    for (size_t i = 0; i < n_counters; i++) sb_counts_add(&c, counters[i].field, counters[i].n);
    for (size_t i = 0; i < n; i++)
        sb_counts_add(&c, result_counter(&items[i], result_of(items, first, i)), 1);
    sb_store_args_int(a, (int64_t)c.n);
    for (size_t i = 0; i < c.n; i++) {
        sb_store_args_copy(a, c.c[i].field, strlen(c.c[i].field));
        sb_store_args_int(a, c.c[i].n);
    }
    sb_counts_free(&c);
}

/* The state of one batch between planning and the script's answer. */
static void batch_begin(sb_tally_batch_t *tb, sb_tally_item_t *items, size_t n)
{
    if (n > tb->cap) {
        free(tb->first);
        free(tb->use);
        tb->cap = n;
        tb->first = malloc(n * sizeof *tb->first);
        tb->use = malloc(n * sizeof *tb->use);
        if (!tb->first || !tb->use) abort();
    }
    for (size_t i = 0; i < n; i++) items[i].result = 0;
    find_repeats(items, n, tb->first);
}

/* Plans an attempt: the watermarks the windows should have now (or further on, as last
 * seen), and every item not decided yet claimed as new. Builds the script's arguments. */
static void batch_args(sb_tally_t *t, sb_tally_batch_t *tb, const sb_tally_item_t *items,
                       size_t n, const sb_sched_count_t *counters, size_t n_counters,
                       int64_t now_ms)
{
    const sb_config_t *cfg = t->cfg;
    for (size_t k = 0; k < cfg->n_windows; k++) {
        int64_t w = cfg->windows_ms[k], b = sb_window_bucket_width(w);
        int64_t firstb = now_ms - now_ms % b - w + b; /* as advance() computes it */
        tb->planned[k] = t->wm[k] > firstb ? t->wm[k] : firstb;
    }
    for (size_t i = 0; i < n; i++) tb->use[i] = tb->first[i] < 0 && items[i].result == 0;
    args_windows(t, &tb->args, now_ms);
    args_batch(t, tb, items, n, counters, n_counters);
}

/* Takes in the script's reply (freed here). Returns 1 applied (every result set), 0 not
 * applied but known better now (plan again), -1 failed. */
static int batch_reply(sb_tally_t *t, sb_tally_batch_t *tb, sb_tally_item_t *items, size_t n,
                       redisReply *r)
{
    const sb_config_t *cfg = t->cfg;
    int rc = -1;
    if (!r) return -1;
    if (r->type == REDIS_REPLY_ERROR) {
        sb_store_refused(t->store, "tally", r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
               r->element[0]->type != REDIS_REPLY_INTEGER) {
        sb_error("tally script returned an unexpected reply type=%d", r->type);
    } else if (r->element[0]->integer == 1) {
        for (size_t k = 0; k < cfg->n_windows; k++)
            if (tb->planned[k] > t->wm[k]) t->wm[k] = tb->planned[k];
        for (size_t i = 0; i < n; i++) items[i].result = result_of(items, tb->first, i);
        rc = 1;
    } else if (r->element[0]->integer == 2 && r->elements == 1 + cfg->n_windows) {
        sb_debug("tally batch planned with old watermarks, planning again");
        for (size_t k = 0; k < cfg->n_windows; k++)
            t->wm[k] = strtoll(r->element[1 + k]->str, NULL, 10);
        rc = 0;
    } else if (r->element[0]->integer == 0 && r->elements == 2 &&
               r->element[1]->type == REDIS_REPLY_STRING) {
        sb_debug("tally batch has claims already made, planning again");
        /* results in the script's order: responses, requests, KPI events */
        static const char types[3] = {SB_TALLY_RESPONSE, SB_TALLY_REQUEST, SB_TALLY_KPI};
        size_t k = 0;
        for (int ty = 0; ty < 3; ty++)
            for (size_t i = 0; i < n; i++)
                if (tb->use[i] && items[i].type == types[ty] && k < r->element[1]->len) {
                    char x = r->element[1]->str[k++];
                    if (x != 'c') items[i].result = x;
                }
        rc = 0;
    } else {
        sb_error("tally script returned an unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

/* Plans and runs attempts until one applies. Optimistic: each attempt assumes the planned
 * watermarks and new claims; the script checks both and otherwise undoes its claims and
 * says what differed, so each retry knows more and a few suffice. */
static int batch_attempts(sb_tally_t *t, sb_tally_batch_t *tb, sb_tally_item_t *items, size_t n,
                          const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms,
                          int rc)
{
    for (int attempt = 0; attempt < 8 && rc == 0; attempt++) {
        batch_args(t, tb, items, n, counters, n_counters, now_ms);
        rc = batch_reply(t, tb, items, n,
                         sb_store_eval(t->store, t->apply, 0, tb->args.argc, tb->args.argv,
                                       tb->args.lens));
    }
    if (rc == 1) return 0;
    for (size_t i = 0; i < n; i++) items[i].result = 0;
    return -1;
}

int sb_tally_apply(sb_tally_t *t, sb_tally_item_t *items, size_t n,
                   const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms)
{
    batch_begin(t->own, items, n);
    return batch_attempts(t, t->own, items, n, counters, n_counters, now_ms, 0);
}

void sb_tally_apply_plan(sb_tally_t *t, sb_tally_batch_t *tb, sb_tally_item_t *items, size_t n,
                         const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms)
{
    batch_begin(tb, items, n);
    batch_args(t, tb, items, n, counters, n_counters, now_ms);
}

int sb_tally_apply_send(sb_tally_t *t, sb_tally_batch_t *tb)
{
    return sb_store_eval_send(t->store, t->apply, 0, tb->args.argc, tb->args.argv,
                              tb->args.lens);
}

int sb_tally_apply_recv(sb_tally_t *t, sb_tally_batch_t *tb, sb_tally_item_t *items, size_t n,
                        const sb_sched_count_t *counters, size_t n_counters, int64_t now_ms)
{
    redisReply *r = NULL;
    if (sb_store_pipeline_get(t->store, &r, 1) != 0) {
        for (size_t i = 0; i < n; i++) items[i].result = 0;
        return -1;
    }
    /* not applied (a claim made earlier, watermarks moved, the script not loaded): the
     * synchronous attempts take over with what this one learned */
    int rc = r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)
                 ? (freeReplyObject(r), 0)
                 : batch_reply(t, tb, items, n, r);
    return batch_attempts(t, tb, items, n, counters, n_counters, now_ms, rc);
}

int sb_tally_alerts_done(sb_tally_t *t, const char *const *alerts, size_t n)
{
    /* a command per ALERTS_DONE_CHUNK alerts: a backlog confirms tens of thousands a
     * second, and one command for them all took hiredis' output buffer to 12 MiB */
    enum { ALERTS_DONE_CHUNK = 500 };
    char key[300];
    sb_store_key(t->store, key, sizeof key, "alertq");
    for (size_t i = 0; i < n; i += ALERTS_DONE_CHUNK) {
        size_t end = n - i < ALERTS_DONE_CHUNK ? n : i + ALERTS_DONE_CHUNK;
        sb_store_args_reset(&t->args);
        sb_store_args_str(&t->args, "ZREM");
        sb_store_args_str(&t->args, key);
        for (size_t k = i; k < end; k++) sb_store_args_str(&t->args, alerts[k]);
        redisReply *r = sb_store_cmdargv(t->store, t->args.argc, t->args.argv, t->args.lens);
        int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
        if (r) freeReplyObject(r);
        if (rc != 0) return -1; /* the caller keeps them all: removing one again is harmless */
    }
    return 0;
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
        /* its count is the responses, and a count of 0 has no value (SPEC §4) */
        if (responses == 0) out->has_value = false, out->score = 0;
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
    args_windows(t, &t->args, now_ms);
    sb_store_args_str(&t->args, leader ? leader : "");
    sb_store_args_int(&t->args, lease_ms);
    redisReply *r = run(t, t->store, t->read, "read");
    if (!r) return -1;
    int rc = -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) goto done;
    if (r->element[0]->integer == 0) {
        rc = 0;
        goto done;
    }
    if (r->elements != 1 + t->cfg->n_windows) goto done;
    out->as_of_ms = now_ms;
    out->lease_taken = r->element[0]->integer == 3;
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

int sb_tally_shown_load(sb_tally_t *t, sb_tally_shown_fn fn, void *opaque)
{
    char key[300], cursor[32] = "0";
    sb_store_key(t->store, key, sizeof key, "shown");
    do {
        const char *argv[] = {"HSCAN", key, cursor, "COUNT", "1000"};
        redisReply *r = sb_store_cmdargv(t->store, 5, argv, NULL);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return -1;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
        const redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            const char *row = kv->element[i]->str, *bar = strchr(row, '|');
            char *end = NULL;
            long long slice = strtoll(row, &end, 10);
            if (!bar || end != bar || slice <= 0) continue; /* not written by us: ignore */
            fn(opaque, slice, bar + 1, kv->element[i + 1]->str);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int sb_tally_shown_save(sb_tally_t *t, const sb_tally_shown_row_t *rows, size_t n)
{
    char key[300];
    sb_store_key(t->store, key, sizeof key, "shown");
    sb_store_args_t set = {0}, del = {0};
    sb_store_args_str(&set, "HSET");
    sb_store_args_str(&set, key);
    sb_store_args_str(&del, "HDEL");
    sb_store_args_str(&del, key);
    for (size_t i = 0; i < n; i++) {
        if (strchr(rows[i].flags, '1')) {
            sb_store_args_str(&set, rows[i].key);
            sb_store_args_str(&set, rows[i].flags);
        } else {
            sb_store_args_str(&del, rows[i].key);
        }
    }
    int rc = 0;
    size_t sent = 0;
    redisReply *rep[2] = {NULL, NULL};
    if (set.argc > 2) rc |= sb_store_append_argv(t->store, set.argc, set.argv, set.lens), sent++;
    if (rc == 0 && del.argc > 2) rc |= sb_store_append_argv(t->store, del.argc, del.argv, del.lens), sent++;
    if (rc == 0 && sent) rc = sb_store_pipeline_get(t->store, rep, sent);
    for (size_t i = 0; i < sent; i++) {
        if (rc == 0 && rep[i]->type != REDIS_REPLY_INTEGER) rc = -1;
        if (rep[i]) freeReplyObject(rep[i]);
    }
    sb_store_args_free(&set);
    sb_store_args_free(&del);
    return rc ? -1 : 0;
}

size_t sb_tally_slice_names(const sb_config_t *cfg, const char (*vals)[SB_STR_MAX + 1],
                            char (*names)[SB_TALLY_NAME_MAX])
{
    size_t n = 0;
    memcpy(names[n++], "all|all", sizeof "all|all");
    for (size_t i = 0; i < cfg->n_dimensions; i++) {
        sb_dim_t d = cfg->dimensions[i];
        if (d == SB_DIM_ALL || !vals[d][0]) continue;
        /* "dim|value" cut to the buffer, as snprintf would (this runs per message) */
        size_t a = strlen(sb_dim_names[d]), b = strnlen(vals[d], SB_STR_MAX);
        if (a > SB_TALLY_NAME_MAX - 2) a = SB_TALLY_NAME_MAX - 2;
        if (b > SB_TALLY_NAME_MAX - 2 - a) b = SB_TALLY_NAME_MAX - 2 - a;
        char *o = names[n++];
        memcpy(o, sb_dim_names[d], a);
        o[a] = '|';
        memcpy(o + a + 1, vals[d], b);
        o[a + 1 + b] = '\0';
    }
    return n;
}

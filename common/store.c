/* Redis access for every surveybus binary: a blocking hiredis connection that reconnects
 * with capped exponential back-off, pipelines, EVALSHA with a NOSCRIPT fallback, and key
 * prefixing. hiredis is used nowhere else; see store.h for the contracts. */
#include "store.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 1000

/* ---------------------------------------------------------------- helpers */

static void set_err(sb_store_t *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(sb_store_t *s, int code, const char *fmt, ...)
{
    va_list ap;
    s->err = code;
    va_start(ap, fmt);
    vsnprintf(s->errstr, sizeof s->errstr, fmt, ap);
    va_end(ap);
}

static void clear_err(sb_store_t *s)
{
    s->err = SB_STORE_OK;
    s->errstr[0] = '\0';
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct timeval tv_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static bool is_loading(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "LOADING", 7) == 0;
}

/* Forgets the connection after an I/O error; the next call reconnects (no delay for the
 * first attempt: a restarted server is usually back already). */
static void conn_lost(sb_store_t *s)
{
    const char *why = s->c && s->c->err ? s->c->errstr : "connection lost";
    char timed_out[64];
    if (s->c && s->c->err == REDIS_ERR_IO && strcmp(why, strerror(EAGAIN)) == 0) {
        /* hiredis reports a read timeout as the socket's EAGAIN: say what happened */
        snprintf(timed_out, sizeof timed_out, "no answer within %d ms (timed out)",
                 s->timeout_ms > 0 ? s->timeout_ms : SB_STORE_TIMEOUT_MS);
        why = timed_out;
    }
    set_err(s, SB_STORE_ERR_CONN, "redis_down: %s", why);
    if (s->was_up)
        sb_warn("redis connection lost host=%s port=%d err=\"%s\"", s->host, s->port, why);
    s->was_up = false;
    if (s->c) redisFree(s->c);
    s->c = NULL;
    s->pending = 0;
    s->next_try_ms = sb_mono_ms();
}

/* Opens a connection, AUTH, SELECT. Returns 0, or -1 with err CONN or SERVER. */
static int store_connect(sb_store_t *s)
{
    redisReply *r = NULL;
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv_ms(CONNECT_TIMEOUT_MS));
    if (!c) {
        set_err(s, SB_STORE_ERR_CONN, "redis_down: out of memory");
        return -1;
    }
    if (c->err) {
        set_err(s, SB_STORE_ERR_CONN, "redis_down: %s:%d: %s", s->host, s->port, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv_ms(s->timeout_ms > 0 ? s->timeout_ms : SB_STORE_TIMEOUT_MS)) != REDIS_OK ||
        redisEnableKeepAlive(c) != REDIS_OK) {
        set_err(s, SB_STORE_ERR_CONN, "redis_down: socket options: %s", c->errstr);
        goto fail;
    }
    if (s->pass && s->pass[0]) {
        r = redisCommand(c, "AUTH %s", s->pass);
        if (!r) {
            set_err(s, SB_STORE_ERR_CONN, "redis_down: AUTH: %s", c->errstr);
            goto fail;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            set_err(s, SB_STORE_ERR_SERVER, "redis_auth: %s", r->str);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (s->db != 0) {
        r = redisCommand(c, "SELECT %d", s->db);
        if (!r) {
            set_err(s, SB_STORE_ERR_CONN, "redis_down: SELECT: %s", c->errstr);
            goto fail;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            set_err(s, SB_STORE_ERR_SERVER, "redis_select: db %d: %s", s->db, r->str);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    s->c = c;
    return 0;
fail:
    if (r) freeReplyObject(r);
    redisFree(c);
    return -1;
}

/* Makes sure a connection exists, honouring the back-off. Returns 0 or -1 (err set). */
static int ensure(sb_store_t *s)
{
    if (s->c) return 0;
    int64_t now = sb_mono_ms();
    if (now < s->next_try_ms) {
        set_err(s, SB_STORE_ERR_CONN, "%s (next attempt in %lld ms)",
                s->last_fail[0] ? s->last_fail : "redis_down", (long long)(s->next_try_ms - now));
        return -1;
    }
    if (store_connect(s) == 0) {
        sb_info("redis connected host=%s port=%d db=%d", s->host, s->port, s->db);
        s->was_up = true;
        s->backoff_ms = BACKOFF_MIN_MS;
        s->next_try_ms = 0;
        return 0;
    }
    memcpy(s->last_fail, s->errstr, sizeof s->last_fail);
    if (s->backoff_ms == BACKOFF_MIN_MS) /* first failure of a run: say it once */
        sb_warn("redis connection failed host=%s port=%d err=\"%s\"", s->host, s->port, s->errstr);
    s->next_try_ms = now + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
    return -1;
}

/* Common tail of a single command: classifies a NULL or LOADING reply. */
static redisReply *finish(sb_store_t *s, void *reply)
{
    redisReply *r = reply;
    if (!r) {
        conn_lost(s);
        return NULL;
    }
    if (is_loading(r)) {
        set_err(s, SB_STORE_ERR_SERVER, "redis_loading: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int begin(sb_store_t *s)
{
    clear_err(s);
    if (s->pending) {
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: command inside an unfinished pipeline");
        return -1;
    }
    return ensure(s);
}

/* ---------------------------------------------------------------- lifecycle */

sb_store_t *sb_store_new(const sb_config_t *cfg, char *err, size_t errlen)
{
    sb_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        sb_fail(err, errlen, "out of memory");
        return NULL;
    }
    const char *host = cfg->redis.host && cfg->redis.host[0] ? cfg->redis.host : "127.0.0.1";
    s->host = strdup(host);
    s->pass = strdup(cfg->redis.pass ? cfg->redis.pass : "");
    s->prefix = strdup(cfg->redis.prefix ? cfg->redis.prefix : "");
    if (!s->host || !s->pass || !s->prefix) {
        sb_fail(err, errlen, "out of memory");
        goto fail;
    }
    s->prefix_len = strlen(s->prefix);
    s->port = cfg->redis.port > 0 ? cfg->redis.port : 6379;
    s->db = cfg->redis.db;
    s->rtt_us = -1;
    s->backoff_ms = BACKOFF_MIN_MS;

    /* hiredis writes with write(2): a server that went away must not kill us by SIGPIPE. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);

    if (ensure(s) != 0 && s->err == SB_STORE_ERR_SERVER) {
        sb_fail(err, errlen, "%s", s->errstr);
        goto fail;
    }
    return s;
fail:
    sb_store_free(s);
    return NULL;
}

void sb_store_free(sb_store_t *s)
{
    if (!s) return;
    if (s->c) redisFree(s->c);
    free(s->host);
    free(s->pass);
    free(s->prefix);
    free(s);
}

/* ---------------------------------------------------------------- commands */

void sb_store_set_timeout(sb_store_t *s, int ms)
{
    if (ms <= 0) return;
    s->timeout_ms = ms;
    if (s->c) redisSetTimeout(s->c, tv_ms(ms));
}

redisReply *sb_store_cmd(sb_store_t *s, const char *fmt, ...)
{
    if (begin(s)) return NULL;
    va_list ap;
    va_start(ap, fmt);
    void *r = redisvCommand(s->c, fmt, ap);
    va_end(ap);
    return finish(s, r);
}

redisReply *sb_store_cmdargv(sb_store_t *s, int argc, const char **argv, const size_t *lens)
{
    if (argc <= 0 || !argv) {
        clear_err(s);
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: empty command");
        return NULL;
    }
    if (begin(s)) return NULL;
    return finish(s, redisCommandArgv(s->c, argc, argv, lens));
}

/* ---------------------------------------------------------------- pipeline */

/* Forgets the commands appended so far. They sit unsent in hiredis' output buffer, so the
 * connection goes with them; the next call reconnects at once. */
static void discard(sb_store_t *s)
{
    if (s->c && s->pending) {
        redisFree(s->c);
        s->c = NULL;
    }
    s->pending = 0;
}

int sb_store_append_argv(sb_store_t *s, int argc, const char **argv, const size_t *lens)
{
    clear_err(s);
    if (argc <= 0 || !argv) {
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: empty command");
        discard(s);
        return -1;
    }
    if (s->pending == 0 && ensure(s) != 0) return -1;
    if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK) {
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: append: %s", s->c->errstr);
        discard(s);
        return -1;
    }
    s->pending++;
    return 0;
}

int sb_store_pipeline_get(sb_store_t *s, redisReply **replies, size_t n)
{
    bool failed = false, loading = false;
    clear_err(s);
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    if (n != s->pending) {
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: %zu replies asked, %zu commands appended", n,
                s->pending);
        discard(s);
        return -1;
    }
    for (size_t i = 0; i < n && !failed; i++) {
        void *r = NULL;
        if (redisGetReply(s->c, &r) != REDIS_OK || !r) {
            failed = true;
            break;
        }
        replies[i] = r;
        if (is_loading(replies[i])) loading = true;
    }
    if (!failed && !loading) {
        s->pending = 0;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (replies[i]) freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    if (failed) {
        conn_lost(s);
    } else {
        s->pending = 0; /* every reply was read; the connection stays usable */
        set_err(s, SB_STORE_ERR_SERVER, "redis_loading: server is loading its data");
    }
    return -1;
}

/* ---------------------------------------------------------------- scripts */

sb_store_script_t *sb_store_script_new(const char *lua)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    sb_store_script_t *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    sc->lua = strdup(lua);
    if (!sc->lua) goto fail;
    if (!EVP_Digest(lua, strlen(lua), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) goto fail;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(sc->sha + 2 * i, 3, "%02x", md[i]);
    return sc;
fail:
    sb_store_script_free(sc);
    return NULL;
}

void sb_store_script_free(sb_store_script_t *sc)
{
    if (!sc) return;
    free(sc->lua);
    free(sc);
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* EVALSHA sha nkeys args...: the vector (av, al) of a script call, malloc'd (NULL: OOM). */
static const char **eval_argv(const sb_store_script_t *sc, const char *nk, int argc,
                              const char **argv, const size_t *lens, size_t **al)
{
    const char **av = malloc(((size_t)argc + 3) * sizeof *av);
    *al = lens ? malloc(((size_t)argc + 3) * sizeof **al) : NULL;
    if (!av || (lens && !*al)) {
        free(av);
        free(*al);
        *al = NULL;
        return NULL;
    }
    av[0] = "EVALSHA";
    av[1] = sc->sha;
    av[2] = nk;
    for (int i = 0; i < argc; i++) av[i + 3] = argv[i];
    if (lens) {
        for (int i = 0; i < 3; i++) (*al)[i] = strlen(av[i]);
        for (int i = 0; i < argc; i++) (*al)[i + 3] = lens[i];
    }
    return av;
}

static bool eval_usage_ok(sb_store_t *s, int nkeys, int argc, const char **argv)
{
    if (nkeys < 0 || argc < nkeys || (argc > 0 && !argv)) {
        clear_err(s);
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: eval with %d keys of %d arguments", nkeys,
                argc);
        return false;
    }
    return true;
}

redisReply *sb_store_eval(sb_store_t *s, const sb_store_script_t *sc, int nkeys, int argc,
                          const char **argv, const size_t *lens)
{
    redisReply *r = NULL;
    size_t *al = NULL;
    char nk[16];

    if (!eval_usage_ok(s, nkeys, argc, argv)) return NULL;
    snprintf(nk, sizeof nk, "%d", nkeys);
    const char **av = eval_argv(sc, nk, argc, argv, lens, &al);
    if (!av) {
        clear_err(s);
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: out of memory");
        goto done;
    }
    r = sb_store_cmdargv(s, argc + 3, av, al);
    if (!r || !is_noscript(r)) goto done;

    /* The server lost its script cache (restart, SCRIPT FLUSH): load and run again. */
    freeReplyObject(r);
    const char *load[] = {"SCRIPT", "LOAD", sc->lua};
    r = sb_store_cmdargv(s, 3, load, NULL);
    if (!r) goto done;
    if (r->type == REDIS_REPLY_ERROR) goto done; /* e.g. a compile error: the caller sees it */
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, sc->sha) != 0) {
        set_err(s, SB_STORE_ERR_SERVER, "redis_script: SCRIPT LOAD returned an unexpected SHA1");
        freeReplyObject(r);
        r = NULL;
        goto done;
    }
    freeReplyObject(r);
    r = sb_store_cmdargv(s, argc + 3, av, al);
done:
    free(av);
    free(al);
    return r;
}

int sb_store_eval_send(sb_store_t *s, const sb_store_script_t *sc, int nkeys, int argc,
                       const char **argv, const size_t *lens)
{
    size_t *al = NULL;
    char nk[16];
    if (!eval_usage_ok(s, nkeys, argc, argv)) return -1;
    if (s->pending) {
        clear_err(s);
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: eval sent inside an unfinished pipeline");
        return -1;
    }
    snprintf(nk, sizeof nk, "%d", nkeys);
    const char **av = eval_argv(sc, nk, argc, argv, lens, &al);
    if (!av) {
        clear_err(s);
        set_err(s, SB_STORE_ERR_USAGE, "redis_usage: out of memory");
        return -1;
    }
    int rc = sb_store_append_argv(s, argc + 3, av, al);
    free(av);
    free(al);
    if (rc != 0) return -1;
    /* write it all now, so that the server starts while the caller goes on */
    int done = 0;
    while (!done)
        if (redisBufferWrite(s->c, &done) != REDIS_OK) {
            conn_lost(s);
            return -1;
        }
    return 0;
}

/* ---------------------------------------------------------------- health */

bool sb_store_up(sb_store_t *s)
{
    /* A connection that broke while idle (server restarted) is only noticed by using it:
     * one immediate retry on a fresh connection tells "restarted" from "down". */
    for (int attempt = 0; attempt < 2; attempt++) {
        bool had_conn = s->c != NULL;
        if (begin(s)) return false;
        int64_t t0 = mono_us();
        redisReply *r = finish(s, redisCommand(s->c, "PING"));
        if (!r) {
            if (had_conn && s->err == SB_STORE_ERR_CONN) continue;
            return false;
        }
        bool ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (ok)
            s->rtt_us = mono_us() - t0;
        else
            set_err(s, SB_STORE_ERR_SERVER, "redis_ping: %s", r->str ? r->str : "bad reply");
        freeReplyObject(r);
        return ok;
    }
    return false;
}

void sb_store_refused(sb_store_t *s, const char *what, const char *reply)
{
    sb_error("redis script failed op=%s err=\"%s\"", what, reply ? reply : "");
    set_err(s, SB_STORE_ERR_REFUSED, "redis_refused: %s", reply ? reply : "error reply");
}

int sb_store_refusal_wait_ms(sb_store_t *s)
{
    int64_t now = sb_mono_ms();
    int ms = s->refused_ms && now - s->refused_ms < 30000 ? s->refusal_wait_ms * 2 : 100;
    if (ms > 5000) ms = 5000;
    s->refused_ms = now;
    s->refusal_wait_ms = ms;
    return ms;
}

bool sb_store_writable(sb_store_t *s, const char *name)
{
    if (begin(s)) return false;
    char key[400];
    if (sb_store_key(s, key, sizeof key, "health:%s", name) < 0) return false;
    redisReply *r = finish(s, redisCommand(s->c, "SET %s %lld PX 60000", key, sb_now_ms()));
    if (!r) return false;
    bool ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (!ok) set_err(s, SB_STORE_ERR_REFUSED, "redis_refused: %s", r->str ? r->str : "bad reply");
    freeReplyObject(r);
    return ok;
}

int sb_store_wait_up(sb_store_t *s, volatile sig_atomic_t *stop)
{
    for (;;) {
        if (stop && *stop) return -1;
        if (sb_store_up(s)) return 0;
        if (stop && *stop) return -1;
        int64_t wait = s->c ? 100 : s->next_try_ms - sb_mono_ms();
        if (wait < 10) wait = 10;
        if (wait > 100) wait = 100; /* re-check stop at least every 100 ms */
        struct timespec ts = {0, (long)wait * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !(stop && *stop)) {
        }
    }
}

int64_t sb_store_rtt_us(const sb_store_t *s)
{
    return s->rtt_us;
}

/* ---------------------------------------------------------------- keys */

int sb_store_key(const sb_store_t *s, char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0) return -1;
    int n = snprintf(buf, len, "%s", s->prefix);
    if (n < 0 || (size_t)n >= len) return -1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)n + (size_t)m >= len) return -1;
    return n + m;
}

const char *sb_store_prefix(const sb_store_t *s)
{
    return s->prefix;
}

/* ---------------------------------------------------------------- argument vectors */

struct sb_store_arena {
    struct sb_store_arena *next;
    size_t used, cap;
    char buf[];
};

static void args_grow(sb_store_args_t *a)
{
    if (a->argc < a->cap) return;
    int cap = a->cap ? a->cap * 2 : 64;
    const char **argv = realloc(a->argv, (size_t)cap * sizeof *argv);
    size_t *lens = realloc(a->lens, (size_t)cap * sizeof *lens);
    if (!argv || !lens) abort();
    a->argv = argv, a->lens = lens, a->cap = cap;
}

void sb_store_args_add(sb_store_args_t *a, const char *str, size_t len)
{
    args_grow(a);
    a->argv[a->argc] = str;
    a->lens[a->argc++] = len;
}

void sb_store_args_str(sb_store_args_t *a, const char *str)
{
    sb_store_args_add(a, str, strlen(str));
}

void sb_store_args_copy(sb_store_args_t *a, const char *str, size_t len)
{
    struct sb_store_arena *ar = a->arena;
    if (!ar || ar->cap - ar->used < len + 1) {
        size_t cap = len + 1 > 65536 ? len + 1 : 65536;
        struct sb_store_arena *n = malloc(sizeof *n + cap);
        if (!n) abort();
        n->next = ar, n->used = 0, n->cap = cap;
        a->arena = ar = n;
    }
    char *dst = ar->buf + ar->used;
    memcpy(dst, str, len);
    dst[len] = '\0';
    ar->used += len + 1;
    sb_store_args_add(a, dst, len);
}

void sb_store_args_int(sb_store_args_t *a, int64_t v)
{
    char tmp[SB_INT_TEXT_MAX];
    sb_store_args_copy(a, tmp, sb_int_format(v, tmp));
}

void sb_store_args_reset(sb_store_args_t *a)
{
    a->argc = 0;
    /* keep the newest chunk, free older ones */
    if (a->arena) {
        struct sb_store_arena *old = a->arena->next;
        a->arena->next = NULL;
        a->arena->used = 0;
        while (old) {
            struct sb_store_arena *n = old->next;
            free(old);
            old = n;
        }
    }
}

void sb_store_args_free(sb_store_args_t *a)
{
    sb_store_args_reset(a);
    free(a->arena);
    free(a->argv);
    free(a->lens);
    memset(a, 0, sizeof *a);
}

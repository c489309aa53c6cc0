/* Integration tests of common/store.c against a real redis-server started by the harness:
 * commands, a 10,000-command pipeline, EVALSHA after SCRIPT FLUSH, and a server restart
 * (fail fast while down, reconnect by itself, data kept by the AOF). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "store.h"
#include "util.h"

static sb_h_t h;
static char host[] = "127.0.0.1", prefix[] = "sbt:", nopass[] = "", badpass[] = "hunter2";

static void setup(void)
{
    if (sb_h_start(&h, SB_H_REDIS, 0, NULL) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        exit(1);
    }
}

static void teardown(void)
{
    sb_h_stop(&h);
}

static sb_config_t cfg_for(int db, char *pass)
{
    sb_config_t c;
    memset(&c, 0, sizeof c);
    c.redis.host = host;
    c.redis.port = h.redis_port;
    c.redis.db = db;
    c.redis.pass = pass;
    c.redis.prefix = prefix;
    return c;
}

static sb_store_t *open_store(int db)
{
    char err[256] = "";
    sb_config_t c = cfg_for(db, nopass);
    sb_store_t *s = sb_store_new(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "sb_store_new: %s", err);
    return s;
}

/* Runs a command that must answer an integer; returns it. */
static long long cmd_int(sb_store_t *s, const char *fmt, const char *a1)
{
    redisReply *r = sb_store_cmd(s, fmt, a1);
    ck_assert_msg(r != NULL, "command failed: %s", s->errstr);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* ---------------------------------------------------------------- commands */

START_TEST(commands_and_keys)
{
    sb_store_t *s = open_store(0);
    char key[64];
    ck_assert_int_eq(sb_store_key(s, key, sizeof key, "survey:%s", "s-1"), 14);
    ck_assert_str_eq(key, "sbt:survey:s-1");
    ck_assert_str_eq(sb_store_prefix(s), "sbt:");
    ck_assert_int_eq(sb_store_key(s, key, 10, "survey:%s", "s-1"), -1);

    /* binary-safe value with an embedded NUL */
    ck_assert_int_eq(sb_store_key(s, key, sizeof key, "bin"), 7);
    redisReply *r = sb_store_cmd(s, "SET %s %b", key, "a\0b", (size_t)3);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    r = sb_store_cmd(s, "GET %s", key);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_int_eq(r->len, 3);
    ck_assert_int_eq(memcmp(r->str, "a\0b", 3), 0);
    freeReplyObject(r);

    /* argv form, and an error reply is handed to the caller without breaking anything */
    const char *hset[] = {"HSET", "sbt:h", "answered_at", "2026-11-22T10:00:00Z"};
    r = sb_store_cmdargv(s, 4, hset, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    r = sb_store_cmd(s, "LPUSH %s x", "sbt:h");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    ck_assert_msg(strncmp(r->str, "WRONGTYPE", 9) == 0, "got %s", r->str);
    freeReplyObject(r);
    ck_assert_int_eq(s->err, SB_STORE_OK);
    ck_assert_int_eq(cmd_int(s, "HSETNX %s answered_at later", "sbt:h"), 0);

    ck_assert(sb_store_up(s));
    ck_assert_int_gt(sb_store_rtt_us(s), 0);
    ck_assert_int_lt(sb_store_rtt_us(s), 1000000);
    sb_store_free(s);
    sb_store_free(NULL);
}
END_TEST

START_TEST(select_and_auth)
{
    /* db 5 is a different keyspace */
    sb_store_t *s0 = open_store(0), *s5 = open_store(5);
    ck_assert_int_eq(cmd_int(s5, "INCR %s", "sbt:only-in-5"), 1);
    ck_assert_int_eq(cmd_int(s0, "EXISTS %s", "sbt:only-in-5"), 0);
    ck_assert_int_eq(cmd_int(s5, "EXISTS %s", "sbt:only-in-5"), 1);
    sb_store_free(s0);
    sb_store_free(s5);

    /* a refused AUTH is a configuration error, reported by sb_store_new */
    char err[256] = "";
    sb_config_t c = cfg_for(0, badpass);
    sb_store_t *s = sb_store_new(&c, err, sizeof err);
    ck_assert_ptr_null(s);
    ck_assert_msg(strncmp(err, "redis_auth: ", 12) == 0, "err: %s", err);
}
END_TEST

/* ---------------------------------------------------------------- pipeline */

START_TEST(pipeline_10000_hincrby)
{
    enum { N = 10000, FIELDS = 100 };
    sb_store_t *s = open_store(0);
    long long want[FIELDS] = {0};
    static redisReply *rep[N];
    char field[16], by[16];
    size_t flen[4];
    cmd_int(s, "DEL %s", "sbt:pipe");
    for (int i = 0; i < N; i++) {
        snprintf(field, sizeof field, "f%d", i % FIELDS);
        snprintf(by, sizeof by, "%d", i % 7 + 1);
        want[i % FIELDS] += i % 7 + 1;
        const char *argv[] = {"HINCRBY", "sbt:pipe", field, by};
        for (int j = 0; j < 4; j++)
            flen[j] = strlen(argv[j]);
        ck_assert_int_eq(sb_store_append_argv(s, 4, argv, flen), 0);
    }
    /* nothing may run in between */
    ck_assert_ptr_null(sb_store_cmd(s, "PING"));
    ck_assert_int_eq(s->err, SB_STORE_ERR_USAGE);
    ck_assert_int_eq(sb_store_pipeline_get(s, rep, N), 0);
    /* the last increment of each field answers that field's total */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(rep[i]->type, REDIS_REPLY_INTEGER);
        if (i >= N - FIELDS) ck_assert_int_eq(rep[i]->integer, want[i % FIELDS]);
        freeReplyObject(rep[i]);
    }
    /* and the hash holds them */
    redisReply *r = sb_store_cmd(s, "HGETALL %s", "sbt:pipe");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 2 * FIELDS);
    long long sum = 0;
    for (size_t i = 0; i < r->elements; i += 2) {
        int f = atoi(r->element[i]->str + 1);
        ck_assert_int_eq(atoll(r->element[i + 1]->str), want[f]);
        sum += atoll(r->element[i + 1]->str);
    }
    /* 10000 = 1428 full cycles of 1..7 (28 each) + 4 more (1+2+3+4) */
    ck_assert_int_eq(sum, 1428LL * 28 + 10);
    freeReplyObject(r);
    sb_store_free(s);
}
END_TEST

START_TEST(pipeline_misuse)
{
    sb_store_t *s = open_store(0);
    redisReply *rep[3];
    const char *argv[] = {"INCR", "sbt:misuse"};
    ck_assert_int_eq(sb_store_append_argv(s, 2, argv, NULL), 0);
    ck_assert_int_eq(sb_store_append_argv(s, 2, argv, NULL), 0);
    /* asking for 3 replies of 2 commands discards the pipeline */
    ck_assert_int_eq(sb_store_pipeline_get(s, rep, 3), -1);
    ck_assert_int_eq(s->err, SB_STORE_ERR_USAGE);
    ck_assert_ptr_null(rep[0]);
    /* the discarded commands never ran and the handle works again */
    ck_assert_int_eq(cmd_int(s, "EXISTS %s", "sbt:misuse"), 0);
    ck_assert_int_eq(sb_store_pipeline_get(s, rep, 0), 0);
    /* an invalid append discards what was appended before it */
    ck_assert_int_eq(sb_store_append_argv(s, 2, argv, NULL), 0);
    ck_assert_int_eq(sb_store_append_argv(s, 0, argv, NULL), -1);
    ck_assert_int_eq(s->err, SB_STORE_ERR_USAGE);
    ck_assert_int_eq(cmd_int(s, "EXISTS %s", "sbt:misuse"), 0);
    /* error replies inside a pipeline are returned in place */
    const char *bad[] = {"HINCRBY", "sbt:misuse-h", "f", "notanumber"};
    ck_assert_int_eq(sb_store_append_argv(s, 2, argv, NULL), 0);
    ck_assert_int_eq(sb_store_append_argv(s, 4, bad, NULL), 0);
    ck_assert_int_eq(sb_store_pipeline_get(s, rep, 2), 0);
    ck_assert_int_eq(rep[0]->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(rep[0]->integer, 1);
    ck_assert_int_eq(rep[1]->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
    sb_store_free(s);
}
END_TEST

/* ---------------------------------------------------------------- scripts */

static const char *claim_lua =
    "if redis.call('HSETNX', KEYS[1], 'answered_at', ARGV[1]) == 1 then\n"
    "  return redis.call('HINCRBY', KEYS[2], ARGV[2], 1)\n"
    "end\n"
    "return -1\n";

START_TEST(evalsha_with_noscript_fallback)
{
    sb_store_t *s = open_store(0);
    sb_store_script_t *sc = sb_store_script_new(claim_lua);
    ck_assert_ptr_nonnull(sc);
    ck_assert_uint_eq(strlen(sc->sha), 40);

    /* the locally computed SHA1 is the server's */
    const char *load[] = {"SCRIPT", "LOAD", claim_lua};
    redisReply *r = sb_store_cmdargv(s, 3, load, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->str, sc->sha);
    freeReplyObject(r);

    const char *a1[] = {"sbt:survey:s-1", "sbt:hist", "2026-11-22T10:00:00Z", "score:9"};
    r = sb_store_eval(s, sc, 2, 4, a1, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);

    /* the server forgets every script: EVALSHA answers NOSCRIPT, the store reloads it */
    r = sb_store_cmd(s, "SCRIPT FLUSH");
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    r = sb_store_cmd(s, "SCRIPT EXISTS %s", sc->sha);
    ck_assert_int_eq(r->element[0]->integer, 0);
    freeReplyObject(r);

    /* a repeat of the same survey is not counted again (binary args via lens) */
    size_t lens[] = {14, 8, 20, 7};
    r = sb_store_eval(s, sc, 2, 4, a1, lens);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, -1);
    freeReplyObject(r);
    const char *a2[] = {"sbt:survey:s-2", "sbt:hist", "2026-11-22T10:01:00Z", "score:9"};
    r = sb_store_eval(s, sc, 2, 4, a2, NULL);
    ck_assert_int_eq(r->integer, 2);
    freeReplyObject(r);
    r = sb_store_cmd(s, "SCRIPT EXISTS %s", sc->sha);
    ck_assert_int_eq(r->element[0]->integer, 1);
    freeReplyObject(r);

    /* a script that fails at run time answers an error reply */
    sb_store_script_t *bad = sb_store_script_new("return redis.call('INCR', KEYS[1], 'x')");
    const char *a3[] = {"sbt:k"};
    r = sb_store_eval(s, bad, 1, 1, a3, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    /* a script that does not compile answers the SCRIPT LOAD error */
    sb_store_script_t *broken = sb_store_script_new("return (");
    r = sb_store_eval(s, broken, 0, 0, NULL, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    /* usage errors */
    ck_assert_ptr_null(sb_store_eval(s, sc, 3, 2, a1, NULL));
    ck_assert_int_eq(s->err, SB_STORE_ERR_USAGE);

    sb_store_script_free(bad);
    sb_store_script_free(broken);
    sb_store_script_free(sc);
    sb_store_script_free(NULL);
    sb_store_free(s);
}
END_TEST

/* ---------------------------------------------------------------- restart */

START_TEST(restart_fail_fast_and_reconnect)
{
    sb_store_t *s = open_store(0);
    sb_store_script_t *sc = sb_store_script_new(claim_lua);
    ck_assert_int_eq(cmd_int(s, "HSET %s count 41", "sbt:durable"), 1);
    ck_assert(sb_store_up(s));

    ck_assert_int_eq(sb_h_redis_stop(&h), 0);

    /* down: noticed by the next use, then every call fails fast */
    ck_assert(!sb_store_up(s));
    ck_assert_int_eq(s->err, SB_STORE_ERR_CONN);
    int64_t t0 = sb_mono_ms();
    for (int i = 0; i < 100; i++) {
        ck_assert_ptr_null(sb_store_cmd(s, "HINCRBY %s count 1", "sbt:durable"));
        ck_assert_int_eq(s->err, SB_STORE_ERR_CONN);
        ck_assert_msg(strncmp(s->errstr, "redis_down", 10) == 0, "errstr %s", s->errstr);
    }
    const char *argv[] = {"PING"};
    ck_assert_int_eq(sb_store_append_argv(s, 1, argv, NULL), -1);
    ck_assert_ptr_null(sb_store_eval(s, sc, 0, 0, NULL, NULL));
    ck_assert_msg(sb_mono_ms() - t0 < 500, "100 failing calls took %lld ms",
                  (long long)(sb_mono_ms() - t0));

    /* a handle created while the server is down is usable later */
    char err[256] = "";
    sb_config_t c = cfg_for(0, nopass);
    sb_store_t *late = sb_store_new(&c, err, sizeof err);
    ck_assert_msg(late != NULL, "sb_store_new while down: %s", err);
    ck_assert(!sb_store_up(late));

    /* wait_up gives up at once when asked to stop */
    volatile sig_atomic_t stop = 1;
    ck_assert_int_eq(sb_store_wait_up(s, &stop), -1);

    ck_assert_int_eq(sb_h_redis_start(&h), 0);
    stop = 0;
    t0 = sb_mono_ms();
    ck_assert_int_eq(sb_store_wait_up(s, &stop), 0);
    ck_assert_msg(sb_mono_ms() - t0 < 6000, "reconnect took %lld ms",
                  (long long)(sb_mono_ms() - t0));

    /* the data survived (AOF) and the script cache did not: eval still works */
    redisReply *r = sb_store_cmd(s, "HGET %s count", "sbt:durable");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->str, "41");
    freeReplyObject(r);
    const char *a[] = {"sbt:survey:after-restart", "sbt:hist", "2026-11-22T11:00:00Z", "score:3"};
    r = sb_store_eval(s, sc, 2, 4, a, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    ck_assert_int_eq(sb_store_wait_up(late, NULL), 0);
    ck_assert_int_eq(cmd_int(late, "HINCRBY %s count 1", "sbt:durable"), 42);

    /* a restart noticed only by a command: that command fails, the next one reconnects */
    ck_assert_int_eq(sb_h_redis_stop(&h), 0);
    ck_assert_int_eq(sb_h_redis_start(&h), 0);
    ck_assert_ptr_null(sb_store_cmd(s, "HGET %s count", "sbt:durable"));
    ck_assert_int_eq(s->err, SB_STORE_ERR_CONN);
    r = sb_store_cmd(s, "HGET %s count", "sbt:durable");
    ck_assert_msg(r != NULL, "no reconnect: %s", s->errstr);
    ck_assert_str_eq(r->str, "42");
    freeReplyObject(r);

    /* a server that hangs: the call fails after the command timeout, and says so (hiredis
     * itself reports only the socket's "Resource temporarily unavailable") */
    sb_store_set_timeout(s, 300);
    ck_assert_int_eq(kill(h.redis_pid, SIGSTOP), 0);
    r = sb_store_cmd(s, "HGET %s count", "sbt:durable");
    ck_assert_int_eq(kill(h.redis_pid, SIGCONT), 0);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(s->err, SB_STORE_ERR_CONN);
    ck_assert_msg(strcmp(s->errstr, "redis_down: no answer within 300 ms (timed out)") == 0,
                  "errstr %s", s->errstr);
    sb_store_set_timeout(s, 0);
    ck_assert_int_eq(sb_store_wait_up(s, NULL), 0);

    sb_store_script_free(sc);
    sb_store_free(late);
    sb_store_free(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("store");
    TCase *tc = tcase_create("redis");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, commands_and_keys);
    tcase_add_test(tc, select_and_auth);
    tcase_add_test(tc, pipeline_10000_hincrby);
    tcase_add_test(tc, pipeline_misuse);
    tcase_add_test(tc, evalsha_with_noscript_fallback);
    tcase_add_test(tc, restart_fail_fast_and_reconnect);
    suite_add_tcase(su, tc);
    /* The tests restart servers: harness state must live in this process, not a fork. */
    return sb_h_run_suite(su, true);
}

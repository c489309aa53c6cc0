/* The Redis store: the only code in surveybus that talks to hiredis. One blocking connection
 * per handle that reconnects by itself with capped exponential back-off (100 ms .. 5 s),
 * plus pipelining, Lua scripts by SHA1 and key prefixing. A handle is not thread-safe: use
 * one per thread. Replies follow hiredis ownership: every non-NULL redisReply returned here
 * belongs to the caller, who releases it with freeReplyObject(). */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Values of sb_store_t.err. */
enum {
    SB_STORE_OK = 0,
    SB_STORE_ERR_CONN,   /* server unreachable or connection lost: retry later */
    SB_STORE_ERR_SERVER, /* the server refused (AUTH, SELECT, SCRIPT LOAD, LOADING ...) */
    SB_STORE_ERR_USAGE,  /* misuse: pipeline count mismatch, key too long, bad argument */
    SB_STORE_ERR_REFUSED /* a script failed on the server (out of memory, writes stopped, a
                            read-only replica...): it answers, but not this call, for now */
};

/* Like hiredis' redisContext, err and errstr describe the last failed call (err is reset to
 * SB_STORE_OK at the start of every call). The other fields are private. */
typedef struct sb_store {
    int err;
    char errstr[160];

    redisContext *c; /* NULL while disconnected */
    char *host, *pass, *prefix;
    int port, db;
    size_t prefix_len;
    int64_t backoff_ms;  /* delay before the next connection attempt after a failure */
    int64_t next_try_ms; /* monotonic ms; no attempt before this */
    int64_t rtt_us;      /* last PING round trip, -1 before the first */
    size_t pending;      /* commands appended and not yet read */
    bool was_up;         /* for logging transitions once */
    int timeout_ms;      /* command timeout; 0: SB_STORE_TIMEOUT_MS */
    char last_fail[160]; /* why the last connection attempt failed, for the back-off's error */
    int64_t refused_ms;  /* monotonic ms of the last refusal (sb_store_refused) */
    int refusal_wait_ms; /* the wait that followed it (sb_store_refusal_wait_ms) */
} sb_store_t;

/* A Lua script known by its SHA1, usable across Redis restarts (see sb_store_eval). */
typedef struct sb_store_script {
    char *lua;
    char sha[41];
} sb_store_script_t;

/* Connects to cfg->redis (host, port, pass, db) with a 1 s connect timeout and 5 s command
 * timeout, sends AUTH (when a password is set) and SELECT (db != 0). The key prefix is
 * cfg->redis.prefix. When the server is merely unreachable the handle is still returned,
 * disconnected, and connects on first use (see sb_store_wait_up); when the server refuses
 * AUTH or SELECT, returns NULL with the reason in err. */
sb_store_t *sb_store_new(const sb_config_t *cfg, char *err, size_t errlen);
void sb_store_free(sb_store_t *s);

#define SB_STORE_TIMEOUT_MS 5000
/* Sets the command timeout (ms > 0) of this handle, now and for its later connections. A
 * probe that must answer (or stop) quickly while Redis hangs uses a shorter one. */
void sb_store_set_timeout(sb_store_t *s, int ms);

/* Runs one command (hiredis format: %s C string, %b binary + size_t length). Returns the
 * reply, which can be of type REDIS_REPLY_ERROR (the caller checks), or NULL when the server
 * is down or the connection was lost (err SB_STORE_ERR_CONN; the command may or may not
 * have been applied, so writes must be idempotent) or is loading its data
 * (SB_STORE_ERR_SERVER). While the back-off delay runs, NULL is returned at once. */
redisReply *sb_store_cmd(sb_store_t *s, const char *fmt, ...);
/* The same with an argument vector (lens NULL: every argv[i] is a C string). */
redisReply *sb_store_cmdargv(sb_store_t *s, int argc, const char **argv, const size_t *lens);

/* Pipeline: append any number of commands, then read exactly that many replies at once.
 * sb_store_append_argv buffers one command (the arguments are copied) and returns 0, or -1
 * when the server is down or the command is invalid: the commands appended so far are then
 * discarded, unsent; start the pipeline again. No other command may run between the first
 * append and sb_store_pipeline_get. */
int sb_store_append_argv(sb_store_t *s, int argc, const char **argv, const size_t *lens);
/* Sends the appended commands and stores their n replies in replies[0..n), in order
 * (error replies included, each owned by the caller). n must equal the number appended.
 * Returns 0, or -1 with every replies[i] NULL when the connection failed (some commands
 * may have been applied), the server is loading its data, or n is wrong; the pipeline is
 * empty afterwards in every case. */
int sb_store_pipeline_get(sb_store_t *s, redisReply **replies, size_t n);

/* Copies a Lua script and computes its SHA1 locally. Returns NULL on OOM. */
sb_store_script_t *sb_store_script_new(const char *lua);
void sb_store_script_free(sb_store_script_t *sc);
/* EVALSHA script with argv[0..nkeys) as KEYS and argv[nkeys..argc) as ARGV (lens NULL: C
 * strings). When the server does not know the script (NOSCRIPT, e.g. after a restart) it is
 * loaded with SCRIPT LOAD and run again. Returns the reply (possibly an error reply from the
 * script) or NULL as sb_store_cmd does. */
redisReply *sb_store_eval(sb_store_t *s, const sb_store_script_t *sc, int nkeys, int argc,
                          const char **argv, const size_t *lens);
/* The same call sent without waiting for its answer: the pipeline then holds it, and
 * sb_store_pipeline_get(s, &reply, 1) reads the reply (a NOSCRIPT error reply included:
 * the caller runs sb_store_eval instead, which loads the script). Returns 0, or -1 when
 * nothing could be sent (server down). */
int sb_store_eval_send(sb_store_t *s, const sb_store_script_t *sc, int nkeys, int argc,
                       const char **argv, const size_t *lens);

/* Sends PING (connecting first if allowed by the back-off) and returns true on PONG; the
 * round trip is then available from sb_store_rtt_us. */
bool sb_store_up(sb_store_t *s);

/* A script's error reply r (what: the caller's name for the call): logged, and kept as the
 * handle's error, SB_STORE_ERR_REFUSED. */
void sb_store_refused(sb_store_t *s, const char *what, const char *reply);

/* How long to wait before retrying after a refusal: 100 ms, doubling for each refusal that
 * follows within 30 s of the one before, up to 5 s. */
int sb_store_refusal_wait_ms(sb_store_t *s);

/* Whether the server takes writes: sets <prefix>health:<name> to the time (60 s lifetime).
 * PING still answers while Redis refuses writes (out of memory under noeviction, a failed
 * RDB save with stop-writes-on-bgsave-error, a read-only replica); this does not. */
bool sb_store_writable(sb_store_t *s, const char *name);
/* Blocks until the server answers PING, retrying with the back-off. Returns 0 when up, -1
 * as soon as stop (may be NULL) becomes non-zero. */
int sb_store_wait_up(sb_store_t *s, volatile sig_atomic_t *stop);
/* Round trip of the last successful PING in microseconds, or -1. */
int64_t sb_store_rtt_us(const sb_store_t *s);

/* Writes prefix + printf(fmt, ...) into buf. Returns the key length, or -1 when it does not
 * fit in len bytes (buf then holds a truncated key). */
int sb_store_key(const sb_store_t *s, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The key prefix ("sb:"), e.g. to pass to a Lua script that builds keys. Borrowed. */
const char *sb_store_prefix(const sb_store_t *s);

/* A growable argument vector for sb_store_eval / sb_store_cmdargv. Strings added with
 * sb_store_args_add are borrowed (must outlive the call); numbers and copies live in the
 * vector's own arena, whose addresses never move. */
typedef struct sb_store_args {
    const char **argv;
    size_t *lens;
    int argc, cap;
    struct sb_store_arena *arena;
} sb_store_args_t;

void sb_store_args_add(sb_store_args_t *a, const char *s, size_t len); /* borrowed */
void sb_store_args_str(sb_store_args_t *a, const char *s);             /* borrowed C string */
void sb_store_args_copy(sb_store_args_t *a, const char *s, size_t len); /* copied */
void sb_store_args_int(sb_store_args_t *a, int64_t v);
/* Empties the vector (keeps its memory for reuse). */
void sb_store_args_reset(sb_store_args_t *a);
/* Releases everything; the struct may be reused after (zeroed). */
void sb_store_args_free(sb_store_args_t *a);

#endif

/* One line per event on stderr: "ts level service msg key=value ...". */
#ifndef SB_LOG_H
#define SB_LOG_H

#include <stddef.h>

/* SB_LOG_FATAL is not a level to set: its lines (an "error" that ends the process, e.g. a
 * start-up failure) are written even with the level at off. */
enum { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR, SB_LOG_OFF, SB_LOG_FATAL };

/* Sets the service name printed on each line (borrowed; must outlive logging). */
void sb_log_init(const char *service, int level);
void sb_log_set_level(int level);
int sb_log_level(void);
/* Maps "debug|info|warn|error|off" to a level; -1 for anything else. */
int sb_log_level_parse(const char *name);

/* Writes one line when level >= the current level. Thread-safe (one write(2) per line). */
void sb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sb_debug(...) sb_log(SB_LOG_DEBUG, __VA_ARGS__)
#define sb_info(...) sb_log(SB_LOG_INFO, __VA_ARGS__)
#define sb_warn(...) sb_log(SB_LOG_WARN, __VA_ARGS__)
#define sb_error(...) sb_log(SB_LOG_ERROR, __VA_ARGS__)
#define sb_fatal(...) sb_log(SB_LOG_FATAL, __VA_ARGS__)

/* A value from outside (a topic, a reason quoting a payload) for a key=value pair: in double
 * quotes, with '"' and '\\' escaped by a backslash and control bytes as \xNN, cut to fit
 * cap (>= 3) bytes. Returns out. */
const char *sb_log_quote(char *out, size_t cap, const char *s);

#endif

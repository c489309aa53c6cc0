/* Structured one-line logging on stderr; see log.h. */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *service = "surveybus";
static int cur_level = SB_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error", "off"};

void sb_log_init(const char *name, int level)
{
    if (name) service = name;
    cur_level = level;
}

void sb_log_set_level(int level)
{
    cur_level = level;
}

int sb_log_level(void)
{
    return cur_level;
}

int sb_log_level_parse(const char *name)
{
    for (int i = 0; i <= SB_LOG_OFF; i++)
        if (name && strcmp(name, names[i]) == 0) return i;
    return -1;
}

void sb_log(int level, const char *fmt, ...)
{
    if (level == SB_LOG_FATAL) level = SB_LOG_ERROR; /* whatever the level */
    else if (level < cur_level || level >= SB_LOG_OFF) return;
    char line[2048], ts[32];
    sb_time_format(sb_now_ms(), ts);
    int n = snprintf(line, sizeof line, "%s %s %s ", ts, names[level], service);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) n += vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

const char *sb_log_quote(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[9];
        size_t k = 0;
        if (*p == '"' || *p == '\\')
            esc[k++] = '\\', esc[k++] = (char)*p;
        else if (*p < 0x20 || *p == 0x7F)
            k = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
        else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) /* a C1 control, both bytes */
            k = (size_t)snprintf(esc, sizeof esc, "\\xc2\\x%02x", *++p);
        else
            esc[k++] = (char)*p;
        if (n + k + 2 > cap) break; /* room for the closing quote and NUL */
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

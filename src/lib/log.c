/* log.c - see log.h.  One write(2) per line so lines from threads and child processes interleave
 * whole. */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "ckube";
static enum ck_log_level log_min = CK_LOG_INFO;

void ck_log_init(const char *component, enum ck_log_level min)
{
    log_component = component;
    log_min = min;
    const char *v = getenv("CKUBE_LOG_LEVEL");
    if (v && !strcmp(v, "debug"))
        log_min = CK_LOG_DEBUG;
}

void ck_log(enum ck_log_level lvl, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%c%02d%02d %02d:%02d:%02d.%06ld %s] ", "DIWE"[lvl],
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec,
                     log_component);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

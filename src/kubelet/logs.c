/* logs.c - container logs in the CRI format the shim writes, one line per record:
 *
 *   2026-11-25T17:00:00.123456789Z stdout F hello
 *
 * (F = full line, P = partial: the text continues in the next record).  Reading implements what
 * pods/log offers: tailLines, sinceSeconds/sinceTime, timestamps, limitBytes and follow (poll the
 * file for growth while the container may still write).  At most the last READ_WINDOW bytes of a
 * file are considered for a non-follow read, which bounds memory for huge logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/util.h"

#define READ_WINDOW (16 * 1024 * 1024)

void ck_cri_format_time(int64_t wall_ns, char out[40])
{
    time_t s = (time_t)(wall_ns / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09uZ", (unsigned)(wall_ns % 1000000000));
}

/* "2026-11-25T17:00:00.123456789Z" -> wall ns; -1 if malformed. */
static int64_t parse_ts(const char *s, size_t len)
{
    struct tm tm = {0};
    char buf[40];
    if (len >= sizeof buf || len < 20)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    int ns_digits = 0;
    long long frac = 0;
    if (sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    char *dot = strchr(buf, '.');
    if (dot)
        for (char *p = dot + 1; *p >= '0' && *p <= '9'; p++, ns_digits++)
            if (ns_digits < 9)
                frac = frac * 10 + (*p - '0');
    for (int d = ns_digits; d < 9; d++)
        frac *= 10;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000000000 + frac;
}

typedef struct parsed {
    const char *ts;
    size_t ts_len;
    int64_t when;
    bool partial;
    const char *text;
    size_t text_len;
} parsed;

static bool parse_line(const char *l, size_t len, parsed *p)
{
    const char *sp1 = memchr(l, ' ', len);
    if (!sp1)
        return false;
    const char *rest = sp1 + 1;
    size_t rl = len - (size_t)(rest - l);
    const char *sp2 = memchr(rest, ' ', rl);
    if (!sp2 || (size_t)(sp2 - l) + 2 > len)
        return false;
    p->ts = l;
    p->ts_len = (size_t)(sp1 - l);
    p->when = parse_ts(l, p->ts_len);
    p->partial = sp2[1] == 'P';
    p->text = sp2 + 3 <= l + len ? sp2 + 3 : l + len;
    p->text_len = (size_t)(l + len - p->text);
    return true;
}

typedef struct out_state {
    const ck_log_opts *o;
    ck_log_write_cb cb;
    void *ctx;
    long sent;
    bool at_line_start;
    int failed;
} out_state;

static void emit(out_state *s, const parsed *p)
{
    if (s->failed)
        return;
    if (s->o->since_ns && p->when >= 0 && p->when < s->o->since_ns)
        return;
    ck_buf b;
    ck_buf_init(&b, 0);
    if (s->o->timestamps && s->at_line_start) {
        ck_buf_add(&b, p->ts, p->ts_len);
        ck_buf_add(&b, " ", 1);
    }
    ck_buf_add(&b, p->text, p->text_len);
    if (!p->partial)
        ck_buf_add(&b, "\n", 1);
    s->at_line_start = !p->partial;
    size_t n = b.len;
    if (s->o->limit_bytes > 0 && s->sent + (long)n > s->o->limit_bytes)
        n = (size_t)(s->o->limit_bytes - s->sent);
    if (n && s->cb(s->ctx, b.data, n) < 0)
        s->failed = 1;
    s->sent += (long)n;
    if (s->o->limit_bytes > 0 && s->sent >= s->o->limit_bytes)
        s->failed = 2;
    ck_buf_free(&b);
}

int ck_logs_read(const char *path, const ck_log_opts *o, ck_log_write_cb cb, void *ctx,
                 bool (*alive)(void *ctx), ck_error **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ck_error_sys(err, errno == ENOENT ? CK_E_NOT_FOUND : CK_E_IO, "log %s", path);
    struct stat st;
    fstat(fd, &st);
    off_t start = st.st_size > READ_WINDOW ? st.st_size - READ_WINDOW : 0;
    ck_buf b;
    ck_buf_init(&b, READ_WINDOW + 65536);
    char tmp[65536];
    lseek(fd, start, SEEK_SET);
    ssize_t n;
    while ((n = read(fd, tmp, sizeof tmp)) > 0 && b.len < READ_WINDOW)
        ck_buf_add(&b, tmp, (size_t)n);
    off_t pos = start + (off_t)b.len;
    /* whole lines only; a partial last line is re-read when following */
    size_t end = b.len;
    while (end > 0 && b.data[end - 1] != '\n')
        end--;
    pos -= (off_t)(b.len - end);
    size_t first = 0;
    if (start > 0) {
        const char *nl = memchr(b.data, '\n', end);
        first = nl ? (size_t)(nl - b.data) + 1 : end;
    }
    /* tail: count full (F) lines backwards */
    if (o->tail_lines >= 0) {
        long lines = 0;
        size_t cut = first, i = end;
        while (i > first) {
            size_t j = i - 1, ls = j;  /* b.data[j] is the '\n' ending this record */
            while (ls > first && b.data[ls - 1] != '\n')
                ls--;
            parsed p;
            if (parse_line(b.data + ls, j - ls, &p) && !p.partial) {
                if (lines == o->tail_lines) {
                    cut = i;
                    break;
                }
                lines++;
            }
            i = ls;
        }
        first = cut;
    }
    out_state s = {.o = o, .cb = cb, .ctx = ctx, .at_line_start = true};
    for (size_t i = first; i < end && !s.failed;) {
        const char *nl = memchr(b.data + i, '\n', end - i);
        size_t le = nl ? (size_t)(nl - b.data) : end;
        parsed p;
        if (parse_line(b.data + i, le - i, &p))
            emit(&s, &p);
        i = le + 1;
    }
    ck_buf_free(&b);
    if (!o->follow || s.failed) {
        close(fd);
        return s.failed == 1 ? -1 : 0;
    }
    /* follow: read growth; stop when the writer is gone and nothing is left, or the peer is */
    ck_buf_init(&b, 1024 * 1024);
    int idle_after_death = 0;
    while (!s.failed) {
        lseek(fd, pos, SEEK_SET);
        n = read(fd, tmp, sizeof tmp);
        if (n > 0) {
            ck_buf_add(&b, tmp, (size_t)n);
            size_t used = 0;
            for (;;) {
                const char *nl = memchr(b.data + used, '\n', b.len - used);
                if (!nl)
                    break;
                size_t le = (size_t)(nl - b.data);
                parsed p;
                if (parse_line(b.data + used, le - used, &p))
                    emit(&s, &p);
                used = le + 1;
            }
            pos += (off_t)used;
            ck_buf_reset(&b);
            continue;
        }
        if (alive && !alive(ctx)) {
            if (++idle_after_death > 3)
                break;
        }
        /* an empty write tells whether the peer is still there */
        if (cb(ctx, "", 0) < 0)
            break;
        usleep(100 * 1000);
    }
    ck_buf_free(&b);
    close(fd);
    return 0;
}

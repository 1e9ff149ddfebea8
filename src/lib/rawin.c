/* rawin.c - a socket's incoming bytes handed out to a TLS BIO (contract in rawin.h). */
#include "lib/rawin.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

void ck_rawin_init(ck_rawin *in, size_t cap)
{
    memset(in, 0, sizeof *in);
    in->buf = xmalloc(cap);
    in->cap = cap;
    in->may_read = true;
}

void ck_rawin_free(ck_rawin *in)
{
    free(in->buf);
    in->buf = NULL;
}

int ck_rawin_take(ck_rawin *in, int fd, char *data, size_t len)
{
    if (in->off == in->len) {
        if (in->eof)
            return 0;
        if (!in->may_read)
            return -1;
        ssize_t n;
        do
            n = read(fd, in->buf, in->cap);
        while (n < 0 && errno == EINTR);
        in->reads++;
        if (n == 0) {
            in->eof = true;
            return 0;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -2;
            in->may_read = false;
            return -1;
        }
        if ((size_t)n < in->cap)
            in->may_read = false;
        in->off = 0;
        in->len = (size_t)n;
    }
    size_t n = in->len - in->off;
    if (n > len)
        n = len;
    memcpy(data, in->buf + in->off, n);
    in->off += n;
    return (int)n;
}

int ck_rawin_bio_read(ck_rawin *in, int fd, BIO *b, char *data, int len)
{
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    int n = ck_rawin_take(in, fd, data, (size_t)len);
    if (n == -1)
        BIO_set_retry_read(b);
    return n < 0 ? -1 : n;
}

long ck_rawin_bio_ctrl(const ck_rawin *in, int cmd)
{
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return in->eof && in->off == in->len;
    default:
        return 0;
    }
}

/* streams_client - a minimal exec client for measurements without kubectl.
 *
 * Usage: streams_client HOST PORT PATH [CERT KEY]
 * Opens TLS to HOST:PORT (client certificate optional, server not verified: loopback
 * benchmarking only), sends a websocket v5.channel.k8s.io exec upgrade for PATH (e.g.
 * /api/v1/namespaces/default/pods/P/exec?command=head&command=-c&command=1073741824&
 * command=/dev/zero&stdout=true), reads until the status message and prints
 * "first_byte_ms=... bytes=... mib_s=... status=..." on one line.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include "lib/util.h"
#include "lib/websocket.h"

struct st {
    uint64_t bytes;
    int64_t first_ns;
    char status[256];
    bool done;
};

static int on_msg(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    struct st *s = ctx;
    if (op == CK_WS_CLOSE) {
        s->done = true;
        return 1;
    }
    if (op != CK_WS_BINARY || len == 0)
        return 0;
    if (d[0] == 1 || d[0] == 2) {
        if (!s->first_ns && len > 1)
            s->first_ns = ck_now_ns();
        s->bytes += len - 1;
    } else if (d[0] == 3) {
        snprintf(s->status, sizeof s->status, "%.*s", (int)(len - 1), d + 1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: streams_client HOST PORT PATH [CERT KEY]\n");
        return 2;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (argc > 5 && (SSL_CTX_use_certificate_chain_file(ctx, argv[4]) != 1 ||
                     SSL_CTX_use_PrivateKey_file(ctx, argv[5], SSL_FILETYPE_PEM) != 1)) {
        fprintf(stderr, "streams_client: bad certificate or key\n");
        return 1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0)
        return 1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int64_t t0 = ck_now_ns();
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        perror("connect");
        return 1;
    }
    freeaddrinfo(ai);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        fprintf(stderr, "streams_client: TLS handshake failed\n");
        return 1;
    }
    char key[25];
    ck_ws_client_key(key);
    char *rq = xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n", argv[3], argv[1], key);
    SSL_write(ssl, rq, (int)strlen(rq));
    free(rq);
    static char buf[1 << 20];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        int n = SSL_read(ssl, buf + have, (int)(sizeof buf - have - 1));
        if (n <= 0) {
            fprintf(stderr, "streams_client: closed before the response head\n");
            return 1;
        }
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (strncmp(buf, "HTTP/1.1 101", 12)) {
        fprintf(stderr, "streams_client: %.*s\n", (int)(end - buf), buf);
        return 1;
    }
    ck_ws ws;
    ck_ws_init(&ws, false, 0);
    struct st s = {0};
    size_t off = (size_t)(end - buf) + 4;
    ck_ws_feed(&ws, buf + off, have - off, on_msg, &s, NULL);
    while (!s.done) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0)
            break;
        if (ck_ws_feed(&ws, buf, (size_t)n, on_msg, &s, NULL) != 0)
            break;
    }
    int64_t t1 = ck_now_ns();
    double secs = (double)(t1 - (s.first_ns ? s.first_ns : t0)) / 1e9;
    printf("first_byte_ms=%.1f bytes=%llu mib_s=%.0f status=%s\n",
           s.first_ns ? (double)(s.first_ns - t0) / 1e6 : -1.0, (unsigned long long)s.bytes,
           secs > 0 ? (double)s.bytes / 1048576.0 / secs : 0.0, s.status);
    ck_ws_free(&ws);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return 0;
}

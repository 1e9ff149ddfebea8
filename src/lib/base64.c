/* base64.c - base64url, standard and lenient base64; see base64.h. */
#include "lib/base64.h"

#include <openssl/evp.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int ck_b64url_encode(ck_buf *out, const void *in, size_t n)
{
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63],
                     alphabet[v & 63]};
        if (ck_buf_add(out, q, i + 2 < n ? 4 : i + 1 < n ? 3 : 2) < 0)
            return -1;
    }
    return 0;
}

static int value_of(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

unsigned char *ck_b64url_decode(const char *s, size_t n, size_t *outlen)
{
    while (n && s[n - 1] == '=')
        n--;
    unsigned char *out = xmalloc(n * 3 / 4 + 4);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value_of(s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

char *ck_b64_encode(const void *in, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

unsigned char *ck_b64_decode(const char *s, size_t *outlen)
{
    size_t n = strlen(s);
    unsigned char *out = xmalloc(n / 4 * 3 + 4);
    int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (len < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the bytes the '=' padding stands for */
    while (n > 0 && s[n - 1] == '=' && len > 0) {
        n--;
        len--;
    }
    out[len] = '\0';
    *outlen = (size_t)len;
    return out;
}

/* 0-63 for either alphabet's digit, -2 for whitespace, -1 otherwise. */
static int lenient_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') return -2;
    return -1;
}

unsigned char *ck_b64_decode_lenient(const char *s, size_t n, size_t *outlen)
{
    unsigned char *out = xmalloc(n / 4 * 3 + 4);
    size_t o = 0, digits = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = lenient_value((unsigned char)s[i]);
        if (v == -2)
            continue;
        if (v < 0) {
            free(out);
            return NULL;
        }
        digits++;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (digits % 4 == 1) {   /* a lone digit cannot carry a whole byte */
        free(out);
        return NULL;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

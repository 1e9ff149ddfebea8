/* Unit tests for lib/tz.c: UTC offsets of real zones around their DST changes (the system's
 * tzdata, /usr/share/zoneinfo), POSIX TZ footers on synthetic TZif files, refused names and
 * malformed files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/tz.h"
#include "lib/util.h"

static int64_t at(const char *rfc3339)
{
    int64_t t = 0;
    assert_int_equal(ck_parse_rfc3339(rfc3339, &t), 0);
    return t;
}

static void test_zones(void **state)
{
    (void)state;
    static const struct { const char *zone, *when; int32_t off; bool dst; } cases[] = {
        {"Europe/Berlin", "2026-03-29T00:59:59Z", 3600, false},
        {"Europe/Berlin", "2026-03-29T01:00:00Z", 7200, true},
        {"Europe/Berlin", "2026-10-25T00:59:59Z", 7200, true},
        {"Europe/Berlin", "2026-10-25T01:00:00Z", 3600, false},
        {"Europe/Berlin", "2051-07-01T12:00:00Z", 7200, true},     /* past the table: footer */
        {"Europe/Berlin", "2051-12-01T12:00:00Z", 3600, false},
        {"Europe/Berlin", "1880-01-01T00:00:00Z", 3208, false},    /* before it: local mean time */
        {"America/New_York", "2026-03-08T06:59:59Z", -18000, false},
        {"America/New_York", "2026-03-08T07:00:00Z", -14400, true},
        {"America/New_York", "2026-11-01T05:59:59Z", -14400, true},
        {"America/New_York", "2026-11-01T06:00:00Z", -18000, false},
        {"Australia/Sydney", "2026-04-04T15:59:59Z", 39600, true}, /* southern summer */
        {"Australia/Sydney", "2026-04-04T16:00:00Z", 36000, false},
        {"Australia/Sydney", "2045-01-15T00:00:00Z", 39600, true},
        {"Asia/Kolkata", "2026-06-01T00:00:00Z", 19800, false},
        {"UTC", "2026-06-01T00:00:00Z", 0, false},
        {"Etc/GMT+5", "2026-06-01T00:00:00Z", -18000, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_error *err = NULL;
        ck_tz *tz = ck_tz_load(cases[i].zone, NULL, &err);
        if (!tz)
            fail_msg("%s: %s", cases[i].zone, err->msg);
        bool dst = !cases[i].dst;
        int32_t off = ck_tz_offset(tz, at(cases[i].when), &dst);
        if (off != cases[i].off || dst != cases[i].dst)
            fail_msg("%s at %s: offset %d dst %d, want %d %d", cases[i].zone, cases[i].when, off,
                     dst, cases[i].off, cases[i].dst);
        ck_tz_free(tz);
    }
    ck_tz *tz = ck_tz_load("America/New_York", NULL, NULL);
    assert_non_null(tz);
    char out[32];
    ck_tz_rfc3339(tz, at("2026-11-26T14:00:00Z"), out);
    assert_string_equal(out, "2026-11-26T09:00:00-05:00");
    ck_tz_free(tz);
}

/* A version-2 TZif file with no transitions: one type (offset std), footer `rule`. */
static unsigned char *synthetic(const char *rule, int32_t std, size_t *len)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    for (int part = 0; part < 2; part++) {
        unsigned char h[44] = "TZif2";
        uint32_t counts[6] = {0, 0, 0, 0, 1, 4};   /* isut isstd leap time type chars */
        for (int i = 0; i < 6; i++)
            for (int k = 0; k < 4; k++)
                h[20 + 4 * i + k] = (unsigned char)(counts[i] >> (24 - 8 * k));
        ck_buf_add(&b, (const char *)h, sizeof h);
        unsigned char type[6] = {(unsigned char)((uint32_t)std >> 24), (unsigned char)((uint32_t)std >> 16),
                                 (unsigned char)((uint32_t)std >> 8), (unsigned char)std, 0, 0};
        ck_buf_add(&b, (const char *)type, sizeof type);
        ck_buf_add(&b, "STD", 4);
    }
    ck_buf_printf(&b, "\n%s\n", rule);
    *len = b.len;
    return (unsigned char *)ck_buf_steal(&b);
}

static void test_footer_rules(void **state)
{
    (void)state;
    static const struct { const char *rule, *when; int32_t off; } cases[] = {
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2030-03-31T00:59:59Z", 3600},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2030-03-31T01:00:00Z", 7200},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2030-10-27T00:59:59Z", 7200},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2030-10-27T01:00:00Z", 3600},
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2030-01-01T00:00:00Z", 39600},
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2030-07-01T00:00:00Z", 36000},
        {"<+0330>-3:30", "2030-07-01T00:00:00Z", 12600},
        {"<-03>3", "2030-07-01T00:00:00Z", -10800},
        {"EST5EDT", "2030-07-01T00:00:00Z", -14400},                 /* default US rule */
        {"EST5EDT,M3.2.0,M11.1.0", "2030-03-10T06:59:59Z", -18000},
        {"EST5EDT,M3.2.0,M11.1.0", "2030-03-10T07:00:00Z", -14400},
        {"XXX3YYY,J60/0,J300", "2030-03-01T03:00:00Z", -7200},      /* J60 = March 1 */
        {"XXX3YYY,J60/0,J300", "2030-02-28T12:00:00Z", -10800},
        {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2030-07-01T00:00:00Z", -3600},  /* negative time */
    };
    /* no transitions at all: the footer governs every instant (RFC 8536 3.2) */
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        size_t len;
        cleanup_free unsigned char *data = synthetic(cases[i].rule, 999, &len);
        ck_error *err = NULL;
        ck_tz *tz = ck_tz_parse(data, len, &err);
        if (!tz)
            fail_msg("%s: %s", cases[i].rule, err->msg);
        int32_t off = ck_tz_offset(tz, at(cases[i].when), NULL);
        if (off != cases[i].off)
            fail_msg("%s at %s (no transitions): %d, want %d", cases[i].rule, cases[i].when, off,
                     cases[i].off);
        ck_tz_free(tz);
    }
    /* with one transition at 0 the footer governs every later instant */
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_buf b;
        ck_buf_init(&b, 0);
        for (int part = 0; part < 2; part++) {
            unsigned char h[44] = "TZif2";
            uint32_t counts[6] = {0, 0, 0, 1, 1, 4};
            for (int k = 0; k < 6; k++)
                for (int j = 0; j < 4; j++)
                    h[20 + 4 * k + j] = (unsigned char)(counts[k] >> (24 - 8 * j));
            ck_buf_add(&b, (const char *)h, sizeof h);
            static const unsigned char zero8[8];
            ck_buf_add(&b, (const char *)zero8, part ? 8 : 4);   /* transition at 0 */
            ck_buf_add(&b, "\0", 1);                            /* its type */
            static const unsigned char type[6];
            ck_buf_add(&b, (const char *)type, sizeof type);
            ck_buf_add(&b, "STD", 4);
        }
        ck_buf_printf(&b, "\n%s\n", cases[i].rule);
        ck_error *err = NULL;
        ck_tz *tz = ck_tz_parse((const unsigned char *)b.data, b.len, &err);
        if (!tz)
            fail_msg("%s: %s", cases[i].rule, err->msg);
        int32_t off = ck_tz_offset(tz, at(cases[i].when), NULL);
        if (off != cases[i].off)
            fail_msg("%s at %s: %d, want %d", cases[i].rule, cases[i].when, off, cases[i].off);
        ck_tz_free(tz);
        ck_buf_free(&b);
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const struct { const char *name; int code; } names[] = {
        {"../../etc/passwd", CK_E_INVALID}, {"/etc/localtime", CK_E_INVALID},
        {"Local", CK_E_INVALID}, {"", CK_E_INVALID}, {"No/Such_Zone", CK_E_NOT_FOUND},
        {"Europe", CK_E_NOT_FOUND},   /* a directory */
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        ck_error *err = NULL;
        assert_null(ck_tz_load(names[i].name, NULL, &err));
        assert_non_null(err);
        if ((int)err->code != names[i].code)
            fail_msg("%s: code %d (%s)", names[i].name, err->code, err->msg);
        ck_error_free(err);
    }
    static const char *const bad[] = {"", "TZif", "TZif2\0\0\0", "\nCET-1CEST,M3.5.0\n"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        ck_error *err = NULL;
        assert_null(ck_tz_parse((const unsigned char *)bad[i], strlen(bad[i]) + (i == 2 ? 3 : 0), &err));
        ck_error_free(err);
    }
    /* a footer that does not parse, and a truncated table */
    size_t len;
    cleanup_free unsigned char *data = synthetic("CET-1CEST,M13.5.0,M10.5.0", 0, &len);
    ck_error *err = NULL;
    assert_null(ck_tz_parse(data, len, &err));
    ck_error_free(err);
    err = NULL;
    assert_null(ck_tz_parse(data, 60, &err));
    assert_non_null(err);
    ck_error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zones),
        cmocka_unit_test(test_footer_rules),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for lib/quantity: table of quantity strings and their values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/quantity.h"

static const struct {
    const char *in;
    int ok;
    int64_t milli, value;
} cases[] = {
    {"100m", 0, 100, 1},
    {"1", 0, 1000, 1},
    {"1.5", 0, 1500, 2},
    {"2500m", 0, 2500, 3},
    {"64Mi", 0, 67108864000LL, 67108864},
    {"1Gi", 0, 1073741824000LL, 1073741824},
    {"1G", 0, 1000000000000LL, 1000000000},
    {"128974848", 0, 128974848000LL, 128974848},
    {"129e6", 0, 129000000000LL, 129000000},
    {"123Ki", 0, 125952000, 125952},
    {"0.5Gi", 0, 536870912000LL, 536870912},
    {"1k", 0, 1000000, 1000},
    {"110", 0, 110000, 110},
    {"", -1, 0, 0},
    {"abc", -1, 0, 0},
    {"1Qi", -1, 0, 0},
    {"1.2.3", -1, 0, 0},
    {"Mi", -1, 0, 0},
};

static void test_table(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t m = -7, v = -7;
        int rc = ck_quantity_parse_milli(cases[i].in, &m);
        assert_int_equal(rc, cases[i].ok);
        assert_int_equal(ck_quantity_parse(cases[i].in, &v), cases[i].ok);
        if (rc == 0) {
            if (m != cases[i].milli || v != cases[i].value)
                fail_msg("%s: got milli=%lld value=%lld", cases[i].in, (long long)m, (long long)v);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the static PersistentVolume binder's matching: which Available volume a claim
 * binds to (storage class, volumeMode, access modes, capacity, selector, claimRef, phase). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controllers/cm.h"

#define CLAIM(spec) "{\"metadata\":{\"name\":\"c\",\"namespace\":\"ns\",\"uid\":\"u1\"},\"spec\":" spec "}"
#define STD "\"accessModes\":[\"ReadWriteOnce\"],\"resources\":{\"requests\":{\"storage\":\"1Gi\"}}"

static void test_pv_fits(void **state)
{
    (void)state;
    static const struct {
        const char *pv, *claim;
        bool fits;
    } cases[] = {
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"]}}", CLAIM("{" STD "}"), true},
        {"{\"spec\":{\"capacity\":{\"storage\":\"512Mi\"},\"accessModes\":[\"ReadWriteOnce\"]}}", CLAIM("{" STD "}"), false},
        {"{\"spec\":{\"capacity\":{\"storage\":\"2G\"},\"accessModes\":[\"ReadWriteOnce\",\"ReadOnlyMany\"]},\"status\":{\"phase\":\"Available\"}}",
         CLAIM("{" STD "}"), true},
        {"{\"spec\":{\"capacity\":{\"storage\":\"5Gi\"},\"accessModes\":[\"ReadOnlyMany\"]}}", CLAIM("{" STD "}"), false},
        /* storage class must be equal ("" only matches "") */
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"],\"storageClassName\":\"local\"}}",
         CLAIM("{" STD "}"), false},
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"],\"storageClassName\":\"local\"}}",
         CLAIM("{" STD ",\"storageClassName\":\"local\"}"), true},
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"],\"volumeMode\":\"Block\"}}",
         CLAIM("{" STD "}"), false},
        /* bound or released volumes are out */
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"]},\"status\":{\"phase\":\"Released\"}}",
         CLAIM("{" STD "}"), false},
        /* claimRef: only the named claim (and uid when given) */
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"],\"claimRef\":{\"namespace\":\"ns\",\"name\":\"other\"}}}",
         CLAIM("{" STD "}"), false},
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"],\"claimRef\":{\"namespace\":\"ns\",\"name\":\"c\"}}}",
         CLAIM("{" STD "}"), true},
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"],\"claimRef\":{\"namespace\":\"ns\",\"name\":\"c\",\"uid\":\"old\"}}}",
         CLAIM("{" STD "}"), false},
        /* selector matchLabels */
        {"{\"metadata\":{\"labels\":{\"disk\":\"ssd\"}},\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"]}}",
         CLAIM("{" STD ",\"selector\":{\"matchLabels\":{\"disk\":\"ssd\"}}}"), true},
        {"{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"]}}",
         CLAIM("{" STD ",\"selector\":{\"matchLabels\":{\"disk\":\"ssd\"}}}"), false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *pv = json_loads(cases[i].pv, 0, NULL), *claim = json_loads(cases[i].claim, 0, NULL);
        if (!pv || !claim)
            fail_msg("case %zu does not parse", i);
        if (cm_pv_fits(pv, claim) != cases[i].fits)
            fail_msg("case %zu: fits should be %d", i, cases[i].fits);
        json_decref(pv);
        json_decref(claim);
    }
}

static void test_pv_pick(void **state)
{
    (void)state;
    json_t *claim = json_loads(CLAIM("{" STD "}"), 0, NULL);
    json_t *pvs = json_loads(
        "[{\"metadata\":{\"name\":\"big\"},\"spec\":{\"capacity\":{\"storage\":\"10Gi\"},\"accessModes\":[\"ReadWriteOnce\"]}},"
        "{\"metadata\":{\"name\":\"small\"},\"spec\":{\"capacity\":{\"storage\":\"2Gi\"},\"accessModes\":[\"ReadWriteOnce\"]}},"
        "{\"metadata\":{\"name\":\"tiny\"},\"spec\":{\"capacity\":{\"storage\":\"1Mi\"},\"accessModes\":[\"ReadWriteOnce\"]}}]", 0, NULL);
    assert_non_null(claim);
    assert_non_null(pvs);
    /* the smallest volume that fits */
    assert_string_equal(cm_name(cm_pv_pick(pvs, claim)), "small");
    /* a volume pre-bound to the claim wins over a better fit */
    json_array_append_new(pvs, json_loads(
        "{\"metadata\":{\"name\":\"pre\"},\"spec\":{\"capacity\":{\"storage\":\"50Gi\"},\"accessModes\":[\"ReadWriteOnce\"],"
        "\"claimRef\":{\"namespace\":\"ns\",\"name\":\"c\"}}}", 0, NULL));
    assert_string_equal(cm_name(cm_pv_pick(pvs, claim)), "pre");
    json_t *none = json_array();
    assert_null(cm_pv_pick(none, claim));
    json_decref(none);
    json_decref(pvs);
    json_decref(claim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pv_fits),
        cmocka_unit_test(test_pv_pick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

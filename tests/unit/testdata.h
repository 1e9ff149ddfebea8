/* testdata.h - load a JSON file of test cases from tests/data/, found relative to the test binary
 * (ROOT/<build>/tests/<name>), so tests run from any directory and any build dir.
 *
 * Header-only; include after <cmocka.h> (a missing or invalid file fails the test). */
#ifndef CK_TESTDATA_H
#define CK_TESTDATA_H

#include <jansson.h>
#include <libgen.h>
#include <unistd.h>

#include "lib/util.h"

/* tests/data/<dir>/<name>, parsed; the caller owns the tree. */
static json_t *test_data_load(const char *dir, const char *name)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    char *root = dirname(dirname(dirname(exe)));
    char *path = xasprintf("%s/tests/data/%s/%s", root, dir, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        fail_msg("%s: %s line %d", path, je.text, je.line);
    free(path);
    return j;
}

#endif

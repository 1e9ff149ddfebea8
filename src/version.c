/* version.c - `ckube version` and the version facts the API server reports at /version. */
#include <stdio.h>

#include "commands.h"
#include "lib/flags.h"
#include "version.h"

int cmd_version(int argc, char **argv)
{
    if (ck_flags_parse("version", "Print the ckube version", argc, argv, NULL, 0) > 0) {
        fprintf(stderr, "Error: unexpected argument \"%s\"\n", argv[0]);
        return 2;
    }
    printf("ckube %s (Kubernetes API %s)\n", CK_VERSION, CK_KUBE_GIT_VERSION);
    return 0;
}

/* component.c - shared component start-up; see component.h. */
#include "client/component.h"

#include <pthread.h>
#include <stdio.h>

int ck_component_check_args(int npos, char **argv, const char *kubeconfig)
{
    if (npos > 0) {
        fprintf(stderr, "Error: unexpected argument \"%s\"\n", argv[0]);
        return -1;
    }
    if (!kubeconfig || !*kubeconfig) {
        fprintf(stderr, "Error: --kubeconfig is required\n");
        return -1;
    }
    return 0;
}

ck_client *ck_component_client(const char *kubeconfig, const char *user_agent)
{
    ck_error *err = NULL;
    ck_client *c = ck_client_from_file(kubeconfig, user_agent, &err);
    if (!c) {
        fprintf(stderr, "Error: %s\n", err->msg);
        ck_error_free(err);
    }
    return c;
}

void ck_component_block_signals(sigset_t *set, const int *extra)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    for (; extra && *extra; extra++)
        sigaddset(set, *extra);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

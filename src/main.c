/* main.c - the multi-call entry point: `ckube <command>` or a symlink named after the command
 * (like busybox).  Each command lives in its own file and is listed in commands.h. */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
#define CK_X_CMD(name, fn, summary) {name, fn, summary},
    CK_COMMANDS(CK_X_CMD)
#undef CK_X_CMD
};

static void usage(FILE *f)
{
    fprintf(f, "ckube - Kubernetes, written in C\n\nUsage:\n  ckube <command> [flags]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-26s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nUse \"ckube <command> --help\" for more information about a command.\n");
}

int main(int argc, char **argv)
{
    const char *self = basename(argv[0]);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(self, commands[i].name))
            return commands[i].run(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "Error: unknown command \"%s\" for \"ckube\"\nRun 'ckube --help' for usage.\n",
            argv[1]);
    return 2;
}

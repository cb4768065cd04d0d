/* main: steno-server entry point: options, start-up and shutdown. */
#include <stdio.h>
#include <string.h>

#include "usage.h"

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(srv_usage_text, stdout);
            return 0;
        }
    }
    fputs("steno-server: not implemented yet\n", stderr);
    return 1;
}

/* Command-line parsing, separate from main() so unit tests can drive it. */
#ifndef QUOKKA_CLI_H
#define QUOKKA_CLI_H

#include "vm/machine.h"

#include <stddef.h>

enum cli_action { CLI_RUN, CLI_HELP, CLI_VERSION };

/* What the command line says beyond the machine: the control plane. */
struct cli_extra {
    const char *api_sock;    /* --api-sock PATH: serve Firecracker's API there */
    const char *config_file; /* --config-file FILE: boot from Firecracker's JSON layout */
    bool kernel_given;       /* --kernel was given (the API then needs no boot-source) */
};

/* Parse argv into an action and, for CLI_RUN, a machine config (strings point into argv or
 * into default_kernel/default_initrd, which the caller provides: the built default guest).
 * `quokka --api-sock PATH ...` (no command word, as Firecracker is started) means run.
 * Returns 0, or -1 with one line in err (exit status 2). */
int cli_parse(int argc, char **argv, const char *default_kernel, const char *default_initrd,
              enum cli_action *action, struct machine_config *cfg, struct cli_extra *extra,
              char *err, size_t errlen);

extern const char cli_usage[];

#endif

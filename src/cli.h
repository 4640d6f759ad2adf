/* Command-line parsing, separate from main() so unit tests can drive it. */
#ifndef QUOKKA_CLI_H
#define QUOKKA_CLI_H

#include "vm/machine.h"

#include <stddef.h>

enum cli_action { CLI_RUN, CLI_HELP, CLI_VERSION };

/* Parse argv into an action and, for CLI_RUN, a machine config (strings point into argv or
 * into default_kernel/default_initrd, which the caller provides: the built default guest).
 * Returns 0, or -1 with one line in err (exit status 2). */
int cli_parse(int argc, char **argv, const char *default_kernel, const char *default_initrd,
              enum cli_action *action, struct machine_config *cfg, char *err, size_t errlen);

extern const char cli_usage[];

#endif

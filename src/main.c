/* quokka: a virtual machine monitor for x86-64 guests on KVM or quokka's own translator. */
#include "api/api.h"
#include "cli.h"
#include "util/log.h"
#include "vm/sandbox.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef QUOKKA_VERSION
#define QUOKKA_VERSION "dev"
#endif

/* The default guest lives next to the binary: build/quokka -> build/guest/. */
static void default_guest_paths(char *kernel, char *initrd, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        snprintf(kernel, len, "build/guest/bzImage");
        snprintf(initrd, len, "build/guest/initrd.cpio.gz");
        return;
    }
    exe[n] = '\0';
    const char *dir = dirname(exe);
    snprintf(kernel, len, "%s/guest/bzImage", dir);
    snprintf(initrd, len, "%s/guest/initrd.cpio.gz", dir);
}

int main(int argc, char **argv)
{
    char kernel[PATH_MAX + 32], initrd[PATH_MAX + 32], err[512];
    default_guest_paths(kernel, initrd, sizeof(kernel));
    enum cli_action action;
    struct machine_config cfg;
    struct cli_extra extra;
    if (cli_parse(argc, argv, kernel, initrd, &action, &cfg, &extra, err, sizeof(err)) < 0) {
        qk_error("%s", err);
        return EXIT_USAGE;
    }
    switch (action) {
    case CLI_HELP:
        fputs(cli_usage, stdout);
        return 0;
    case CLI_VERSION:
        printf("quokka %s\n", QUOKKA_VERSION);
        return 0;
    case CLI_RUN:
        break;
    }
    accel_settings_from_env(&cfg.accel_settings);
    /* Before any thread that filters itself starts (block, network and API threads start
     * during set-up). */
    if (sandbox_configure(!cfg.seccomp_off, SANDBOX_TRAP, err, sizeof(err)) < 0) {
        qk_error("%s", err);
        return EXIT_HOST_FAILURE;
    }
    if (extra.api_sock || extra.config_file) {
        const struct api_options api = {extra.api_sock, extra.config_file, &cfg,
                                        extra.kernel_given};
        return api_main(&api);
    }
    return machine_run(&cfg);
}

#include "cli.h"

#include "util/log.h"
#include "util/size.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char cli_usage[] =
    "usage: quokka run [--kernel PATH] [--initrd PATH] [--append STRING] [--mem SIZE]\n"
    "                  [--cpus N] [--accel kvm|tcg|auto] [--console stdio|file:PATH|none]\n"
    "       quokka --help | --version\n"
    "\n"
    "  --kernel PATH    Linux bzImage, vmlinux with a PVH note, Multiboot v1 ELF, or ELF64\n"
    "                   (default: the built default guest, build/guest/bzImage)\n"
    "  --initrd PATH    initial ramdisk / first Multiboot module\n"
    "                   (default with the default kernel: build/guest/initrd.cpio.gz)\n"
    "  --append STRING  kernel command line (default: \"console=ttyS0\")\n"
    "  --mem SIZE       guest RAM, suffixes K/M/G (default 256M)\n"
    "  --cpus N         number of vCPUs (default 1)\n"
    "  --accel A        kvm, tcg (quokka's translator) or auto (KVM when usable; default)\n"
    "  --console C      serial console: stdio (default), file:PATH or none\n"
    "\n"
    "Exit status: 0 guest powered off or rebooted; (V<<1)|1 guest wrote V to port 0xf4;\n"
    "1 quokka could not start the VM; 2 usage error; 3 guest crashed (triple fault);\n"
    "128+N ended by signal N (Ctrl-C ends the VM).\n";

#define DEFAULT_CMDLINE "console=ttyS0"

int cli_parse(int argc, char **argv, const char *default_kernel, const char *default_initrd,
              enum cli_action *action, struct machine_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mem_size = 256ULL << 20;
    cfg->nr_vcpus = 1;
    cfg->accel = ACCEL_AUTO;
    cfg->console = (struct console_spec){CONSOLE_STDIO, NULL};
    cfg->cmdline = DEFAULT_CMDLINE;

    if (argc < 2)
        return qk_fail(err, errlen, "no command given (try 'quokka --help')");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        *action = CLI_HELP;
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        *action = CLI_VERSION;
        return 0;
    }
    if (strcmp(argv[1], "run") != 0)
        return qk_fail(err, errlen, "unknown command '%s' (try 'quokka --help')", argv[1]);
    *action = CLI_RUN;

    enum { OPT_KERNEL = 256, OPT_INITRD, OPT_APPEND, OPT_MEM, OPT_CPUS, OPT_ACCEL, OPT_CONSOLE };
    static const struct option options[] = {
        {"kernel", required_argument, NULL, OPT_KERNEL},
        {"initrd", required_argument, NULL, OPT_INITRD},
        {"append", required_argument, NULL, OPT_APPEND},
        {"mem", required_argument, NULL, OPT_MEM},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"accel", required_argument, NULL, OPT_ACCEL},
        {"console", required_argument, NULL, OPT_CONSOLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool kernel_given = false, initrd_given = false;
    optind = 2;
    opterr = 0;
    for (;;) {
        int prev = optind;
        int opt = getopt_long(argc, argv, ":h", options, NULL);
        if (opt == -1)
            break;
        const char *arg = optarg;
        const char *word = argv[prev < argc ? prev : argc - 1];
        switch (opt) {
        case OPT_KERNEL:
            cfg->kernel_path = arg;
            kernel_given = true;
            break;
        case OPT_INITRD:
            cfg->initrd_path = arg;
            initrd_given = true;
            break;
        case OPT_APPEND:
            cfg->cmdline = arg;
            break;
        case OPT_MEM:
            if (parse_size(arg, &cfg->mem_size) < 0)
                return qk_fail(err, errlen, "--mem '%s' is not a size (e.g. 256M, 2G)", arg);
            break;
        case OPT_CPUS: {
            char *end;
            long n = strtol(arg, &end, 10);
            if (*arg == '\0' || *end || n < 1 || n > MACHINE_MAX_VCPUS)
                return qk_fail(err, errlen, "--cpus '%s' must be a number from 1 to %d", arg,
                               MACHINE_MAX_VCPUS);
            cfg->nr_vcpus = (unsigned)n;
            break;
        }
        case OPT_ACCEL:
            if (accel_parse_kind(arg, &cfg->accel) < 0)
                return qk_fail(err, errlen, "--accel '%s' must be kvm, tcg or auto", arg);
            break;
        case OPT_CONSOLE:
            if (console_parse(arg, &cfg->console) < 0)
                return qk_fail(err, errlen, "--console '%s' must be stdio, none or file:PATH",
                               arg);
            break;
        case 'h':
            *action = CLI_HELP;
            return 0;
        case ':':
            return qk_fail(err, errlen, "option '%s' needs a value", word);
        default:
            return qk_fail(err, errlen, "unknown option '%s' (try 'quokka --help')", word);
        }
    }
    if (optind < argc)
        return qk_fail(err, errlen, "unexpected argument '%s' (try 'quokka --help')",
                       argv[optind]);
    if (!kernel_given) {
        if (!default_kernel || access(default_kernel, R_OK) != 0)
            return qk_fail(err, errlen,
                           "no --kernel given and the default guest %s is missing (run 'make "
                           "guest')",
                           default_kernel ? default_kernel : "build/guest/bzImage");
        cfg->kernel_path = default_kernel;
        if (!initrd_given && default_initrd && access(default_initrd, R_OK) == 0)
            cfg->initrd_path = default_initrd;
    }
    return 0;
}

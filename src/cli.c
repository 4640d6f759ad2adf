#include "cli.h"

#include "util/log.h"
#include "util/size.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char cli_usage[] =
    "usage: quokka run [--kernel PATH] [--initrd PATH] [--append STRING] [--mem SIZE]\n"
    "                  [--cpus N] [--accel kvm|tcg|auto] [--console "
    "[virtio:]stdio|file:PATH|none]\n"
    "                  [--disk path=IMG[,readonly=on][,serial=ID][,queues=N]]... [--rng]\n"
    "                  [--net user[,hostfwd=RULE]...|tap=NAME[,queues=N]|tap-fd=N[:N...]\n"
    "                         [,mac=MAC][,mtu=N]]...\n"
    "                  [--vsock cid=N,path=SOCK] [--device MODEL[,KEY=VALUE...]]...\n"
    "                  [--api-sock PATH] [--config-file FILE] [--gdb tcp:HOST:PORT|unix:PATH]\n"
    "       quokka --api-sock PATH [--config-file FILE] [run options...]\n"
    "                  [--seccomp on|off] [--tcg SETTINGS]\n"
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
    "  --console C      where the guest console goes: stdio (default), file:PATH or none,\n"
    "                   on COM1 (ttyS0); prefixed with virtio (virtio, virtio:file:PATH) the\n"
    "                   console is a virtio-console (hvc0) instead: append console=hvc0\n"
    "  --disk SPEC      a virtio-blk disk (repeatable; /dev/vda, vdb... in order):\n"
    "                   path=IMG raw image (a bare IMG works too), readonly=on, serial=ID\n"
    "                   (up to 20 bytes), queues=N (default: one per vCPU). A writable image\n"
    "                   is locked: two VMs cannot open it writable\n"
    "  --rng            a virtio-rng device fed by the host's getrandom() (/dev/hwrng)\n"
    "  --net SPEC       a virtio-net NIC (repeatable; eth0, eth1... in order). user: user-mode\n"
    "                   networking, no root (guest 10.0.2.15, gateway/host loopback 10.0.2.2,\n"
    "                   DNS 10.0.2.3), hostfwd=tcp|udp:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT\n"
    "                   (repeatable); tap=NAME: a host tap device (queues=N: N queue pairs on\n"
    "                   a multiqueue tap, 1-16); tap-fd=N[:N...]: open tap fds, one per queue\n"
    "                   pair; mac=52:54:00:xx:xx:xx, mtu=N (68-65520)\n"
    "  --vsock SPEC     virtio-vsock, Firecracker's hybrid host side: cid=N (>= 3),\n"
    "                   path=SOCK (host connects and writes \"CONNECT <port>\\n\"; guest\n"
    "                   connections to CID 2 port P reach SOCK_P)\n"
    "  --device D       any device model with options, e.g. virtio-rng, uart16550\n"
    "  --api-sock PATH  serve Firecracker's REST API on the Unix socket PATH (created; an\n"
    "                   existing file is an error): configure with PUT /boot-source,\n"
    "                   /machine-config, /drives/ID..., boot with PUT /actions InstanceStart;\n"
    "                   PATCH /vm pauses and resumes. The options above are the defaults\n"
    "  --config-file F  boot right away from Firecracker's JSON configuration file F\n"
    "  --gdb ADDR       serve the GDB remote protocol on tcp:HOST:PORT or unix:PATH; the guest\n"
    "                   starts stopped and runs when gdb continues (target remote ADDR)\n"
    "  --seccomp on|off the seccomp sandbox (default on): once set up, each thread allows\n"
    "                   itself only the system calls its kind needs (vCPU, I/O, block,\n"
    "                   network, API, gdbstub); a forbidden one is named on stderr and\n"
    "                   ends quokka (signal 31). off: for debugging only\n"
    "  --tcg S          translator settings, comma-separated: backend=native|interp,\n"
    "                   code-kb=N (code buffer), stats (counters on stderr at exit),\n"
    "                   perf-map (/tmp/perf-PID.map: perf names guest blocks)\n"
    "Options that take one value may be given once; --disk, --net, --rng, --device repeat.\n"
    "\n"
    "Exit status: 0 guest powered off or rebooted; (V<<1)|1 guest wrote V to port 0xf4;\n"
    "1 quokka could not start the VM; 2 usage error; 3 guest crashed (triple fault);\n"
    "128+N ended by signal N (Ctrl-C ends the VM).\n";

#define DEFAULT_CMDLINE "console=ttyS0"

enum {
    OPT_KERNEL = 256,
    OPT_INITRD,
    OPT_APPEND,
    OPT_MEM,
    OPT_CPUS,
    OPT_ACCEL,
    OPT_CONSOLE,
    OPT_TCG,
    OPT_SECCOMP, /* the last single-valued one (see seen[]) */
    OPT_DISK,
    OPT_RNG,
    OPT_DEVICE,
    OPT_NET,
    OPT_VSOCK,
    OPT_API_SOCK,
    OPT_CONFIG_FILE,
    OPT_GDB,
};

/* --tcg backend=native|interp,code-kb=N,stats,perf-map (any subset, any order). */
static int parse_tcg(const char *arg, struct accel_settings *s, char *err, size_t errlen)
{
    char buf[256];
    if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
        return qk_fail(err, errlen, "--tcg '%s' is too long", arg);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (!strncmp(item, "backend=", 8)) {
            if (accel_parse_tcg_backend(item + 8, &s->tcg_backend) < 0)
                return qk_fail(err, errlen, "--tcg backend='%s' must be native or interp",
                               item + 8);
        } else if (!strncmp(item, "code-kb=", 8)) {
            char *end;
            unsigned long kb = strtoul(item + 8, &end, 10);
            if (!item[8] || *end || kb < TCG_CODE_KB_MIN || kb > TCG_CODE_KB_MAX)
                return qk_fail(err, errlen, "--tcg code-kb='%s' must be a number from %u to %u",
                               item + 8, TCG_CODE_KB_MIN, TCG_CODE_KB_MAX);
            s->tcg_code_kb = (unsigned)kb;
        } else if (!strcmp(item, "stats")) {
            s->tcg_stats = s->tcg_count_insns = true;
        } else if (!strcmp(item, "perf-map")) {
            s->tcg_perf_map = true;
        } else {
            return qk_fail(err, errlen,
                           "--tcg '%s': unknown setting (backend=native|interp, code-kb=N, "
                           "stats, perf-map)",
                           item);
        }
    }
    return 0;
}

/* [virtio[:]]stdio|none|file:PATH; "virtio" alone is virtio:stdio. */
static int parse_console(const char *arg, struct machine_config *cfg)
{
    cfg->virtio_console = false;
    if (!strcmp(arg, "virtio")) {
        cfg->virtio_console = true;
        arg = "stdio";
    } else if (!strncmp(arg, "virtio:", 7)) {
        cfg->virtio_console = true;
        arg += 7;
    }
    return console_parse(arg, &cfg->console);
}

static bool has_device(const struct machine_config *cfg, const char *model)
{
    for (unsigned i = 0; i < cfg->nr_devices; i++)
        if (!strcmp(cfg->devices[i].model, model))
            return true;
    return false;
}

static const char *device_flag(int opt)
{
    switch (opt) {
    case OPT_DISK:
        return "--disk";
    case OPT_RNG:
        return "--rng";
    case OPT_NET:
        return "--net";
    case OPT_VSOCK:
        return "--vsock";
    default:
        return "--device";
    }
}

/* --disk SPEC, --rng, --net SPEC, --vsock SPEC, --device MODEL[,opts]: a device request for the
 * device manager, which checks the model and its options. */
static int add_device(struct machine_config *cfg, const char *flag, int opt, const char *arg,
                      char *err, size_t errlen)
{
    if (cfg->nr_devices == MACHINE_MAX_DEVICE_REQUESTS)
        return qk_fail(err, errlen, "%s: at most %d devices", flag, MACHINE_MAX_DEVICE_REQUESTS);
    struct device_request *r = &cfg->devices[cfg->nr_devices];
    r->flag = flag;
    r->opts = "";
    if (opt == OPT_DISK) {
        snprintf(r->model, sizeof(r->model), "virtio-blk");
        r->opts = arg;
        if (!*arg)
            return qk_fail(err, errlen, "--disk needs a value: path=IMG[,readonly=on]...");
    } else if (opt == OPT_RNG) {
        snprintf(r->model, sizeof(r->model), "virtio-rng");
    } else if (opt == OPT_NET || opt == OPT_VSOCK) {
        snprintf(r->model, sizeof(r->model), opt == OPT_NET ? "virtio-net" : "virtio-vsock");
        r->opts = arg;
    } else {
        /* MODEL[,KEY=VALUE...] */
        const char *comma = strchr(arg, ',');
        size_t len = comma ? (size_t)(comma - arg) : strlen(arg);
        if (len == 0 || len >= sizeof(r->model))
            return qk_fail(err, errlen, "--device '%s' needs a model name (e.g. virtio-rng)", arg);
        memcpy(r->model, arg, len);
        r->model[len] = '\0';
        r->opts = comma ? comma + 1 : "";
    }
    cfg->nr_devices++;
    return 0;
}

int cli_parse(int argc, char **argv, const char *default_kernel, const char *default_initrd,
              enum cli_action *action, struct machine_config *cfg, struct cli_extra *extra,
              char *err, size_t errlen)
{
    struct cli_extra unused;
    if (!extra)
        extra = &unused;
    memset(extra, 0, sizeof(*extra));
    memset(cfg, 0, sizeof(*cfg));
    cfg->mem_size = 256ULL << 20;
    cfg->nr_vcpus = 1;
    cfg->accel = ACCEL_AUTO;
    cfg->console = (struct console_spec){CONSOLE_STDIO, NULL};
    cfg->cmdline = DEFAULT_CMDLINE;

    if (argc < 2)
        return qk_fail(err, errlen, "no command given (try 'quokka --help')");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc > 2) /* there are no help topics: do not pretend to have shown one */
            return qk_fail(err, errlen, "%s takes no argument ('%s' given; try 'quokka --help')",
                           argv[1], argv[2]);
        *action = CLI_HELP;
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        if (argc > 2)
            return qk_fail(err, errlen, "%s takes no argument ('%s' given)", argv[1], argv[2]);
        *action = CLI_VERSION;
        return 0;
    }
    /* Firecracker is started as `firecracker --api-sock PATH`: options without a command
     * word are run's. */
    bool implicit_run = argv[1][0] == '-' && argv[1][1] == '-';
    if (strcmp(argv[1], "run") != 0 && !implicit_run)
        return qk_fail(err, errlen, "unknown command '%s' (try 'quokka --help')", argv[1]);
    *action = CLI_RUN;

    /* The single-valued options first, in OPT_ order (seen[] below names them by index). */
    static const struct option options[] = {
        {"kernel", required_argument, NULL, OPT_KERNEL},
        {"initrd", required_argument, NULL, OPT_INITRD},
        {"append", required_argument, NULL, OPT_APPEND},
        {"mem", required_argument, NULL, OPT_MEM},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"accel", required_argument, NULL, OPT_ACCEL},
        {"console", required_argument, NULL, OPT_CONSOLE},
        {"tcg", required_argument, NULL, OPT_TCG},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"disk", required_argument, NULL, OPT_DISK},
        {"rng", no_argument, NULL, OPT_RNG},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"net", required_argument, NULL, OPT_NET},
        {"vsock", required_argument, NULL, OPT_VSOCK},
        {"api-sock", required_argument, NULL, OPT_API_SOCK},
        {"config-file", required_argument, NULL, OPT_CONFIG_FILE},
        {"gdb", required_argument, NULL, OPT_GDB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool kernel_given = false, initrd_given = false, help = false;
    /* Single-valued options seen so far: given twice is a mistake (which one was meant?),
     * not silently last-wins. Indexed by OPT_x - OPT_KERNEL, up to OPT_SECCOMP. */
    const char *seen[OPT_SECCOMP - OPT_KERNEL + 1] = {0};
    optind = implicit_run ? 1 : 2;
    opterr = 0;
    for (;;) {
        int prev = optind;
        int opt = getopt_long(argc, argv, ":h", options, NULL);
        if (opt == -1)
            break;
        const char *arg = optarg;
        const char *word = argv[prev < argc ? prev : argc - 1];
        if (opt >= OPT_KERNEL && opt <= OPT_SECCOMP) {
            const char **first = &seen[opt - OPT_KERNEL];
            if (*first)
                return qk_fail(err, errlen, "--%s given twice ('%s' and '%s'): it takes one value",
                               options[opt - OPT_KERNEL].name, *first, arg);
            *first = arg;
        }
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
            if (parse_console(arg, cfg) < 0)
                return qk_fail(err, errlen,
                               "--console '%s' must be stdio, none or file:PATH, optionally "
                               "after virtio: (e.g. virtio, virtio:file:PATH)",
                               arg);
            break;
        case OPT_TCG:
            if (parse_tcg(arg, &cfg->accel_settings, err, errlen) < 0)
                return -1;
            break;
        case OPT_SECCOMP:
            if (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)
                return qk_fail(err, errlen, "--seccomp '%s' must be on or off", arg);
            cfg->seccomp_off = !strcmp(arg, "off");
            break;
        case OPT_DISK:
        case OPT_RNG:
        case OPT_DEVICE:
        case OPT_NET:
        case OPT_VSOCK:
            if (add_device(cfg, device_flag(opt), opt, arg, err, errlen) < 0)
                return -1;
            break;
        case OPT_API_SOCK:
            extra->api_sock = arg;
            break;
        case OPT_CONFIG_FILE:
            extra->config_file = arg;
            break;
        case OPT_GDB:
            if (cfg->gdb)
                return qk_fail(err, errlen, "--gdb given twice ('%s' and '%s'): it takes one value",
                               cfg->gdb, arg);
            if (strncmp(arg, "tcp:", 4) != 0 && strncmp(arg, "unix:", 5) != 0)
                return qk_fail(err, errlen, "--gdb '%s' must be tcp:HOST:PORT or unix:PATH", arg);
            cfg->gdb = arg;
            break;
        case 'h':
            help = true; /* after the other words are checked: `run --help extra` is wrong */
            break;
        case ':':
            return qk_fail(err, errlen, "option '%s' needs a value", word);
        default:
            return qk_fail(err, errlen, "unknown option '%s' (try 'quokka --help')", word);
        }
    }
    if (optind < argc)
        return qk_fail(err, errlen, "unexpected argument '%s' (try 'quokka --help')", argv[optind]);
    if (help) {
        *action = CLI_HELP;
        return 0;
    }
    if (cfg->virtio_console && !has_device(cfg, "virtio-console") &&
        add_device(cfg, "--console", OPT_DEVICE, "virtio-console", err, errlen) < 0)
        return -1;
    extra->kernel_given = kernel_given;
    /* The API and the config file give the kernel themselves. */
    if (!kernel_given && (extra->api_sock || extra->config_file))
        return 0;
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

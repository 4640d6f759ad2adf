/* Unit tests: size parsing, guest memory bounds, bus dispatch and overlap rejection, CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli.h"
#include "util/size.h"
#include "vm/bus.h"
#include "vm/cpuid.h"
#include "vm/memory.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(parse_size("256M", &v), 0);
    assert_int_equal(v, 256ULL << 20);
    assert_int_equal(parse_size("1g", &v), 0);
    assert_int_equal(v, 1ULL << 30);
    assert_int_equal(parse_size("512K", &v), 0);
    assert_int_equal(v, 512ULL << 10);
    assert_int_equal(parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(parse_size("2GiB", &v), 0);
    assert_int_equal(v, 2ULL << 30);
    assert_int_equal(parse_size("1MB", &v), 0);
    assert_int_equal(v, 1ULL << 20);
    const char *bad[] = {
        "", "M", "-1M", "12Q", "1MM", "1.5G", " 1G", "99999999999999999999", "17179869184G", "1Mx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse_size(bad[i], &v), -1);
    assert_int_equal(parse_size(NULL, &v), -1);
}

static void test_memory_layout(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[256];
    assert_int_equal(guest_memory_init(&mem, 64ULL << 20, err, sizeof(err)), 0);
    assert_int_equal(mem.nr_regions, 1);
    assert_int_equal(guest_low_ram(&mem), 64ULL << 20);
    assert_int_equal(guest_high_ram(&mem), 0);
    assert_non_null(gpa_to_host(&mem, 0, 64ULL << 20));
    assert_null(gpa_to_host(&mem, 0, (64ULL << 20) + 1));
    assert_null(gpa_to_host(&mem, (64ULL << 20) - 1, 2));
    assert_non_null(gpa_to_host(&mem, (64ULL << 20) - 1, 1));
    /* Hostile values: wrap-around and huge lengths never yield a pointer. */
    assert_null(gpa_to_host(&mem, UINT64_MAX, 2));
    assert_null(gpa_to_host(&mem, 16, UINT64_MAX));
    assert_null(gpa_to_host(&mem, UINT64_MAX - 8, 16));
    uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8}, back[8];
    assert_int_equal(guest_write(&mem, 0x1000, buf, 8), 0);
    assert_int_equal(guest_read(&mem, 0x1000, back, 8), 0);
    assert_memory_equal(buf, back, 8);
    assert_int_equal(guest_write(&mem, (64ULL << 20) - 4, buf, 8), -1);
    guest_memory_destroy(&mem);
}

static void test_memory_above_4g(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[256];
    assert_int_equal(guest_memory_init(&mem, 5ULL << 30, err, sizeof(err)), 0);
    assert_int_equal(mem.nr_regions, 2);
    assert_int_equal(guest_low_ram(&mem), 3ULL << 30);
    assert_int_equal(guest_high_ram(&mem), 2ULL << 30);
    /* The MMIO hole is not RAM. */
    assert_null(gpa_to_host(&mem, 0xC0000000ULL, 1));
    assert_null(gpa_to_host(&mem, 0xFEE00000ULL, 4));
    assert_null(gpa_to_host(&mem, 0xBFFFFFFFULL, 2)); /* straddles RAM end and hole */
    assert_non_null(gpa_to_host(&mem, 0x100000000ULL, 4096));
    assert_null(gpa_to_host(&mem, 0x100000000ULL + (2ULL << 30), 1));
    guest_memory_destroy(&mem);
}

static void test_memory_bad_sizes(void **state)
{
    (void)state;
    struct guest_memory mem;
    char err[256] = "";
    assert_int_equal(guest_memory_init(&mem, 4096, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "minimum"));
    assert_int_equal(guest_memory_init(&mem, 2ULL << 40, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "maximum"));
    assert_int_equal(guest_memory_init(&mem, (64ULL << 20) + 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "multiple"));
}

struct fake_dev {
    uint64_t last_offset, last_value;
    unsigned last_size, reads, writes;
};

static uint64_t fake_read(void *opaque, uint64_t offset, unsigned size)
{
    struct fake_dev *d = opaque;
    d->reads++;
    d->last_offset = offset;
    d->last_size = size;
    return 0x1122334455667788ULL;
}

static void fake_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct fake_dev *d = opaque;
    d->writes++;
    d->last_offset = offset;
    d->last_size = size;
    d->last_value = value;
}

static const struct bus_device_ops fake_ops = {fake_read, fake_write};

static void test_bus_dispatch(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev a = {0}, b = {0};
    char err[256];
    bus_init(&bus, "pio", 0x10000);
    assert_int_equal(bus_register(&bus, 0x3f8, 8, &fake_ops, &a, "uart", err, sizeof(err)), 0);
    assert_int_equal(bus_register(&bus, 0x70, 2, &fake_ops, &b, "rtc", err, sizeof(err)), 0);
    uint64_t v;
    assert_true(bus_read(&bus, 0x3fd, 1, &v));
    assert_int_equal(v, 0x88);
    assert_int_equal(a.last_offset, 5);
    assert_true(bus_write(&bus, 0x71, 1, 0xabcdef));
    assert_int_equal(b.last_value, 0xef); /* truncated to the access size */
    assert_int_equal(b.last_offset, 1);
    assert_true(bus_write(&bus, 0x70, 2, 0xabcdef));
    assert_int_equal(b.last_value, 0xcdef);
    assert_int_equal(b.last_offset, 0);
    /* Unclaimed: reads all-ones, writes dropped. */
    assert_false(bus_read(&bus, 0x500, 2, &v));
    assert_int_equal(v, 0xffff);
    assert_false(bus_read(&bus, 0x500, 4, &v));
    assert_int_equal(v, 0xffffffff);
    assert_false(bus_write(&bus, 0x500, 1, 1));
    /* An access straddling the end of a range is not given to the device. */
    unsigned before = a.reads;
    assert_false(bus_read(&bus, 0x3ff, 2, &v));
    assert_int_equal(a.reads, before);
    assert_int_equal(v, 0xffff);
    bus_destroy(&bus);
}

static void test_bus_overlap(void **state)
{
    (void)state;
    struct bus bus;
    struct fake_dev d = {0};
    char err[256] = "";
    bus_init(&bus, "pio", 0x10000);
    assert_int_equal(bus_register(&bus, 0x100, 0x10, &fake_ops, &d, "a", err, sizeof(err)), 0);
    assert_int_equal(bus_register(&bus, 0x10f, 1, &fake_ops, &d, "b", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "overlaps a"));
    assert_int_equal(bus_register(&bus, 0xf8, 0x10, &fake_ops, &d, "c", err, sizeof(err)), -1);
    assert_int_equal(bus_register(&bus, 0x0, 0x1000, &fake_ops, &d, "d", err, sizeof(err)), -1);
    assert_int_equal(bus_register(&bus, 0x110, 0x10, &fake_ops, &d, "e", err, sizeof(err)), 0);
    assert_int_equal(bus_register(&bus, 0xf0, 0x10, &fake_ops, &d, "f", err, sizeof(err)), 0);
    assert_int_equal(bus_register(&bus, 0x200, 0, &fake_ops, &d, "g", err, sizeof(err)), -1);
    assert_int_equal(bus_register(&bus, 0xfff0, 0x20, &fake_ops, &d, "h", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "outside"));
    assert_int_equal(bus.nr, 3);
    /* Ranges stay sorted so lookups find each one. */
    for (uint64_t addr = 0xf0; addr < 0x120; addr++)
        assert_true(bus_find(&bus, addr, 1, NULL));
    assert_false(bus_find(&bus, 0x120, 1, NULL));
    bus_destroy(&bus);

    struct bus mmio;
    bus_init(&mmio, "mmio", 0);
    assert_int_equal(
        bus_register(&mmio, UINT64_MAX - 0xf, 0x20, &fake_ops, &d, "wrap", err, sizeof(err)), -1);
    assert_int_equal(
        bus_register(&mmio, UINT64_MAX - 0xf, 0x10, &fake_ops, &d, "top", err, sizeof(err)), 0);
    uint64_t v;
    assert_true(bus_read(&mmio, UINT64_MAX - 7, 8, &v));
    assert_false(bus_read(&mmio, UINT64_MAX, 8, &v)); /* would wrap */
    bus_destroy(&mmio);
}

static int parse(const char *const *args, int n, enum cli_action *action,
                 struct machine_config *cfg, char *err, size_t len)
{
    char *argv[32];
    for (int i = 0; i < n; i++)
        argv[i] = (char *)args[i];
    argv[n] = NULL;
    return cli_parse(n, argv, "/nonexistent/bzImage", "/nonexistent/initrd", action, cfg, NULL, err,
                     len);
}

static void test_cli_run(void **state)
{
    (void)state;
    enum cli_action action;
    struct machine_config cfg;
    char err[256];
    const char *args[] = {
        "quokka", "run", "--kernel", "/k", "--initrd", "/i",  "--append",  "console=ttyS0 quiet",
        "--mem",  "1G",  "--cpus",   "2",  "--accel",  "kvm", "--console", "file:/tmp/x"};
    assert_int_equal(parse(args, 16, &action, &cfg, err, sizeof(err)), 0);
    assert_int_equal(action, CLI_RUN);
    assert_string_equal(cfg.kernel_path, "/k");
    assert_string_equal(cfg.initrd_path, "/i");
    assert_string_equal(cfg.cmdline, "console=ttyS0 quiet");
    assert_int_equal(cfg.mem_size, 1ULL << 30);
    assert_int_equal(cfg.nr_vcpus, 2);
    assert_int_equal(cfg.accel, ACCEL_KVM);
    assert_int_equal(cfg.console.kind, CONSOLE_FILE);
    assert_string_equal(cfg.console.path, "/tmp/x");

    const char *eq[] = {"quokka", "run", "--kernel=/k2", "--accel=tcg", "--console=none"};
    assert_int_equal(parse(eq, 5, &action, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.kernel_path, "/k2");
    assert_null(cfg.initrd_path);
    assert_int_equal(cfg.accel, ACCEL_TCG);
    assert_int_equal(cfg.console.kind, CONSOLE_NONE);
    assert_int_equal(cfg.mem_size, 256ULL << 20);
    assert_int_equal(cfg.nr_vcpus, 1);

    const char *help[] = {"quokka", "--help"};
    assert_int_equal(parse(help, 2, &action, &cfg, err, sizeof(err)), 0);
    assert_int_equal(action, CLI_HELP);
    const char *version[] = {"quokka", "--version"};
    assert_int_equal(parse(version, 2, &action, &cfg, err, sizeof(err)), 0);
    assert_int_equal(action, CLI_VERSION);
}

static void expect_cli_error(const char *const *args, int n, const char *needle)
{
    enum cli_action action;
    struct machine_config cfg;
    char err[256] = "";
    assert_int_equal(parse(args, n, &action, &cfg, err, sizeof(err)), -1);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_null(strchr(err, '\n')); /* one line */
}

static void test_cli_errors(void **state)
{
    (void)state;
    const char *a1[] = {"quokka"};
    expect_cli_error(a1, 1, "no command");
    const char *a2[] = {"quokka", "fly"};
    expect_cli_error(a2, 2, "unknown command 'fly'");
    const char *a3[] = {"quokka", "run", "--kernel", "/k", "--bogus"};
    expect_cli_error(a3, 5, "unknown option '--bogus'");
    const char *a4[] = {"quokka", "run", "--kernel", "/k", "--mem", "lots"};
    expect_cli_error(a4, 6, "--mem 'lots'");
    const char *a5[] = {"quokka", "run", "--kernel", "/k", "--cpus", "0"};
    expect_cli_error(a5, 6, "--cpus '0'");
    const char *a6[] = {"quokka", "run", "--kernel", "/k", "--cpus", "999"};
    expect_cli_error(a6, 6, "--cpus '999'");
    const char *a7[] = {"quokka", "run", "--kernel", "/k", "--accel", "hvf"};
    expect_cli_error(a7, 6, "--accel 'hvf'");
    const char *a8[] = {"quokka", "run", "--kernel", "/k", "--console", "tcp:1"};
    expect_cli_error(a8, 6, "--console 'tcp:1'");
    const char *a9[] = {"quokka", "run", "--kernel"};
    expect_cli_error(a9, 3, "needs a value");
    const char *a10[] = {"quokka", "run"};
    expect_cli_error(a10, 2, "default guest");
    const char *a11[] = {"quokka", "run", "--kernel", "/k", "extra"};
    expect_cli_error(a11, 5, "unexpected argument 'extra'");
    const char *a12[] = {"quokka", "run", "--kernel", "/k", "--console", "file:"};
    expect_cli_error(a12, 6, "--console");
}

static void test_cpuid_shape(void **state)
{
    (void)state;
    static struct cpuid_model base, out;
    base.nr = 2;
    base.entry[0] = (struct cpuid_entry){.function = 1, .ebx = 0xff00ffff, .ecx = 0};
    base.entry[1] =
        (struct cpuid_entry){.function = 0xb, .index = 1, .flags = CPUID_FLAG_INDEXED, .eax = 9};
    cpuid_shape_for_vcpu(&base, 3, 4, &out);
    const struct cpuid_entry *leaf1 = cpuid_find(&out, 1, 0);
    assert_non_null(leaf1);
    assert_int_equal(leaf1->ebx >> 24, 3);
    assert_int_equal((leaf1->ebx >> 16) & 0xff, 4);
    assert_int_equal(leaf1->ebx & 0xffff, 0xffff);
    assert_true(leaf1->ecx & (1u << 31));
    const struct cpuid_entry *topo = cpuid_find(&out, 0xb, 1);
    assert_non_null(topo);
    assert_int_equal(topo->edx, 3);
    assert_int_equal(topo->eax, 2);
    assert_int_equal(topo->ebx, 4);
    assert_null(cpuid_find(&out, 0xb, 0));
    assert_null(cpuid_find(&out, 7, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),      cmocka_unit_test(test_memory_layout),
        cmocka_unit_test(test_memory_above_4g), cmocka_unit_test(test_memory_bad_sizes),
        cmocka_unit_test(test_bus_dispatch),    cmocka_unit_test(test_bus_overlap),
        cmocka_unit_test(test_cli_run),         cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_cpuid_shape),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}

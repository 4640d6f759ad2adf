/* Unit tests: the snapshot state-file format (sections, checksum, truncation, version), the
 * guest clock (stands still while frozen, continues from a set value), the Firecracker
 * configuration model (bodies, ids, the command line it builds), and device state round
 * trips with hostile data refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/fc_config.h"
#include "api/serde_msg.h"
#include "device_fakes.h"
#include "vm/guest_clock.h"
#include "vm/memory.h"
#include "vm/snapshot.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *tmp_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof(path), "/tmp/quokka-test-snapshot-%d-%s", (int)getpid(), name);
    return path;
}

static void write_sample(const char *path)
{
    struct snap_writer w;
    snap_writer_init(&w);
    snap_begin(&w, "alpha", 0);
    snap_put_u32(&w, 0x11223344);
    snap_put_str(&w, "hello");
    snap_begin(&w, "alpha", 1);
    snap_put_u64(&w, 42);
    snap_begin(&w, "empty", 0);
    char err[200];
    assert_int_equal(snap_writer_save(&w, path, err, sizeof(err)), 0);
    snap_writer_free(&w);
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *path = tmp_path("rt");
    write_sample(path);
    struct snap_file f;
    char err[300];
    assert_int_equal(snap_file_load(&f, path, err, sizeof(err)), 0);
    assert_int_equal(f.nr_sections, 3);
    struct snap_reader r;
    assert_true(snap_open(&f, "alpha", 0, &r));
    assert_int_equal(snap_get_u32(&r), 0x11223344);
    char s[8];
    snap_get_str(&r, s, sizeof(s));
    assert_string_equal(s, "hello");
    assert_true(snap_done(&r));
    assert_true(snap_open(&f, "alpha", 1, &r));
    assert_int_equal(snap_get_u64(&r), 42);
    assert_true(snap_done(&r));
    assert_true(snap_open(&f, "empty", 0, &r));
    assert_true(snap_done(&r));
    assert_false(snap_open(&f, "alpha", 2, &r));
    assert_false(snap_open(&f, "missing", 0, &r));
    snap_file_free(&f);
    unlink(path);
}

/* Reading past a section's end fails the reader (zeros come back), and so does a string
 * longer than the buffer: nothing reads beyond the section. */
static void test_short_reads(void **state)
{
    (void)state;
    const char *path = tmp_path("short");
    write_sample(path);
    struct snap_file f;
    char err[300];
    assert_int_equal(snap_file_load(&f, path, err, sizeof(err)), 0);
    struct snap_reader r;
    assert_true(snap_open(&f, "alpha", 0, &r));
    snap_get_u32(&r);
    char tiny[4];
    snap_get_str(&r, tiny, sizeof(tiny)); /* "hello" does not fit */
    assert_true(r.failed);
    assert_false(snap_done(&r));
    assert_true(snap_open(&f, "alpha", 1, &r));
    snap_get_u64(&r);
    assert_int_equal(snap_get_u64(&r), 0);
    assert_false(snap_done(&r));
    snap_file_free(&f);
    unlink(path);
}

static size_t file_size(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return (size_t)n;
}

static void rewrite(const char *path, size_t keep, long flip_at, const void *patch, size_t plen,
                    size_t patch_at)
{
    size_t n = file_size(path);
    uint8_t *buf = malloc(n);
    FILE *fp = fopen(path, "rb");
    assert_int_equal(fread(buf, 1, n, fp), n);
    fclose(fp);
    if (flip_at >= 0)
        buf[flip_at] ^= 0x01;
    if (patch)
        memcpy(buf + patch_at, patch, plen);
    fp = fopen(path, "wb");
    fwrite(buf, 1, keep < n ? keep : n, fp);
    fclose(fp);
    free(buf);
}

static void expect_refused(const char *path, const char *why)
{
    struct snap_file f;
    char err[300] = "";
    assert_int_equal(snap_file_load(&f, path, err, sizeof(err)), -1);
    if (!strstr(err, why))
        fail_msg("'%s' does not say '%s'", err, why);
}

static void test_every_truncation_and_flip_is_refused(void **state)
{
    (void)state;
    const char *path = tmp_path("bad");
    write_sample(path);
    size_t n = file_size(path);
    for (size_t keep = 0; keep < n; keep++) {
        write_sample(path);
        rewrite(path, keep, -1, NULL, 0, 0);
        struct snap_file f;
        char err[300];
        assert_int_equal(snap_file_load(&f, path, err, sizeof(err)), -1);
    }
    for (size_t at = 12; at < n; at++) {
        write_sample(path);
        rewrite(path, n, (long)at, NULL, 0, 0);
        struct snap_file f;
        char err[300];
        assert_int_equal(snap_file_load(&f, path, err, sizeof(err)), -1);
    }
    write_sample(path);
    rewrite(path, n, -1, "XXXX", 4, 0);
    expect_refused(path, "bad magic");
    write_sample(path);
    uint32_t v = 7;
    rewrite(path, n, -1, &v, 4, 8);
    expect_refused(path, "format version 7");
    expect_refused(tmp_path("nonexistent"), "cannot open");
    unlink(path);
}

/* snap_file_parse (fuzz/fuzz_snapshot.c's entry) takes what snap_file_load takes and refuses
 * every prefix of it, the ones shorter than the header included, without reading past len. */
static void test_parse_from_memory(void **state)
{
    (void)state;
    const char *path = tmp_path("mem");
    write_sample(path);
    size_t n = file_size(path);
    uint8_t *buf = malloc(n);
    FILE *fp = fopen(path, "rb");
    assert_int_equal(fread(buf, 1, n, fp), n);
    fclose(fp);
    unlink(path);
    struct snap_file f;
    char err[300];
    assert_int_equal(snap_file_parse(&f, buf, n, err, sizeof(err)), 0);
    assert_int_equal(f.nr_sections, 3);
    struct snap_reader r;
    assert_true(snap_open(&f, "alpha", 1, &r));
    assert_int_equal(snap_get_u64(&r), 42);
    snap_file_free(&f);
    for (size_t keep = 0; keep < n; keep++) {
        uint8_t *part = malloc(keep ? keep : 1); /* exact size: ASan sees an overread */
        memcpy(part, buf, keep);
        assert_int_equal(snap_file_parse(&f, part, keep, err, sizeof(err)), -1);
        free(part);
    }
    free(buf);
}

static void test_guest_clock(void **state)
{
    (void)state;
    struct guest_clock c;
    guest_clock_init(&c);
    uint64_t a = guest_clock_now(&c);
    guest_clock_freeze(&c);
    uint64_t frozen = guest_clock_now(&c);
    assert_true(frozen >= a);
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, NULL);
    assert_int_equal(guest_clock_now(&c), frozen); /* stood still for 20 ms */
    guest_clock_thaw(&c);
    uint64_t b = guest_clock_now(&c);
    assert_true(b >= frozen && b - frozen < 10000000); /* continued, no jump */
    /* A snapshot's time: frozen at it, then running on from it. */
    guest_clock_freeze(&c);
    guest_clock_set(&c, 5000000000ULL);
    assert_int_equal(guest_clock_now(&c), 5000000000ULL);
    guest_clock_thaw(&c);
    uint64_t d = guest_clock_now(&c);
    assert_true(d >= 5000000000ULL && d < 5010000000ULL);
    /* Host deadlines for guest deadlines while running. */
    uint64_t host = guest_clock_to_host(&c, guest_clock_now(&c) + 1000000000ULL);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t host_now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    assert_true(host > host_now + 900000000ULL && host <= host_now + 1000000000ULL);
}

static struct json_object *json(const char *text)
{
    struct json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static void test_fc_config(void **state)
{
    (void)state;
    struct machine_config base = {.mem_size = 256 << 20, .nr_vcpus = 1, .accel = ACCEL_AUTO};
    struct fc_config *fc = malloc(sizeof(*fc));
    fc_config_init(fc, &base, false);
    char err[600];
    struct machine_config cfg;
    assert_int_equal(fc_build(fc, &base, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "without kernel configuration"));

    struct json_object *o = json("{\"vcpu_count\": 2, \"mem_size_mib\": 512, \"accelerator\": "
                                 "\"tcg\", \"smt\": false}");
    assert_int_equal(fc_put_machine_config(fc, o, err, sizeof(err)), 0);
    json_object_put(o);
    o = json("{\"vcpu_count\": 3, \"mem_size_mib\": 512, \"smt\": true}");
    assert_int_equal(fc_put_machine_config(fc, o, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "vCPU number is invalid"));
    json_object_put(o);

    o = json("{\"kernel_image_path\": \"/dev/null\", \"boot_args\": \"console=ttyS0\"}");
    assert_int_equal(fc_put_boot_source(fc, o, err, sizeof(err)), 0);
    json_object_put(o);
    /* Two drives, the root one put second: it still becomes vda; its path has a comma. */
    o = json("{\"drive_id\": \"data\", \"path_on_host\": \"/dev/null\", \"is_root_device\": "
             "false, \"is_read_only\": true}");
    assert_int_equal(fc_put_drive(fc, "data", o, err, sizeof(err)), 0);
    json_object_put(o);
    const char *root = tmp_path("a,b.img");
    FILE *fp = fopen(root, "wb");
    fclose(fp);
    char body[600];
    snprintf(body, sizeof(body),
             "{\"drive_id\": \"root\", \"path_on_host\": \"%s\", \"is_root_device\": true}", root);
    o = json(body);
    assert_int_equal(fc_put_drive(fc, "root", o, err, sizeof(err)), 0);
    assert_int_equal(fc_put_drive(fc, "other", o, err, sizeof(err)), -1); /* id mismatch */
    json_object_put(o);
    assert_int_equal(fc_check_id("eth-0", err, sizeof(err)), -1);
    o = json("{\"iface_id\": \"eth0\", \"user_mode\": true, \"hostfwd\": [\"tcp::2222-:22\"]}");
    assert_int_equal(fc_put_net(fc, "eth0", o, err, sizeof(err)), 0);
    json_object_put(o);
    o = json("{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}");
    assert_int_equal(fc_put_vsock(fc, o, err, sizeof(err)), 0);
    json_object_put(o);

    assert_int_equal(fc_build(fc, &base, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.cmdline, "console=ttyS0 root=/dev/vda rw");
    assert_int_equal(cfg.nr_vcpus, 2);
    assert_int_equal(cfg.mem_size, 512ULL << 20);
    assert_int_equal(cfg.accel, ACCEL_TCG);
    assert_int_equal(cfg.nr_devices, 4);
    assert_string_equal(cfg.devices[0].model, "virtio-blk");
    char want[400];
    snprintf(want, sizeof(want), "path=/tmp/quokka-test-snapshot-%d-a,,b.img", (int)getpid());
    assert_string_equal(cfg.devices[0].opts, want);
    assert_string_equal(cfg.devices[1].opts, "path=/dev/null,readonly=on");
    assert_string_equal(cfg.devices[2].model, "virtio-net");
    assert_string_equal(cfg.devices[2].opts, "id=eth0,user,hostfwd=tcp::2222-:22");
    assert_string_equal(cfg.devices[3].opts, "cid=3,path=/tmp/v.sock");
    unlink(root);

    /* --config-file from memory (fuzz/fuzz_api.c): only len bytes are JSON */
    struct json_object *logger, *metrics;
    static const char doc[] = "{\"boot-source\": {\"kernel_image_path\": \"/dev/null\"},"
                              " \"logger\": {\"level\": \"Info\"}}trailing";
    fc_config_init(fc, &base, false);
    assert_int_equal(fc_load_text(fc, doc, sizeof(doc) - 1, &logger, &metrics, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "trailing characters"));
    assert_int_equal(fc_load_text(fc, doc, strlen(doc) - strlen("trailing"), &logger, &metrics, err,
                                  sizeof(err)),
                     0);
    assert_non_null(logger);
    assert_null(metrics);
    json_object_put(logger);
    assert_int_equal(fc_load_text(fc, "{}", 2, &logger, &metrics, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no \"boot-source\" section"));
    free(fc);
}

/* serde_json's positions, found again in the raw text: just past an unknown key, or past the
 * '}' of the object a missing field belongs to; nested through keys and array indices;
 * strings with braces, escaped quotes and nested values skipped whole. */
static void test_serde_positions(void **state)
{
    (void)state;
    const char *text = "{\"a\": \"}{\\\"\", \"n\": [1, {\"x\": [2]}, {\"y\": 3,\n"
                       "  \"bad\": 4}],\n \"zz\": {\"q\": {}}}";
    struct json_object *o = json(text);
    char err[400];
    static const char *const top_known[] = {"a", "n", NULL}, *const none[] = {NULL},
                             *const one[] = {"y", NULL}, *const two[] = {"y", "z", NULL};
    /* a body is one value and whitespace (json-c alone stops after the value) */
    struct json_object *p =
        serde_parse("{\"state\": 1} \r\n", strlen("{\"state\": 1} \r\n"), err, sizeof(err));
    assert_non_null(p);
    json_object_put(p);
    assert_null(serde_parse("{\"state\": 1}\n x", strlen("{\"state\": 1}\n x"), err, sizeof(err)));
    assert_string_equal(err, "trailing characters at line 2 column 2");
    assert_null(serde_parse("{\"state\": 1}\0", 13, err, sizeof(err)));
    assert_null(serde_parse("{\"state\": ", 10, err, sizeof(err)));
    assert_string_equal(err, "EOF while parsing a value");
    struct serde_at top = {text, strlen(text), NULL, 0};
    assert_int_equal(serde_unknown_fields(&top, o, top_known, err, sizeof(err)), -1);
    assert_string_equal(err, "An error occurred when deserializing the json body of a request: "
                             "unknown field `zz`, expected `a` or `n` at line 3 column 5.");
    const char *const p2[] = {"n", "2"};
    struct serde_at at2 = {text, strlen(text), p2, 2};
    struct json_object *e2 = json_object_array_get_idx(json_object_object_get(o, "n"), 2);
    assert_int_equal(serde_unknown_fields(&at2, e2, one, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown field `bad`, expected `y` at line 2 column 7."));
    assert_int_equal(serde_unknown_fields(&at2, e2, two, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "expected `y` or `z` at line 2 column 7."));
    assert_int_equal(serde_missing_field(&at2, "z", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "missing field `z` at line 2 column 11."));
    const char *const p1[] = {"n", "1"};
    struct serde_at at1 = {text, strlen(text), p1, 2};
    assert_int_equal(serde_missing_field(&at1, "k", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "missing field `k` at line 1 column 33."));
    assert_int_equal(
        serde_unknown_fields(&top, json_object_object_get(o, "zz"), none, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown field `q`, there are no fields"));
    /* a path leading nowhere: the message without a position */
    const char *const p9[] = {"n", "9"};
    struct serde_at at9 = {text, strlen(text), p9, 2};
    serde_missing_field(&at9, "k", err, sizeof(err));
    assert_non_null(strstr(err, "missing field `k`."));
    json_object_put(o);
}

/* The device-option edits PUT /snapshot/load's overrides make: find by id=, drop keys
 * (",," inside a value is not a separator), append. */
static void test_snapshot_config_edit(void **state)
{
    (void)state;
    struct snapshot_config sc;
    memset(&sc, 0, sizeof(sc));
    const char *opts[] = {"path=/a,,b.img", "id=eth1,tap=t0,mac=52:54:00:00:00:01",
                          "id=eth0,user,hostfwd=tcp::1-:2,hostfwd=udp::3-:4", "cid=3,path=/v"};
    const char *models[] = {"virtio-blk", "virtio-net", "virtio-net", "virtio-vsock"};
    for (unsigned i = 0; i < 4; i++) {
        snprintf(sc.cfg.devices[i].model, sizeof(sc.cfg.devices[i].model), "%s", models[i]);
        sc.cfg.devices[i].opts = sc.strings[sc.nr_strings++] = strdup(opts[i]);
    }
    sc.cfg.nr_devices = 4;
    assert_int_equal(snapshot_config_find(&sc, "virtio-net", "eth0"), 2);
    assert_int_equal(snapshot_config_find(&sc, "virtio-net", "eth1"), 1);
    assert_int_equal(snapshot_config_find(&sc, "virtio-net", "eth"), -1);
    assert_int_equal(snapshot_config_find(&sc, "virtio-net", "t0"), -1);
    assert_int_equal(snapshot_config_find(&sc, "virtio-vsock", NULL), 3);
    assert_true(snapshot_config_has(&sc, 2, "user"));
    assert_false(snapshot_config_has(&sc, 1, "user"));
    static const char *const tap[] = {"tap", "tap-fd", NULL}, *const fwd[] = {"hostfwd", NULL},
                             *const path[] = {"path", NULL};
    assert_int_equal(snapshot_config_edit(&sc, 1, tap, "tap=t1"), 0);
    assert_string_equal(sc.cfg.devices[1].opts, "id=eth1,mac=52:54:00:00:00:01,tap=t1");
    assert_int_equal(snapshot_config_edit(&sc, 2, fwd, "hostfwd=tcp::5-:6"), 0);
    assert_string_equal(sc.cfg.devices[2].opts, "id=eth0,user,hostfwd=tcp::5-:6");
    assert_int_equal(snapshot_config_edit(&sc, 0, path, "path=/c,,d"), 0);
    assert_string_equal(sc.cfg.devices[0].opts, "path=/c,,d");
    snapshot_config_free(&sc);
}

/* Every default device with state: poke registers on one machine, save, load the sections
 * into a second machine's fresh devices, read the registers back there. */
static void save_all(void **states, struct snap_writer *w)
{
    size_t n = (size_t)(__stop_quokka_devices - __start_quokka_devices);
    for (size_t i = 0; i < n; i++)
        if (states[i] && __start_quokka_devices[i]->save) {
            snap_begin(w, __start_quokka_devices[i]->name, 0);
            __start_quokka_devices[i]->save(states[i], w);
        }
}

static void test_device_state_round_trip(void **state)
{
    (void)state;
    struct fake_machine a, b;
    fake_machine_init(&a);
    fake_machine_enable_irqchip(&a);
    fake_machine_init(&b);
    fake_machine_enable_irqchip(&b);
    void **sa = fake_create_default_models(&a);
    void **sb = fake_create_default_models(&b);
    outb(&a, 0x3ff, 0x5a); /* COM1 scratch register */
    outb(&a, 0x70, 0x3f);  /* CMOS index... */
    outb(&a, 0x71, 0xa5);  /* ...and a RAM byte */
    outb(&a, 0x21, 0xb7);  /* master PIC mask (OCW1) */
    outb(&a, 0x43, 0x34);  /* PIT channel 0, mode 2, lo/hi */
    outb(&a, 0x40, 0x9c);
    outb(&a, 0x40, 0x2e);
    struct snap_writer w;
    snap_writer_init(&w);
    save_all(sa, &w);
    const char *path = tmp_path("devices");
    char err[300];
    assert_int_equal(snap_writer_save(&w, path, err, sizeof(err)), 0);
    snap_writer_free(&w);
    struct snap_file f;
    assert_int_equal(snap_file_load(&f, path, err, sizeof(err)), 0);
    size_t n = (size_t)(__stop_quokka_devices - __start_quokka_devices);
    unsigned loaded = 0;
    for (size_t i = 0; i < n; i++) {
        const struct device_model *m = __start_quokka_devices[i];
        struct snap_reader r;
        if (!sb[i] || !m->load)
            continue;
        assert_true(snap_open(&f, m->name, 0, &r));
        if (m->load(sb[i], &r, err, sizeof(err)) != 0)
            fail_msg("%s: %s", m->name, err);
        loaded++;
    }
    assert_true(loaded >= 7);
    assert_int_equal(inb(&b, 0x3ff), 0x5a);
    outb(&b, 0x70, 0x3f);
    assert_int_equal(inb(&b, 0x71), 0xa5);
    assert_int_equal(inb(&b, 0x21), 0xb7);
    /* The PIT's channel 0 timer is armed again on the second machine. */
    assert_true(fake_next_deadline(&b) != 0);

    /* Hostile sections: all-ones and truncated data never crash a load; the UART's
     * out-of-range FIFO index is refused. */
    for (size_t i = 0; i < n; i++) {
        const struct device_model *m = __start_quokka_devices[i];
        const struct snap_section *sec = snap_find(&f, m->name, 0);
        if (!sb[i] || !m->load || !sec)
            continue;
        uint8_t *junk = malloc(sec->length);
        memset(junk, 0xff, sec->length);
        struct snap_reader r = {junk, sec->length, 0, false};
        int rc = m->load(sb[i], &r, err, sizeof(err));
        if (!strcmp(m->name, "uart16550") || !strcmp(m->name, "i8042") ||
            !strcmp(m->name, "cmos_rtc") || !strcmp(m->name, "i8254"))
            assert_int_equal(rc, -1);
        r = (struct snap_reader){junk, sec->length / 2, 0, false};
        assert_int_equal(m->load(sb[i], &r, err, sizeof(err)), -1);
        free(junk);
    }
    snap_file_free(&f);
    unlink(path);
    fake_destroy_models(sa);
    fake_destroy_models(sb);
    fake_machine_destroy(&a);
    fake_machine_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_short_reads),
        cmocka_unit_test(test_every_truncation_and_flip_is_refused),
        cmocka_unit_test(test_parse_from_memory),
        cmocka_unit_test(test_guest_clock),
        cmocka_unit_test(test_fc_config),
        cmocka_unit_test(test_snapshot_config_edit),
        cmocka_unit_test(test_serde_positions),
        cmocka_unit_test(test_device_state_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

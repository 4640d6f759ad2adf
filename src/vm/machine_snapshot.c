/* Snapshots of a paused machine and their restore into a fresh one.
 *
 * The state file (vm/snapshot.h) holds, in order: "config" (memory size, vCPUs, accelerator,
 * the device requests the machine was built from), "clock" (guest ns), "vcpu" i (the
 * accelerator's vCPU state), "pci" (the configuration latch and host bridge) and one section
 * per device instance, named after its model. The memory file is guest RAM, byte for byte.
 * A restore builds the same machine from "config", maps the memory file, then puts the
 * clock, vCPUs and devices back while every vCPU is still parked; the guest resumes where it
 * was paused, its clock continuing from the saved value. */
#include "hw/pci/pci.h"
#include "util/log.h"
#include "vm/machine_internal.h"
#include "vm/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *accel_kind_name(const struct machine *m)
{
    return m->accel->name;
}

static void save_config(struct machine *m, struct snap_writer *w)
{
    const struct machine_config *cfg = m->cfg;
    snap_begin(w, "config", 0);
    snap_put_u64(w, cfg->mem_size);
    snap_put_u32(w, cfg->nr_vcpus);
    snap_put_u32(w, cfg->virtio_console);
    snap_put_str(w, accel_kind_name(m));
    snap_put_u32(w, cfg->nr_devices);
    for (unsigned i = 0; i < cfg->nr_devices; i++) {
        snap_put_str(w, cfg->devices[i].model);
        snap_put_str(w, cfg->devices[i].opts ? cfg->devices[i].opts : "");
    }
}

/* Every device instance must be able to save itself (or have nothing to save). */
static int check_devices(struct machine *m, char *err, size_t errlen)
{
    for (size_t i = 0; i < m->devices.nr; i++) {
        const struct device_model *model = m->devices.list[i].model;
        if (m->devices.list[i].created && !model->save && !model->stateless)
            return qk_fail(err, errlen, "device %s cannot be snapshotted yet", model->name);
    }
    if (!m->accel->save_vcpu)
        return qk_fail(err, errlen, "the %s accelerator cannot snapshot vCPUs yet", m->accel->name);
    return 0;
}

int machine_snapshot_create(struct machine *m, const char *state_path, const char *mem_path,
                            char *err, size_t errlen)
{
    pthread_mutex_lock(&m->state_lock);
    int rc = -1;
    size_t quiesced = 0;
    struct snap_writer w;
    snap_writer_init(&w);
    if (atomic_load(&m->state) != MACHINE_PAUSED) {
        qk_fail(err, errlen, "the microVM must be paused first");
        goto out;
    }
    if (check_devices(m, err, errlen) < 0)
        goto out;
    for (; quiesced < m->devices.nr; quiesced++) {
        const struct device_instance *d = &m->devices.list[quiesced];
        if (d->created && d->model->quiesce && d->model->quiesce(d->state, err, errlen) < 0)
            goto out;
    }
    save_config(m, &w);
    snap_begin(&w, "clock", 0);
    snap_put_u64(&w, guest_clock_now(&m->clock));
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        snap_begin(&w, "vcpu", i);
        m->accel->save_vcpu(m->vcpus[i].accel, &w);
    }
    snap_begin(&w, "pci", 0);
    pci_bus_save(m->pci, &w);
    for (size_t i = 0; i < m->devices.nr; i++) {
        const struct device_instance *d = &m->devices.list[i];
        if (!d->created || !d->model->save)
            continue;
        snap_begin(&w, d->model->name, d->instance);
        d->model->save(d->state, &w);
    }
    if (guest_memory_save(&m->mem, mem_path, err, errlen) < 0 ||
        snap_writer_save(&w, state_path, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    /* Every device quiesced so far carries on (a failed quiesce undid its own part). */
    for (size_t i = 0; i < quiesced; i++) {
        const struct device_instance *d = &m->devices.list[i];
        if (d->created && d->model->thaw)
            d->model->thaw(d->state);
    }
    snap_writer_free(&w);
    pthread_mutex_unlock(&m->state_lock);
    return rc;
}

static char *keep(struct snapshot_config *sc, const char *s)
{
    char *copy = strdup(s);
    if (copy && sc->nr_strings < 2 * MACHINE_MAX_DEVICE_REQUESTS)
        sc->strings[sc->nr_strings++] = copy;
    else {
        free(copy);
        copy = NULL;
    }
    return copy;
}

int snapshot_config_read(const struct snap_file *f, const struct machine_config *base,
                         struct snapshot_config *sc, char *err, size_t errlen)
{
    memset(sc, 0, sizeof(*sc));
    struct snap_reader r;
    if (!snap_open(f, "config", 0, &r))
        return qk_fail(err, errlen, "the snapshot has no machine configuration");
    sc->cfg = *base;
    sc->cfg.nr_devices = 0;
    sc->cfg.mem_size = snap_get_u64(&r);
    sc->cfg.nr_vcpus = snap_get_u32(&r);
    sc->cfg.virtio_console = snap_get_u32(&r) != 0;
    char accel[16], model[64], opts[8192];
    snap_get_str(&r, accel, sizeof(accel));
    if (accel_parse_kind(accel, &sc->cfg.accel) < 0 || sc->cfg.accel == ACCEL_AUTO) {
        snapshot_config_free(sc);
        return qk_fail(err, errlen, "the snapshot's accelerator '%s' is unknown", accel);
    }
    uint32_t n = snap_get_u32(&r);
    if (n > MACHINE_MAX_DEVICE_REQUESTS)
        r.failed = true;
    for (uint32_t i = 0; i < n && !r.failed; i++) {
        snap_get_str(&r, model, sizeof(model));
        snap_get_str(&r, opts, sizeof(opts));
        struct device_request *d = &sc->cfg.devices[i];
        if (strlen(model) >= sizeof(d->model) || !(d->opts = keep(sc, opts))) {
            r.failed = true;
            break;
        }
        memcpy(d->model, model, strlen(model) + 1); /* fits: checked above */
        d->flag = "snapshot";
        sc->cfg.nr_devices = i + 1;
    }
    if (!snap_done(&r)) {
        snapshot_config_free(sc);
        return qk_fail(err, errlen, "the snapshot's machine configuration is malformed");
    }
    sc->cfg.restore = f;
    return 0;
}

void snapshot_config_free(struct snapshot_config *sc)
{
    for (unsigned i = 0; i < sc->nr_strings; i++)
        free(sc->strings[i]);
    sc->nr_strings = 0;
}

/* The next item of an option string at *p: its key and whole text (",," stands for a comma
 * inside a value, as in util/opts.h). False at the end. */
static bool next_item(const char **p, const char **item, size_t *len, size_t *keylen)
{
    const char *s = *p;
    if (!*s)
        return false;
    const char *e = s;
    while (*e && !(*e == ',' && e[1] != ',')) /* a single comma ends the item */
        e += *e == ',' ? 2 : 1;
    const char *eq = memchr(s, '=', (size_t)(e - s));
    *item = s;
    *len = (size_t)(e - s);
    *keylen = eq ? (size_t)(eq - s) : *len;
    *p = *e ? e + 1 : e;
    return true;
}

static bool key_is(const char *item, size_t keylen, const char *key)
{
    return strlen(key) == keylen && !memcmp(item, key, keylen);
}

int snapshot_config_find(const struct snapshot_config *sc, const char *model, const char *id)
{
    for (unsigned i = 0; i < sc->cfg.nr_devices; i++) {
        const struct device_request *d = &sc->cfg.devices[i];
        if (strcmp(d->model, model) != 0)
            continue;
        if (!id)
            return (int)i;
        const char *p = d->opts ? d->opts : "", *item;
        size_t len, keylen;
        while (next_item(&p, &item, &len, &keylen))
            if (key_is(item, keylen, "id") && len - keylen - 1 == strlen(id) &&
                !memcmp(item + keylen + 1, id, strlen(id)))
                return (int)i;
    }
    return -1;
}

bool snapshot_config_has(const struct snapshot_config *sc, unsigned i, const char *key)
{
    const char *p = sc->cfg.devices[i].opts ? sc->cfg.devices[i].opts : "", *item;
    size_t len, keylen;
    while (next_item(&p, &item, &len, &keylen))
        if (key_is(item, keylen, key))
            return true;
    return false;
}

int snapshot_config_edit(struct snapshot_config *sc, unsigned i, const char *const *drop,
                         const char *add)
{
    struct device_request *d = &sc->cfg.devices[i];
    const char *old = d->opts ? d->opts : "", *p = old, *item;
    size_t cap = strlen(old) + strlen(add) + 2, used = 0, len, keylen;
    if (cap > 8192)
        return -1; /* what snapshot_config_read would take back */
    char *out = malloc(cap);
    if (!out)
        return -1;
    while (next_item(&p, &item, &len, &keylen)) {
        bool dropped = false;
        for (unsigned k = 0; drop[k]; k++)
            dropped = dropped || key_is(item, keylen, drop[k]);
        if (dropped)
            continue;
        used += (size_t)snprintf(out + used, cap - used, "%s%.*s", used ? "," : "", (int)len, item);
    }
    snprintf(out + used, cap - used, "%s%s", used && *add ? "," : "", add);
    /* the old text is one of sc->strings: the new one takes its slot */
    for (unsigned k = 0; k < sc->nr_strings; k++)
        if (sc->strings[k] == d->opts) {
            free(sc->strings[k]);
            sc->strings[k] = out;
            d->opts = out;
            return 0;
        }
    free(out);
    return -1;
}

static int restore_devices(struct machine *m, const struct snap_file *f, char *err, size_t errlen)
{
    struct snap_reader r;
    char why[200];
    if (!snap_open(f, "pci", 0, &r) || pci_bus_load(m->pci, &r, why, sizeof(why)) < 0)
        return qk_fail(err, errlen, "snapshot: PCI state missing or malformed");
    for (size_t i = 0; i < m->devices.nr; i++) {
        const struct device_instance *d = &m->devices.list[i];
        if (!d->created || d->model->stateless)
            continue;
        if (!d->model->load)
            return qk_fail(err, errlen, "device %s cannot be restored yet", d->model->name);
        if (!snap_open(f, d->model->name, d->instance, &r))
            return qk_fail(err, errlen, "the snapshot has no state for device %s %u",
                           d->model->name, d->instance);
        if (d->model->load(d->state, &r, why, sizeof(why)) < 0)
            return qk_fail(err, errlen, "snapshot: %s", why);
    }
    return 0;
}

/* Called by machine_create, before any vCPU thread runs. The clock is frozen at the saved
 * time first, so devices re-arm their timers against it; machine_start(paused) keeps it so. */
int machine_restore_state(struct machine *m, char *err, size_t errlen)
{
    const struct snap_file *f = m->cfg->restore;
    struct snap_reader r;
    char why[200];
    if (!m->accel->load_vcpu)
        return qk_fail(err, errlen, "the %s accelerator cannot restore vCPUs yet", m->accel->name);
    if (!snap_open(f, "clock", 0, &r))
        return qk_fail(err, errlen, "the snapshot has no guest clock");
    uint64_t now = snap_get_u64(&r);
    if (!snap_done(&r) || now == 0)
        return qk_fail(err, errlen, "the snapshot's guest clock is malformed");
    guest_clock_freeze(&m->clock);
    guest_clock_set(&m->clock, now);
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (!snap_open(f, "vcpu", i, &r))
            return qk_fail(err, errlen, "the snapshot has no state for vCPU %u", i);
        if (m->accel->load_vcpu(m->vcpus[i].accel, &r, why, sizeof(why)) < 0)
            return qk_fail(err, errlen, "snapshot: %s", why);
    }
    return restore_devices(m, f, err, errlen);
}

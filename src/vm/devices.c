#include "vm/devices.h"

#include "util/log.h"

#include <stdlib.h>
#include <string.h>

static unsigned count_instances(const struct device_manager *dm, const struct device_model *m)
{
    unsigned n = 0;
    for (size_t i = 0; i < dm->nr; i++)
        n += dm->list[i].model == m;
    return n;
}

static int add(struct device_manager *dm, const struct device_model *model, const char *text,
               const char *flag, char *err, size_t errlen)
{
    struct device_instance *d = &dm->list[dm->nr];
    memset(d, 0, sizeof(*d));
    if (opts_parse_repeatable(&d->opts, text, flag, model->option_keys, model->implied_key,
                              model->repeatable_keys, err, errlen) < 0)
        return -1;
    d->model = model;
    d->flag = flag;
    d->instance = count_instances(dm, model);
    dm->nr++;
    return 0;
}

int devices_prepare(struct device_manager *dm, const struct device_request *reqs, unsigned nr,
                    char *err, size_t errlen)
{
    size_t nr_models = (size_t)(__stop_quokka_devices - __start_quokka_devices);
    dm->list = calloc(nr_models + nr + 1, sizeof(*dm->list));
    if (!dm->list)
        return qk_fail(err, errlen, "out of memory");
    for (size_t i = 0; i < nr_models; i++) {
        const struct device_model *m = __start_quokka_devices[i];
        if (m->default_instance && add(dm, m, "", m->name, err, errlen) < 0)
            return -1;
    }
    for (unsigned i = 0; i < nr; i++) {
        const struct device_model *m = device_model_find(reqs[i].model);
        if (!m)
            return qk_fail(err, errlen, "%s: unknown device '%s'", reqs[i].flag, reqs[i].model);
        if (add(dm, m, reqs[i].opts, reqs[i].flag, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int devices_create_level(struct device_manager *dm, const struct device_host *host,
                         enum device_level level, char *err, size_t errlen)
{
    for (size_t i = 0; i < dm->nr; i++) {
        struct device_instance *d = &dm->list[i];
        if (d->model->level != level || d->created)
            continue;
        bool gets_console =
            dm->console_model && d->instance == 0 && !strcmp(d->model->name, dm->console_model);
        struct device_args args = {
            .instance = d->instance,
            .opts = &d->opts,
            .console = gets_console ? dm->console : NULL,
        };
        char why[400] = "";
        if (d->model->create(host, &args, &d->state, why, sizeof(why)) < 0)
            return qk_fail(err, errlen, "%s: %s", d->flag, why);
        d->created = true;
    }
    return 0;
}

void devices_describe_acpi(struct device_manager *dm, struct aml_buf *aml)
{
    for (size_t i = 0; i < dm->nr; i++)
        if (dm->list[i].created && dm->list[i].model->describe_acpi)
            dm->list[i].model->describe_acpi(dm->list[i].state, aml);
}

void devices_destroy(struct device_manager *dm)
{
    /* Reverse creation order: PCI devices first, interrupt controllers last. */
    for (int level = DEVICE_LEVEL_PCI; level >= DEVICE_LEVEL_IRQCHIP; level--)
        for (size_t i = dm->nr; i-- > 0;) {
            struct device_instance *d = &dm->list[i];
            if ((int)d->model->level != level)
                continue;
            if (d->created && d->model->destroy)
                d->model->destroy(d->state);
            d->created = false;
        }
    for (size_t i = 0; i < dm->nr; i++)
        opts_free(&dm->list[i].opts);
    free(dm->list);
    dm->list = NULL;
    dm->nr = 0;
}

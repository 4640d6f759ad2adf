#include "hw/device.h"

#include <string.h>

const struct device_model *device_model_find(const char *name)
{
    for (const struct device_model *const *m = __start_quokka_devices; m < __stop_quokka_devices;
         m++)
        if (*m && strcmp((*m)->name, name) == 0)
            return *m;
    return NULL;
}

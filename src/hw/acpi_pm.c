/* ACPI fixed hardware: PM1a event and control blocks, the PM timer and the FADT reset register.
 *
 * The FADT has SMI_CMD = 0, so the machine is always in ACPI mode and SCI_EN reads as 1. The
 * guest powers off by writing SLP_TYP = S5 with SLP_EN, and resets through the reset register.
 * No event ever sets a PM1 status bit (no power button, timer overflow status is not
 * modelled), so the SCI is never raised.
 *
 * The registers sit next to each other, so one bus range covers them all; accesses are handled
 * byte by byte at their offset, which gives byte, word and dword access within (and across)
 * registers for free. The PM timer is sampled once per access so a dword read is consistent.
 *
 * Locking: one mutex; request_stop is called only after it is released. */
#include "hw/device.h"
#include "util/log.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define PM_BASE PORT_ACPI_PM1A_EVT
#define PM_LEN (PORT_ACPI_RESET + 1 - PM_BASE)
#define OFF_STS (PORT_ACPI_PM1A_EVT - PM_BASE) /* 2 bytes */
#define OFF_EN (OFF_STS + 2)                   /* 2 bytes */
#define OFF_CNT (PORT_ACPI_PM1A_CNT - PM_BASE) /* 2 bytes */
#define OFF_TMR (PORT_ACPI_PM_TMR - PM_BASE)   /* 4 bytes */
#define OFF_RESET (PORT_ACPI_RESET - PM_BASE)  /* 1 byte */

_Static_assert(OFF_EN + 2 <= OFF_CNT && OFF_CNT + 2 <= OFF_TMR && OFF_TMR + 4 <= OFF_RESET,
               "ACPI PM registers must not overlap");

#define CNT_SCI_EN 0x0001
#define CNT_SLP_TYP_SHIFT 10
#define CNT_SLP_TYP_MASK 0x7
#define CNT_SLP_EN 0x2000   /* write-only: triggers the sleep transition */
#define CNT_WRITABLE 0x1c07 /* SCI_EN, BM_RLD, GBL_RLS, SLP_TYP */

#define PM_TIMER_HZ 3579545ULL
#define PM_TIMER_MASK 0xffffffULL /* 24-bit counter (FADT TMR_VAL_EXT = 0) */

#define RESET_VALUE 0x0e     /* what our FADT's RESET_VALUE says */
#define RESET_VALUE_ALT 0x06 /* the other common "hard reset" value of port 0xcf9 style resets */

struct acpi_pm {
    pthread_mutex_t lock;
    struct device_host host;
    uint16_t status;
    uint16_t enable;
    uint16_t control;
    struct timespec timer_base;
};

enum pm_action { PM_NONE, PM_POWEROFF, PM_REBOOT };

static uint32_t read_timer(const struct acpi_pm *pm)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t sec = (int64_t)(now.tv_sec - pm->timer_base.tv_sec);
    int64_t nsec = now.tv_nsec - pm->timer_base.tv_nsec;
    if (nsec < 0) {
        nsec += 1000000000;
        sec--;
    }
    /* Split so neither product overflows however long the guest runs. */
    uint64_t ticks = (uint64_t)sec * PM_TIMER_HZ + (uint64_t)nsec * PM_TIMER_HZ / 1000000000ULL;
    return (uint32_t)(ticks & PM_TIMER_MASK);
}

static uint8_t read_byte(const struct acpi_pm *pm, unsigned off, uint32_t timer)
{
    if (off - OFF_STS < 2)
        return (uint8_t)(pm->status >> (8 * (off - OFF_STS)));
    if (off - OFF_EN < 2)
        return (uint8_t)(pm->enable >> (8 * (off - OFF_EN)));
    if (off - OFF_CNT < 2)
        return (uint8_t)((pm->control | CNT_SCI_EN) >> (8 * (off - OFF_CNT)));
    if (off - OFF_TMR < 4)
        return (uint8_t)(timer >> (8 * (off - OFF_TMR)));
    if (off == OFF_RESET)
        return 0;
    return 0xff; /* gaps between registers */
}

static enum pm_action write_byte(struct acpi_pm *pm, unsigned off, uint8_t value)
{
    if (off - OFF_STS < 2) {
        pm->status &= (uint16_t) ~((unsigned)value << (8 * (off - OFF_STS))); /* write 1 to clear */
    } else if (off - OFF_EN < 2) {
        unsigned shift = 8 * (off - OFF_EN);
        pm->enable = (uint16_t)((pm->enable & ~(0xffu << shift)) | ((unsigned)value << shift));
    } else if (off - OFF_CNT < 2) {
        unsigned shift = 8 * (off - OFF_CNT);
        uint16_t written = (uint16_t)((unsigned)value << shift);
        uint16_t mask = (uint16_t)(0xffu << shift);
        pm->control = (uint16_t)((pm->control & ~mask) | (written & mask & CNT_WRITABLE));
        if (written & CNT_SLP_EN) {
            unsigned slp_typ = (pm->control >> CNT_SLP_TYP_SHIFT) & CNT_SLP_TYP_MASK;
            if (slp_typ == ACPI_SLP_TYP_S5)
                return PM_POWEROFF;
            /* S1-S4 are not supported (the DSDT only offers S5): ignore. */
        }
    } else if (off == OFF_RESET) {
        if (value == RESET_VALUE || value == RESET_VALUE_ALT)
            return PM_REBOOT;
    }
    /* The PM timer is read-only; gaps ignore writes. */
    return PM_NONE;
}

static uint64_t pm_read(void *opaque, uint64_t offset, unsigned size)
{
    struct acpi_pm *pm = opaque;
    uint64_t value = 0;
    uint32_t timer = read_timer(pm);
    pthread_mutex_lock(&pm->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t off = offset + i;
        uint8_t byte = off < PM_LEN ? read_byte(pm, (unsigned)off, timer) : 0xff;
        value |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&pm->lock);
    return value;
}

static void pm_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct acpi_pm *pm = opaque;
    enum pm_action action = PM_NONE;
    pthread_mutex_lock(&pm->lock);
    for (unsigned i = 0; i < size && i < 8 && action == PM_NONE; i++) {
        uint64_t off = offset + i;
        if (off < PM_LEN)
            action = write_byte(pm, (unsigned)off, (uint8_t)(value >> (8 * i)));
    }
    pthread_mutex_unlock(&pm->lock);
    if (action == PM_NONE || !pm->host.request_stop)
        return;
    if (action == PM_POWEROFF)
        pm->host.request_stop(pm->host.stop_ctx, VM_STOP_POWEROFF, 0);
    else
        pm->host.request_stop(pm->host.stop_ctx, VM_STOP_REBOOT, 0);
}

static const struct bus_device_ops pm_ops = {.read = pm_read, .write = pm_write};

static int pm_create(const struct device_host *host, const struct device_args *args, void **state,
                     char *err, size_t errlen)
{
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return qk_fail(err, errlen, "out of memory");
    pm->host = *host;
    pm->control = CNT_SCI_EN;
    clock_gettime(CLOCK_MONOTONIC, &pm->timer_base);
    if (pthread_mutex_init(&pm->lock, NULL) != 0) {
        free(pm);
        return qk_fail(err, errlen, "cannot create the ACPI PM lock");
    }
    if (bus_register(host->pio, PM_BASE, PM_LEN, &pm_ops, pm, "acpi-pm", err, errlen) < 0) {
        pthread_mutex_destroy(&pm->lock);
        free(pm);
        return -1;
    }
    *state = pm;
    return 0;
}

static void pm_destroy(void *state)
{
    struct acpi_pm *pm = state;
    if (!pm)
        return;
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

DEVICE_MODEL(acpi_pm_model) = {
    .name = "acpi_pm",
    .level = DEVICE_LEVEL_PLATFORM,
    .default_instance = true,
    .create = pm_create,
    .destroy = pm_destroy,
};

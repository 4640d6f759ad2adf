/* MC146818 CMOS RTC and its 128 bytes of CMOS memory (index port 0x70, data port 0x71).
 *
 * The clock is computed on each read: the host wall clock sampled at creation plus
 * CLOCK_MONOTONIC time elapsed since, plus an offset the guest creates by setting the time.
 * Register C's update-ended, periodic and alarm flags are likewise derived from elapsed time,
 * when it is read and, while register B enables any of their interrupts, from a device timer
 * at each second boundary (and periodic boundary, at most every RTC_MIN_TICK_NS): a flag that
 * is enabled sets IRQF and pulses IRQ_RTC once until register C is read. The alarm matches
 * seconds, minutes and hours ("don't care" values 0xC0-0xFF match any).
 *
 * Locking: one mutex; timer_arm is called with it held (as in i8254.c), set_irq after it is
 * released. */
#include "hw/device.h"
#include "vm/snapshot.h"
#include "util/log.h"
#include "vm/platform.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMOS_SIZE 128
#define NS_PER_SEC 1000000000LL

enum {
    REG_SECONDS = 0x00,
    REG_SECONDS_ALARM = 0x01,
    REG_MINUTES = 0x02,
    REG_MINUTES_ALARM = 0x03,
    REG_HOURS = 0x04,
    REG_HOURS_ALARM = 0x05,
    REG_DAY_OF_WEEK = 0x06,
    REG_DAY_OF_MONTH = 0x07,
    REG_MONTH = 0x08,
    REG_YEAR = 0x09,
    REG_A = 0x0a,
    REG_B = 0x0b,
    REG_C = 0x0c,
    REG_D = 0x0d,
    REG_BASE_MEM_LO = 0x15,
    REG_BASE_MEM_HI = 0x16,
    REG_EXT_MEM_LO = 0x17,
    REG_EXT_MEM_HI = 0x18,
    REG_EXT_MEM2_LO = 0x30,
    REG_EXT_MEM2_HI = 0x31,
    REG_CENTURY = 0x32,
    REG_MEM_ABOVE_16M_LO = 0x34,
    REG_MEM_ABOVE_16M_HI = 0x35,
    REG_MEM_ABOVE_4G = 0x5b, /* 3 bytes, 64 KiB units (QEMU/SeaBIOS convention) */
};

#define A_UIP 0x80
#define A_RATE_MASK 0x0f
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define RTC_MIN_TICK_NS 500000LL /* periodic interrupts: at most 2 kHz of timer callbacks */
#define D_VRT 0x80               /* battery good */

#define INDEX_NMI_DISABLE 0x80

/* Broken-down UTC time as the RTC counts it (binary, 24-hour, full year). */
struct rtc_fields {
    int sec, min, hour, mday, mon, year;
};

struct cmos {
    pthread_mutex_t lock;
    struct device_host host;
    struct device_timer *timer; /* NULL without device timers (unit tests); not saved */
    uint8_t index;              /* < CMOS_SIZE; from here on: the saved state */
    uint8_t ram[CMOS_SIZE];

    int64_t base_wall_ns; /* host wall clock at creation */
    uint64_t base_mono;   /* guest clock (host.clock_ns) at creation */
    int64_t guest_offset; /* guest time - host time, seconds, set by the guest */
    bool frozen;          /* register B SET: the clock stands still while it is set */
    struct rtc_fields frozen_time;
    int64_t flags_seen_ns; /* host time flags were last collected */
    uint8_t pending_c;     /* flags collected since the last register C read */
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static struct rtc_fields fields_from_seconds(int64_t t)
{
    int64_t days = floor_div(t, 86400);
    int64_t secs = t - days * 86400;
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    return (struct rtc_fields){
        .sec = (int)(secs % 60),
        .min = (int)(secs / 60 % 60),
        .hour = (int)(secs / 3600),
        .mday = (int)(doy - (153 * mp + 2) / 5 + 1),
        .mon = m,
        .year = (int)(yoe + era * 400 + (m <= 2)),
    };
}

static int64_t seconds_from_fields(const struct rtc_fields *f)
{
    return days_from_civil(f->year, f->mon, f->mday) * 86400 + f->hour * 3600 + f->min * 60 +
           f->sec;
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The guest clock (stands still while the VM is paused); CLOCK_MONOTONIC without one. */
static uint64_t cmos_clock(const struct cmos *c)
{
    if (c->host.clock_ns)
        return c->host.clock_ns(c->host.timer_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static int64_t host_now_ns(const struct cmos *c)
{
    return c->base_wall_ns + (int64_t)(cmos_clock(c) - c->base_mono);
}

static struct rtc_fields guest_now(const struct cmos *c)
{
    if (c->frozen)
        return c->frozen_time;
    return fields_from_seconds(floor_div(host_now_ns(c), NS_PER_SEC) + c->guest_offset);
}

/* Make the running clock show f from now on. */
static void set_guest_time(struct cmos *c, const struct rtc_fields *f)
{
    c->guest_offset = seconds_from_fields(f) - floor_div(host_now_ns(c), NS_PER_SEC);
}

static bool binary_mode(const struct cmos *c)
{
    return c->ram[REG_B] & B_BINARY;
}

static uint8_t encode(const struct cmos *c, int v)
{
    v = clamp(v, 0, 99);
    return binary_mode(c) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

/* Garbage BCD digits decode to out-of-range values; callers clamp. */
static int decode(const struct cmos *c, uint8_t v)
{
    return binary_mode(c) ? v : (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t encode_hour(const struct cmos *c, int hour)
{
    if (c->ram[REG_B] & B_24H)
        return encode(c, hour);
    int h12 = hour % 12 ? hour % 12 : 12;
    return (uint8_t)(encode(c, h12) | (hour >= 12 ? 0x80 : 0));
}

static int decode_hour(const struct cmos *c, uint8_t v)
{
    if (c->ram[REG_B] & B_24H)
        return clamp(decode(c, v), 0, 23);
    int h = clamp(decode(c, v & 0x7f), 1, 12) % 12;
    return (v & 0x80) ? h + 12 : h;
}

/* 1 = Sunday ... 7 = Saturday; 1970-01-01 was a Thursday. */
static int day_of_week(const struct rtc_fields *f)
{
    int64_t days = days_from_civil(f->year, f->mon, f->mday);
    return (int)(days + 4 - floor_div(days + 4, 7) * 7) + 1;
}

static bool is_time_register(uint8_t reg)
{
    return reg == REG_SECONDS || reg == REG_MINUTES || reg == REG_HOURS || reg == REG_DAY_OF_WEEK ||
           reg == REG_DAY_OF_MONTH || reg == REG_MONTH || reg == REG_YEAR || reg == REG_CENTURY;
}

static uint8_t read_time_register(const struct cmos *c, uint8_t reg)
{
    struct rtc_fields f = guest_now(c);
    switch (reg) {
    case REG_SECONDS:
        return encode(c, f.sec);
    case REG_MINUTES:
        return encode(c, f.min);
    case REG_HOURS:
        return encode_hour(c, f.hour);
    case REG_DAY_OF_WEEK:
        return encode(c, day_of_week(&f));
    case REG_DAY_OF_MONTH:
        return encode(c, f.mday);
    case REG_MONTH:
        return encode(c, f.mon);
    case REG_YEAR:
        return encode(c, f.year % 100);
    default: /* REG_CENTURY */
        return encode(c, f.year / 100);
    }
}

static void write_time_register(struct cmos *c, uint8_t reg, uint8_t value)
{
    struct rtc_fields f = guest_now(c);
    int v = decode(c, value);
    switch (reg) {
    case REG_SECONDS:
        f.sec = clamp(v, 0, 59);
        break;
    case REG_MINUTES:
        f.min = clamp(v, 0, 59);
        break;
    case REG_HOURS:
        f.hour = decode_hour(c, value);
        break;
    case REG_DAY_OF_MONTH:
        f.mday = clamp(v, 1, 31);
        break;
    case REG_MONTH:
        f.mon = clamp(v, 1, 12);
        break;
    case REG_YEAR:
        f.year = f.year / 100 * 100 + clamp(v, 0, 99);
        break;
    case REG_CENTURY:
        f.year = clamp(v, 19, 99) * 100 + f.year % 100;
        break;
    default: /* day of week is derived from the date */
        return;
    }
    if (c->frozen)
        c->frozen_time = f;
    else
        set_guest_time(c, &f);
}

static int64_t periodic_interval_ns(const struct cmos *c)
{
    unsigned rate = c->ram[REG_A] & A_RATE_MASK;
    if (rate == 0)
        return 0;
    if (rate < 3)
        rate += 7; /* rates 1 and 2 repeat rates 8 and 9 */
    return (NS_PER_SEC << (rate - 1)) / 32768;
}

/* An alarm register matches `v` (0xC0-0xFF: any value). */
static bool alarm_matches(const struct cmos *c, uint8_t alarm, int v, bool hours)
{
    if ((alarm & 0xc0) == 0xc0)
        return true;
    return (hours ? decode_hour(c, alarm) : decode(c, alarm)) == v;
}

/* Collect the flags of events since the last collection into pending_c. Returns true when
 * IRQF became set (the caller pulses IRQ_RTC once the lock is released). */
static bool collect_flags(struct cmos *c)
{
    int64_t now = host_now_ns(c);
    uint8_t flags = 0;
    if (!c->frozen && floor_div(now, NS_PER_SEC) != floor_div(c->flags_seen_ns, NS_PER_SEC)) {
        flags |= C_UF;
        struct rtc_fields f = guest_now(c);
        if (alarm_matches(c, c->ram[REG_SECONDS_ALARM], f.sec, false) &&
            alarm_matches(c, c->ram[REG_MINUTES_ALARM], f.min, false) &&
            alarm_matches(c, c->ram[REG_HOURS_ALARM], f.hour, true))
            flags |= C_AF;
    }
    int64_t period = periodic_interval_ns(c);
    if (period && floor_div(now, period) != floor_div(c->flags_seen_ns, period))
        flags |= C_PF;
    c->flags_seen_ns = now;
    uint8_t was = c->pending_c;
    c->pending_c |= flags;
    if (c->pending_c & c->ram[REG_B] & (B_PIE | B_AIE | B_UIE))
        c->pending_c |= C_IRQF;
    return (c->pending_c & ~was & C_IRQF) != 0;
}

/* Arm the timer for the next event an enabled interrupt needs, or disarm it. */
static void rearm(struct cmos *c)
{
    if (!c->timer)
        return;
    uint64_t deadline = 0;
    uint8_t enabled = c->ram[REG_B] & (B_PIE | B_AIE | B_UIE);
    if (enabled) {
        int64_t now = host_now_ns(c);
        int64_t wait = NS_PER_SEC - (now - floor_div(now, NS_PER_SEC) * NS_PER_SEC);
        int64_t period = periodic_interval_ns(c);
        if ((enabled & B_PIE) && period) {
            int64_t p = period - (now - floor_div(now, period) * period);
            if (p < wait)
                wait = p;
        }
        if (wait < RTC_MIN_TICK_NS)
            wait = RTC_MIN_TICK_NS;
        deadline = c->host.clock_ns(c->host.timer_ctx) + (uint64_t)wait + 1000; /* past it */
    }
    c->host.timer_arm(c->host.timer_ctx, c->timer, deadline);
}

static void pulse_irq(struct cmos *c)
{
    if (c->host.set_irq) {
        c->host.set_irq(c->host.irq_ctx, IRQ_RTC, 1);
        c->host.set_irq(c->host.irq_ctx, IRQ_RTC, 0);
    }
}

static void rtc_tick(void *opaque)
{
    struct cmos *c = opaque;
    pthread_mutex_lock(&c->lock);
    bool irq = collect_flags(c);
    rearm(c);
    pthread_mutex_unlock(&c->lock);
    if (irq)
        pulse_irq(c);
}

/* Register C: the flags of events since its last read, cleared by this read. */
static uint8_t read_register_c(struct cmos *c)
{
    collect_flags(c);
    uint8_t flags = c->pending_c;
    c->pending_c = 0;
    return flags;
}

static void write_register_b(struct cmos *c, uint8_t value)
{
    bool was_set = c->ram[REG_B] & B_SET;
    bool set = value & B_SET;
    if (set)
        value &= (uint8_t)~B_UIE; /* SET clears UIE, per the datasheet */
    if (set && !was_set) {
        c->frozen_time = guest_now(c);
        c->frozen = true;
    } else if (!set && was_set) {
        c->frozen = false;
        set_guest_time(c, &c->frozen_time);
    }
    c->ram[REG_B] = value;
    rearm(c);
}

static uint8_t read_data(struct cmos *c)
{
    uint8_t reg = c->index;
    if (is_time_register(reg))
        return read_time_register(c, reg);
    switch (reg) {
    case REG_A: /* no update is ever in progress: time is computed atomically on read */
        return c->ram[REG_A] & (uint8_t)~A_UIP;
    case REG_C:
        return read_register_c(c);
    case REG_D:
        return D_VRT;
    default:
        return c->ram[reg];
    }
}

static void write_data(struct cmos *c, uint8_t value)
{
    uint8_t reg = c->index;
    if (is_time_register(reg)) {
        write_time_register(c, reg, value);
        return;
    }
    switch (reg) {
    case REG_A:
        c->ram[REG_A] = value & (uint8_t)~A_UIP;
        rearm(c); /* the periodic rate */
        break;
    case REG_B:
        write_register_b(c, value);
        break;
    case REG_C:
    case REG_D: /* read-only */
        break;
    default:
        c->ram[reg] = value;
        break;
    }
}

/* Port 0 is the index (bit 7 is the NMI mask, not part of it), port 1 the data. Wider accesses
 * are split into byte cycles on consecutive ports, as on the ISA bus. */
static uint64_t cmos_read(void *opaque, uint64_t offset, unsigned size)
{
    struct cmos *c = opaque;
    uint64_t value = 0;
    pthread_mutex_lock(&c->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t port = offset + i;
        uint8_t byte = port == 1 ? read_data(c) : 0xff; /* the index port is write-only */
        value |= (uint64_t)byte << (8 * i);
    }
    pthread_mutex_unlock(&c->lock);
    return value;
}

static void cmos_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    struct cmos *c = opaque;
    pthread_mutex_lock(&c->lock);
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t port = offset + i;
        uint8_t byte = (uint8_t)(value >> (8 * i));
        if (port == 0)
            c->index = byte & (uint8_t)~INDEX_NMI_DISABLE;
        else if (port == 1)
            write_data(c, byte);
    }
    pthread_mutex_unlock(&c->lock);
}

static const struct bus_device_ops cmos_ops = {.read = cmos_read, .write = cmos_write};

static void put_le(uint8_t *dst, uint64_t value, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        dst[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Memory sizes the BIOS would have stored, for guests that look here. */
static void fill_memory_sizes(struct cmos *c, uint64_t below_4g, uint64_t above_4g)
{
    put_le(&c->ram[REG_BASE_MEM_LO], 640, 2);
    uint64_t ext_kb = below_4g > (1ULL << 20) ? (below_4g - (1ULL << 20)) >> 10 : 0;
    put_le(&c->ram[REG_EXT_MEM_LO], min_u64(ext_kb, 0xffff), 2);
    put_le(&c->ram[REG_EXT_MEM2_LO], min_u64(ext_kb, 0xffff), 2);
    uint64_t above_16m = below_4g > (16ULL << 20) ? (below_4g - (16ULL << 20)) >> 16 : 0;
    put_le(&c->ram[REG_MEM_ABOVE_16M_LO], min_u64(above_16m, 0xffff), 2);
    put_le(&c->ram[REG_MEM_ABOVE_4G], min_u64(above_4g >> 16, 0xffffff), 3);
}

static int cmos_create(const struct device_host *host, const struct device_args *args, void **state,
                       char *err, size_t errlen)
{
    struct cmos *c = calloc(1, sizeof(*c));
    if (!c)
        return qk_fail(err, errlen, "out of memory");
    c->host = *host;
    time_t wall = host->wall_clock ? host->wall_clock() : time(NULL);
    c->base_wall_ns = (int64_t)wall * NS_PER_SEC;
    c->base_mono = cmos_clock(c);
    c->flags_seen_ns = c->base_wall_ns;
    c->ram[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz periodic rate */
    c->ram[REG_B] = B_24H;
    fill_memory_sizes(c, host->ram_below_4g, host->ram_above_4g);
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return qk_fail(err, errlen, "cannot create the CMOS lock");
    }
    if (host->clock_ns && host->timer_new && host->timer_arm)
        c->timer = host->timer_new(host->timer_ctx, rtc_tick, c);
    if (bus_register(host->pio, PORT_CMOS_BASE, 2, &cmos_ops, c, "cmos", err, errlen) < 0) {
        if (c->timer)
            host->timer_arm(host->timer_ctx, c->timer, 0);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static void cmos_destroy(void *state)
{
    struct cmos *c = state;
    if (!c)
        return;
    /* The I/O thread has stopped by now; disarm so the timer list never calls freed state. */
    if (c->timer)
        c->host.timer_arm(c->host.timer_ctx, c->timer, 0);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Registers, RAM and the clock's bases (guest-clock ns, which a restore continues). */
#define CMOS_STATE_OFFSET offsetof(struct cmos, index)
#define CMOS_STATE_SIZE (sizeof(struct cmos) - CMOS_STATE_OFFSET)

static void cmos_save(void *state, struct snap_writer *w)
{
    struct cmos *c = state;
    pthread_mutex_lock(&c->lock);
    snap_put(w, (uint8_t *)c + CMOS_STATE_OFFSET, CMOS_STATE_SIZE);
    pthread_mutex_unlock(&c->lock);
}

static int cmos_load(void *state, struct snap_reader *r, char *err, size_t errlen)
{
    struct cmos *c = state, saved;
    snap_get(r, (uint8_t *)&saved + CMOS_STATE_OFFSET, CMOS_STATE_SIZE);
    if (!snap_done(r) || saved.index >= CMOS_SIZE)
        return qk_fail(err, errlen, "cmos_rtc state is malformed");
    pthread_mutex_lock(&c->lock);
    memcpy((uint8_t *)c + CMOS_STATE_OFFSET, (uint8_t *)&saved + CMOS_STATE_OFFSET,
           CMOS_STATE_SIZE);
    rearm(c); /* the restored registers may enable alarm, update or periodic interrupts */
    pthread_mutex_unlock(&c->lock);
    return 0;
}

DEVICE_MODEL(cmos_rtc_model) = {
    .name = "cmos_rtc",
    .level = DEVICE_LEVEL_PLATFORM,
    .default_instance = true,
    .create = cmos_create,
    .destroy = cmos_destroy,
    .save = cmos_save,
    .load = cmos_load,
};

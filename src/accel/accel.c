#include "accel/accel.h"

#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int accel_parse_kind(const char *text, enum accel_kind *out)
{
    static const struct {
        const char *name;
        enum accel_kind kind;
    } names[] = {{"auto", ACCEL_AUTO}, {"kvm", ACCEL_KVM}, {"tcg", ACCEL_TCG}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(text, names[i].name) == 0) {
            *out = names[i].kind;
            return 0;
        }
    }
    return -1;
}

int accel_parse_tcg_backend(const char *text, enum tcg_backend_choice *out)
{
    if (!strcmp(text, "native"))
        *out = TCG_BACKEND_NATIVE;
    else if (!strcmp(text, "interp"))
        *out = TCG_BACKEND_INTERP;
    else
        return -1;
    return 0;
}

void accel_settings_from_env(struct accel_settings *s)
{
    const char *choice = getenv("QUOKKA_TCG_BACKEND");
    if (choice && accel_parse_tcg_backend(choice, &s->tcg_backend) < 0) {
        qk_warn("QUOKKA_TCG_BACKEND=%s is neither 'native' nor 'interp': using native", choice);
        s->tcg_backend = TCG_BACKEND_NATIVE;
    }
    if (getenv("QUOKKA_TCG_STATS"))
        s->tcg_stats = true;
    if (getenv("QUOKKA_STATS") || getenv("QUOKKA_TCG_STATS"))
        s->tcg_count_insns = true;
    if (getenv("QUOKKA_TCG_PERF_MAP"))
        s->tcg_perf_map = true;
    /* QUOKKA_TCG_CODE_KB shrinks the code buffer (tests: fills, flushes and restarts). */
    const char *kb = getenv("QUOKKA_TCG_CODE_KB");
    if (kb) {
        char *end;
        unsigned long v = strtoul(kb, &end, 10);
        if (*kb && !*end && v >= TCG_CODE_KB_MIN && v <= TCG_CODE_KB_MAX)
            s->tcg_code_kb = (unsigned)v;
        else
            qk_warn("QUOKKA_TCG_CODE_KB=%s is not a number of KiB from %u to %u: using %u", kb,
                    TCG_CODE_KB_MIN, TCG_CODE_KB_MAX, TCG_CODE_KB_MAX);
    }
}

/* The translator runs anywhere; it is kept behind a function so a build without it can
 * still say why it is missing. */
static const struct accel_ops *translator_ops(char *why, size_t len)
{
    if (tcg_accel_ops.probe(why, len) == 0)
        return &tcg_accel_ops;
    return NULL;
}

const struct accel_ops *accel_select(enum accel_kind kind, char *why, size_t len)
{
    char kvm_why[256] = "";
    switch (kind) {
    case ACCEL_KVM:
        if (kvm_accel_ops.probe(kvm_why, sizeof(kvm_why)) == 0)
            return &kvm_accel_ops;
        qk_fail(why, len, "--accel kvm: KVM is not usable: %s", kvm_why);
        return NULL;
    case ACCEL_TCG:
        return translator_ops(why, len);
    case ACCEL_AUTO:
        if (kvm_accel_ops.probe(kvm_why, sizeof(kvm_why)) == 0 &&
            kvm_accel_ops.probe_guest_os(kvm_why, sizeof(kvm_why)) == 0)
            return &kvm_accel_ops;
        {
            char tcg_why[160] = "";
            const struct accel_ops *tcg = translator_ops(tcg_why, sizeof(tcg_why));
            if (tcg) {
                /* Tell a person at a terminal why it is slower than they may expect; scripts
                 * reading stderr see nothing. */
                if (isatty(STDERR_FILENO))
                    qk_warn("using the translator: %s", kvm_why);
                return tcg;
            }
            qk_fail(why, len, "no accelerator: KVM is missing or unusable (%s) and %s", kvm_why,
                    tcg_why);
        }
        return NULL;
    }
    return NULL;
}

"""SMP on the translator: the stock Debian kernel with several vCPUs, each on its own host
thread. Checked from inside the guest: the CPU count Linux sees, exact totals of threads
hammering shared counters with locked instructions (smp-stress), x86 memory-model litmus
tests whose forbidden outcomes must never appear (litmus), and a minute of parallel load
without soft lockups or RCU stalls. KVM runs the same boot where it can run Linux
(test_linux_kvm.py decides that); payload-level SMP (AP start-up, IPIs) is in test_smp.py, more locked-instruction stress in test_smp_stress.py."""
import base64
import os
import re

import pytest

from conftest import BUILD, describe, run_quokka

GUEST = os.path.join(BUILD, "guest")
BOOT_TIMEOUT = 420


def boot_script(cpus, script, tcg_backend=None, timeout=BOOT_TIMEOUT):
    encoded = base64.b64encode(script.encode()).decode()
    res = run_quokka(["--accel", "tcg", "--cpus", str(cpus), "--mem", "512M", "--append",
                      f"console=ttyS0 quiet quokka.nonet quokka.run64={encoded}"],
                     timeout=timeout, tcg_backend=tcg_backend)
    assert "quokka-guest: run exit=" in res.stdout, describe(res)
    return res


@pytest.fixture(scope="module", autouse=True)
def guest_built():
    for name in ("bzImage", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"build/guest/{name} is missing: run 'make guest'")


@pytest.mark.parametrize("cpus", [2, 4])
def test_cpus_online_counters_exact_litmus_clean(cpus):
    """nproc and /proc/cpuinfo agree with --cpus; smp-stress's totals are exact, several
    times in a row; no forbidden litmus outcome."""
    script = "\n".join([
        "echo NPROC $(nproc)",
        "echo CPUINFO $(grep -c ^processor /proc/cpuinfo)",
        "for i in 1 2 3; do smp-stress || exit 7; done",
        "litmus 5000 || exit 6",
    ])
    res = boot_script(cpus, script)
    out = res.stdout
    assert f"NPROC {cpus}" in out, describe(res)
    assert f"CPUINFO {cpus}" in out, describe(res)
    assert out.count("smp-stress: OK") == 3, describe(res)
    assert "smp-stress: FAIL" not in out, describe(res)
    assert "litmus: OK" in out, describe(res)
    assert "quokka-guest: run exit=0" in out, describe(res)


def test_interpreter_backend_smp():
    """The portable interpreter backend runs vCPUs in parallel too, with the same atomics
    and ordering guarantees (slower)."""
    script = "echo NPROC $(nproc)\nsmp-stress || exit 7\nlitmus 2000 || exit 6"
    res = boot_script(2, script, tcg_backend="interp", timeout=BOOT_TIMEOUT + 300)
    assert "NPROC 2" in res.stdout, describe(res)
    assert "smp-stress: OK" in res.stdout, describe(res)
    assert "litmus: OK" in res.stdout, describe(res)
    assert "quokka-guest: run exit=0" in res.stdout, describe(res)


def test_a_minute_of_parallel_load_without_stalls():
    """Every vCPU busy for a minute (hashing, forking, the page cache): the kernel reports no
    soft lockup, hung task or RCU stall, and the vCPUs all did work (per-CPU user time)."""
    script = "\n".join([
        "cat /proc/stat | grep '^cpu[0-9]' > /tmp/before",
        "for c in 1 2; do (end=$(($(date +%s) + 60)); "
        "while [ $(date +%s) -lt $end ]; do sha256sum /init /bin/busybox >/dev/null; "
        "ls -R /sys/class >/dev/null 2>&1; done) & done; wait",
        "grep '^cpu[0-9]' /proc/stat",
        "dmesg | grep -i -E 'soft lockup|rcu.*stall|hung task|BUG:|WARNING:' "
        "&& echo STALLS-FOUND || echo NO-STALLS",
    ])
    res = boot_script(2, script, timeout=BOOT_TIMEOUT + 120)
    out = res.stdout
    assert "NO-STALLS" in out, describe(res)
    busy = [int(m.group(1)) for m in re.finditer(r"^cpu\d+ (\d+)", out, re.M)]
    assert len(busy) >= 2 and all(b > 500 for b in busy[-2:]), describe(res)

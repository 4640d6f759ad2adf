"""SMP on the translator: the stock Debian kernel and busybox initramfs booted with --cpus 2,
running /usr/bin/smp-stress (guest/tools/smp-stress.c): threads on both vCPUs hammer shared
counters with LOCK ADD, LOCK CMPXCHG loops, LOCK XADD, a misaligned LOCK INC, an XCHG spinlock,
a pthread mutex and LOCK BTC. The translator must make each locked instruction a host atomic
(src/accel/tcg/x86/atomic.c): plain loads and stores lose updates and the totals come up short.
"""
import base64
import os
import subprocess

import pytest

from conftest import BUILD, QUOKKA

GUEST = os.path.join(BUILD, "guest")
BOOT_TIMEOUT = 300


@pytest.fixture(scope="module", autouse=True)
def default_guest():
    for name in ("bzImage", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"{GUEST}/{name} is missing: run 'make guest'")


def run_guest(script, cpus, tcg_backend=None):
    enc = base64.b64encode(script.encode()).decode()
    env = dict(os.environ)
    if tcg_backend:
        env["QUOKKA_TCG_BACKEND"] = tcg_backend
    proc = subprocess.run(
        [QUOKKA, "run", "--accel", "tcg", "--cpus", str(cpus), "--mem", "512M",
         "--append", f"console=ttyS0 quiet quokka.run64={enc}"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=BOOT_TIMEOUT, env=env)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


@pytest.mark.parametrize("tcg_backend", ["native", "interp"])
def test_smp_stress_two_vcpus(tcg_backend):
    # Two threads (one per vCPU), then four (more threads than CPUs: preempted lock holders).
    rc, out, err = run_guest("smp-stress 2 100000 && smp-stress 4 20000", 2, tcg_backend)
    assert "quokka-guest: ready" in out, out[-4000:] + err
    assert "smp-stress: threads=2 iterations=100000 cpus=2" in out, out[-4000:]
    assert "FAIL" not in out, out[-4000:]
    assert out.count("smp-stress: OK") == 2, out[-4000:]
    assert "quokka-guest: run exit=0" in out, out[-4000:]
    assert rc == 0, (rc, err[-2000:])

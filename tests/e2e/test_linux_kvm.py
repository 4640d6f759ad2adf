"""Boot the default Debian guest on KVM end to end.

Opt-in (QUOKKA_E2E_KVM_LINUX=1): it needs a KVM that runs an unmodified Linux kernel, which
this project's own machines (software-assisted PVM KVM) do not have. On the translator the
same checks become the main end-to-end test (a later issue)."""
import os
import subprocess

import pytest
from conftest import BUILD, QUOKKA

GUEST = os.path.join(BUILD, "guest")

pytestmark = pytest.mark.skipif(
    os.environ.get("QUOKKA_E2E_KVM_LINUX") != "1",
    reason="Linux-on-KVM e2e is opt-in (QUOKKA_E2E_KVM_LINUX=1): this host's KVM cannot boot "
           "an unmodified kernel")


def boot(*extra, timeout=300):
    for name in ("bzImage", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"build/guest/{name} missing: run 'make guest'")
    proc = subprocess.run([QUOKKA, "run", "--accel", "kvm", *extra], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace")


def test_default_guest_ready_and_poweroff():
    rc, out = boot("--append", "console=ttyS0")
    assert "quokka-guest: ready" in out, out[-3000:]
    assert rc == 0, out[-3000:]


def test_default_guest_runs_command():
    rc, out = boot("--append", 'console=ttyS0 quokka.run="cat /proc/cmdline"')
    assert "quokka-guest: ready" in out
    assert "quokka-guest: run exit=0" in out, out[-3000:]
    assert rc == 0


def test_pvh_vmlinux():
    rc, out = boot("--kernel", os.path.join(GUEST, "vmlinux"), "--initrd",
                   os.path.join(GUEST, "initrd.cpio.gz"), "--append", "console=ttyS0")
    assert "quokka-guest: ready" in out, out[-3000:]
    assert rc == 0

"""The main end-to-end test: the stock Debian kernel and busybox initramfs booted on
quokka's translator (no KVM needed), checked by what the guest prints."""
import datetime
import hashlib
import os
import pty
import subprocess
import time

import pytest

from conftest import BUILD, QUOKKA, ROOT, read_until

GUEST = os.path.join(BUILD, "guest")
BOOT_TIMEOUT = 240


@pytest.fixture(scope="module", autouse=True)
def default_guest():
    for name in ("bzImage", "vmlinux", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"build/guest/{name} is missing: run 'make guest'")


def boot(append, *extra, tcg_backend=None, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    if tcg_backend:
        env["QUOKKA_TCG_BACKEND"] = tcg_backend
    proc = subprocess.run([QUOKKA, "run", "--accel", "tcg", "--append", append, *extra],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=BOOT_TIMEOUT,
                          env=env)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def test_boot_run_commands_and_poweroff():
    rc, out, err = boot('console=ttyS0 quokka.run="sha256sum /init; ls /proc; date -u +%Y"')
    assert "quokka-guest: ready" in out, out[-4000:] + err
    # /init in the initramfs is guest/init from this repository.
    with open(os.path.join(ROOT, "guest", "init"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert f"{digest}  /init" in out, out[-4000:]
    assert "cpuinfo" in out and "meminfo" in out  # ls /proc
    assert str(datetime.datetime.utcnow().year) in out.split("quokka-guest: ready")[1]
    assert "quokka-guest: run exit=0" in out
    assert rc == 0, (rc, err)


def test_boot_on_the_interpreter_backend():
    """The portable backend (any host) boots the same guest: same command, same output."""
    rc, out, err = boot('console=ttyS0 quiet quokka.run="sha256sum /init"', tcg_backend="interp")
    assert "quokka-guest: ready" in out, out[-3000:] + err
    with open(os.path.join(ROOT, "guest", "init"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert f"{digest}  /init" in out, out[-3000:]
    assert "quokka-guest: run exit=0" in out
    assert rc == 0, (rc, err)


def test_guest_kernel_sees_a_cpu_without_speculation_bugs():
    """The translator's CPU model reports IA32_ARCH_CAPABILITIES (RDCL_NO, MDS_NO, IBRS_ALL...)
    and IA32_SPEC_CTRL: Linux then runs without page-table isolation (no CR3 switch on every
    kernel entry), buffer clearing or retpolines, and says why in sysfs."""
    rc, out, err = boot('console=ttyS0 quiet quokka.run="cd /sys/devices/system/cpu/'
                        'vulnerabilities && grep . meltdown mds spectre_v2 && '
                        'echo pti=$(grep -c -w pti /proc/cpuinfo)"')
    assert "meltdown:Not affected" in out, out[-3000:] + err
    assert "mds:Not affected" in out, out[-3000:]
    assert "spectre_v2:Mitigation: Enhanced" in out, out[-3000:]
    assert "pti=0" in out, out[-3000:]
    assert rc == 0, (rc, err)


def test_boot_with_a_code_buffer_that_fills_up():
    """8 MiB of native code buffer (the boot needs ~30): it fills, every block is dropped, the
    buffer starts over, several times, and the guest does not notice."""
    rc, out, err = boot('console=ttyS0 quiet quokka.run="sha256sum /init"',
                        env_extra={"QUOKKA_TCG_CODE_KB": "8192"})
    with open(os.path.join(ROOT, "guest", "init"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert f"{digest}  /init" in out, out[-3000:] + err
    assert rc == 0, (rc, err)


def test_guest_command_failure_is_reported():
    rc, out, err = boot('console=ttyS0 quiet quokka.run="false"')
    assert "quokka-guest: run exit=1" in out, out[-3000:]
    assert rc == 0  # the guest still powers off cleanly


def test_pvh_vmlinux_boot():
    rc, out, err = boot('console=ttyS0 quiet quokka.run="uname -r"', "--kernel",
                        os.path.join(GUEST, "vmlinux"), "--initrd",
                        os.path.join(GUEST, "initrd.cpio.gz"))
    assert "quokka-guest: ready" in out, out[-3000:] + err
    assert "cloud-amd64" in out
    assert rc == 0


def test_guest_time_runs_at_host_rate():
    """`sleep 2` in the guest takes about two seconds of host time (timers fire on
    schedule): the host timestamps the guest's marks as they arrive on the console."""
    proc = subprocess.Popen([QUOKKA, "run", "--accel", "tcg", "--append",
                             'console=ttyS0 quiet quokka.run="echo mark-a; sleep 2; echo mark-b"'],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    seen = {}
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line in ("mark-a", "mark-b"):
                seen[line] = time.monotonic()
            if time.monotonic() > deadline:
                break
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "mark-a" in seen and "mark-b" in seen, seen
    assert 1.8 <= seen["mark-b"] - seen["mark-a"] <= 3.0, seen["mark-b"] - seen["mark-a"]



def test_interactive_shell_over_pty():
    master, slave = pty.openpty()
    proc = subprocess.Popen([QUOKKA, "run", "--accel", "tcg", "--append",
                             "console=ttyS0 quiet quokka.shell"],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    try:
        seen = read_until(master, b"quokka-guest: shell", BOOT_TIMEOUT)
        assert b"quokka-guest: shell" in seen, seen[-2000:]
        time.sleep(1.0)  # let the shell print its prompt
        os.write(master, b"echo answer=$((6*7))\r")
        seen = read_until(master, b"answer=42", 60)
        assert b"answer=42" in seen, seen[-2000:]
        os.write(master, b"exit\r")
        seen = read_until(master, b"Power down", 60)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)

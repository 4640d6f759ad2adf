"""Shared helpers for the end-to-end tests: paths, running quokka, and accelerator checks.

Accelerator fixture: tests that take `accel` run once per accelerator ("kvm", "tcg"). Each
accelerator is probed once per session with the exit-now payload; KVM tests are skipped, with
the reason shown, when /dev/kvm is missing or unusable, or `quokka run --accel kvm --kernel
exit-now.elf` does not exit with status 1 (debug-exit value 0). The translator is always
built: a failing probe there fails its tests, never skips them.
"""
import collections
import os
import select
import time
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("QUOKKA_BUILD", os.path.join(ROOT, "build"))
QUOKKA = os.path.join(BUILD, "quokka")
PAYLOADS = os.path.join(BUILD, "payloads")

ACCELS = ["kvm", "tcg"]

# isa-debug-exit convention: the guest writes V to port 0xf4, quokka exits (V << 1) | 1.
EXIT_PASS = (0x10 << 1) | 1   # 33: payload printed PASS
EXIT_FAIL = (0x11 << 1) | 1   # 35: payload printed FAIL: reason
EXIT_ZERO = (0x00 << 1) | 1   # 1: exit-now.elf
EXIT_TRIPLE_FAULT = 3

Result = collections.namedtuple("Result", "rc stdout stderr timed_out")


def payload(name):
    """Path of a built payload, e.g. payload("hello") -> build/payloads/hello.elf."""
    return os.path.join(PAYLOADS, name if name.endswith(".elf") else name + ".elf")


def run_quokka(args, timeout=60, tcg_backend=None):
    """Run `quokka run ARGS`; returns Result(rc, stdout, stderr, timed_out) with text output.
    tcg_backend ("native" or "interp") picks the translator's backend (QUOKKA_TCG_BACKEND).

    On timeout the process is killed, rc is None and the output gathered so far is returned,
    so a hung guest shows how far it got."""
    cmd = [QUOKKA, "run", *args]
    env = dict(os.environ, QUOKKA_TCG_BACKEND=tcg_backend) if tcg_backend else None
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        return Result(None, _text(e.stdout), _text(e.stderr), True)
    return Result(proc.returncode, _text(proc.stdout), _text(proc.stderr), False)


def _text(data):
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def describe(res):
    """One readable blob for assertion messages."""
    state = "TIMED OUT" if res.timed_out else "rc=%s" % res.rc
    return "%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (state, res.stdout, res.stderr)


def kvm_is_pvm():
    """True on hosts whose /dev/kvm is kvm_pvm (software "Pagetable-based VM"): it runs
    non-PVM guests by emulating them instruction by instruction (slow) and its emulator
    cannot do protected/long-mode INT or IRET ("KVM internal error, suberror 1")."""
    return os.path.isdir("/sys/module/kvm_pvm")


_accel_status = {}


def accel_unusable_reason(accel):
    """None when `accel` can run guests here, else the reason (cached per session)."""
    if accel in _accel_status:
        return _accel_status[accel]
    reason = None
    # A missing build is a broken test run, not an unusable accelerator.
    if not os.access(QUOKKA, os.X_OK):
        pytest.fail("%s is not built (run `make`)" % QUOKKA)
    if not os.path.exists(payload("exit-now")):
        pytest.fail("payloads are not built (run `make payloads`)")
    if accel == "kvm" and not os.path.exists("/dev/kvm"):
        reason = "/dev/kvm does not exist on this host"
    elif accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        reason = "/dev/kvm is not readable and writable by this user"
    else:
        res = run_quokka(["--accel", accel, "--kernel", payload("exit-now")], timeout=60)
        if accel == "kvm" and (res.rc != EXIT_ZERO or "quokka:" in res.stderr):
            reason = "KVM unusable: exit-now.elf gave %s (expected rc=1): %s" % (
                "a timeout" if res.timed_out else "rc=%s" % res.rc, res.stderr.strip())
    _accel_status[accel] = reason
    return reason


@pytest.fixture(params=ACCELS)
def accel(request):
    """The accelerator name; skips (with the reason) when it is unusable on this host."""
    reason = accel_unusable_reason(request.param)
    if reason:
        pytest.skip("--accel %s: %s" % (request.param, reason))
    return request.param


@pytest.fixture(scope="session")
def qemu():
    """Path of qemu-system-x86_64, for cross-checking payloads; skips when absent."""
    path = shutil.which("qemu-system-x86_64")
    if not path:
        pytest.skip("qemu-system-x86_64 is not installed (payload cross-check only)")
    return path


def read_until(fd, needle, timeout):
    """Read from fd (a pty master) until needle appears, EOF or timeout; returns the bytes."""
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data

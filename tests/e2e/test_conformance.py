"""x86 conformance payloads (issue 12): each runs on the translator (native and interpreter
backends), on KVM where usable, and on QEMU TCG as the reference for the payload itself;
the lines they print must be the same everywhere. Payloads check themselves too (PASS/FAIL)."""
import functools
import shutil
import subprocess

import pytest

from conftest import EXIT_PASS, accel_unusable_reason, describe, kvm_is_pvm, payload, run_quokka

# name -> (quokka command line, QEMU command line, extra QEMU options). `qemu=1` tells a
# payload to accept QEMU TCG's documented deviations from the SDM (see the payload's header
# comment). QEMU gets the CPU features quokka's model has where a payload depends on them.
PAYLOADS = {
    "exc64": ("", "qemu=1", []),
    "pf64": ("", "qemu=1", ["-cpu", "qemu64,+pdpe1gb"]),
    "msr64": ("", "qemu=1", ["-cpu", "qemu64,vendor=GenuineIntel"]),
    "lapic64": ("", "", []),
    "tf64": ("", "qemu=1", []),
    "dr64": ("", "", []),
    "rtc64": ("", "", []),
    # Segments at 0x6000 and 0xA000: the loader's own data moves out of their way.
    "low32": ("", "", []),
}

# Lines a payload prints only where it checks what QEMU TCG does not model (unknown MSRs
# #GP, reserved bits in MSR writes, ICEBP): checked by the payload itself, not compared.
SDM_ONLY = "sdm-only: "

TARGETS = ["tcg-native", "tcg-interp", "kvm"]


@functools.lru_cache(maxsize=None)
def qemu_lines(name):
    """The payload's output lines under QEMU TCG, or None without QEMU."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        return None
    cmd = [qemu, "-accel", "tcg", "-m", "256M", "-display", "none", "-nodefaults", "-serial",
           "stdio", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-kernel", payload(name)] + PAYLOADS[name][2]
    if PAYLOADS[name][1]:
        cmd += ["-append", PAYLOADS[name][1]]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == EXIT_PASS, "QEMU rc=%s\n%s" % (proc.returncode, out)
    return [line for line in out.splitlines() if line.strip()]


def run_target(name, target):
    accel, _, backend = target.partition("-")
    reason = accel_unusable_reason(accel)
    if reason:
        pytest.skip("--accel %s: %s" % (accel, reason))
    if accel == "kvm" and kvm_is_pvm():
        pytest.skip("kvm_pvm cannot emulate exception delivery for non-PVM guests")
    args = ["--accel", accel, "--kernel", payload(name)]
    if PAYLOADS[name][0]:
        args += ["--append", PAYLOADS[name][0]]
    return run_quokka(args, tcg_backend=backend or None)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_conformance_payload(name, target):
    res = run_target(name, target)
    assert res.rc == EXIT_PASS, describe(res)
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert lines[-1] == "PASS", describe(res)
    ref = qemu_lines(name)
    if ref is not None:
        lines = [line for line in lines if not line.startswith(SDM_ONLY)]
        assert lines == ref, "differs from QEMU TCG:\n%s\n--- QEMU ---\n%s" % (
            describe(res), "\n".join(ref))


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_conformance_payload_on_qemu(qemu, name):
    """The payloads pass on QEMU TCG (proof that they test the right thing)."""
    assert qemu_lines(name)[-1] == "PASS"

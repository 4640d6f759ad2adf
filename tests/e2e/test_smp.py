"""Several vCPUs: the smp64 payload (guest/payloads/smp64.S) starts the application processors
with INIT/SIPI/SIPI (broadcast, then each by APIC ID) and sends fixed IPIs between the CPUs.
Runs on the translator (both backends) with --cpus 2 and 4, on KVM where usable, and on QEMU
TCG as the reference for the payload itself."""
import subprocess

import pytest

from conftest import EXIT_PASS, accel_unusable_reason, describe, kvm_is_pvm, payload, run_quokka
from test_api import INITRD, KERNEL

TARGETS = ["tcg-native", "tcg-interp", "kvm"]


def expected_lines(cpus, ids):
    aps = cpus - 1
    return [
        "smp64: INIT/SIPI to the APs, IPIs between CPUs",
        "cpus: %d" % cpus,
        "apic ids: " + " ".join(str(i) for i in ids),
        "restarted by id:" + "".join(" %d" % i for i in ids[1:]),
        "ipis: bsp->ap %d, ap->bsp %d, all-but-self %d" % (aps, aps, aps),
        "smp64: OK",
        "PASS",
    ]


def lines_of(text):
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("cpus", [2, 4])
def test_smp64(cpus, target):
    accel, _, backend = target.partition("-")
    reason = accel_unusable_reason(accel)
    if reason:
        pytest.skip("--accel %s: %s" % (accel, reason))
    if accel == "kvm" and kvm_is_pvm():
        pytest.skip("kvm_pvm cannot emulate exception delivery for non-PVM guests")
    res = run_quokka(["--accel", accel, "--cpus", str(cpus), "--kernel", payload("smp64"),
                      "--append", "cpus=%d" % cpus], tcg_backend=backend or None)
    assert res.rc == EXIT_PASS, describe(res)
    lines = lines_of(res.stdout)
    if accel == "tcg":
        # The translator's APIC IDs are the vCPU indexes.
        assert lines == expected_lines(cpus, list(range(cpus))), describe(res)
    else:
        ids = [int(i) for i in lines[2].split(":")[1].split()]
        assert len(set(ids)) == cpus, describe(res)
        assert lines == expected_lines(cpus, ids), describe(res)


def test_smp64_one_cpu_without_aps():
    """With --cpus 1 the broadcasts reach nobody and nothing waits forever."""
    reason = accel_unusable_reason("tcg")
    if reason:
        pytest.skip("--accel tcg: %s" % reason)
    res = run_quokka(["--accel", "tcg", "--kernel", payload("smp64"), "--append", "cpus=1"])
    assert res.rc == EXIT_PASS, describe(res)
    assert lines_of(res.stdout) == expected_lines(1, [0]), describe(res)


def test_smp64_missing_ap_fails():
    """The payload can fail: told of a CPU the machine does not have, it times out waiting
    for it and says so (rather than passing)."""
    reason = accel_unusable_reason("tcg")
    if reason:
        pytest.skip("--accel tcg: %s" % reason)
    res = run_quokka(["--accel", "tcg", "--cpus", "1", "--kernel", payload("smp64"),
                      "--append", "cpus=2"], timeout=90)
    assert res.rc != EXIT_PASS, describe(res)
    assert "FAIL: not every AP started (timeout)" in res.stdout, describe(res)


@pytest.mark.parametrize("cpus", [2, 4])
def test_smp64_on_qemu(qemu, cpus):
    """The payload passes on QEMU TCG with the same output (proof that it tests the right
    thing)."""
    proc = subprocess.run(
        [qemu, "-accel", "tcg", "-smp", str(cpus), "-m", "256M", "-display", "none",
         "-nodefaults", "-serial", "stdio", "-no-reboot", "-device",
         "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", payload("smp64"), "-append",
         "cpus=%d" % cpus], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == EXIT_PASS, out
    assert lines_of(out) == expected_lines(cpus, list(range(cpus))), out


def test_pause_snapshot_restore_with_waiting_ap(tmp_path):
    """Two vCPUs, Linux told to start only one (maxcpus=1): the AP stays in wait-for-SIPI.
    Pausing must still stop it (the rendezvous kicks it out of its wait), the snapshot keeps
    it waiting, and the restored guest counts on with its AP still waiting."""
    from test_api import COUNTER, Vmm, ticks  # noqa: E402 (the API harness)

    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    boot_args = COUNTER.replace("console=ttyS0 ", "console=ttyS0 maxcpus=1 ")
    v = Vmm(d1)
    try:
        assert v.api("PUT", "/boot-source", {"kernel_image_path": KERNEL,
                                             "initrd_path": INITRD,
                                             "boot_args": boot_args}) == (204, None)
        assert v.api("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256,
                                                "accelerator": "tcg"}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for(r"tick 3 ")
        assert v.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
        assert v.api("PUT", "/snapshot/create", {"snapshot_path": str(d1 / "vm.snap"),
                                                 "mem_file_path": str(d1 / "vm.mem")}) == (
            204, None)
        before = ticks(v.console())
        assert "smpboot: Allowing 2 CPUs" in v.console(), v.console()[-3000:]
    finally:
        v.close()
    w = Vmm(d2)
    try:
        assert w.api("PUT", "/snapshot/load", {"snapshot_path": str(d1 / "vm.snap"),
                                               "mem_backend": {"backend_path": str(d1 / "vm.mem"),
                                                               "backend_type": "File"},
                                               "resume_vm": True}) == (204, None)
        w.wait_for(rf"tick {before[-1][0] + 2} ", timeout=60)
        assert ticks(w.console())[0][0] == before[-1][0] + 1
    finally:
        w.close()


def interrupt_counts(text, name, cpus):
    """Per-CPU counts of one /proc/interrupts row ("LOC:", "CAL:", ...)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == name + ":":
            return [int(n) for n in fields[1:1 + cpus]]
    raise AssertionError("no %s row in:\n%s" % (name, text[-3000:]))


@pytest.mark.parametrize("backend", ["native", "interp"])
def test_linux_brings_up_every_cpu(backend):
    """The stock kernel on 4 translator vCPUs: it starts the APs (INIT/SIPI), and every CPU
    takes its own LAPIC timer and function-call IPIs from the others. (Needs locked
    instructions to be atomic across vCPUs: without, spinlocks and the TSC sync check
    livelock during AP bring-up.)"""
    reason = accel_unusable_reason("tcg")
    if reason:
        pytest.skip("--accel tcg: %s" % reason)
    cpus = 4
    res = run_quokka(["--accel", "tcg", "--cpus", str(cpus), "--kernel", KERNEL, "--initrd",
                      INITRD, "--append",
                      'console=ttyS0 quokka.run="cat /proc/interrupts; nproc"'],
                     timeout=240, tcg_backend=backend)
    out = res.stdout
    assert "smp: Brought up 1 node, %d CPUs" % cpus in out, describe(res)
    assert "quokka-guest: run exit=0" in out, describe(res)
    assert "\n%d\n" % cpus in out.replace("\r", ""), describe(res)
    assert all(n > 0 for n in interrupt_counts(out, "LOC", cpus)), describe(res)
    assert all(n > 0 for n in interrupt_counts(out, "CAL", cpus)), describe(res)

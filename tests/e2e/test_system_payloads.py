"""System-level payloads: self-modifying code, 2-level and PAE paging with page faults and NX, on each
accelerator, and under QEMU as the reference for the payloads themselves."""
import subprocess

import pytest

from conftest import EXIT_PASS, describe, kvm_is_pvm, payload, run_quokka


def test_self_modifying_code(accel):
    res = run_quokka(["--accel", accel, "--kernel", payload("smc")])
    assert res.rc == EXIT_PASS, describe(res)
    assert "smc ok" in res.stdout


def test_paging_and_page_faults(accel, request):
    if accel == "kvm" and kvm_is_pvm():
        pytest.skip(
            "kvm_pvm cannot emulate exception delivery for non-PVM guests")
    res = run_quokka(["--accel", accel, "--kernel", payload("paging")])
    assert res.rc == EXIT_PASS, describe(res)
    assert "alias mapping ok" in res.stdout
    assert "page fault cr2=0x00800000 err=0x00000000" in res.stdout
    assert "err=0x00000003" in res.stdout


def test_pae_paging_and_nx(accel, request):
    if accel == "kvm" and kvm_is_pvm():
        pytest.skip(
            "kvm_pvm cannot emulate exception delivery for non-PVM guests")
    res = run_quokka(["--accel", accel, "--kernel", payload("pae")])
    assert res.rc == EXIT_PASS, describe(res)
    assert "pae alias mapping ok" in res.stdout
    assert "err=0x00000011" in res.stdout  # present + instruction fetch


@pytest.mark.parametrize("name", ["smc", "paging", "pae"])
def test_qemu_reference(qemu, name):
    proc = subprocess.run([qemu, "-accel", "tcg", "-m", "256M", "-display", "none",
                           "-nodefaults", "-serial", "stdio", "-device",
                           "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", payload(name)],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == EXIT_PASS, proc.stdout.decode(errors="replace")

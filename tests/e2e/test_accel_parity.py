"""The same payload gives the same serial output and exit status on KVM and on the
translator: device models and boot loaders do not know which accelerator runs them. Within
the translator, the native x86-64 backend and the portable interpreter agree too."""
import pytest

from conftest import accel_unusable_reason, describe, payload, run_quokka

CASES = [
    ("hello", []),
    ("exit-now", []),
    ("modes", ["--append", "parity check", "--initrd", "README.md"]),
    ("io", ["--append", "count=1000"]),
    ("irq", ["--append", "iret=0"]),
    ("long64", ["--append", "iters=1"]),
    ("cpubench", ["--append", "iters=1"]),
    ("triple", []),
    ("smc", []),
]


@pytest.mark.parametrize("name,args", CASES, ids=[c[0] for c in CASES])
def test_kvm_and_tcg_agree(name, args):
    for accel in ("kvm", "tcg"):
        reason = accel_unusable_reason(accel)
        if reason:
            pytest.skip(f"--accel {accel}: {reason}")
    results = {}
    for accel in ("kvm", "tcg"):
        res = run_quokka(["--accel", accel, "--kernel", payload(name), *args], timeout=120)
        assert not res.timed_out, describe(res)
        results[accel] = res
    kvm, tcg = results["kvm"], results["tcg"]
    if name == "triple":
        # Both crash with status 3; the register dumps differ in how far each got.
        assert kvm.rc == tcg.rc == 3, describe(kvm) + describe(tcg)
        assert kvm.stdout == tcg.stdout
        return
    assert kvm.rc == tcg.rc, describe(kvm) + describe(tcg)
    assert kvm.stdout == tcg.stdout, describe(kvm) + describe(tcg)


@pytest.mark.parametrize("name,args", CASES + [("paging", []), ("pae", [])],
                         ids=[c[0] for c in CASES] + ["paging", "pae"])
def test_native_and_interpreter_backends_agree(name, args):
    results = {}
    for backend in ("native", "interp"):
        res = run_quokka(["--accel", "tcg", "--kernel", payload(name), *args], timeout=120,
                         tcg_backend=backend)
        assert not res.timed_out, describe(res)
        assert "backend unavailable" not in res.stderr, describe(res)
        results[backend] = res
    native, interp = results["native"], results["interp"]
    assert native.rc == interp.rc, describe(native) + describe(interp)
    assert native.stdout == interp.stdout, describe(native) + describe(interp)
    if name != "triple":
        assert native.stderr == interp.stderr, describe(native) + describe(interp)

"""User mistakes: one clear line on stderr naming what and why, exit status 2, nothing left
behind. These need no accelerator: quokka validates everything before it starts a VM."""
import os
import subprocess

import pytest
from conftest import EXIT_PASS, QUOKKA, describe, payload, run_quokka


def quokka(*args, timeout=30):
    proc = subprocess.run([QUOKKA, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def assert_usage_error(args, *needles):
    rc, out, err = quokka(*args)
    assert rc == 2, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("quokka: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def test_help_and_version():
    rc, out, _ = quokka("--help")
    assert rc == 0 and "quokka run" in out and "--accel" in out
    rc, out, _ = quokka("run", "--help")
    assert rc == 0 and "--kernel" in out
    rc, out, _ = quokka("--version")
    assert rc == 0 and out.startswith("quokka ")


def test_unknown_flag():
    assert_usage_error(["run", "--kernel", "/bin/true", "--turbo"], "--turbo")


def test_unknown_command():
    assert_usage_error(["launch"], "launch")


def test_missing_kernel(tmp_path):
    path = tmp_path / "nope"
    assert_usage_error(["run", "--kernel", str(path)], str(path), "No such file")


def test_kernel_is_directory(tmp_path):
    assert_usage_error(["run", "--kernel", str(tmp_path)], "not a regular file")


def test_empty_kernel(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert_usage_error(["run", "--kernel", str(path)], "size 0")


def test_garbage_kernel(tmp_path):
    path = tmp_path / "garbage"
    path.write_bytes(os.urandom(64 * 1024))
    assert_usage_error(["run", "--kernel", str(path)], "cannot boot", str(path))


def test_unreadable_initrd(tmp_path):
    kernel = payload("hello")
    assert_usage_error(["run", "--kernel", kernel, "--initrd", str(tmp_path / "missing.img")],
                       "initrd", "missing.img")


@pytest.mark.parametrize("size,needle", [("lots", "--mem 'lots'"), ("1K", "minimum"),
                                          ("4T", "maximum"), ("10000001", "multiple of 4K")])
def test_bad_memory_size(tmp_path, size, needle):
    kernel = tmp_path / "k"
    kernel.write_bytes(b"\x7fELF" + bytes(60))
    assert_usage_error(["run", "--kernel", str(kernel), "--mem", size], needle)


@pytest.mark.parametrize("flag,value", [("--cpus", "0"), ("--cpus", "x"), ("--accel", "hax"),
                                         ("--console", "serial")])
def test_bad_values(flag, value):
    assert_usage_error(["run", "--kernel", "/bin/true", flag, value], flag)


def test_console_file_not_left_behind(tmp_path):
    """A run that fails before the guest starts leaves no console file behind."""
    out = tmp_path / "console.log"
    kernel = tmp_path / "garbage"
    kernel.write_bytes(b"not a kernel" * 100)
    rc, _, _ = quokka("run", "--kernel", str(kernel), "--console", f"file:{out}")
    assert rc == 2
    assert not out.exists()


@pytest.mark.parametrize("var,value,says", [
    ("QUOKKA_TCG_BACKEND", "fast", "neither 'native' nor 'interp'"),
    ("QUOKKA_TCG_CODE_KB", "12x", "not a number of KiB"),
    ("QUOKKA_TCG_CODE_KB", "1", "not a number of KiB"),
])
def test_bad_translator_settings_warn_and_run(var, value, says, monkeypatch):
    """A mistaken translator setting in the environment is named on stderr, and the guest
    still runs with the default."""
    monkeypatch.setenv(var, value)
    res = run_quokka(["--accel", "tcg", "--kernel", payload("hello")])
    assert res.rc == EXIT_PASS, describe(res)
    warnings = [l for l in res.stderr.splitlines() if var in l]
    assert len(warnings) == 1 and says in warnings[0], describe(res)

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
                                         ("--console", "serial"), ("--seccomp", "maybe"),
                                         ("--tcg", "fast"), ("--tcg", "backend=jit"),
                                         ("--tcg", "code-kb=1")])
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


def test_help_takes_no_topic():
    """--help with a topic must not exit 0 as if it had been shown."""
    assert_usage_error(["--help", "extra"], "--help", "extra")
    assert_usage_error(["help", "extra"], "extra")
    assert_usage_error(["run", "--help", "extra"], "extra")
    assert_usage_error(["--version", "extra"], "extra")


@pytest.mark.parametrize("flag,first,second", [
    ("--kernel", "a.elf", "b.elf"), ("--initrd", "a", "b"), ("--append", "x=1", "y=2"),
    ("--mem", "256M", "1G"), ("--cpus", "1", "2"), ("--accel", "tcg", "kvm"),
    ("--console", "stdio", "none"), ("--seccomp", "on", "off")])
def test_single_valued_flag_twice(flag, first, second):
    """Not silently last-wins: which one was meant?"""
    assert_usage_error(["run", flag, first, flag + "=" + second], flag, "twice", first, second)


def test_repeatable_flags_stay_repeatable(tmp_path):
    """--disk, --net, --device, --rng may be given several times (the check above is not
    applied to them)."""
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    a.write_bytes(bytes(1 << 20))
    b.write_bytes(bytes(1 << 20))
    res = run_quokka(["--accel", "tcg", "--kernel", payload("hello"), "--disk", str(a),
                      "--disk", str(b), "--rng", "--rng"])
    assert res.rc == EXIT_PASS, describe(res)


def test_console_full_said_once():
    """Guest output that cannot be written (a full disk) is dropped, and said so once."""
    res = run_quokka(["--accel", "tcg", "--kernel", payload("hello"), "--console",
                      "file:/dev/full"])
    assert res.rc == EXIT_PASS, describe(res)
    lines = [l for l in res.stderr.splitlines() if "console" in l]
    assert len(lines) == 1, describe(res)
    assert "/dev/full" in lines[0] and "No space left" in lines[0], describe(res)


def elf64_exec(segments, entry=0x100000):
    """An ELF64 x86-64 EXEC whose PT_LOAD segments are (paddr, memsz) pairs; each holds code
    that exits through isa-debug-exit with value 0x10 (mov al, 0x10; out 0xf4, al)."""
    import struct
    code = bytes([0xb0, 0x10, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd])
    phoff, phentsize = 64, 56
    data_off = phoff + phentsize * len(segments)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, phoff, 0, 0, 64, phentsize,
                        len(segments), 64, 0, 0)
    phdrs = b"".join(struct.pack("<IIQQQQQQ", 1, 7, data_off, paddr, paddr, len(code), memsz,
                                 0x1000) for paddr, memsz in segments)
    return ehdr + phdrs + code


def test_overlapping_elf_segments(tmp_path):
    """Segments that would overwrite each other are refused (they loaded silently and the
    guest triple-faulted); the same file with adjacent segments boots."""
    ok = tmp_path / "adjacent.elf"
    ok.write_bytes(elf64_exec([(0x100000, 0x1000), (0x101000, 0x1000)]))
    res = run_quokka(["--accel", "tcg", "--kernel", str(ok)])
    assert res.rc == EXIT_PASS, describe(res)
    bad = tmp_path / "overlap.elf"
    bad.write_bytes(elf64_exec([(0x100000, 0x1000), (0x200000, 0x1000), (0x100800, 0x1000)]))
    assert_usage_error(["run", "--kernel", str(bad)], "segments 0 and 2 overlap", "0x100800")


def test_translator_stats_and_perf_map():
    """--tcg stats prints the translator's counters at exit; perf-map writes perf's
    /tmp/perf-PID.map naming each generated block by its guest pc."""
    proc = subprocess.Popen([QUOKKA, "run", "--accel", "tcg", "--kernel", payload("hello"),
                             "--console", "none", "--tcg", "stats,perf-map,backend=native"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_PASS, err
    stats, rates, helpers = {}, {}, {}
    for line in err.decode().splitlines():
        if not line.startswith("quokka-tcg-stats: cpu0 "):
            continue
        f = line.split()
        if f[2] == "helper":
            helpers[f[3]] = int(f[4])
        elif f[3].endswith("%"):
            rates[f[2]] = float(f[3][:-1])
        elif "." in f[3]:
            rates[f[2]] = float(f[3])
        else:
            stats[f[2]] = int(f[3])
    assert stats["blocks_translated"] > 0 and stats["insns_translated"] >= stats["blocks_translated"]
    assert stats["loop_lookups"] >= stats["loop_misses"] > 0
    # Counted by the generated code: direct jumps and their chain hits, inline memory
    # accesses and TLB hits, helper calls by kind. The payload polls the UART's status once
    # per character it prints (the UART is always ready): one IN helper call each.
    assert stats["jumps_run"] > stats["jumps_unchained"] > 0
    assert stats["inline_mem"] > stats["inline_mem_slow"] > 0
    assert 0 < rates["chain_hit_rate"] < 100 and 0 < rates["tlb_hit_rate"] < 100
    assert rates["translate_ns_per_insn"] > 0
    assert helpers["in"] == len("hello from quokka payload\n"), helpers
    path = f"/tmp/perf-{proc.pid}.map"
    try:
        lines = open(path).read().splitlines()
    finally:
        if os.path.exists(path):
            os.unlink(path)
    assert 0 < len(lines) <= stats["blocks_translated"]  # lone instructions are not mapped
    start, size, name = lines[0].split()
    assert int(start, 16) > 0 and int(size, 16) > 0 and name.startswith("guest_")

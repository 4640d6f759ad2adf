"""The guest/payloads test programs under quokka, once per accelerator.

Each payload prints one line per check on COM1 and exits through isa-debug-exit: PASS is
status 33, FAIL status 35, a triple fault status 3 (guest/payloads/README.md). Tests check
the exit status and that the expected lines appear in order.

A second group runs the multiboot payloads under QEMU TCG (when installed) to check the
payloads themselves, so a failure above can be told apart from a broken payload.
"""
import functools
import re
import struct
import subprocess

import pytest

from conftest import (EXIT_PASS, EXIT_TRIPLE_FAULT, EXIT_ZERO, Result, describe, kvm_is_pvm,
                      payload, run_quokka)

MULTIBOOT_PAYLOADS = ["hello", "exit-now", "modes", "io", "irq", "cpubench", "triple"]
ELF64_PAYLOADS = ["long64"]

INITRD_DATA = b"quokka payload initrd: 0123456789abcdef\n"

# Timeouts: generous because a software-emulating KVM (kvm_pvm) runs these ~1000x slower
# than hardware: cpubench iters=1 takes ~6 s there.
TIMEOUT = 60
SLOW_TIMEOUT = 180


# -- reference model of bench64.S --------------------------------------------------------

def _bench_buffer():
    x = 0x12345678
    out = bytearray()
    for _ in range((1 << 20) // 4):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out += struct.pack("<I", x)
    return bytes(out)


@functools.lru_cache(maxsize=None)
def bench_checksum(iters):
    """FNV-1a (32-bit) over the 1 MiB xorshift32 buffer, `iters` passes, hash carried over."""
    buf = _bench_buffer() if iters else b""
    h = 0x811C9DC5
    for _ in range(iters):
        for b in buf:
            h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def test_bench_reference_model():
    # Values from the C reference implementation (and the payload under QEMU).
    assert bench_checksum(0) == 0x811C9DC5
    assert bench_checksum(1) == 0x262026D5


# -- helpers -----------------------------------------------------------------------------

def assert_lines_in_order(res, patterns):
    """Each regex must fully match a stdout line, in this order (other lines may sit between).
    Returns the match objects."""
    lines = res.stdout.splitlines()
    matches, pos = [], 0
    for pat in patterns:
        rx = re.compile(pat)
        for i in range(pos, len(lines)):
            m = rx.fullmatch(lines[i].rstrip("\r"))
            if m:
                matches.append(m)
                pos = i + 1
                break
        else:
            pytest.fail("no line matching %r (after line %d)\n%s" % (pat, pos, describe(res)))
    return matches


def assert_pass(res, patterns):
    assert res.rc == EXIT_PASS, describe(res)
    assert "FAIL" not in res.stdout, describe(res)
    return assert_lines_in_order(res, list(patterns) + ["PASS"])


@pytest.fixture
def initrd(tmp_path):
    path = tmp_path / "initrd.bin"
    path.write_bytes(INITRD_DATA)
    return str(path)


def quokka_run(accel, name, *extra, timeout=TIMEOUT):
    return run_quokka(["--accel", accel, "--console", "stdio", "--kernel", payload(name),
                       *extra], timeout=timeout)


# -- the payloads under quokka -----------------------------------------------------------

def test_hello(accel):
    res = quokka_run(accel, "hello")
    assert res.rc == EXIT_PASS, describe(res)
    assert res.stdout.splitlines() == ["hello from quokka payload"], describe(res)


def test_exit_now(accel):
    res = quokka_run(accel, "exit-now")
    assert res.rc == EXIT_ZERO, describe(res)
    assert res.stdout == "", describe(res)


def test_modes_boot_info_and_mode_switches(accel, initrd):
    res = quokka_run(accel, "modes", "--mem", "256M", "--append", "hello args",
                     "--initrd", initrd)
    m = assert_pass(res, [
        r"modes: 32-bit protected mode entry",
        r"multiboot magic ok",
        r"mbi flags=0x[0-9a-f]{8}",
        r"mem_lower=(\d+) KiB mem_upper=(\d+) KiB",
        r"cmdline: hello args",
        r"modules: 1",
        r"module 0: size=%d bytes=%s string=.*" % (len(INITRD_DATA), INITRD_DATA[:16].hex()),
        r"mmap entries: (\d+)",
        r"entering long mode",
        r"long mode ok",
        r"back in 32-bit protected mode",
        r"16-bit protected mode ok",
        r"real mode ok",
        r"32-bit protected mode again",
    ])
    mem_lower, mem_upper = int(m[3].group(1)), int(m[3].group(2))
    assert 512 <= mem_lower <= 640, describe(res)
    # RAM contiguous from 1 MiB: all of 256M but the first MiB, give or take firmware areas
    assert 200 * 1024 <= mem_upper <= 255 * 1024, describe(res)
    assert int(m[7].group(1)) >= 2, describe(res)


def test_modes_without_initrd(accel):
    res = quokka_run(accel, "modes", "--append", "")
    assert_pass(res, [r"multiboot magic ok", r"modules: (0|none)", r"long mode ok",
                      r"real mode ok", r"32-bit protected mode again"])


def test_io_port_and_mmio(accel):
    res = quokka_run(accel, "io", "--mem", "256M", "--append", "count=1000")
    assert_pass(res, [
        r"port 0x80 writes: 1000 done",
        r"port 0x80 read after writing 0x5a: 0x5a",  # the POST port keeps the last code
        # the 3G-4G hole is unclaimed: reads are all-ones, writes are dropped
        r"mmio read32 0xd0000000: 0xffffffff",
        r"mmio read16 0xd0000004: 0x0000ffff",
        r"mmio read8 0xd0000007: 0x000000ff",
        r"mmio write32 0xd0000000 <- 0x12345678",
        r"mmio read32 0xd0000000 after write: 0xffffffff",
        r"beyond RAM read32 0x10000000: 0xffffffff",  # just past --mem 256M: unclaimed
    ])


def test_io_default_count(accel):
    res = quokka_run(accel, "io", timeout=SLOW_TIMEOUT)
    assert_pass(res, [r"port 0x80 writes: 100000 done"])


IRQ_LINES = [r"pic remapped to 0x20/0x28", r"irq 4 taken, iir=0x[0-9a-f]2", r"pit ticks ok"]


def test_irq(accel, request):
    if accel == "kvm" and kvm_is_pvm():
        pytest.skip(
            "kvm_pvm host: its instruction emulator cannot do a protected-mode IRET "
                   "(test_irq_without_iret covers interrupt injection here)")
    res = quokka_run(accel, "irq")
    assert_pass(res, IRQ_LINES)


def test_irq_without_iret(accel):
    res = quokka_run(accel, "irq", "--append", "iret=0")
    assert_pass(res, [r"handlers return without iret"] + IRQ_LINES)


def test_triple_fault(accel):
    res = quokka_run(accel, "triple")
    assert res.rc == EXIT_TRIPLE_FAULT, describe(res)
    assert res.stdout.splitlines() == ["about to triple fault"], describe(res)


def test_long64_elf64_entry(accel, initrd):
    res = quokka_run(accel, "long64", "--append", "iters=1 hello64", "--initrd", initrd,
                     timeout=SLOW_TIMEOUT)
    m = assert_pass(res, [
        r"64-bit entry ok",
        r"cmdline: iters=1 hello64",
        r"initrd: size=%d bytes=%s" % (len(INITRD_DATA), INITRD_DATA[:16].hex()),
        r"cpu vendor: ([\x20-\x7e]{12})",
        r"iters=1 checksum=0x([0-9a-f]{8})",
    ])
    assert int(m[4].group(1), 16) == bench_checksum(1), describe(res)


def test_long64_without_initrd(accel):
    res = quokka_run(accel, "long64", "--append", "iters=0", timeout=SLOW_TIMEOUT)
    assert_pass(res, [r"64-bit entry ok", r"cmdline: iters=0", r"initrd: none",
                      r"iters=0 checksum=0x811c9dc5"])


def test_cpubench(accel):
    res = quokka_run(accel, "cpubench", "--append", "iters=2", timeout=SLOW_TIMEOUT)
    assert_pass(res, [r"cpubench: iters=2", r"checksum=0x%08x" % bench_checksum(2)])


# -- the payload files themselves --------------------------------------------------------

MB_MAGIC = 0x1BADB002


@pytest.mark.parametrize("name", MULTIBOOT_PAYLOADS)
def test_multiboot_payload_format(name):
    """ELF32 (QEMU refuses ELF64 multiboot) with a valid header in the first 8 KiB."""
    with open(payload(name), "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 1, "not ELF32"
    for off in range(0, min(len(data), 8192) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", data, off)
        if magic == MB_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            assert flags & 0x10000 == 0, "a.out kludge not expected"
            assert flags & 0x4 == 0, "no video mode request"
            return
    pytest.fail("no multiboot header in the first 8 KiB of %s" % name)


@pytest.mark.parametrize("name", ELF64_PAYLOADS)
def test_elf64_payload_format(name):
    """ELF64 without a multiboot header, so loaders take the plain ELF64 path."""
    with open(payload(name), "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "not ELF64"
    assert struct.pack("<I", MB_MAGIC) not in data[:8192 + 12]


# -- cross-check: the multiboot payloads under QEMU TCG ----------------------------------

def qemu_run(qemu, name, append=None, initrd=None, timeout=TIMEOUT):
    cmd = [qemu, "-accel", "tcg", "-m", "256M", "-display", "none", "-serial", "stdio",
           "-monitor", "none", "-no-reboot", "-nodefaults", "-device",
           "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", payload(name)]
    if append is not None:
        cmd += ["-append", append]
    if initrd is not None:
        cmd += ["-initrd", initrd]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                  proc.stderr.decode(errors="replace"), False)


def test_qemu_hello(qemu):
    res = qemu_run(qemu, "hello")
    assert res.rc == EXIT_PASS and res.stdout == "hello from quokka payload\n", describe(res)


def test_qemu_exit_now(qemu):
    res = qemu_run(qemu, "exit-now")
    assert res.rc == EXIT_ZERO and res.stdout == "", describe(res)


def test_qemu_modes(qemu, initrd):
    # QEMU prefixes the multiboot command line with the kernel path
    res = qemu_run(qemu, "modes", append="hello args", initrd=initrd)
    assert_pass(res, [r"cmdline: .*hello args", r"modules: 1",
                      r"module 0: size=%d bytes=%s string=.*" % (len(INITRD_DATA),
                                                                 INITRD_DATA[:16].hex()),
                      r"long mode ok", r"real mode ok", r"32-bit protected mode again"])


def test_qemu_io(qemu):
    # QEMU reads unassigned memory as 0, so only the shape of the lines is checked
    res = qemu_run(qemu, "io", append="count=1000")
    assert_pass(res, [r"port 0x80 writes: 1000 done", r"mmio read32 0xd0000000: 0x[0-9a-f]{8}",
                      r"beyond RAM read32 0x[0-9a-f]{8}: 0x[0-9a-f]{8}"])


@pytest.mark.parametrize("append", ["", "iret=0"])
def test_qemu_irq(qemu, append):
    res = qemu_run(qemu, "irq", append=append)
    assert_pass(res, IRQ_LINES)


def test_qemu_cpubench(qemu):
    res = qemu_run(qemu, "cpubench", append="iters=2")
    assert_pass(res, [r"checksum=0x%08x" % bench_checksum(2)])


def test_qemu_triple(qemu):
    res = qemu_run(qemu, "triple")   # -no-reboot: the triple-fault reset ends QEMU with 0
    assert res.rc == 0 and res.stdout == "about to triple fault\n", describe(res)

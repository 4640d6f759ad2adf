"""virtio-blk without Linux: the virtio-blk.elf payload (guest/payloads/virtio_blk.S) is a small
polled virtio 1.x driver. It finds the modern virtio-blk PCI function, initialises it, writes,
flushes and reads back a sector, reads sector 0, GET_ID, a read past the end (IOERR) and an
indirect-descriptor read; or, with readonly=1, checks a write is refused. With dmacode=1 it
also reads a sector by DMA over code it has already run, which must then run as the new code
(the translator drops its stale translation, as QEMU's DMA path does).

Each scenario runs under quokka with both accelerators (KVM hosts that cannot run Linux still
run this) and under QEMU (skipped when absent) with the same images and the same checks, so a
quokka failure can be told apart from a payload bug. The host then checks the image files:
the written sector holds the pattern and nothing else changed."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import EXIT_PASS, Result, accel_unusable_reason, describe, payload, run_quokka

TIMEOUT = 60
SECTOR_SIZE = 512
SECTOR0 = b"quokka virtio-blk payload sector zero".ljust(SECTOR_SIZE, b"\x5a")
OLD_FILL = b"\xa5"   # every other sector before the run, so a write is visible


def pattern(seed):
    """What virtio-blk.elf writes: byte i = (i * 7 + seed) & 0xff."""
    return bytes((i * 7 + seed) & 0xFF for i in range(SECTOR_SIZE))


def make_image(path, size, sector0=SECTOR0):
    data = bytearray(OLD_FILL * size)
    data[:len(sector0)] = sector0
    path.write_bytes(bytes(data))
    return str(path)


# -- running the payload ------------------------------------------------------------------

def run_on_quokka(accel, disks, append, tcg_backend=None):
    args = ["--accel", accel, "--console", "stdio", "--kernel", payload("virtio-blk"),
            "--append", append]
    for d in disks:
        spec = "path=" + d["path"]
        if d.get("serial"):
            spec += ",serial=" + d["serial"]
        if d.get("readonly"):
            spec += ",readonly=on"
        args += ["--disk", spec]
    return run_quokka(args, timeout=TIMEOUT, tcg_backend=tcg_backend)


def run_on_qemu(qemu, disks, append):
    # -nodefaults: no NIC/VGA, so the disks are the only PCI functions besides the chipset.
    # SeaBIOS assigns the BARs (below 4 GiB) and enables decoding, as quokka does itself.
    cmd = [qemu, "-accel", "tcg", "-m", "256M", "-display", "none", "-serial", "stdio",
           "-monitor", "none", "-no-reboot", "-nodefaults",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-kernel", payload("virtio-blk"), "-append", append]
    for i, d in enumerate(disks):
        drive = "file=%s,format=raw,if=none,id=d%d" % (d["path"], i)
        if d.get("readonly"):
            drive += ",readonly=on"
        dev = "virtio-blk-pci,drive=d%d,disable-legacy=on" % i
        if d.get("serial"):
            dev += ",serial=" + d["serial"]
        cmd += ["-drive", drive, "-device", dev]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return Result(None, (e.stdout or b"").decode(errors="replace"),
                      (e.stderr or b"").decode(errors="replace"), True)
    return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                  proc.stderr.decode(errors="replace"), False)


def runner(param):
    """run(disks, append) for a fixture param: "kvm", "tcg" (default backend), "tcg-interp"
    (QUOKKA_TCG_BACKEND=interp) or "qemu". Skips, with the reason, when unusable here."""
    if param == "qemu":
        qemu = shutil.which("qemu-system-x86_64")
        if not qemu:
            pytest.skip("qemu-system-x86_64 is not installed (payload cross-check only)")
        return lambda disks, append: run_on_qemu(qemu, disks, append)
    accel, _, backend = param.partition("-")
    reason = accel_unusable_reason(accel)
    if reason:
        pytest.skip("--accel %s: %s" % (accel, reason))
    return lambda disks, append: run_on_quokka(accel, disks, append, backend or None)


@pytest.fixture(params=["kvm", "tcg", "qemu"])
def vmm(request):
    """run(disks, append) -> Result on quokka --accel kvm / tcg, or on QEMU TCG (the
    cross-check of the payload itself). Skips, with the reason, when unusable here."""
    return runner(request.param)


@pytest.fixture(params=["kvm", "tcg", "tcg-interp", "qemu"])
def vmm_backends(request):
    """vmm, plus the translator's portable interpreter backend (its invalidation of
    translated code is its own path)."""
    return runner(request.param)


# -- checks -------------------------------------------------------------------------------

def assert_lines_in_order(res, patterns):
    """Each regex must fully match a stdout line, in order (other lines may sit between)."""
    lines = [l.rstrip("\r") for l in res.stdout.splitlines()]
    matches, pos = [], 0
    for pat in patterns:
        rx = re.compile(pat)
        for i in range(pos, len(lines)):
            m = rx.fullmatch(lines[i])
            if m:
                matches.append(m)
                pos = i + 1
                break
        else:
            pytest.fail("no line matching %r (after line %d)\n%s" % (pat, pos, describe(res)))
    return matches


def assert_pass(res, patterns):
    assert "FAIL" not in res.stdout, describe(res)
    assert res.rc == EXIT_PASS, describe(res)
    return assert_lines_in_order(res, list(patterns) + ["device reset ok", "PASS"])


def setup_lines(capacity):
    return [
        r"virtio-blk at 00:[0-9a-f]{2}\.[0-7]",
        r"common cfg: bar [0-5] at 0x[0-9a-f]{8} offset 0x[0-9a-f]{8} length 0x[0-9a-f]{8}",
        r"notify cfg: bar [0-5] at .* multiplier \d+",
        r"isr cfg: bar [0-5] at .*",
        r"device cfg: bar [0-5] at .*",
        r"device features 0x[0-9a-f]{16}",
        r"driver features 0x[0-9a-f]{16}",
        r"features ok",
        r"queue size (4|8|16)",
        r"capacity %d sectors" % capacity,
    ]


def tail_lines(sector0, serial, sector):
    lines = [r"sector 0: " + sector0[:16].hex()]
    if serial is not None:
        lines.append(r"serial: " + re.escape(serial))
    lines += [
        r"out of range read: status 1",
        r"indirect read ok|indirect descriptors not offered",
        # MSI-X stays off: completions set ISR bit 0 and INTx; the read clears both
        r"isr 0x0[13] then 0x00, pci status interrupt 1 then 0",
    ]
    return lines


def expected_after_write(before, sector, seed):
    after = bytearray(before)
    after[sector * SECTOR_SIZE:(sector + 1) * SECTOR_SIZE] = pattern(seed)
    return bytes(after)


def assert_image(path, expected, what):
    data = open(path, "rb").read()
    assert len(data) == len(expected), "%s changed size" % what
    if data != expected:
        bad = sorted({i // SECTOR_SIZE for i in range(len(data)) if data[i] != expected[i]})
        pytest.fail("%s: sectors %s differ from what was expected" % (what, bad[:16]))


# -- scenarios ----------------------------------------------------------------------------

def test_write_flush_read(vmm, tmp_path):
    """sector=3 seed=5: the pattern reaches sector 3 of the host file and nothing else
    changes; the guest reads the host's sector 0 and the serial given on the command line."""
    img = make_image(tmp_path / "disk.img", 1 << 20)
    before = open(img, "rb").read()
    res = vmm([{"path": img, "serial": "quokka-test"}], "sector=3 seed=5")
    assert_pass(res, setup_lines(2048) + [
        r"flush ok|flush not offered",
        r"write/read sector 3 ok",
    ] + tail_lines(SECTOR0, "quokka-test", 3))
    assert_image(img, expected_after_write(before, 3, 5), "the image")


def test_readonly_disk_refuses_writes(vmm, tmp_path):
    """A read-only disk offers VIRTIO_BLK_F_RO and completes a write with IOERR; the file is
    unchanged."""
    img = make_image(tmp_path / "ro.img", 1 << 20)
    before = open(img, "rb").read()
    res = vmm([{"path": img, "readonly": True}], "sector=3 seed=5 readonly=1")
    assert_pass(res, setup_lines(2048) + [
        r"device offers VIRTIO_BLK_F_RO",
        r"readonly write refused",
    ] + tail_lines(SECTOR0, None, 3))
    assert_image(img, before, "the read-only image")


def test_writable_disk_is_not_readonly(vmm, tmp_path):
    """readonly=1 against a writable disk: the payload notices the missing F_RO and fails."""
    img = make_image(tmp_path / "rw.img", 1 << 20)
    before = open(img, "rb").read()
    res = vmm([{"path": img}], "readonly=1")
    assert "FAIL: readonly=1 but the device does not offer VIRTIO_BLK_F_RO" in res.stdout, \
        describe(res)
    assert res.rc == (0x11 << 1) | 1, describe(res)
    assert_image(img, before, "the image")


def test_second_disk(vmm, tmp_path):
    """Two disks: disk=1 picks the second function (its size, sector 0, serial); only the
    second image is written."""
    first_s0 = b"first disk".ljust(SECTOR_SIZE, b"\x01")
    second_s0 = b"second disk, 2 MiB".ljust(SECTOR_SIZE, b"\x02")
    a = make_image(tmp_path / "a.img", 1 << 20, first_s0)
    b = make_image(tmp_path / "b.img", 2 << 20, second_s0)
    a_before, b_before = open(a, "rb").read(), open(b, "rb").read()
    res = vmm([{"path": a, "serial": "disk-a"}, {"path": b, "serial": "disk-b"}],
              "disk=1 sector=7 seed=9")
    m = assert_pass(res, setup_lines(4096) + [
        r"write/read sector 7 ok",
    ] + tail_lines(second_s0, "disk-b", 7))
    assert_image(a, a_before, "the first image")
    assert_image(b, expected_after_write(b_before, 7, 9), "the second image")

    # disk=0 on the same pair is the first disk, at a lower slot
    res0 = vmm([{"path": a, "serial": "disk-a"}, {"path": b, "serial": "disk-b"}],
               "disk=0 sector=1 seed=1")
    m0 = assert_pass(res0, setup_lines(2048) + tail_lines(first_s0, "disk-a", 1))
    slot = lambda match: int(match.group(0).split(":")[1].split(".")[0], 16)
    assert slot(m0[0]) < slot(m[0]), describe(res0)


def test_missing_disk(vmm, tmp_path):
    img = make_image(tmp_path / "one.img", 1 << 20)
    res = vmm([{"path": img}], "disk=1")
    assert "FAIL: virtio-blk device disk=1 (1af4:1042, counted from 0) not found" in \
        res.stdout, describe(res)
    assert res.rc == (0x11 << 1) | 1, describe(res)


# mov $2, %eax; ret, padded with int3: what dmacode=1 reads over its `mov $1, %eax; ret`
CODE_SECTOR = bytes.fromhex("b802000000c3").ljust(SECTOR_SIZE, b"\xcc")


def test_dma_over_translated_code(vmm_backends, tmp_path):
    """dmacode=1: the payload runs `mov $1, %eax; ret` 100 times from a page of its own, then
    reads sector 2 (default codesector=) of the image, `mov $2, %eax; ret`, by virtio DMA
    straight over it: every call afterwards must return 2. The same for a function that
    starts on one page and goes on into the next, with the DMA into the second page only.
    A translator that keeps its translation of the old bytes fails ("stale code after DMA");
    QEMU drops it (DMA goes through tb_invalidate_phys_range), so does quokka."""
    img = make_image(tmp_path / "code.img", 1 << 20)
    data = bytearray(open(img, "rb").read())
    data[2 * SECTOR_SIZE:3 * SECTOR_SIZE] = CODE_SECTOR
    open(img, "wb").write(bytes(data))
    before = bytes(data)
    res = vmm_backends([{"path": img, "serial": "quokka-code"}], "sector=3 seed=5 dmacode=1")
    tail = tail_lines(SECTOR0, "quokka-code", 3)
    # the DMA-over-code checks come after the indirect read, before the ISR check
    assert_pass(res, setup_lines(2048) + [r"write/read sector 3 ok"] + tail[:-1] + [
        r"dma over code ok",
        r"dma over code ok \(second page of a two-page function\)",
    ] + tail[-1:])
    # the code sector was only read: the image has just the write pattern in sector 3
    assert_image(img, expected_after_write(before, 3, 5), "the image")

"""virtio devices driven by the stock Debian kernel's own drivers, on the translator, with the
quick busybox guest: virtio-blk (data reaches the image, read-only disks, discard, several
disks, serial numbers, flushed data surviving kill -9, image locking), virtio-rng and
virtio-console as the only console."""
import base64
import hashlib
import os
import signal
import subprocess
import time

import pytest

from conftest import BUILD, QUOKKA, read_until

GUEST = os.path.join(BUILD, "guest")
BOOT_TIMEOUT = 240


@pytest.fixture(scope="module", autouse=True)
def default_guest():
    for name in ("bzImage", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"build/guest/{name} is missing: run 'make guest'")


def run64(script, console="ttyS0"):
    """Kernel command line that runs `script` in the busybox guest and powers off."""
    enc = base64.b64encode(script.encode()).decode()
    return f"console={console} quiet quokka.run64={enc}"


def boot(append, *extra, timeout=BOOT_TIMEOUT):
    proc = subprocess.run([QUOKKA, "run", "--accel", "tcg", "--mem", "512M", "--append", append,
                           *extra], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def make_image(path, size, fill=None):
    with open(path, "wb") as f:
        if fill is not None:
            f.write(fill)
        f.truncate(size)
    return str(path)


def test_virtio_blk_write_read_serial(tmp_path):
    """The guest writes 8 MiB of random data to /dev/vda with O_DIRECT-free dd + fsync and
    prints its checksum; the host finds the same bytes in the image. Sector 0 written by the
    host is what the guest reads. The serial is the one given on the command line."""
    img = make_image(tmp_path / "disk.img", 64 << 20, fill=b"quokka-sector-zero".ljust(512, b"."))
    script = ("cat /sys/block/vda/serial; echo; cat /sys/block/vda/size; "
              "head -c 18 /dev/vda; echo; "
              "dd if=/dev/urandom of=/tmp/data bs=1M count=8 2>/dev/null; "
              "dd if=/tmp/data of=/dev/vda bs=1M seek=1 conv=fsync 2>/dev/null; "
              "echo sum=$(sha256sum </tmp/data | cut -d' ' -f1)")
    rc, out, err = boot(run64(script), "--disk", f"path={img},serial=qk-serial-1")
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    assert "qk-serial-1" in out
    assert str((64 << 20) // 512) in out  # capacity in sectors
    assert "quokka-sector-zero" in out
    guest_sum = out.split("sum=")[1].split()[0]
    with open(img, "rb") as f:
        f.seek(1 << 20)
        assert hashlib.sha256(f.read(8 << 20)).hexdigest() == guest_sum
    assert rc == 0, (rc, err)


def test_virtio_blk_readonly_refuses_writes(tmp_path):
    img = make_image(tmp_path / "ro.img", 8 << 20, fill=b"R" * 4096)
    before = open(img, "rb").read()
    script = ("cat /sys/block/vda/ro; "
              "if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; "
              "then echo write=ok; else echo write=refused; fi; head -c 4 /dev/vda; echo")
    rc, out, err = boot(run64(script), "--disk", f"path={img},readonly=on")
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    lines = out.split("quokka-guest: ready")[1]
    assert "\n1\r\n" in lines or "\n1\n" in lines, lines  # /sys/block/vda/ro
    assert "write=refused" in lines
    assert "RRRR" in lines
    assert open(img, "rb").read() == before


def test_virtio_blk_discard_frees_host_blocks(tmp_path):
    img = str(tmp_path / "discard.img")
    with open(img, "wb") as f:
        f.write(os.urandom(16 << 20))
        os.fsync(f.fileno())
    before = os.stat(img).st_blocks
    script = "blkdiscard -o 4194304 -l 8388608 /dev/vda && echo discard=ok; sync"
    rc, out, err = boot(run64(script), "--disk", f"path={img}")
    assert "discard=ok" in out, out[-3000:] + err
    after = os.stat(img).st_blocks
    # 8 MiB = 16384 blocks of 512 bytes punched out of the host file.
    assert before - after >= 16000, (before, after)
    with open(img, "rb") as f:
        f.seek(4 << 20)
        assert f.read(8 << 20) == bytes(8 << 20)  # discarded range reads as zeroes


def test_two_disks_in_order(tmp_path):
    a = make_image(tmp_path / "a.img", 4 << 20, fill=b"first-disk")
    b = make_image(tmp_path / "b.img", 8 << 20, fill=b"second-disk")
    script = "head -c 10 /dev/vda; echo; head -c 11 /dev/vdb; echo; cat /sys/block/vdb/size"
    rc, out, err = boot(run64(script), "--disk", a, "--disk", f"path={b}")
    assert "first-disk" in out and "second-disk" in out, out[-3000:] + err
    assert str((8 << 20) // 512) in out


def test_flushed_data_survives_kill9_and_images_are_locked(tmp_path):
    """Data the guest synced is in the host file even when quokka dies with SIGKILL; while a
    VM has the image open writable, a second quokka cannot open it (one line, exit 2)."""
    img = make_image(tmp_path / "durable.img", 16 << 20)
    pattern = "durable-%d" % os.getpid()
    script = (f"printf '{pattern}' | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null; "
              "echo flushed; sleep 600")
    proc = subprocess.Popen([QUOKKA, "run", "--accel", "tcg", "--append", run64(script),
                             "--disk", f"path={img}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = read_until(proc.stdout.fileno(), b"flushed", BOOT_TIMEOUT)
        assert b"flushed" in out, out[-3000:]
        second = subprocess.run([QUOKKA, "run", "--accel", "tcg", "--disk", f"path={img}"],
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        msg = second.stderr.decode()
        assert second.returncode == 2, msg
        assert "lock" in msg and img in msg, msg
        assert len(msg.strip().splitlines()) == 1, msg
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open(img, "rb") as f:
        f.seek(8 * 512)
        assert f.read(len(pattern)).decode() == pattern


def test_virtio_rng(tmp_path):
    script = ("cat /sys/class/misc/hw_random/rng_current; "
              "head -c 4096 /dev/hwrng > /tmp/r; wc -c < /tmp/r; "
              "od -An -tx1 -N16 /tmp/r")
    rc, out, err = boot(run64(script), "--rng")
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    tail = out.split("quokka-guest: ready")[1]
    assert "virtio_rng" in tail
    assert "4096" in tail
    hexbytes = tail.split("4096")[1].split()[:16]
    assert len(set(hexbytes)) > 4, hexbytes  # not a constant fill


def test_virtio_console_is_the_only_console():
    """--console virtio: the guest's console is hvc0; everything (kernel messages, the init's
    output) arrives through virtio-console, none through COM1."""
    rc, out, err = boot(run64("echo via-hvc0; cat /proc/consoles", console="hvc0"),
                        "--console", "virtio")
    assert "via-hvc0" in out, out[-3000:] + err
    assert "hvc0" in out.split("via-hvc0")[1]
    assert "quokka-guest: run exit=0" in out
    assert rc == 0


def test_disk_user_errors(tmp_path):
    """Missing image, a directory, a bad option: one line naming it, exit 2."""
    cases = [
        (["--disk", str(tmp_path / "missing.img")], "missing.img"),
        (["--disk", str(tmp_path)], str(tmp_path)),
        (["--disk", "path=x.img,colour=red"], "colour"),
        (["--disk", "path=x.img,readonly=maybe"], "readonly"),
        (["--device", "no-such-thing"], "no-such-thing"),
    ]
    for args, word in cases:
        proc = subprocess.run([QUOKKA, "run", "--accel", "tcg", *args], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60)
        msg = proc.stderr.decode()
        assert proc.returncode == 2, (args, proc.returncode, msg)
        assert word in msg, (args, msg)
        assert len(msg.strip().splitlines()) == 1, (args, msg)

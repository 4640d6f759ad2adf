"""A real Debian 12 system (systemd) booted from a virtio-blk disk image on the translator:
the image (build/guest/debian.img, `make -C guest debian`) is copied per test, booted with
the busybox initramfs switching to root=/dev/vda, and checked by what the guest prints and
by reading the image back on the host (debugfs, fsck; no mounts)."""
import base64
import hashlib
import os
import subprocess

import pytest

from conftest import BUILD, QUOKKA, read_until
from debian_image import debian_image_path, fresh_image_copy

GUEST = os.path.join(BUILD, "guest")
BOOT_TIMEOUT = 600
MARKER = "quokka-guest: systemd ready"


def debian_cmd(img, append_extra="", *extra):
    return [QUOKKA, "run", "--accel", "tcg", "--mem", "1G",
            "--kernel", os.path.join(GUEST, "bzImage"),
            "--initrd", os.path.join(GUEST, "initrd.cpio.gz"),
            "--append", f"console=ttyS0 root=/dev/vda rw {append_extra}".strip(),
            "--disk", f"path={img}", *extra]


def run_in_debian(img, script, *extra):
    enc = base64.b64encode(script.encode()).decode()
    proc = subprocess.run(debian_cmd(img, f"quokka.run64={enc}", *extra),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=BOOT_TIMEOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def test_debian_boots_writes_64mib_and_stays_clean(tmp_path):
    """systemd reaches the marker; the guest writes 64 MiB of random data to a file, syncs,
    prints its checksum and powers off; the host finds the same bytes in the image's ext4
    (debugfs dump) and fsck finds the filesystem clean."""
    debian_image_path()
    img = fresh_image_copy(tmp_path)
    script = ("set -e; dd if=/dev/urandom of=/root/blob bs=1M count=64 status=none; sync; "
              "echo blob-sha256=$(sha256sum /root/blob | cut -d' ' -f1); "
              "systemctl is-system-running || true")
    rc, out, err = run_in_debian(img, script, "--rng")
    assert MARKER in out, out[-4000:] + err
    assert "quokka-guest: run exit=0" in out, out[-4000:] + err
    assert rc == 0, (rc, err[-2000:])
    guest_sum = out.split("blob-sha256=")[1].split()[0]
    dumped = tmp_path / "blob"
    subprocess.run(["debugfs", "-R", f"dump /root/blob {dumped}", img], check=True,
                   capture_output=True, timeout=120)
    with open(dumped, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == guest_sum
    fsck = subprocess.run(["fsck.ext4", "-fn", img], capture_output=True, timeout=300)
    assert fsck.returncode == 0, fsck.stdout.decode() + fsck.stderr.decode()


def test_debian_login_prompt(tmp_path):
    """Without a command the system comes up to a login prompt on the serial console."""
    debian_image_path()
    img = fresh_image_copy(tmp_path)
    proc = subprocess.Popen(debian_cmd(img), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out = read_until(proc.stdout.fileno(), b"login:", BOOT_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    text = out.decode(errors="replace")
    assert MARKER in text, text[-4000:]
    assert "login:" in text, text[-4000:]

"""Helpers for end-to-end tests that boot the Debian test image (not a test module).

build/guest/debian.img is a raw ext4 filesystem (the whole disk: the guest mounts /dev/vda)
with Debian and systemd, built by `make -C guest BUILD=$PWD/build/guest debian` (as root;
see guest/README.md). Boot it with the default kernel and initramfs and DEBIAN_APPEND; the
guest prints READY_MARKER on /dev/console once systemd is up, then runs the command given
with run64_param() and prints "quokka-guest: run exit=<status>" before powering off.

Tests must not modify the shared image: boot a fresh_image_copy(tmp_path) instead.
"""
import base64
import os
import subprocess

import pytest

from conftest import BUILD

GUEST = os.path.join(BUILD, "guest")
DEBIAN_IMAGE = os.path.join(GUEST, "debian.img")

# Kernel command line for the image: the initramfs mounts root= and switches to systemd.
DEBIAN_APPEND = "console=ttyS0 root=/dev/vda rw"
READY_MARKER = "quokka-guest: systemd ready"
RUN_EXIT_PREFIX = "quokka-guest: run exit="


def debian_image_path():
    """Path of the built image; fails the test with how to build it when it is missing."""
    if not os.path.isfile(DEBIAN_IMAGE):
        pytest.fail(f"{DEBIAN_IMAGE} is missing: build it (as root) with "
                    f"'make -C guest BUILD={GUEST} debian' (see guest/README.md)")
    return DEBIAN_IMAGE


def fresh_image_copy(tmp_path, name="debian.img"):
    """A private, writable copy of the image in tmp_path (a reflink where the filesystem
    can, else a sparse copy: ~400 MB of data in a 2 GiB file). Returns its path."""
    src = debian_image_path()
    dst = os.path.join(str(tmp_path), name)
    proc = subprocess.run(["cp", "--reflink=auto", "--sparse=always", src, dst],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"cannot copy {src} to {dst}: {proc.stderr.strip()}")
    os.chmod(dst, 0o644)
    return dst


def run64_param(command):
    """quokka.run64=BASE64 for a shell command (any quotes, newlines...): the image runs it
    with sh -c after READY_MARKER, prints RUN_EXIT_PREFIX + status, then powers off."""
    return "quokka.run64=" + base64.b64encode(command.encode()).decode()

#!/usr/bin/env python3
"""Extract the uncompressed vmlinux ELF from an x86 bzImage.

usage: extract-vmlinux.py BZIMAGE OUT

The x86 boot protocol setup header (at 0x1f1 of the bzImage) gives:
  setup_sects    (0x1f1, u8)  : the protected-mode code starts at (setup_sects+1)*512
  payload_offset (0x248, u32) : the compressed kernel, relative to that start
  payload_length (0x24c, u32)
The compression is detected by magic and undone with the host tool. Apart from gzip,
the kernel build appends the uncompressed size (le32) to the payload; it is stripped
and checked. The result must be an ELF with the Xen PHYS32_ENTRY note (the PVH entry).
"""
import shutil
import struct
import subprocess
import sys

# magic -> (name, decompress command reading stdin, writing stdout, size appended)
FORMATS = [
    (b"\x1f\x8b", "gzip", ["gzip", "-dc"], False),
    (b"\xfd7zXZ\x00", "xz", ["xz", "-dc"], True),
    (b"\x28\xb5\x2f\xfd", "zstd", ["zstd", "-dcq"], True),
    (b"\x02\x21\x4c\x18", "lz4 (legacy)", ["lz4", "-dc"], True),
    (b"\x5d\x00\x00", "lzma", ["xz", "--format=lzma", "-dc"], True),
    (b"BZh", "bzip2", ["bzip2", "-dc"], True),
    (b"\x89LZO", "lzo", ["lzop", "-dc"], True),
]

XEN_ELFNOTE_PHYS32_ENTRY = 18


def die(msg):
    sys.stderr.write("extract-vmlinux: error: %s\n" % msg)
    sys.exit(1)


def has_pvh_note(path):
    """True if readelf -n shows a Xen note of type PHYS32_ENTRY (18)."""
    if not shutil.which("readelf"):
        die("readelf not found (install binutils)")
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True)
    if out.returncode != 0:
        return False
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == "Xen":
            # binutils prints either a name (NT_..._PHYS32_ENTRY) or "Unknown note type: (0x00000012)"
            if "PHYS32" in line or "(0x%08x)" % XEN_ELFNOTE_PHYS32_ENTRY in line:
                return True
    return False


def main():
    if len(sys.argv) != 3:
        die("usage: extract-vmlinux.py BZIMAGE OUT")
    src, dst = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        die("%s: not a bzImage (no HdrS setup header)" % src)
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < 0x208:
        die("%s: boot protocol %#x has no payload_offset (needs >= 2.08)" % (src, version))
    setup_sects = data[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", data, 0x248)
    start = pm_start + off
    payload = data[start:start + length]
    if len(payload) != length or length < 16:
        die("%s: payload (offset %#x, length %#x) lies outside the file" % (src, start, length))

    for magic, name, cmd, size_appended in FORMATS:
        if payload.startswith(magic):
            break
    else:
        die("%s: unknown payload compression, magic %s" % (src, payload[:8].hex()))
    if not shutil.which(cmd[0]):
        die("payload is %s but %s is not installed" % (name, cmd[0]))
    expect = None
    if size_appended:
        expect = struct.unpack("<I", payload[-4:])[0]
        payload = payload[:-4]
    r = subprocess.run(cmd, input=payload, capture_output=True)
    elf = r.stdout
    if r.returncode != 0 and not elf:
        die("%s failed: %s" % (" ".join(cmd), r.stderr.decode(errors="replace").strip()))
    if expect is not None and len(elf) != expect:
        die("%s payload decompressed to %d bytes, the appended size says %d" % (name, len(elf), expect))
    if not elf.startswith(b"\x7fELF"):
        die("decompressed %s payload is not an ELF (starts %s)" % (name, elf[:8].hex()))
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(elf)
    if not has_pvh_note(tmp):
        die("%s: vmlinux has no Xen PHYS32_ENTRY ELF note: this kernel cannot boot via PVH "
            "(needs CONFIG_PVH=y); kept as %s" % (src, tmp))
    shutil.move(tmp, dst)
    print("extract-vmlinux: %s payload, %d -> %d bytes, PVH note present" % (name, length, len(elf)))


if __name__ == "__main__":
    main()

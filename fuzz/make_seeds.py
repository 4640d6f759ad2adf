#!/usr/bin/env python3
"""Write the seed corpus under fuzz/corpus/ (run once; the files are kept in the repo).
Needs the built payloads (make payloads) and the default guest's bzImage (make guest)."""
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
PAYLOADS = os.path.join(ROOT, "build", "payloads")
GUEST = os.path.join(ROOT, "build", "guest")


def put(target, name, data):
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def elf64(segments, notes=b"", entry=0x100000):
    """ELF64 EXEC with PT_LOAD (paddr, bytes, memsz) segments and one PT_NOTE."""
    phnum = len(segments) + (1 if notes else 0)
    off = 64 + 56 * phnum
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    phdrs, body = b"", b""
    for paddr, data, memsz in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, 7, off + len(body), paddr, paddr, len(data),
                             memsz, 0x1000)
        body += data
    if notes:
        phdrs += struct.pack("<IIQQQQQQ", 4, 4, off + len(body), 0, 0, len(notes), len(notes), 4)
        body += notes
    return ehdr + phdrs + body


def note(name, ntype, desc):
    name += b"\0"
    pad = lambda b: b + bytes((4 - len(b) % 4) % 4)
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def text_of(elf):
    """The code bytes of a payload (objcopy -O binary -j .text)."""
    out = subprocess.run(["objcopy", "-O", "binary", "-j", ".text", elf, "/dev/stdout"],
                         capture_output=True, check=True).stdout
    return out[:4096]


def main():
    code = bytes([0xb0, 0x10, 0xe6, 0xf4, 0xf4])
    # fuzz_boot: [loader][initrd/64][file]
    for i, name in enumerate(["hello", "long64", "virtio-blk"]):
        data = open(os.path.join(PAYLOADS, name + ".elf"), "rb").read()
        put("fuzz_boot", "payload-%s" % name, bytes([0, 1]) + data + b"initrd" * 11)
        put("fuzz_boot", "direct-%s" % name, bytes([2 if name != "long64" else 4, 0]) + data)
    bz = os.path.join(GUEST, "bzImage")
    if os.path.exists(bz):
        put("fuzz_boot", "bzimage-head", bytes([1, 0]) + open(bz, "rb").read()[:48 * 1024])
    pvh = elf64([(0x100000, code, 0x2000)], note(b"Xen", 18, struct.pack("<I", 0x100000)))
    put("fuzz_boot", "pvh-note", bytes([3, 2]) + pvh + bytes(128))
    put("fuzz_boot", "elf64-two-segments",
        bytes([4, 0]) + elf64([(0x100000, code, 0x1000), (0x101000, code, 0x3000)]))
    # fuzz_x86: [mode][code]
    put("fuzz_x86", "long64-text", bytes([1]) + text_of(os.path.join(PAYLOADS, "long64.elf")))
    put("fuzz_x86", "hello-text", bytes([0]) + text_of(os.path.join(PAYLOADS, "hello.elf")))
    put("fuzz_x86", "modes-text", bytes([2]) + text_of(os.path.join(PAYLOADS, "modes.elf")))
    put("fuzz_x86", "smc-text", bytes([3]) + text_of(os.path.join(PAYLOADS, "smc.elf")))
    # fuzz_virtqueue: [size/features][RAM from 0]: a virtio-blk write of one sector and a
    # read through an indirect table.
    ram = bytearray(0x6000)
    def desc(table, i, addr, length, flags, nxt):
        struct.pack_into("<QIHH", ram, table + 16 * i, addr, length, flags, nxt)
    struct.pack_into("<IIQ", ram, 0x3000, 1, 0, 2)             # OUT header, sector 2
    desc(0, 0, 0x3000, 16, 1, 1)
    desc(0, 1, 0x4000, 512, 1, 2)
    desc(0, 2, 0x3100, 1, 2, 0)                                # status
    struct.pack_into("<IIQ", ram, 0x3200, 0, 0, 1)             # IN header
    desc(0, 3, 0x5000, 48, 4, 0)                               # indirect table at 0x5000
    desc(0x5000, 0, 0x3200, 16, 1, 1)
    desc(0x5000, 1, 0x4200, 512, 3, 2)
    desc(0x5000, 2, 0x3300, 1, 2, 0)
    struct.pack_into("<HHHH", ram, 0x1000, 0, 2, 0, 3)         # avail: idx 2, heads 0, 3
    put("fuzz_virtqueue", "blk-write-and-indirect-read", bytes([0x23]) + bytes(ram))
    put("fuzz_virtqueue", "event-idx", bytes([0x13]) + bytes(ram))
    # fuzz_net: [vnet header][frame]: a TCP/IPv4 frame with partial checksum and TSO.
    payload = bytes(range(256)) * 12
    tcp = struct.pack(">HHIIBBHHH", 1234, 80, 1, 0, 0x50, 0x18, 65535, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 1, 0x4000, 64, 6,
                     0, bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]))
    eth = bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56] * 2) + b"\x08\x00"
    frame = eth + ip + tcp + payload
    hdr = struct.pack("<BBHHHHH", 1, 1, 54, 1448, 34, 16, 0)   # NEEDS_CSUM, GSO TCPv4
    put("fuzz_net", "tso-tcp4", hdr + frame)
    put("fuzz_net", "csum-only", struct.pack("<BBHHHHH", 1, 0, 0, 0, 34, 16, 0) + frame)
    # fuzz_vsock: packets: REQUEST to port 1234, RW with data, SHUTDOWN, RST.
    def pkt(op, length=0, src_port=1024, dst_port=1234, flags=0):
        return struct.pack("<QQIIIHHIII", 3, 2, src_port, dst_port, length, 1, op, flags,
                           262144, 0)
    put("fuzz_vsock", "request-rw-shutdown",
        pkt(1) + pkt(5, 5) + b"hello" + pkt(6) + pkt(7) + pkt(4, flags=3) + pkt(3))
    put("fuzz_vsock", "malformed-length", pkt(5, 70000) + b"x" * 16)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write the seed corpus under fuzz/corpus/ (run once; the files are kept in the repo).
Needs the built payloads (make payloads) and the default guest's bzImage (make guest).
With target names as arguments (fuzz_api, fuzz_snapshot), writes only their seeds."""
import json
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
PAYLOADS = os.path.join(ROOT, "build", "payloads")
GUEST = os.path.join(ROOT, "build", "guest")


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
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

    api_seeds()
    snapshot_seeds()


# fuzz_api: NUL-separated records [endpoint selector][body] (fuzz/fuzz_api.c's table).
API = {"machine-config": 0, "boot-source": 1, "drive": 2, "net": 3, "vsock": 4, "logger": 5,
       "metrics": 6, "snapshot-load": 7, "snapshot-create": 8, "actions": 9, "patch-vm": 10,
       "get-machine-config": 12, "get-info": 13, "config-file": 14, "free-form": 15}
MACHINE = {"vcpu_count": 2, "mem_size_mib": 256, "smt": False, "track_dirty_pages": False}
BOOT = {"kernel_image_path": "/vmlinux", "initrd_path": "/initrd.img",
        "boot_args": "console=ttyS0 reboot=k panic=1 pci=off"}
DRIVE = {"drive_id": "rootfs", "path_on_host": "/rootfs.ext4", "is_root_device": True,
         "is_read_only": False}
NET = {"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"}
NET_USER = {"iface_id": "eth0", "hostfwd": ["tcp::2222-:22", "udp:127.0.0.1:5353-:53"]}
VSOCK = {"guest_cid": 3, "uds_path": "/tmp/v.sock"}
LOGGER = {"log_path": "/tmp/fc.log", "level": "Debug", "show_level": True}
METRICS = {"metrics_path": "/tmp/fc.metrics"}
LOAD = {"snapshot_path": "/snap.state", "mem_backend": {"backend_path": "/snap.mem",
        "backend_type": "File"}, "resume_vm": True,
        "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1"}],
        "vsock_override": {"uds_path": "/tmp/v2.sock"}}


def records(*recs):
    out = []
    for sel, body in recs:
        text = body if isinstance(body, str) else json.dumps(body)
        out.append(bytes([API[sel]]) + text.encode())
    return b"\0".join(out)


def api_seeds():
    put("fuzz_api", "configure-and-start", records(
        ("logger", LOGGER), ("metrics", METRICS), ("machine-config", MACHINE),
        ("boot-source", BOOT), ("drive", DRIVE), ("net", NET), ("vsock", VSOCK),
        ("actions", {"action_type": "InstanceStart"}), ("get-machine-config", ""),
        ("get-info", "")))
    put("fuzz_api", "snapshot-load", records(("snapshot-load", LOAD)))
    put("fuzz_api", "snapshot-load-file-user-net", records(("snapshot-load", {
        "snapshot_path": "/snap.state", "mem_file_path": "/snap.mem",
        "network_overrides": [NET_USER], "enable_diff_snapshots": False})))
    put("fuzz_api", "snapshot-create-pause", records(
        ("patch-vm", {"state": "Paused"}), ("snapshot-create", {
            "snapshot_type": "Full", "snapshot_path": "/s", "mem_file_path": "/m"}),
        ("actions", {"action_type": "FlushMetrics"})))
    put("fuzz_api", "user-net", records(("net", dict(NET_USER, user_mode=True))))
    put("fuzz_api", "config-file", records(("config-file", {
        "boot-source": BOOT, "machine-config": MACHINE, "drives": [DRIVE],
        "network-interfaces": [NET], "vsock": VSOCK, "logger": LOGGER, "metrics": METRICS})))
    put("fuzz_api", "free-form", records(
        ("free-form", "\x01/drives/scratch\n" + json.dumps(dict(DRIVE, drive_id="scratch"))),
        ("free-form", "\x04/version\n")))


def snapshot_seeds():
    """fuzz_snapshot: state files written by the project's writer, through the target itself
    (QUOKKA_FUZZ_WRITE_SEEDS; needs make fuzz-build)."""
    binary = os.path.join(ROOT, "build-fuzz", "fuzz", "fuzz_snapshot")
    if os.path.exists(binary):
        subprocess.run([binary], check=True, env=dict(
            os.environ, QUOKKA_FUZZ_WRITE_SEEDS=os.path.join(OUT, "fuzz_snapshot")))


if __name__ == "__main__":
    only = {"fuzz_api": api_seeds, "fuzz_snapshot": snapshot_seeds}
    if len(sys.argv) > 1:
        for name in sys.argv[1:]:
            only[name]()
        sys.exit(0)
    sys.exit(main())

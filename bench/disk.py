#!/usr/bin/env python3
"""Disk benchmarks with the Debian image (build/guest/debian.img, `make -C guest debian`):

1. Boot time: wall time from process start to `quokka-guest: systemd ready` (the image's
   systemd unit), quokka --accel tcg vs qemu-system-x86_64 -accel tcg with the same kernel,
   initramfs, image and command line (both on virtio-blk-pci); medians and the ratio.
2. Guest disk throughput with fio inside the guest on a second, raw virtio disk:
   sequential write and read MB/s (1 MiB blocks, O_DIRECT, queue depth 4) and 4 KiB random
   read IOPS (O_DIRECT, queue depth 16), quokka tcg vs QEMU tcg, ratios (target: >= 1.0x).

The root image is never written: each VMM boots a sparse copy of it (both write the same
copies: systemd writes a little at boot)."""
import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import QEMU, QUOKKA, ROOT, ratio

GUEST = os.path.join(ROOT, "build", "guest")
READY = b"quokka-guest: systemd ready"
FIO_BEGIN, FIO_END = "FIO-JSON-BEGIN", "FIO-JSON-END"


def vm_cmd(engine, root_img, data_img, append, mem):
    kernel = os.path.join(GUEST, "bzImage")
    initrd = os.path.join(GUEST, "initrd.cpio.gz")
    if engine == "quokka":
        cmd = [QUOKKA, "run", "--accel", "tcg", "--mem", mem, "--kernel", kernel, "--initrd",
               initrd, "--append", append, "--disk", f"path={root_img}"]
        if data_img:
            cmd += ["--disk", f"path={data_img}"]
        return cmd
    cmd = [QEMU, "-accel", "tcg", "-m", mem, "-nographic", "-nodefaults", "-serial", "stdio",
           "-no-reboot", "-kernel", kernel, "-initrd", initrd, "-append", append,
           "-drive", f"file={root_img},format=raw,if=none,id=d0",
           "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]
    if data_img:
        cmd += ["-drive", f"file={data_img},format=raw,if=none,id=d1",
                "-device", "virtio-blk-pci,drive=d1,disable-legacy=on"]
    return cmd


def run_vm(cmd, until=None, timeout=900):
    """Run a VM; with `until`, return the seconds until it printed that and kill it; else
    wait for it to end and return its output."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    buf = b""
    try:
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                if until:
                    raise RuntimeError(f"{os.path.basename(cmd[0])} ended before "
                                       f"{until.decode()}: ...{buf[-1500:].decode(errors='replace')}")
                return buf.decode(errors="replace")
            buf += chunk
            if until and until in buf[-8192:]:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise RuntimeError("timed out")
    finally:
        proc.kill()
        proc.wait()


def fresh_copy(src, dst):
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    return dst


FIO_JOBS = [
    ("seq write MB/s", "write", "--rw=write --bs=1M --iodepth=4 --size=128M", "write", "bw"),
    ("seq read MB/s", "read", "--rw=read --bs=1M --iodepth=4 --size=128M", "read", "bw"),
    ("4k rand read IOPS", "randread",
     "--rw=randread --bs=4k --iodepth=16 --size=128M --time_based --runtime=10", "read",
     "iops"),
]


def fio_script():
    lines = []
    for _, name, args, _, _ in FIO_JOBS:
        lines.append(f"echo {FIO_BEGIN}; fio --name={name} --filename=/dev/vdb --direct=1 "
                     f"--ioengine=libaio {args} --output-format=json; echo {FIO_END}")
    return "; ".join(lines)


def parse_fio(output):
    results = {}
    parts = output.split(FIO_BEGIN)[1:]
    for (label, _, _, side, metric), part in zip(FIO_JOBS, parts):
        text = part.split(FIO_END)[0]
        text = text[text.index("{"):text.rindex("}") + 1]
        job = json.loads(text)["jobs"][0][side]
        # fio's bw is KiB/s
        results[label] = job["bw"] / 1024 if metric == "bw" else job["iops"]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mem", default="1G")
    args = parser.parse_args()
    image = os.path.join(GUEST, "debian.img")
    if not all(os.path.exists(p) for p in (QUOKKA, image)):
        sys.exit("bench: build/quokka or build/guest/debian.img is missing "
                 "(make all && make -C guest debian)")
    engines = ["quokka"] + (["qemu"] if QEMU else [])
    with tempfile.TemporaryDirectory(prefix="quokka-disk-bench-") as tmp:
        boot_append = "console=ttyS0 root=/dev/vda rw quiet quokka.poweroff"
        medians = {}
        for engine in engines:
            times = []
            for i in range(args.runs):
                root = fresh_copy(image, os.path.join(tmp, f"root-{engine}-{i}.img"))
                times.append(run_vm(vm_cmd(engine, root, None, boot_append, args.mem),
                                    until=READY))
                os.unlink(root)
            medians[engine] = statistics.median(times)
            print(f"{engine:7s} tcg boot to systemd marker: median {medians[engine]:6.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
        if "qemu" in medians:
            print(f"quokka / qemu boot time: {ratio(medians['quokka'], medians['qemu'])} "
                  "(lower is better)")

        script = base64.b64encode(fio_script().encode()).decode()
        io_append = f"console=ttyS0 root=/dev/vda rw quiet quokka.run64={script}"
        figures = {}
        for engine in engines:
            root = fresh_copy(image, os.path.join(tmp, f"root-{engine}-fio.img"))
            data = os.path.join(tmp, f"data-{engine}.img")
            with open(data, "wb") as f:
                f.write(os.urandom(1 << 20) * 160)  # 160 MiB of data, allocated
            out = run_vm(vm_cmd(engine, root, data, io_append, args.mem))
            try:
                figures[engine] = parse_fio(out)
            except (ValueError, KeyError, IndexError) as e:
                sys.exit(f"bench: no fio results from {engine} ({e}): ...{out[-2000:]}")
            for label, value in figures[engine].items():
                print(f"{engine:7s} {label:18s} {value:10.1f}")
        if "qemu" in figures:
            for label, _, _, _, _ in FIO_JOBS:
                print(f"quokka / qemu {label}: "
                      f"{ratio(figures['quokka'][label], figures['qemu'][label])} "
                      "(higher is better, target 1.0x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

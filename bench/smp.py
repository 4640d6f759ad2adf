#!/usr/bin/env python3
"""SMP benchmark: does the translator run vCPUs in parallel on the host's cores?

In a 2-vCPU guest (quokka --accel tcg --cpus 2 vs qemu-system-x86_64 -accel tcg,thread=multi
-smp 2, one run), one CPU-bound program from bench/programs (gcc -O2 -static) runs once
alone and then as two copies at the same time. Each copy times its own work inside the
guest. Speed-up = 2 x solo time / the slower parallel copy's time (2.0 = perfect scaling on
2 host cores; target >= 1.8). Also the boot time to `quokka-guest: ready` with 2 vCPUs.
Checksums of every copy must agree with QEMU's."""
import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time

from boot import time_to_ready
from common import QEMU, QUOKKA
from programs import GUEST, PROGRAMS, build


def guest_script(name, scale):
    p = f"/tmp/p/{name} {scale}"
    return "\n".join([
        "mkdir -p /tmp/p", "tar -xf /dev/vda -C /tmp/p || exit 9",
        f"{p} > /tmp/solo || exit 8",
        f"{p} > /tmp/a & {p} > /tmp/b & wait",
        "echo SOLO $(cat /tmp/solo)", "echo PAR $(cat /tmp/a)", "echo PAR $(cat /tmp/b)",
    ])


def vm_cmd(engine, cpus, disk, append):
    kernel = os.path.join(GUEST, "bzImage")
    initrd = os.path.join(GUEST, "initrd.cpio.gz")
    if engine == "qemu":
        cmd = [QEMU, "-accel", "tcg,thread=multi", "-smp", str(cpus), "-m", "256M",
               "-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot", "-kernel", kernel,
               "-initrd", initrd, "-append", append]
        if disk:
            cmd += ["-drive", f"file={disk},format=raw,if=none,id=d0,readonly=on",
                    "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]
        return cmd
    cmd = [QUOKKA, "run", "--accel", "tcg", "--cpus", str(cpus), "--mem", "256M", "--kernel",
           kernel, "--initrd", initrd, "--append", append]
    return cmd + (["--disk", f"path={disk},readonly=on"] if disk else [])


def run_pair(engine, disk, name, scale, timeout):
    script = base64.b64encode(guest_script(name, scale).encode()).decode()
    append = f"console=ttyS0 quiet quokka.nonet quokka.run64={script}"
    proc = subprocess.run(vm_cmd(engine, 2, disk, append), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = proc.stdout.decode(errors="replace")
    solo, par = None, []
    for line in out.splitlines():
        f = line.strip().split()
        if len(f) == 5 and f[0] in ("SOLO", "PAR") and f[1] == "RESULT":
            if f[0] == "SOLO":
                solo = (float(f[3]), f[4])
            else:
                par.append((float(f[3]), f[4]))
    if solo is None or len(par) != 2:
        sys.exit(f"bench: {engine}: missing results; output ends:\n{out[-1500:]}")
    return solo, par


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--program", default="sha256", choices=sorted(PROGRAMS))
    parser.add_argument("--scale", type=int, default=2, help="multiply the work size")
    parser.add_argument("--boot-runs", type=int, default=1)
    parser.add_argument("--no-qemu", action="store_true")
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    if not os.path.exists(QUOKKA) or not os.path.exists(os.path.join(GUEST, "bzImage")):
        sys.exit("bench: build/quokka or the default guest is missing (make all guest)")
    engines = ["quokka"] + (["qemu"] if QEMU and not args.no_qemu else [])
    scale = PROGRAMS[args.program] * args.scale
    results = {}
    with tempfile.TemporaryDirectory(prefix="quokka-smp-") as tmp:
        disk = build(tmp, [args.program])
        for engine in engines:
            start = time.monotonic()
            solo, par = run_pair(engine, disk, args.program, scale, args.timeout)
            wall = time.monotonic() - start
            speedup = 2 * solo[0] / max(p[0] for p in par)
            results[engine] = (solo, par, speedup)
            print(f"{engine:7s} solo {solo[0]:.3f} s  parallel {par[0][0]:.3f} / "
                  f"{par[1][0]:.3f} s  speed-up {speedup:.2f}x  (wall {wall:.1f} s)", flush=True)
    sums = {c for r in results.values() for c in [r[0][1], r[1][0][1], r[1][1][1]]}
    if len(sums) != 1:
        print(f"WARNING: checksums differ: {sorted(sums)}")
    boot = {}
    append = "console=ttyS0"
    for engine in engines:
        times = [time_to_ready(vm_cmd(engine, 2, None, append)) for _ in range(args.boot_runs)]
        boot[engine] = statistics.median(times)
        print(f"{engine:7s} boot with 2 vCPUs: {boot[engine]:.2f} s", flush=True)
    q = results["quokka"]
    print(f"quokka tcg --cpus 2: speed-up {q[2]:.2f}x on 2 copies (target >= 1.8x)")
    if "qemu" in results:
        r = results["qemu"]
        print(f"qemu tcg thread=multi -smp 2: speed-up {r[2]:.2f}x")
        qwall, rwall = max(p[0] for p in q[1]), max(p[0] for p in r[1])
        print(f"parallel pair time quokka {qwall:.3f} s vs qemu {rwall:.3f} s: "
              f"ratio {rwall / qwall:.2f}x (qemu / quokka, >= 1.0 is as fast or faster)")
        print(f"boot with 2 vCPUs: quokka {boot['quokka']:.2f} s vs qemu {boot['qemu']:.2f} s: "
              f"ratio {boot['qemu'] / boot['quokka']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

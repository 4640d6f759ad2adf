#!/usr/bin/env python3
"""Real-program benchmark: small C programs (bench/programs/*.c: LZ-style compression,
libc qsort, SHA-256, a switch-dispatch bytecode interpreter, scalar double arithmetic,
string parsing) compiled on the host with gcc -O2 -static, put on a raw virtio disk (a tar
archive) and run in the default busybox guest, quokka --accel tcg vs qemu-system-x86_64
-accel tcg in one run. Each program times its own work inside the guest (CLOCK_MONOTONIC,
after its set-up) and prints "RESULT name seconds checksum"; the checksums must agree.

Prints per-program times (best of --runs), the speed ratio QEMU time / quokka time (higher
is better, target >= 2.0x), the geometric mean, and which program is worst. With --interp,
quokka's interpreter backend (QUOKKA_TCG_BACKEND=interp) is measured too."""
import argparse
import base64
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time

from common import QEMU, QUOKKA, ROOT

GUEST = os.path.join(ROOT, "build", "guest")
SRC = os.path.join(ROOT, "bench", "programs")
# name -> scale argument (work units; chosen so QEMU TCG takes a few tenths of a second)
PROGRAMS = {"lz": 8, "qsort": 2, "sha256": 8, "bytecode": 1, "fp": 4, "strparse": 3}


def build(outdir, names):
    for name in names:
        out = os.path.join(outdir, name)
        cmd = ["gcc", "-O2", "-static", "-o", out, os.path.join(SRC, name + ".c"), "-lm"]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            sys.exit(f"bench: gcc failed for {name}.c:\n{proc.stdout.decode(errors='replace')}")
    disk = os.path.join(outdir, "programs.tar")
    with tarfile.open(disk, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            tar.add(os.path.join(outdir, name), arcname=name)
    size = os.path.getsize(disk)
    with open(disk, "ab") as f:  # whole sectors
        f.write(b"\0" * (-size % 4096))
    return disk


def guest_script(names, scale_mult):
    lines = ["mkdir -p /tmp/p", "tar -xf /dev/vda -C /tmp/p || exit 9"]
    for name in names:
        lines.append(f"/tmp/p/{name} {PROGRAMS[name] * scale_mult} || exit 8")
    return "\n".join(lines)


def vm_cmd(engine, disk, append):
    kernel = os.path.join(GUEST, "bzImage")
    initrd = os.path.join(GUEST, "initrd.cpio.gz")
    if engine == "qemu":
        return [QEMU, "-accel", "tcg", "-m", "256M", "-nographic", "-nodefaults",
                "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
                "-append", append, "-drive", f"file={disk},format=raw,if=none,id=d0,readonly=on",
                "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]
    return [QUOKKA, "run", "--accel", "tcg", "--mem", "256M", "--kernel", kernel,
            "--initrd", initrd, "--append", append, "--disk", f"path={disk},readonly=on"]


def run_once(engine, disk, names, scale_mult, timeout):
    script = base64.b64encode(guest_script(names, scale_mult).encode()).decode()
    append = f"console=ttyS0 quiet quokka.nonet quokka.run64={script}"
    env = dict(os.environ)
    if engine == "interp":
        env["QUOKKA_TCG_BACKEND"] = "interp"
    start = time.monotonic()
    proc = subprocess.run(vm_cmd(engine, disk, append), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          timeout=timeout)
    wall = time.monotonic() - start
    out = proc.stdout.decode(errors="replace")
    results = {}
    if engine != "qemu" and os.environ.get("QUOKKA_TCG_STATS"):
        print("\n".join(l for l in out.splitlines() if l.startswith("quokka-tcg-stats")))
    for line in out.splitlines():
        f = line.strip().split()
        if len(f) == 4 and f[0] == "RESULT":
            results[f[1]] = (float(f[2]), f[3])
    missing = [n for n in names if n not in results]
    if missing:
        sys.exit(f"bench: {engine}: no result for {', '.join(missing)}; output ends:\n"
                 f"{out[-1500:]}")
    return results, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="runs per engine (best kept)")
    parser.add_argument("--only", help="comma-separated program names")
    parser.add_argument("--scale", type=int, default=1, help="multiply every work size")
    parser.add_argument("--interp", action="store_true",
                        help="also measure quokka's interpreter backend")
    parser.add_argument("--no-qemu", action="store_true", help="quokka only")
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    names = list(PROGRAMS)
    if args.only:
        names = [n for n in args.only.split(",") if n]
        bad = [n for n in names if n not in PROGRAMS]
        if bad:
            print(f"bench: unknown program {bad[0]} (known: {', '.join(PROGRAMS)})",
                  file=sys.stderr)
            return 2
    if not os.path.exists(QUOKKA) or not os.path.exists(os.path.join(GUEST, "bzImage")):
        sys.exit("bench: build/quokka or the default guest is missing (make all guest)")
    engines = ["quokka"] + (["interp"] if args.interp else [])
    if QEMU and not args.no_qemu:
        engines.append("qemu")
    elif not args.no_qemu:
        print("qemu-system-x86_64 not found: quokka only")
    with tempfile.TemporaryDirectory(prefix="quokka-programs-") as tmp:
        disk = build(tmp, names)
        best = {}
        for engine in engines:
            for _ in range(args.runs):
                res, wall = run_once(engine, disk, names, args.scale, args.timeout)
                print(f"{engine:7s} run: wall {wall:6.2f} s  " +
                      "  ".join(f"{n} {res[n][0]:.3f}" for n in names), flush=True)
                for n in names:
                    if n not in best.setdefault(engine, {}) or res[n][0] < best[engine][n][0]:
                        best[engine][n] = res[n]
    if "qemu" in best:
        for n in names:
            for e in engines:
                if best[e][n][1] != best["qemu"][n][1]:
                    print(f"WARNING: {n}: {e} checksum {best[e][n][1]} != qemu "
                          f"{best['qemu'][n][1]}")
    print(f"{'program':10s} " + " ".join(f"{e + ' s':>10s}" for e in engines))
    for n in names:
        print(f"{n:10s} " + " ".join(f"{best[e][n][0]:10.3f}" for e in engines))
    if "qemu" not in best:
        return 0
    for e in [e for e in engines if e != "qemu"]:
        ratios = {n: best["qemu"][n][0] / max(best[e][n][0], 1e-9) for n in names}
        gmean = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
        worst = min(ratios, key=ratios.get)
        label = "quokka tcg" if e == "quokka" else "quokka interp"
        print(f"{label} speed vs qemu tcg (qemu s / quokka s): " +
              "  ".join(f"{n} {r:.2f}x" for n, r in ratios.items()))
        print(f"{label}: geometric mean {gmean:.2f}x (target 2.0x), worst {worst} "
              f"{ratios[worst]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

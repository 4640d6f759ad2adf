#!/usr/bin/env python3
"""Boot-time benchmark: wall time from process start to the guest printing
`quokka-guest: ready`, for quokka --accel tcg and qemu-system-x86_64 -accel tcg with the
same kernel, initramfs and command line; 3 runs each, medians and the ratio.
Target over the coming work: quokka at half of QEMU's time."""
import argparse
import os
import statistics
import subprocess
import sys
import time

from common import QEMU, QUOKKA, ROOT, ratio

GUEST = os.path.join(ROOT, "build", "guest")
READY = b"quokka-guest: ready"


def time_to_ready(cmd, timeout=600, env=None):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        buf = b""
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                raise RuntimeError(f"{os.path.basename(cmd[0])} ended before the ready line")
            buf = (buf + chunk)[-4096:]
            if READY in buf:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise RuntimeError("timed out")
    finally:
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mem", default="256M")
    args = parser.parse_args()
    kernel = os.path.join(GUEST, "bzImage")
    initrd = os.path.join(GUEST, "initrd.cpio.gz")
    if not all(os.path.exists(p) for p in (QUOKKA, kernel, initrd)):
        sys.exit("bench: build/quokka or the default guest is missing (make all guest)")
    append = "console=ttyS0"
    quokka = [QUOKKA, "run", "--accel", "tcg", "--mem", args.mem, "--kernel", kernel,
              "--initrd", initrd, "--append", append]
    engines = [("quokka tcg", quokka, None),
               ("quokka interp", quokka, dict(os.environ, QUOKKA_TCG_BACKEND="interp"))]
    if QEMU:
        engines.append(("qemu tcg", [QEMU, "-accel", "tcg", "-m", args.mem, "-nographic",
                                     "-nodefaults", "-serial", "stdio", "-no-reboot",
                                     "-kernel", kernel, "-initrd", initrd, "-append", append],
                        None))
    medians = {}
    for name, cmd, env in engines:
        times = [time_to_ready(cmd, env=env) for _ in range(args.runs)]
        medians[name] = statistics.median(times)
        print(f"{name:13s} start -> ready: median {medians[name]:6.2f} s  "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    if "qemu tcg" in medians:
        print(f"quokka tcg / qemu tcg boot time: "
              f"{ratio(medians['quokka tcg'], medians['qemu tcg'])} (target 0.5x)")
        print(f"quokka interp / qemu tcg boot time: "
              f"{ratio(medians['quokka interp'], medians['qemu tcg'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

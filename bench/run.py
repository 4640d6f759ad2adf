#!/usr/bin/env python3
"""quokka benchmarks, side by side with QEMU measured in the same run.

Printed, never asserted: the figures go into issue notes and README. Each benchmark runs the
same payload (built by `make payloads`) on quokka and, where it can run here, on QEMU.

  1. exec to first guest instruction: a payload that exits at once, median of 20 runs
  2. peak RSS: quokka's peak RSS minus the guest memory the guest touched; QEMU's peak RSS
  3. cost per port-I/O exit: a payload doing N OUTs minus one doing none, divided by N
"""
import argparse
import os
import sys

from common import (QEMU, QUOKKA, median_time, payload, peak_rss_kib, qemu_cmd, quokka_cmd,
                    ratio, usable)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accel", default="kvm", help="quokka and QEMU accelerator (kvm/tcg)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--io-count", type=int, default=100000)
    args = parser.parse_args()

    for name in ("exit-now.elf", "io.elf"):
        if not os.path.exists(payload(name)):
            sys.exit(f"bench: {payload(name)} is missing (run 'make payloads')")
    if not os.path.exists(QUOKKA):
        sys.exit("bench: build/quokka is missing (run 'make')")

    ok, why = usable(quokka_cmd(args.accel, payload("exit-now.elf")), 1)
    if not ok:
        print(f"quokka --accel {args.accel} cannot run here ({why}); nothing to measure")
        return 0
    qemu_ok, qemu_why = (False, "qemu-system-x86_64 not installed")
    if QEMU:
        qemu_ok, qemu_why = usable(qemu_cmd(args.accel, payload("exit-now.elf")), 1)
    if not qemu_ok:
        print(f"QEMU -accel {args.accel} cannot run the payloads here ({qemu_why}); "
              "printing quokka's figures only")

    print(f"== exec to first guest instruction (exit-now.elf, median of {args.runs})")
    q = median_time(quokka_cmd(args.accel, payload("exit-now.elf")), args.runs, 1)
    r = median_time(qemu_cmd(args.accel, payload("exit-now.elf")), args.runs, 1) if qemu_ok else 0
    print(f"quokka {q * 1000:8.2f} ms   qemu {r * 1000:8.2f} ms   quokka/qemu {ratio(q, r)}")

    print("== peak RSS (exit-now.elf, 256M guest)")
    env = dict(os.environ, QUOKKA_STATS="1")
    # QUOKKA_STATS reads /proc and calls mincore() at exit, which the sandbox refuses.
    rss, stderr = peak_rss_kib(quokka_cmd(args.accel, payload("exit-now.elf")) +
                               ["--seccomp", "off"], env=env)
    touched = 0
    for line in stderr.splitlines():
        if line.startswith("quokka-stats:"):
            fields = dict(f.split("=") for f in line.split()[1:])
            touched = int(fields["guest_touched_kb"])
    qemu_rss = peak_rss_kib(qemu_cmd(args.accel, payload("exit-now.elf")))[0] if qemu_ok else 0
    print(f"quokka peak {rss} KiB, guest touched {touched} KiB, quokka's own {rss - touched} KiB"
          f"   qemu peak {qemu_rss} KiB   quokka/qemu (peak) {ratio(rss, qemu_rss)}")

    n = args.io_count
    print(f"== cost per port-I/O exit (io.elf, {n} OUTs minus 0, median of 5)")
    runs = 5
    q_n = median_time(quokka_cmd(args.accel, payload("io.elf"), f"count={n}"), runs, 33)
    q_0 = median_time(quokka_cmd(args.accel, payload("io.elf"), "count=0"), runs, 33)
    q_per = max(q_n - q_0, 0) / n
    r_per = 0
    if qemu_ok:
        r_n = median_time(qemu_cmd(args.accel, payload("io.elf"), f"count={n}"), runs, 33)
        r_0 = median_time(qemu_cmd(args.accel, payload("io.elf"), "count=0"), runs, 33)
        r_per = max(r_n - r_0, 0) / n
    print(f"quokka {q_per * 1e6:8.2f} us/exit   qemu {r_per * 1e6:8.2f} us/exit   "
          f"quokka/qemu {ratio(q_per, r_per)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

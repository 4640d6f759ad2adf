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
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUOKKA = os.path.join(ROOT, "build", "quokka")
PAYLOADS = os.path.join(ROOT, "build", "payloads")
QEMU = shutil.which("qemu-system-x86_64")


def payload(name):
    return os.path.join(PAYLOADS, name)


def quokka_cmd(accel, kernel, append=None):
    cmd = [QUOKKA, "run", "--accel", accel, "--kernel", kernel, "--console", "none",
           "--mem", "256M"]
    if append is not None:
        cmd += ["--append", append]
    return cmd


def qemu_cmd(accel, kernel, append=None):
    cmd = [QEMU, "-accel", accel, "-m", "256M", "-display", "none", "-nodefaults",
           "-no-user-config", "-serial", "null",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", kernel]
    if append is not None:
        cmd += ["-append", append]
    return cmd


def timed(cmd, env=None, timeout=120):
    """Run cmd; return (seconds, exit status, stderr text)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    elapsed = time.perf_counter() - start
    return elapsed, proc.returncode, stderr.decode(errors="replace")


def peak_rss_kib(cmd, env=None):
    """Peak RSS of one run, measured by GNU time (a small process that forks and execs the
    command, so the figure is the command's own, not inherited from Python)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kib=%M", *cmd],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    stderr = proc.stderr.decode(errors="replace")
    peak = 0
    for line in stderr.splitlines():
        if line.startswith("peak_rss_kib="):
            peak = int(line.split("=")[1])
    return peak, stderr


def median_time(cmd, runs, expect_status, env=None):
    times = []
    for _ in range(runs):
        elapsed, status, stderr = timed(cmd, env=env)
        if status != expect_status:
            first = stderr.strip().splitlines()[:1]
            raise RuntimeError(f"exit status {status}, expected {expect_status}: "
                               f"{first[0] if first else ''}")
        times.append(elapsed)
    return statistics.median(times)


def usable(cmd, expect_status):
    try:
        _, status, stderr = timed(cmd, timeout=30)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    if status == expect_status:
        return True, ""
    first = stderr.strip().splitlines()[:1]
    return False, f"exit {status}: {first[0] if first else 'no message'}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


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
    rss, stderr = peak_rss_kib(quokka_cmd(args.accel, payload("exit-now.elf")), env=env)
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

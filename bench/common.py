"""Shared helpers for quokka's benchmarks: paths, command lines for quokka and QEMU, timing."""
import os
import shutil
import statistics
import subprocess
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



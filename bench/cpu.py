#!/usr/bin/env python3
"""CPU-bound benchmark: the same payload (cpubench.elf, FNV-1a over a 1 MiB buffer `iters`
times) on quokka's translator, on quokka's KVM accelerator, and on QEMU's TCG, in one run.

Guest instructions per second = (instructions of N passes) / (time of N passes), where the
time of N passes is the run with iters=N minus the run with iters=0 (start-up and buffer
generation), medians of 3. The instruction count is the translator's exact count of the
same deterministic code (QUOKKA_STATS), so it is the same for every engine."""
import argparse
import os
import statistics
import sys

from common import QEMU, QUOKKA, payload, qemu_cmd, quokka_cmd, ratio, timed


def median_run(cmd, runs, env=None):
    times = []
    for _ in range(runs):
        elapsed, status, stderr = timed(cmd, env=env, timeout=600)
        if status != 33:
            raise RuntimeError(f"{cmd[0]}: exit {status}: {stderr.strip()[:200]}")
        times.append(elapsed)
    return statistics.median(times)


def guest_insns(iters):
    env = dict(os.environ, QUOKKA_STATS="1")
    # QUOKKA_STATS reads /proc and calls mincore() at exit, which the sandbox refuses.
    cmd = quokka_cmd("tcg", payload("cpubench.elf"), f"iters={iters}") + ["--seccomp", "off"]
    _, status, stderr = timed(cmd, env=env, timeout=600)
    for line in stderr.splitlines():
        if line.startswith("quokka-stats:"):
            return int(dict(f.split("=") for f in line.split()[1:])["guest_insns"])
    raise RuntimeError("quokka did not report guest_insns")


def kvm_usable():
    """exit-now.elf's status (1) is also quokka's own "could not start" status: a usable KVM
    also needs /dev/kvm to open and quokka to say nothing about it."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm missing or not accessible"
    try:
        _, status, stderr = timed(quokka_cmd("kvm", payload("exit-now.elf")), timeout=30)
    except Exception as exc:  # a timeout: KVM unusable for a benchmark
        return False, str(exc)
    if status != 1 or "quokka:" in stderr:
        first = stderr.strip().splitlines()[:1]
        return False, f"exit {status}: {first[0] if first else 'no message'}"
    return True, ""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=200,
                        help="passes for quokka tcg (the native backend)")
    parser.add_argument("--interp-iters", type=int, default=20,
                        help="passes for quokka's interpreter backend")
    parser.add_argument("--qemu-iters", type=int, default=500,
                        help="passes for QEMU TCG (a JIT: needs more to be measurable)")
    parser.add_argument("--kvm-iters", type=int, default=1,
                        help="passes for KVM (software KVM hosts are very slow)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(QUOKKA) or not os.path.exists(payload("cpubench.elf")):
        sys.exit("bench: build/quokka or build/payloads/cpubench.elf missing (make payloads)")

    per_pass = (guest_insns(2) - guest_insns(1))
    print(f"cpubench: {per_pass} guest instructions per pass")
    results = {}
    tcg = lambda it: quokka_cmd("tcg", payload("cpubench.elf"), f"iters={it}")
    engines = [("quokka tcg", tcg, args.iters),
               ("quokka interp", tcg, args.interp_iters)]  # QUOKKA_TCG_BACKEND=interp
    kvm_ok, kvm_why = kvm_usable()
    if kvm_ok:
        engines.append(("quokka kvm",
                        lambda it: quokka_cmd("kvm", payload("cpubench.elf"), f"iters={it}"),
                        args.kvm_iters))
    else:
        print(f"quokka kvm: not usable here ({kvm_why})")
    if QEMU:
        engines.append(("qemu tcg", lambda it: qemu_cmd("tcg", payload("cpubench.elf"),
                                                         f"iters={it}"), args.qemu_iters))
    for name, cmd, iters in engines:
        env = dict(os.environ, QUOKKA_TCG_BACKEND="interp") if name == "quokka interp" else None
        base = median_run(cmd(0), args.runs, env)
        full = median_run(cmd(iters), args.runs, env)
        seconds = max(full - base, 1e-9)
        mips = per_pass * iters / seconds / 1e6
        results[name] = mips
        print(f"{name:13s} {iters:4d} passes {seconds:8.3f} s  {mips:10.1f} M guest insns/s "
              f"(start-up {base * 1000:.0f} ms)")
    q = results.get("quokka tcg")
    for other in ("quokka interp", "quokka kvm", "qemu tcg"):
        if other in results:
            print(f"quokka tcg / {other}: {ratio(q, results[other])} (speed, higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

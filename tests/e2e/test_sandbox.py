"""The seccomp sandbox (src/vm/sandbox.c) is on by default: every thread of a running quokka
is filtered, and `--seccomp off` turns it off. The rest of the e2e suite runs with it on, so
every boot there is also a test that the allow-list is complete; tests/unit/test_sandbox.c
shows that forbidden calls (execve, fork, opening for writing, executable mappings, ptrace,
packet sockets, KVM_CREATE_VM) end the process with SIGSYS and are named on stderr."""
import glob
import os
import subprocess
import time

from conftest import EXIT_PASS, QUOKKA, payload


def seccomp_modes(pid):
    """{tid: (Seccomp mode, number of filters)} for every thread of pid."""
    modes = {}
    for status in glob.glob("/proc/%d/task/*/status" % pid):
        fields = {}
        try:
            with open(status) as f:
                for line in f:
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
        except OSError:
            continue
        modes[status.split("/")[4]] = (int(fields.get("Seccomp", "-1")),
                                       int(fields.get("Seccomp_filters", "0")))
    return modes


def threads_while_running(accel, *extra):
    """Start the echo payload (it waits for input), read every thread's seccomp state once
    the guest has printed its prompt, then let it finish."""
    proc = subprocess.Popen([QUOKKA, "run", "--accel", accel, "--kernel", payload("echo"),
                             *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert b"echo ready" in line, line
        time.sleep(0.2)
        modes = seccomp_modes(proc.pid)
        proc.stdin.write(b"q")
        proc.stdin.close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, modes, proc.stderr.read().decode(errors="replace")


def test_every_thread_is_filtered(accel):
    rc, modes, err = threads_while_running(accel)
    assert rc == EXIT_PASS, err
    assert len(modes) >= 2, modes  # the I/O thread and a vCPU at least
    assert all(mode == 2 and filters >= 1 for mode, filters in modes.values()), modes


def test_seccomp_off(accel):
    rc, modes, err = threads_while_running(accel, "--seccomp", "off")
    assert rc == EXIT_PASS, err
    assert modes and all(mode == 0 for mode, _ in modes.values()), modes

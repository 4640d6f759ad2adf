"""The seccomp sandbox (src/vm/sandbox.c) is on by default: every thread of a running quokka
installs its own filter (one per thread kind: vCPU, I/O, block worker, network, API,
gdbstub), and `--seccomp off` turns it off. The rest of the e2e suite runs with it on, so
every boot there is also a test that the allow-lists are complete; tests/unit/test_sandbox.c
shows that forbidden calls (execve, fork, opening for writing, executable mappings, ptrace,
packet sockets, KVM_CREATE_VM) end the process with SIGSYS and are named on stderr, per kind.

Here, QUOKKA_SANDBOX_PROBE=KIND:CALL (test-only, from the environment: no guest reaches it)
makes the first thread of KIND try CALL right after installing its filter: the same call
is refused on one kind of thread and allowed on another, in a real quokka."""
import glob
import os
import subprocess
import time

import pytest

from conftest import EXIT_PASS, QUOKKA, payload


def seccomp_modes(pid):
    """{tid: (Seccomp mode, number of filters, thread name)} for every thread of pid."""
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
                                       int(fields.get("Seccomp_filters", "0")),
                                       fields.get("Name", "?"))
    return modes


def threads_while_running(accel, *extra, env=None):
    """Start the echo payload (it waits for input), read every thread's seccomp state once
    the guest has printed its prompt, then let it finish."""
    proc = subprocess.Popen([QUOKKA, "run", "--accel", accel, "--kernel", payload("echo"),
                             *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
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


def test_every_thread_is_filtered(accel, tmp_path):
    """Every kind of thread that exists without the API: the I/O (main) thread, two vCPUs,
    the block thread pool's workers and the user network's thread; each has exactly one
    filter, its own (none inherited from the thread that created it)."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    env = dict(os.environ, QUOKKA_BLOCK_AIO="threads")
    rc, modes, err = threads_while_running(accel, "--cpus", "2", "--disk", str(disk),
                                           "--net", "user", env=env)
    assert rc == EXIT_PASS, err
    names = sorted(name for _, _, name in modes.values())
    assert names.count("vcpu0") == 1 and names.count("vcpu1") == 1, names
    assert names.count("blk-aio") >= 1 and names.count("net-slirp") == 1, names
    assert names.count("quokka") == 1, names
    assert all(mode == 2 and filters == 1 for mode, filters, _ in modes.values()), modes


def test_seccomp_off(accel):
    rc, modes, err = threads_while_running(accel, "--seccomp", "off")
    assert rc == EXIT_PASS, err
    assert modes and all(mode == 0 for mode, _, _ in modes.values()), modes


def run_probe(accel, probe, *extra):
    env = dict(os.environ, QUOKKA_SANDBOX_PROBE=probe, QUOKKA_BLOCK_AIO="threads")
    return subprocess.run([QUOKKA, "run", "--accel", accel, "--kernel", payload("hello"),
                           *extra], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, env=env)


# (probe, the kind's name in messages, allowed there?)
PROBES = [
    ("vcpu:socket", "vCPU", False),   # a vCPU thread makes no sockets...
    ("io:socket", "I/O", True),       # ...the I/O thread does (vsock's Unix sockets)
    ("vcpu:tcgets", "vCPU", False),   # ioctls by request number: no terminal ioctls...
    ("io:tcgets", "I/O", True),       # ...but the I/O thread restores the terminal
    ("io:openat", "I/O", "EACCES"),   # the I/O thread opens nothing (refused, not trapped:
                                      # glibc's free() may try /proc and copes)...
    ("net:openat", "network", True),  # ...slirp's thread reads /etc/resolv.conf
    ("block:socket", "block", False),
    ("gdb:socket", "gdbstub", False),  # --gdb keeps the sandbox: the stub makes no sockets
]


@pytest.mark.parametrize("probe,kind,allowed", PROBES, ids=[p[0] for p in PROBES])
def test_call_refused_on_one_thread_kind_allowed_on_another(accel, tmp_path, probe, kind,
                                                             allowed):
    extra = []
    if probe.startswith("net:"):
        extra = ["--net", "user"]
    if probe.startswith("block:"):
        disk = tmp_path / "disk.img"
        disk.write_bytes(bytes(1 << 20))
        extra = ["--disk", str(disk)]
    if probe.startswith("gdb:"):
        extra = ["--gdb", "unix:%s" % (tmp_path / "gdb.sock")]
    call = probe.split(":")[1]
    if allowed == "EACCES" and os.environ.get("QUOKKA_SANITIZED") == "1":
        pytest.skip("sanitizer builds allow read-only opens everywhere (LeakSanitizer)")
    proc = run_probe(accel, probe, *extra)
    if allowed == "EACCES":
        assert proc.returncode == EXIT_PASS, proc.stderr
        assert "sandbox probe: %s on the %s thread failed" % (call, kind) in proc.stderr
    elif allowed:
        assert proc.returncode == EXIT_PASS, proc.stderr
        assert "sandbox probe: %s on the %s thread was allowed" % (call, kind) in proc.stderr
    else:
        assert proc.returncode == -31, (proc.returncode, proc.stderr)  # SIGSYS
        nr = {"socket": 41, "openat": 257, "tcgets": 16}[call]
        name = "ioctl" if call == "tcgets" else call
        assert ("sandbox: system call %d (%s) is not allowed on the %s thread"
                % (nr, name, kind)) in proc.stderr, proc.stderr


def test_api_driven_vm_is_sandboxed(tmp_path):
    """A VM started through the control API: the API thread has its filter from its first
    connection (before it reads a request), and once InstanceStart has booted the guest,
    the I/O and vCPU threads have theirs; a snapshot still works (paused, then created: the
    API thread's list allows writing the files)."""
    from test_api import curl
    sock = str(tmp_path / "fc.sock")
    proc = subprocess.Popen([QUOKKA, "--api-sock", sock], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock):
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.01)
        assert curl(sock, "GET", "/")[0] == 200
        before = {name: (mode, n) for mode, n, name in seccomp_modes(proc.pid).values()}
        assert before.get("api") == (2, 1), before
        assert before.get("quokka") == (0, 0), before  # set-up not done: no filter yet
        assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": payload("echo")})[0] == 204
        assert curl(sock, "PUT", "/machine-config",
                    {"vcpu_count": 1, "mem_size_mib": 64, "accelerator": "tcg"})[0] == 204
        assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
        assert b"echo ready" in proc.stdout.readline()
        modes = seccomp_modes(proc.pid)
        assert sorted(name for _, _, name in modes.values()) == ["api", "quokka", "vcpu0"]
        assert all(mode == 2 and n == 1 for mode, n, _ in modes.values()), modes
        assert curl(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
        snap, mem = str(tmp_path / "vm.snap"), str(tmp_path / "vm.mem")
        status, body = curl(sock, "PUT", "/snapshot/create",
                            {"snapshot_path": snap, "mem_file_path": mem})
        assert status == 204, body
        assert os.path.getsize(snap) > 0 and os.path.getsize(mem) == 64 << 20
        assert curl(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
        proc.stdin.write(b"q")
        proc.stdin.close()
        assert proc.wait(timeout=30) == EXIT_PASS, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

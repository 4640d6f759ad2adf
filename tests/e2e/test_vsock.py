"""virtio-vsock with Firecracker's hybrid host side, driven by the stock Debian kernel's
vmw_vsock_virtio_transport on the translator, with the busybox guest and its static
/usr/bin/vsock-test (guest/tools/vsock-test.c):

- host to guest: a host process connects to the Unix socket, sends "CONNECT 5000\\n", reads
  "OK <hostport>\\n", then 1 MiB each way (checksums on both sides); four such connections at
  once;
- guest to host: the guest connects to CID 2 port 6000 and reaches <path>_6000; four at once,
  1 MiB each way;
- refusals: the host asks for a port nobody listens on in the guest (its connection is closed,
  no OK), the guest connects to a host port with no socket (ECONNRESET); the VM carries on;
- a stale socket file from an earlier run is replaced, and the socket is removed at exit;
- user errors: one line, exit 2.
"""
import base64
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD, QUOKKA

GUEST = os.path.join(BUILD, "guest")
BOOT_TIMEOUT = 240
MIB = 1 << 20
LOCAL_PORT_FIRST = 1 << 30
FNV_OFFSET = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3


@pytest.fixture(scope="module", autouse=True)
def default_guest():
    for name in ("bzImage", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"{GUEST}/{name} is missing: run 'make guest'")


def fnv1a(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xffffffffffffffff
    return h


def pattern(seed, n):
    """vsock-test's data: xorshift32 words from seed (0 -> 1), little-endian."""
    x = seed & 0xffffffff or 1
    out = bytearray()
    for _ in range((n + 3) // 4):
        x ^= (x << 13) & 0xffffffff
        x ^= x >> 17
        x ^= (x << 5) & 0xffffffff
        out += x.to_bytes(4, "little")
    return bytes(out[:n])


class VM:
    """quokka on the translator running `script` in the busybox guest, with a vsock at path;
    its console output is gathered by a thread so the test can wait for lines."""

    def __init__(self, script, path, cid=3):
        enc = base64.b64encode(script.encode()).decode()
        self.proc = subprocess.Popen(
            [QUOKKA, "run", "--accel", "tcg", "--mem", "512M",
             "--append", f"console=ttyS0 quiet quokka.run64={enc}",
             "--vsock", f"cid={cid},path={path}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return
            with self.lock:
                self.out += chunk

    def text(self):
        with self.lock:
            return self.out.decode(errors="replace")

    def wait_for(self, needle, timeout=BOOT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no '{needle}' from the guest:\n{self.text()[-3000:]}")

    def finish(self, timeout=120):
        """Wait for the guest to power off; returns (rc, console text, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        return self.proc.returncode, self.text(), self.proc.stderr.read().decode(errors="replace")


def host_connect(path, port, timeout=60):
    """Connect to the VM's socket and ask for guest port `port`; returns (socket, line)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            break
        line += c
    return s, line


def recv_all(s):
    data = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def exchange_from_host(path, port, payload):
    """One host-initiated connection: send payload, half-close, return (OK line, reply)."""
    s, line = host_connect(path, port)
    try:
        assert line.startswith(b"OK "), line
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return line, recv_all(s)
    finally:
        s.close()


def guest_recv_lines(text):
    """fnv values the guest printed for what it received, as ints."""
    return [int(l.split("fnv=")[1].split()[0], 16)
            for l in text.splitlines() if "vsock-test: recv port=" in l]


def check_host_to_guest(tmp_path, conns):
    path = str(tmp_path / "v.sock")
    vm = VM(f"vsock-test listen 5000 {conns} {MIB}", path)
    try:
        vm.wait_for("vsock-test: listening 5000")
        payloads = [os.urandom(MIB) for _ in range(conns)]
        results = [None] * conns

        def one(i):
            results[i] = exchange_from_host(path, 5000, payloads[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
    finally:
        rc, out, err = vm.finish()
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    assert rc == 0, (rc, err)
    ports = set()
    for i in range(conns):
        assert results[i] is not None, f"connection {i} did not finish\n{out[-3000:]}"
        line, reply = results[i]
        hostport = int(line.split()[1])
        assert hostport >= LOCAL_PORT_FIRST, line
        ports.add(hostport)
        sent_fnv = fnv1a(payloads[i])
        assert len(reply) == MIB
        assert reply == pattern(sent_fnv & 0xffffffff, MIB)
    assert len(ports) == conns  # each host end got its own port
    guest = guest_recv_lines(out)
    assert sorted(guest) == sorted(fnv1a(p) for p in payloads), out[-3000:]
    assert out.count(f"bytes={MIB} fnv=") == conns
    assert not os.path.exists(path)  # quokka removed its socket


def test_host_to_guest(tmp_path):
    """CONNECT 5000 -> OK <hostport>; 1 MiB to the guest's listener, 1 MiB back."""
    check_host_to_guest(tmp_path, 1)


def test_host_to_guest_parallel(tmp_path):
    check_host_to_guest(tmp_path, 4)


@pytest.mark.parametrize("conns", [1, 4])
def test_guest_to_host(tmp_path, conns):
    """Guest connections to CID 2 port 6000 (one, then four at once) reach <path>_6000; 1 MiB
    each way."""
    path = str(tmp_path / "v.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + "_6000")
    listener.listen(8)
    listener.settimeout(BOOT_TIMEOUT)
    received = []
    replies = {}

    def serve():
        try:
            for _ in range(conns):
                c, _ = listener.accept()
                c.settimeout(120)
                t = threading.Thread(target=handle, args=(c,), daemon=True)
                t.start()
        except OSError:
            pass

    def handle(c):
        data = recv_all(c)
        received.append(data)
        reply = os.urandom(MIB)
        replies[fnv1a(reply)] = data
        c.sendall(reply)
        c.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    seeds = list(range(1, conns + 1))
    script = (f"for i in {' '.join(map(str, seeds))}; do vsock-test connect 2 6000 {MIB} $i & "
              "done; wait")
    vm = VM(script, path)
    rc, out, err = vm.finish(timeout=BOOT_TIMEOUT)
    listener.close()
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    assert rc == 0, (rc, err)
    lines = [l for l in out.splitlines() if "vsock-test: conn seed=" in l]
    assert len(lines) == conns, out[-3000:]
    # What the host received is each guest connection's pattern...
    assert sorted(received) == sorted(pattern(i, MIB) for i in seeds)
    # ...and what each guest connection received is the reply the host sent it.
    for l in lines:
        seed = int(l.split("seed=")[1].split()[0])
        assert f"sent={MIB} recv bytes={MIB} " in l, l
        fnv = int(l.split("fnv=")[1].split()[0], 16)
        assert replies.get(fnv) == pattern(seed, MIB), l


def test_refused_both_ways_and_stale_socket(tmp_path):
    """The host asks for a guest port nobody listens on: its connection closes without OK.
    The guest connects to a host port without a socket: connection reset. The VM carries on
    (a connection afterwards works). A stale socket file at the path is replaced."""
    path = str(tmp_path / "v.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # bound, never listening, closed: what a killed VM leaves
    stale.close()
    script = ("vsock-test connect 2 7778 10 1; echo connect-rc=$?; "
              "vsock-test listen 5000 1 16")
    vm = VM(script, path)
    try:
        vm.wait_for("vsock-test: listening 5000")
        s, line = host_connect(path, 7777)
        assert line == b"", line  # refused: closed, nothing said
        assert s.recv(1) == b""
        s.close()
        line, reply = exchange_from_host(path, 5000, b"still alive")
        assert line.startswith(b"OK ")
        assert reply == pattern(fnv1a(b"still alive") & 0xffffffff, 16)
    finally:
        rc, out, err = vm.finish()
    assert "vsock-test: connect 2:7778: Connection reset by peer" in out, out[-3000:]
    assert "connect-rc=1" in out
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    assert rc == 0, (rc, err)


def quokka_error(*args):
    proc = subprocess.run([QUOKKA, "run", "--accel", "tcg", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("quokka: "), err
    return lines[0]


def test_user_errors(tmp_path):
    path = str(tmp_path / "v.sock")
    assert "cid=N is required" in quokka_error("--vsock", f"path={path}")
    assert "cid=2 is reserved" in quokka_error("--vsock", f"cid=2,path={path}")
    assert "must be a number" in quokka_error("--vsock", f"cid=x,path={path}")
    assert "path=SOCK is required" in quokka_error("--vsock", "cid=3")
    msg = quokka_error("--vsock", f"cid=3,path={tmp_path}/missing/v.sock")
    assert f"directory '{tmp_path}/missing' does not exist" in msg
    regular = tmp_path / "file"
    regular.write_text("keep me")
    msg = quokka_error("--vsock", f"cid=3,path={regular}")
    assert "exists and is not a socket" in msg
    assert regular.read_text() == "keep me"
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(path)
    busy.listen(1)
    try:
        assert "in use by another process" in quokka_error("--vsock", f"cid=3,path={path}")
    finally:
        busy.close()
    assert "unknown" in quokka_error("--vsock", f"cid=3,path={path},port=5")

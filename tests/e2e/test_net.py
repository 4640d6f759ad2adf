"""virtio-net driven by the stock Debian kernel's virtio_net driver, with the busybox guest on
the translator (its /init brings eth0 up with DHCP unless quokka.nonet is given):

- user-mode networking (libslirp): the guest fetches a few MiB over HTTP from a server this
  test runs on the host's 127.0.0.1 (reached as 10.0.2.2), checksums match; 50 parallel
  fetches all complete;
- a hostfwd port: the host connects to 127.0.0.1:PORT and talks to `nc -l` in the guest,
  data checked both ways;
- a tap device inside a network namespace this test creates (by name, and as an fd passed
  in): ping, a download and an upload with checksums; a multiqueue tap with two queue pairs,
  both carrying traffic; skipped, with the reason, where
  namespaces or taps cannot be made here; the namespace is always removed;
- user errors: one line on stderr, exit status 2.

Nothing here leaves the machine: the host side is 127.0.0.1 or the test's own namespace."""
import base64
import functools
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD, QUOKKA

GUEST = os.path.join(BUILD, "guest")
BOOT_TIMEOUT = 300
DHCP_LINE = "quokka-guest: eth0 10.0.2.15/24 via 10.0.2.2"


@pytest.fixture(scope="module", autouse=True)
def default_guest():
    for name in ("bzImage", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"{GUEST}/{name} is missing: run 'make guest'")


def run64(script, extra=""):
    """Kernel command line that runs `script` in the busybox guest and powers off."""
    enc = base64.b64encode(script.encode()).decode()
    return f"console=ttyS0 quiet {extra} quokka.run64={enc}".replace("  ", " ")


def quokka_cmd(append, *extra):
    return [QUOKKA, "run", "--accel", "tcg", "--mem", "512M",
            "--kernel", os.path.join(GUEST, "bzImage"),
            "--initrd", os.path.join(GUEST, "initrd.cpio.gz"), "--append", append, *extra]


class VM:
    """quokka in the background, its console collected by a thread so the test can wait for
    what the guest prints while it runs."""

    def __init__(self, cmd, pass_fds=()):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=pass_fds)
        self.out = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
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
                return True
            if self.proc.poll() is not None:
                self.reader.join(5)
                return needle in self.text()
            time.sleep(0.1)
        return False

    def finish(self, timeout=BOOT_TIMEOUT):
        """Wait for the VM to end (killed after timeout); returns (rc, stdout, stderr)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        err = self.proc.stderr.read().decode(errors="replace")
        return self.proc.returncode, self.text(), err


def boot(append, *extra, timeout=BOOT_TIMEOUT):
    return VM(quokka_cmd(append, *extra)).finish(timeout)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def value(out, key):
    """The word after `key=` in the guest's output."""
    assert f"{key}=" in out, out[-3000:]
    return out.split(f"{key}=")[1].split()[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_root(tmp_path):
    """An HTTP server on the host's 127.0.0.1 (an ephemeral port) serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128  # 50 connections arrive at once
        daemon_threads = True

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], root
    finally:
        server.shutdown()
        server.server_close()


# --- user-mode networking -------------------------------------------------------------------

def test_user_dhcp_http_download_and_parallel_fetches(http_root):
    """DHCP gives 10.0.2.15 with 10.0.2.2 as the router and 10.0.2.3 as DNS; 4 MiB fetched
    from the host's loopback through 10.0.2.2 has the right checksum; 50 fetches in parallel
    all complete with the right bytes."""
    port, root = http_root
    blob, small = os.urandom(4 << 20), os.urandom(48 << 10)
    (root / "blob").write_bytes(blob)
    (root / "small").write_bytes(small)
    url = f"http://10.0.2.2:{port}"
    script = (f"cat /etc/resolv.conf; ip route; "
              f"wget -q -O /tmp/blob {url}/blob; "
              "echo blob=$(sha256sum </tmp/blob | cut -d' ' -f1); "
              "i=0; while [ $i -lt 50 ]; do "
              f"wget -q -O /tmp/s$i {url}/small & i=$((i + 1)); done; wait; "
              "ok=0; for f in /tmp/s*; do "
              f"[ \"$(sha256sum <$f | cut -d' ' -f1)\" = {sha(small)} ] && ok=$((ok + 1)); "
              "done; echo parallel-ok=$ok")
    rc, out, err = boot(run64(script), "--net", "user")
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    assert DHCP_LINE in out, out[-3000:]
    assert "nameserver 10.0.2.3" in out
    assert "default via 10.0.2.2" in out
    assert value(out, "blob") == sha(blob)
    assert value(out, "parallel-ok") == "50", out[-3000:]
    assert rc == 0, (rc, err)


def exchange(port, send, want_len, deadline):
    """Connect to 127.0.0.1:port, send `send`, read want_len bytes back; retried until the
    deadline (slirp accepts at once and drops the connection if nothing listens in the
    guest yet). Returns the bytes read."""
    got = b""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(send)
                got = b""
                while len(got) < want_len:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            if len(got) == want_len:
                return got
        except OSError:
            pass
        time.sleep(0.5)
    return got


def test_user_hostfwd_both_directions():
    """hostfwd=tcp:127.0.0.1:PORT-:5555: the host reaches `nc -l -p 5555` in the guest; 200 KB
    go in, 300 KB come back, both checked."""
    port = free_port()
    script = ("head -c 300000 /dev/urandom >/tmp/out; "
              "echo out=$(sha256sum </tmp/out | cut -d' ' -f1); echo listening; "
              "nc -l -p 5555 </tmp/out >/tmp/in; "
              "echo in=$(sha256sum </tmp/in | cut -d' ' -f1) bytes=$(wc -c </tmp/in)")
    vm = VM(quokka_cmd(run64(script), "--net", f"user,hostfwd=tcp:127.0.0.1:{port}-:5555"))
    try:
        assert vm.wait_for("listening"), vm.text()[-3000:]
        sent = os.urandom(200000)
        got = exchange(port, sent, 300000, time.monotonic() + 120)
    finally:
        rc, out, err = vm.finish()
    assert len(got) == 300000, (len(got), out[-3000:] + err)
    assert sha(got) == value(out, "out")
    assert value(out, "in") == sha(sent), out[-3000:]
    assert rc == 0, (rc, err)


# --- tap in a network namespace ---------------------------------------------------------------

NS_ADDR, GUEST_ADDR, TAP = "192.168.77.1", "192.168.77.2", "qktap0"

SINK = """
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d)
    n += len(d)
print(h.hexdigest(), n, flush=True)
"""

TAP_FD_WRAPPER = """
import fcntl, os, struct, sys
fd = os.open("/dev/net/tun", os.O_RDWR)
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, TUNSETIFF = 0x2, 0x1000, 0x4000, 0x400454ca
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", sys.argv[1].encode(),
                                       IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
os.set_inheritable(fd, True)
args = [a.replace("@FD@", str(fd)) for a in sys.argv[2:]]
os.execv(args[0], args)
"""


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def make_netns(multi_queue=False):
    """A network namespace with a persistent tap (192.168.77.1/24, up) in it; skipped with
    the reason where this host cannot make them. Always removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("tap test: needs root and iproute2 to create a network namespace")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("tap test: /dev/net/tun does not exist on this host")
    name = f"quokka-net-{os.getpid()}"
    made = ip("netns", "add", name, check=False)
    if made.returncode != 0:
        pytest.skip(f"tap test: cannot create a network namespace: {made.stderr.strip()}")
    try:
        tap = ip("-n", name, "tuntap", "add", "dev", TAP, "mode", "tap",
                 *(["multi_queue"] if multi_queue else []), check=False)
        if tap.returncode != 0:
            pytest.skip(f"tap test: cannot create a tap device: {tap.stderr.strip()}")
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", f"{NS_ADDR}/24", "dev", TAP)
        ip("-n", name, "link", "set", TAP, "up")
        yield name
    finally:
        ip("netns", "del", name, check=False)


@pytest.fixture
def netns():
    yield from make_netns()


@pytest.fixture
def netns_mq():
    yield from make_netns(multi_queue=True)


def run_tap_guest(netns, tmp_path, net_args, wrapper=None):
    """Boot the guest in the namespace on the tap: static address, ping, a 3 MiB download
    from an HTTP server in the namespace and a 3 MB upload to a sink there."""
    www = tmp_path / "www"
    www.mkdir(exist_ok=True)
    blob = os.urandom(3 << 20)
    (www / "blob").write_bytes(blob)
    http_port, sink_port = 8000, 8001
    nsexec = ["ip", "netns", "exec", netns]
    server = subprocess.Popen(nsexec + ["python3", "-m", "http.server", "--bind", NS_ADDR,
                                        "--directory", str(www), str(http_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sink = subprocess.Popen(nsexec + ["python3", "-c", SINK, NS_ADDR, str(sink_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        script = (f"ip link set lo up; ip addr add {GUEST_ADDR}/24 dev eth0; "
                  "ip link set eth0 up; "
                  f"ping -c 3 -w 30 {NS_ADDR} && echo ping-ok; "
                  f"wget -q -O /tmp/blob http://{NS_ADDR}:{http_port}/blob; "
                  "echo blob=$(sha256sum </tmp/blob | cut -d' ' -f1); "
                  "head -c 3000000 /dev/urandom >/tmp/up; "
                  "echo up=$(sha256sum </tmp/up | cut -d' ' -f1); "
                  f"nc {NS_ADDR} {sink_port} </tmp/up; echo upload-done")
        cmd = quokka_cmd(run64(script, "quokka.nonet"), *net_args)
        if wrapper:
            cmd = ["python3", "-c", wrapper, TAP, *cmd]
        rc, out, err = VM(nsexec + cmd).finish()
        sink_out, _ = sink.communicate(timeout=30)
    finally:
        server.kill()
        sink.kill()
        server.wait()
        sink.wait()
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    assert "ping-ok" in out, out[-3000:]
    assert value(out, "blob") == sha(blob)
    assert sink_out.split() == [value(out, "up"), "3000000"], (sink_out, out[-2000:])
    assert rc == 0, (rc, err)


def test_tap_in_netns(netns, tmp_path):
    """--net tap=NAME: quokka opens the namespace's tap itself (IFF_VNET_HDR: the guest's
    checksum and TSO offloads pass through to the kernel)."""
    run_tap_guest(netns, tmp_path, ["--net", f"tap={TAP}"])


def test_tap_fd_in_netns(netns, tmp_path):
    """--net tap-fd=N: a tap fd opened by whoever starts quokka (as Firecracker and Cloud
    Hypervisor are given one)."""
    run_tap_guest(netns, tmp_path, ["--net", "tap-fd=@FD@"], wrapper=TAP_FD_WRAPPER)


def test_tap_multiqueue(netns_mq, tmp_path):
    """--net tap=NAME,queues=2: two queue pairs on a multiqueue tap. The guest (one vCPU, so
    it starts on one pair) is told to use two (ethtool -L through the control queue); 16
    parallel downloads then spread over both pairs (the guest hashes flows over its transmit
    queues, the tap sends each flow's replies to the queue it came from): every download's
    checksum matches and both pairs carried frames each way (QUOKKA_NET_STATS)."""
    www = tmp_path / "www"
    www.mkdir()
    blob = os.urandom(256 << 10)
    (www / "blob").write_bytes(blob)
    nsexec = ["ip", "netns", "exec", netns_mq]
    server = subprocess.Popen(nsexec + ["python3", "-m", "http.server", "--bind", NS_ADDR,
                                        "--directory", str(www), "8000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        script = (f"ip link set lo up; ip addr add {GUEST_ADDR}/24 dev eth0; "
                  "ip link set eth0 up; set-channels eth0 2; "
                  "echo queues=$(ls /sys/class/net/eth0/queues | tr '\\n' ,); "
                  f"ping -c 2 -w 30 {NS_ADDR} >/dev/null && echo ping-ok; "
                  "for i in $(seq 16); do "
                  f"wget -q -O /tmp/b$i http://{NS_ADDR}:8000/blob & done; wait; "
                  "for i in $(seq 16); do echo blob$i=$(sha256sum </tmp/b$i | cut -d' ' -f1); "
                  "done")
        cmd = ["env", "QUOKKA_NET_STATS=1"] + quokka_cmd(run64(script, "quokka.nonet"), "--net",
                                                         f"tap={TAP},queues=2")
        rc, out, err = VM(nsexec + cmd).finish()
    finally:
        server.kill()
        server.wait()
    assert "quokka-guest: run exit=0" in out, out[-3000:] + err
    assert "set-channels: eth0 combined 2 (max 2)" in out, out[-3000:]
    assert value(out, "queues") == "rx-0,rx-1,tx-0,tx-1,", out[-3000:]
    assert "ping-ok" in out, out[-3000:]
    for i in range(1, 17):
        assert value(out, f"blob{i}") == sha(blob), i
    pairs = {}
    for line in err.splitlines():
        if "virtio-net: queue pair" in line:
            words = line.split()
            pairs[int(words[words.index("pair") + 1].rstrip(":"))] = (
                int(words[words.index("tx") + 1]), int(words[words.index("rx") + 1]))
    assert set(pairs) == {0, 1}, err
    assert all(tx > 0 and rx > 0 for tx, rx in pairs.values()), pairs
    assert rc == 0, (rc, err)


# --- user errors ------------------------------------------------------------------------------

def quokka_error(*args, user=None):
    cmd = [QUOKKA, "run", "--accel", "tcg", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    msg = proc.stderr.decode()
    assert proc.returncode == 2, (args, proc.returncode, msg)
    assert len(msg.strip().splitlines()) == 1, (args, msg)
    return msg.strip()


def test_net_user_errors():
    """Bad --net values: one line naming the problem, exit 2."""
    cases = [
        (["--net", "user,hostfwd=x"],
         "--net: hostfwd 'x' must be tcp|udp:[ADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"),
        (["--net", "user,hostfwd=tcp::99999-:22"], "hostfwd 'tcp::99999-:22' must be"),
        (["--net", "user,hostfwd=tcp::2222-192.168.1.5:22"],
         "guest address 192.168.1.5 is not"),
        (["--net", "mac=01:00:5e:00:00:01"], "--net: mac '01:00:5e:00:00:01' must be"),
        (["--net", "user,tap=tap0"], "--net: give one of user, tap=NAME and tap-fd=N"),
        (["--net", "tap=tap0,hostfwd=tcp::1-:2"], "hostfwd= is for user-mode networking"),
        (["--net", "tap=this-name-is-too-long"], "an interface name is 1-15 bytes"),
        (["--net", "tap-fd=nope"], "--net: tap-fd 'nope' must be 1-16 open file descriptor"),
        (["--net", "user,queues=2"], "--net: queues=2 needs tap=NAME"),
        (["--net", "tap-fd=999"], "--net: tap-fd 999: Bad file descriptor"),
        (["--net", "tap-fd=0"], "--net: tap-fd 0 is not a tap device"),
        (["--net", "user,colour=red"], "colour"),
        (["--net", "mtu=20"], "mtu='20' must be a number from 68 to 65520"),
    ]
    for args, needle in cases:
        msg = quokka_error(*args)
        assert needle in msg, (args, msg)


def test_net_host_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        msg = quokka_error("--net", f"user,hostfwd=tcp:127.0.0.1:{port}-:22")
    assert msg == f"quokka: --net: host port {port} is in use", msg


def test_tap_without_privilege():
    """Opening a tap needs CAP_NET_ADMIN: as an unprivileged user the message says so."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to drop to nobody) and setpriv")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("/dev/net/tun does not exist on this host")
    if not os.access(QUOKKA, os.X_OK, effective_ids=False) or \
            os.stat(QUOKKA).st_mode & 0o001 == 0:
        pytest.skip(f"{QUOKKA} is not executable by other users")
    msg = quokka_error("--net", "tap=qk-noperm", user=65534)
    # TUNSETIFF refuses (EPERM), or already opening /dev/net/tun does where it is not 0666.
    assert ("--net: tap 'qk-noperm': Operation not permitted" in msg or
            "--net: tap 'qk-noperm': /dev/net/tun: Permission denied" in msg), msg

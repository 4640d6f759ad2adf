"""Snapshots of VMs with a network interface or a vsock device (busybox guest on the
translator, driven through Firecracker's API as in test_snapshot.py):

- user-mode networking: a guest fetching from an HTTP server on the host's 127.0.0.1 (as
  10.0.2.2) in a loop is paused, snapshotted, killed with SIGKILL and restored into a fresh
  quokka: its fetches go on succeeding (the virtio-net queues continue from their saved
  indices, slirp's DHCP leases come back; TCP connections open at the snapshot are not kept,
  as on QEMU: libslirp saves none of its host sockets);
- vsock: a connection made before the snapshot works; one left open across it is reset in
  the guest after the restore (TRANSPORT_RESET on the event queue, as Firecracker does); a new
  host -> guest connection through the re-created Unix socket works.
"""
import base64
import http.server
import os
import re
import shutil
import socket
import threading
import time

import pytest

from test_api import SERDE, Vmm, configure
from test_net import exchange, free_port, ip
from test_snapshot import load
from test_vsock import fnv1a, host_connect, pattern

NO_STATE = ("Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state "
            "from file: ")


def run64(script, extra=""):
    enc = base64.b64encode(script.encode()).decode()
    return f"console=ttyS0 reboot=k panic=1 i8042.dumbkbd {extra} quokka.run64={enc}"


def load_with(v, d, resume=True, **overrides):
    """PUT /snapshot/load of d's snapshot with extra body fields (the overrides)."""
    return v.api("PUT", "/snapshot/load", {"snapshot_path": str(d / "vm.snap"),
                                           "mem_file_path": str(d / "vm.mem"),
                                           "resume_vm": resume, **overrides})


def snapshot_and_kill(v, d):
    assert v.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
    assert v.api("PUT", "/snapshot/create", {"snapshot_path": str(d / "vm.snap"),
                                             "mem_file_path": str(d / "vm.mem")}) == (204, None)
    text = v.console()
    v.proc.kill()
    return text


class Body(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = b"served-by-host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Body)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def fetches(text):
    return [int(n) for n in re.findall(r"fetch (\d+) served-by-host", text)]


def test_restore_with_user_networking(tmp_path, http_server):
    script = (f"i=0; while true; do i=$((i+1)); "
              f"rm -f /tmp/f; wget -q -O /tmp/f http://10.0.2.2:{http_server}/; "
              f"echo fetch $i $(cat /tmp/f); "
              f"usleep 300000; done")
    (tmp_path / "a").mkdir()
    v = Vmm(tmp_path / "a")
    try:
        configure(v, run64(script))
        assert v.api("PUT", "/network-interfaces/eth0",
                     {"iface_id": "eth0", "user_mode": True}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for(r"fetch 3 served-by-host")
        before = fetches(snapshot_and_kill(v, tmp_path))
    finally:
        v.close()
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b")
    try:
        assert load(v, tmp_path / "vm.snap", tmp_path / "vm.mem", resume=True)[0] == (204, None)
        last = before[-1]
        v.wait_for(rf"fetch {last + 3} served-by-host", timeout=120)
        after = [n for n in fetches(v.console()) if n > last]
        assert after[:3] == [last + 1, last + 2, last + 3], (last, after)
    finally:
        v.close()


def ask(path, data):
    """One connection to the guest's port 5000: send data, read its 16-byte reply."""
    s, line = host_connect(path, 5000)
    try:
        assert line.startswith(b"OK "), line
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        assert reply == pattern(fnv1a(data) & 0xffffffff, 16)
    finally:
        s.close()


def test_restore_with_vsock(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    path = str(d / "v.sock")
    v = Vmm(d)
    try:
        configure(v, run64("vsock-test listen 5000 10 16"))
        assert v.api("PUT", "/vsock", {"guest_cid": 3, "uds_path": path}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for("vsock-test: listening 5000")
        ask(path, b"before the snapshot")
        # Left open across the snapshot: its host end dies with this process.
        held, line = host_connect(path, 5000)
        assert line.startswith(b"OK "), line
        held.sendall(b"half a request")
        v.wait_for(r"replied bytes=16")
        snapshot_and_kill(v, tmp_path)
        held.close()
    finally:
        v.close()
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b")
    try:
        assert load(v, tmp_path / "vm.snap", tmp_path / "vm.mem", resume=True)[0] == (204, None)
        # TRANSPORT_RESET: the guest's end of the held connection is reset, not left hanging.
        v.wait_for(r"vsock-test: recv port=5000: Connection reset by peer", timeout=60)
        ask(path, b"after the restore")
        v.wait_for(r"recv port=5000 bytes=17 ")
    finally:
        v.close()


# --- PUT /snapshot/load overrides ---------------------------------------------------------------

NS_ADDR, GUEST_ADDR = "192.168.78.1", "192.168.78.2"


@pytest.fixture
def two_taps():
    """A network namespace with taps qksnap0 (192.168.78.1/24, up) and qksnap1 (up, no
    address yet); skipped with the reason where this host cannot make them."""
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
        pytest.skip("tap test: needs root, iproute2 and /dev/net/tun")
    name = f"quokka-snap-{os.getpid()}"
    made = ip("netns", "add", name, check=False)
    if made.returncode != 0:
        pytest.skip(f"tap test: cannot create a network namespace: {made.stderr.strip()}")
    try:
        for tap in ("qksnap0", "qksnap1"):
            made = ip("-n", name, "tuntap", "add", "dev", tap, "mode", "tap", check=False)
            if made.returncode != 0:
                pytest.skip(f"tap test: cannot create a tap device: {made.stderr.strip()}")
            ip("-n", name, "link", "set", tap, "up")
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", f"{NS_ADDR}/24", "dev", "qksnap0")
        yield name
    finally:
        ip("netns", "del", name, check=False)


def rx_packets(ns, tap):
    """Frames the host side of the tap received (what the guest sent)."""
    text = ip("-n", ns, "-s", "link", "show", tap).stdout
    return int(re.search(r"RX:.*\n\s+\d+\s+(\d+)", text).group(1))


def pongs(text):
    return [int(n) for n in re.findall(r"pong (\d+)", text)]


def test_restore_with_network_override(tmp_path, two_taps):
    """A guest pinging the namespace through tap qksnap0 is snapshotted; the address then moves
    to qksnap1 (with qksnap0's MAC, so the guest's ARP entry stays right) and the snapshot is
    loaded with network_overrides naming qksnap1: the pings go on, through qksnap1 (its
    counters grow, qksnap0's do not). Without the override the restored NIC would open
    qksnap0, which no longer has the address, and no ping would be answered."""
    ns = two_taps
    nsexec = ("ip", "netns", "exec", ns)
    script = (f"ip link set lo up; ip addr add {GUEST_ADDR}/24 dev eth0; ip link set eth0 up; "
              f"i=0; while true; do i=$((i+1)); "
              f"ping -c 1 -W 1 {NS_ADDR} >/dev/null && echo pong $i; usleep 200000; done")
    (tmp_path / "a").mkdir()
    v = Vmm(tmp_path / "a", prefix=nsexec)
    try:
        configure(v, run64(script, "quokka.nonet"))
        assert v.api("PUT", "/network-interfaces/eth0",
                     {"iface_id": "eth0", "host_dev_name": "qksnap0"}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for(r"pong 3\b")
        before = pongs(snapshot_and_kill(v, tmp_path))
    finally:
        v.close()
    mac = re.search(r"link/ether (\S+)", ip("-n", ns, "link", "show", "qksnap0").stdout).group(1)
    ip("-n", ns, "addr", "del", f"{NS_ADDR}/24", "dev", "qksnap0")
    ip("-n", ns, "link", "set", "qksnap1", "address", mac)
    ip("-n", ns, "addr", "add", f"{NS_ADDR}/24", "dev", "qksnap1")
    rx0, rx1 = rx_packets(ns, "qksnap0"), rx_packets(ns, "qksnap1")
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b", prefix=nsexec)
    try:
        # An iface_id the snapshot does not have: Firecracker's error, and nothing loaded.
        assert load_with(v, tmp_path, network_overrides=[
            {"iface_id": "eth9", "host_dev_name": "qksnap1"}]) == (
            400, {"fault_message": NO_STATE + "Unknown Network Device."})
        assert load_with(v, tmp_path, vsock_override={"uds_path": str(tmp_path / "v.sock")}) == (
            400, {"fault_message": NO_STATE + "Unknown Vsock Device."})
        assert load_with(v, tmp_path, network_overrides=[
            {"iface_id": "eth0", "host_dev_name": "qksnap1"}]) == (204, None)
        last = before[-1]
        v.wait_for(rf"pong {last + 5}\b", timeout=120)
        assert rx_packets(ns, "qksnap1") >= rx1 + 5
        assert rx_packets(ns, "qksnap0") == rx0
    finally:
        v.close()


def test_restore_with_vsock_override(tmp_path):
    """vsock_override: the restored device listens on the new Unix socket path (the old one
    is not used again) and the guest answers through it."""
    d = tmp_path / "a"
    d.mkdir()
    old, new = str(d / "v.sock"), str(tmp_path / "new.sock")
    v = Vmm(d)
    try:
        configure(v, run64("vsock-test listen 5000 10 16"))
        assert v.api("PUT", "/vsock", {"guest_cid": 3, "uds_path": old}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for("vsock-test: listening 5000")
        ask(old, b"before the snapshot")
        snapshot_and_kill(v, tmp_path)
    finally:
        v.close()
    os.unlink(old)
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b")
    try:
        assert load_with(v, tmp_path, vsock_override={"uds_path": new}) == (204, None)
        ask(new, b"through the new path")
        v.wait_for(r"recv port=5000 bytes=20 ")
        assert not os.path.exists(old)
    finally:
        v.close()


def test_restore_with_hostfwd_override(tmp_path):
    """Extension: a user-mode NIC's override gives new host port forwards: after the restore
    the guest's listener is reached through the new host port, not the saved one."""
    old_port, new_port = free_port(), free_port()
    script = "echo listening; while true; do echo hello-from-guest | nc -l -p 5555; done"
    (tmp_path / "a").mkdir()
    v = Vmm(tmp_path / "a")
    try:
        configure(v, run64(script))
        assert v.api("PUT", "/network-interfaces/net1",
                     {"iface_id": "net1", "user_mode": True,
                      "hostfwd": [f"tcp:127.0.0.1:{old_port}-:5555"]}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for("listening")
        assert exchange(old_port, b"", 17, time.monotonic() + 60) == b"hello-from-guest\n"
        snapshot_and_kill(v, tmp_path)
    finally:
        v.close()
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b")
    try:
        # host_dev_name on a user-mode NIC is refused (its saved state is slirp's).
        status, reply = load_with(v, tmp_path, network_overrides=[
            {"iface_id": "net1", "host_dev_name": "tap0"}])
        assert status == 400 and "uses user-mode networking" in reply["fault_message"], reply
        assert load_with(v, tmp_path, network_overrides=[
            {"iface_id": "net1", "hostfwd": [f"tcp:127.0.0.1:{new_port}-:5555"]}]) == (204, None)
        assert exchange(new_port, b"", 17, time.monotonic() + 60) == b"hello-from-guest\n"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", old_port), timeout=5).close()
    finally:
        v.close()


def test_override_parse_errors(tmp_path):
    v = Vmm(tmp_path)
    try:
        status, reply = load_with(v, tmp_path, network_overrides=[{"host_dev_name": "t"}])
        assert (status, reply["fault_message"]) == (
            400, SERDE + "missing field `iface_id` at line 1 column " +
            str(len(f'{{"snapshot_path": "{tmp_path}/vm.snap", "mem_file_path": '
                    f'"{tmp_path}/vm.mem", "resume_vm": true, "network_overrides": '
                    '[{"host_dev_name": "t"}')) + ".")
        status, reply = load_with(v, tmp_path, network_overrides={"iface_id": "x"})
        assert status == 400 and "expected a sequence" in reply["fault_message"], reply
    finally:
        v.close()

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
import re
import socket
import threading

import pytest

from test_api import Vmm, configure
from test_snapshot import load
from test_vsock import fnv1a, host_connect, pattern


def run64(script):
    enc = base64.b64encode(script.encode()).decode()
    return f"console=ttyS0 reboot=k panic=1 i8042.dumbkbd quokka.run64={enc}"


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

"""The control plane: Firecracker's REST API on a Unix socket, driven with curl --unix-socket as
Firecracker's getting-started guide does. The busybox guest boots on the translator (no KVM
needed), is paused (its output and its clock stop), resumed, and powered down with
SendCtrlAltDel; wrong-state and malformed requests get 400 with a fault message."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BUILD, QUOKKA

GUEST = os.path.join(BUILD, "guest")
KERNEL = os.path.join(GUEST, "bzImage")
INITRD = os.path.join(GUEST, "initrd.cpio.gz")
BOOT_TIMEOUT = 180
# A guest that counts and prints its own clock (uptime) five times a second.
COUNTER = ('console=ttyS0 reboot=k panic=1 i8042.dumbkbd quokka.run="i=0; while true; do '
           'i=$((i+1)); read u _ </proc/uptime; echo tick $i $u; usleep 200000; done"')
PRE_BOOT = "The requested operation is not supported before starting the microVM."
POST_BOOT = "The requested operation is not supported after starting the microVM."


@pytest.fixture(scope="module", autouse=True)
def prerequisites():
    for path in (KERNEL, INITRD):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: run 'make guest'")
    if not shutil.which("curl"):
        pytest.fail("curl is missing: run scripts/install-deps.sh")


def curl(sock, method, path, body=None):
    """(status, parsed JSON body or None) of one request over the Unix socket."""
    cmd = ["curl", "-s", "--unix-socket", sock, "-X", method, "-w", "\n%{http_code}",
           "http://localhost" + path, "-H", "Accept: application/json"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json",
                "-d", body if isinstance(body, str) else json.dumps(body)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    text, _, code = out.rpartition("\n")
    return int(code), (json.loads(text) if text.strip() else None)


class Vmm:
    """quokka --api-sock in the background, its console going to a file."""

    def __init__(self, tmp_path, *extra, prefix=()):
        """prefix: a command quokka runs under (e.g. `ip netns exec NAME`)."""
        self.sock = str(tmp_path / "fc.sock")
        self.out_path = tmp_path / "console.txt"
        self.out = open(self.out_path, "wb")
        self.err_path = tmp_path / "stderr.txt"
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([*prefix, QUOKKA, "--api-sock", self.sock, *extra],
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        deadline = time.time() + 10
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None, self.stderr()
            assert time.time() < deadline, "the API socket never appeared"
            time.sleep(0.01)

    def api(self, method, path, body=None):
        return curl(self.sock, method, path, body)

    def console(self):
        return self.out_path.read_bytes().decode(errors="replace")

    def stderr(self):
        return self.err_path.read_bytes().decode(errors="replace")

    def wait_for(self, pattern, timeout=BOOT_TIMEOUT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.console()):
                return
            assert self.proc.poll() is None, self.console()[-3000:] + self.stderr()
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in:\n" + self.console()[-3000:] + self.stderr())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.out.close()
        self.err.close()


@pytest.fixture
def vmm(tmp_path):
    v = Vmm(tmp_path)
    yield v
    v.close()


def configure(vmm, boot_args=COUNTER):
    assert vmm.api("PUT", "/boot-source", {"kernel_image_path": KERNEL, "initrd_path": INITRD,
                                           "boot_args": boot_args}) == (204, None)
    assert vmm.api("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256,
                                              "accelerator": "tcg"}) == (204, None)


def ticks(text):
    """[(count, guest uptime)] the counter printed."""
    return [(int(n), float(u)) for n, u in re.findall(r"tick (\d+) ([\d.]+)", text)]


def max_gap(t):
    """The longest guest-clock interval between consecutive ticks."""
    return max(b[1] - a[1] for a, b in zip(t, t[1:]))


def test_boot_pause_resume_ctrl_alt_del(vmm):
    assert vmm.api("GET", "/") == (200, {"id": "anonymous-instance", "state": "Not started",
                                        "vmm_version": vmm.api("GET", "/version")[1][
                                            "firecracker_version"], "app_name": "quokka"})
    configure(vmm)
    status, mc = vmm.api("GET", "/machine-config")
    assert status == 200 and mc["vcpu_count"] == 1 and mc["mem_size_mib"] == 256
    assert mc["accelerator"] == "tcg" and mc["smt"] is False
    assert vmm.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
    assert vmm.api("GET", "/")[1]["state"] == "Running"
    vmm.wait_for(r"tick 5 ")

    # Configuration and a second start after boot: Firecracker's post-boot 400.
    assert vmm.api("PUT", "/boot-source", {"kernel_image_path": KERNEL}) == (
        400, {"fault_message": POST_BOOT})
    assert vmm.api("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128}) == (
        400, {"fault_message": POST_BOOT})
    assert vmm.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (
        400, {"fault_message": POST_BOOT})

    assert vmm.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
    assert vmm.api("GET", "/")[1]["state"] == "Paused"
    before = ticks(vmm.console())
    time.sleep(2.0)
    during = ticks(vmm.console())
    assert during == before, "the guest printed while paused"
    assert vmm.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)  # idempotent
    assert vmm.api("PATCH", "/vm", {"state": "Resumed"}) == (204, None)
    assert vmm.api("GET", "/")[1]["state"] == "Running"
    last = before[-1]
    vmm.wait_for(rf"tick {last[0] + 3} ")
    after = ticks(vmm.console())
    nxt = after[len(before)]
    assert nxt[0] == last[0] + 1, "the counter went on from where it stopped"
    # The guest clock stood still for the 2 s pause: the next tick is one period (0.2 s plus
    # the loop's own time, longest under the sanitizers) later, not 2 s more.
    assert nxt[1] - last[1] < max_gap(before) + 1.0, (last, nxt)

    assert vmm.api("PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
    assert vmm.api("PUT", "/actions", {"action_type": "SendCtrlAltDel"}) == (204, None)
    rc = vmm.proc.wait(timeout=60)
    assert rc == 0, vmm.stderr()
    assert "reboot" in vmm.console(), vmm.console()[-2000:]
    assert not os.path.exists(vmm.sock), "the socket file is removed at exit"


def test_pre_boot_errors(vmm):
    # Actions that need a running VM.
    assert vmm.api("PATCH", "/vm", {"state": "Paused"}) == (400, {"fault_message": PRE_BOOT})
    assert vmm.api("PUT", "/actions", {"action_type": "SendCtrlAltDel"}) == (
        400, {"fault_message": PRE_BOOT})
    assert vmm.api("PUT", "/actions", {"action_type": "FlushMetrics"}) == (
        400, {"fault_message": PRE_BOOT})
    # No kernel yet.
    status, body = vmm.api("PUT", "/actions", {"action_type": "InstanceStart"})
    assert status == 400 and body["fault_message"] == (
        "Start microvm error: Cannot start microvm without kernel configuration.")
    assert vmm.api("GET", "/")[1]["state"] == "Not started"


@pytest.mark.parametrize("method,path,body,message", [
    ("PUT", "/machine-config", '{"vcpu_count": 1', "deserializing the json body"),
    ("PUT", "/machine-config", {"vcpu_count": 1}, "missing field `mem_size_mib`"),
    ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64, "bogus": 1},
     "unknown field `bogus`"),
    ("PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 64}, "vCPU number is invalid"),
    ("PUT", "/machine-config", {"vcpu_count": "1", "mem_size_mib": 64}, "expected an integer"),
    ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64, "accelerator": "x"},
     "must be kvm, tcg or auto"),
    ("PUT", "/boot-source", {"kernel_image_path": "/nonexistent/vmlinux"},
     "Boot source error: The kernel file cannot be opened"),
    ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/nonexistent.img",
                               "is_root_device": True, "is_read_only": False},
     "Drive config error"),
    ("PUT", "/drives/a-b", {"drive_id": "a-b", "path_on_host": "/dev/null",
                            "is_root_device": False}, "alphanumeric characters and underscores"),
    ("PUT", "/drives/one", {"drive_id": "two", "path_on_host": "/dev/null",
                            "is_root_device": False}, "does not match the id from the body"),
    ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0"}, "missing field `host_dev_name`"),
    ("PUT", "/vsock", {"guest_cid": 2, "uds_path": "/tmp/x.sock"}, "guest_cid"),
    ("PUT", "/actions", {"action_type": "Reboot"}, "unknown variant `Reboot`"),
    ("PATCH", "/vm", {"state": "Sleeping"}, "unknown variant"),
    ("PUT", "/nothing", {}, "Invalid request method and/or path: PUT nothing."),
    ("DELETE", "/machine-config", None, "Invalid request method and/or path"),
    ("PUT", "/boot-source", None, "Empty PUT request."),
    ("PUT", "/logger", {"log_path": "/nonexistent/dir/log"}, "Logger error"),
    ("PATCH", "/vm", '{"state": "Paused"} \r\n', "not supported before starting"),
])
def test_malformed_requests(vmm, method, path, body, message):
    status, reply = vmm.api(method, path, body)
    assert status == 400, (status, reply)
    assert set(reply) == {"fault_message"} and message in reply["fault_message"], reply


SERDE = "An error occurred when deserializing the json body of a request: "
LOAD_FIELDS = ("`snapshot_path`, `mem_file_path`, `mem_backend`, `enable_diff_snapshots`, "
               "`track_dirty_pages`, `resume_vm`, `network_overrides`, `vsock_override`, "
               "`clock_realtime`, `huge_pages`")


@pytest.mark.parametrize("method,path,body,message", [
    # Firecracker's bodies are serde structs with deny_unknown_fields: serde_json's messages,
    # positions included (the column is just past the offending key, or the object's end).
    ("PUT", "/snapshot/load", '{"snapshot_path": "s", "mem_file_path": "m", "bogus": 1}',
     f"unknown field `bogus`, expected one of {LOAD_FIELDS} at line 1 column 52"),
    ("PUT", "/snapshot/load", '{\n  "snapshot_path": "s",\n  "mem_backend": {\n'
     '    "backend_path": "m", "x": 2}\n}',
     "unknown field `x`, expected `backend_path` or `backend_type` at line 4 column 28"),
    ("PUT", "/snapshot/load", '{\n  "snapshot_path": "s",\n  "mem_backend": {\n'
     '    "backend_path": "m"\n  }\n}', "missing field `backend_type` at line 5 column 3"),
    ("PUT", "/snapshot/load", '{"mem_file_path": "m"}',
     "missing field `snapshot_path` at line 1 column 22"),
    ("PUT", "/snapshot/load", '{"snapshot_path": "s", "mem_file_path": "m", '
     '"mem_backend": {"backend_path": "m", "backend_type": "File"}}',
     "too many fields: either `mem_backend` or `mem_file_path` exclusively is required"),
    ("PUT", "/snapshot/load", '{"snapshot_path": "s"}',
     "missing field: either `mem_backend` or `mem_file_path` is required"),
    ("PUT", "/snapshot/load", '{"snapshot_path": "s", "mem_file_path": "m", '
     '"network_overrides": [{"iface_id": "eth0", "host_dev_name": "t"}, {"iface_id": "x"}]}',
     "missing field `host_dev_name` at line 1 column 128"),
    ("PUT", "/snapshot/load", '{"snapshot_path": "s", "mem_file_path": "m", '
     '"vsock_override": {"path": "/x"}}', "missing field `uds_path` at line 1 column 77"),
    ("PUT", "/snapshot/create", '{"snapshot_path": "s", "mem_file_path": "m", "diff": true}',
     "unknown field `diff`, expected one of `snapshot_type`, `snapshot_path`, "
     "`mem_file_path` at line 1 column 51"),
    ("PUT", "/actions", '{"action_type": "FlushMetrics", "now": true}',
     "unknown field `now`, expected `action_type` at line 1 column 37"),
    ("PUT", "/actions", '{ }', "missing field `action_type` at line 1 column 3"),
    ("PATCH", "/vm", '{"state": "Paused", "force": 1}',
     "unknown field `force`, expected `state` at line 1 column 27"),
    ("PATCH", "/vm", '{"state": "Sleeping"}',
     "unknown variant `Sleeping`, expected `Paused` or `Resumed`"),
    # one JSON value, then only whitespace (serde_json::from_slice)
    ("PATCH", "/vm", '{"state": "Paused"} x', "trailing characters at line 1 column 21"),
    ("PUT", "/actions", '{"action_type": "FlushMetrics"}{}',
     "trailing characters at line 1 column 32"),
])
def test_serde_messages(vmm, method, path, body, message):
    status, reply = vmm.api(method, path, body)
    assert (status, reply) == (400, {"fault_message": SERDE + message + "."})


def test_body_too_large(vmm):
    status, reply = vmm.api("PUT", "/boot-source", {"boot_args": "x" * 60000})
    assert status == 413 and "larger than the limit" in reply["fault_message"]


def test_logger_and_metrics(tmp_path):
    log, metrics = tmp_path / "fc.log", tmp_path / "metrics.json"
    log.touch()
    metrics.touch()
    v = Vmm(tmp_path)
    try:
        assert v.api("PUT", "/logger", {"log_path": str(log), "level": "Info",
                                        "show_level": True}) == (204, None)
        assert v.api("PUT", "/metrics", {"metrics_path": str(metrics)}) == (204, None)
        assert v.api("PUT", "/metrics", {"metrics_path": str(metrics)})[0] == 400
        configure(v, boot_args="console=ttyS0 quokka.run=\"sleep 30\"")
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        line = json.loads(metrics.read_text().splitlines()[0])
        assert line["vm"]["state"] == "Running" and line["vm"]["accelerator"] == "tcg"
        assert line["api_server"]["requests"] >= 5
        text = log.read_text()
        assert 'received a PUT request on "/actions"' in text and ":Info]" in text, text
    finally:
        v.close()


def test_existing_socket_path_is_an_error(tmp_path):
    sock = tmp_path / "busy.sock"
    sock.write_text("")
    proc = subprocess.run([QUOKKA, "--api-sock", str(sock)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and "--api-sock" in proc.stderr and "in use" in proc.stderr


def test_config_file_boots(tmp_path):
    """--config-file alone boots without API calls (Firecracker's JSON layout): drives in
    order, read-only honoured, the guest runs its command and powers off."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    cfg = {
        "boot-source": {"kernel_image_path": KERNEL, "initrd_path": INITRD,
                        "boot_args": 'console=ttyS0 quokka.run="cat /sys/block/vda/size '
                                     '/sys/block/vda/ro"'},
        "drives": [{"drive_id": "data", "path_on_host": str(disk), "is_root_device": False,
                    "is_read_only": True}],
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "accelerator": "tcg"},
    }
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.run([QUOKKA, "--config-file", str(path)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    out = proc.stdout.replace("\r", "")
    assert "\n2048\n1\n" in out, out[-2000:]  # 1 MiB in sectors, read-only
    assert "quokka-guest: run exit=0" in out


def test_config_file_root_drive(tmp_path):
    """A root drive is /dev/vda and root=/dev/vda ro|rw is appended to the command line, as
    Firecracker does (this empty image cannot be mounted: the guest says so, powers off)."""
    disk = tmp_path / "root.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    cfg = {
        "boot-source": {"kernel_image_path": KERNEL, "initrd_path": INITRD,
                        "boot_args": "console=ttyS0"},
        "drives": [{"drive_id": "rootfs", "path_on_host": str(disk), "is_root_device": True,
                    "is_read_only": False}],
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "accelerator": "tcg"},
    }
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.run([QUOKKA, "--config-file", str(path)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT)
    assert "Kernel command line: console=ttyS0 root=/dev/vda rw" in proc.stdout, proc.stdout
    assert proc.returncode == 0, proc.stderr


def test_config_file_mistake_is_named(tmp_path):
    path = tmp_path / "vm.json"
    path.write_text('{"boot-source": {"kernel_image_path": "/nonexistent"}}')
    proc = subprocess.run([QUOKKA, "--config-file", str(path)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "--config-file" in proc.stderr and "kernel file cannot be opened" in proc.stderr

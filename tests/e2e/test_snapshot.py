"""Snapshots through Firecracker's API on the translator: a guest counting in a loop is
paused, snapshotted, killed, restored into a fresh quokka, and counts on from where it was;
its clock continues from the saved time. Broken, truncated and foreign snapshot files are
refused with a message, never a crash."""
import os
import re
import struct
import time

import pytest

from test_api import COUNTER, POST_BOOT, PRE_BOOT, Vmm, configure, max_gap, ticks


SNAPSHOT_TAKEN = {}  # monotonic time the module's snapshot was made


def boot_counter(tmp_path):
    v = Vmm(tmp_path)
    configure(v, COUNTER)
    assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
    v.wait_for(r"tick 5 ")
    return v


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """(state file, memory file, [(count, uptime)] printed before the snapshot)."""
    d = tmp_path_factory.mktemp("snap")
    v = boot_counter(d)
    try:
        status, reply = v.api("PUT", "/snapshot/create",
                              {"snapshot_path": str(d / "vm.snap"),
                               "mem_file_path": str(d / "vm.mem")})
        assert status == 400 and "must be paused" in reply["fault_message"]
        assert v.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
        t0 = time.monotonic()
        assert v.api("PUT", "/snapshot/create", {"snapshot_path": str(d / "vm.snap"),
                                                 "mem_file_path": str(d / "vm.mem"),
                                                 "snapshot_type": "Full"}) == (204, None)
        print(f"\nsnapshot create (256 MiB guest): {(time.monotonic() - t0) * 1000:.0f} ms "
              f"(memory file {os.stat(d / 'vm.mem').st_blocks * 512 >> 20} MiB on disk)")
        before = ticks(v.console())
        SNAPSHOT_TAKEN["at"] = time.monotonic()
        v.proc.kill()  # kill -9: nothing of the old process survives
    finally:
        v.close()
    return d / "vm.snap", d / "vm.mem", before


def load(v, state, mem, resume):
    t0 = time.monotonic()
    reply = v.api("PUT", "/snapshot/load", {"snapshot_path": str(state),
                                            "mem_backend": {"backend_path": str(mem),
                                                            "backend_type": "File"},
                                            "resume_vm": resume})
    return reply, time.monotonic() - t0


def test_restore_continues_counting(snapshot, tmp_path):
    state, mem, before = snapshot
    v = Vmm(tmp_path)
    try:
        reply, took = load(v, state, mem, resume=False)
        assert reply == (204, None)
        assert v.api("GET", "/")[1]["state"] == "Paused"
        time.sleep(3.0)
        assert ticks(v.console()) == [], "the restored guest ran while paused"
        assert v.api("PATCH", "/vm", {"state": "Resumed"}) == (204, None)
        last = before[-1]
        v.wait_for(rf"tick {last[0] + 3} ", timeout=30)
        after = ticks(v.console())
        assert after[0][0] == last[0] + 1, (last, after[:3])
        # The guest clock went on from the snapshot's time, not from a new boot or the host.
        # The guest clock went on from the snapshot's time: it did not count the seconds
        # between the snapshot and the resume (3 s of them paused here), only the time the
        # guest ran since (retranslating its code first: slow under the sanitizers).
        wall = time.monotonic() - SNAPSHOT_TAKEN["at"]
        assert last[1] < after[0][1] < last[1] + wall - 2.5, (last, after[0], wall)
        assert v.api("PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        status, mc = v.api("GET", "/machine-config")
        assert status == 200 and mc["mem_size_mib"] == 256 and mc["accelerator"] == "tcg"
        print(f"\nsnapshot load (API round trip with curl): {took * 1000:.1f} ms")
        # The restored VM is a VM like any other: it reboots on Ctrl+Alt+Del.
        assert v.api("PUT", "/actions", {"action_type": "SendCtrlAltDel"}) == (204, None)
        assert v.proc.wait(timeout=60) == 0
    finally:
        v.close()


def test_restore_and_resume_at_once_twice(snapshot, tmp_path):
    """resume_vm: true runs at once; the same snapshot restores again (memory is private)."""
    state, mem, before = snapshot
    for run in range(2):
        (tmp_path / str(run)).mkdir()
        v = Vmm(tmp_path / str(run))
        try:
            reply, _ = load(v, state, mem, resume=True)
            assert reply == (204, None)
            assert v.api("GET", "/")[1]["state"] == "Running"
            v.wait_for(rf"tick {before[-1][0] + 2} ", timeout=30)
            assert ticks(v.console())[0][0] == before[-1][0] + 1
        finally:
            v.close()


def corrupt(src, dst, how):
    data = bytearray(src.read_bytes())
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "flipped":
        data[len(data) // 2] ^= 0x40
    elif how == "magic":
        data[:8] = b"NOTQUOKK"
    elif how == "version":
        data[8:12] = struct.pack("<I", 99)
    elif how == "empty":
        data = bytearray()
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("how,message", [
    ("truncated", "truncated or corrupt"),
    ("flipped", "corrupt"),
    ("magic", "not a quokka snapshot"),
    ("version", "format version 99"),
    ("empty", "not a quokka snapshot"),
])
def test_bad_state_file_is_refused(snapshot, tmp_path, how, message):
    state, mem, _ = snapshot
    bad = tmp_path / "bad.snap"
    corrupt(state, bad, how)
    v = Vmm(tmp_path)
    try:
        (status, reply), _ = load(v, bad, mem, resume=True)
        assert status == 400, reply
        assert reply["fault_message"].startswith("Load snapshot error: ") and \
            message in reply["fault_message"], reply
        # Nothing was started: the VMM is still usable.
        assert v.api("GET", "/")[1]["state"] == "Not started"
        assert v.proc.poll() is None
    finally:
        v.close()


def test_bad_memory_file_is_refused(snapshot, tmp_path):
    state, mem, _ = snapshot
    short = tmp_path / "short.mem"
    with open(short, "wb") as f:
        f.truncate(1 << 20)
    v = Vmm(tmp_path)
    try:
        (status, reply), _ = load(v, state, short, resume=True)
        assert status == 400 and "is not 268435456 bytes" in reply["fault_message"], reply
        (status, reply), _ = load(v, state, tmp_path / "missing.mem", resume=True)
        assert status == 400 and "No such file" in reply["fault_message"], reply
    finally:
        v.close()


def test_snapshot_wrong_state(snapshot, tmp_path):
    state, mem, _ = snapshot
    v = Vmm(tmp_path)
    try:
        body = {"snapshot_path": str(tmp_path / "x.snap"), "mem_file_path": str(tmp_path / "x")}
        assert v.api("PUT", "/snapshot/create", body) == (400, {"fault_message": PRE_BOOT})
        status, reply = v.api("PUT", "/snapshot/create", dict(body, snapshot_type="Diff"))
        assert status == 400 and "not supported" in reply["fault_message"]
        assert v.api("PUT", "/snapshot/load", {"snapshot_path": str(state)})[0] == 400
        # Firecracker refuses a load once boot resources were configured.
        assert v.api("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}) == (
            204, None)
        (status, reply), _ = load(v, state, mem, resume=True)
        assert status == 400 and "not allowed after configuring boot-specific resources" in \
            reply["fault_message"]
    finally:
        v.close()


def test_load_after_start_is_refused(snapshot, tmp_path):
    state, mem, _ = snapshot
    v = Vmm(tmp_path)
    try:
        reply, _ = load(v, state, mem, resume=True)
        assert reply == (204, None)
        (status, reply), _ = load(v, state, mem, resume=True)
        assert (status, reply) == (400, {"fault_message": POST_BOOT})
    finally:
        v.close()


DISK_COUNTER = ('console=ttyS0 quokka.run="i=0; while true; do i=$((i+1)); '
                'echo $i | dd of=/dev/vda conv=fsync 2>/dev/null; '
                'echo 3 >/proc/sys/vm/drop_caches; read r </dev/vda; read u _ </proc/uptime; '
                'echo tick $i $u disk $r; usleep 200000; done"')


def disk_ticks(text):
    return [(int(n), int(d)) for n, d in re.findall(r"tick (\d+) [\d.]+ disk (\d+)", text)]


def test_restore_with_a_disk(tmp_path):
    """A guest writing its counter to a virtio-blk disk (fsync, caches dropped, read back):
    in-flight I/O is finished before the snapshot, and after the restore the queues go on
    from their saved indices: the guest keeps writing and reading the same disk."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    (tmp_path / "a").mkdir()
    v = Vmm(tmp_path / "a")
    try:
        configure(v, DISK_COUNTER)
        assert v.api("PUT", "/drives/data", {"drive_id": "data", "path_on_host": str(disk),
                                             "is_root_device": False}) == (204, None)
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for(r"tick 4 [\d.]+ disk 4")
        assert v.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
        assert v.api("PUT", "/snapshot/create", {"snapshot_path": str(tmp_path / "vm.snap"),
                                                 "mem_file_path": str(tmp_path / "vm.mem")}) == (
            204, None)
        before = disk_ticks(v.console())
        assert all(n == d for n, d in before), before
        v.proc.kill()
    finally:
        v.close()
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b")
    try:
        reply, _ = load(v, tmp_path / "vm.snap", tmp_path / "vm.mem", resume=True)
        assert reply == (204, None)
        last = before[-1][0]
        v.wait_for(rf"tick {last + 3} [\d.]+ disk {last + 3}", timeout=60)
        after = disk_ticks(v.console())
        assert after[0] == (last + 1, last + 1), (before[-1], after[:3])
        assert all(n == d for n, d in after), after
        assert v.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
        # What the guest wrote last is on the host's image.
        written = int(disk.read_bytes()[:16].split(b"\n")[0])
        assert written >= last + 3, written
    finally:
        v.close()


def test_snapshot_of_a_restored_vm(snapshot, tmp_path):
    """A restored VM snapshots again (its configuration came from the first snapshot) and
    that snapshot restores too: the count goes on across both."""
    state, mem, before = snapshot
    (tmp_path / "a").mkdir()
    v = Vmm(tmp_path / "a")
    try:
        assert load(v, state, mem, resume=True)[0] == (204, None)
        v.wait_for(rf"tick {before[-1][0] + 2} ", timeout=30)
        assert v.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
        assert v.api("PUT", "/snapshot/create", {"snapshot_path": str(tmp_path / "2.snap"),
                                                 "mem_file_path": str(tmp_path / "2.mem")}) == (
            204, None)
        middle = ticks(v.console())
        v.proc.kill()
    finally:
        v.close()
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b")
    try:
        assert load(v, tmp_path / "2.snap", tmp_path / "2.mem", resume=True)[0] == (204, None)
        v.wait_for(rf"tick {middle[-1][0] + 2} ", timeout=30)
        assert ticks(v.console())[0][0] == middle[-1][0] + 1
    finally:
        v.close()


def test_restore_with_a_virtio_console(tmp_path):
    """The console on virtio-console (hvc0): the guest's output queue goes on after the
    restore, in a process started without --console virtio (the snapshot says so)."""
    (tmp_path / "a").mkdir()
    v = Vmm(tmp_path / "a", "--console", "virtio")
    try:
        configure(v, COUNTER.replace("console=ttyS0", "console=hvc0 quiet"))
        assert v.api("PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        v.wait_for(r"tick 4 ")
        assert v.api("PATCH", "/vm", {"state": "Paused"}) == (204, None)
        assert v.api("PUT", "/snapshot/create", {"snapshot_path": str(tmp_path / "vm.snap"),
                                                 "mem_file_path": str(tmp_path / "vm.mem")}) == (
            204, None)
        before = ticks(v.console())
        v.proc.kill()
    finally:
        v.close()
    (tmp_path / "b").mkdir()
    v = Vmm(tmp_path / "b")
    try:
        assert load(v, tmp_path / "vm.snap", tmp_path / "vm.mem", resume=True)[0] == (204, None)
        v.wait_for(rf"tick {before[-1][0] + 2} ", timeout=30)
        assert ticks(v.console())[0][0] == before[-1][0] + 1
    finally:
        v.close()

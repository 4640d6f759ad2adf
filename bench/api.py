#!/usr/bin/env python3
"""Control-plane benchmark, against Firecracker's published figures:
- API ready: from exec of `quokka --api-sock` to the first answered `GET /` (median and p90
  of N runs; Firecracker: 6-60 ms depending on the host).
- Snapshot restore: a 256 MiB busybox guest on the translator is paused and snapshotted
  once; then N fresh quokka processes each load it with resume_vm. Reported: quokka's own
  time from the request to the vCPUs running (FlushMetrics' snapshot_load_us) and the API
  round trip (Firecracker's goal: 5 ms p90 restore)."""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import QUOKKA, ROOT

GUEST = os.path.join(ROOT, "build", "guest")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock, method, path, body=None):
    conn = UnixConnection(sock)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None
    finally:
        conn.close()


def start(sock, log):
    return subprocess.Popen([QUOKKA, "--api-sock", sock], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.DEVNULL)


def wait_ready(sock, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("quokka exited before its API answered")
        try:
            if call(sock, "GET", "/")[0] == 200:
                return
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.0002)
    raise RuntimeError("the API never answered")


def p90(values):
    return sorted(values)[max(0, int(round(0.9 * len(values))) - 1)]


def api_ready(tmp, runs):
    times = []
    for i in range(runs):
        sock = os.path.join(tmp, f"ready{i}.sock")
        t0 = time.monotonic()
        proc = start(sock, subprocess.DEVNULL)
        try:
            wait_ready(sock, proc)
            times.append((time.monotonic() - t0) * 1000)
        finally:
            proc.kill()
            proc.wait()
            if os.path.exists(sock):
                os.unlink(sock)
    return times


def make_snapshot(tmp):
    sock = os.path.join(tmp, "src.sock")
    with open(os.path.join(tmp, "src.out"), "wb") as log:
        proc = start(sock, log)
        try:
            wait_ready(sock, proc)
            args = ('console=ttyS0 quokka.run="i=0; while true; do i=$((i+1)); echo tick $i; '
                    'usleep 200000; done"')
            assert call(sock, "PUT", "/boot-source", {
                "kernel_image_path": os.path.join(GUEST, "bzImage"),
                "initrd_path": os.path.join(GUEST, "initrd.cpio.gz"), "boot_args": args})[0] == 204
            assert call(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256,
                                                         "accelerator": "tcg"})[0] == 204
            assert call(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
            deadline = time.monotonic() + 180
            while b"tick 3" not in open(os.path.join(tmp, "src.out"), "rb").read():
                if time.monotonic() > deadline:
                    raise RuntimeError("the guest never counted")
                time.sleep(0.1)
            assert call(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
            t0 = time.monotonic()
            assert call(sock, "PUT", "/snapshot/create", {
                "snapshot_path": os.path.join(tmp, "vm.snap"),
                "mem_file_path": os.path.join(tmp, "vm.mem")})[0] == 204
            return (time.monotonic() - t0) * 1000
        finally:
            proc.kill()
            proc.wait()


def restore(tmp, runs):
    internal, round_trip = [], []
    metrics = os.path.join(tmp, "metrics.json")
    for i in range(runs):
        sock = os.path.join(tmp, f"dst{i}.sock")
        open(metrics, "w").close()
        proc = start(sock, subprocess.DEVNULL)
        try:
            wait_ready(sock, proc)
            assert call(sock, "PUT", "/metrics", {"metrics_path": metrics})[0] == 204
            t0 = time.monotonic()
            status, reply = call(sock, "PUT", "/snapshot/load", {
                "snapshot_path": os.path.join(tmp, "vm.snap"),
                "mem_backend": {"backend_path": os.path.join(tmp, "vm.mem"),
                                "backend_type": "File"},
                "resume_vm": True})
            round_trip.append((time.monotonic() - t0) * 1000)
            assert status == 204, reply
            assert call(sock, "PUT", "/actions", {"action_type": "FlushMetrics"})[0] == 204
            with open(metrics) as f:
                internal.append(json.loads(f.readline())["vm"]["snapshot_load_us"] / 1000)
        finally:
            proc.kill()
            proc.wait()
            if os.path.exists(sock):
                os.unlink(sock)
    return internal, round_trip


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not os.access(QUOKKA, os.X_OK):
        sys.exit(f"{QUOKKA} is not built (run `make`)")
    with tempfile.TemporaryDirectory(prefix="quokka-bench-api-") as tmp:
        ready = api_ready(tmp, args.runs)
        print(f"API ready after exec: median {statistics.median(ready):.1f} ms, "
              f"p90 {p90(ready):.1f} ms ({args.runs} runs; Firecracker: 6-60 ms)")
        create_ms = make_snapshot(tmp)
        print(f"snapshot create (256 MiB, paused): {create_ms:.0f} ms")
        internal, round_trip = restore(tmp, args.runs)
        print(f"snapshot restore to running: median {statistics.median(internal):.2f} ms, "
              f"p90 {p90(internal):.2f} ms inside quokka; API round trip median "
              f"{statistics.median(round_trip):.2f} ms ({args.runs} runs; Firecracker: 5 ms p90)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Network benchmarks with the Debian image (build/guest/debian.img, `make -C guest debian`),
user-mode networking, quokka --accel tcg vs qemu-system-x86_64 -accel tcg with the same
kernel, initramfs, image (a sparse copy each, on virtio-blk-pci) and command line, QEMU with
`-netdev user -device virtio-net-pci` (both modern-only virtio):

1. TCP throughput with iperf3 (Debian's, on the host and in the guest): guest -> host and
   host -> guest (-R), 10 s each, against `iperf3 -s` on the host's 127.0.0.1, which the
   guest reaches as 10.0.2.2 (slirp's gateway is the host's loopback);
2. round-trip latency: ICMP echo to 10.0.2.2 (answered by slirp itself, so it measures the
   NIC and the VMM's network path, not the host's ping_group_range), and TCP connect time
   (connect() from bash's /dev/tcp to an HTTP server on the host's 127.0.0.1, timed with
   $EPOCHREALTIME: the handshake goes through slirp's connect to the host).

quokka runs twice: with its user-mode default (a 65520-byte link MTU, as passt) and with
mtu=1500 (QEMU's). Ratios against qemu are printed: throughput higher is better, latency
lower is better.

Through a tap (engines quokka-tap and qemu-tap; needs root): a network namespace the
benchmark creates holds a tap (192.168.77.1/24), iperf3 and the HTTP server; the VMM runs in
the namespace on that tap (quokka `--net tap=NAME`, QEMU `-netdev tap,vhost=off`, both with
virtio-net headers), the guest stops systemd-networkd and takes 192.168.77.2 statically. The
tap engines are skipped, with the reason, where namespaces cannot be made.
Nothing leaves the machine. QUOKKA_BUILD=DIR picks another quokka build (default build/)."""
import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import QEMU, ROOT, ratio

BUILD = os.environ.get("QUOKKA_BUILD", os.path.join(ROOT, "build"))
QUOKKA = os.path.join(BUILD, "quokka")
GUEST = os.path.join(ROOT, "build", "guest")
BEGIN, END = "NETBENCH-BEGIN", "NETBENCH-END"
TAP, NS_ADDR, GUEST_ADDR = "qktap0", "192.168.77.1", "192.168.77.2"
USER_HOST = "10.0.2.2"  # slirp's gateway: the host's loopback


def vm_cmd(engine, root_img, append, mem, net_opts):
    kernel = os.path.join(GUEST, "bzImage")
    initrd = os.path.join(GUEST, "initrd.cpio.gz")
    if engine.startswith("quokka"):
        if engine == "quokka-tap":
            net = f"tap={TAP}"
        else:
            if engine == "quokka-mtu1500":
                net_opts = ",".join(filter(None, [net_opts, "mtu=1500"]))
            net = "user" + (f",{net_opts}" if net_opts else "")
        return [QUOKKA, "run", "--accel", "tcg", "--mem", mem, "--kernel", kernel, "--initrd",
                initrd, "--append", append, "--disk", f"path={root_img}", "--net", net]
    netdev = (f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost=off"
              if engine == "qemu-tap" else "user,id=n0")
    return [QEMU, "-accel", "tcg", "-m", mem, "-nographic", "-nodefaults", "-serial", "stdio",
            "-no-reboot", "-kernel", kernel, "-initrd", initrd, "-append", append,
            "-drive", f"file={root_img},format=raw,if=none,id=d0",
            "-device", "virtio-blk-pci,drive=d0,disable-legacy=on",
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,disable-legacy=on"]


def guest_script(iperf_port, http_port, seconds, tap):
    """Bring the network up (DHCP through slirp, or a static address on the tap), then the
    measurements, each between markers."""
    def block(name, cmd):
        return f"echo {BEGIN} {name}; {cmd}; echo {END}"
    if tap:
        host = NS_ADDR
        setup = (f"systemctl stop systemd-networkd.socket systemd-networkd; "
                 f"ip addr flush dev eth0; ip addr add {GUEST_ADDR}/24 dev eth0; "
                 "ip link set eth0 up; sleep 1")
    else:
        host = USER_HOST
        setup = "/lib/systemd/systemd-networkd-wait-online --timeout=60 || ip addr"
    return "; ".join([
        setup,
        block("ping", f"ping -c 20 -i 0.2 {host}"),
        # bash's /dev/tcp and $EPOCHREALTIME: the connect() alone, no process started.
        block("connect", "bash -c 'for i in $(seq 20); do t0=$EPOCHREALTIME; "
                         f"exec 3<>/dev/tcp/{host}/{http_port}; t1=$EPOCHREALTIME; "
                         "exec 3>&-; echo connect-us $t0 $t1; done'"),
        block("tx", f"iperf3 -c {host} -p {iperf_port} -t {seconds} -J"),
        block("rx", f"iperf3 -c {host} -p {iperf_port} -t {seconds} -R -J"),
    ])


def sections(out):
    found = {}
    for part in out.split(BEGIN)[1:]:
        name, _, rest = part.partition("\n")
        found[name.strip()] = rest.split(END)[0]
    return found


def iperf_mbps(text):
    text = text[text.index("{"):text.rindex("}") + 1]
    end = json.loads(text)["end"]
    return end["sum_received"]["bits_per_second"] / 1e6


def parse(out):
    s = sections(out)
    rtts = [float(x) for x in re.findall(r"time=([0-9.]+) ms", s["ping"])]
    connects = [(float(b) - float(a)) * 1000
                for a, b in re.findall(r"connect-us ([0-9.]+) ([0-9.]+)", s["connect"])]
    if not rtts or not connects:
        raise ValueError("no ping or connect figures")
    return {
        "guest->host Mbit/s": iperf_mbps(s["tx"]),
        "host->guest Mbit/s": iperf_mbps(s["rx"]),
        "ping rtt ms (median)": statistics.median(rtts),
        "tcp connect ms (median)": statistics.median(connects),
    }


HIGHER_IS_BETTER = {"guest->host Mbit/s": True, "host->guest Mbit/s": True,
                    "ping rtt ms (median)": False, "tcp connect ms (median)": False}


def run_vm(cmd, timeout):
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return proc.stdout.decode(errors="replace")


class HttpServer:
    """An HTTP server on 127.0.0.1 for the connect-time figures (serves an empty dir)."""

    def __init__(self, root):
        handler = functools.partial(Quiet, directory=root)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mem", default="1G")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1, help="boots per engine (medians)")
    parser.add_argument("--quokka-net", default="",
                        help="extra --net options for quokka, e.g. mtu=65520")
    parser.add_argument("--engines", default="quokka,quokka-mtu1500,qemu,quokka-tap,qemu-tap",
                        help="quokka: its default (user mode: MTU 65520); quokka-mtu1500: "
                             "QEMU's link MTU; qemu; quokka-tap, qemu-tap: through a tap")
    args = parser.parse_args()
    image = os.path.join(GUEST, "debian.img")
    for path, how in ((QUOKKA, "make all"), (image, "make debian")):
        if not os.path.exists(path):
            sys.exit(f"bench: {path} is missing ({how})")
    if not shutil.which("iperf3"):
        sys.exit("bench: iperf3 is not installed on the host (scripts/install-deps.sh)")
    engines = [e for e in args.engines.split(",") if not e.startswith("qemu") or QEMU]
    figures = {}
    with tempfile.TemporaryDirectory(prefix="quokka-net-bench-") as tmp:
        user = [e for e in engines if not e.endswith("-tap")]
        tap = [e for e in engines if e.endswith("-tap")]
        if user:
            with user_servers(tmp) as (iperf_port, http_port):
                run_engines(args, user, image, tmp, [],
                            guest_script(iperf_port, http_port, args.seconds, False), figures)
        if tap:
            with tap_namespace(tmp) as ns:
                if ns is not None:
                    run_engines(args, tap, image, tmp, ["ip", "netns", "exec", ns],
                                guest_script(NS_IPERF_PORT, NS_HTTP_PORT, args.seconds, True),
                                figures)
    for ours, theirs in (("quokka", "qemu"), ("quokka-mtu1500", "qemu"),
                         ("quokka-tap", "qemu-tap")):
        if ours not in figures or theirs not in figures:
            continue
        for label, higher in HIGHER_IS_BETTER.items():
            print(f"{ours} / {theirs} {label}: "
                  f"{ratio(figures[ours][label], figures[theirs][label])}"
                  f" ({'higher' if higher else 'lower'} is better)")
    return 0


def run_engines(args, engines, image, tmp, prefix, script, figures):
    """Boot each engine args.runs times with script; medians into figures[engine]."""
    encoded = base64.b64encode(script.encode()).decode()
    append = f"console=ttyS0 root=/dev/vda rw quiet quokka.run64={encoded}"
    for engine in engines:
        runs = []
        for i in range(args.runs):
            root = os.path.join(tmp, f"root-{engine}-{i}.img")
            subprocess.run(["cp", "--sparse=always", image, root], check=True)
            out = run_vm(prefix + vm_cmd(engine, root, append, args.mem, args.quokka_net),
                         timeout=900)
            os.unlink(root)
            try:
                runs.append(parse(out))
            except (ValueError, KeyError, IndexError) as e:
                sys.exit(f"bench: no figures from {engine} ({e}): ...{out[-3000:]}")
        figures[engine] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for label, v in figures[engine].items():
            print(f"{engine:14s} {label:24s} {v:10.2f}", flush=True)


@contextlib.contextmanager
def user_servers(tmp):
    """iperf3 -s and an HTTP server on the host's 127.0.0.1 (10.0.2.2 to the guest)."""
    http_server = HttpServer(tmp)
    port = free_port()
    iperf = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield port, http_server.port
    finally:
        iperf.kill()
        iperf.wait()
        http_server.close()


NS_IPERF_PORT, NS_HTTP_PORT = 5201, 8000


def ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tap_namespace(tmp):
    """A network namespace with the tap (NS_ADDR/24), iperf3 -s and an HTTP server in it;
    yields its name, or None (with the reason printed) where it cannot be made."""
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
        print("bench: tap engines skipped: need root, iproute2 and /dev/net/tun")
        yield None
        return
    ns = f"quokka-netbench-{os.getpid()}"
    made = ip("netns", "add", ns)
    if made.returncode != 0:
        print(f"bench: tap engines skipped: cannot create a namespace: {made.stderr.strip()}")
        yield None
        return
    procs = []
    try:
        steps = [("-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap"),
                 ("-n", ns, "link", "set", "lo", "up"),
                 ("-n", ns, "addr", "add", f"{NS_ADDR}/24", "dev", TAP),
                 ("-n", ns, "link", "set", TAP, "up")]
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                print(f"bench: tap engines skipped: ip {' '.join(step)}: {done.stderr.strip()}")
                yield None
                return
        nsexec = ["ip", "netns", "exec", ns]
        procs.append(subprocess.Popen(
            nsexec + ["iperf3", "-s", "-B", NS_ADDR, "-p", str(NS_IPERF_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            nsexec + [sys.executable, "-m", "http.server", "--bind", NS_ADDR,
                      "--directory", tmp, str(NS_HTTP_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        yield ns
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        ip("netns", "del", ns)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())

"""The gdbstub (--gdb): Debian's gdb in batch mode against the default guest on the
translator, and a raw GDB remote-protocol client for what gdb's batch mode cannot do
(Ctrl-C, malformed packets, unmapped memory, threads of an SMP guest).

Kernel symbol addresses come from the kernel itself: a first boot with `nokaslr` prints
/proc/kallsyms lines (the Debian package's System.map is a placeholder); with nokaslr the
addresses are the same at every boot."""
import base64
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD, QUOKKA

GUEST = os.path.join(BUILD, "guest")
GDB = shutil.which("gdb") or "/usr/bin/gdb"
APPEND = "console=ttyS0 nokaslr quiet quokka.nomod quokka.nonet"
SYMBOLS = ("start_kernel", "do_one_initcall", "linux_banner", "jiffies")


@pytest.fixture(scope="module")
def ksyms():
    for name in ("bzImage", "initrd.cpio.gz"):
        if not os.path.exists(os.path.join(GUEST, name)):
            pytest.fail(f"build/guest/{name} is missing: run 'make guest'")
    if not os.path.exists(GDB):
        pytest.skip("gdb is not installed")
    pattern = " (%s)$" % "|".join(SYMBOLS)
    cmd = base64.b64encode(f"grep -E '{pattern}' /proc/kallsyms".encode()).decode()
    out = subprocess.run([QUOKKA, "run", "--accel", "tcg", "--append",
                          f"{APPEND} quokka.run64={cmd}"], stdin=subprocess.DEVNULL,
                         capture_output=True, timeout=180).stdout.decode(errors="replace")
    syms = {}
    for m in re.finditer(r"^([0-9a-f]{16}) \w (\w+)\r?$", out, re.M):
        syms[m.group(2)] = int(m.group(1), 16)
    assert set(SYMBOLS) <= set(syms), out[-3000:]
    return syms


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_quokka(gdb_addr, *extra, run="true"):
    cmd = base64.b64encode(run.encode()).decode()
    return subprocess.Popen([QUOKKA, "run", "--accel", "tcg", *extra, "--append",
                             f"{APPEND} quokka.run64={cmd}", "--gdb", gdb_addr],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(proc, timeout=120):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def run_gdb(port, commands, timeout=150):
    script = ["set pagination off", "set confirm off",
              f"target remote 127.0.0.1:{port}", *commands]
    with tempfile.NamedTemporaryFile("w", suffix=".gdb", delete=False) as f:
        f.write("\n".join(script) + "\n")
    try:
        proc = subprocess.run([GDB, "-nx", "-batch", "-x", f.name], capture_output=True,
                              timeout=timeout)
    finally:
        os.unlink(f.name)
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def reg(out, name):
    """The last value gdb's `info registers` printed for name."""
    values = re.findall(r"^%s\s+(0x[0-9a-f]+)" % name, out, re.M)
    assert values, f"no {name} in:\n{out}"
    return int(values[-1], 16)


def test_gdb_breakpoint_registers_memory_step_watch(ksyms):
    port = free_port()
    proc = start_quokka(f"tcp:127.0.0.1:{port}")
    start, initcall = ksyms["start_kernel"], ksyms["do_one_initcall"]
    out = run_gdb(port, [
        f"break *{start:#x}",
        "continue",
        "info registers rip cs ss cr0 cr3 cr4 efer eflags",
        f"x/s {ksyms['linux_banner']:#x}",
        "stepi",
        "echo STEPPED\\n",
        "info registers rip",
        "delete",
        f"hbreak *{initcall:#x}",
        "continue",
        "echo INITCALL\\n",
        "info registers rip",
        "delete",
        f"watch *(long *){ksyms['jiffies']:#x}",
        "continue",
        "echo WATCHED\\n",
        "delete",
        "continue",
    ])
    rc, stdout, stderr = finish(proc)
    assert f"Breakpoint 1, {start:#018x}" in out, out
    first = out.split("STEPPED")[0]
    assert reg(first, "rip") == start
    assert reg(first, "cs") == 0x10
    assert reg(first, "cr0") & 0x80000001 == 0x80000001  # paging, protected mode
    assert reg(first, "cr3") != 0 and reg(first, "cr3") & 0xfff == 0
    assert reg(first, "efer") & 0x500 == 0x500  # LME, LMA
    assert "Linux version 6." in first, out
    stepped = out.split("STEPPED")[1].split("INITCALL")[0]
    assert reg(stepped, "rip") != start
    initcall_part = out.split("INITCALL")[1].split("WATCHED")[0]
    assert reg(initcall_part, "rip") == initcall
    watched = out.split("WATCHED")[0]
    assert re.search(r"Hardware watchpoint \d+: \*\(long \*\)0x[0-9a-f]+\s+Old value = (\d+)\s+"
                     r"New value = (\d+)", watched), out
    assert "exited normally" in out or "exited with code" in out, out
    assert "quokka-guest: ready" in stdout, stdout[-2000:] + stderr
    assert rc == 0, (rc, stderr)
    assert "sandbox" not in stderr, stderr  # on, and nothing the stub needs is refused


class Client:
    """A minimal GDB remote-protocol client (acknowledged mode)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, payload):
        data = payload.encode() if isinstance(payload, str) else payload
        self.send_raw(b"$%s#%02x" % (data, sum(data) & 0xff))

    def read_byte(self):
        while not self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def reply(self):
        """The next packet's payload (acks skipped), after checking its checksum."""
        while self.read_byte() != b"$":
            pass
        data = b""
        while (c := self.read_byte()) != b"#":
            data += c
        csum = int(self.read_byte() + self.read_byte(), 16)
        assert csum == sum(data) & 0xff
        self.send_raw(b"+")
        return data.decode()

    def cmd(self, payload):
        self.send(payload)
        return self.reply()


def connect_unix(path, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            s.settimeout(60)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def seccomp_filters(pid):
    """{thread name: (Seccomp mode, number of filters)} for every thread of pid."""
    threads = {}
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, task)) as f:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        threads[fields["Name"]] = (int(fields["Seccomp"]), int(fields.get("Seccomp_filters", 0)))
    return threads


def test_raw_protocol_interrupt_errors_and_threads(ksyms, tmp_path):
    path = str(tmp_path / "gdb.sock")
    proc = start_quokka(f"unix:{path}", "--cpus", "2", run="sleep 30")
    try:
        c = Client(connect_unix(path))
        # The sandbox stays on with --gdb: every thread, the stub's too, has its own filter.
        threads = seccomp_filters(proc.pid)
        assert {"gdbstub", "vcpu0", "vcpu1", "quokka"} <= set(threads), threads
        assert all(v == (2, 1) for v in threads.values()), threads
        assert "PacketSize=1000" in c.cmd("qSupported:multiprocess+;xmlRegisters=i386")
        assert c.cmd("?").startswith("T05")
        assert c.cmd("qfThreadInfo") == "m1,2"
        assert c.cmd("qsThreadInfo") == "l"
        assert c.cmd("Hg2") == "OK"
        assert c.cmd("Hg3") == "E22"
        xml = ""
        while True:  # in chunks of at most a packet
            part = c.cmd("qXfer:features:read:target.xml:%x,ffff" % len(xml))
            assert part[0] in "ml" and len(part) <= 4096
            xml += part[1:]
            if part[0] == "l":
                break
        assert "org.gnu.gdb.i386.core" in xml and "<reg name=\"cr3\"" in xml
        assert xml.endswith("</target>")
        # A bad checksum is refused ('-'), then the stub answers the next good packet.
        c.send_raw(b"$g#00")
        assert c.read_byte() == b"-"
        assert c.cmd("Hg1") == "OK"
        regs = c.cmd("g")
        # x87/SSE as reset leaves them: FCW 0x37f (byte 244), MXCSR 0x1f80 (byte 532)
        assert len(regs) == 1200 and "x" not in regs
        assert regs[488:496] == "7f030000" and regs[1064:1072] == "801f0000", regs
        assert c.cmd("mffff800000000000,8") == "E14"  # non-canonical
        assert c.cmd("m0,zz") == "E01"
        assert c.cmd("Z9,0,1") == ""
        # Run, let Linux boot a while, then Ctrl-C: all-stop, SIGINT.
        c.send("c")
        time.sleep(3)
        c.send_raw(b"\x03")
        stop = c.reply()
        assert stop.startswith("T02thread:"), stop
        rip_hex = c.cmd("p10")  # register 16: rip, little-endian hex
        assert rip_hex == c.cmd("g")[256:272]
        assert int.from_bytes(bytes.fromhex(rip_hex), "little") != 0
        # A breakpoint where the boot certainly goes, then the stop names the thread.
        assert c.cmd("Z0,%x,1" % ksyms["linux_banner"]) == "OK"  # data: never executed
        assert c.cmd("z0,%x,1" % ksyms["linux_banner"]) == "OK"
        c.send("k")
        rc, _, err = finish(proc, 30)
        assert rc == 128 + 9, err
        assert "sandbox" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def symbol(elf, name):
    """A payload symbol's address (the payloads are ELF32 files with 64-bit code: gdb is
    given addresses, not the file)."""
    out = subprocess.run(["nm", elf], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) \w %s$" % name, out, re.M)
    assert m, out
    return int(m.group(1), 16)


def test_gdb_x87_sse_registers():
    """fpu64.elf loads known x87/SSE values and stops at gdb_stop: gdb reads them (st0/st1,
    the tag and status words, xmm1, mxcsr with the PE flag the inexact DIVSS raised), writes
    xmm2, st1 and mxcsr (unmasking divide-by-zero) and continues; the payload prints what it
    then sees, and its DIVSS by zero now raises #XM (the translator re-derived its MXCSR
    fast-path state from the written value)."""
    if not os.path.exists(GDB):
        pytest.skip("gdb is not installed")
    elf = os.path.join(BUILD, "payloads", "fpu64.elf")
    stop = symbol(elf, "gdb_stop")
    port = free_port()
    proc = subprocess.Popen([QUOKKA, "run", "--accel", "tcg", "--kernel", elf,
                             "--gdb", f"tcp:127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = run_gdb(port, [
        f"break *{stop:#x}",
        "continue",
        "info registers st0 st1 mxcsr",
        "p/x $xmm1.v2_int64",
        "p/x $ftag",
        "p/x $fstat",
        "p/x $fctrl",
        "set var $xmm2.v2_int64[0] = 0x0123456789abcdef",
        "set var $st1 = 7",
        "set var $mxcsr = 0x1d80",
        "p/x $xmm2.v2_int64",
        "p $st1",
        "p/x $mxcsr",
        "delete",
        "continue",
    ])
    rc, stdout, stderr = finish(proc)
    assert re.search(r"^st0\s+1\s+\(raw 0x3fff8000000000000000\)", out, re.M), out
    assert re.search(r"^st1\s+2\.5\s+\(raw 0x4000a000000000000000\)", out, re.M), out
    assert re.search(r"^mxcsr\s+0x1fa0\s+\[ PE IM DM ZM OM UM PM \]", out, re.M), out
    assert "= {0x1122334455667788, 0x99aabbccddeeff00}" in out, out
    assert "= 0xfff\n" in out and "= 0x3000\n" in out and "= 0x37f\n" in out, out
    assert "= {0x123456789abcdef, 0x0}" in out and "= 7\n" in out, out
    assert "= 0x1d80" in out or "= [ IM DM OM UM PM ]" in out, out
    assert "xmm2 01234567:89abcdef\nmxcsr 00001d80\nst1 7\nxm 1\nPASS" in \
        stdout.replace("\r\n", "\n"), stdout + stderr
    assert rc == 33, (rc, stdout, stderr)

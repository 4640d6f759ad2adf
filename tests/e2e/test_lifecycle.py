"""Console and process lifecycle: host input reaches the guest UART (pipe and terminal), the
terminal is restored, signals end the VM cleanly, console file/none work."""
import os
import pty
import signal
import subprocess
import termios
import time

from conftest import EXIT_PASS, QUOKKA, describe, payload, read_until, run_quokka


def test_pipe_input_reaches_guest(accel):
    proc = subprocess.run([QUOKKA, "run", "--accel", accel, "--kernel", payload("echo")],
                          input=b"Aq", capture_output=True, timeout=60)
    out = proc.stdout.decode(errors="replace")
    assert "echo ready" in out
    assert "got 41" in out and "got 71" in out, out
    assert proc.returncode == EXIT_PASS



def test_terminal_raw_mode_and_restore(accel):
    """On a tty, input goes to the guest byte by byte (raw mode, no line buffering: no Enter
    is typed) and the terminal settings are restored on exit."""
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen([QUOKKA, "run", "--accel", accel, "--kernel", payload("echo")],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    try:
        assert b"echo ready" in read_until(master, b"echo ready", 30)
        os.write(master, b"z")
        assert b"got 7a" in read_until(master, b"got 7a", 30)
        # While quokka runs, the terminal is raw: no canonical mode, no echo.
        during = termios.tcgetattr(slave)
        assert not during[3] & termios.ICANON and not during[3] & termios.ECHO
        os.write(master, b"q")
        assert proc.wait(timeout=30) == EXIT_PASS
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = termios.tcgetattr(slave)
    assert after == before
    os.close(master)
    os.close(slave)


def test_sigterm_and_sigint_end_vm(accel):
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([QUOKKA, "run", "--accel", accel, "--kernel", payload("io"),
                                 "--append", "count=4000000000"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert proc.poll() is None, "payload ended too early"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + sig, (proc.returncode, err)
        assert f"terminated by signal {int(sig)}" in err.decode()


def test_console_file_and_none(accel, tmp_path):
    log = tmp_path / "serial.log"
    res = run_quokka(["--accel", accel, "--kernel", payload("hello"), "--console", f"file:{log}"])
    assert res.rc == EXIT_PASS, describe(res)
    assert res.stdout == ""
    assert "hello from quokka payload" in log.read_text()
    res = run_quokka(["--accel", accel, "--kernel", payload("hello"), "--console", "none"])
    assert res.rc == EXIT_PASS and res.stdout == "", describe(res)


def test_console_file_unwritable(accel, tmp_path):
    res = run_quokka(["--accel", accel, "--kernel", payload("hello"), "--console",
                      f"file:{tmp_path}/no/such/dir/log"])
    assert res.rc == 2, describe(res)
    assert "console file" in res.stderr and len(res.stderr.strip().splitlines()) == 1

"""waiter.Client: connecting, the socket path, ping/stats, python3 -m waiter,
errors mapped to exceptions, and a connection that closes mid-call."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import waiter
from waiter import errors

from conftest import wait_until


def test_socket_path_follows_the_cli(monkeypatch):
    monkeypatch.setenv("WAITER_SOCKET", "/x/y.sock")
    assert waiter.socket_path() == "/x/y.sock"
    assert waiter.socket_path("/given") == "/given"
    monkeypatch.setenv("WAITER_SOCKET", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert waiter.socket_path() == "/run/user/7/waiter/waiterd.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative")
    assert waiter.socket_path() == f"/tmp/waiter-{os.geteuid()}/waiterd.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert waiter.socket_path() == f"/tmp/waiter-{os.geteuid()}/waiterd.sock"


def test_client_uses_waiter_socket(daemon, monkeypatch):
    monkeypatch.setenv("WAITER_SOCKET", daemon.sock)
    with waiter.Client() as c:
        assert c.path == daemon.sock
        assert c.ping() > 0


def test_no_daemon_is_unreachable(tmpdir_path):
    with pytest.raises(waiter.Unreachable) as e:
        waiter.Client(str(tmpdir_path / "none.sock"))
    assert "no waiterd at" in str(e.value)
    assert isinstance(e.value, ConnectionError)


def test_hello_ping_stats(w, daemon):
    assert w.server_version == waiter.__version__
    assert w.connection_id >= 1 and w.max_frame == 1048576
    assert abs(w.ping() - time.time()) < 60
    s = w.stats()
    assert s.pid == daemon.pid
    assert s.connections == 1 and s.server_version == w.server_version
    assert isinstance(s.uptime, float)


def test_python_m_waiter_prints_version_and_stats(daemon):
    out = subprocess.run([sys.executable, "-m", "waiter", "-S", daemon.sock],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"waiter-python {waiter.__version__}"
    assert f"pid={daemon.pid}" in lines
    assert any(line.startswith("loop_lag_p99=") for line in lines)


def test_python_m_waiter_without_daemon(tmpdir_path):
    out = subprocess.run([sys.executable, "-m", "waiter", "-S", str(tmpdir_path / "x")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 69 and "no waiterd" in out.stderr


def test_every_code_has_its_exception():
    names = {1: "InvalidArgument", 2: "NotFound", 3: "PermissionDenied",
             4: "ResourceExhausted", 5: "UnsupportedVersion", 6: "FrameTooLarge",
             7: "Internal", 8: "UnsupportedOperation", 9: "ProtocolError",
             10: "TimedOut", 11: "FailedPrecondition", 12: "ShuttingDown"}
    for code, name in names.items():
        e = errors.from_code(code, "m")
        assert type(e).__name__ == name and e.code == code and e.message == "m"
        assert isinstance(e, waiter.Error) and getattr(waiter, name) is type(e)
    unknown = errors.from_code(99, "new")
    assert type(unknown) is waiter.Error and unknown.code == 99


def test_daemon_errors_raise_their_exception(w):
    with pytest.raises(waiter.NotFound):
        w.cancel(123456)
    with pytest.raises(waiter.NotFound):
        w.get("no-such-name")
    with pytest.raises(waiter.InvalidArgument, match="1ms"):
        w.every(0.0001)
    t = w.after(0)
    t.wait()
    with pytest.raises(waiter.FailedPrecondition):
        t.cancel()
    w.after(3600, name="taken")
    with pytest.raises(waiter.FailedPrecondition):
        w.submit(["true"], name="taken")
    with pytest.raises(waiter.InvalidArgument):
        w.events(kinds=["bogus"])
    with pytest.raises(waiter.InvalidArgument):
        w.submit("echo hi")
    assert w.ping()            # the connection is still good


def test_wait_timeout_raises_timed_out(w):
    t = w.after(3600)
    with pytest.raises(waiter.TimedOut) as e:
        t.wait(timeout=0.05)
    assert isinstance(e.value, TimeoutError)
    with pytest.raises(waiter.TimedOut):
        w.wait(t.id, 0)
    assert t.refresh().state == "active"     # the object itself is unaffected


def test_resource_exhausted_and_permission_denied(start_daemon):
    d = start_daemon("--max-objects-per-client", "2", "--no-tasks")
    with d.client() as c:
        c.after(3600)
        c.after(3600)
        with pytest.raises(waiter.ResourceExhausted):
            c.after(3600)
        with pytest.raises(waiter.PermissionDenied):
            c.submit(["true"])
        assert c.ping()


def wait_in_thread(a, b, target, **kw):
    """Start a.wait(target, **kw) in a thread and return once the daemon has
    read that Wait (it counted one request more than b's own stats calls)."""
    got = []

    def run():
        try:
            got.append(a.wait(target, **kw))
        except waiter.Error as e:
            got.append(e)
    first = b.stats().requests
    th = threading.Thread(target=run)
    th.start()
    polls = [0]

    def pending():
        polls[0] += 1
        return b.stats().requests - first > polls[0]
    wait_until(pending)
    return th, got


def test_daemon_killed_mid_wait_raises_connection_lost(daemon):
    a, b = daemon.client(), daemon.client()
    # reconnect=0: raise at once (test_durability.py: waiting on through a
    # restart, the default).
    th, got = wait_in_thread(a, b, a.after(3600), reconnect=0)
    daemon.kill(signal.SIGKILL)
    th.join(30)
    assert len(got) == 1 and isinstance(got[0], waiter.ConnectionLost), got
    assert "closed the connection" in str(got[0]) or "broke" in str(got[0])
    with pytest.raises(waiter.ConnectionLost):     # and every later call
        a.ping()
    a.close()
    b.close()


def test_shutdown_while_waiting_raises_shutting_down(daemon):
    a, b = daemon.client(), daemon.client()
    th, got = wait_in_thread(a, b, a.after(3600, lifetime="daemon"), reconnect=0)
    b.shutdown()
    th.join(30)
    assert len(got) == 1 and isinstance(got[0], waiter.ShuttingDown), got
    with pytest.raises(waiter.ConnectionLost):
        a.ping()
    a.close()
    b.close()
    daemon.kill()


def test_close_and_reconnect(w, daemon):
    t = w.after(3600)
    old = w.connection_id
    w.reconnect()
    assert w.connection_id != old
    # The timer had lifetime "connection": closing cancelled it.
    assert w.wait(t.id).state == "cancelled"
    w.close()
    with pytest.raises(waiter.ConnectionLost):
        w.ping()


def test_connection_error_at_accept_is_reported(start_daemon):
    d = start_daemon("--max-clients", "1")
    with d.client():
        for _ in range(3):
            with pytest.raises(waiter.ResourceExhausted):
                d.client()


def test_frame_too_large_then_connection_lost(w):
    with pytest.raises(waiter.FrameTooLarge):
        w.submit(["cat"], stdin=b"x" * (2 << 20))
    with pytest.raises(waiter.ConnectionLost):
        w.ping()
    with pytest.raises(waiter.ConnectionLost):
        w.fileno()


def test_fileno_is_the_socket(w, daemon):
    import select
    fd = w.fileno()
    assert isinstance(fd, int) and fd >= 0
    t = w.after(3600)
    assert select.select([w], [], [], 0) == ([], [], [])    # nothing to read yet
    with daemon.client() as other:
        other.cancel(t.id)              # its event is sent to w before this returns
    assert select.select([fd], [], [], 30)[0] == [fd]
    assert next(t.events()).kind == "cancelled"
    w.close()
    with pytest.raises(waiter.ConnectionLost):
        w.fileno()


def test_threads_share_a_client_and_close_interrupts_a_reader(w):
    got = []

    def reader():
        try:
            next(w.events(kinds=["cancelled"]))
        except Exception as e:          # what the blocked reader ends with
            got.append(e)
    th = threading.Thread(target=reader)
    th.start()
    wait_until(lambda: w._reading)      # the thread is blocked in recv()
    assert w.ping() > 0                 # another thread's call still goes through
    t = w.after(3600)
    assert t.refresh().state == "active"
    w.close()
    th.join(5)
    assert not th.is_alive()
    assert len(got) == 1 and isinstance(got[0], waiter.ConnectionLost), got
    assert "client closed" in str(got[0])
    with pytest.raises(waiter.ConnectionLost):
        w.ping()


def test_close_interrupts_a_blocked_wait(w):
    got = []
    t = w.after(3600)

    def waiter_thread():
        try:
            w.wait(t)
        except Exception as e:
            got.append(e)
    th = threading.Thread(target=waiter_thread)
    th.start()
    wait_until(lambda: w._reading)
    w.close()
    th.join(5)
    assert not th.is_alive() and isinstance(got[0], waiter.ConnectionLost), got


def test_default_socket_of_another_uid_is_refused(tmpdir_path, monkeypatch):
    """At the default socket the client talks only to a daemon of its own
    uid or root's; a socket named explicitly is trusted (as in the CLI)."""
    import asyncio
    import waiter.aio
    from conftest import WAITERD
    os.chmod(tmpdir_path, 0o711)
    xdg = tmpdir_path / "xdg"
    xdg.mkdir(mode=0o700)
    os.chown(xdg, 65534, 65534)
    sock = xdg / "waiter" / "waiterd.sock"
    subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    str(WAITERD), "-S", str(sock), "--allow-uid", "0", "--daemonize",
                    "--log-file", str(xdg / "nobody.log")], check=True, timeout=60)
    pid = int((xdg / "waiter" / "waiterd.sock.lock").read_text().split()[0])
    try:
        monkeypatch.delenv("WAITER_SOCKET", raising=False)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
        with pytest.raises(errors.PermissionDenied, match="runs as uid 65534"):
            waiter.Client()
        with pytest.raises(errors.PermissionDenied, match="runs as uid 65534"):
            asyncio.run(waiter.aio.connect().__aenter__())
        with waiter.Client(str(sock)) as w:
            w.ping()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"))

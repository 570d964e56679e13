"""The Python client across a restart of the daemon (issue 8,
doc/durability.md): wait() connects again and waits on, for a daemon that
keeps state; says the object is gone when the daemon came back without it;
gives up after its reconnect bound."""

import asyncio
import os
import shlex
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

import waiter
import waiter.aio
from conftest import WAITERD, Daemon, wait_until


def restart(d: Daemon, *flags: str) -> None:
    """Start a daemon again on d's socket, with flags."""
    wrapper = shlex.split(os.environ.get("WAITERD_WRAPPER", ""))
    subprocess.run([*wrapper, str(WAITERD), "-S", d.sock, "--daemonize", "--log-file", str(d.log),
                    *flags], check=True, timeout=60)
    d.pid = int(Path(d.sock + ".lock").read_text().split()[0])


def wait_in_thread(c: waiter.Client, *args: Any, **kw: Any) -> Dict[str, Any]:
    """Run c.wait in a thread; the dict gets "result" or "error"."""
    out: Dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = c.wait(*args, **kw)
        except Exception as e:      # noqa: BLE001 - handed to the test
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    out["thread"] = t
    return out


def waits(c: waiter.Client) -> int:
    return int(c.stats().waits)


def test_wait_rides_out_a_crash(start_daemon: Callable[..., Daemon], tmpdir_path: Path) -> None:
    state = str(tmpdir_path / "state")
    flag = tmpdir_path / "never"
    d = start_daemon("--state-dir", state)
    with d.client() as c, d.client() as probe:
        t = c.submit(["sh", "-c", f"until [ -e {flag} ]; do sleep 0.05; done"],
                     lifetime="daemon")
        wait_until(lambda: c.get(t.id).info.task.state == "running")
        out = wait_in_thread(c, t.id, reconnect=30)
        wait_until(lambda: waits(probe) >= 1)
        d.kill(signal.SIGKILL)
        restart(d, "--state-dir", state)
        out["thread"].join(60)
        assert "error" not in out, out.get("error")
        # It was running when the daemon died: the answer is "lost".
        r = out["result"]
        assert r.state == "lost"
        assert "the daemon stopped while it ran" in r.error
        assert c.instance == probe.instance != 0


def test_wait_rides_out_a_stop_and_gets_the_timer(start_daemon: Callable[..., Daemon],
                                                  tmpdir_path: Path) -> None:
    state = str(tmpdir_path / "state")
    d = start_daemon("--state-dir", state)
    with d.client() as c, d.client() as probe:
        timer = c.after(1.5, lifetime="daemon")
        out = wait_in_thread(c, timer.id, reconnect=30)
        wait_until(lambda: waits(probe) >= 1)
        d.kill(signal.SIGTERM)
        restart(d, "--state-dir", state)
        out["thread"].join(60)
        assert "error" not in out, out.get("error")
        assert out["result"].state == "completed"
        assert out["result"].id == timer.id


def test_wait_on_a_daemon_back_without_state_is_not_found(
        start_daemon: Callable[..., Daemon]) -> None:
    d = start_daemon()
    with d.client() as c, d.client() as probe:
        timer = c.after(3600, lifetime="daemon")
        out = wait_in_thread(c, timer.id, reconnect=30)
        wait_until(lambda: waits(probe) >= 1)
        d.kill(signal.SIGKILL)
        restart(d)
        out["thread"].join(60)
        assert isinstance(out.get("error"), waiter.NotFound), out
        assert "restarted without its state" in str(out["error"])


def test_wait_gives_up_after_its_reconnect_bound(start_daemon: Callable[..., Daemon],
                                                 tmpdir_path: Path) -> None:
    d = start_daemon("--state-dir", str(tmpdir_path / "state"))
    with d.client() as c, d.client() as probe:
        timer = c.after(3600, lifetime="daemon")
        out = wait_in_thread(c, timer.id, reconnect=0.3)
        wait_until(lambda: waits(probe) >= 1)
        d.kill(signal.SIGKILL)
        out["thread"].join(60)
        assert isinstance(out.get("error"), waiter.ConnectionLost), out
        # reconnect=0: the first error is raised at once
        restart(d, "--state-dir", str(tmpdir_path / "state"))
    with d.client() as c2, d.client() as probe2:
        out = wait_in_thread(c2, timer.id, reconnect=0)
        wait_until(lambda: waits(probe2) >= 1)
        d.kill(signal.SIGKILL)
        out["thread"].join(60)
        assert isinstance(out.get("error"), waiter.ConnectionLost), out


def test_aio_wait_rides_out_a_crash(start_daemon: Callable[..., Daemon],
                                    tmpdir_path: Path) -> None:
    state = str(tmpdir_path / "state")
    d = start_daemon("--state-dir", state)

    async def main() -> Any:
        async with waiter.aio.Client(d.sock) as c:
            timer = await c.after(1.5, lifetime="daemon")
            task = asyncio.ensure_future(c.wait(timer.id, reconnect=30))
            with d.client() as probe:
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: wait_until(lambda: waits(probe) >= 1))
            d.kill(signal.SIGKILL)
            restart(d, "--state-dir", state)
            return await asyncio.wait_for(task, 60)
    info = asyncio.run(main())
    assert info.state == "completed"

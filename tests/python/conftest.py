"""Fixtures for the Python client's tests: each test gets its own waiterd on
a private socket in a temporary directory, started with --daemonize (which
returns once the socket serves) and stopped by its pid with SIGTERM; a test
fails if the daemon's log shows a sanitizer report (STYLE "Tests").

Environment: WAITER_BUILDDIR (where waiterd was built; `make check` sets it),
WAITERD_WRAPPER (a command to run waiterd under, e.g. valgrind)."""

import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import waiter

BUILDDIR = Path(os.environ.get("WAITER_BUILDDIR") or Path(__file__).resolve().parents[2])
WAITERD = BUILDDIR / "waiterd"
BAD_LOG = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error|ERROR SUMMARY: [1-9]")


def wait_until(cond: Callable[[], bool], limit: float = 20.0) -> None:
    """Poll cond until it holds (at most limit seconds): wait for a state,
    never for a guessed time."""
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """Is there a process with this pid (not a zombie of ours)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Daemon:
    """One waiterd started for a test."""

    def __init__(self, tmp: Path, flags: List[str]) -> None:
        self.dir = tmp
        self.sock = str(tmp / "w.sock")
        self.log = tmp / "waiterd.log"
        wrapper = shlex.split(os.environ.get("WAITERD_WRAPPER", ""))
        subprocess.run([*wrapper, str(WAITERD), "-S", self.sock, "--daemonize",
                        "--log-file", str(self.log), *flags], check=True, timeout=60)
        self.pid = int(Path(self.sock + ".lock").read_text().split()[0])

    def client(self) -> waiter.Client:
        """A new blocking client of this daemon."""
        return waiter.Client(self.sock)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Signal the daemon and wait until it is gone."""
        if pid_alive(self.pid):
            os.kill(self.pid, sig)
        wait_until(lambda: not pid_alive(self.pid))

    def stop(self) -> None:
        """SIGTERM, wait, and fail on a sanitizer report in the log."""
        self.kill(signal.SIGTERM)
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        bad = [line for line in text.splitlines() if BAD_LOG.search(line)]
        assert not bad, "waiterd reported memory errors:\n" + text


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    """A factory: start_daemon("--max-output", "4096") -> Daemon."""
    started: List[Daemon] = []
    dirs: List[tempfile.TemporaryDirectory] = []

    def start(*flags: str) -> Daemon:
        d = tempfile.TemporaryDirectory(prefix="waiter-py.")
        dirs.append(d)
        daemon = Daemon(Path(d.name), list(flags))
        started.append(daemon)
        return daemon
    yield start
    try:
        for daemon in started:
            daemon.stop()
    finally:
        for d in dirs:
            d.cleanup()


@pytest.fixture
def daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    """A waiterd with default flags."""
    return start_daemon()


@pytest.fixture
def w(daemon: Daemon) -> Iterator[waiter.Client]:
    """A blocking client of the test's daemon."""
    with daemon.client() as c:
        yield c


@pytest.fixture
def tmpdir_path() -> Iterator[Path]:
    """A private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="waiter-py-t.") as d:
        yield Path(d)


def spawn(argv: List[str], **kw: object) -> "subprocess.Popen[bytes]":
    """Start a process the test owns (and must reap)."""
    return subprocess.Popen(argv, **kw)  # type: ignore[call-overload]


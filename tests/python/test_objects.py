"""waiter.Client's objects: timers, tasks, queues, path/process/endpoint
watches, get/list/cancel/wait, names and lifetimes."""

import datetime
import os
import signal
import socket
import time

import pytest

import waiter

from conftest import spawn, wait_until


def test_after_every_at(w):
    t = w.after(0.01)
    assert isinstance(t, waiter.Timer) and t.owned and not t.existed
    info = t.wait()
    assert info.state == "completed" and info.last_event.kind == "timer_fired"
    assert info.last_event.body.last is True
    p = w.every(0.001, count=3)
    fires = [e.body.fire_count for e in p.events()]
    assert fires == [1, 2, 3]
    assert p.refresh().timer.fire_count == 3
    at = w.at(datetime.datetime.now() + datetime.timedelta(milliseconds=10))
    assert at.wait().timer.wall_clock is True
    assert w.at(time.time()).wait().state == "completed"    # past: fires at once


def test_names_lifetimes_get_list_cancel(daemon, w):
    t = w.after(3600, name="nightly", lifetime="daemon")
    again = w.after(1, name="nightly")
    assert again.existed and again.id == t.id and not again.owned
    assert w.get("nightly").id == t.id and w.get(t.id).info.lifetime == "daemon"
    conn = w.after(3600)
    assert [o.id for o in w.timers()] == [t.id, conn.id]
    assert [o.id for o in w.list()] == [t.id, conn.id]
    with daemon.client() as other:
        other.cancel("nightly")
        assert other.wait(t).state == "cancelled"
        assert other.timers() == [] or [o.id for o in other.timers()] == [conn.id]
        assert any(o.id == t.id for o in other.timers(finished=True))
    w.close()
    with daemon.client() as again_c:     # lifetime "connection": gone with w
        info = again_c.wait(conn.id)
        assert info.state == "cancelled"
        assert info.last_event.body.reason == "connection_closed"


def test_submit_and_wait(w, tmpdir_path):
    task = w.submit(["sh", "-c", "echo out; echo err >&2; pwd; echo $FOO; cat"],
                    cwd=str(tmpdir_path), env={"FOO": "bar", "PATH": os.environ["PATH"]},
                    stdin=b"input\n", name="t1", queue="q1")
    assert isinstance(task, waiter.Task)
    r = task.wait()
    assert r.ok and r.state == "succeeded" and r.exit_code == 0 and r.signal == 0
    assert r.stdout == f"out\n{tmpdir_path}\nbar\ninput\n".encode()
    assert r.stderr == b"err\n"
    assert r.duration > 0
    assert w.get("t1").id == task.id
    failed = w.run(shell="exit 3")
    assert failed.state == "failed" and failed.exit_code == 3 and not failed.ok
    assert w.wait(task.id).stdout == r.stdout          # Client.wait on a task
    missing = w.run(["/no/such/program"])
    assert missing.exit_code == 127 and missing.error


def test_env_defaults_to_os_environ(w, monkeypatch):
    monkeypatch.setenv("WAITER_PY_TEST", "from-python")
    assert w.run(shell="echo $WAITER_PY_TEST").stdout == b"from-python\n"


def test_task_timeout_kill_logs_events_output_limit(w):
    slow = w.submit(["sleep", "60"], timeout=0.05, kill_grace=1)
    r = slow.wait()
    assert r.state == "timed_out" and r.signal == signal.SIGTERM
    long = w.submit(["sleep", "60"])
    wait_until(lambda: long.refresh().task.state == "running")
    long.kill("TERM")
    assert long.wait().state == "cancelled"
    big = w.submit(shell="head -c 10000 /dev/zero | tr '\\0' x", output_limit=100)
    kinds = [e.kind for e in big.events()]
    assert kinds[0] == "task_started" and kinds[-1] == "task_done"
    logs = big.logs()
    assert logs.done and len(logs.stdout) == 100 and logs.stdout_dropped == 9900
    assert w.logs(big.id).stdout == logs.stdout


def test_logs_say_when_the_daemon_let_an_ended_tasks_output_go(start_daemon):
    with start_daemon("--max-kept-output", "1000").client() as c:
        old = c.submit(shell="head -c 800 /dev/zero")
        old.wait()
        new = c.submit(shell="head -c 800 /dev/zero")
        new.wait()
        gone = old.logs()
        assert gone.output_released and gone.stdout == b"" and gone.stdout_dropped == 800
        kept = new.logs()
        assert not kept.output_released and len(kept.stdout) == 800


def test_after_and_dependency_failed(w):
    a = w.submit(["true"])
    b = w.submit(["sh", "-c", "exit 1"], after=[a])
    c = w.submit(["true"], after=[b.id])
    assert c.wait().state == "dependency_failed"
    assert a.wait().ok and b.wait().state == "failed"
    assert c.info.task.after == [b.id]


def test_queues_and_tasks_listing(w):
    q = w.queue_set("solo", 1)
    assert (q.name, q.parallel) == ("solo", 1)
    first = w.submit(["sleep", "60"], queue="solo")
    second = w.submit(["true"], queue="solo")
    wait_until(lambda: first.refresh().task.state == "running")
    assert second.refresh().task.state == "queued"
    solo = [x for x in w.queues() if x.name == "solo"][0]
    assert (solo.running, solo.queued) == (1, 1)
    assert [o.id for o in w.tasks(state="running")] == [first.id]
    assert [o.id for o in w.tasks(queue="solo")] == [first.id, second.id]
    first.cancel()
    assert second.wait().ok
    assert {o.id for o in w.tasks(state="succeeded")} == {second.id}


def test_watch_path(w, tmpdir_path):
    watch = w.watch_path(str(tmpdir_path), on=["created"], once=True)
    assert isinstance(watch, waiter.Watch)
    (tmpdir_path / "new").write_text("x")
    events = list(watch.events())
    assert len(events) == 1 and events[0].kind == "path_changed"
    change = events[0].body.changes[0]
    assert (change.kind, change.path) == ("created", str(tmpdir_path / "new"))
    assert watch.wait().state == "completed"
    rec = w.watch_path([str(tmpdir_path)], recursive=True, include=["*.c"],
                       exclude=["skip"], settle=0.05)
    assert rec.info.watch.recursive and rec.info.watch.settle == 0.05
    later = w.watch_path(str(tmpdir_path / "later"), create=True, once=True)
    (tmpdir_path / "later").write_text("")
    assert later.wait().state == "completed"
    with pytest.raises(waiter.NotFound):
        w.watch_path(str(tmpdir_path / "missing"))


def test_watch_pid(w):
    proc = spawn(["sleep", "60"])
    try:
        watch = w.watch_pid(proc.pid)
        assert watch.info.watch.pid == proc.pid
        proc.kill()
        proc.wait()
        info = watch.wait()
        assert info.state == "completed" and info.last_event.kind == "process_exited"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_tcp_and_unix(w, tmpdir_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        ready = w.watch_tcp("127.0.0.1", srv.getsockname()[1], timeout=30)
        info = ready.wait()
        assert info.last_event.kind == "endpoint_ready"
    finally:
        srv.close()
    never = w.watch_unix(str(tmpdir_path / "none.sock"), timeout=0.05)
    info = never.wait()
    assert info.state == "failed" and info.last_event.kind == "watch_timed_out"
    assert "No such file" in info.last_event.body.last_error
    assert {o.id for o in w.watches(finished=True)} >= {ready.id, never.id}
    with pytest.raises(waiter.InvalidArgument):
        w.watch_tcp("bad host", 1)


def test_events_of_an_object_created_elsewhere(daemon, w):
    t = w.every(0.001, count=3, lifetime="daemon", name="shared")
    with daemon.client() as other:
        seen = other.get("shared")
        assert not seen.owned
        assert [e.body.fire_count for e in seen.events()] == [1, 2, 3]
        # Finished, and its events still retained: replayed, then the end.
        assert [e.seq for e in other.get(t.id).events()][-1] > 0


def test_tasks_state_is_case_insensitive(w):
    s = w.submit(["sleep", "60"])
    wait_until(lambda: s.refresh().task.state == "running")
    for name in ("running", "RUNNING", "Running", "task_state_running", "TASK_STATE_RUNNING"):
        assert [o.id for o in w.tasks(state=name)] == [s.id], name
    with pytest.raises(waiter.InvalidArgument):
        w.tasks(state="sprinting")
    w.kill(s, "KILL")                   # Client.kill, by handle and name
    r = s.wait()
    assert (r.state, r.signal) == ("cancelled", signal.SIGKILL)
    assert w.tasks(state="RUNNING") == []


def test_timer_cancel_and_watch_cancel_refresh(w, tmpdir_path):
    t = w.after(3600)
    assert t.cancel() is None
    info = t.wait()
    assert info.state == "cancelled" and info.last_event.final
    assert info.last_event.body.reason == "requested"
    watch = w.watch_path(str(tmpdir_path))
    assert watch.refresh().state == "active" and watch.info.state == "active"
    watch.cancel()
    evs = list(watch.events())
    assert [e.kind for e in evs] == ["cancelled"] and evs[-1].final
    assert watch.refresh().state == "cancelled" and watch.info.state == "cancelled"

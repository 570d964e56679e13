"""waiter.aio: the asyncio client, every call awaited, 1000 concurrent waits,
async event iteration, EventsLost, and a connection that closes mid-call.
(pytest-asyncio is not a dependency: each test runs asyncio.run.)"""

import asyncio
import gc
import os
import signal
import socket
import time

import pytest

import waiter
import waiter.aio

from conftest import spawn


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_connect_context_and_await(daemon):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            assert abs(await w.ping() - time.time()) < 60
            s = await w.stats()
            assert s.pid == daemon.pid and w.server_version == waiter.__version__
        c = await waiter.aio.connect(daemon.sock)
        assert isinstance(c, waiter.aio.Client)
        await c.close()
        with pytest.raises(waiter.ConnectionLost):
            await c.ping()
        with pytest.raises(waiter.Unreachable):
            await waiter.aio.connect(daemon.sock + ".none")
    run(main())


def test_thousand_concurrent_waits(daemon):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            timers = await asyncio.gather(*(w.after(0.01) for _ in range(1000)))
            assert len({t.id for t in timers}) == 1000
            infos = await asyncio.gather(*(t.wait() for t in timers))
            assert all(i.state == "completed" for i in infos)
            assert [i.id for i in infos] == [t.id for t in timers]
    run(main())


def test_timers_tasks_and_errors(daemon, tmpdir_path):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            t = await w.every(0.001, count=2)
            assert [e.body.fire_count async for e in t.events()] == [1, 2]
            assert (await w.at(time.time())).id > t.id
            task = await w.submit(["sh", "-c", "echo hi; exit 2"], cwd=str(tmpdir_path))
            r = await task.wait()
            assert (r.state, r.exit_code, r.stdout) == ("failed", 2, b"hi\n")
            assert (await task.logs()).stdout == b"hi\n"
            assert (await w.logs(task.id)).done
            ok = await w.run(shell="echo $X", env={"X": "y"})
            assert ok.ok and ok.stdout == b"y\n"
            with pytest.raises(waiter.NotFound):
                await w.cancel(10 ** 9)
            with pytest.raises(waiter.TimedOut):
                await (await w.after(3600)).wait(timeout=0.05)
            with pytest.raises(waiter.InvalidArgument):
                await w.every(0.0001)
            long = await w.after(3600, name="long")
            assert (await w.get("long")).id == long.id
            await long.cancel()
            assert (await w.wait(long.id)).state == "cancelled"
            assert [o.id for o in await w.timers(finished=True)][-1] == long.id
            assert (await w.list("task", finished=True))[0].id == task.id
            await (await w.after(3600)).refresh()
    run(main())


def test_queues_kill_watches(daemon, tmpdir_path):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            assert (await w.queue_set("one", 1)).parallel == 1
            assert "one" in [q.name for q in await w.queues()]
            s = await w.submit(["sleep", "60"], queue="one")
            while (await w.tasks(state="running")) == []:
                await asyncio.sleep(0.01)
            await s.kill(signal.SIGKILL)
            assert (await s.wait()).state == "cancelled"
            s2 = await w.submit(["sleep", "60"])
            await w.kill(s2.id)
            assert (await s2.wait()).state == "cancelled"
            watch = await w.watch_path(str(tmpdir_path), once=True)
            (tmpdir_path / "f").write_text("x")
            evs = [e async for e in watch.events()]
            assert evs[-1].body.last and evs[-1].body.changes[0].path == str(tmpdir_path / "f")
            proc = spawn(["sleep", "60"])
            pw = await w.watch_pid(proc.pid)
            proc.kill()
            proc.wait()
            assert (await pw.wait()).last_event.kind == "process_exited"
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen()
            tcp = await w.watch_tcp("127.0.0.1", srv.getsockname()[1])
            assert (await tcp.wait()).state == "completed"
            srv.close()
            un = await w.watch_unix(str(tmpdir_path / "x.sock"), timeout=0.05)
            assert (await un.wait()).state == "failed"
            assert len(await w.watches(finished=True)) >= 4
    run(main())


def test_events_replay_and_filters(daemon):
    d = daemon

    async def main():
        async with waiter.aio.connect(d.sock) as w:
            first = await w.after(0)
            await first.wait()
            stream = w.events(since=0, kinds=["timer_fired"])
            ev = await stream.__anext__()
            assert (ev.seq, ev.object_id) == (1, first.id)
            live = await w.after(0)
            assert (await stream.__anext__()).object_id == live.id
            await w.unsubscribe()
            shared = await w.every(0.001, count=2, name="shared", lifetime="daemon")
            last = 0
            async with waiter.aio.connect(d.sock) as other:
                seen = await other.get("shared")
                assert not seen.owned
                async for e in seen.events():          # subscribes to its id
                    last = e.body.fire_count
                assert last == 2
                by_id = other.events(since=0, ids=[shared.id])
                assert (await by_id.__anext__()).object_id == shared.id
                mark = by_id.last_seq
                await other.reconnect()
                await (await w.after(0)).wait()
                resumed = other.events(since=mark)
                assert (await resumed.__anext__()).seq > mark
    run(main())


def test_events_lost_async(start_daemon):
    d = start_daemon("--max-output", "4096", "--retain-events", "200")

    async def main():
        async with waiter.aio.connect(d.sock) as slow:
            stream = slow.events()
            gate = asyncio.Event()
            lost, seqs = [], []

            async def consume():
                await gate.wait()
                while True:
                    try:
                        ev = await stream.__anext__()
                    except waiter.EventsLost as e:
                        lost.append(e)
                        continue
                    seqs.append(ev.seq)
                    if ev.object_id == end_id[0]:
                        return
            end_id = [0]
            reader = asyncio.ensure_future(consume())
            await stream.start()
            # Stop reading the socket while others publish: pause the transport.
            slow._writer.transport.pause_reading()
            async with waiter.aio.connect(d.sock) as w:
                while (await w.stats()).subscribers != 1:
                    await asyncio.sleep(0.01)
                t = await w.every(0.001, count=2000, lifetime="daemon")
                await w.wait(t.id)
                end = await w.after(0, lifetime="daemon")
                await end.wait()
                end_id[0] = end.id
            slow._writer.transport.resume_reading()
            gate.set()
            await reader
            assert lost and seqs == sorted(seqs)
            assert seqs[-1] == stream.last_seq
    run(main())


def test_connection_lost_mid_wait(daemon):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            never = await w.after(3600)
            pending = asyncio.ensure_future(w.wait(never))
            await w.ping()          # the Wait was read before this Ping
            os.kill(daemon.pid, signal.SIGKILL)
            with pytest.raises(waiter.ConnectionLost):
                await pending
            with pytest.raises(waiter.ConnectionLost):
                await w.ping()
            with pytest.raises(waiter.ConnectionLost):
                await w.events().__anext__()
    run(main())
    daemon.kill()


def test_shutdown_answers_pending_wait(daemon):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            t = await w.after(3600, lifetime="daemon")
            pending = asyncio.ensure_future(w.wait(t))
            events = await w.events().start()
            await w.shutdown()
            with pytest.raises(waiter.ShuttingDown):
                await pending
            kinds = [e.kind async for e in events]
            assert kinds[-1] == "shutdown"
    run(main())
    daemon.kill()


def run_checked(coro):
    """run(), failing on any error the loop reports (e.g. "Future exception
    was never retrieved")."""
    reported = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx))
        await coro
        gc.collect()
        await asyncio.sleep(0)
    run(main())
    assert reported == []


def test_refused_connection_raises_the_daemons_error(start_daemon):
    d = start_daemon("--max-clients", "1")

    async def main():
        async with waiter.aio.connect(d.sock) as w:
            for _ in range(3):
                with pytest.raises(waiter.ResourceExhausted):
                    await waiter.aio.connect(d.sock)
            with pytest.raises(waiter.ResourceExhausted):
                async with waiter.aio.Client(d.sock):
                    pass
            assert await w.ping()
    run_checked(main())


def test_frame_too_large_then_connection_lost_and_closed(daemon):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            with pytest.raises(waiter.FrameTooLarge):
                await w.submit(["cat"], stdin=b"x" * (2 << 20))
            for _ in range(2):
                with pytest.raises(waiter.ConnectionLost):
                    await w.ping()
            assert w._writer.is_closing()
    run_checked(main())


def test_socket_closed_when_the_daemon_closes(daemon):
    async def main():
        w = await waiter.aio.connect(daemon.sock)
        t = await w.after(3600, lifetime="daemon")
        pending = asyncio.ensure_future(w.wait(t, reconnect=0))
        await w.ping()
        async with waiter.aio.connect(daemon.sock) as b:
            await b.shutdown()
        with pytest.raises(waiter.ShuttingDown):
            await pending
        while w._reader_task is not None and not w._reader_task.done():
            await asyncio.sleep(0.01)
        assert w._writer.is_closing()
        with pytest.raises(waiter.ConnectionLost):
            await w.ping()
        await w.close()
    run_checked(main())
    daemon.kill()


def test_cancelled_waits_do_not_leak(daemon):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            t = await w.after(3600)
            for _ in range(3):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(w.wait(t), 0.05)
                assert w._pending == {}
            assert (await w.stats()).waits == 3     # the daemon keeps them...
            await t.cancel()                        # ...until the object ends
            while (await w.stats()).waits:
                await asyncio.sleep(0.01)
            assert w._pending == {}
            u = await w.after(3600)
            with pytest.raises(waiter.TimedOut):     # the daemon's own timeout
                await w.wait(u.id, timeout=0.05)
            with pytest.raises(waiter.TimedOut):
                await u.wait(timeout=0)
            assert (await w.stats()).waits == 0 and w._pending == {}
    run_checked(main())


def test_async_with_bare_client_and_close_unopened(daemon):
    async def main():
        async with waiter.aio.Client(daemon.sock) as w:
            assert await w.ping() > 0 and w.connection_id >= 1
        with pytest.raises(waiter.ConnectionLost):
            await w.ping()
        never = waiter.aio.Client(daemon.sock)
        await never.close()
        await never.close()
        with pytest.raises(waiter.ConnectionLost):
            await never.ping()
        await never.open()
        assert await never.ping() > 0
        await never.close()
    run_checked(main())


def test_events_ids_by_name_and_every_stream_sees_its_events(daemon):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            t = await w.every(0.001, count=2, name="aio-name", lifetime="daemon")
            await t.wait()
            s = w.events(since=0, ids=["aio-name"])
            evs = [await s.__anext__(), await s.__anext__()]
            assert [e.object_id for e in evs] == [t.id, t.id]
            assert [e.final for e in evs] == [False, True]
            with pytest.raises(waiter.NotFound):
                await w.events(ids=["no-such-name"]).start()
            with pytest.raises(waiter.InvalidArgument):
                w.events(ids=[1.5])
            live = await w.events().start()
            a = await w.after(0)
            assert (await live.__anext__()).object_id == a.id
            assert [e.final async for e in a.events()] == [True]
    run_checked(main())


def test_task_and_watch_methods(daemon, tmpdir_path):
    async def main():
        async with waiter.aio.connect(daemon.sock) as w:
            task = await w.submit(["sleep", "60"])
            while (await task.refresh()).task.state != "running":
                await asyncio.sleep(0.01)
            assert task.info.task.state == "running"
            assert (await w.tasks(state="RUNNING"))[0].id == task.id
            await task.cancel()
            kinds = [e.kind async for e in task.events()]
            assert kinds[0] == "task_started" and kinds[-1] == "task_done"
            r = await w.wait(task.id, timeout=30)
            assert r.state == "cancelled"
            watch = await w.watch_path(str(tmpdir_path))
            assert (await watch.refresh()).state == "active"
            await watch.cancel()
            evs = [e async for e in watch.events()]
            assert [e.kind for e in evs] == ["cancelled"] and evs[0].final
            assert (await watch.refresh()).state == "cancelled"
            assert watch.info.state == "cancelled"
    run_checked(main())

"""waiter.aio: the asyncio client, with the names of waiter.Client.

    async with waiter.aio.connect() as w:
        result = await (await w.submit(["echo", "hi"])).wait()

One reader task per connection routes each reply to the future of its
request id and each event to the buffer the event iterators take from, so
any number of calls (1000 waits, say) may be in flight at once."""

import asyncio
import datetime
import os
import socket
import weakref
from typing import (Any, Awaitable, Callable, Dict, Generator, Iterable, List,
                    Mapping, Optional, Sequence, Union)

from google.protobuf.message import Message

from . import _ops
from . import waiter_pb2 as pb
from ._codec import (Decoder, Event, EventBuffer, Handle, IdLike, Logs,
                     ObjectInfo, Record, Seconds, StreamState, TaskResult,
                     check_default_peer, encode, is_default_path, object_id,
                     reconnect_bound, socket_path, subscribe_request, to_record)
from .errors import (ConnectionLost, Error, EventsLost, NotFound, PermissionDenied,
                     ShuttingDown, TimedOut, Unreachable, from_code)

__all__ = ["connect", "Client", "Timer", "Watch", "Task", "EventStream"]

READ_SIZE = 1 << 16


class _AsyncHandle(Handle):
    """Methods shared by the asyncio Timer, Watch and Task."""

    _client: "Client"

    async def cancel(self) -> None:
        """Cancel the object (a task is killed: TERM, then KILL)."""
        await self._client.cancel(self.id)

    async def wait(self, timeout: Optional[Seconds] = None) -> Any:
        """Wait until the object finishes; raises TimedOut after timeout seconds."""
        return await self._client.wait(self.id, timeout)

    def events(self) -> "EventStream":
        """Async-iterate over the object's events until the one that ends it."""
        return self._client._object_events(self)

    async def refresh(self) -> ObjectInfo:
        """Fetch the current ObjectInfo (also stored in ``info``)."""
        self.info = (await self._client.get(self.id)).info
        return self.info


class Timer(_AsyncHandle):
    """A timer; ``await wait()`` returns its ObjectInfo once it finished."""
    kind = "timer"

    async def wait(self, timeout: Optional[Seconds] = None) -> ObjectInfo:
        """Wait for the timer's last fire or its cancellation."""
        return await self._client.wait(self.id, timeout)   # type: ignore[return-value]


class Watch(_AsyncHandle):
    """A path, process or endpoint watch; ``await wait()`` returns its ObjectInfo."""
    kind = "watch"

    async def wait(self, timeout: Optional[Seconds] = None) -> ObjectInfo:
        """Wait until the watch ends."""
        return await self._client.wait(self.id, timeout)   # type: ignore[return-value]


class Task(_AsyncHandle):
    """A task; ``await wait()`` returns a TaskResult."""
    kind = "task"

    async def wait(self, timeout: Optional[Seconds] = None) -> TaskResult:
        """Wait until the task ended; its result and captured output."""
        return await self._client.wait(self.id, timeout)   # type: ignore[return-value]

    async def logs(self) -> Logs:
        """The captured output so far."""
        return await self._client.logs(self.id)

    async def kill(self, signal: Union[int, str] = 15) -> None:
        """Signal the task's process group."""
        await self._client.kill(self.id, signal)


_HANDLES = {"timer": Timer, "watch": Watch, "task": Task}


class EventStream:
    """An async iterator of Events, as waiter.EventStream: a gap raises
    EventsLost from ``__anext__`` and iterating again goes on after it."""

    def __init__(self, client: "Client", state: StreamState,
                 start: Optional[Callable[["EventStream"], Awaitable[Any]]] = None,
                 check: bool = False) -> None:
        self._client = client
        self._state = state
        self._start = start        # registers and subscribes, on first use
        self._buffer = client._events
        self._key = 0
        self._recheck = False
        self._check_after_replay = check
        self._finishing = False

    def _attach(self, key: int) -> None:
        """The stream is registered in the event buffer as ``key``."""
        self._key = key
        weakref.finalize(self, self._buffer.unregister, key)

    @property
    def last_seq(self) -> int:
        """The highest seq this stream has delivered (or skipped as lost)."""
        return self._state.last_seq

    def __aiter__(self) -> "EventStream":
        return self

    async def start(self) -> "EventStream":
        """Send the Subscribe now (the first iteration does it otherwise), so
        that events published from here on are not missed."""
        if self._start is not None:
            start, self._start = self._start, None
            await start(self)
        return self

    async def __anext__(self) -> Event:
        await self.start()
        st = self._state
        while not st.done:
            if self._recheck:
                self._recheck = False
                if not (await self._client.get(st.object_id)).info.active:
                    self._finishing = True
            raw = await self._client._next_event(self._buffer, self._key,
                                                 block=not self._finishing)
            if raw is None:
                break
            try:
                ev = st.accept(raw)
            except EventsLost:
                self._recheck = bool(st.object_id)
                raise
            if ev is not None:
                if st.done:
                    self._buffer.unregister(self._key)
                return ev
            if st.replayed and self._check_after_replay:
                self._check_after_replay = False
                self._recheck = True
        self._buffer.unregister(self._key)
        raise StopAsyncIteration


class Client:
    """An asyncio connection to waiterd; every call is a coroutine. Create it
    with :func:`connect`. The names and arguments are those of
    waiter.Client."""

    def __init__(self, path: Optional[str] = None, *, client_name: str = "python-asyncio",
                 event_buffer: int = 65536) -> None:
        self.path = socket_path(path)
        self._default_path = is_default_path(path)
        self.client_name = client_name
        self._event_limit = event_buffer
        self._writer: Optional[asyncio.StreamWriter] = None
        self._reader_task: Optional["asyncio.Task[None]"] = None
        self._reset()
        self._lost = ConnectionLost("not connected yet")

    def _reset(self) -> None:
        self._decoder = Decoder()
        self._events = EventBuffer(self._event_limit)
        self._pending: Dict[int, "asyncio.Future[pb.Reply]"] = {}
        self._event_waiters: List["asyncio.Future[None]"] = []
        self._next_id = 0
        self._lost: Optional[Error] = None
        self._unclaimed: Optional[Error] = None     # the daemon's last word, not yet raised
        self._closed_here = False

    # ---------------------------------------------------------- connection

    async def open(self) -> "Client":
        """Connect and say Hello (what :func:`connect` and ``async with
        Client(...)`` do)."""
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except PermissionError as e:
            raise PermissionDenied(f"cannot connect to {self.path}: {e.strerror}") from e
        except OSError as e:
            raise Unreachable(f"no waiterd at {self.path}: {e.strerror or e}") from e
        if self._default_path:
            try:
                check_default_peer(writer.get_extra_info("socket"), self.path)
            except Error:
                writer.close()
                raise
        self._reset()
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read_loop(reader))
        try:
            r = await self._run(_ops.hello(self.client_name))
        except Error:
            await self.close()
            raise
        self.connection_id: int = r.connection_id
        self.server_version: str = r.server_version
        self.max_frame: int = r.max_frame
        self.last_seq: int = r.last_seq
        self.instance: int = r.instance
        return self

    async def reconnect(self) -> None:
        """Close and connect again to the same path (see Client.reconnect)."""
        await self.close()
        await self.open()

    async def close(self) -> None:
        """Close the connection; pending calls raise ConnectionLost. Safe on
        a client that was never opened, and more than once."""
        self._closed_here = True
        self._fail("the client closed this connection")
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            try:
                await self._reader_task
            except (asyncio.CancelledError, Exception):
                pass
            self._reader_task = None

    async def __aenter__(self) -> "Client":
        if self._writer is None:
            await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------- the wire

    def _raise_lost(self) -> None:
        """After the connection ended: the daemon's error if nobody got it
        yet, else a ConnectionLost."""
        err, self._unclaimed = self._unclaimed, None
        if err is not None:
            raise err
        raise ConnectionLost(self._lost.message if self._lost else "not connected")

    def _fail(self, why: str, err: Optional[Error] = None) -> None:
        """The connection ended. ``err`` (the daemon's error) goes to the
        calls in flight, or else to the next call; every call after that
        raises ConnectionLost. The socket is closed."""
        if self._lost is None:
            self._lost = ConnectionLost(why)
            if err is not None and not self._pending:
                self._unclaimed = err
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err if err is not None else ConnectionLost(why))
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()
        self._wake()

    def _wake(self) -> None:
        waiters, self._event_waiters = self._event_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _file(self, data: bytes) -> Optional[Error]:
        """Events to the buffer, replies to their futures; returns the
        daemon's error when it closed the connection with one."""
        for m in self._decoder.feed(data):
            if m.HasField("event"):
                self._events.add(m.event)
                self._wake()
            elif m.reply.id == 0:
                return from_code(m.reply.error.code, m.reply.error.message)
            else:
                self._events.on_reply(m.reply)
                fut = self._pending.pop(m.reply.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(m.reply)
        return None

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        why = "waiterd closed the connection"
        err: Optional[Error] = None
        try:
            while self._lost is None:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                err = self._file(data)
                if err is not None:
                    why = f"waiterd closed the connection: {err}"
                    break
        except OSError as e:
            why = f"the connection to waiterd broke: {e.strerror or e}"
        except Error as e:
            why, err = f"waiterd sent garbage: {e}", e
        self._fail(why, err)

    def _salvage(self) -> None:
        """A write failed (the daemon closed): asyncio closes the socket
        before reading what the daemon sent last, so read it now from a
        duplicate of the descriptor, for the error that says why."""
        assert self._writer is not None
        sock = self._writer.get_extra_info("socket")
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except (OSError, AttributeError, ValueError):
            return
        data = b""
        with dup:
            dup.setblocking(False)
            try:
                while True:
                    chunk = dup.recv(READ_SIZE)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
        try:
            err = self._file(data)
        except Error as e:
            err = e
        if err is not None:
            self._fail(f"waiterd closed the connection: {err}", err)

    async def _call(self, field: str, msg: Message, stream: Optional[int] = None) -> Message:
        """Send one request and await its reply. ``stream``: the key of the
        event stream a Subscribe is for. A cancelled call forgets its
        request (a reply that comes later is dropped)."""
        if self._lost is not None:
            self._raise_lost()
        self._next_id += 1
        rid = self._next_id
        req = pb.Request(id=rid)
        getattr(req, field).CopyFrom(msg)
        fut: "asyncio.Future[pb.Reply]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        if stream is not None:
            since = msg.since_seq if msg.has_since else None   # type: ignore[attr-defined]
            self._events.expect_replay(since, stream, rid)
        assert self._writer is not None
        try:
            try:
                self._writer.write(encode(req))
                if self._writer.transport.is_closing() and self._lost is None:
                    self._salvage()
                await self._writer.drain()
            except OSError as e:
                # The daemon may have said why it closed: let the reader see it.
                task = self._reader_task
                if not fut.done() and task is not None and not task.done():
                    await asyncio.wait({task}, timeout=1.0)
                if not fut.done():
                    self._fail(f"cannot send to waiterd: {e.strerror or e}")
            reply = await fut
        finally:
            if self._pending.get(rid) is fut:
                del self._pending[rid]
            if fut.done() and not fut.cancelled():
                fut.exception()             # retrieved: no "never retrieved" warning
        return _ops.reply_result(reply)

    async def _run(self, op: Generator[Any, Any, Any]) -> Any:
        try:
            req = next(op)
            while True:
                req = op.send(await self._call(*req))
        except StopIteration as stop:
            return stop.value

    def _handle(self, info: ObjectInfo, owned: bool, existed: bool = False) -> Handle:
        cls = _HANDLES.get(str(info.kind), _AsyncHandle)
        h = cls(self, info, owned, existed)
        h._conn = self.connection_id        # type: ignore[attr-defined]
        return h

    async def _next_event(self, buffer: EventBuffer, key: int,
                          block: bool = True) -> Optional[pb.Event]:
        while True:
            if buffer is not self._events:
                raise ConnectionLost("this stream's connection was closed")
            try:
                ev = buffer.take(key)
            except KeyError:
                raise ConnectionLost("this stream was closed") from None
            if ev is not None or not block:
                return ev
            if self._lost is not None:
                self._raise_lost()
            fut: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
            self._event_waiters.append(fut)
            await fut

    def _object_events(self, h: Handle) -> EventStream:
        if self._lost is not None:
            self._raise_lost()
        state = StreamState(object_id=h.id)
        owned = h.owned and getattr(h, "_conn", None) == self.connection_id

        async def start(stream: EventStream) -> None:
            await self._call("subscribe", subscribe_request(0, None, [h.id]), stream._key)
        stream = EventStream(self, state, None if owned else start, check=not owned)
        stream._attach(self._events.register(state.matches, h.id))
        if owned:   # ended already: what is parked for it is all there is
            stream._finishing = self._events.ended(h.id)
        return stream

    # ------------------------------------------------------------ the API

    async def ping(self) -> float:
        """A round trip; returns the daemon's wall clock (epoch seconds)."""
        return await self._run(_ops.ping())

    async def stats(self) -> Record:
        """The daemon's counters."""
        return await self._run(_ops.stats())

    async def shutdown(self) -> None:
        """Ask the daemon to stop."""
        await self._run(_ops.shutdown())

    async def after(self, seconds: Seconds, *, name: Optional[str] = None,
                    lifetime: Optional[str] = None) -> Timer:
        """A one-shot timer that fires after ``seconds``."""
        return await self._run(_ops.timer(self, after=seconds, name=name, lifetime=lifetime))

    async def every(self, seconds: Seconds, count: Optional[int] = None, *,
                    after: Optional[Seconds] = None, name: Optional[str] = None,
                    lifetime: Optional[str] = None) -> Timer:
        """A periodic, drift-free timer; ``count`` fires (None: unlimited)."""
        return await self._run(_ops.timer(self, after=after, every=seconds, count=count,
                                          name=name, lifetime=lifetime))

    async def at(self, when: Union[float, datetime.datetime], *,
                 every: Optional[Seconds] = None, count: Optional[int] = None,
                 name: Optional[str] = None, lifetime: Optional[str] = None) -> Timer:
        """A timer at a wall-clock instant (datetime or epoch seconds)."""
        return await self._run(_ops.timer(self, at=when, every=every, count=count, name=name,
                                          lifetime=lifetime))

    async def submit(self, argv: Optional[Sequence[str]] = None, *, shell: Optional[str] = None,
                     queue: Optional[str] = None, name: Optional[str] = None,
                     after: Optional[Iterable[IdLike]] = None,
                     timeout: Optional[Seconds] = None, cwd: Optional[str] = None,
                     env: Optional[Mapping[str, str]] = None,
                     stdin: Union[None, bytes, str] = None,
                     output_limit: Optional[int] = None, lifetime: Optional[str] = None,
                     kill_grace: Optional[Seconds] = None, paced: bool = False) -> Task:
        """Run a task on the daemon (see waiter.Client.submit)."""
        return await self._run(_ops.submit(
            self, argv, shell=shell, queue=queue, name=name, after=after, timeout=timeout,
            cwd=cwd, env=env, stdin=stdin, output_limit=output_limit, lifetime=lifetime,
            kill_grace=kill_grace, paced=paced))

    async def run(self, argv: Optional[Sequence[str]] = None, *,
                  timeout: Optional[Seconds] = None, **kwargs: Any) -> TaskResult:
        """Submit a task and wait for its result."""
        return await (await self.submit(argv, timeout=timeout, **kwargs)).wait()

    async def list(self, kind: Optional[str] = None, *,
                   finished: bool = False) -> List[ObjectInfo]:
        """Objects of ``kind`` (None = all kinds)."""
        return await self._run(_ops.list_objects(kind, finished))

    async def tasks(self, state: Optional[str] = None, queue: Optional[str] = None, *,
                    finished: bool = False) -> List[ObjectInfo]:
        """Tasks, optionally only those in ``state`` or ``queue``."""
        return await self._run(_ops.tasks(state, queue, finished))

    async def timers(self, *, finished: bool = False) -> List[ObjectInfo]:
        """Timers."""
        return await self.list("timer", finished=finished)

    async def watches(self, *, finished: bool = False) -> List[ObjectInfo]:
        """Watches."""
        return await self.list("watch", finished=finished)

    async def get(self, id: IdLike) -> Handle:
        """The Timer, Watch or Task with this id or name."""
        return await self._run(_ops.get(self, id))

    async def cancel(self, id: IdLike) -> None:
        """Cancel an object by id, name or handle."""
        await self._run(_ops.cancel(id))

    async def wait(self, id: IdLike, timeout: Optional[Seconds] = None,
                   reconnect: Optional[Seconds] = None) -> Union[TaskResult, ObjectInfo]:
        """Wait until the object finishes, riding out a restart of the daemon
        (see waiter.Client.wait)."""
        loop = asyncio.get_running_loop()
        bound = reconnect_bound(reconnect)
        end = None if timeout is None else loop.time() + float(timeout)
        while True:
            left = None if end is None else max(0.0, end - loop.time())
            try:
                return await self._run(_ops.wait(id, left))
            except (ConnectionLost, ShuttingDown) as e:
                # close() elsewhere ends the wait: no reconnect.
                if bound <= 0 or getattr(self, "_closed_here", False):
                    raise
                instance = self.instance
                limit = loop.time() + bound
                while True:
                    try:
                        await self.reconnect()
                        break
                    except (Unreachable, ConnectionLost, ShuttingDown, OSError):
                        now = loop.time()
                        if end is not None and now >= end:
                            raise TimedOut("the wait's timeout passed while the daemon "
                                           "was away") from e
                        if now >= limit:
                            raise e
                        await asyncio.sleep(0.05)
                if self.instance != instance:
                    raise NotFound(f"the daemon at {self.path} restarted without its "
                                   f"state: {id} is gone") from e

    async def logs(self, id: IdLike) -> Logs:
        """A task's captured output."""
        return await self._run(_ops.logs(id))

    async def kill(self, id: IdLike, signal: Union[int, str] = 15) -> None:
        """Send ``signal`` to a task's process group."""
        await self._run(_ops.kill(id, signal))

    async def queue_set(self, queue: str, parallel: int) -> Record:
        """Set a queue's parallelism."""
        return await self._run(_ops.queue_set(queue, parallel))

    async def queues(self) -> List[Record]:
        """Every queue."""
        return await self._run(_ops.queues())

    async def watch_path(self, paths: Union[str, Sequence[str]], *, recursive: bool = False,
                         on: Optional[Iterable[str]] = None,
                         include: Optional[Iterable[str]] = None,
                         exclude: Optional[Iterable[str]] = None,
                         settle: Optional[Seconds] = None, once: bool = False,
                         create: bool = False, name: Optional[str] = None,
                         lifetime: Optional[str] = None) -> Watch:
        """Watch files or directories (see waiter.Client.watch_path)."""
        return await self._run(_ops.watch_path(self, paths, recursive, on, include, exclude,
                                               settle, once, create, name, lifetime))

    async def watch_pid(self, pid: int, *, name: Optional[str] = None,
                        lifetime: Optional[str] = None) -> Watch:
        """Watch a process until it exits."""
        return await self._run(_ops.watch_pid(self, pid, name, lifetime))

    async def watch_tcp(self, host: str, port: int, timeout: Optional[Seconds] = None, *,
                        name: Optional[str] = None, lifetime: Optional[str] = None) -> Watch:
        """Wait until HOST:PORT accepts connections."""
        return await self._run(_ops.watch_endpoint(self, _ops.tcp_endpoint(host, port),
                                                   timeout, name, lifetime))

    async def watch_unix(self, path: str, timeout: Optional[Seconds] = None, *,
                         name: Optional[str] = None, lifetime: Optional[str] = None) -> Watch:
        """Wait until a Unix socket accepts connections."""
        return await self._run(_ops.watch_endpoint(self, _ops.unix_endpoint(path), timeout,
                                                   name, lifetime))

    def events(self, since: Optional[int] = None, kinds: Optional[Sequence[str]] = None,
               ids: Optional[Sequence[IdLike]] = None) -> EventStream:
        """Subscribe and async-iterate (see waiter.Client.events). The
        Subscribe is sent when iteration starts: ``async for ev in w.events()``
        (names in ``ids`` are looked up then)."""
        for x in ids or ():
            object_id(x)                    # refuses what is no id nor name
        state = StreamState(kinds)

        async def start(stream: EventStream) -> None:
            if self._lost is not None:
                self._raise_lost()
            idl = [await self._run(_ops.resolve(x)) for x in ids or ()]
            state.ids = set(idl)
            stream._attach(self._events.register(state.matches))
            r = await self._call("subscribe", subscribe_request(since, kinds, idl), stream._key)
            state.subscribed(since, to_record(r).last_seq)
        return EventStream(self, state, start)

    async def unsubscribe(self) -> None:
        """End the subscription."""
        await self._run(_ops.unsubscribe())

    def __repr__(self) -> str:
        state = "closed" if self._lost else f"connection {self.connection_id}"
        return f"<waiter.aio.Client {self.path} {state}>"


class _Connect:
    """What connect() returns: await it for a Client, or use it as
    ``async with connect() as w`` to close the client at the end."""

    def __init__(self, path: Optional[str], kwargs: Dict[str, Any]) -> None:
        self._client = Client(path, **kwargs)

    def __await__(self) -> Generator[Any, None, Client]:
        return self._client.open().__await__()

    async def __aenter__(self) -> Client:
        return await self._client.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self._client.close()


def connect(path: Optional[str] = None, **kwargs: Any) -> _Connect:
    """Connect to waiterd (path as waiter.Client): ``async with
    waiter.aio.connect() as w:`` or ``w = await waiter.aio.connect()``."""
    return _Connect(path, kwargs)

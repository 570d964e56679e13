"""waiter.Client: the blocking client.

One connection, one Hello. Calls are serialized by a lock, so a Client may be
shared between threads, one caller at a time. Events read while waiting for a
reply are buffered for the event iterators, and replies read while iterating
events are kept for their callers."""

import datetime
import select
import socket
import threading
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Union)

from google.protobuf.message import Message

from . import _ops
from . import waiter_pb2 as pb
from ._codec import (Decoder, Event, EventBuffer, Handle, IdLike, Logs,
                     ObjectInfo, Record, Seconds, StreamState, TaskResult,
                     encode, socket_path)
from .errors import ConnectionLost, Error, PermissionDenied, Unreachable, from_code

__all__ = ["Client", "Timer", "Watch", "Task", "EventStream", "connect_socket"]

CLIENT_NAME = "python"
READ_SIZE = 1 << 16


def connect_socket(path: str) -> socket.socket:
    """A connected socket to waiterd at path, or Unreachable/PermissionDenied."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except PermissionError as e:
        s.close()
        raise PermissionDenied(f"cannot connect to {path}: {e.strerror}") from e
    except OSError as e:
        s.close()
        raise Unreachable(f"no waiterd at {path}: {e.strerror or e}") from e
    return s


class _SyncHandle(Handle):
    """Methods shared by the blocking Timer, Watch and Task."""

    _client: "Client"

    def cancel(self) -> None:
        """Cancel the object (a task is killed: TERM, then KILL)."""
        self._client.cancel(self.id)

    def wait(self, timeout: Optional[Seconds] = None) -> Any:
        """Block until the object finishes; raises TimedOut after timeout seconds."""
        return self._client.wait(self.id, timeout)

    def events(self) -> "EventStream":
        """Iterate over the object's events, until the one that ends it."""
        return self._client._object_events(self)

    def refresh(self) -> ObjectInfo:
        """Fetch the current ObjectInfo (also stored in ``info``)."""
        self.info = self._client.get(self.id).info
        return self.info


class Timer(_SyncHandle):
    """A timer (``after``, ``every``, ``at``). ``wait()`` returns its
    ObjectInfo once it completed (last fire) or was cancelled."""
    kind = "timer"

    def wait(self, timeout: Optional[Seconds] = None) -> ObjectInfo:
        """Block until the timer's last fire or its cancellation."""
        return self._client.wait(self.id, timeout)     # type: ignore[return-value]


class Watch(_SyncHandle):
    """A path, process or endpoint watch. ``wait()`` returns its ObjectInfo
    once it ended, with ``last_event`` (e.g. ENDPOINT_READY)."""
    kind = "watch"

    def wait(self, timeout: Optional[Seconds] = None) -> ObjectInfo:
        """Block until the watch ends."""
        return self._client.wait(self.id, timeout)     # type: ignore[return-value]


class Task(_SyncHandle):
    """A task. ``wait()`` returns a TaskResult (state, exit_code, signal,
    stdout, stderr, duration)."""
    kind = "task"

    def wait(self, timeout: Optional[Seconds] = None) -> TaskResult:
        """Block until the task ended; its result and captured output."""
        return self._client.wait(self.id, timeout)     # type: ignore[return-value]

    def logs(self) -> Logs:
        """The captured output so far."""
        return self._client.logs(self.id)

    def kill(self, signal: Union[int, str] = 15) -> None:
        """Signal the task's process group (15 or 9 end it as cancelled)."""
        self._client.kill(self.id, signal)


_HANDLES = {"timer": Timer, "watch": Watch, "task": Task}


class EventStream(Iterator[Event]):
    """An iterator of Events: a subscription (``Client.events``) or one
    object's events (``obj.events()``), which ends after its final event.

    A gap raises :class:`waiter.EventsLost` from ``next()``; the stream stays
    usable, and iterating it again goes on after the gap. ``last_seq`` is the
    highest seq seen, for ``events(since=...)`` on a new connection."""

    def __init__(self, client: "Client", state: StreamState,
                 check: Optional[Callable[[], bool]] = None) -> None:
        self._client = client
        self._state = state
        self._check = check        # after the replay: is the object still active?
        self._finishing = False

    @property
    def last_seq(self) -> int:
        """The highest seq this stream has delivered (or skipped as lost)."""
        return self._state.last_seq

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        st = self._state
        while not st.done:
            raw = self._client._next_event(st.matches, block=not self._finishing)
            if raw is None:
                break
            ev = st.accept(raw)
            if ev is not None:
                return ev
            if st.replayed and self._check is not None and not self._check():
                self._finishing = True      # ended before: drain what is here
            self._check = None
        raise StopIteration


class Client:
    """A blocking connection to waiterd (DESIGN 5a).

    ``Client(path=None)`` connects to ``path``, else ``$WAITER_SOCKET``, else
    the per-user default, and says Hello. Use it as a context manager, or
    call :meth:`close`. Timers and watches default to lifetime
    ``"connection"`` (cancelled when this client closes), tasks to
    ``"daemon"``. Durations are seconds (float)."""

    def __init__(self, path: Optional[str] = None, *, client_name: str = CLIENT_NAME,
                 event_buffer: int = 65536) -> None:
        self.path = socket_path(path)
        self.client_name = client_name
        self._event_limit = event_buffer
        self._lock = threading.RLock()
        self._sock: Optional[socket.socket] = None
        self._connect()

    # ---------------------------------------------------------- connection

    def _connect(self) -> None:
        self._sock = connect_socket(self.path)
        self._decoder = Decoder()
        self._events = EventBuffer(self._event_limit)
        self._replies: Dict[int, pb.Reply] = {}
        self._next_id = 0
        self._lost: Optional[Error] = None
        try:
            r = self._run(_ops.hello(self.client_name))
        except Error:
            self.close()
            raise
        self.connection_id: int = r.connection_id
        self.server_version: str = r.server_version
        self.max_frame: int = r.max_frame
        self.last_seq: int = r.last_seq

    def reconnect(self) -> None:
        """Close this connection (if open) and open a new one to the same
        path. Follow with ``events(since=stream.last_seq)`` to resume; if the
        new ``last_seq`` is lower than the one you saw, the daemon restarted."""
        with self._lock:
            self.close()
            self._connect()

    def close(self) -> None:
        """Close the connection; objects of lifetime "connection" end."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            if self._lost is None:
                self._lost = ConnectionLost("the client closed this connection")

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        """The socket's descriptor, for select()-style loops."""
        if self._sock is None:
            raise ConnectionLost("the connection is closed")
        return self._sock.fileno()

    # ------------------------------------------------------------- the wire

    def _die(self, why: str) -> ConnectionLost:
        self._lost = ConnectionLost(why)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return self._lost

    def _read(self, timeout: Optional[float] = None) -> bool:
        """Read once and file what came: events buffered, replies by id."""
        if self._lost is not None:
            raise self._lost
        assert self._sock is not None
        if timeout is not None and not select.select([self._sock], [], [], timeout)[0]:
            return False
        try:
            data = self._sock.recv(READ_SIZE)
        except OSError as e:
            raise self._die(f"the connection to waiterd broke: {e.strerror or e}") from e
        if not data:
            raise self._die("waiterd closed the connection")
        for m in self._decoder.feed(data):
            if m.HasField("event"):
                self._events.add(m.event)
            elif m.reply.id == 0:
                err = from_code(m.reply.error.code, m.reply.error.message)
                self._die(f"waiterd closed the connection: {err}")
                raise err
            else:
                self._events.on_reply(m.reply)
                self._replies[m.reply.id] = m.reply
        return True

    def _call(self, field: str, msg: Message) -> Message:
        with self._lock:
            if self._lost is not None:
                raise self._lost
            self._next_id += 1
            rid = self._next_id
            req = pb.Request(id=rid)
            getattr(req, field).CopyFrom(msg)
            try:
                assert self._sock is not None
                self._sock.sendall(encode(req))
            except OSError as e:
                self._pending_error()
                raise self._die(f"cannot send to waiterd: {e.strerror or e}") from e
            while rid not in self._replies:
                self._read()
            return _ops.reply_result(self._replies.pop(rid))

    def _pending_error(self) -> None:
        """After a failed send: the daemon may have said why it closed."""
        try:
            while self._read(timeout=1.0):
                pass
        except ConnectionLost:
            pass

    def _run(self, op: Any) -> Any:
        return _ops.run_sync(op, self._call)

    def _handle(self, info: ObjectInfo, owned: bool, existed: bool = False) -> Handle:
        cls = _HANDLES.get(str(info.kind), _SyncHandle)
        h = cls(self, info, owned, existed)
        h._conn = self.connection_id        # type: ignore[attr-defined]
        return h

    def _next_event(self, pred: Callable[[pb.Event], bool], block: bool = True) -> Optional[pb.Event]:
        with self._lock:
            while True:
                ev = self._events.take(pred)
                if ev is not None or not block:
                    return ev
                self._read()

    def _object_events(self, h: Handle) -> EventStream:
        state = StreamState(object_id=h.id)
        if h.owned and getattr(h, "_conn", None) == self.connection_id:
            return EventStream(self, state)
        with self._lock:
            self._events.expect_replay(0)
            self._run(_ops.subscribe(0, None, [h.id]))
        return EventStream(self, state, check=lambda: self.get(h.id).info.active)

    # ------------------------------------------------------------ the API

    def ping(self) -> float:
        """A round trip; returns the daemon's wall clock (epoch seconds)."""
        return self._run(_ops.ping())

    def stats(self) -> Record:
        """The daemon's counters (StatsReply as a Record; ``*_us`` in seconds)."""
        return self._run(_ops.stats())

    def shutdown(self) -> None:
        """Ask the daemon to stop (section 7.6 of the protocol)."""
        self._run(_ops.shutdown())

    def after(self, seconds: Seconds, *, name: Optional[str] = None,
              lifetime: Optional[str] = None) -> Timer:
        """A one-shot timer that fires after ``seconds``."""
        return self._run(_ops.timer(self, after=seconds, name=name, lifetime=lifetime))

    def every(self, seconds: Seconds, count: Optional[int] = None, *,
              after: Optional[Seconds] = None, name: Optional[str] = None,
              lifetime: Optional[str] = None) -> Timer:
        """A periodic, drift-free timer; ``count`` fires (None: unlimited)."""
        return self._run(_ops.timer(self, after=after, every=seconds, count=count,
                                    name=name, lifetime=lifetime))

    def at(self, when: Union[float, datetime.datetime], *, every: Optional[Seconds] = None,
           count: Optional[int] = None, name: Optional[str] = None,
           lifetime: Optional[str] = None) -> Timer:
        """A timer at a wall-clock instant (datetime, naive = local, or epoch seconds)."""
        return self._run(_ops.timer(self, at=when, every=every, count=count, name=name,
                                    lifetime=lifetime))

    def submit(self, argv: Optional[Sequence[str]] = None, *, shell: Optional[str] = None,
               queue: Optional[str] = None, name: Optional[str] = None,
               after: Optional[Iterable[IdLike]] = None, timeout: Optional[Seconds] = None,
               cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
               stdin: Union[None, bytes, str] = None, output_limit: Optional[int] = None,
               lifetime: Optional[str] = None, kill_grace: Optional[Seconds] = None,
               paced: bool = False) -> Task:
        """Run ``argv`` (or ``shell`` with sh -c) on the daemon. ``env``
        defaults to os.environ and ``cwd`` to the current directory; ``after``
        lists tasks (or ids, names) that must succeed first."""
        return self._run(_ops.submit(
            self, argv, shell=shell, queue=queue, name=name, after=after, timeout=timeout,
            cwd=cwd, env=env, stdin=stdin, output_limit=output_limit, lifetime=lifetime,
            kill_grace=kill_grace, paced=paced))

    def run(self, argv: Optional[Sequence[str]] = None, *, timeout: Optional[Seconds] = None,
            **kwargs: Any) -> TaskResult:
        """Submit a task and wait for its result (``timeout`` bounds the task)."""
        return self.submit(argv, timeout=timeout, **kwargs).wait()

    def list(self, kind: Optional[str] = None, *, finished: bool = False) -> List[ObjectInfo]:
        """Objects of ``kind`` ("timer", "task", "watch"; None = all); with
        ``finished``, also the finished ones still kept."""
        return self._run(_ops.list_objects(kind, finished))

    def tasks(self, state: Optional[str] = None, queue: Optional[str] = None, *,
              finished: bool = False) -> List[ObjectInfo]:
        """Tasks, optionally only those in ``state`` ("running", ...) or ``queue``."""
        return self._run(_ops.tasks(state, queue, finished))

    def timers(self, *, finished: bool = False) -> List[ObjectInfo]:
        """Timers (active ones; with ``finished`` the kept finished ones too)."""
        return self.list("timer", finished=finished)

    def watches(self, *, finished: bool = False) -> List[ObjectInfo]:
        """Watches (active ones; with ``finished`` the kept finished ones too)."""
        return self.list("watch", finished=finished)

    def get(self, id: IdLike) -> Handle:
        """The Timer, Watch or Task with this id or name."""
        return self._run(_ops.get(self, id))

    def cancel(self, id: IdLike) -> None:
        """Cancel an object by id, name or handle."""
        self._run(_ops.cancel(id))

    def wait(self, id: IdLike, timeout: Optional[Seconds] = None) -> Union[TaskResult, ObjectInfo]:
        """Block until the object finishes: a TaskResult for a task, else the
        ObjectInfo (``state``, ``last_event``). Raises TimedOut after ``timeout``."""
        return self._run(_ops.wait(id, timeout))

    def logs(self, id: IdLike) -> Logs:
        """A task's captured stdout and stderr (the kept tails)."""
        return self._run(_ops.logs(id))

    def kill(self, id: IdLike, signal: Union[int, str] = 15) -> None:
        """Send ``signal`` (number or name) to a task's process group."""
        self._run(_ops.kill(id, signal))

    def queue_set(self, queue: str, parallel: int) -> Record:
        """Set how many tasks of ``queue`` run at once; returns the queue."""
        return self._run(_ops.queue_set(queue, parallel))

    def queues(self) -> List[Record]:
        """Every queue: ``name``, ``parallel``, ``running``, ``queued``."""
        return self._run(_ops.queues())

    def watch_path(self, paths: Union[str, Sequence[str]], *, recursive: bool = False,
                   on: Optional[Iterable[str]] = None, include: Optional[Iterable[str]] = None,
                   exclude: Optional[Iterable[str]] = None, settle: Optional[Seconds] = None,
                   once: bool = False, create: bool = False, name: Optional[str] = None,
                   lifetime: Optional[str] = None) -> Watch:
        """Watch files or directories; ``on`` is a list of "created",
        "modified", "deleted", "moved", "attributes". Returns once the kernel
        watches are in place."""
        return self._run(_ops.watch_path(self, paths, recursive, on, include, exclude,
                                         settle, once, create, name, lifetime))

    def watch_pid(self, pid: int, *, name: Optional[str] = None,
                  lifetime: Optional[str] = None) -> Watch:
        """Watch a process until it exits (event "process_exited")."""
        return self._run(_ops.watch_pid(self, pid, name, lifetime))

    def watch_tcp(self, host: str, port: int, timeout: Optional[Seconds] = None, *,
                  name: Optional[str] = None, lifetime: Optional[str] = None) -> Watch:
        """Wait until HOST:PORT accepts connections ("endpoint_ready"), or
        ``timeout`` passes ("watch_timed_out")."""
        return self._run(_ops.watch_endpoint(self, _ops.tcp_endpoint(host, port), timeout,
                                             name, lifetime))

    def watch_unix(self, path: str, timeout: Optional[Seconds] = None, *,
                   name: Optional[str] = None, lifetime: Optional[str] = None) -> Watch:
        """Wait until the Unix socket at ``path`` accepts connections."""
        return self._run(_ops.watch_endpoint(self, _ops.unix_endpoint(path), timeout,
                                             name, lifetime))

    def events(self, since: Optional[int] = None, kinds: Optional[Sequence[str]] = None,
               ids: Optional[Sequence[IdLike]] = None) -> EventStream:
        """Subscribe and iterate: with ``since``, the retained events after
        that seq first, then live ones. ``kinds`` ("timer_fired", ...) and
        ``ids`` filter. A connection has one subscription; a new call
        replaces it. Events of objects this client created come as well."""
        idl = [self._run(_ops.resolve(x)) for x in ids or ()]
        state = StreamState(kinds, idl)
        with self._lock:
            self._events.expect_replay(since)
            r = self._run(_ops.subscribe(since, kinds, idl))
            state.subscribed(since, r.last_seq)
        return EventStream(self, state)

    def unsubscribe(self) -> None:
        """End the subscription (owned objects' events keep coming)."""
        self._run(_ops.unsubscribe())

    def __repr__(self) -> str:
        state = "closed" if self._lost else f"connection {self.connection_id}"
        return f"<waiter.Client {self.path} {state}>"


"""waiter.Client: the blocking client.

One connection, one Hello. A Client may be used by several threads at once:
one thread at a time reads the socket and files what it reads (replies by
request id, events for each stream), the others wait for it to hand over
what they wait for, so a thread blocked in ``next(stream)`` or in ``wait()``
does not block another thread's ``ping()``. ``close()`` from any thread
interrupts every blocked call and stream (they raise ConnectionLost)."""

import datetime
import select
import socket
import threading
import time
import weakref
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Set, Union)

from google.protobuf.message import Message

from . import _ops
from . import waiter_pb2 as pb
from ._codec import (Decoder, Event, EventBuffer, Handle, IdLike, Logs,
                     ObjectInfo, Record, Seconds, StreamState, TaskResult,
                     check_default_peer, encode, is_default_path, reconnect_bound,
                     socket_path, subscribe_request, to_record)
from .errors import (ConnectionLost, Error, EventsLost, NotFound, PermissionDenied,
                     ShuttingDown, TimedOut, Unreachable, from_code)

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

    def __init__(self, client: "Client", state: StreamState, key: int,
                 check: bool = False) -> None:
        self._client = client
        self._state = state
        self._key = key
        self._buffer = client._events
        self._recheck = False      # ask the daemon whether the object still runs
        self._check_after_replay = check
        self._finishing = False
        weakref.finalize(self, client._events.unregister, key)

    @property
    def last_seq(self) -> int:
        """The highest seq this stream has delivered (or skipped as lost)."""
        return self._state.last_seq

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        st = self._state
        while not st.done:
            if self._recheck:
                self._recheck = False
                if not self._client.get(st.object_id).info.active:
                    self._finishing = True      # it ended: drain what is here
            raw = self._client._next_event(self._buffer, self._key,
                                           block=not self._finishing)
            if raw is None:
                break
            try:
                ev = st.accept(raw)
            except EventsLost:
                # An object's final event may be among the lost ones.
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
        raise StopIteration


class _Sock:
    """A socket and the threads using it outside the lock (in recv() or
    sendall()): it is closed when the last of them leaves, and only shut
    down before, so that no thread ever uses a closed (or reused) fd."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.users = 0
        self.dead = False

    def kill(self) -> None:
        self.dead = True
        if self.users:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)    # a blocked call returns
            except OSError:
                pass
        else:
            self.sock.close()

    def enter(self) -> socket.socket:
        self.users += 1
        return self.sock

    def leave(self) -> None:
        self.users -= 1
        if self.dead and not self.users:
            self.sock.close()


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
        self._default_path = is_default_path(path)
        self.client_name = client_name
        self._event_limit = event_buffer
        self._cv = threading.Condition(threading.Lock())   # the state below
        self._send_lock = threading.Lock()                 # one frame at a time
        self._sock: Optional[socket.socket] = None
        self._lost: Optional[Error] = None
        self._connect()

    # ---------------------------------------------------------- connection

    def _connect(self) -> None:
        sock = connect_socket(self.path)
        if self._default_path:
            try:
                check_default_peer(sock, self.path)
            except Error:
                sock.close()
                raise
        with self._cv:
            self._sock: Optional[_Sock] = _Sock(sock)
            self._decoder = Decoder()
            self._events = EventBuffer(self._event_limit)
            self._replies: Dict[int, Any] = {}      # rid -> Reply, or the Error that ended all
            self._inflight: Set[int] = set()
            self._next_id = 0
            self._lost: Optional[Error] = None
            self._closed_here = False
            self._unclaimed: Optional[Error] = None  # the daemon's last word, not yet raised
            self._reading = False
        try:
            r = self._run(_ops.hello(self.client_name))
        except Error:
            self.close()
            raise
        self.connection_id: int = r.connection_id
        self.server_version: str = r.server_version
        self.max_frame: int = r.max_frame
        self.last_seq: int = r.last_seq
        self.instance: int = r.instance

    def reconnect(self) -> None:
        """Close this connection (if open) and open a new one to the same
        path. Follow with ``events(since=stream.last_seq)`` to resume; if the
        new ``last_seq`` is lower than the one you saw, the daemon restarted.
        Streams of the old connection raise ConnectionLost."""
        self.close()
        self._connect()

    def close(self) -> None:
        """Close the connection; objects of lifetime "connection" end. Safe
        from any thread: calls and streams blocked in other threads raise
        ConnectionLost."""
        with self._cv:
            if self._lost is None:
                self._lost = ConnectionLost("the client closed this connection")
            self._closed_here = True
            self._release_sock()
            self._cv.notify_all()

    def _release_sock(self) -> None:
        """With the lock held: the socket is done for."""
        if self._sock is not None:
            self._sock.kill()
            self._sock = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        """The socket's descriptor, for select()-style loops."""
        s = self._sock
        if s is None or self._lost is not None:
            raise ConnectionLost("the connection is closed")
        return s.sock.fileno()

    # ------------------------------------------------------------- the wire

    def _raise_lost(self) -> None:
        """With the lock held, after the connection ended: raise the
        daemon's error if nobody got it yet, else ConnectionLost."""
        err, self._unclaimed = self._unclaimed, None
        if err is not None:
            raise err
        assert self._lost is not None
        raise ConnectionLost(self._lost.message)

    def _die(self, why: str, err: Optional[Error] = None) -> None:
        """With the lock held: the connection ended. ``err`` (the daemon's
        error) goes to the calls in flight, or else to the next call."""
        if self._lost is None:
            self._lost = ConnectionLost(why)
            if err is not None:
                if self._inflight:
                    for rid in self._inflight:
                        self._replies.setdefault(rid, err)
                else:
                    self._unclaimed = err
        self._release_sock()
        self._cv.notify_all()

    def _wait_for(self, ready: Callable[[], bool], timeout: Optional[float] = None) -> bool:
        """Block until ``ready()`` (called with the lock held) holds, or
        ``timeout`` passes (False). One thread at a time reads the socket and
        files what it read; the others wait for it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                if ready():
                    return True
                if self._lost is not None:
                    self._raise_lost()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if self._reading:
                    self._cv.wait(left)
                    continue
                holder = self._sock
                assert holder is not None
                sock = holder.enter()
                self._reading = True
                self._cv.release()
                data: Optional[bytes] = None
                failure: Optional[OSError] = None
                try:
                    if left is None or select.select([sock], [], [], left)[0]:
                        data = sock.recv(READ_SIZE)
                except OSError as e:
                    failure = e
                finally:
                    self._cv.acquire()
                    self._reading = False
                    holder.leave()
                    self._cv.notify_all()
                if self._lost is not None:
                    continue                    # closed meanwhile
                if failure is not None:
                    self._die(f"the connection to waiterd broke: {failure.strerror or failure}")
                elif data == b"":
                    self._die("waiterd closed the connection")
                elif data is not None:
                    self._file(data)

    def _file(self, data: bytes) -> None:
        """With the lock held: events to their streams, replies by id."""
        try:
            msgs = self._decoder.feed(data)
        except Error as e:
            self._die(f"waiterd sent garbage: {e}", e)
            return
        for m in msgs:
            if m.HasField("event"):
                self._events.add(m.event)
            elif m.reply.id == 0:
                err = from_code(m.reply.error.code, m.reply.error.message)
                self._die(f"waiterd closed the connection: {err}", err)
                return
            else:
                self._events.on_reply(m.reply)
                if m.reply.id in self._inflight:
                    self._replies[m.reply.id] = m.reply

    def _call(self, field: str, msg: Message, stream: Optional[int] = None) -> Message:
        """Send one request and wait for its reply. ``stream``: the key of
        the event stream a Subscribe is for (see EventBuffer.on_reply)."""
        with self._send_lock:
            with self._cv:
                if self._lost is not None:
                    self._raise_lost()
                self._next_id += 1
                rid = self._next_id
                self._inflight.add(rid)
                if stream is not None:
                    since = msg.since_seq if msg.has_since else None  # type: ignore[attr-defined]
                    self._events.expect_replay(since, stream, rid)
                holder = self._sock
                assert holder is not None
                sock = holder.enter()
            req = pb.Request(id=rid)
            getattr(req, field).CopyFrom(msg)
            failure: Optional[OSError] = None
            try:
                sock.sendall(encode(req))
            except OSError as e:
                failure = e
            finally:
                with self._cv:
                    holder.leave()
        try:
            if failure is not None:
                # The daemon may have said why it closed: read up to 1 s for it.
                self._wait_for(lambda: rid in self._replies, timeout=1.0)
                with self._cv:
                    if rid not in self._replies:
                        self._die(f"cannot send to waiterd: {failure.strerror or failure}")
            else:
                self._wait_for(lambda: rid in self._replies)
            with self._cv:
                if rid not in self._replies:
                    self._raise_lost()
                reply = self._replies.pop(rid)
        finally:
            with self._cv:
                self._inflight.discard(rid)
                self._replies.pop(rid, None)
        if isinstance(reply, Error):
            raise reply
        return _ops.reply_result(reply)

    def _run(self, op: Any) -> Any:
        return _ops.run_sync(op, self._call)

    def _handle(self, info: ObjectInfo, owned: bool, existed: bool = False) -> Handle:
        cls = _HANDLES.get(str(info.kind), _SyncHandle)
        h = cls(self, info, owned, existed)
        h._conn = self.connection_id        # type: ignore[attr-defined]
        return h

    def _next_event(self, buffer: EventBuffer, key: int,
                    block: bool = True) -> Optional[pb.Event]:
        got: List[pb.Event] = []

        def ready() -> bool:
            if buffer is not self._events:
                raise ConnectionLost("this stream's connection was closed")
            try:
                ev = buffer.take(key)
            except KeyError:
                raise ConnectionLost("this stream was closed") from None
            if ev is not None:
                got.append(ev)
                return True
            return not block
        self._wait_for(ready)
        return got[0] if got else None

    def _register(self, state: StreamState) -> int:
        with self._cv:
            if self._lost is not None:
                self._raise_lost()
            return self._events.register(state.matches, state.object_id)

    def _subscribe(self, since: Optional[int], kinds: Optional[Sequence[str]],
                   ids: Sequence[int], key: int) -> Record:
        return to_record(self._call("subscribe", subscribe_request(since, kinds, ids), key))

    def _object_events(self, h: Handle) -> EventStream:
        state = StreamState(object_id=h.id)
        key = self._register(state)
        if h.owned and getattr(h, "_conn", None) == self.connection_id:
            stream = EventStream(self, state, key)
            # Ended already: what is parked for it is all there is.
            stream._finishing = self._events.ended(h.id)
            return stream
        stream = EventStream(self, state, key, check=True)
        self._subscribe(0, None, [h.id], key)
        return stream

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

    def wait(self, id: IdLike, timeout: Optional[Seconds] = None,
             reconnect: Optional[Seconds] = None) -> Union[TaskResult, ObjectInfo]:
        """Block until the object finishes: a TaskResult for a task, else the
        ObjectInfo (``state``, ``last_event``). Raises TimedOut after ``timeout``.

        If the daemon goes away meanwhile (a crash, a stop, a restart), this
        connects again, trying for up to ``reconnect`` seconds (default
        $WAITER_RECONNECT_TIMEOUT, else 30; 0: raise at once), and waits on:
        a daemon with a state directory still has the object
        (doc/durability.md). If the daemon that answers serves another id
        space (``instance``: it came back without its state), raises
        NotFound; if none came back in time, the error that ended the wait."""
        bound = reconnect_bound(reconnect)
        end = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            left = None if end is None else max(0.0, end - time.monotonic())
            try:
                return self._run(_ops.wait(id, left))
            except (ConnectionLost, ShuttingDown) as e:
                # close() from another thread ends the wait: no reconnect.
                if bound <= 0 or getattr(self, "_closed_here", False):
                    raise
                instance = self.instance
                self._reconnect_within(bound, end, e)
                if self.instance != instance:
                    raise NotFound(f"the daemon at {self.path} restarted without its "
                                   f"state: {id} is gone") from e

    def _reconnect_within(self, bound: float, end: Optional[float], why: Error) -> None:
        """Connect again, retrying every 50 ms for up to bound seconds (not
        past end, the caller's timeout); raise why, or TimedOut, if none
        answers."""
        limit = time.monotonic() + bound
        while True:
            try:
                self.reconnect()
                return
            except (Unreachable, ConnectionLost, ShuttingDown, OSError):
                now = time.monotonic()
                if end is not None and now >= end:
                    raise TimedOut("the wait's timeout passed while the daemon was "
                                   "away") from why
                if now >= limit:
                    raise why
                time.sleep(0.05)

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
        key = self._register(state)
        stream = EventStream(self, state, key)
        r = self._subscribe(since, kinds, idl, key)
        state.subscribed(since, r.last_seq)
        return stream

    def unsubscribe(self) -> None:
        """End the subscription (owned objects' events keep coming)."""
        self._run(_ops.unsubscribe())

    def __repr__(self) -> str:
        state = "closed" if self._lost else f"connection {self.connection_id}"
        return f"<waiter.Client {self.path} {state}>"


"""Every operation of the API, written once for both clients.

An operation is a generator: it yields ``(field, message)`` for each request
it needs (``("ping", pb.Ping())``), receives the reply's result message, and
returns the Python value. waiter.Client runs it with blocking calls,
waiter.aio.Client with awaited ones; an error reply is raised by the client
and ends the operation."""

import datetime
import os
import signal as _signal
from typing import (Any, Generator, Iterable, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar, Union)

from google.protobuf.message import Message

from . import waiter_pb2 as pb
from ._codec import (US, Handle, IdLike, Logs, ObjectInfo, Record, Seconds,
                     TaskResult, enum_name, enum_value, object_id, subscribe_request,
                     to_record, to_us)
from .errors import InvalidArgument, from_code

T = TypeVar("T")
Op = Generator[Tuple[str, Message], Any, T]
Lifetime = Optional[str]

KINDS = {"timer": pb.OBJECT_KIND_TIMER, "task": pb.OBJECT_KIND_TASK,
         "watch": pb.OBJECT_KIND_WATCH}


def run_sync(op: "Op[T]", call: Any) -> T:
    """Run an operation with a blocking ``call(field, message)``."""
    try:
        req = next(op)
        while True:
            req = op.send(call(*req))
    except StopIteration as stop:
        return stop.value


def _lifetime(lifetime: Lifetime) -> int:
    return enum_value(pb.Lifetime.DESCRIPTOR, lifetime) if lifetime else 0


def _created(c: Any, r: pb.CreateReply) -> Handle:
    info = ObjectInfo.from_pb(r.object)
    owned = not r.existed and r.object.owner_connection == c.connection_id
    return c._handle(info, owned, r.existed)


def hello(client_name: str) -> "Op[pb.HelloReply]":
    """Hello, the first request of a connection."""
    r = yield "hello", pb.Hello(protocol_version=1, client_name=client_name)
    return r


def ping() -> "Op[float]":
    """Round trip; returns the daemon's clock (epoch seconds)."""
    r = yield "ping", pb.Ping()
    return r.time_us / US


def stats() -> "Op[Record]":
    """The daemon's counters as a Record."""
    r = yield "stats", pb.StatsRequest()
    return to_record(r)


def shutdown() -> "Op[None]":
    """Ask the daemon to stop."""
    yield "shutdown", pb.Shutdown()


def resolve(x: IdLike) -> "Op[int]":
    """The id of an int, a handle, or a name (looked up with Get)."""
    i = object_id(x)
    if isinstance(i, str):
        r = yield "get", pb.Get(name=i)
        return r.id
    return i


def timer(c: Any, after: Optional[Seconds] = None,
          at: Union[None, float, datetime.datetime] = None,
          every: Optional[Seconds] = None, count: Optional[int] = None,
          name: Optional[str] = None, lifetime: Lifetime = None) -> "Op[Handle]":
    """TimerCreate; returns a Timer."""
    t = pb.TimerCreate(after_us=to_us(after, "after"), every_us=to_us(every, "every"),
                       count=count or 0, name=name or "", lifetime=_lifetime(lifetime))
    if at is not None:
        ts = at.timestamp() if isinstance(at, datetime.datetime) else float(at)
        t.at_us = int(round(ts * US))
    r = yield "timer_create", t
    return _created(c, r)


def submit(c: Any, argv: Optional[Sequence[str]] = None, *, shell: Optional[str] = None,
           queue: Optional[str] = None, name: Optional[str] = None,
           after: Optional[Iterable[IdLike]] = None, timeout: Optional[Seconds] = None,
           cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
           stdin: Union[None, bytes, str] = None, output_limit: Optional[int] = None,
           lifetime: Lifetime = None, kill_grace: Optional[Seconds] = None,
           paced: bool = False) -> "Op[Handle]":
    """TaskSubmit; returns a Task."""
    if isinstance(argv, (str, bytes)):
        raise InvalidArgument("argv must be a list of strings; use shell='...' for a command line")
    if not argv and not shell:
        raise InvalidArgument("give argv or shell")
    t = pb.TaskSubmit(argv=[os.fsdecode(a) for a in argv or ()], shell=shell or "",
                      cwd=os.path.abspath(cwd) if cwd else os.getcwd(),
                      queue=queue or "", name=name or "",
                      timeout_us=to_us(timeout, "timeout"), output_limit=output_limit or 0,
                      lifetime=_lifetime(lifetime), kill_grace_us=to_us(kill_grace, "kill_grace"),
                      paced=paced)
    t.env.extend(f"{k}={v}" for k, v in (os.environ if env is None else env).items())
    if stdin is not None:
        t.stdin = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    for x in after or ():
        t.after.append((yield from resolve(x)))
    r = yield "task_submit", t
    return _created(c, r)


def list_objects(kind: Optional[str] = None, finished: bool = False) -> "Op[List[ObjectInfo]]":
    """Every object of a kind (all kinds when None), paging through List."""
    if kind is not None and kind not in KINDS:
        raise InvalidArgument(f"unknown kind {kind!r} (known: timer, task, watch)")
    out: List[ObjectInfo] = []
    after = 0
    while True:
        r = yield "list", pb.List(kind=KINDS.get(kind or "", 0), after_id=after,
                                  limit=10000, finished=finished)
        out.extend(ObjectInfo.from_pb(o) for o in r.objects)
        if not r.more or not r.objects:
            return out
        after = r.objects[-1].id


def tasks(state: Optional[str] = None, queue: Optional[str] = None,
          finished: bool = False) -> "Op[List[ObjectInfo]]":
    """Tasks, optionally of one task state and one queue."""
    if state is not None:       # "RUNNING", "task_state_running", 2: "running"
        state = enum_name(pb.TaskState.DESCRIPTOR, enum_value(pb.TaskState.DESCRIPTOR, state))
    done = {"succeeded", "failed", "timed_out", "cancelled", "dependency_failed",
            "lost"}
    objs = yield from list_objects("task", finished or state in done)
    return [o for o in objs if o.task is not None
            and (state is None or o.task.state == state)
            and (queue is None or o.task.queue == queue)]


def get(c: Any, x: IdLike) -> "Op[Handle]":
    """Get by id or name; returns a Timer, Watch or Task."""
    i = object_id(x)
    r = yield "get", (pb.Get(name=i) if isinstance(i, str) else pb.Get(id=i))
    info = ObjectInfo.from_pb(r)
    return c._handle(info, False)


def cancel(x: IdLike) -> "Op[None]":
    """Cancel any object."""
    i = yield from resolve(x)
    yield "cancel", pb.Cancel(id=i)


def logs(x: IdLike) -> "Op[Logs]":
    """A task's captured output."""
    i = yield from resolve(x)
    r = yield "task_logs", pb.TaskLogs(id=i)
    return Logs(r.stdout, r.stderr, r.stdout_dropped, r.stderr_dropped, r.last_seq, r.done,
                r.output_released)


def wait(x: IdLike, timeout: Optional[Seconds] = None) -> "Op[Union[TaskResult, ObjectInfo]]":
    """Wait until the object finishes: a TaskResult for a task, else its
    ObjectInfo with ``last_event``. Raises TimedOut when timeout passes."""
    i = yield from resolve(x)
    us = to_us(timeout, "timeout")
    r = yield "wait", pb.Wait(id=i, timeout_us=max(us, 1) if timeout is not None else 0)
    info = ObjectInfo.from_pb(r.object, r.last_event if r.HasField("last_event") else None)
    if r.object.kind != pb.OBJECT_KIND_TASK:
        return info
    out = yield from logs(i)
    return TaskResult.build(info, out)


def kill(x: IdLike, signal: Union[int, str] = _signal.SIGTERM) -> "Op[None]":
    """Send a signal to a task's process group (TERM then KILL ends it)."""
    if isinstance(signal, str):
        name = signal.upper()
        signal = getattr(_signal, name if name.startswith("SIG") else "SIG" + name, None)
        if signal is None:
            raise InvalidArgument(f"unknown signal {name}")
    i = yield from resolve(x)
    yield "task_kill", pb.TaskKill(id=i, signal=int(signal))


def queue_set(queue: str, parallel: int) -> "Op[Record]":
    """Set a queue's parallelism; returns its QueueInfo as a Record."""
    r = yield "queue_set", pb.QueueSet(queue=queue, parallel=parallel)
    return to_record(r)


def queues() -> "Op[List[Record]]":
    """Every queue (name, parallel, running, queued)."""
    r = yield "queue_list", pb.QueueList()
    return [to_record(q) for q in r.queues]


def watch_path(c: Any, paths: Union[str, Sequence[str]], recursive: bool = False,
               on: Optional[Iterable[str]] = None, include: Optional[Iterable[str]] = None,
               exclude: Optional[Iterable[str]] = None, settle: Optional[Seconds] = None,
               once: bool = False, create: bool = False, name: Optional[str] = None,
               lifetime: Lifetime = None) -> "Op[Handle]":
    """WatchPath; relative paths are made absolute here."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]      # type: ignore[list-item]
    w = pb.WatchPath(paths=[os.path.abspath(os.fspath(p)) for p in paths],
                     recursive=recursive, include=list(include or ()),
                     exclude=list(exclude or ()), settle_us=to_us(settle, "settle"),
                     once=once, create=create, name=name or "", lifetime=_lifetime(lifetime))
    w.on.extend(enum_value(pb.PathEventKind.DESCRIPTOR, k) for k in on or ())
    r = yield "watch_path", w
    return _created(c, r)


def watch_pid(c: Any, pid: int, name: Optional[str] = None,
              lifetime: Lifetime = None) -> "Op[Handle]":
    """WatchPid."""
    r = yield "watch_pid", pb.WatchPid(pid=pid, name=name or "", lifetime=_lifetime(lifetime))
    return _created(c, r)


def watch_endpoint(c: Any, endpoint: str, timeout: Optional[Seconds] = None,
                   name: Optional[str] = None, lifetime: Lifetime = None) -> "Op[Handle]":
    """WatchEndpoint on "tcp:HOST:PORT" or "unix:PATH"."""
    r = yield "watch_endpoint", pb.WatchEndpoint(
        endpoint=endpoint, timeout_us=to_us(timeout, "timeout"), name=name or "",
        lifetime=_lifetime(lifetime))
    return _created(c, r)


def tcp_endpoint(host: str, port: int) -> str:
    """The endpoint string for a host (IPv6 literals get brackets) and port."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"tcp:{host}:{int(port)}"


def unix_endpoint(path: str) -> str:
    """The endpoint string for a Unix socket path."""
    return "unix:" + os.path.abspath(os.fspath(path))


def subscribe(since: Optional[int], kinds: Optional[Sequence[Union[str, int]]],
              ids: Optional[Sequence[IdLike]]) -> "Op[Record]":
    """Subscribe (replacing this connection's subscription)."""
    resolved = []
    for x in ids or ():
        resolved.append((yield from resolve(x)))
    r = yield "subscribe", subscribe_request(since, kinds, resolved)
    return to_record(r)


def unsubscribe() -> "Op[None]":
    """End this connection's subscription."""
    yield "unsubscribe", pb.Unsubscribe()


def reply_result(reply: pb.Reply) -> Message:
    """The result message of a Reply, or the Error it carries, raised."""
    which = reply.WhichOneof("result")
    if which == "error" or which is None:
        raise from_code(reply.error.code, reply.error.message or "empty reply")
    return getattr(reply, which)


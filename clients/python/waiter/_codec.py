"""The wire side shared by waiter.Client and waiter.aio: socket path, framing,
conversions between protobuf messages and Python values, the event buffer
and the rules of an event stream. Nothing here does I/O."""

import os
import socket
import struct
import types
from collections import deque
from dataclasses import dataclass, field
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List,
                    Optional, Sequence, Set, Union)

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from . import waiter_pb2 as pb
from .errors import EventsLost, InvalidArgument, PermissionDenied, ProtocolError

PROTOCOL_VERSION = 1            # the Hello version this client speaks
HEADER = struct.Struct(">I")    # 4-byte big-endian frame length
FRAME_HARD_MAX = 64 << 20       # no daemon frame is larger (proto/frame.h)
EVENT_BUFFER_LIMIT = 65536      # events kept unread before the oldest are dropped
LOST_OBJECTS_LIMIT = 65536      # objects whose dropped parked events are remembered
US = 1_000_000

Seconds = Union[int, float]
IdLike = Union[int, str, "Handle"]


# ------------------------------------------------------------ socket path

def socket_path(path: Optional[str] = None) -> str:
    """The socket path the CLI would use: ``path``, else ``$WAITER_SOCKET``,
    else ``$XDG_RUNTIME_DIR/waiter/waiterd.sock`` (when it starts with ``/``),
    else ``/tmp/waiter-$EUID/waiterd.sock``."""
    if path:
        return os.fspath(path)
    env = os.environ.get("WAITER_SOCKET")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg.startswith("/"):
        return f"{xdg}/waiter/waiterd.sock"
    return f"/tmp/waiter-{os.geteuid()}/waiterd.sock"


def is_default_path(path: Optional[str] = None) -> bool:
    """Whether socket_path(path) is the per-user default, not a socket the
    caller named (``path`` or ``$WAITER_SOCKET``)."""
    return not path and not os.environ.get("WAITER_SOCKET")


def check_default_peer(sock: "socket.socket", path: str) -> None:
    """At the default socket, talk only to a daemon of our own uid or root's
    (as the CLI does): under /tmp another user could have made the directory
    first and serve a daemon there, which would get our commands and
    environment. Raises PermissionDenied."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    if uid not in (os.geteuid(), 0):
        raise PermissionDenied(f"the daemon at {path} runs as uid {uid}, not as you or "
                               f"root: not talking to it (name a socket to trust it)")


# ---------------------------------------------------------------- framing

def encode(req: pb.Request) -> bytes:
    """One frame: the length prefix and the serialized Request."""
    body = req.SerializeToString()
    return HEADER.pack(len(body)) + body


class Decoder:
    """Cuts a byte stream into ServerMessages."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> List[pb.ServerMessage]:
        """Add bytes read from the socket; return the messages now complete."""
        self._buf += data
        out = []
        while len(self._buf) >= HEADER.size:
            (n,) = HEADER.unpack_from(self._buf)
            if n > FRAME_HARD_MAX:
                raise ProtocolError(f"waiterd sent a frame of {n} bytes, "
                                    f"more than {FRAME_HARD_MAX}")
            if len(self._buf) < HEADER.size + n:
                break
            m = pb.ServerMessage()
            try:
                m.ParseFromString(bytes(self._buf[HEADER.size:HEADER.size + n]))
            except DecodeError as e:
                raise ProtocolError(f"waiterd sent an undecodable message: {e}") from e
            del self._buf[:HEADER.size + n]
            out.append(m)
        return out


# ------------------------------------------------------- values and enums

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def reconnect_bound(reconnect: Optional[Seconds]) -> float:
    """How long a wait reconnects when the daemon goes away: ``reconnect``
    seconds if given, else $WAITER_RECONNECT_TIMEOUT (as the CLI reads it:
    ``30s``, ``300ms``, ``2m``, or plain seconds), else 30; 0 never."""
    if reconnect is not None:
        return max(0.0, float(reconnect))
    text = os.environ.get("WAITER_RECONNECT_TIMEOUT", "").strip()
    if not text:
        return 30.0
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            try:
                return max(0.0, float(text[:-len(unit)]) * _UNITS[unit])
            except ValueError:
                break
    try:
        return max(0.0, float(text))
    except ValueError:
        raise ValueError(f"WAITER_RECONNECT_TIMEOUT: not a duration: {text!r}") from None


def to_us(seconds: Optional[Seconds], what: str = "duration") -> int:
    """Seconds (float) to wire microseconds; None is 0 (not set)."""
    if seconds is None:
        return 0
    if seconds < 0:
        raise InvalidArgument(f"{what} must not be negative, got {seconds}")
    return int(round(seconds * US))


_prefixes: Dict[str, str] = {}


def _prefix(enum: EnumDescriptor) -> str:
    p = _prefixes.get(enum.full_name)
    if p is None:
        p = os.path.commonprefix([v.name for v in enum.values])
        p = p[:p.rfind("_") + 1]
        _prefixes[enum.full_name] = p
    return p


def enum_name(enum: EnumDescriptor, value: int) -> Union[str, int]:
    """``TASK_STATE_SUCCEEDED`` as ``"succeeded"``; an unknown value stays an int."""
    v = enum.values_by_number.get(value)
    return v.name[len(_prefix(enum)):].lower() if v is not None else value


def enum_value(enum: EnumDescriptor, x: Union[str, int]) -> int:
    """``"timer_fired"`` (or the full name, or the number) as the enum's number."""
    if isinstance(x, int):
        return x
    name = str(x).upper().replace("-", "_")
    v = enum.values_by_name.get(name) or enum.values_by_name.get(_prefix(enum) + name)
    if v is None:
        known = ", ".join(str(enum_name(enum, n)) for n in enum.values_by_number)
        raise InvalidArgument(f"unknown {enum.name} {x!r} (known: {known})")
    return v.number


class Record(types.SimpleNamespace):
    """A protobuf message as plain attributes: enums as lower-case names,
    ``*_us`` fields as seconds (float) without the suffix, nested messages as
    Records, repeated fields as lists, unset oneof members left out."""


def to_record(msg: Message) -> Record:
    """Convert any message of waiter.proto to a Record."""
    out: Dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        if f.containing_oneof is not None and not msg.HasField(f.name):
            continue
        name, value = f.name, getattr(msg, f.name)
        if f.label == FieldDescriptor.LABEL_REPEATED:
            value = [_value(f, v) for v in value]
        elif f.type == FieldDescriptor.TYPE_MESSAGE and not msg.HasField(f.name):
            value = None
        else:
            value = _value(f, value)
        if name.endswith("_us"):
            name = name[:-3]
        out[name] = value
    return Record(**out)


def _value(f: FieldDescriptor, v: Any) -> Any:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        return to_record(v)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return enum_name(f.enum_type, v)
    if f.name.endswith("_us"):
        return v / US
    return v


def oneof_record(msg: Message, oneof: str) -> Optional[Record]:
    """The set member of a oneof as a Record (None when none is set)."""
    which = msg.WhichOneof(oneof)
    return to_record(getattr(msg, which)) if which else None


# ------------------------------------------------------------------ values

@dataclass
class Event:
    """One event: ``seq`` (0 for markers), ``object_id``, ``kind`` (e.g.
    ``"timer_fired"``, ``"task_done"``), ``time`` (epoch seconds), ``body``
    (a Record of the kind's message, e.g. ``body.fire_count``,
    ``body.changes[0].path``, ``body.data``; None for kinds without one) and
    ``raw``, the protobuf message."""
    seq: int
    object_id: int
    kind: Union[str, int]
    time: float
    body: Optional[Record]
    raw: Any = field(repr=False)

    @classmethod
    def from_pb(cls, ev: pb.Event) -> "Event":
        """Convert a waiter.v1.Event."""
        return cls(ev.seq, ev.object_id, enum_name(pb.EventKind.DESCRIPTOR, ev.kind),
                   ev.time_us / US, oneof_record(ev, "body"), ev)

    @property
    def final(self) -> bool:
        """True when this event ends its object (or the daemon)."""
        return is_final(self.raw)


@dataclass
class ObjectInfo:
    """What the daemon knows of an object: ``id``, ``kind`` (``"timer"``,
    ``"task"``, ``"watch"``), ``name``, ``state`` (``"active"``,
    ``"completed"``, ``"cancelled"``, ``"failed"``), ``lifetime``
    (``"connection"``, ``"daemon"``), ``created`` (epoch seconds),
    ``owner_connection``, one of ``timer``/``task``/``watch`` (Records of
    TimerInfo, TaskInfo, WatchInfo), and after a wait, ``last_event``."""
    id: int
    kind: Union[str, int]
    name: str
    state: Union[str, int]
    lifetime: Union[str, int]
    created: float
    owner_connection: int
    timer: Optional[Record] = None
    task: Optional[Record] = None
    watch: Optional[Record] = None
    last_event: Optional[Event] = None
    raw: Any = field(default=None, repr=False)

    @classmethod
    def from_pb(cls, o: pb.ObjectInfo, last_event: Optional[pb.Event] = None) -> "ObjectInfo":
        """Convert a waiter.v1.ObjectInfo (and a WaitReply's last_event)."""
        detail = o.WhichOneof("detail")
        info = cls(o.id, enum_name(pb.ObjectKind.DESCRIPTOR, o.kind), o.name,
                   enum_name(pb.ObjectState.DESCRIPTOR, o.state),
                   enum_name(pb.Lifetime.DESCRIPTOR, o.lifetime), o.created_us / US,
                   o.owner_connection, raw=o)
        if detail:
            setattr(info, detail, to_record(getattr(o, detail)))
        if last_event is not None:
            info.last_event = Event.from_pb(last_event)
        return info

    @property
    def active(self) -> bool:
        """True while the object has not finished."""
        return self.raw.state == pb.OBJECT_STATE_ACTIVE


@dataclass
class Logs:
    """A task's captured output: the kept tails of ``stdout`` and ``stderr``
    (bytes), the bytes dropped from their heads, ``done`` (the task has
    ended) and ``last_seq`` (follow with ``events(since=last_seq, ids=[id])``).
    ``output_released`` is true when the daemon let an ended task's output
    go to stay under ``waiterd --max-kept-output`` (the bytes count as
    dropped)."""
    stdout: bytes
    stderr: bytes
    stdout_dropped: int
    stderr_dropped: int
    last_seq: int
    done: bool
    output_released: bool = False


@dataclass
class TaskResult:
    """How a task ended. ``state`` is ``"succeeded"``, ``"failed"``,
    ``"timed_out"``, ``"cancelled"``, ``"dependency_failed"`` or ``"lost"``
    (it was running when the daemon died);
    ``exit_code`` is valid when ``signal`` is 0; ``stdout``/``stderr`` are
    the kept tails; ``duration`` is seconds from start to end (0 if it never
    ran); ``error`` says why it could not start; ``info`` is the ObjectInfo."""
    id: int
    state: Union[str, int]
    exit_code: int
    signal: int
    stdout: bytes
    stderr: bytes
    duration: float
    error: str
    info: ObjectInfo = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when the task exited 0."""
        return self.state == "succeeded"

    @classmethod
    def build(cls, info: ObjectInfo, logs: Logs) -> "TaskResult":
        """Combine a finished task's ObjectInfo and its logs."""
        t = info.raw.task
        dur = (t.ended_us - t.started_us) / US if t.started_us and t.ended_us else 0.0
        return cls(info.id, enum_name(pb.TaskState.DESCRIPTOR, t.state), t.exit_code,
                   t.signal, logs.stdout, logs.stderr, dur, t.error, info)


# --------------------------------------------------------------- handles

class Handle:
    """Base of Timer, Watch and Task: an object of the daemon seen from one
    client. ``id`` and ``name`` identify it; ``info`` is the ObjectInfo as of
    its creation or last refresh; ``existed`` is True when a create found an
    object of that name instead of making one."""

    kind = "object"

    def __init__(self, client: Any, info: ObjectInfo, owned: bool, existed: bool = False) -> None:
        self._client = client
        self.info = info
        self.id: int = info.id
        self.name: str = info.name
        self.owned = owned
        self.existed = existed

    def __int__(self) -> int:
        return self.id

    def __index__(self) -> int:
        return self.id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        name = f" name={self.name!r}" if self.name else ""
        return f"<{type(self).__name__} {self.id}{name} {self.info.state}>"


def object_id(x: IdLike) -> Union[int, str]:
    """An id from an int, a handle, or a name (returned as a str to look up)."""
    if isinstance(x, Handle):
        return x.id
    if isinstance(x, bool):
        raise InvalidArgument("an object id must be an int, a name or an object")
    if isinstance(x, int):
        return x
    if isinstance(x, str):
        return int(x) if x.isdigit() else x
    raise InvalidArgument(f"not an object id or name: {x!r}")


# ------------------------------------------------------------------ events

_FINAL_KINDS = {pb.EVENT_KIND_CANCELLED, pb.EVENT_KIND_TASK_DONE, pb.EVENT_KIND_WATCH_ENDED,
                pb.EVENT_KIND_PROCESS_EXITED, pb.EVENT_KIND_ENDPOINT_READY,
                pb.EVENT_KIND_WATCH_TIMED_OUT, pb.EVENT_KIND_SHUTDOWN}
MARKERS = {pb.EVENT_KIND_EVENTS_LOST, pb.EVENT_KIND_REPLAY_DONE}


def is_final(ev: pb.Event) -> bool:
    """Does this event end its object?"""
    if ev.kind in _FINAL_KINDS:
        return True
    if ev.kind == pb.EVENT_KIND_TIMER_FIRED:
        return ev.timer_fired.last
    if ev.kind == pb.EVENT_KIND_PATH_CHANGED:
        return ev.path_changed.last
    return False


class _Queue:
    """The unread events of one stream. Past ``limit`` the oldest are
    dropped, never silently: they become one EVENTS_LOST marker at the head,
    with their seq range, which the stream raises as EventsLost."""

    def __init__(self, limit: int) -> None:
        self._q: Deque[pb.Event] = deque()
        self.limit = max(2, limit)
        self.dropped = 0
        self._lost: Optional[pb.Event] = None   # our marker, while at the head

    def add(self, ev: pb.Event) -> None:
        self._q.append(ev)
        while len(self._q) > self.limit:
            old = self._q.popleft()
            if old is self._lost:           # fold the next one into it
                old = self._q.popleft()
            else:
                self._lost = None
            self.dropped += 1
            if old.kind == pb.EVENT_KIND_EVENTS_LOST:
                lo, hi = old.events_lost.from_seq, old.events_lost.to_seq
            elif old.seq:
                lo = hi = old.seq
            else:
                continue                    # a REPLAY_DONE marker
            if self._lost is None:
                self._lost = lost_marker(lo, hi, old.time_us)
            else:
                lost = self._lost.events_lost
                lost.from_seq = min(lost.from_seq, lo)
                lost.to_seq = max(lost.to_seq, hi)
            self._q.appendleft(self._lost)

    def take(self) -> Optional[pb.Event]:
        if not self._q:
            return None
        ev = self._q.popleft()
        if ev is self._lost:
            self._lost = None
        return ev

    def drop_after(self, since: int) -> None:
        """Forget the events after ``since`` (a replay sends them again)."""
        self._q = deque(ev for ev in self._q if not ev.seq or ev.seq <= since)

    def __len__(self) -> int:
        return len(self._q)


def lost_marker(lo: int, hi: int, time_us: int = 0) -> pb.Event:
    """An EVENTS_LOST marker for seqs ``lo`` to ``hi``."""
    ev = pb.Event(kind=pb.EVENT_KIND_EVENTS_LOST, time_us=time_us)
    ev.events_lost.from_seq = lo
    ev.events_lost.to_seq = hi
    return ev


_CREATES = {"timer_create", "task_submit", "watch_path", "watch_pid", "watch_endpoint"}


class _Reader:
    __slots__ = ("matches", "object_id", "queue")

    def __init__(self, matches: Callable[[pb.Event], bool], object_id: int,
                 queue: _Queue) -> None:
        self.matches = matches
        self.object_id = object_id
        self.queue = queue


class EventBuffer:
    """Events read from the connection and not yet read by a stream.

    The rule (doc/python.md, "Who sees an event"): every active stream
    (registered with :meth:`register`, until :meth:`unregister`) gets its own
    copy of each event it matches, so the connection's stream and object
    streams never take events from one another. An event of an object this
    connection created that no active stream of that object received is
    *parked* for a later ``obj.events()`` of its object, which takes it.

    Each stream keeps at most ``limit`` unread events, and the parked events
    are at most ``limit`` too. Past it the oldest are dropped, never
    silently: a stream's own overflow becomes an EVENTS_LOST marker at the
    head of that stream only; dropped parked events are remembered per
    object, and raised as EventsLost only by a later ``obj.events()`` of that
    object. ``dropped`` counts every event dropped."""

    def __init__(self, limit: int = EVENT_BUFFER_LIMIT) -> None:
        self.limit = max(2, limit)
        self._readers: Dict[int, _Reader] = {}
        self._next_key = 0
        self._owned: Set[int] = set()
        self._parked: Deque[pb.Event] = deque()
        self._parked_seqs: Set[int] = set()
        self._parked_lost: Dict[int, List[int]] = {}    # object id -> [from, to]
        self._parked_dropped = 0
        self._replays: Dict[int, Any] = {}               # request id -> (since, key)

    @property
    def dropped(self) -> int:
        """Events dropped because a stream (or the parking) was full."""
        return self._parked_dropped + sum(r.queue.dropped for r in list(self._readers.values()))

    def register(self, matches: Callable[[pb.Event], bool], object_id: int = 0) -> int:
        """A new active stream; returns its key. An object stream
        (``object_id``) takes the events parked for its object first."""
        self._next_key += 1
        key = self._next_key
        q = _Queue(self.limit)
        if object_id:
            lost = self._parked_lost.pop(object_id, None)
            if lost is not None:
                q.add(lost_marker(lost[0], lost[1]))
            keep: Deque[pb.Event] = deque()
            for ev in self._parked:
                if ev.object_id == object_id:
                    q.add(ev)
                    self._parked_seqs.discard(ev.seq)
                else:
                    keep.append(ev)
            self._parked = keep
        self._readers[key] = _Reader(matches, object_id, q)
        return key

    def ended(self, object_id: int) -> bool:
        """For an object this connection created: has its final event come?"""
        return object_id not in self._owned

    def unregister(self, key: int) -> None:
        """The stream ended or is gone: stop keeping events for it."""
        self._readers.pop(key, None)

    def add(self, ev: pb.Event) -> None:
        """File an event read from the connection."""
        to_object = False
        for r in list(self._readers.values()):
            if r.matches(ev):
                r.queue.add(ev)
                if r.object_id and r.object_id == ev.object_id:
                    to_object = True
        oid = ev.object_id
        if oid and ev.seq and oid in self._owned:
            if not to_object and ev.seq not in self._parked_seqs:
                self._park(ev)
            if is_final(ev):
                self._owned.discard(oid)    # no more events of it come

    def _park(self, ev: pb.Event) -> None:
        self._parked.append(ev)
        self._parked_seqs.add(ev.seq)
        while len(self._parked) > self.limit:
            old = self._parked.popleft()
            self._parked_seqs.discard(old.seq)
            self._parked_dropped += 1
            span = self._parked_lost.get(old.object_id)
            if span is None:
                self._parked_lost[old.object_id] = [old.seq, old.seq]
                while len(self._parked_lost) > LOST_OBJECTS_LIMIT:     # stay bounded
                    del self._parked_lost[next(iter(self._parked_lost))]
            else:
                span[0], span[1] = min(span[0], old.seq), max(span[1], old.seq)

    def expect_replay(self, since: Optional[int], key: int, rid: int) -> None:
        """The Subscribe of request ``rid`` (replaying after ``since``
        unless None) for the stream ``key`` is being sent: see on_reply."""
        self._replays[rid] = (since, key)

    def on_reply(self, reply: pb.Reply) -> None:
        """Called by the reader for each Reply, in stream order. Notes the
        objects this connection created; at the SubscribeReply of a replay,
        drops the events its stream got that the replay sends again (it
        replays owned events too), so none comes twice."""
        which = reply.WhichOneof("result")
        if which in _CREATES:
            r = getattr(reply, which)
            if not r.existed:
                self._owned.add(r.object.id)
            return
        entry = self._replays.pop(reply.id, None)
        if entry is not None and which == "subscribe":
            since, key = entry
            reader = self._readers.get(key)
            if since is not None and reader is not None:
                reader.queue.drop_after(since)

    def take(self, key: int) -> Optional[pb.Event]:
        """The oldest unread event of the stream ``key`` (None if none).
        Raises KeyError for a stream that is not registered."""
        return self._readers[key].queue.take()

    def __len__(self) -> int:
        return len(self._parked) + sum(len(r.queue) for r in list(self._readers.values()))


class StreamState:
    """The rules of one event stream, for both clients: which events it
    takes, when it ends, and what it does with markers. ``object_id`` set:
    the events of one object until the one that ends it. Otherwise the
    connection's subscription, filtered by ``kinds`` and ``ids``."""

    def __init__(self, kinds: Optional[Iterable[Union[str, int]]] = None,
                 ids: Optional[Iterable[IdLike]] = None, object_id: int = 0) -> None:
        self.kinds = {enum_value(pb.EventKind.DESCRIPTOR, k) for k in kinds} if kinds else set()
        self.ids = {int(i) for i in ids} if ids else set()      # type: ignore[arg-type]
        self.object_id = object_id
        self.last_seq = 0
        self.replayed = False
        self.done = False

    def subscribed(self, since: Optional[int], last_seq: int) -> None:
        """After the SubscribeReply: a live stream starts after ``last_seq``
        (older buffered events are skipped), a replay after ``since``."""
        self.last_seq = last_seq if since is None else since

    def matches(self, ev: pb.Event) -> bool:
        """Is this event for this stream?"""
        if ev.kind in MARKERS or ev.kind == pb.EVENT_KIND_SHUTDOWN:
            return True
        if self.object_id:
            return ev.object_id == self.object_id
        return ((not self.kinds or ev.kind in self.kinds) and
                (not self.ids or ev.object_id in self.ids))

    def accept(self, ev: pb.Event) -> Optional[Event]:
        """The Event to hand to the user, or None to skip it (REPLAY_DONE).
        Raises EventsLost for an EVENTS_LOST marker."""
        if ev.kind == pb.EVENT_KIND_REPLAY_DONE:
            self.replayed = True
            return None
        if ev.kind == pb.EVENT_KIND_EVENTS_LOST:
            if ev.events_lost.to_seq and ev.events_lost.to_seq <= self.last_seq:
                return None                 # before this stream started
            self.last_seq = max(self.last_seq, ev.events_lost.to_seq)
            raise EventsLost(ev.events_lost.from_seq, ev.events_lost.to_seq)
        if ev.seq and ev.seq <= self.last_seq:
            return None                     # had it already (a replay again)
        self.last_seq = ev.seq
        if ev.kind == pb.EVENT_KIND_SHUTDOWN or (self.object_id and is_final(ev)):
            self.done = True
        return Event.from_pb(ev)


def subscribe_request(since: Optional[int], kinds: Optional[Sequence[Union[str, int]]],
                      ids: Optional[Sequence[IdLike]]) -> pb.Subscribe:
    """The Subscribe message for events(since, kinds, ids)."""
    sub = pb.Subscribe()
    if since is not None:
        sub.has_since = True
        sub.since_seq = int(since)
    for k in kinds or ():
        sub.kinds.append(enum_value(pb.EventKind.DESCRIPTOR, k))
    for i in ids or ():
        sub.ids.append(int(i))      # type: ignore[arg-type]
    return sub

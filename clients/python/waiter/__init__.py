"""waiter: the Python client of waiterd, one event loop served to every
process on the host (timers, path/process/endpoint watches, tasks).

    import waiter
    with waiter.Client() as w:
        print(w.submit(["echo", "hi"]).wait().stdout)

``waiter.Client`` blocks; ``waiter.aio`` is the asyncio client with the same
names. Both depend only on the standard library and python3-protobuf. See
doc/python.md for the whole API.
"""

from ._codec import (Event, Logs, ObjectInfo, Record, TaskResult, socket_path,
                     PROTOCOL_VERSION)
from ._version import __version__
from .client import Client, EventStream, Task, Timer, Watch
from .errors import (ConnectionLost, Error, EventsLost, FailedPrecondition,
                     FrameTooLarge, Internal, InvalidArgument, NotFound,
                     PermissionDenied, ProtocolError, ResourceExhausted,
                     ShuttingDown, TimedOut, Unreachable, UnsupportedOperation,
                     UnsupportedVersion)

__all__ = [
    "Client", "Timer", "Watch", "Task", "EventStream", "Event", "ObjectInfo",
    "TaskResult", "Logs", "Record", "socket_path", "PROTOCOL_VERSION", "__version__",
    "Error", "InvalidArgument", "NotFound", "PermissionDenied", "ResourceExhausted",
    "UnsupportedVersion", "FrameTooLarge", "Internal", "UnsupportedOperation",
    "ProtocolError", "TimedOut", "FailedPrecondition", "ShuttingDown",
    "ConnectionLost", "Unreachable", "EventsLost",
]

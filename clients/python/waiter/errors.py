"""Exceptions raised by the waiter client.

Every error the daemon sends is an ``Error{code, message}``; the client raises
the :class:`Error` subclass named after the code (``ERROR_CODE_NOT_FOUND`` is
:class:`NotFound`). A code this client does not know raises :class:`Error`
itself. Failures of the connection raise :class:`ConnectionLost` or
:class:`Unreachable`; a gap in an event stream raises :class:`EventsLost`.
"""

from typing import Dict, Optional, Type

__all__ = [
    "Error", "InvalidArgument", "NotFound", "PermissionDenied",
    "ResourceExhausted", "UnsupportedVersion", "FrameTooLarge", "Internal",
    "UnsupportedOperation", "ProtocolError", "TimedOut", "FailedPrecondition",
    "ShuttingDown", "ConnectionLost", "Unreachable", "EventsLost",
]


class Error(Exception):
    """Base of every waiter error; ``code`` is the protocol's ErrorCode value
    (0 for errors of the client side) and ``message`` a sentence for a person."""

    code: int = 0

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(Error, ValueError):
    """A field is missing, malformed or out of range (code 1)."""
    code = 1


class NotFound(Error, LookupError):
    """No object has that id or name (code 2)."""
    code = 2


class PermissionDenied(Error, PermissionError):
    """The daemon does not serve this user, or refuses tasks (code 3)."""
    code = 3


class ResourceExhausted(Error):
    """A limit of the daemon was reached (code 4)."""
    code = 4


class UnsupportedVersion(Error):
    """The daemon does not speak this client's protocol version (code 5)."""
    code = 5


class FrameTooLarge(Error):
    """A request was larger than the daemon's frame limit (code 6)."""
    code = 6


class Internal(Error):
    """A bug or a system failure in the daemon (code 7)."""
    code = 7


class UnsupportedOperation(Error):
    """The daemon does not know the requested operation (code 8)."""
    code = 8


class ProtocolError(Error):
    """Bad framing or an undecodable message, on either side (code 9)."""
    code = 9


class TimedOut(Error, TimeoutError):
    """A wait's timeout passed before the object finished (code 10)."""
    code = 10


class FailedPrecondition(Error):
    """The object is in the wrong state, e.g. already finished (code 11)."""
    code = 11


class ShuttingDown(Error):
    """The daemon is stopping (code 12)."""
    code = 12


class ConnectionLost(Error, ConnectionError):
    """The connection to waiterd closed, or broke, before the call was answered.

    Every object of lifetime ``connection`` is gone with it; the client can
    :meth:`~waiter.Client.reconnect` and resume events from the last seq seen.
    """


class Unreachable(Error, ConnectionError):
    """No daemon listens at the socket path (the CLI's exit status 69)."""


class EventsLost(Error):
    """Raised by an event iterator when this connection missed events
    ``from_seq`` to ``to_seq`` (inclusive): it read too slowly, or they are no
    longer retained. The iterator stays usable: iterate it again to go on
    with the events after ``to_seq``; use ``wait``/``get`` to learn the
    current state of the objects you care about."""

    def __init__(self, from_seq: int, to_seq: int) -> None:
        super().__init__(f"events {from_seq} to {to_seq} were lost "
                         "(read too slowly, or no longer retained)")
        self.from_seq = from_seq
        self.to_seq = to_seq


_BY_CODE: Dict[int, Type[Error]] = {
    cls.code: cls for cls in (
        InvalidArgument, NotFound, PermissionDenied, ResourceExhausted,
        UnsupportedVersion, FrameTooLarge, Internal, UnsupportedOperation,
        ProtocolError, TimedOut, FailedPrecondition, ShuttingDown)
}


def from_code(code: int, message: str) -> Error:
    """The exception for a protocol ErrorCode (unknown codes give Error)."""
    cls = _BY_CODE.get(code, Error)
    return cls(message, code)

"""DSPEx client: the Python SDK (:class:`DSPExClient`), the ``dspex`` command line, and the
embedded stack that ``dspex up`` and ``make demo`` run on one machine (:class:`Stack`)."""

from .errors import (
    ClientError,
    InvalidInput,
    NotConnected,
    NotFound,
    RemoteError,
    RequestTimeout,
)
from .sdk import DSPExClient, ExecuteAnswer, ProgramLike
from .stack import Stack, StackError, StackOptions

__all__ = [
    "ClientError",
    "DSPExClient",
    "ExecuteAnswer",
    "InvalidInput",
    "NotConnected",
    "NotFound",
    "ProgramLike",
    "RemoteError",
    "RequestTimeout",
    "Stack",
    "StackError",
    "StackOptions",
]

"""The client's errors: one tree with stable codes, so that the CLI can turn each into a
clear message and an exit code (2 for bad input, 1 for everything else) without a traceback."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error the SDK raises on purpose."""

    code = "client_error"
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidInput(ClientError):
    """What the user gave is not valid: a file, a spec, an event, an argument."""

    code = "invalid_input"
    exit_code = 2


class NotConnected(ClientError):
    """NATS cannot be reached, or the stack it carries is not running."""

    code = "nats_unavailable"


class NotFound(ClientError):
    """The registry knows no such program, version or run."""

    code = "not_found"


class RequestTimeout(ClientError):
    """A service did not answer in time."""

    code = "timeout"


class RemoteError(ClientError):
    """A service answered with an error; ``code`` is the service's own."""

    code = "remote_error"

"""The kernel library's error tree: every error has a stable `code`, an HTTP-like `status`
and, for retryable failures, an optional `retry_after` in seconds."""

from __future__ import annotations


class DSPExError(Exception):
    """Base of every error the kernel library raises on purpose."""

    code: str = "dspex_error"
    status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description, as carried by failure events."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class SignatureError(DSPExError):
    code = "invalid_signature"
    status = 400


class ProgramError(DSPExError):
    code = "invalid_program"
    status = 400


class UnknownModuleError(ProgramError):
    code = "unknown_module"


class ConfigurationError(DSPExError):
    """A configuration or override that lies outside the program's variable space."""

    code = "invalid_configuration"
    status = 400


class InputError(DSPExError):
    code = "invalid_input"
    status = 400


class AdapterParseError(DSPExError):
    """The LM's reply could not be parsed into the signature's output fields."""

    code = "unparseable_reply"
    status = 502

    def __init__(self, message: str, *, completion: str = "", adapter: str = "") -> None:
        super().__init__(message)
        self.completion = completion
        self.adapter = adapter


class ToolError(DSPExError):
    code = "tool_error"
    status = 400


class MetricError(DSPExError):
    code = "invalid_metric"
    status = 400


class LMError(DSPExError):
    """A model call failed; subclasses say whether trying again can help."""

    code = "lm_error"
    status = 502


class LMRateLimitError(LMError):
    code = "lm_rate_limited"
    status = 429
    retryable = True


class LMTimeoutError(LMError):
    code = "lm_timeout"
    status = 504
    retryable = True


class LMUnavailableError(LMError):
    """5xx answers and connection failures."""

    code = "lm_unavailable"
    status = 503
    retryable = True


class LMBadRequestError(LMError):
    code = "lm_bad_request"
    status = 400


class LMAuthError(LMError):
    code = "lm_auth"
    status = 401

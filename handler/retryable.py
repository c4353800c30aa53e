"""Which exceptions are worth another try, decided by botocore's own retry rules.

botocore's standard retry mode already knows which AWS error codes are throttling (``SlowDown``,
``ProvisionedThroughputExceededException``, ...) and which responses are transient (5xx, request
timeouts, connection errors); the handler asks the same checkers instead of keeping a list of its own.
Everything else is permanent: an error nobody knows to be temporary is parked with its reason.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

from .errors import FilepipeError, TransientError, UnexpectedError

_CHECKERS = (TransientRetryableChecker(), ThrottledRetryableChecker())
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_EXCEPTIONS = (
    BotocoreConnectionError,  # connection refused, endpoint unreachable, connect timeout
    HTTPClientError,  # read timeout, connection closed, a broken response stream
    IncompleteReadError,
    ConnectionError,  # the standard library's socket-level errors
    TimeoutError,
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_transient(exc: BaseException) -> bool:
    """True for throttling, 5xx, timeouts and connection errors; False for everything else."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, ClientError):
        context = RetryContext(attempt_number=1, parsed_response=exc.response, caught_exception=exc)
        if any(checker.is_retryable(context) for checker in _CHECKERS):
            return True
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status in _TRANSIENT_STATUS
    return isinstance(exc, _TRANSIENT_EXCEPTIONS)


def classify(exc: BaseException, transient: type[TransientError] = TransientError) -> FilepipeError:
    """``exc`` as a :class:`FilepipeError`: itself if already classified, else ``transient`` or
    :class:`UnexpectedError` (permanent) by :func:`is_transient`."""
    if isinstance(exc, FilepipeError):
        return exc
    described = f"{type(exc).__name__}: {exc}"
    if is_transient(exc):
        return transient(described)
    return UnexpectedError(described)

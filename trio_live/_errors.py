"""The exceptions trio_live raises, all under one root.

::

    LiveError
    ├── SessionClosedError        input sent after the session stopped taking it
    ├── PolicyError               the turn policy was driven out of order
    ├── ReplayLogError            a truncated, corrupt or too new record-and-replay log
    ├── ProtocolError             a malformed message or part from a client
    │   ├── AudioFormatError      audio that is not 16-bit mono PCM as declared
    │   └── WireError             a bad websocket message (trio_live.web)
    │       ├── MalformedMessage      not JSON, or fields of the wrong type
    │       ├── UnknownMessageType    a ``type`` the protocol lacks
    │       ├── UnsupportedVersion    a protocol version we do not speak
    │       ├── MessageTooLarge       over the advertised limits
    │       ├── OverBudget            input faster than the budgets allow
    │       └── BadAudioFrame         (also an AudioFormatError)
    ├── ModelError                a turn model failed (status, server message)
    │   ├── AuthenticationError   401 / 403
    │   ├── BadRequestError       other 4xx, or a prompt the model cannot take
    │   ├── RateLimitedError      429 (with the server's Retry-After, if any)
    │   ├── ServerError           5xx, or the connection failed
    │   ├── MalformedStreamError  the response stream could not be parsed
    │   │   └── ResponseTooLargeError  a response, line or event over the read limits
    │   └── ModelTimeoutError     connect, first byte or idle gap timed out
    └── SpeechError               a speech back end (VAD, STT, TTS) failed

Foreign errors (httpx, audio libraries) are converted where they enter the
library, with the original kept as ``__cause__``. No message or repr ever holds
an API key or a token. Every class prints under the package that exports it
(``trio_live.ModelError``, not the private module's name).
"""

from __future__ import annotations


class LiveError(Exception):
    """Root of every error raised by trio_live."""


class SessionClosedError(LiveError):
    """The session no longer accepts input."""


class PolicyError(LiveError):
    """The turn policy was called in a state where that call makes no sense.

    The policy is then in its ``error`` state and refuses every further call.
    """


class ReplayLogError(LiveError):
    """A record-and-replay log that cannot be read: truncated, corrupt or too new.

    Attributes:
        line: the number of the offending line (the header is line 1).
    """

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class ProtocolError(LiveError):
    """A client sent something malformed; the session goes on."""


class AudioFormatError(ProtocolError):
    """Audio that is not 16-bit little-endian mono PCM as declared."""


class SpeechError(LiveError):
    """A speech back end (voice activity detection, speech to text, text to speech) failed."""


class ModelError(LiveError):
    """A turn model failed.

    Attributes:
        status: the HTTP status, or None when no response was received.
        message: what the server (or the model) said, never a secret.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message if status is None else f"{message} (status {status})")
        self.message = message
        self.status = status


class AuthenticationError(ModelError):
    """The model endpoint refused the credentials (401 or 403)."""


class BadRequestError(ModelError):
    """The model endpoint rejected the request (4xx), or the prompt cannot be sent."""


class RateLimitedError(ModelError):
    """The model endpoint asked us to slow down (429).

    Attributes:
        retry_after: seconds the server asked to wait, if it said.
    """

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ServerError(ModelError):
    """The model endpoint failed (5xx) or could not be reached."""


class MalformedStreamError(ModelError):
    """The model's response stream could not be parsed."""


class ResponseTooLargeError(MalformedStreamError):
    """A model's response, or one line or event of it, was over a read limit.

    Attributes:
        limit: the name of the limit, for example ``"max_line_length"``.
    """

    def __init__(self, message: str, *, limit: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.limit = limit


class ModelTimeoutError(ModelError):
    """Connecting, the first byte, or the gap between chunks took too long.

    Attributes:
        phase: ``"connect"``, ``"first_byte"`` or ``"idle"``.
    """

    def __init__(self, message: str, *, phase: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.phase = phase


for _error in (
    LiveError,
    SessionClosedError,
    PolicyError,
    ReplayLogError,
    ProtocolError,
    AudioFormatError,
    SpeechError,
    ModelError,
    AuthenticationError,
    BadRequestError,
    RateLimitedError,
    ServerError,
    MalformedStreamError,
    ResponseTooLargeError,
    ModelTimeoutError,
):
    _error.__module__ = "trio_live"
del _error

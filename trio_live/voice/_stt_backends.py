"""Speech recognizers: the offline back ends of `SpeechToText`.

A recognizer turns one clip of 16-bit little-endian mono PCM into text. It is
synchronous on purpose: the stage calls it in a worker thread, never more than
one call at a time per stage, so the trio event loop never waits for it. Each
recognizer here also holds a lock, so one instance may be shared by several
stages.

Back ends (all ship their model in the wheel; nothing is downloaded):

* ``moonshine``: `MoonshineRecognizer`, Moonshine base-en from the
  ``moonshine-cpp`` wheel (Linux x86_64 and macOS arm64 only). Accurate on open
  vocabulary. Version 0.1.4's own ``transcribe()`` method is broken, so the
  library function is called directly through ctypes. It returns an empty
  string for clips longer than about 8 s: the stage cuts speech into segments
  of at most 7 s.
* ``pocketsphinx``: `PocketSphinxRecognizer` (every platform). Weak on open
  vocabulary; accurate when given the words to expect (``keywords``) or a JSGF
  ``grammar``.

`load_recognizer` picks the best back end installed. Loading takes about a
second (the model is read and warmed up): do it once, in a thread, before the
conversation starts.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterable
from typing import Any, Final, Protocol, runtime_checkable

import attrs

from .._errors import AudioFormatError, SpeechError

#: The sample rate every back end here works at; other rates are resampled.
MODEL_RATE: Final = 16000

BACKENDS: Final = ("moonshine", "pocketsphinx")


@runtime_checkable
class Recognizer(Protocol):
    """Anything that turns a clip of PCM16 audio into text."""

    def transcribe(self, pcm16: bytes, rate: int) -> str:
        """Return the words spoken in ``pcm16`` (mono, ``rate`` Hz), or ``""``.

        Called in a worker thread. Raises `SpeechError` when the back end fails
        and `AudioFormatError` for audio it cannot take.
        """
        ...


@runtime_checkable
class AsyncRecognizer(Protocol):
    """A recognizer that does its work in trio (a server, for example)."""

    async def transcribe(self, pcm16: bytes, rate: int) -> str:
        """Return the words spoken in ``pcm16`` (mono, ``rate`` Hz), or ``""``.

        Raises `LiveError` subclasses when the back end fails. Cancellation
        abandons the request.
        """
        ...


def check_pcm16(pcm16: bytes, rate: int) -> None:
    """Raise `AudioFormatError` unless ``pcm16``/``rate`` can be PCM16 audio."""
    if not isinstance(rate, int) or rate <= 0:
        raise AudioFormatError(f"rate must be a positive int, got {rate!r}")
    if len(pcm16) & 1:
        raise AudioFormatError(f"PCM16 audio needs an even number of bytes, got {len(pcm16)}")


def _to_float32(pcm16: bytes, rate: int) -> Any:
    # PCM16 at any rate -> float32 samples in [-1, 1) at MODEL_RATE (numpy
    # array), low-pass filtered first when going down (see _resample).
    import numpy as np

    from ._resample import resample_samples

    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
    if rate != MODEL_RATE and samples.size:
        count = max(1, round(samples.size * MODEL_RATE / rate))
        resampled = resample_samples(samples.astype(np.float64), rate, MODEL_RATE, count)
        samples = resampled.astype(np.float32)
    return np.ascontiguousarray(samples)


def _to_pcm16_model_rate(pcm16: bytes, rate: int) -> bytes:
    if rate == MODEL_RATE:
        return pcm16
    import numpy as np

    samples = _to_float32(pcm16, rate)
    return bytes(np.clip(samples * 32768.0, -32768, 32767).astype("<i2").tobytes())


# --- Moonshine (moonshine-cpp) ----------------------------------------------


@attrs.define(eq=False)
class MoonshineRecognizer:
    """Moonshine base-en through the ``moonshine-cpp`` library.

    Args:
        warm_up: run one recognition of silence while loading, so that the
            first real clip is not slow.

    Raises:
        SpeechError: if ``moonshine-cpp`` is not installed or the model does
            not load.
    """

    warm_up: bool = attrs.field(default=True, kw_only=True)
    _lib: Any = attrs.field(init=False, repr=False)
    _handle: int = attrs.field(init=False, repr=False)
    _lock: threading.Lock = attrs.field(init=False, repr=False, factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        try:
            import moonshine_cpp  # type: ignore[import-untyped]
        except ImportError as error:  # pragma: no cover - depends on the platform
            raise SpeechError(
                "the moonshine back end needs the moonshine-cpp package "
                "(wheels for Linux x86_64 and macOS arm64)"
            ) from error
        try:
            model = moonshine_cpp.MoonshineModel(language="en", model_type="base")
        except (OSError, MemoryError, AssertionError) as error:
            raise SpeechError(f"could not load the Moonshine model: {error}") from error
        # We keep the handle and free it ourselves; the wrapper must not.
        self._lib = moonshine_cpp.moonshine_lib
        self._handle = model.model_handle
        model.model_handle = -1
        if self.warm_up:
            self.transcribe(bytes(MODEL_RATE), MODEL_RATE)  # 0.5 s of silence

    def __del__(self) -> None:
        handle = getattr(self, "_handle", -1)
        if handle != -1:
            self._handle = -1
            self._lib.moonshine_free_model(handle)

    def transcribe(self, pcm16: bytes, rate: int) -> str:
        """Return the words in ``pcm16`` (keep clips under 8 s)."""
        check_pcm16(pcm16, rate)
        if not pcm16:
            return ""
        samples = _to_float32(pcm16, rate)
        text = ctypes.c_char_p()
        with self._lock:
            code = self._lib.moonshine_transcribe(
                self._handle,
                samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                samples.size,
                ctypes.byref(text),
            )
            if code != 0:
                raise SpeechError(f"moonshine_transcribe failed with error code {code}")
            raw = text.value or b""
            if text.value is not None:
                self._lib.moonshine_free_text(text)
        return raw.decode("utf-8", errors="replace").strip()


# --- PocketSphinx -----------------------------------------------------------


def keywords_grammar(keywords: Iterable[str]) -> str:
    """A JSGF grammar that accepts any sequence of the words in ``keywords``.

    Phrases are split into words; case is ignored.
    """
    words = sorted({word for phrase in keywords for word in phrase.lower().split()})
    if not words:
        raise ValueError("keywords must hold at least one word, got none")
    return "#JSGF V1.0;\ngrammar keywords;\npublic <any> = ( " + " | ".join(words) + " )* ;\n"


def _optional_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"keywords must be a collection of words, got the string {value!r}")
    return tuple(value)


@attrs.define(eq=False)
class PocketSphinxRecognizer:
    """CMU PocketSphinx with its bundled US English model.

    Args:
        keywords: words (or phrases) to expect; the recognizer then only hears
            sequences of these words, which makes it accurate for commands.
        grammar: a JSGF grammar instead (text); not with ``keywords``.

    Raises:
        SpeechError: if ``pocketsphinx`` is not installed or the model does not
            load.
        ValueError: for a keyword the dictionary lacks, or a bad grammar.
    """

    keywords: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, converter=_optional_tuple
    )
    grammar: str | None = attrs.field(default=None, kw_only=True)
    _decoder: Any = attrs.field(init=False, repr=False)
    _lock: threading.Lock = attrs.field(init=False, repr=False, factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        if self.keywords is not None and self.grammar is not None:
            raise ValueError("give keywords or grammar, not both")
        try:
            import pocketsphinx  # type: ignore[import-untyped]
        except ImportError as error:  # pragma: no cover - installed everywhere we test
            raise SpeechError("the pocketsphinx back end needs the pocketsphinx package") from error
        grammar = self.grammar
        if self.keywords is not None:
            grammar = keywords_grammar(self.keywords)
        try:
            if grammar is None:
                self._decoder = pocketsphinx.Decoder(loglevel="FATAL")
                return
            decoder = pocketsphinx.Decoder(loglevel="FATAL", lm=None)
        except RuntimeError as error:
            raise SpeechError(f"could not load the PocketSphinx model: {error}") from error
        if self.keywords is not None:
            words = {word for phrase in self.keywords for word in phrase.lower().split()}
            missing = sorted(word for word in words if decoder.lookup_word(word) is None)
            if missing:
                raise ValueError(f"keywords not in the PocketSphinx dictionary: {missing!r}")
        try:
            decoder.add_jsgf_string("grammar", grammar)
            decoder.activate_search("grammar")
        except RuntimeError as error:
            raise ValueError(f"grammar is not valid JSGF: {error}") from error
        self._decoder = decoder

    def transcribe(self, pcm16: bytes, rate: int) -> str:
        """Return the words in ``pcm16``."""
        check_pcm16(pcm16, rate)
        if not pcm16:
            return ""
        pcm16 = _to_pcm16_model_rate(pcm16, rate)
        with self._lock:
            try:
                self._decoder.start_utt()
                self._decoder.process_raw(pcm16, full_utt=True)
                self._decoder.end_utt()
            except RuntimeError as error:
                raise SpeechError(f"PocketSphinx failed: {error}") from error
            hypothesis = self._decoder.hyp()
        return hypothesis.hypstr.strip() if hypothesis is not None else ""


# --- choosing ---------------------------------------------------------------


def load_recognizer(
    backend: str = "auto",
    *,
    keywords: Iterable[str] | None = None,
    grammar: str | None = None,
) -> Recognizer:
    """Load an offline recognizer.

    Args:
        backend: ``"moonshine"``, ``"pocketsphinx"`` or ``"auto"``: Moonshine
            when it is installed and no ``keywords``/``grammar`` is given,
            else PocketSphinx.
        keywords: words to expect (PocketSphinx only).
        grammar: a JSGF grammar (PocketSphinx only).

    Blocks for about a second: call it with `trio.to_thread.run_sync`.

    Raises:
        SpeechError: if the back end is not installed or does not load.
        ValueError: for an unknown ``backend``, or keywords with Moonshine.
    """
    constrained = keywords is not None or grammar is not None
    if backend == "auto":
        backend = "pocketsphinx" if constrained or not moonshine_available() else "moonshine"
    if backend == "moonshine":
        if constrained:
            raise ValueError("keywords and grammar need the pocketsphinx back end")
        return MoonshineRecognizer()
    if backend == "pocketsphinx":
        return PocketSphinxRecognizer(keywords=keywords, grammar=grammar)
    raise ValueError(
        f"backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}, got {backend!r}"
    )


def moonshine_available() -> bool:
    """True if the ``moonshine-cpp`` package can be imported here."""
    import importlib.util

    return importlib.util.find_spec("moonshine_cpp") is not None

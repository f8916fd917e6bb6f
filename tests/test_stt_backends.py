from __future__ import annotations

import array
import inspect
import wave
from pathlib import Path

import pytest

from trio_live._errors import AudioFormatError
from trio_live.voice._stt_backends import (
    AsyncRecognizer,
    MoonshineRecognizer,
    PocketSphinxRecognizer,
    Recognizer,
    keywords_grammar,
    load_recognizer,
    moonshine_available,
)
from trio_live.voice._stt_http import HttpRecognizer

DATA = Path(__file__).parent / "data"
RATE = 16000


def read_wav(name: str) -> bytes:
    with wave.open(str(DATA / name)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        return bytes(wav.readframes(wav.getnframes()))


def heard(text: str) -> set[str]:
    return {word.strip(".,?!").lower() for word in text.split()}


@pytest.fixture(scope="module")
def moonshine() -> MoonshineRecognizer:
    return MoonshineRecognizer()


@pytest.fixture(scope="module")
def sphinx() -> PocketSphinxRecognizer:
    return PocketSphinxRecognizer()


def test_moonshine_hears_the_key_words(moonshine: MoonshineRecognizer) -> None:
    words = heard(moonshine.transcribe(read_wav("stt_weather.wav"), RATE))
    assert {"weather", "paris", "today"} <= words


def test_moonshine_resamples_other_rates(moonshine: MoonshineRecognizer) -> None:
    # Every other sample: the same clip at 8 kHz.
    samples = array.array("h", read_wav("stt_weather.wav"))[::2]
    words = heard(moonshine.transcribe(samples.tobytes(), 8000))
    assert {"weather", "paris"} <= words


def test_moonshine_silence_and_empty(moonshine: MoonshineRecognizer) -> None:
    assert moonshine.transcribe(b"", RATE) == ""
    assert moonshine.transcribe(bytes(RATE), RATE) == ""
    assert moonshine.transcribe(read_wav("silence.wav"), RATE) == ""


def test_moonshine_different_clips_give_different_transcripts(
    moonshine: MoonshineRecognizer,
) -> None:
    # A recognizer that always returned one sentence holding every key word
    # would pass the key-word checks above; it cannot pass this one.
    weather = heard(moonshine.transcribe(read_wav("stt_weather.wav"), RATE))
    stop = heard(moonshine.transcribe(read_wav("stt_stop.wav"), RATE))
    assert weather != stop
    assert {"weather", "paris"} <= weather
    assert not weather & {"stop", "dragon", "story"}
    assert {"stop", "dragon", "story"} <= stop
    assert not stop & {"weather", "paris"}


def test_pocketsphinx_different_clips_give_different_transcripts(
    sphinx: PocketSphinxRecognizer,
) -> None:
    weather = heard(sphinx.transcribe(read_wav("stt_weather.wav"), RATE))
    stop = heard(sphinx.transcribe(read_wav("stt_stop.wav"), RATE))
    assert weather != stop
    assert "weather" in weather
    assert "weather" not in stop
    assert "dragon" in stop
    assert "dragon" not in weather
    assert sphinx.transcribe(read_wav("silence.wav"), RATE) == ""


def test_pocketsphinx_open_vocabulary_hears_some_words(sphinx: PocketSphinxRecognizer) -> None:
    # Weak on open vocabulary: only the clearest word is asserted.
    assert "weather" in heard(sphinx.transcribe(read_wav("stt_weather.wav"), RATE))


def test_pocketsphinx_with_keywords_is_accurate() -> None:
    recognizer = PocketSphinxRecognizer(
        keywords=["what is the weather like", "in paris today", "please stop", "green dragon"]
    )
    words = heard(recognizer.transcribe(read_wav("stt_weather.wav"), RATE))
    assert {"what", "weather", "paris", "today"} <= words
    allowed = {"what", "is", "the", "weather", "like", "in", "paris", "today"}
    assert words <= allowed | {"please", "stop", "green", "dragon"}


def test_pocketsphinx_with_grammar() -> None:
    grammar = (
        "#JSGF V1.0;\ngrammar commands;\n"
        "public <command> = please stop talking | what is the weather like in paris today;\n"
    )
    recognizer = PocketSphinxRecognizer(grammar=grammar)
    words = heard(recognizer.transcribe(read_wav("stt_weather.wav"), RATE))
    assert (
        {"what", "weather"}
        <= words
        <= {"what", "is", "the", "weather", "like", "in", "paris", "today"}
    )


def test_keywords_grammar() -> None:
    grammar = keywords_grammar(["Green dragon", "stop", "green"])
    assert "public <any> = ( dragon | green | stop )* ;" in grammar
    with pytest.raises(ValueError, match="at least one word"):
        keywords_grammar([" "])


def test_pocketsphinx_rejects_unknown_keywords_and_bad_grammar() -> None:
    with pytest.raises(ValueError, match="xyzzyq"):
        PocketSphinxRecognizer(keywords=["stop", "xyzzyq"])
    with pytest.raises(ValueError, match="JSGF"):
        PocketSphinxRecognizer(grammar="this is not a grammar")
    with pytest.raises(ValueError, match="not both"):
        PocketSphinxRecognizer(keywords=["stop"], grammar="x")
    with pytest.raises(TypeError, match="collection of words"):
        PocketSphinxRecognizer(keywords="stop")


@pytest.mark.parametrize("backend", ["moonshine", "pocketsphinx"])
def test_bad_audio_is_a_format_error(
    backend: str, moonshine: MoonshineRecognizer, sphinx: PocketSphinxRecognizer
) -> None:
    recognizer = moonshine if backend == "moonshine" else sphinx
    with pytest.raises(AudioFormatError, match="even number"):
        recognizer.transcribe(b"\x00\x01\x02", RATE)
    with pytest.raises(AudioFormatError, match="rate"):
        recognizer.transcribe(b"\x00\x00", 0)


def test_protocols(moonshine: MoonshineRecognizer, sphinx: PocketSphinxRecognizer) -> None:
    # The library's own recognizers, each against the protocol it claims.
    assert isinstance(moonshine, Recognizer)
    assert isinstance(sphinx, Recognizer)
    remote = HttpRecognizer("http://stt.test/v1")
    assert isinstance(remote, AsyncRecognizer)
    assert inspect.iscoroutinefunction(remote.transcribe)
    assert not inspect.iscoroutinefunction(moonshine.transcribe)
    assert not inspect.iscoroutinefunction(sphinx.transcribe)
    # Something without ``transcribe`` is neither.
    assert not isinstance(object(), Recognizer)
    assert not isinstance(object(), AsyncRecognizer)


def test_load_recognizer_picks_a_back_end() -> None:
    assert moonshine_available()  # CI installs it: the default must be Moonshine
    assert isinstance(load_recognizer(), MoonshineRecognizer)
    assert isinstance(load_recognizer(keywords=["stop"]), PocketSphinxRecognizer)
    assert isinstance(load_recognizer("pocketsphinx"), PocketSphinxRecognizer)
    with pytest.raises(ValueError, match="pocketsphinx back end"):
        load_recognizer("moonshine", keywords=["stop"])
    with pytest.raises(ValueError, match="backend must be one of"):
        load_recognizer("whisper")

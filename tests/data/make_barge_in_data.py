"""Make the barge-in-over-playback clips (16 kHz mono PCM16) with espeak-ng.

Run from the repository: ``.venv/bin/python tests/data/make_barge_in_data.py``.
The clips are committed; run this only to change them. (sox is not needed: the
trimming and mixing are done here with numpy, deterministically.)

* ``barge_in.wav``: the user asks (at 0.50 s) "Hello, what is the weather
  like today?", is silent while the answer plays, then says "Stop. Wait a
  moment." starting at exactly ``BARGE_IN`` seconds, then 1.5 s of silence.
  A headset: the microphone hears the user only.
* ``barge_in_echo.wav``: the same, plus the model's answer (espeak-ng as the
  server speaks it) as echo from speakers, ``ECHO_DB`` dB below the user's
  voice, from ``ECHO_FROM`` to ``ECHO_TO`` seconds (it goes on under the
  user's first words).
* ``echo_only.wav``: 0.3 s of silence and 4 s of that echo alone (it must
  never start speech under the echo guard).
* ``barge_in_late.wav``: as ``barge_in.wav`` with "Stop. Wait a moment." at
  ``LATE_BARGE_IN`` seconds, for the browser test (its answer is twice as
  long): the answer plays by then even when a loaded machine took seconds to
  recognize the question.
* ``backchannel.wav``: silence, then only "Yeah." at ``BACKCHANNEL``
  seconds, then 1.5 s of silence (a headset; the test types its question, so
  that the answer plays by then however loaded the machine): with the page's
  "backchannels don't interrupt" switch the answer goes on.

The exact times are written to ``barge_in.txt`` (``name value`` lines).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from trio_live.voice._audio import parse_wav, resample, write_wav

HERE = Path(__file__).parent
RATE = 16000
QUESTION_AT = 0.5
BARGE_IN = 10.0
BACKCHANNEL = 6.0
LATE_BARGE_IN = 16.0
ECHO_FROM = 7.0
ECHO_TO = 10.4
ECHO_DB = -12.0
QUESTION = "Hello, what is the weather like today?"
INTERRUPTION = "Stop. Wait a moment."
AGREEING = "Yeah."
# The answer the browser test's model gives (kept in step with the test).
ANSWER = (
    "It is sunny in the browser today, with a light breeze from the west and a few "
    "small clouds in the afternoon, so it is a good day for a long walk in the park "
    "before a warm and quiet evening."
)


def speak(text: str, words_per_minute: int) -> np.ndarray:
    """espeak-ng's speech of ``text``, 16 kHz float, trimmed to its audible part."""
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", "en-us", "-s", str(words_per_minute), text],
        check=True,
        capture_output=True,
    ).stdout
    pcm, rate = parse_wav(wav)
    samples = np.frombuffer(resample(pcm, rate, RATE), dtype="<i2").astype(np.float64) / 32768
    audible = np.flatnonzero(np.abs(samples) > 0.005)
    return samples[audible[0] : audible[-1] + 1]


def place(track: np.ndarray, sound: np.ndarray, at: float) -> None:
    start = round(at * RATE)
    end = min(len(track), start + len(sound))
    track[start:end] += sound[: end - start]


def save(name: str, track: np.ndarray) -> None:
    pcm = (np.clip(track, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()
    write_wav(HERE / name, pcm, RATE)


def main() -> None:
    question = speak(QUESTION, 165)
    stop = speak(INTERRUPTION, 165)
    answer = speak(ANSWER, 175) * 10 ** (ECHO_DB / 20)
    echo = answer[: round((ECHO_TO - ECHO_FROM) * RATE)].copy()
    fade = round(0.05 * RATE)
    echo[-fade:] *= np.linspace(1.0, 0.0, fade)
    length = BARGE_IN + len(stop) / RATE + 1.5
    user = np.zeros(round(length * RATE))
    place(user, question, QUESTION_AT)
    place(user, stop, BARGE_IN)
    save("barge_in.wav", user)
    with_echo = user.copy()
    place(with_echo, echo, ECHO_FROM)
    save("barge_in_echo.wav", with_echo)
    alone = np.zeros(round(4.3 * RATE))
    place(alone, answer[: round(4.0 * RATE)], 0.3)
    save("echo_only.wav", alone)
    late = np.zeros(round((LATE_BARGE_IN + len(stop) / RATE + 1.5) * RATE))
    place(late, question, QUESTION_AT)
    place(late, stop, LATE_BARGE_IN)
    save("barge_in_late.wav", late)
    yeah = speak(AGREEING, 165)
    nodding = np.zeros(round((BACKCHANNEL + len(yeah) / RATE + 1.5) * RATE))
    place(nodding, yeah, BACKCHANNEL)
    save("backchannel.wav", nodding)
    lines = {
        "question_at": QUESTION_AT,
        "question_end": QUESTION_AT + len(question) / RATE,
        "barge_in": BARGE_IN,
        "barge_in_end": BARGE_IN + len(stop) / RATE,
        "echo_from": ECHO_FROM,
        "echo_to": ECHO_TO,
        "echo_db": ECHO_DB,
        "late_barge_in": LATE_BARGE_IN,
        "backchannel": BACKCHANNEL,
        "backchannel_end": BACKCHANNEL + len(yeah) / RATE,
    }
    (HERE / "barge_in.txt").write_text("".join(f"{k} {v:.6f}\n" for k, v in lines.items()))
    print("wrote the barge-in and backchannel clips and barge_in.txt")


if __name__ == "__main__":
    main()

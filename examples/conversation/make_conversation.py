"""Regenerate the demo's recorded conversation (needs espeak-ng and numpy).

Each line of ``conversation.txt`` is ``<start second> <file> <words>``. The
words are spoken by espeak-ng (voice en-us+m3, 160 words a minute), trimmed
to the speech and resampled to 16 kHz mono 16-bit; the demo places each file
at its start second on one microphone track. Two kinds of line are special:

* ``...`` in the words is a pause of `PAUSE` seconds mid-sentence: longer
  than the voice activity detector's 0.3 s of silence, so VAD alone ends the
  turn there, and shorter than ``incomplete_turn_timeout`` (2 s), so a turn
  detector that hears the sentence unfinished holds it.
* ``-`` for the words is a cough (espeak-ng phonemes ``[[h'Vx h'@x]]``): a
  voice activity detector hears speech, speech to text hears no words.

espeak-ng is deterministic, so running this again writes the same bytes.

Run: .venv/bin/python examples/conversation/make_conversation.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trio_live.voice import float_to_pcm, parse_wav, pcm_to_float, resample, write_wav

HERE = Path(__file__).resolve().parent
RATE = 16000
PAUSE = 1.3
COUGH = "[[h'Vx h'@x]]"


def espeak(text: str) -> np.ndarray:
    """``text`` spoken, trimmed to where it is louder than 0.5 % of full scale."""
    command = ["espeak-ng", "-v", "en-us+m3", "-s", "160", "--stdout", text]
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    pcm, rate = parse_wav(wav)
    samples = pcm_to_float(resample(pcm, rate, RATE))
    loud = np.flatnonzero(np.abs(samples) > 0.005)
    return samples[loud[0] : loud[-1] + 1]


def line_audio(words: str) -> np.ndarray:
    """The audio of one line of ``conversation.txt``."""
    if words == "-":
        return espeak(COUGH)
    pieces = [espeak(piece.strip()) for piece in words.split("...")]
    gap = np.zeros(round(PAUSE * RATE), dtype=np.float32)
    joined = [pieces[0]]
    for piece in pieces[1:]:
        joined += [gap, piece]
    return np.concatenate(joined)


def main() -> None:
    for text in (HERE / "conversation.txt").read_text().splitlines():
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        start, name, words = text.split(maxsplit=2)
        samples = line_audio(words)
        write_wav(HERE / name, float_to_pcm(samples), RATE)
        print(f"{name}: {samples.size / RATE:.2f} s at {start} s: {words}")


if __name__ == "__main__":
    main()

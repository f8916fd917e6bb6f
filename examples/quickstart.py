"""The README's quick start: a live session with a barge-in, in a few lines.

Run: .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import trio

from trio_live import (
    LiveSession,
    Part,
    PromptStream,
    end_of_speech,
    end_of_turn,
    start_of_speech,
    text_part,
    transcription,
    turn_model,
)


@turn_model
async def counting_model(prompt: PromptStream) -> AsyncGenerator[Part, None]:
    """A stand-in for a real model: counts the user's words, slowly."""
    parts = await prompt.collect()  # the whole prompt, once the turn is triggered
    words = sum(len(p.text.split()) for p in parts if p.role == "user")
    for n in range(1, words + 1):
        await trio.sleep(0.1)
        yield text_part(f"{n} ", role="model")


async def main() -> None:
    async with LiveSession(counting_model) as session:

        async def user() -> None:
            await session.send(end_of_turn("one two three four five six"))
            await trio.sleep(0.35)
            await session.send(start_of_speech())  # talks over the model
            await session.send(transcription("stop please", final=True))
            await session.send(end_of_speech())  # the final transcript triggers
            session.close_input()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(user)
            async for part in session:
                print(part.metadata.get("turn"), part.mimetype, repr(part.content))

    for part in session.history():
        print(f"{part.role:>5}: {part.content!r}")


if __name__ == "__main__":
    trio.run(main)

"""A live session around a tiny turn model, driven by typed input.

Run: .venv/bin/python examples/text_chat.py

Type a line and press Enter to end your turn. Type while the model is
answering to barge in (the answer stops; your text joins the conversation).
An empty line quits.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import trio

from trio_live import LiveSession, Part, PromptStream, end_of_turn, is_interrupted, turn_model


@turn_model
async def slow_echo(prompt: PromptStream) -> AsyncGenerator[Part, None]:
    """Answers word by word, slowly enough to be interrupted."""
    parts = await prompt.collect()
    said = [p.text for p in parts if p.role == "user"]
    words = f"You said {said[-1]!r}. I will now talk for a while.".split() if said else ["Hi!"]
    for word in words:
        await trio.sleep(0.3)
        yield Part(content=word + " ", role="model")


async def main() -> None:
    async with LiveSession(slow_echo) as session:

        async def read_keyboard() -> None:
            stdin = trio.lowlevel.FdStream(0)
            buffer = b""
            while True:
                chunk = await stdin.receive_some()
                if not chunk:
                    session.close_input()
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        session.close_input()
                        return
                    await session.send(end_of_turn(line.decode()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_keyboard)
            async for part in session:
                if is_interrupted(part):
                    print(" [interrupted]")
                elif part.role == "model" and part.content:
                    print(part.text, end="", flush=True)
                elif part.mimetype.endswith("turn-complete"):
                    print()
    print("history:", [(p.role, p.content) for p in session.history()])


if __name__ == "__main__":
    trio.run(main)

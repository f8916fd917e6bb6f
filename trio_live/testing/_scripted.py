"""A turn model that follows a script, for tests and demos."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs
import trio

from .._checks import finite_non_negative
from .._model import PromptStream
from .._parts import Part, is_text, text_part

Reply = str | Sequence[str | Part]
Script = Sequence[Reply] | Callable[[list[Part]], Reply]


@attrs.define(eq=False)
class RecordedPrompt:
    """One call of a `ScriptedModel`.

    Attributes:
        call: the call's number, from 0 (pre-started calls count too).
        started_at: when the call started.
        arrivals: each prompt part with the time the model read it.
        finalized_at: when the prompt was complete (None if it never was).
        turn: the answer's index in the script (None until finalized).
        sent: the texts the model sent, as far as each send returned (of a
            part such as a tool call, its content).
        finished: True if the model sent its whole reply.
    """

    call: int
    started_at: float
    arrivals: list[tuple[float, Part]] = attrs.field(factory=list)
    finalized_at: float | None = None
    turn: int | None = None
    sent: list[str] = attrs.field(factory=list)
    finished: bool = False

    @property
    def parts(self) -> list[Part]:
        """The prompt's parts, in order."""
        return [part for _, part in self.arrivals]


def _echo(prompt: list[Part]) -> Reply:
    said = [p.text for p in prompt if p.role == "user" and is_text(p) and p.content]
    if not said:
        return ["I", " am", " listening."]
    return ["You", " said:", *(f" {word}" for word in said[-1].split())]


@attrs.define(eq=False)
class ScriptedModel:
    """A turn model that answers from a script.

    Args:
        script: the replies, one per call (a string, or a list of strings
            sent as separate parts, and parts such as
            ``trio_live.tool_call("clock", {})``, sent as they are); past the
            end the last one repeats. Each call is one reply: an answer with
            tool calls takes the next one once the results are in. Or a
            function of the prompt's parts that returns the reply. The
            default echoes the user's last text.
        first_part_delay: seconds from the complete prompt to the first part.
        part_delay: seconds between parts.
        errors: turn index → exception to raise instead of answering.
    """

    script: Script = _echo
    first_part_delay: float = attrs.field(default=0.0, validator=finite_non_negative)
    part_delay: float = attrs.field(default=0.0, validator=finite_non_negative)
    errors: Mapping[int, Exception] = attrs.field(factory=dict)
    calls: list[RecordedPrompt] = attrs.field(init=False, factory=list)
    _turns: int = attrs.field(init=False, default=0)

    @property
    def prompts(self) -> list[list[Part]]:
        """Every complete prompt the model answered, in order."""
        return [call.parts for call in self.calls if call.turn is not None]

    def _reply(self, turn: int, prompt: list[Part]) -> list[str | Part]:
        script = self.script
        if callable(script):
            reply = script(prompt)
        else:
            if not script:
                return []
            reply = script[min(turn, len(script) - 1)]
        return [reply] if isinstance(reply, str) else list(reply)

    async def __call__(self, prompt: PromptStream, output: trio.abc.SendChannel[Part]) -> None:
        """Read the whole prompt, wait, then send the scripted reply part by part."""
        record = RecordedPrompt(call=len(self.calls), started_at=trio.current_time())
        self.calls.append(record)
        async for part in prompt:
            record.arrivals.append((trio.current_time(), part))
        record.finalized_at = trio.current_time()
        turn = record.turn = self._turns
        self._turns += 1
        if turn in self.errors:
            raise self.errors[turn]
        reply = self._reply(turn, record.parts)
        await trio.sleep(self.first_part_delay)
        for index, item in enumerate(reply):
            if index:
                await trio.sleep(self.part_delay)
            if isinstance(item, str):
                await output.send(text_part(item, role="model"))
                record.sent.append(item)
            else:
                await output.send(item)
                record.sent.append(item.text)
        record.finished = True

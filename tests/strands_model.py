"""A scripted Strands model for tests: no network, no API key.

Each turn is either a list of tool calls ``(toolUseId, tool name, input)`` or a final text;
the model streams them as Converse-style events, as Strands' own providers do.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from strands.models import Model

Call = tuple[str, str, dict[str, Any]]  # toolUseId, tool name, input


class ScriptedModel(Model):
    """Replays ``turns``; once they run out it answers "done"."""

    def __init__(self, turns: Sequence[Sequence[Call] | str]) -> None:
        self.turns = list(turns)
        self.prompts: list[Any] = []

    def update_config(self, **model_config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def stream(self, messages: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.prompts.append(list(messages))
        turn = self.turns.pop(0) if self.turns else "done"
        yield {"messageStart": {"role": "assistant"}}
        if isinstance(turn, str):
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": turn}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "end_turn"}}
            return
        for tool_use_id, name, tool_input in turn:
            start = {"toolUse": {"toolUseId": tool_use_id, "name": name}}
            yield {"contentBlockStart": {"start": start}}
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(tool_input)}}}}
            yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "tool_use"}}

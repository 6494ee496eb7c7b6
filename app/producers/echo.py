"""``echo``: streams the last user message back, word by word."""

from __future__ import annotations

import re

import trio
from pydantic import BaseModel, ConfigDict, Field

from engine import RunContext

from ._registry import ProducerSpec

__all__ = ["EchoInput", "echo"]


class Message(BaseModel):
    model_config = ConfigDict(strict=True)
    role: str = "user"
    content: str = ""


class EchoInput(BaseModel):
    # A misspelt parameter is a 400, not ignored; a wrongly typed one is a 400, not
    # converted (strict).
    model_config = ConfigDict(extra="forbid", strict=True)

    messages: list[Message] = Field(default_factory=list)
    text: str | None = Field(None, description="Used when there are no messages.")
    interval_ms: float = Field(0.0, ge=0, le=60_000)


async def run_echo(ctx: RunContext) -> None:
    params = EchoInput.model_validate(ctx.input)
    users = [m.content for m in params.messages if m.role == "user"]
    text = users[-1] if users else (params.text or "")
    words = re.findall(r"\S+\s*", text)
    for i, word in enumerate(words):
        if i and params.interval_ms:
            await trio.sleep(params.interval_ms / 1000)
        await ctx.text(word)
    await ctx.usage(len(text.split()), len(words))


echo = ProducerSpec("echo", run_echo, EchoInput, "Streams the last user message back word by word.")

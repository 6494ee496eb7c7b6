"""Request bodies of the OpenAI-compatible and Vercel AI SDK routes.

They accept the fields those clients send and ignore the sampling knobs that a producer
does not use (``temperature``, ``top_p``, ...): ``extra="allow"``. ``model`` names the
producer; ``metadata`` (string values, as the OpenAI API requires) carries the producer's
parameters, e.g. ``synthetic``'s ``events``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletionRequest",
    "ModelCard",
    "ModelList",
    "ResponsesRequest",
    "StreamOptions",
    "UIChatRequest",
    "normalize_messages",
]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(..., min_length=1)
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(..., min_length=1)
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    stream: bool = False
    background: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)


class UIChatRequest(BaseModel):
    """What the AI SDK's default chat transport posts, plus optional scopestream fields a
    client can add with the transport's ``body`` option."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(..., min_length=1, max_length=200, description="The chat id.")
    messages: list[dict[str, Any]] = Field(default_factory=list)
    trigger: str | None = None
    messageId: str | None = None
    producer: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    on_disconnect: Literal["cancel", "continue"] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "scopestream"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _text_of(content: Any) -> str:
    """Text of an OpenAI or AI SDK content value: a string, or a list of typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text")
        )
    return ""


def normalize_messages(items: Any) -> list[dict[str, str]]:
    """Chat messages, Responses input items or AI SDK UI messages as ``{role, content}``."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, str]] = []
    for item in items or []:
        if not isinstance(item, dict) or "role" not in item:
            continue
        content = item.get("content") if "parts" not in item else item.get("parts")
        out.append({"role": str(item["role"]), "content": _text_of(content)})
    return out

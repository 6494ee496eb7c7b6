"""Request bodies of the OpenAI-compatible and Vercel AI SDK routes.

They accept the fields those clients send and ignore the sampling knobs that a producer
does not use (``temperature``, ``top_p``, ...): ``extra="allow"``. ``model`` names the
producer; ``metadata`` (string values, as the OpenAI API requires) carries the producer's
parameters, e.g. ``synthetic``'s ``events``; ``"metadata": null`` is the same as none, as
in the OpenAI API.

The AI SDK's messages are checked for the shape its releases 5 and later send (``id``,
``role``, typed ``parts``; text and reasoning parts carry ``text``); what each kind of part
holds beyond that is kept as sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

__all__ = [
    "ChatCompletionRequest",
    "ModelCard",
    "ModelList",
    "ResponsesRequest",
    "StreamOptions",
    "UIChatRequest",
    "UIMessage",
    "normalize_messages",
]


def _null_is_empty(value: Any) -> Any:
    return {} if value is None else value


#: ``metadata``: an object, where ``null`` means none.
Metadata = Annotated[dict[str, str], BeforeValidator(_null_is_empty)]


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
    metadata: Metadata = Field(default_factory=dict)


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(..., min_length=1)
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    stream: bool = False
    background: bool = False
    metadata: Metadata = Field(default_factory=dict)


class UIPart(BaseModel):
    """A part of a UI message: ``step-start``, ``tool-<name>``, ``data-<name>``, ``file``,
    ``source-url``, ...; its other fields are kept as sent."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(..., min_length=1)


class UITextPart(UIPart):
    """A ``text`` or ``reasoning`` part."""

    type: Literal["text", "reasoning"]
    text: str


def _part_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "UITextPart" if kind in ("text", "reasoning") else "UIPart"


# The tags are class names, which error locations leave out (app.errors.validation_fields):
# a text part without text is "messages.0.parts.0.text".
_Part = Annotated[
    Annotated[UITextPart, Tag("UITextPart")] | Annotated[UIPart, Tag("UIPart")],
    Discriminator(_part_kind),
]


class UIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    role: Literal["system", "user", "assistant"]
    parts: list[_Part]
    metadata: Any = None


class UIChatRequest(BaseModel):
    """What the AI SDK's default chat transport posts, plus optional scopestream fields a
    client can add with the transport's ``body`` option."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(..., min_length=1, max_length=200, description="The chat id.")
    messages: list[UIMessage] = Field(default_factory=list)
    trigger: str | None = None
    messageId: str | None = None
    producer: str | None = None
    metadata: Annotated[dict[str, Any], BeforeValidator(_null_is_empty)] = Field(
        default_factory=dict
    )
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
    """Chat messages, Responses input items or AI SDK UI messages (dicts or the models
    above) as ``{role, content}``."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, str]] = []
    for item in items or []:
        if isinstance(item, BaseModel):
            item = item.model_dump(exclude_unset=True)
        if not isinstance(item, dict) or "role" not in item:
            continue
        content = item.get("content") if "parts" not in item else item.get("parts")
        out.append({"role": str(item["role"]), "content": _text_of(content)})
    return out

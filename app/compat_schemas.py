"""Request bodies of the OpenAI-compatible and Vercel AI SDK routes.

A Chat Completions request is checked for the shape the OpenAI API documents: messages by
role with their content parts (text, image URLs, ...), an assistant's ``tool_calls``, a tool
message's ``tool_call_id``; ``tools``, ``tool_choice`` and the sampling parameters with
their ranges. A field this schema does not know is kept (``extra="allow"``): an upstream
model may understand it (vLLM's ``top_k``, Ollama's ``keep_alive``), and a built-in
producer ignores it. Fields that scopestream cannot honour are refused with a 400 naming
them (``n`` above 1, ``logprobs``: one choice is streamed, without log probabilities).

``model`` names a route (see ``app.routing``); ``metadata`` (string values, as the OpenAI
API requires) carries a built-in producer's parameters, e.g. ``synthetic``'s ``events``;
``"metadata": null`` is the same as none, as in the OpenAI API.

The AI SDK's messages are checked for the shape its releases 5 and later send (``id``,
``role``, typed ``parts``; text and reasoning parts carry ``text``); what each kind of part
holds beyond that is kept as sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .schemas import CLIENT_ID_PATTERN

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
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


#: ``metadata``: an object, where ``null`` means none (documented so).
Metadata = Annotated[
    dict[str, str],
    BeforeValidator(_null_is_empty),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "string"}},
                {"type": "null"},
            ]
        }
    ),
]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool = False


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str = Field(..., min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: ImageURL


class OtherPart(BaseModel):
    """``input_audio``, ``file``, ``refusal``: passed on as sent."""

    model_config = ConfigDict(extra="allow")
    type: Literal["input_audio", "file", "refusal"]


_CONTENT_TAGS = {
    "text": "TextPart",
    "image_url": "ImagePart",
    "input_audio": "OtherPart",
    "file": "OtherPart",
    "refusal": "OtherPart",
}


def _content_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return _CONTENT_TAGS.get(kind) if isinstance(kind, str) else None


ContentPart = Annotated[
    Annotated[TextPart, Tag("TextPart")]
    | Annotated[ImagePart, Tag("ImagePart")]
    | Annotated[OtherPart, Tag("OtherPart")],
    Discriminator(
        _content_kind,
        custom_error_type="invalid_part",
        custom_error_message="expected a part of type text, image_url, input_audio, file "
        "or refusal",
    ),
]


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(..., min_length=1)
    arguments: str = Field(..., description="JSON text, as the model produced it.")


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(..., min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _by_role(self) -> ChatMessage:
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs tool_call_id")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str = Field(..., min_length=1)


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(..., min_length=1)
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    metadata: Metadata = Field(default_factory=dict)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    n: Literal[1] | None = Field(None, description="One choice is streamed: only 1.")
    logprobs: Literal[False] | None = Field(None, description="Not relayed: only false.")

    @field_validator("tool_choice")
    @classmethod
    def _named_tool_exists(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, NamedToolChoice):
            names = {tool.function.name for tool in info.data.get("tools") or []}
            if value.function.name not in names:
                raise ValueError("names a function that is not in tools")
        return value


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(..., min_length=1)
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    stream: StrictBool = False
    background: StrictBool = False
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
    id: str = Field(
        ...,
        pattern=CLIENT_ID_PATTERN,
        description="The chat id: 1 to 200 of A-Z a-z 0-9 . _ : -",
    )
    messages: list[UIMessage] = Field(default_factory=list)
    trigger: str | None = None
    messageId: str | None = None
    model: str | None = Field(
        None, min_length=1, description="A routed model (see GET /v1/models); not with producer."
    )
    producer: str | None = None
    metadata: Annotated[
        dict[str, Any],
        BeforeValidator(_null_is_empty),
        WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "null"}]}),
    ] = Field(default_factory=dict)
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

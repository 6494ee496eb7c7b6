"""A conversation in the Responses API's or the AI SDK's shape, as a Chat Completions
request: what a producer that takes a whole chat request (the upstream) is given.

Whatever cannot be said in a Chat Completions request is refused with a 400 naming the
client's own field (a built-in tool such as ``web_search``, a ``previous_response_id``
that scopestream does not store, an input item of an unknown type), never dropped in
silence. Reasoning items and parts are left out: a Chat Completions model takes no
reasoning back.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from .compat_schemas import ResponsesRequest, UIChatRequest, UIMessage
from .errors import ApiError

__all__ = ["responses_to_chat", "ui_to_chat"]

#: Responses fields that have no meaning for a Chat Completions upstream and are ignored.
_RESPONSES_IGNORED = frozenset(
    {
        "stream",
        "background",
        "metadata",
        "store",
        "include",
        "service_tier",
        "truncation",
        "prompt_cache_key",
        "safety_identifier",
    }
)
#: Responses fields translated below.
_RESPONSES_TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "max_output_tokens",
        "parallel_tool_calls",
        "user",
        "reasoning",
        "text",
    }
)


def _refuse(field: str, message: str) -> NoReturn:
    raise ApiError(
        400,
        "invalid_request",
        f"{field}: {message}.",
        fields=[{"field": field, "message": message}],
    )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        _refuse(field, "expected a string")
    return value


# -- Responses -------------------------------------------------------------------------


def responses_to_chat(data: ResponsesRequest) -> dict[str, Any]:
    """The Chat Completions request for a Responses request; 400 naming a field that a
    chat model cannot be given."""
    sent = data.model_dump(exclude_unset=True)
    for name in sent:
        if name not in _RESPONSES_IGNORED and name not in _RESPONSES_TRANSLATED:
            _refuse(name, "not supported with a Chat Completions upstream")
    messages: list[dict[str, Any]] = []
    if data.instructions:
        messages.append({"role": "system", "content": data.instructions})
    if isinstance(data.input, str):
        messages.append({"role": "user", "content": data.input})
    else:
        for i, item in enumerate(data.input):
            _input_item(item, f"input.{i}", messages)
    chat: dict[str, Any] = {"model": data.model, "messages": messages}
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if sent.get(name) is not None:
            chat[name] = sent[name]
    if sent.get("max_output_tokens") is not None:
        chat["max_tokens"] = sent["max_output_tokens"]
    if sent.get("tools") is not None:
        chat["tools"] = _tools(sent["tools"])
    if sent.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(sent["tool_choice"])
    reasoning = sent.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    text = sent.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        response_format = _response_format(text["format"])
        if response_format is not None:
            chat["response_format"] = response_format
    return chat


def _input_item(item: dict[str, Any], field: str, messages: list[dict[str, Any]]) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            _refuse(f"{field}.role", "expected user, system, developer or assistant")
        messages.append({"role": role, "content": _content(item.get("content"), field)})
    elif kind == "function_call":
        call = {
            "id": _text(item.get("call_id"), f"{field}.call_id"),
            "type": "function",
            "function": {
                "name": _text(item.get("name"), f"{field}.name"),
                "arguments": _text(item.get("arguments"), f"{field}.arguments"),
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, list):
            output = _content(output, f"{field}.output")
        messages.append(
            {
                "role": "tool",
                "tool_call_id": _text(item.get("call_id"), f"{field}.call_id"),
                "content": output if isinstance(output, str | list) else json.dumps(output),
            }
        )
    elif kind == "reasoning":
        return  # a chat model takes no reasoning back
    else:
        _refuse(f"{field}.type", "expected message, function_call or function_call_output")


def _content(content: Any, field: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        _refuse(f"{field}.content", "expected a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{field}.content.{j}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": _text(part.get("text"), f"{where}.text")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _text(part.get("refusal"), f"{where}.refusal")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("auto", "low", "high"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_image":
            _refuse(f"{where}.image_url", "only images given by URL can be sent upstream")
        else:
            _refuse(f"{where}.type", "expected input_text, output_text, refusal or input_image")
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        _refuse("tools", "expected a list")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            _refuse(f"tools.{i}.type", "only function tools can be sent upstream")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    _refuse("tool_choice", "expected none, auto, required or a function")


def _response_format(fmt: dict[str, Any]) -> dict[str, Any] | None:
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    _refuse("text.format.type", "expected text, json_object or json_schema")


# -- AI SDK ----------------------------------------------------------------------------


def ui_to_chat(data: UIChatRequest) -> dict[str, Any]:
    """The Chat Completions request for an AI SDK chat: the UI messages as chat messages
    (an assistant's tool parts become its ``tool_calls`` and the tool messages with their
    outputs), plus every extra body field the client added (``tools``, ``temperature``...),
    which the Chat Completions schema then checks."""
    messages: list[dict[str, Any]] = []
    for message in data.messages:
        if message.role == "assistant":
            messages.extend(_assistant(message))
        else:
            messages.append({"role": message.role, "content": _ui_content(message)})
    return {**(data.model_extra or {}), "model": data.model, "messages": messages}


def _ui_content(message: UIMessage) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in message.parts:
        fields = part.model_dump()
        if part.type == "text":
            parts.append({"type": "text", "text": fields["text"]})
        elif part.type == "file" and str(fields.get("mediaType", "")).startswith("image/"):
            parts.append({"type": "image_url", "image_url": {"url": str(fields.get("url"))}})
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _assistant(message: UIMessage) -> list[dict[str, Any]]:
    """One assistant UI message is a chat assistant message per step: text, then the tool
    calls it made, then a tool message per call that has an output."""
    out: list[dict[str, Any]] = []
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def flush() -> None:
        if text or calls:
            turn: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
            if calls:
                turn["tool_calls"] = list(calls)
            out.append(turn)
            out.extend(results)
        text.clear()
        calls.clear()
        results.clear()

    for part in message.parts:
        fields = part.model_dump()
        if part.type == "text":
            if calls:
                flush()  # text after tool calls is the next step's
            text.append(fields["text"])
        elif part.type.startswith("tool-") or part.type == "dynamic-tool":
            state = fields.get("state")
            if state not in ("input-available", "output-available", "output-error"):
                continue  # still streaming its input: nothing was called
            name = fields.get("toolName") if part.type == "dynamic-tool" else part.type[5:]
            call_id = str(fields.get("toolCallId", ""))
            arguments = json.dumps(fields.get("input", {}))
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": str(name), "arguments": arguments},
                }
            )
            if state == "output-available":
                output = fields.get("output")
                content = output if isinstance(output, str) else json.dumps(output)
                results.append({"role": "tool", "tool_call_id": call_id, "content": content})
            elif state == "output-error":
                error = str(fields.get("errorText", "The tool failed."))
                results.append({"role": "tool", "tool_call_id": call_id, "content": error})
    flush()
    return out

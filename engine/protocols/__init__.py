"""Sans-IO wire projections: native events in, protocol bytes out. No I/O, no Trio.

One projection object serves one connection (see :class:`Projection`). The four protocols:

- :class:`NativeProjection`: the native runs API (``id:`` = seq, ``event:`` = type);
- :class:`ChatCompletionsProjection`: OpenAI Chat Completions (``chat.completion.chunk``);
- :class:`ResponsesProjection`: the OpenAI Responses API (numbered, resumable events);
- :class:`UIMessageStreamProjection`: the Vercel AI SDK UI message stream (v1).
"""

from ._base import Projection as Projection
from .ai_sdk_ui import UI_MESSAGE_STREAM_HEADERS as UI_MESSAGE_STREAM_HEADERS
from .ai_sdk_ui import UIMessageStreamProjection as UIMessageStreamProjection
from .native import NativeProjection as NativeProjection
from .openai_chat import ChatCompletionsProjection as ChatCompletionsProjection
from .openai_chat import chat_completion_object as chat_completion_object
from .openai_chat import openai_error as openai_error
from .openai_responses import RESPONSES_ERROR_CODES as RESPONSES_ERROR_CODES
from .openai_responses import ResponsesProjection as ResponsesProjection
from .openai_responses import response_error_code as response_error_code
from .openai_responses import response_object as response_object
from .openai_responses import responses_event_count as responses_event_count

__all__ = [
    "RESPONSES_ERROR_CODES",
    "UI_MESSAGE_STREAM_HEADERS",
    "ChatCompletionsProjection",
    "NativeProjection",
    "Projection",
    "ResponsesProjection",
    "UIMessageStreamProjection",
    "chat_completion_object",
    "openai_error",
    "response_error_code",
    "response_object",
    "responses_event_count",
]

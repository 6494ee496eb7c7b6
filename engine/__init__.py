"""scopestream's engine: runs as Trio scope trees that end in exactly one terminal event.

Embeddable in any Trio program; knows Trio, not any web framework.
"""

from ._backend import Backend as Backend
from ._backend import MemoryBackend as MemoryBackend
from ._config import MIN_CONNECTION_BUFFER as MIN_CONNECTION_BUFFER
from ._config import YIELD_EVERY as YIELD_EVERY
from ._config import DisconnectPolicy as DisconnectPolicy
from ._config import EngineConfig as EngineConfig
from ._connections import Connection as Connection
from ._context import RunContext as RunContext
from ._engine import CancelResult as CancelResult
from ._engine import Engine as Engine
from ._engine import open_engine as open_engine
from ._errors import EngineClosed as EngineClosed
from ._errors import EngineError as EngineError
from ._errors import InteractionError as InteractionError
from ._errors import InteractionNotFound as InteractionNotFound
from ._errors import InteractionNotPending as InteractionNotPending
from ._errors import RunConflict as RunConflict
from ._errors import RunNotFound as RunNotFound
from ._errors import ScopestreamError as ScopestreamError
from ._errors import http_status_for as http_status_for
from ._events import Cancelled as Cancelled
from ._events import CancelReason as CancelReason
from ._events import Completed as Completed
from ._events import ErrorCode as ErrorCode
from ._events import ErrorInfo as ErrorInfo
from ._events import Event as Event
from ._events import EventType as EventType
from ._events import Failed as Failed
from ._events import FinishReason as FinishReason
from ._events import Outcome as Outcome
from ._events import RunStatus as RunStatus
from ._events import Usage as Usage
from ._handle import InteractionView as InteractionView
from ._handle import RunHandle as RunHandle
from ._handle import RunLog as RunLog
from ._observer import CloseReason as CloseReason
from ._observer import EngineObserver as EngineObserver
from ._output import OutputItem as OutputItem
from ._output import RunOutput as RunOutput
from ._runs import Interaction as Interaction
from ._runs import Producer as Producer
from ._runs import Run as Run

__all__ = [
    "MIN_CONNECTION_BUFFER",
    "YIELD_EVERY",
    "Backend",
    "CancelReason",
    "CancelResult",
    "Cancelled",
    "CloseReason",
    "Completed",
    "Connection",
    "DisconnectPolicy",
    "Engine",
    "EngineClosed",
    "EngineConfig",
    "EngineError",
    "EngineObserver",
    "ErrorCode",
    "ErrorInfo",
    "Event",
    "EventType",
    "Failed",
    "FinishReason",
    "Interaction",
    "InteractionError",
    "InteractionNotFound",
    "InteractionNotPending",
    "InteractionView",
    "MemoryBackend",
    "Outcome",
    "OutputItem",
    "Producer",
    "Run",
    "RunConflict",
    "RunContext",
    "RunHandle",
    "RunLog",
    "RunNotFound",
    "RunOutput",
    "RunStatus",
    "ScopestreamError",
    "Usage",
    "http_status_for",
    "open_engine",
]

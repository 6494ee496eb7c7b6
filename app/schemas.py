"""Request and response models of the native runs API (they are the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine import DisconnectPolicy

__all__ = [
    "CLIENT_ID_PATTERN",
    "CancelAnswer",
    "CreateRun",
    "ErrorBody",
    "ErrorDetail",
    "ExecutionAccepted",
    "FieldError",
    "InteractionAnswer",
    "InteractionRef",
    "RunLinks",
    "RunList",
    "RunOutcome",
    "RunOutputView",
    "RunSummary",
    "RunView",
    "ToolCallView",
]


#: The characters of a client-chosen id (``client_run_id``, an AI SDK chat id): it appears
#: in URL paths, so no ``/``, ``?``, ``%`` or space.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,200}$"


class GracePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    grace: float = Field(..., ge=0, le=3600, description="Seconds to wait for a resume.")


class CreateRun(BaseModel):
    # strict: "stream": "true" or 1 is a 400, not a boolean.
    model_config = ConfigDict(extra="forbid", strict=True)

    producer: str = Field(..., min_length=1, description="A registered producer's name.")
    input: dict[str, Any] = Field(default_factory=dict)
    stream: bool = False
    background: bool = False
    on_disconnect: Literal["cancel", "continue"] | GracePolicy | None = Field(
        None,
        description="cancel (default when streaming or waiting), continue (default for "
        'background runs), or {"grace": seconds}.',
    )
    client_run_id: str | None = Field(
        None,
        pattern=CLIENT_ID_PATTERN,
        description="Your own id for the run: 1 to 200 of A-Z a-z 0-9 . _ : -",
    )

    @field_validator("background")
    @classmethod
    def _not_both(cls, value: bool, info: Any) -> bool:
        if value and info.data.get("stream"):
            raise ValueError("a run is either streamed or started in the background, not both")
        return value

    def policy(self) -> DisconnectPolicy:
        if isinstance(self.on_disconnect, GracePolicy):
            return DisconnectPolicy("grace", self.on_disconnect.grace)
        if self.on_disconnect is not None:
            return DisconnectPolicy(self.on_disconnect)
        return DisconnectPolicy("continue" if self.background else "cancel")


class FieldError(BaseModel):
    field: str = Field(..., description='The field or parameter, dotted: "input.events".')
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    correlation_id: str | None = Field(
        None, description="On a 500 or a failed run: finds the traceback in the server log."
    )
    fields: list[FieldError] | None = Field(
        None,
        description="On a validation error: each invalid field or parameter and why.",
        exclude_if=lambda value: value is None,  # a run's outcome never carries it
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class InteractionRef(BaseModel):
    id: str
    prompt: str
    response_url: str


class RunOutcome(BaseModel):
    status: Literal["completed", "failed", "cancelled"]
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    error: ErrorDetail | None = None
    reason: str | None = None


class ToolCallView(BaseModel):
    id: str
    name: str
    arguments: str = Field(..., description="The arguments as JSON text.")


class RunOutputView(BaseModel):
    """The run's answer so far: all of it, kept apart from the event log (which may be
    trimmed). A run whose answer outgrows the output budget fails with output_too_large."""

    text: str = Field(..., description="Every text delta, concatenated.")
    reasoning: str = Field(..., description="Every reasoning delta, concatenated.")
    tool_calls: list[ToolCallView] = Field(default_factory=list)


class RunLinks(BaseModel):
    self: str
    events: str
    cancel: str


class RunSummary(BaseModel):
    """A run without its output: what a list of runs shows (an answer may be megabytes)."""

    id: str
    object: Literal["run"] = "run"
    producer: str
    status: Literal["queued", "running", "awaiting_input", "completed", "failed", "cancelled"]
    client_run_id: str | None = None
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    last_seq: int
    outcome: RunOutcome | None = None
    pending_interaction: InteractionRef | None = None
    links: RunLinks


class RunView(RunSummary):
    output: RunOutputView


class RunList(BaseModel):
    """The caller's most recent runs, newest first, without their output (finished runs stay
    listed for the retention period)."""

    object: Literal["list"] = "list"
    data: list[RunSummary]


class ExecutionAccepted(BaseModel):
    """The run paused for human input: answer at ``response_url``, follow ``status_url``."""

    execution_id: str
    status: Literal["awaiting_input"] = "awaiting_input"
    interaction: dict[str, str]
    status_url: str
    response_url: str


class CancelAnswer(BaseModel):
    id: str
    result: Literal["cancelled", "already_decided", "remembered"]
    status: str | None = None
    run: RunView | None = None


class InteractionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response: Any = Field(..., description="The human's answer; any JSON value.")

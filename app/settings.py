"""Service settings, read from ``SCOPESTREAM_*`` environment variables.

Every setting is documented in ``docs/deployment.md``; keep the two in step.
"""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from engine import MIN_CONNECTION_BUFFER, EngineConfig

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "SCOPESTREAM_"


class SettingsError(ValueError):
    """A setting the service cannot start with. The message names the environment variable
    (``SCOPESTREAM_...``) and what is wrong with its value, never the value itself (it may
    be a key)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    keepalive_interval: float = Field(15.0, gt=0, description="Seconds without a frame.")
    run_timeout: float | None = Field(None, gt=0, description="Run deadline, seconds.")
    stall_timeout: float | None = Field(None, gt=0, description="No producer event for N s.")
    interactive: bool = Field(True, description="Allow producers to ask a human.")
    interaction_timeout: float = Field(600.0, gt=0)
    log_retention: float = Field(600.0, ge=0, description="Seconds a finished run stays.")
    max_log_events: int = Field(100_000, ge=MIN_CONNECTION_BUFFER + 1)
    connection_buffer: int = Field(4096, ge=MIN_CONNECTION_BUFFER)
    shutdown_grace: float = Field(5.0, ge=0)
    terminal_delivery_timeout: float = Field(2.0, gt=0)
    pending_cancel_ttl: float = Field(60.0, ge=0)
    max_pending_cancels: int = Field(10_000, ge=1)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    producers: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_event_bytes: int = Field(1_048_576, ge=1024, description="One event, estimated.")
    max_log_bytes: int = Field(33_554_432, ge=1024, description="A run's retained log.")
    max_output_bytes: int = Field(16_777_216, ge=1024, description="A run's whole answer.")
    max_chunk_bytes: int = Field(1_048_576, ge=1024, description="One write to a client.")
    demo_producers: bool = Field(True, description="Serve the built-in echo and synthetic.")
    log_level: str = "INFO"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if not isinstance(logging.getLevelName(value.upper()), int):
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @field_validator("producers", mode="before")
    @classmethod
    def _split_producers(cls, value: object) -> object:
        """``name=package.module:attribute,other=...``"""
        if not isinstance(value, str):
            return value
        out: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, path = item.partition("=")
            if not sep or ":" not in path or not name.strip():
                raise ValueError(f"expected name=module:attribute, got {item!r}")
            out[name.strip()] = path.strip()
        return out

    def engine_config(self) -> EngineConfig:
        """The engine's configuration; :class:`SettingsError` if the engine refuses it."""
        try:
            return self._engine_config()
        except ValueError as exc:
            # EngineConfig's messages begin with its field's name, which is the setting's
            # name but for ``retention``.
            name = str(exc).split(" ", 1)[0]
            name = {"retention": "log_retention"}.get(name, name)
            variable = ENV_PREFIX + name.upper() if name in type(self).model_fields else "settings"
            raise SettingsError(f"Invalid setting {variable}: {exc}.") from None

    def _engine_config(self) -> EngineConfig:
        return EngineConfig(
            keepalive_interval=self.keepalive_interval,
            run_timeout=self.run_timeout,
            stall_timeout=self.stall_timeout,
            interactive=self.interactive,
            interaction_timeout=self.interaction_timeout,
            retention=self.log_retention,
            max_log_events=self.max_log_events,
            connection_buffer=min(self.connection_buffer, self.max_log_events - 1),
            terminal_delivery_timeout=self.terminal_delivery_timeout,
            shutdown_grace=self.shutdown_grace,
            pending_cancel_ttl=self.pending_cancel_ttl,
            max_pending_cancels=self.max_pending_cancels,
            max_event_bytes=self.max_event_bytes,
            max_log_bytes=self.max_log_bytes,
            max_output_bytes=self.max_output_bytes,
            max_chunk_bytes=self.max_chunk_bytes,
        )


def load_settings() -> Settings:
    """The settings from the environment, or :class:`SettingsError` naming every variable
    whose value is unusable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            variable = ENV_PREFIX + name.upper() if name else "settings"
            problems.append(f"{variable}: {error['msg']}")
        raise SettingsError("Invalid setting " + "; ".join(problems) + ".") from None
    except SourceError as exc:
        raise SettingsError(f"Invalid setting: {exc}.") from None
    settings.engine_config()  # raises SettingsError if the engine would refuse it
    return settings

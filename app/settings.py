"""Service settings, read from ``SCOPESTREAM_*`` environment variables.

Every setting is documented in ``docs/deployment.md``; keep the two in step.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from engine import MIN_CONNECTION_BUFFER, EngineConfig
from engine.backends._redis_model import RedisStoreConfig

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
    public_ops: bool = Field(False, description="With API keys: metrics and docs need none.")
    producers: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_event_bytes: int = Field(1_048_576, ge=1024, description="One event, estimated.")
    max_log_bytes: int = Field(33_554_432, ge=1024, description="A run's retained log.")
    max_output_bytes: int = Field(16_777_216, ge=1024, description="A run's whole answer.")
    max_chunk_bytes: int = Field(1_048_576, ge=1024, description="One write to a client.")
    direct_writes: bool = Field(True, description="HTTP/1.1 stream bodies to the socket.")
    demo_producers: bool = Field(True, description="Serve the built-in echo and synthetic.")
    log_level: str = "INFO"
    models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Model routing: pattern=producer, in order."
    )
    upstream_base_url: str | None = Field(None, description="An OpenAI-compatible /v1 URL.")
    upstream_api_key: str | None = Field(None, repr=False)
    upstream_connect_timeout: float = Field(10.0, gt=0)
    upstream_first_token_timeout: float = Field(120.0, gt=0)
    upstream_token_timeout: float = Field(60.0, gt=0, description="Between two chunks.")
    upstream_model_map: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    upstream_headers: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    backend: Literal["memory", "redis"] = Field("memory", description="Where runs live.")
    redis_url: str = Field("", description="redis://host:port/db, for the redis backend.")
    heartbeat_interval: float = Field(1.0, gt=0, description="Seconds between heartbeats.")
    heartbeat_ttl: float = Field(5.0, gt=0, description="A silent worker is lost after.")
    store_unavailable_timeout: float = Field(
        10.0, gt=0, description="A run fails once its store is unreachable this long."
    )

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
        out = _pairs(value, "name=module:attribute")
        for name, path in out.items():
            if ":" not in path:
                raise ValueError(f"expected name=module:attribute, got {name}={path}")
        return out

    @field_validator("models", "upstream_model_map", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        """``name=target,other=...`` (order kept: the routing table's first match wins)."""
        return _pairs(value, "name=target") if isinstance(value, str) else value

    @field_validator("upstream_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("expected an http:// or https:// URL, e.g. http://localhost:11434/v1")
        return value.rstrip("/")

    @field_validator("upstream_headers", mode="before")
    @classmethod
    def _headers_json(cls, value: object) -> object:
        """A JSON object: ``{"OpenAI-Organization": "org-..."}``."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError('expected a JSON object, e.g. {"X-Team": "blue"}') from None

    @field_validator("upstream_headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name) or "\n" in text or "\r" in text:
                # The name only: a header's value may be a secret.
                raise ValueError(f"header {name!r} is not a valid HTTP header")
        return value

    def redis_config(self) -> RedisStoreConfig:
        """The Redis store's configuration; :class:`SettingsError` naming the setting if
        the backend is ``redis`` and it is unusable."""
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"Invalid setting {ENV_PREFIX}REDIS_URL: the redis backend needs a "
                "redis:// or rediss:// URL."
            )
        if self.heartbeat_ttl <= self.heartbeat_interval:
            raise SettingsError(
                f"Invalid setting {ENV_PREFIX}HEARTBEAT_TTL: must be greater than "
                f"{ENV_PREFIX}HEARTBEAT_INTERVAL."
            )
        return RedisStoreConfig(
            retention=max(self.log_retention, 1.0),
            max_log_events=self.max_log_events,
            live_ttl=max(3600.0, 3 * self.heartbeat_ttl),
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_ttl=self.heartbeat_ttl,
            pending_cancel_ttl=max(self.pending_cancel_ttl, 0.001),
        )

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
            direct_writes=self.direct_writes,
        )


#: An HTTP header name (RFC 9110 token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _pairs(value: str, form: str) -> dict[str, str]:
    """``a=b,c=d`` as a dict; a ValueError showing ``form`` for an item that is not one."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ValueError(f"expected {form}, got {item!r}")
        out[name.strip()] = target.strip()
    return out


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
    if settings.backend == "redis":
        settings.redis_config()
    return settings

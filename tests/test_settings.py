"""Settings from the environment: every value reaches the engine's configuration, and a bad
one is refused at startup with a message naming its variable."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

import app
from app import Settings, create_app
from app.settings import SettingsError, load_settings
from engine import MIN_CONNECTION_BUFFER


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SCOPESTREAM_"):
            monkeypatch.delenv(name)


def test_environment_reaches_the_engine_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "KEEPALIVE_INTERVAL": "2.5",
        "RUN_TIMEOUT": "30",
        "STALL_TIMEOUT": "7",
        "INTERACTIVE": "false",
        "INTERACTION_TIMEOUT": "45",
        "LOG_RETENTION": "90",
        "MAX_LOG_EVENTS": "5000",
        "CONNECTION_BUFFER": "300",
        "SHUTDOWN_GRACE": "1.5",
        "TERMINAL_DELIVERY_TIMEOUT": "0.75",
        "PENDING_CANCEL_TTL": "12",
        "MAX_EVENT_BYTES": "2048",
        "MAX_LOG_BYTES": "65536",
        "MAX_OUTPUT_BYTES": "32768",
        "MAX_CHUNK_BYTES": "4096",
    }.items():
        monkeypatch.setenv("SCOPESTREAM_" + name, value)
    config = load_settings().engine_config()
    assert config.keepalive_interval == 2.5
    assert config.run_timeout == 30
    assert config.stall_timeout == 7
    assert config.interactive is False
    assert config.interaction_timeout == 45
    assert config.retention == 90
    assert config.max_log_events == 5000
    assert config.connection_buffer == 300
    assert (
        config.max_event_bytes,
        config.max_log_bytes,
        config.max_output_bytes,
        config.max_chunk_bytes,
    ) == (2048, 65536, 32768, 4096)
    assert config.shutdown_grace == 1.5
    assert config.terminal_delivery_timeout == 0.75
    assert config.pending_cancel_ttl == 12


def test_defaults_leave_the_limits_off() -> None:
    config = load_settings().engine_config()
    assert (config.run_timeout, config.stall_timeout) == (None, None)
    assert config.connection_buffer == 4096 and config.shutdown_grace == 5


def test_the_service_holds_the_configured_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOPESTREAM_SHUTDOWN_GRACE", "0.25")
    monkeypatch.setenv("SCOPESTREAM_LOG_RETENTION", "3")
    quart_app = create_app()
    service = quart_app.extensions["scopestream"]
    assert service.settings.engine_config().shutdown_grace == 0.25
    assert service.settings.engine_config().retention == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCOPESTREAM_KEEPALIVE_INTERVAL", "abc"),
        ("SCOPESTREAM_KEEPALIVE_INTERVAL", "0"),
        ("SCOPESTREAM_STALL_TIMEOUT", "soon"),
        ("SCOPESTREAM_INTERACTIVE", "maybe"),
        ("SCOPESTREAM_CONNECTION_BUFFER", str(MIN_CONNECTION_BUFFER - 1)),
        ("SCOPESTREAM_MAX_LOG_EVENTS", str(MIN_CONNECTION_BUFFER)),
        ("SCOPESTREAM_PRODUCERS", "no-equals-sign"),
        ("SCOPESTREAM_LOG_LEVEL", "LOUD"),
        ("SCOPESTREAM_MAX_OUTPUT_BYTES", "100"),
        ("SCOPESTREAM_MAX_EVENT_BYTES", str(64 * 1024 * 1024)),  # above the log's budget
        ("SCOPESTREAM_DEMO_PRODUCERS", "perhaps"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        create_app()


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SCOPESTREAM_BACKEND": "postgres"}, "SCOPESTREAM_BACKEND"),
        ({"SCOPESTREAM_BACKEND": "redis"}, "SCOPESTREAM_REDIS_URL"),
        (
            {"SCOPESTREAM_BACKEND": "redis", "SCOPESTREAM_REDIS_URL": "http://cache:6379"},
            "SCOPESTREAM_REDIS_URL",
        ),
        (
            {
                "SCOPESTREAM_BACKEND": "redis",
                "SCOPESTREAM_REDIS_URL": "redis://cache:6379/0",
                "SCOPESTREAM_HEARTBEAT_INTERVAL": "2",
                "SCOPESTREAM_HEARTBEAT_TTL": "2",
            },
            "SCOPESTREAM_HEARTBEAT_TTL",
        ),
        ({"SCOPESTREAM_STORE_UNAVAILABLE_TIMEOUT": "0"}, "SCOPESTREAM_STORE_UNAVAILABLE_TIMEOUT"),
    ],
)
def test_a_bad_backend_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str
) -> None:
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_redis_settings_reach_the_store_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOPESTREAM_BACKEND", "redis")
    monkeypatch.setenv("SCOPESTREAM_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("SCOPESTREAM_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("SCOPESTREAM_HEARTBEAT_TTL", "3")
    monkeypatch.setenv("SCOPESTREAM_LOG_RETENTION", "42")
    config = load_settings().redis_config()
    assert (config.heartbeat_interval, config.heartbeat_ttl) == (0.5, 3)
    assert config.retention == 42


def test_a_producer_that_does_not_import_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCOPESTREAM_PRODUCERS", "x=nope.mod:f")
    with pytest.raises(SettingsError, match=r"SCOPESTREAM_PRODUCERS.*nope\.mod:f"):
        create_app()


def test_what_the_engine_refuses_names_the_variable_too() -> None:
    # Settings made in code without validation: the engine's own check still names it.
    settings = Settings.model_construct(connection_buffer=1)
    with pytest.raises(SettingsError, match="SCOPESTREAM_CONNECTION_BUFFER"):
        create_app(settings)


async def lifespan_startup(asgi: Any) -> list[MutableMapping[str, Any]]:
    """Drive one ASGI lifespan startup; what the app sent back."""
    sent: list[MutableMapping[str, Any]] = []
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await asgi({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent


async def test_lifespan_startup_fails_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCOPESTREAM_KEEPALIVE_INTERVAL", "abc")
    service = app._LazyService()  # importing and creating it read no settings
    sent = await lifespan_startup(service)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "SCOPESTREAM_KEEPALIVE_INTERVAL" in sent[0]["message"]


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SCOPESTREAM_UPSTREAM_BASE_URL": "localhost:11434"}, "SCOPESTREAM_UPSTREAM_BASE_URL"),
        ({"SCOPESTREAM_UPSTREAM_BASE_URL": "ftp://x/v1"}, "SCOPESTREAM_UPSTREAM_BASE_URL"),
        (
            {
                "SCOPESTREAM_UPSTREAM_BASE_URL": "http://x/v1",
                "SCOPESTREAM_UPSTREAM_TOKEN_TIMEOUT": "0",
            },
            "SCOPESTREAM_UPSTREAM_TOKEN_TIMEOUT",
        ),
        (
            {
                "SCOPESTREAM_UPSTREAM_BASE_URL": "http://x/v1",
                "SCOPESTREAM_UPSTREAM_HEADERS": "X: y",
            },
            "SCOPESTREAM_UPSTREAM_HEADERS",
        ),
        (
            {
                "SCOPESTREAM_UPSTREAM_BASE_URL": "http://x/v1",
                "SCOPESTREAM_UPSTREAM_HEADERS": '{"bad name": "y"}',
            },
            "SCOPESTREAM_UPSTREAM_HEADERS",
        ),
        (
            {"SCOPESTREAM_UPSTREAM_BASE_URL": "http://x/v1", "SCOPESTREAM_UPSTREAM_MODEL_MAP": "a"},
            "SCOPESTREAM_UPSTREAM_MODEL_MAP",
        ),
        ({"SCOPESTREAM_UPSTREAM_MODEL_MAP": "a=b"}, "SCOPESTREAM_UPSTREAM_MODEL_MAP"),
        ({"SCOPESTREAM_UPSTREAM_API_KEY": "sk-x"}, "SCOPESTREAM_UPSTREAM_API_KEY"),
        ({"SCOPESTREAM_MODELS": "gpt-*=upstream"}, "SCOPESTREAM_MODELS"),
        ({"SCOPESTREAM_MODELS": "gpt-4o"}, "SCOPESTREAM_MODELS"),
    ],
)
def test_bad_upstream_and_routing_settings_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=name) as caught:
        create_app()
    assert "sk-x" not in str(caught.value)  # a key's value is never in the message


def test_upstream_settings_reach_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "UPSTREAM_BASE_URL": "http://127.0.0.1:11434/v1/",
        "UPSTREAM_API_KEY": "sk-x",
        "UPSTREAM_CONNECT_TIMEOUT": "3",
        "UPSTREAM_FIRST_TOKEN_TIMEOUT": "4",
        "UPSTREAM_TOKEN_TIMEOUT": "5",
        "UPSTREAM_MODEL_MAP": "fast=llama3.2:3b,big=qwen3:32b",
        "UPSTREAM_HEADERS": '{"X-Team": "blue"}',
        "MODELS": "fast=upstream,big=upstream,echo=echo",
    }.items():
        monkeypatch.setenv("SCOPESTREAM_" + key, value)
    service = create_app().extensions["scopestream"]
    config = service.upstream.config
    assert config.base_url == "http://127.0.0.1:11434/v1"
    assert (config.connect_timeout, config.first_token_timeout, config.token_timeout) == (3, 4, 5)
    assert dict(config.model_map) == {"fast": "llama3.2:3b", "big": "qwen3:32b"}
    assert dict(config.headers) == {"X-Team": "blue"} and config.api_key == "sk-x"
    assert "sk-x" not in repr(config) and "sk-x" not in repr(service.settings)
    assert service.router.models() == ["fast", "big", "echo"]
    assert (
        service.upstream.request_body({"model": "big", "messages": [], "stream": False})["model"]
        == "qwen3:32b"
    )

"""The OpenAPI document: every route, with its real request and response models.

Built in-process (``create_app`` and the Quart test client): the document depends only on
the settings, not on a running engine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate

import app._factory as factory
from app import Settings, create_app

# Served by quart-schema or hidden on purpose (Prometheus' text format, the docs page and
# its files, the playground's page and files): not API routes.
NOT_DOCUMENTED = {
    "/openapi.json",
    "/docs",
    "/docs/assets/{name}",
    "/static/{filename}",
    "/metrics",
    "/",
    "/playground/",
    "/playground/{name}",
}

# The routes whose non-streaming call settles the run, and so answers 202 ExecutionAccepted
# when the run asks a human (interactive mode on).
PAUSING = {
    ("post", "/v1/runs"),
    ("post", "/v1/chat/completions"),
    ("post", "/v1/responses"),
}
# 202 for other reasons, whatever the mode: a background run; a cancel remembered for a
# client_run_id that does not exist yet.
ACCEPTED_ANYWAY = {("post", "/v1/runs"), ("post", "/v1/runs/{run_id}/cancel")}

STREAMING = {
    ("post", "/v1/runs"),
    ("get", "/v1/runs/{run_id}/events"),
    ("post", "/v1/chat/completions"),
    ("post", "/v1/responses"),
    ("get", "/v1/responses/{response_id}"),
    ("post", "/api/chat"),
    ("get", "/api/chat/{chat_id}/stream"),
}

Spec = dict[str, Any]


@pytest.fixture(autouse=True)
def _no_log_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    # create_app adds a stderr handler to the scopestream logger; pytest's captured stderr
    # would be closed under it by later tests.
    monkeypatch.setattr(factory, "configure_logging", lambda level: None)


async def build(**settings: Any) -> tuple[Spec, set[tuple[str, str]]]:
    """The document for these settings, and the (method, path) of every registered route."""
    app = create_app(Settings(**settings))
    keys = settings.get("api_keys") or ["none"]
    response = await app.test_client().get(
        "/openapi.json", headers={"Authorization": f"Bearer {keys[0]}"}
    )
    assert response.status_code == 200
    spec: Spec = await response.get_json()
    routes = set()
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<path:", "<").replace("<", "{").replace(">", "}")
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    return spec, routes


def operations(spec: Spec) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def schema_of(response: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    schema: dict[str, Any] = response["content"][media]["schema"]
    return schema


def names(schema: dict[str, Any]) -> set[str]:
    """The models a response schema is made of: its title and the components it refers to."""
    text = json.dumps(schema)
    found = {schema.get("title", "")}
    found |= {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}
    return found - {""}


def is_error_body(response: dict[str, Any]) -> bool:
    schema = schema_of(response)
    return schema["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}


@pytest.mark.parametrize(
    "settings",
    [{}, {"interactive": False}, {"api_keys": ["secret"]}],
    ids=["interactive", "not-interactive", "api-keys"],
)
async def test_document_is_valid_openapi_3(settings: dict[str, Any]) -> None:
    spec, _ = await build(**settings)
    assert spec["openapi"].startswith("3.")
    validate(spec)


async def test_every_route_is_documented_with_a_success_response() -> None:
    spec, routes = await build()
    ops = operations(spec)
    expected = {(method, path) for method, path in routes if path not in NOT_DOCUMENTED}
    assert set(ops) == expected
    for key, operation in ops.items():
        successes = {
            status: response
            for status, response in operation["responses"].items()
            if 200 <= int(status) < 300
        }
        assert successes, key
        for status, response in successes.items():
            if status == "204":
                assert "content" not in response, key
                continue
            assert response["content"], (key, status)
            for media, body in response["content"].items():
                assert media in ("application/json", "text/event-stream"), (key, media)
                assert body["schema"], (key, status, media)
        assert all(r["description"] for r in operation["responses"].values()), key


async def test_streams_are_documented_as_event_streams() -> None:
    spec, _ = await build()
    ops = operations(spec)
    streaming = {
        key for key, op in ops.items() if "text/event-stream" in op["responses"]["200"]["content"]
    }
    assert streaming == STREAMING
    for key in STREAMING:
        stream = ops[key]["responses"]["200"]["content"]["text/event-stream"]
        # Each event as an SSE parser reads it (OpenAPI 3.1 has no schema for the stream).
        assert stream["schema"]["type"] == "object", key
        assert set(stream["schema"]["properties"]) == {"event", "data", "id", "retry"}, key
        assert stream["schema"]["required"] == ["data"], key
        assert stream["schema"]["description"] and stream["example"], key
    # JSON unless the request asks for a stream: both bodies, with their real models.
    json_too = {
        ("post", "/v1/runs"): "RunView",
        ("post", "/v1/chat/completions"): "ChatCompletion",
        ("post", "/v1/responses"): "ResponseObject",
        ("get", "/v1/responses/{response_id}"): "ResponseObject",
    }
    for key, model in json_too.items():
        assert schema_of(ops[key]["responses"]["200"])["title"] == model, key
    only_stream = STREAMING - set(json_too)
    for key in only_stream:
        assert set(ops[key]["responses"]["200"]["content"]) == {"text/event-stream"}, key
    assert set(ops[("get", "/api/chat/{chat_id}/stream")]["responses"]) >= {"200", "204"}
    success = {
        ("get", "/healthz"): "Health",
        ("get", "/v1/models"): "ModelList",
        ("get", "/v1/runs"): "RunList",
        ("get", "/v1/runs/{run_id}"): "RunView",
        ("post", "/v1/runs/{run_id}/cancel"): "CancelAnswer",
        ("post", "/v1/responses/{response_id}/cancel"): "ResponseObject",
        ("post", "/v1/runs/{run_id}/interactions/{interaction_id}"): "RunView",
    }
    for key, model in success.items():
        assert schema_of(ops[key]["responses"]["200"])["title"] == model, key


async def test_request_bodies_and_their_errors() -> None:
    spec, _ = await build()
    ops = operations(spec)
    bodies = {
        ("post", "/v1/runs"): "CreateRun",
        ("post", "/v1/runs/{run_id}/interactions/{interaction_id}"): "InteractionAnswer",
        ("post", "/v1/chat/completions"): "ChatCompletionRequest",
        ("post", "/v1/responses"): "ResponsesRequest",
        ("post", "/api/chat"): "UIChatRequest",
    }
    with_body = {key for key, op in ops.items() if "requestBody" in op}
    assert with_body == set(bodies)
    for key, model in bodies.items():
        assert ops[key]["requestBody"]["required"] is True, key
        assert schema_of(ops[key]["requestBody"])["title"] == model, key
        for status in ("400", "413", "415"):
            assert is_error_body(ops[key]["responses"][status]), (key, status)


async def test_ids_cursors_and_flags_document_their_errors() -> None:
    spec, _ = await build()
    ops = operations(spec)
    for (method, path), operation in ops.items():
        if "{run_id}" in path or "{response_id}" in path:
            assert is_error_body(operation["responses"]["404"]), (method, path)
    parameters = {
        ("get", "/v1/runs/{run_id}/events"): {("query", "after"), ("header", "Last-Event-ID")},
        ("get", "/v1/responses/{response_id}"): {("query", "starting_after"), ("query", "stream")},
        ("post", "/v1/runs/{run_id}/cancel"): {("query", "wait")},
        ("get", "/v1/runs"): {("query", "limit")},
    }
    for key, expected in parameters.items():
        documented = {(p["in"], p["name"]) for p in ops[key]["parameters"] if p["in"] != "path"}
        assert documented == expected, key
        assert is_error_body(ops[key]["responses"]["400"]), key


async def test_error_detail_lists_invalid_fields() -> None:
    spec, _ = await build()
    schemas = spec["components"]["schemas"]
    fields = schemas["ErrorDetail"]["properties"]["fields"]
    array = next(branch for branch in fields["anyOf"] if branch.get("type") == "array")
    assert array["items"] == {"$ref": "#/components/schemas/FieldError"}
    assert set(schemas["FieldError"]["properties"]) == {"field", "message"}
    assert set(schemas["FieldError"]["required"]) == {"field", "message"}


@pytest.mark.parametrize("interactive", [True, False])
async def test_202_only_where_it_can_happen(interactive: bool) -> None:
    spec, _ = await build(interactive=interactive)
    ops = operations(spec)
    accepted = {key for key, op in ops.items() if "202" in op["responses"]}
    execution = {
        key
        for key, op in ops.items()
        if "202" in op["responses"]
        and "ExecutionAccepted" in names(schema_of(op["responses"]["202"]))
    }
    assert execution == (PAUSING if interactive else set())
    assert accepted == ACCEPTED_ANYWAY | execution
    runs_202 = names(schema_of(ops[("post", "/v1/runs")]["responses"]["202"]))
    assert "RunView" in runs_202  # a background run, in either mode
    if not interactive:
        assert "ExecutionAccepted" not in json.dumps(spec)


@pytest.mark.parametrize("keys", [[], ["secret"]])
async def test_401_exactly_when_api_keys_are_configured(keys: list[str]) -> None:
    spec, _ = await build(api_keys=keys)
    ops = operations(spec)
    with_401 = {key for key, op in ops.items() if "401" in op["responses"]}
    if not keys:
        assert with_401 == set()
        assert "securitySchemes" not in spec.get("components", {})
        return
    assert spec["security"] == [{"bearer": []}]
    public = {("get", "/healthz")}
    assert with_401 == set(ops) - public
    for key in with_401:
        assert is_error_body(ops[key]["responses"]["401"]), key
    assert ops[("get", "/healthz")]["security"] == []


async def test_headers_are_documented_where_they_are_sent() -> None:
    spec, _ = await build()
    ops = operations(spec)
    sent = {
        (("post", "/v1/runs"), "200"): {"x-run-id": False, "Location": False},
        (("post", "/v1/runs"), "202"): {"Location": True},
        (("get", "/v1/runs/{run_id}/events"), "200"): {"x-run-id": True},
        (("post", "/v1/chat/completions"), "200"): {"x-run-id": True},
        (("post", "/v1/chat/completions"), "202"): {"Location": True},
        (("post", "/v1/responses"), "200"): {"x-run-id": True},
        (("post", "/v1/responses"), "202"): {"Location": True},
        (("post", "/api/chat"), "200"): {"x-run-id": True},
    }
    for (key, status), headers in sent.items():
        documented = ops[key]["responses"][status]["headers"]
        assert {name: h["required"] for name, h in documented.items()} == headers, (key, status)
        assert all(h["schema"] and h["description"] for h in documented.values())
        # Where OpenAPI reads them, not inside `content` (as quart-schema would put them).
        assert "headers" not in ops[key]["responses"][status].get("content", {})
    starts_runs = {
        ("post", "/v1/runs"),
        ("post", "/v1/chat/completions"),
        ("post", "/v1/responses"),
    }
    for key, operation in ops.items():
        unavailable = operation["responses"]["503"]
        retry_after = unavailable["headers"]["Retry-After"]["required"]
        if key in starts_runs:
            # The service's 503, or a run's own (worker_lost), which may not say when.
            assert "ErrorDetail" in names(schema_of(unavailable)), key
            assert retry_after is False, key
        else:
            assert is_error_body(unavailable), key
            assert retry_after is True, key


async def test_a_503_says_when_to_retry() -> None:
    app = create_app(Settings())
    response = await app.test_client().get("/healthz")  # the engine is not open yet
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.get_json())["error"]["code"] == "unavailable"


async def test_runs_that_fail_before_their_first_event_are_documented() -> None:
    spec, _ = await build()
    ops = operations(spec)
    statuses = {"429", "500", "501", "502", "504"}  # and 404 and 503, documented otherwise
    bodies = {
        ("post", "/v1/runs"): "RunFailed",
        ("post", "/v1/chat/completions"): "OpenAIRunFailed",
        ("post", "/v1/responses"): "OpenAIRunFailed",
    }
    for key, model in bodies.items():
        for status in statuses:
            response = ops[key]["responses"][status]
            assert schema_of(response)["title"] == model, (key, status)
            assert response["headers"]["Retry-After"]["required"] is False, (key, status)
    # The AI SDK route streams a failure instead (its transport shows a non-2xx body raw).
    assert not statuses & set(ops[("post", "/api/chat")]["responses"])


async def test_producer_fields_list_the_registered_producers() -> None:
    spec, _ = await build(producers={"ticker": "tests.fixtures.producers:ticker"})
    ops = operations(spec)
    names = ["echo", "synthetic", "ticker"]
    for key, values in (
        (("post", "/v1/runs"), names),
        (("post", "/api/chat"), [*names, None]),
    ):
        schema = schema_of(ops[key]["requestBody"])
        assert schema["properties"]["producer"]["enum"] == values, key
    # A model may be routed upstream under any name: not a list.
    for key in (("post", "/v1/chat/completions"), ("post", "/v1/responses")):
        assert "enum" not in schema_of(ops[key]["requestBody"])["properties"]["model"], key

"""The playground in a real headless Chromium against a real ``hypercorn -k trio``.

The module's server has API keys on, so every test also goes through the page's key
prompt. Each test asserts what the page shows against what the API says about the same
run: the text exactly once, the terminal and the run's status in agreement.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from ._browser import Playground, open_browser
from ._server import Server, run_server

pytestmark = pytest.mark.e2e

API_KEY = "playground-key"
WORDS = " ".join(f"word{i:02d}" for i in range(1, 41))  # each word is distinct: a duplicate shows


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"SCOPESTREAM_API_KEYS": API_KEY}
    with run_server(tmp_path_factory.mktemp("playground"), env) as server:
        yield server


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    driver = open_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(driver: WebDriver, server: Server) -> Iterator[Playground]:
    driver.set_window_size(1360, 1000)
    page = Playground(driver, server, API_KEY)
    page.open()
    yield page
    assert page.console_errors() == []


def test_stream_a_run_and_read_its_text(page: Playground) -> None:
    page.configure(protocol="native", producer="echo", message=WORDS, interval_ms=50)
    page.send()
    page.until(lambda d: "word03" in page.text())
    assert page.status() == "streaming"
    page.shot("1-streaming")
    assert page.wait_terminal() == "completed"
    run_id = page.run_id()
    assert page.text() == WORDS == page.full_text(run_id)
    assert page.find("#server-status").get_attribute("data-status") == "completed"
    assert page.run_view(run_id)["status"] == "completed"
    assert page.field("finish") == "stop"
    page.shot("1-completed")
    # The key was asked for once: a reload does not ask again, and shows the finished run.
    page.driver.refresh()
    page.until(lambda d: page.status() == "completed")
    assert page.find("#key-dialog").get_attribute("open") is None
    assert page.text() == WORDS
    page.until(lambda d: page.all(f"#runs tr[data-run={run_id}]"))
    row = page.find(f"#runs tr[data-run={run_id}]")
    assert row.find_element("css selector", ".badge").text == "completed"
    row.find_element("css selector", "a.follow").click()  # follow it from the list
    page.until(lambda d: page.status() == "completed" and page.text() == WORDS)
    assert page.find("#run-protocol").text == "Native runs API"
    page.driver.set_window_size(390, 844)  # a phone
    page.shot("1-phone")
    width = page.js("return document.documentElement.scrollWidth")
    assert width <= page.js("return window.innerWidth")  # nothing forces sideways scrolling


def test_stop_shows_cancelled_requested_and_the_status_agrees(page: Playground) -> None:
    page.configure(protocol="native", events=1000, interval_ms=50)
    page.send()
    page.until(lambda d: len(page.text()) >= 3 * 8)
    page.find("#stop").click()
    assert page.wait_terminal() == "cancelled"
    assert page.field("reason") == "requested"
    latency = page.find("#stop-latency").text
    assert latency.endswith(" ms") and float(latency.removesuffix(" ms")) >= 0
    run_id = page.run_id()
    view = page.run_view(run_id)
    assert view["status"] == "cancelled" and view["outcome"]["reason"] == "requested"
    assert page.find("#server-status").get_attribute("data-status") == "cancelled"
    assert page.text() == page.full_text(run_id)  # nothing after the cancel, nothing lost
    assert page.find("#stop").get_attribute("disabled") is not None
    with page.api() as client:
        metrics = client.get("/metrics").text
    measured = next(
        line.split()[-1]
        for line in metrics.splitlines()
        if line.startswith("scopestream_cancel_to_terminal_seconds_count")
    )
    assert float(measured) >= 1
    page.until(lambda d: page.find("#metric-cancels").text == str(int(float(measured))))
    assert (
        page.find("#metric-cancel-p99").text.startswith("≤ ")
        or page.find("#metric-cancel-p99").text == "> 5 s"
    )
    page.shot("2-cancelled")


@pytest.mark.parametrize(
    ("protocol", "options"),
    [
        ("native", {"on_disconnect": "grace"}),
        ("responses", {"background": True}),
        ("ai_sdk", {"on_disconnect": "continue"}),
    ],
)
def test_reload_mid_stream_resumes_without_duplicates(
    page: Playground, protocol: str, options: dict[str, object]
) -> None:
    page.configure(protocol=protocol, producer="echo", message=WORDS, interval_ms=50, **options)
    page.send()
    page.until(lambda d: "word05" in page.text())
    before = page.text()
    assert "word40" not in before
    page.driver.refresh()  # mid-stream
    page.until(lambda d: page.status() in ("resuming", "streaming", "completed"))
    page.shot(f"3-{protocol}-resumed")
    assert page.find(f"input[name=protocol][value={protocol}]").is_selected()  # form restored
    assert page.wait_terminal() == "completed"
    run_id = page.run_id()
    assert page.text() == WORDS == page.full_text(run_id)
    assert page.run_view(run_id)["status"] == "completed"
    page.shot(f"3-{protocol}-completed")


def test_reload_of_a_chat_completions_stream_shows_the_runs_real_end(page: Playground) -> None:
    """Chat Completions has no resume and cancels on disconnect: after a reload the page
    shows the run from the native log, ended as it really ended, with all its text."""
    page.configure(protocol="chat", producer="echo", message=WORDS, interval_ms=50)
    page.send()
    page.until(lambda d: "word05" in page.text())
    page.driver.refresh()
    assert page.wait_terminal() == "cancelled"
    run_id = page.run_id()
    assert page.field("reason") == "client_disconnected"
    assert page.run_view(run_id)["outcome"]["reason"] == "client_disconnected"
    assert page.text() == page.full_text(run_id)
    assert WORDS.startswith(page.text()) and "word05" in page.text()


@pytest.mark.parametrize("protocol", ["native", "ai_sdk"])
def test_a_failing_run_shows_its_code_and_message(page: Playground, protocol: str) -> None:
    page.configure(
        protocol=protocol, events=20, interval_ms=20, fail_at=4, fail_code="upstream_error"
    )
    page.send()
    assert page.wait_terminal() == "failed"
    assert page.field("code") == "upstream_error"
    assert page.field("message") == "Synthetic failure at event 4."
    assert page.field("finish") == ""  # never shown as a completed answer
    assert page.status() == "failed"
    run_id = page.run_id()
    assert page.run_view(run_id)["outcome"]["error"]["code"] == "upstream_error"
    assert page.text() == "x" * 8 * 3 == page.full_text(run_id)
    source = page.find("#terminal .terminal-head").text
    if protocol == "ai_sdk":  # its error chunk has no code: the page says where it got it
        assert "code from GET /v1/runs/{id}" in source
    else:
        assert source.endswith("terminal from the stream")
    page.shot(f"4-failed-{protocol}")


def test_a_run_that_fails_before_any_event_shows_the_http_error(page: Playground) -> None:
    page.configure(protocol="native", events=5, fail_at=1, fail_code="rate_limit_exceeded")
    page.find("#send").click()
    page.until(lambda d: page.all("#terminal-status"))
    assert page.find("#terminal-status").text == "failed"
    assert page.field("code") == "rate_limit_exceeded"
    assert page.field("message") == "Synthetic failure at event 1."
    assert "HTTP 429" in page.find("#terminal .terminal-head").text


def test_a_question_is_shown_and_answering_it_completes_the_run(page: Playground) -> None:
    page.configure(protocol="native", events=4, interval_ms=20, ask_at=2)
    page.send()
    page.until(lambda d: page.all(".part-ask[data-state=pending]"))
    assert page.status() == "awaiting_input"
    assert page.find(".ask-prompt").text == "Synthetic question at event 2: continue?"
    run_id = page.run_id()
    assert page.run_view(run_id)["status"] == "awaiting_input"
    page.shot("5-question")
    answer = page.find(".ask-input")
    answer.send_keys("yes, go on")
    answer.send_keys(Keys.ENTER)  # keyboard only
    assert page.wait_terminal() == "completed"
    assert page.find(".part-ask").get_attribute("data-state") == "answered"
    assert page.run_view(run_id)["status"] == "completed"
    assert page.text() == "x" * 8 * 4
    page.shot("5-answered")


def test_a_question_cancelled_with_its_run_says_so(page: Playground) -> None:
    page.configure(protocol="responses", events=4, ask_at=1, background=True)
    page.send()
    page.until(lambda d: page.all(".part-ask[data-state=pending]"))
    page.find("body").send_keys(Keys.ESCAPE)  # Esc is Stop
    assert page.wait_terminal() == "cancelled"
    assert page.find(".part-ask").get_attribute("data-state") == "cancelled"
    assert "cancelled" in page.find(".ask-state").text
    assert page.run_view(page.run_id())["outcome"]["reason"] == "requested"
    page.shot("5-question-cancelled")


def test_a_question_that_timed_out_says_so(driver: WebDriver, tmp_path: Path) -> None:
    env = {"SCOPESTREAM_INTERACTION_TIMEOUT": "1"}
    with run_server(tmp_path, env) as server:
        page = Playground(driver, server, None)
        page.open()
        page.configure(protocol="native", events=3, ask_at=1)
        page.send()
        assert page.wait_terminal() == "failed"
        assert page.field("code") == "interaction_timeout"
        assert page.find(".part-ask").get_attribute("data-state") == "timed out"
        assert "timed out" in page.find(".ask-state").text
        page.shot("5-question-timed-out")
        page.close()


@pytest.mark.parametrize("protocol", ["native", "chat", "responses", "ai_sdk"])
def test_each_protocol_streams_a_run_to_completion(page: Playground, protocol: str) -> None:
    page.configure(protocol=protocol, events=6, interval_ms=10, reasoning_events=3, tool_calls=1)
    page.send()
    assert page.wait_terminal() == "completed"
    run_id = page.run_id()
    assert page.text() == "x" * 8 * 6 == page.full_text(run_id)
    assert page.run_view(run_id)["status"] == "completed"
    tool = page.find(".part-tool")
    assert (
        "lookup" in tool.text and "item 1" in tool.find_element("css selector", ".tool-args").text
    )
    if protocol != "chat":  # Chat Completions has no slot for reasoning
        reasoning = page.js("return document.querySelector('.reasoning-text').textContent")
        assert reasoning == "Thinking, step 1. Thinking, step 2. Thinking, step 3. "
    page.shot(f"6-{protocol}")

"""Driving the playground in Debian's headless Chromium (selenium, no browser download).

Every wait is a ``WebDriverWait`` with an explicit timeout on a condition of the page; no
fixed sleeps. Screenshots go to ``tests/artifacts/playground/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from ._server import ROOT, Server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts" / "playground"
WAIT = 20  # seconds: the longest any single page condition may take
_API_CALL = re.compile(r"https?://[^/ ]+/(v1/|api/|metrics)")


def open_browser() -> WebDriver:
    """Headless Chromium from the system packages. Both paths are given explicitly, so
    selenium-manager never looks for (or downloads) a browser or driver of its own."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(
                f"{path} is missing: apt-get install chromium chromium-driver (make test does)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1360,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


class Playground:
    """The page, as a user sees it."""

    def __init__(self, driver: WebDriver, server: Server, api_key: str | None) -> None:
        self.driver = driver
        self.server = server
        self.api_key = api_key
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # -- waiting and reading -----------------------------------------------------------

    def until(self, condition: Callable[[WebDriver], Any], timeout: float = WAIT) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.02).until(condition)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self) -> str:
        """The answer as the page shows it: every text part, in order."""
        return str(
            self.js(
                "return [...document.querySelectorAll('.part-text')]"
                ".map(e => e.textContent).join('')"
            )
        )

    def status(self) -> str:
        return str(self.find("#run-status").get_attribute("data-status"))

    def run_id(self) -> str:
        return str(self.find("#run-id").text)

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.js("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[str]:
        """Script errors and failed loads of the page's own files. An API call answered
        with an HTTP error (a 401 before the key, a run failing with 429) is the page's to
        handle, and the browser logs it anyway: those are left out."""
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and not _API_CALL.match(entry["message"])
        ]

    # -- acting ------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the page before its server stops (its periodic refresh would fail)."""
        self.driver.get("about:blank")

    def open(self, path: str = "/") -> None:
        """Load the page with fresh storage; enter the API key when the page asks for it."""
        self.driver.get(self.server.url + "/playground/")
        self.js("sessionStorage.clear(); localStorage.clear();")
        self.driver.get(self.server.url + path)
        self.driver.get_log("browser")  # only this test's messages from here on
        if self.api_key is not None:
            self.enter_key(self.api_key)
        self.until(lambda d: len(self.all("#producer option")) >= 2)

    def enter_key(self, key: str) -> None:
        self.until(lambda d: self.find("#key-dialog").get_attribute("open") is not None)
        self.find("#key-input").send_keys(key)
        self.find("#key-ok").click()
        self.until(lambda d: self.find("#key-dialog").get_attribute("open") is None)

    def configure(
        self,
        *,
        protocol: str = "native",
        producer: str = "synthetic",
        message: str | None = None,
        on_disconnect: str | None = None,
        background: bool | None = None,
        **knobs: object,
    ) -> None:
        self.find(f"input[name=protocol][value={protocol}]").click()
        Select(self.find("#producer")).select_by_value(producer)
        if message is not None:
            box = self.find("#message")
            box.clear()
            box.send_keys(message)
        options = self.find("#options")
        if options.get_attribute("open") is None:
            options.find_element(By.TAG_NAME, "summary").click()
        if on_disconnect is not None:
            Select(self.find("select[name=on_disconnect]")).select_by_value(on_disconnect)
        if background is not None:
            checkbox = self.find("input[name=background]")
            if checkbox.is_selected() != background:
                checkbox.click()
        for name, value in knobs.items():
            field = self.find(f"[data-for] [name={name}]")
            if field.tag_name == "select":
                Select(field).select_by_visible_text(str(value))
            else:
                field.clear()
                field.send_keys(str(value))

    def send(self) -> None:
        self.find("#send").click()
        self.until(lambda d: self.run_id().startswith("run_") or self.all("#terminal-status"))

    def wait_terminal(self, timeout: float = WAIT) -> str:
        """Wait for the terminal and for the page's check of the run's status; returns the
        terminal's status as the page shows it."""
        self.until(lambda d: self.all("#terminal-status") and self.all("#server-status"), timeout)
        return str(self.find("#terminal-status").text)

    def field(self, name: str) -> str:
        found = self.all(f"#terminal-{name}")
        return found[0].text if found else ""

    # -- the API, beside the page --------------------------------------------------------

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=WAIT)

    def run_view(self, run_id: str) -> dict[str, Any]:
        with self.api() as client:
            response = client.get(f"/v1/runs/{run_id}")
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]

    def full_text(self, run_id: str) -> str:
        """The run's whole text, from its native log (every text delta, once)."""
        with self.api() as client:
            response = client.get(f"/v1/runs/{run_id}/events", params={"after": 0})
        texts = []
        for line in response.text.splitlines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event.get("type") == "text.delta":
                    texts.append(event["data"]["text"])
        return "".join(texts)

"""The browser tests' helpers: where the system Chromium is, a dashboard
server started as a user starts it (`evalstore serve` in a subprocess), and a `Visit`
that opens pages, waits for their charts, collects console errors, uncaught exceptions,
Content-Security-Policy violations and dialogs, and saves one screenshot per page.

Outside CI the tests skip when Chromium or Playwright is missing; with
EVALSTORE_REQUIRE_BROWSER=1 (set by `.ci/run`) they fail instead. Nothing here
downloads a browser: Playwright is pointed at the executable of the system package.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

REQUIRE_ENV = "EVALSTORE_REQUIRE_BROWSER"
SYSTEM_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}
SERVER_START_S = 60.0
DRAW_TIMEOUT_MS = 15_000

# Runs in every page before the page's own scripts (Playwright injects it outside the
# page's CSP): a violation of the policy becomes a console error the test collects.
WATCH_CSP = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""
ALL_CHARTS_DRAWN = """() => Array.from(document.querySelectorAll("[data-chart]"))
  .every((el) => el.getAttribute("data-drawn") === "true")"""


def chromium_executable() -> str | None:
    """The system Chromium, or None when it is not installed."""
    if Path(SYSTEM_CHROMIUM).is_file():
        return SYSTEM_CHROMIUM
    return shutil.which("chromium")


def skip_or_fail(reason: str) -> None:
    """Skip with `reason`; fail instead when CI requires the browser tests to run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the browser tests to run")
    pytest.skip(reason)


# --- the server ---------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def evalstore_command() -> list[str]:
    """The `evalstore` script of the interpreter running the tests, as a user runs it."""
    script = Path(sys.executable).parent / "evalstore"
    return [str(script)] if script.exists() else [sys.executable, "-m", "evalstore.cli"]


def server_env(home: Path) -> dict[str, str]:
    """The environment without the developer's evalstore settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MONGODB_", "EVALSTORE_")) and key not in ("ENVIRONMENT",)
    }
    env["EVALSTORE_SPOOL_DIR"] = str(home / "spool")
    return env


@dataclass
class Server:
    """A running `evalstore serve`."""

    url: str
    process: subprocess.Popen[str]


def wait_until_it_answers(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.communicate()[0]
            raise AssertionError(f"evalstore serve exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/api", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"evalstore serve did not answer on {url} within {SERVER_START_S} s")


def start_server(home: Path, *args: str) -> Iterator[Server]:
    """Run `evalstore serve --port N *args` until the generator is closed."""
    port = free_port()
    process = subprocess.Popen(
        [*evalstore_command(), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=home,
        env=server_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_it_answers(process, url)
        yield Server(url, process)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


# --- a visit ------------------------------------------------------------------------


@dataclass
class Visit:
    """One browser tab on one server, watching for what must not happen."""

    page: Page
    base_url: str
    name: str
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def open(self, path: str, label: str) -> None:
        """Go to `path` of the server and settle there."""
        response = self.page.goto(self.base_url + path)
        assert response is not None
        assert response.status == 200, f"{path}: HTTP {response.status}"
        self.settled(label)

    def settled(self, label: str) -> None:
        """Wait for the page and its charts, check it went cleanly, take its screenshot."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_function(ALL_CHARTS_DRAWN, timeout=DRAW_TIMEOUT_MS)
        self.assert_clean()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"{self.name}-{len(self.shots) + 1:02d}-{label}.png"
        self.page.screenshot(path=str(shot), full_page=True)
        self.shots.append(shot)

    def assert_clean(self) -> None:
        """No console error, uncaught exception, CSP violation or dialog so far."""
        assert self.problems == [], f"on {self.page.url}: {self.problems}"
        assert self.dialogs == [], f"on {self.page.url}: a dialog opened: {self.dialogs}"

    def evaluate(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)


def _test_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")


def open_visit(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> Iterator[Visit]:
    """A fresh context (no cookies, no cache) with the watchers attached."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.set_default_timeout(DRAW_TIMEOUT_MS)
    visit = Visit(page, base_url, _test_name(request))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            visit.problems.append(f"console error: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        visit.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: visit.problems.append(f"uncaught: {error}"))
    page.on("dialog", on_dialog)
    try:
        yield visit
    finally:
        context.close()


# --- charts -------------------------------------------------------------------------

CHART_STATE = """(id) => {
  const div = document.getElementById(id);
  const block = document.getElementById(div.getAttribute("data-chart"));
  const spec = JSON.parse(block.textContent);
  const groups = Array.from(div.querySelectorAll(".scatterlayer .trace"));
  return {
    spec: spec.data.map((t) => ({type: t.type || "scatter", mode: t.mode || "", x: t.x, y: t.y})),
    drawn: Array.isArray(div.data) ? div.data.map((t) => ({x: t.x, y: t.y})) : null,
    points: groups.map((g) => g.querySelectorAll(".points path").length),
    lines: groups.map((g) => g.querySelectorAll("path.js-line").length),
  };
}"""


def assert_chart_drew_its_data(visit: Visit, chart_id: str) -> int:
    """The chart drew every trace of its JSON block, and one marker per data point.

    Returns the number of markers drawn.
    """
    state = visit.evaluate(CHART_STATE, chart_id)
    spec, drawn = state["spec"], state["drawn"]
    assert spec, f"{chart_id}: the JSON block has no trace"
    assert drawn is not None, f"{chart_id}: Plotly attached no data to the div"
    assert [(t["x"], t["y"]) for t in drawn] == [(t["x"], t["y"]) for t in spec], chart_id
    assert all(t["type"] == "scatter" for t in spec), chart_id
    assert len(state["points"]) == len(spec), f"{chart_id}: {len(state['points'])} traces drawn"
    expected = [
        sum(1 for x, y in zip(t["x"], t["y"], strict=True) if x is not None and y is not None)
        if "markers" in t["mode"]
        else 0
        for t in spec
    ]
    assert state["points"] == expected, f"{chart_id}: markers drawn per trace"
    for trace, lines in zip(spec, state["lines"], strict=True):
        if "lines" in trace["mode"]:
            assert lines == 1, f"{chart_id}: a line trace drew {lines} lines"
    return sum(expected)

"""What users recorded is shown as text in a real browser, never run as markup.

A local store holds two runs of a test named `<img src=x onerror=alert(1)>`, recorded
through the public API; the second fails with the message `<script>alert(1)</script>`
and a configuration value that would set `window.__xss`. `evalstore serve --url` serves
it, and the test clicks through the pages that show those strings.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser_helpers import Server, Visit, open_visit, start_server

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run

if TYPE_CHECKING:
    from playwright.sync_api import Browser

NAME = "<img src=x onerror=alert(1)>"
MESSAGE = "<script>alert(1)</script>"
PROMPT = '"><svg onload="window.__xss=1"><script>window.__xss=2</script>'
DATABASE = "xss"

# Every script element of a page: the dashboard's two files and the JSON data blocks.
SCRIPTS = """() => Array.from(document.scripts).map(
  (s) => s.src ? new URL(s.src).pathname : s.type)"""
MARKUP_RAN = """() => ({
  xss: typeof window.__xss,
  imgs: document.querySelectorAll('img[src="x"], img[onerror]').length,
  svgs: document.querySelectorAll("svg[onload]").length,
})"""


def record_store(directory: Path) -> list[str]:
    """Two runs of the test in a local store; their ids, oldest first."""

    async def record() -> list[str]:
        ids = []
        async with MongoDBClient(f"file://{directory}", DATABASE) as client:
            service = MetricsStorageService(client)
            for passed in (True, False):
                async with evaluation_run(
                    service,
                    config={"prompt": PROMPT, "passed_first": passed},
                    repo_path=directory,
                    monitor=False,
                ) as run:
                    await run.record_test(
                        NAME,
                        passed=passed,
                        score=90.0 if passed else 20.0,
                        message=None if passed else MESSAGE,
                    )
                    await run.record_test("plain", passed=True, score=80.0)
                ids.append(run.evaluation_run_id)
        return ids

    # The browser fixture's event loop counts as running in this thread: record in another.
    result: list[list[str]] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(record()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture(scope="module")
def store(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    directory = tmp_path_factory.mktemp("xss-store")
    return directory, record_store(directory / "store")


@pytest.fixture(scope="module")
def server(
    store: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory, _ids = store
    url = f"file://{directory / 'store'}"
    yield from start_server(tmp_path_factory.mktemp("serve-xss"), "--url", url, "--db", DATABASE)


@pytest.fixture
def visit(browser: Browser, server: Server, request: pytest.FixtureRequest) -> Iterator[Visit]:
    yield from open_visit(browser, server.url, request)


def assert_shown_as_text(visit: Visit, *texts: str) -> None:
    """Each text is on the page literally, and no markup in it became an element or ran."""
    for text in texts:
        shown = visit.page.get_by_text(text, exact=True)
        assert shown.count() >= 1, f"{text!r} is not shown as text on {visit.page.url}"
        assert shown.first.is_visible()
    assert visit.evaluate(MARKUP_RAN) == {"xss": "undefined", "imgs": 0, "svgs": 0}
    scripts = visit.evaluate(SCRIPTS)
    assert sorted(set(scripts) - {"application/json"}) == [
        "/static/dashboard.js",
        "/static/plotly.min.js",
    ], scripts
    assert scripts.count("/static/dashboard.js") == 1
    visit.assert_clean()  # no dialog, console error or CSP violation either


def test_the_markup_named_test_shows_as_text_on_the_run_and_its_history(
    visit: Visit, store: tuple[Path, list[str]]
) -> None:
    _directory, [_first, latest] = store
    visit.open("/runs", "runs")
    visit.page.locator("#runs-table a.run-link", has_text=latest).click()
    visit.page.wait_for_url(re.compile(r"/runs/[^/]+$"))
    visit.settled("run")
    assert_shown_as_text(visit, NAME, MESSAGE, PROMPT)
    row = visit.page.locator("#tests-table tbody tr", has_text=NAME)
    assert row.get_attribute("data-status") == "failed"

    visit.page.get_by_role("link", name=NAME, exact=True).click()
    visit.page.wait_for_url(re.compile(r"/test\?"))
    visit.settled("test-history")
    assert visit.page.locator("#test-id").inner_text() == NAME
    assert_shown_as_text(visit, NAME, MESSAGE)
    assert visit.page.locator("#history-table tbody tr").count() == 2


def test_the_markup_named_test_shows_as_text_in_a_comparison(
    visit: Visit, store: tuple[Path, list[str]]
) -> None:
    _directory, ids = store
    visit.open("/runs", "runs")
    for run_id in ids:
        visit.page.locator(f'input[name="run"][value="{run_id}"]').check()
    visit.page.locator("#compare-button").click()
    visit.page.wait_for_url(re.compile(r"/compare\?"))
    visit.settled("compare")
    row = visit.page.locator("#compare-tests tbody tr", has_text=NAME)
    assert row.count() == 1, "the test got worse: the comparison lists it"
    assert_shown_as_text(visit, NAME, MESSAGE)

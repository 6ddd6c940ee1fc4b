"""The demo dashboard in a real browser: clicks from page to page, charts drawn from
the data of the page, sorting, filtering, comparing two ticked runs.

Every page visited is checked for console errors, uncaught exceptions, CSP violations
and dialogs, and leaves a screenshot under test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from browser_helpers import (
    SCREENSHOTS,
    Server,
    Visit,
    assert_chart_drew_its_data,
    open_visit,
    start_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DEMO_RUNS = 14
DEMO_TESTS = 12
FLAKY = "hotel-checkin-fr-en"


@pytest.fixture(scope="module")
def demo(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`evalstore serve --demo` on a free port, for the whole module."""
    yield from start_server(tmp_path_factory.mktemp("serve-demo"), "--demo")


@pytest.fixture
def visit(browser: Browser, demo: Server, request: pytest.FixtureRequest) -> Iterator[Visit]:
    yield from open_visit(browser, demo.url, request)


def run_ids(visit: Visit) -> list[str]:
    return visit.page.locator("#runs-table a.run-link").all_inner_texts()


def column(visit: Visit, table: str, header: str) -> list[str]:
    """The `data-sort` values of one column of a table, in the order shown."""
    values: list[str] = visit.evaluate(
        """([table, header]) => {
          const t = document.getElementById(table);
          const index = Array.from(t.tHead.rows[0].cells).findIndex(
            (th) => th.textContent.trim() === header);
          if (index < 0) { throw new Error("no column " + header); }
          return Array.from(t.tBodies[0].rows).map(
            (row) => row.cells[index].getAttribute("data-sort"));
        }""",
        [table, header],
    )
    return values


def test_runs_to_a_run_to_a_test_history(visit: Visit) -> None:
    visit.open("/", "runs")
    assert urlsplit(visit.page.url).path == "/runs"  # the default page is the run table
    ids = run_ids(visit)
    assert len(ids) == DEMO_RUNS
    assert assert_chart_drew_its_data(visit, "chart-scores") == DEMO_RUNS  # the sparkline

    visit.page.locator("#runs-table a.run-link", has_text=ids[0]).click()
    visit.page.wait_for_url(re.compile(r"/runs/[^/]+$"))
    visit.settled("run")
    assert unquote(urlsplit(visit.page.url).path) == f"/runs/{ids[0]}"
    assert visit.page.locator("h1").inner_text().startswith(f"Run {ids[0]}")
    assert visit.page.locator("#provenance").is_visible()
    tests = visit.page.locator("#tests-table a.test-link").all_inner_texts()
    assert len(set(tests)) == len(tests) == DEMO_TESTS
    assert FLAKY in tests
    curves = visit.page.locator("main [data-chart]")
    assert curves.count() >= 1, "the demo's latest run has training curves"
    for chart in curves.evaluate_all("(els) => els.map((el) => el.id)"):
        assert_chart_drew_its_data(visit, chart)

    visit.page.locator("#tests-table a.test-link", has_text=FLAKY).click()
    visit.page.wait_for_url(re.compile(r"/test\?"))
    visit.settled("test-history")
    assert parse_qs(urlsplit(visit.page.url).query) == {"id": [FLAKY]}
    assert visit.page.locator("#test-id").inner_text() == FLAKY
    history_rows = visit.page.locator("#history-table tbody tr").count()
    assert history_rows == DEMO_RUNS
    assert assert_chart_drew_its_data(visit, "chart-score") == history_rows
    assert assert_chart_drew_its_data(visit, "chart-duration") == history_rows
    assert assert_chart_drew_its_data(visit, "chart-metrics") >= history_rows
    statuses = visit.page.locator("#history-table tbody .status").all_inner_texts()
    assert {"passed", "failed"} <= set(statuses), "the flaky test both passes and fails"
    assert [shot.name.removeprefix(f"{visit.name}-") for shot in visit.shots] == [
        "01-runs.png",
        "02-run.png",
        "03-test-history.png",
    ]
    for shot in visit.shots:
        assert shot.parent == SCREENSHOTS
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_point_of_the_history_chart_opens_its_run(visit: Visit) -> None:
    visit.open(f"/test?id={FLAKY}", "test-history")
    customdata = visit.evaluate(
        "() => document.getElementById('chart-score').data[0].customdata[0]"
    )
    assert customdata.startswith("/runs/")
    box = visit.page.locator("#chart-score .scatterlayer .trace .points path").first.bounding_box()
    assert box is not None
    visit.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    visit.page.mouse.down()
    visit.page.mouse.up()
    visit.page.wait_for_url(re.compile(r"/runs/[^/]+$"))
    visit.settled("run-from-chart")
    assert urlsplit(visit.page.url).path == customdata


def test_tick_two_runs_and_compare_them(visit: Visit) -> None:
    visit.open("/runs", "runs")
    ids = run_ids(visit)
    button = visit.page.locator("#compare-button")
    assert button.is_disabled()
    head, base = ids[0], ids[3]
    visit.page.locator(f'input[name="run"][value="{head}"]').check()
    assert button.is_disabled(), "one ticked run is not enough"
    visit.page.locator(f'input[name="run"][value="{base}"]').check()
    assert button.is_enabled()

    button.click()
    visit.page.wait_for_url(re.compile(r"/compare\?"))
    visit.settled("compare")
    assert sorted(parse_qs(urlsplit(visit.page.url).query)["run"]) == sorted([head, base])
    side_by_side = visit.page.locator("#compare-runs")
    shown = side_by_side.locator("a").all_inner_texts()
    assert sorted(shown) == sorted([head, base])
    verdict = visit.page.locator("#verdict").inner_text()
    assert re.match(r"(Regressed: \d+ tests got worse|No regression)", verdict), verdict
    assert re.search(r"\d+ newly failing, \d+ newly passing", verdict), verdict


def test_a_header_click_sorts_the_runs_by_score(visit: Visit) -> None:
    visit.open("/runs", "runs")
    shown = [float(value) for value in column(visit, "runs-table", "score")]
    assert len(shown) == DEMO_RUNS
    assert shown not in (sorted(shown), sorted(shown, reverse=True)), "already sorted"
    ids = run_ids(visit)

    header = visit.page.locator("#runs-table thead th", has_text=re.compile(r"^score$"))
    header.click()
    ascending = [float(value) for value in column(visit, "runs-table", "score")]
    assert ascending == sorted(shown)
    assert header.get_attribute("aria-sort") == "ascending"
    assert sorted(run_ids(visit)) == sorted(ids), "the rows moved, none got lost"
    header.click()
    assert [float(value) for value in column(visit, "runs-table", "score")] == sorted(
        shown, reverse=True
    )
    assert header.get_attribute("aria-sort") == "descending"
    # The score shown in each row moved with its row.
    cells = visit.page.locator("#runs-table tbody tr td.num:nth-last-child(2)").all_inner_texts()
    assert [float(text) for text in cells] == pytest.approx(sorted(shown, reverse=True), abs=0.051)
    visit.assert_clean()


def test_the_filter_box_hides_the_other_tests(visit: Visit) -> None:
    visit.open("/runs", "runs")
    visit.open(f"/runs/{run_ids(visit)[0]}", "run")
    rows = visit.page.locator("#tests-table tbody tr")
    assert rows.count() == DEMO_TESTS

    box = visit.page.locator('input.table-filter[data-filter-table="tests-table"]')
    box.fill("hotel-checkin")
    visible = visit.page.locator("#tests-table tbody tr:visible")
    assert visible.count() == 1
    assert FLAKY in visible.inner_text()
    assert rows.count() == DEMO_TESTS, "hidden, not removed"

    box.fill("no test has this name")
    assert visible.count() == 0
    box.fill("")
    assert visible.count() == DEMO_TESTS

    status = visit.page.locator('select.status-filter[data-filter-table="tests-table"]')
    status.select_option("passed")
    passed = visible.evaluate_all("(rows) => rows.map((r) => r.getAttribute('data-status'))")
    assert set(passed) == {"passed"}
    assert 0 < len(passed) < DEMO_TESTS, "the latest demo run has a failure to hide"
    assert len(passed) == visit.page.locator('#tests-table tbody tr[data-status="passed"]').count()
    visit.settled("run-filtered")


def test_the_csp_blocks_an_inline_script_and_the_watch_sees_it(visit: Visit) -> None:
    """The page's policy is in force, and the check every visit makes would catch a breach."""
    visit.open("/runs", "runs")
    ran = visit.evaluate(
        """() => {
          const s = document.createElement("script");
          s.textContent = "window.__inline_ran = true;";
          document.body.appendChild(s);
          return window.__inline_ran === true;
        }"""
    )
    assert ran is False
    visit.page.wait_for_function("() => true")  # let the violation event be reported
    assert any("CSP violation: script-src" in p for p in visit.problems), visit.problems
    visit.problems.clear()

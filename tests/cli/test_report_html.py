"""`evalstore report --html -o DIR`: the dashboard's pages of a run or a comparison, as files.

Two runs, March 1st and 2nd 2025: `test_a` passes both times (90, then 70), `test_b` passes
(80), then fails with a message holding markup, `test_c` only runs in the second.
"""

from __future__ import annotations

import html
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")

sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))  # the shared history helpers
from analysis_helpers import RunClock, at, invoke

from evalstore import MetricsStorageService, evaluation_run
from evalstore.web.assets import plotly_js

MESSAGE = "expected <script>alert(1)</script> to pass"


async def record(service: MetricsStorageService) -> list[str]:
    ids = []
    for day, results in (
        (1, [("test_a", True, 90.0), ("test_b", True, 80.0)]),
        (2, [("test_a", True, 70.0), ("test_b", False, 10.0), ("test_c", True, 50.0)]),
    ):
        async with evaluation_run(
            service, config={"beam": day}, clock=RunClock(at(day)), repo_path="."
        ) as run:
            for test_id, passed, score in results:
                await run.record_test(
                    test_id, passed=passed, score=score, message=None if passed else MESSAGE
                )
        ids.append(run.evaluation_run_id)
    return ids


def written(result: Any, output: Path, pages: int) -> None:
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {pages} pages to {output}: open {output / 'index.html'}\n"
    assert sorted(p.name for p in (output / "static").iterdir()) == [
        "dashboard.css",
        "dashboard.js",
        "plotly.min.js",
    ]
    assert (output / "static" / "plotly.min.js").read_bytes() == plotly_js().read_bytes()


async def test_the_report_of_one_run_is_its_page_and_the_histories_of_its_failures(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    first, second = await record(service)
    output = tmp_path / "report"

    result = await invoke(service, "report", "--html", "-o", str(output))

    written(result, output, 2)
    index = (output / "index.html").read_text()
    assert f'Run <span class="mono">{second}</span>' in index
    assert '<a href="test-0.html" class="test-link">test_b</a>' in index
    # the passing tests have no page in the report: their names are text, not links
    assert '<span class="test-link">test_a</span>' in index
    assert html.escape(MESSAGE, quote=False) in index
    assert "<script>alert(1)" not in index
    assert '<script src="static/plotly.min.js"></script>' in index
    assert "http://" not in index
    assert "https://" not in index
    history = (output / "test-0.html").read_text()
    assert 'id="test-id">test_b<' in history
    assert history.count('class="run-link"') == 2  # both runs of test_b, the newest linked
    assert '<a href="index.html" class="run-link">' in history
    assert f'<span class="run-link">{first}</span>' in history


async def test_the_report_of_a_comparison_holds_both_runs_and_the_tests_that_changed(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    first, second = await record(service)
    output = tmp_path / "compare"

    result = await invoke(service, "report", "--html", "-o", str(output), "--against", first)

    # the comparison, both runs, and test_a (score drop), test_b (newly failing), test_c (added)
    written(result, output, 6)
    index = (output / "index.html").read_text()
    assert '<a href="run-base.html" class="mono">' + first in index
    assert '<a href="run-head.html" class="mono">' + second in index
    assert "Regressed: 2 tests got worse" in index
    assert 'id="statistics"' in index  # computed for the report (scipy is a test extra)
    assert 'id="config-diff"' in index
    assert "config.beam" in index
    for name in ("run-base.html", "run-head.html", "test-0.html", "test-1.html", "test-2.html"):
        assert (output / name).is_file()


async def test_bad_requests_get_one_line_and_write_nothing(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    await record(service)
    output = tmp_path / "report"

    missing = await invoke(service, "report", "--html", "-o", str(output), "--run", "no-such-run")
    no_folder = await invoke(service, "report", "--html")
    neither = await invoke(service, "report", "--run", "latest")

    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: ")
    assert missing.stderr.count("\n") == 1
    assert "no-such-run" in missing.stderr
    assert no_folder.exit_code == 2
    assert no_folder.stderr == "error: --html needs -o DIR, the folder to write\n"
    assert neither.exit_code == 2
    assert "--html -o DIR" in neither.stderr
    assert not output.exists()


async def test_pages_are_readable_by_others_and_a_new_report_leaves_no_stale_page(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    first, _ = await record(service)
    output = tmp_path / "report"
    await invoke(service, "report", "--html", "-o", str(output), "--against", first)
    assert (output / "test-2.html").is_file()

    result = await invoke(service, "report", "--html", "-o", str(output))

    written(result, output, 2)
    # the comparison's other pages would link to tests this report is not about
    assert sorted(p.name for p in output.glob("*.html")) == ["index.html", "test-0.html"]
    umask = os.umask(0)
    os.umask(umask)
    for path in (output / "index.html", output / "static" / "dashboard.js"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600

"""The runs page's filters, and what a page or API answers to bad input.

Filters narrow the runs of `web_history`'s table as the CLI's do: by branch,
environment, status, tag and time. Bad input answers one clear message that names
the parameter: `{"error": ...}` on `/api/...`, an HTML error page otherwise; never
a traceback.
"""

from __future__ import annotations

import html as markup
import re
from urllib.parse import urlencode

import pytest
from web_history import day
from web_pages import HTML, api, column, page


def run_ids(site, query: str) -> list[str]:
    """The ids `/api/runs?<query>` lists, newest first."""
    return [run["evaluation_run_id"] for run in api(site.http, f"/api/runs?{query}")["runs"]]


def named(site, *names: str) -> list[str]:
    return [site.recorded.id(name) for name in names]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("branch=feature-x", ["tweak"]),
        ("environment=prod", ["latest"]),
        ("status=failed", ["broken"]),
        ("status=running", ["live"]),
        ("status=completed&status=failed", ["latest", "broken", "tweak", "second", "first"]),
        ("tag=tweak", ["tweak"]),
        ("tag=baseline&environment=dev", ["live", "broken", "second", "first"]),
        ("tag=baseline&tag=tweak&match=all", []),
        ("days=60", ["live", "latest", "broken", "tweak", "second", "first", "ancient"]),
        ("limit=2", ["live", "latest"]),
        ("branch=main&environment=stage", []),
    ],
)
def test_runs_filters_narrow_the_list(site, query: str, names: list[str]) -> None:
    assert run_ids(site, query) == named(site, *names)
    html = page(site.http, f"/runs?{query}")
    if names:
        assert column(html, "runs-table", 1) == named(site, *names)
    else:
        assert "No run started in this window with these filters" in html


def test_runs_since_and_until_bound_the_start_time(site) -> None:
    since = day(3).date().isoformat()  # midnight before `tweak` started: inclusive
    assert run_ids(site, f"since={since}") == named(site, "live", "latest", "broken", "tweak")
    # until is exclusive, and the window is the 30 days before it
    assert run_ids(site, f"until={since}") == named(site, "second", "first")
    assert run_ids(site, f"until={since}&days=60") == named(site, "second", "first", "ancient")
    assert run_ids(site, urlencode({"since": day(3).isoformat()})) == named(
        site, "live", "latest", "broken", "tweak"
    )
    assert run_ids(site, f"since={day(3, 13).isoformat().replace('+00:00', 'Z')}") == named(
        site, "live", "latest", "broken"
    )


def test_runs_page_shows_the_filters_it_applied(site) -> None:
    html = page(site.http, "/runs?branch=feature-x&status=completed&tag=tweak")
    assert "<option selected>feature-x</option>" in html
    assert "<option selected>completed</option>" in html
    assert "<option selected>tweak</option>" in html
    assert "1 run, newest first" in html


def test_runs_page_without_a_match_says_so(site) -> None:
    html = page(site.http, "/runs?branch=main&environment=stage")
    assert "No run started in this window with these filters" in html
    assert 'id="runs-table"' not in html


BAD_INPUT = [
    ("runs?days=abc", 400, "days: expected a whole number, got 'abc'"),
    ("runs?days=0", 400, "days: expected 1 to 36525, got 0"),
    (
        "runs?since=notadate",
        400,
        "since: expected a date (YYYY-MM-DD) or an ISO datetime, got 'notadate'",
    ),
    (
        "runs?status=bogus",
        400,
        "unknown run status 'bogus': use running, completed, failed, interrupted",
    ),
    ("runs?limit=-3", 400, "limit: expected 1 to 1000, got -3"),
    ("runs?match=some", 400, "match: expected one of any, all, got 'some'"),
    ("runs/nope", 404, "no evaluation run 'nope': list the recent ones with `evalstore runs list`"),
    (
        "runs/nope/series",
        404,
        "no evaluation run 'nope': list the recent ones with `evalstore runs list`",
    ),
    (
        "compare",
        400,
        "compare needs two runs: tick two runs on the runs page, or pass base= and head= "
        "(a run id, a unique prefix, latest or previous)",
    ),
    (
        "compare?base=latest&head=latest&tolerance=lots",
        400,
        "tolerance: expected a number, got 'lots'",
    ),
    ("test", 400, "test history needs id= (a test id, as in a run's tests table)"),
    ("trends?by=month", 400, "by: expected one of day, week, got 'month'"),
    ("trends?metric=bleu", 400, "metric: no run in the window recorded 'bleu'; recorded: score"),
    ("flaky?min_runs=1", 400, "min_runs: expected 2 to 1000, got 1"),
    ("configs?a=abc", 400, "a configuration diff needs both a= and b= (two hashes)"),
    ("experiments?a=baseline", 400, "an experiment comparison needs tags for both a= and b="),
    ("alerts?level=loud", 400, "level: expected info, warning, error, critical, got 'loud'"),
    (
        "alerts?since=yesterday",
        400,
        "since: expected a date (YYYY-MM-DD) or an ISO datetime, got 'yesterday'",
    ),
    (
        "cost?by=planet",
        400,
        "by: expected one of run, day, model, config, branch, test, got 'planet'",
    ),
]


@pytest.mark.parametrize(("path", "status", "message"), BAD_INPUT)
def test_bad_input_answers_one_message_as_json_on_the_api(
    site, path: str, status: int, message: str
) -> None:
    response = site.http.get(f"/api/{path}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": message}


@pytest.mark.parametrize(("path", "status", "message"), BAD_INPUT)
def test_bad_input_answers_an_error_page_on_the_page(
    site, path: str, status: int, message: str
) -> None:
    response = site.http.get(f"/{path}")
    assert response.status_code == status
    assert response.headers["content-type"] == HTML
    shown = re.findall(r'<p class="error-message">(.*?)</p>', response.text, re.S)
    assert [markup.unescape(text) for text in shown] == [message]
    assert f"<h1>{status}</h1>" in response.text
    assert "Traceback" not in response.text
    assert '<a href="/runs">Back to the runs</a>' in response.text


def test_series_points_out_of_range_is_a_400(site) -> None:
    response = site.http.get(f"/api/runs/{site.recorded.id('tweak')}/series?points=2")
    assert (response.status_code, response.json()) == (
        400,
        {"error": "points: expected 4 to 20000, got 2"},
    )


def test_an_unknown_path_is_a_404(site) -> None:
    assert site.http.get("/api/nothing-here").status_code == 404
    assert site.http.get("/nothing-here").status_code == 404

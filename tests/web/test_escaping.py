"""Everything users recorded is shown as text: no page runs markup from a test result.

The hostile history (`web_history.record_hostile_history`) has a test named
`<img src=x onerror=alert(1)>` that failed with the message
`<script>alert(1)</script>`, under a configuration whose `prompt` is
`</script><script>alert(2)</script>`, in the suite `<svg onload=alert(3)>`. On
every page the raw markup is absent and its escaped form present; the chart
blocks hold it JSON-escaped (no `<` at all, so no `</script>` can close them) and
give it back exactly when parsed; the JSON API returns it as recorded.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

import pytest
from web_history import XSS_CONFIG, XSS_MESSAGE, XSS_SUITE, XSS_TEST
from web_pages import api, body_rows, chart_blocks, charts, page, parse, tables

RAW = (XSS_TEST, XSS_MESSAGE, XSS_CONFIG, XSS_SUITE)
ESCAPED_TEST = "&lt;img src=x onerror=alert(1)&gt;"
ESCAPED_MESSAGE = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_CONFIG = "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"
ESCAPED_SUITE = "&lt;svg onload=alert(3)&gt;"
TEST_QUERY = urlencode({"id": XSS_TEST})


def pages(hostile) -> dict[str, str]:
    plain, bad = hostile.recorded.id("plain"), hostile.recorded.id("hostile")
    return {
        "runs": f"/runs?{urlencode({'suite': XSS_SUITE})}",
        "run": f"/runs/{bad}",
        "series": f"/runs/{bad}/series",
        "test": f"/test?{TEST_QUERY}",
        "compare": f"/compare?base={plain}&head={bad}&show=all",
        "trends": "/trends?group=suite",
        "flaky": "/flaky?min_runs=2",
        "configs": "/configs",
        "experiments": "/experiments",
        "alerts": "/alerts",
        "cost": "/cost?by=test",
        "error": f"/runs/{urlencode({'x': XSS_TEST})}",
    }


def assert_inert(html: str) -> None:
    """No recorded markup as markup: absent raw, no element it would have made, and
    scripts only the dashboard's own files and its JSON blocks."""
    for raw in RAW:
        assert raw not in html
    found = parse(html).tags
    assert not [tag for tag, _ in found if tag in ("img", "svg")]
    scripts = [attrs for tag, attrs in found if tag == "script"]
    assert [a["src"] for a in scripts if "src" in a] == [
        "/static/plotly.min.js",
        "/static/dashboard.js",
    ]
    assert all(a.get("type") == "application/json" for a in scripts if "src" not in a)
    for block in chart_blocks(html).values():
        assert "<" not in block  # JSON-escaped: nothing can close it
        assert ">" not in block


@pytest.mark.parametrize(
    "name",
    [
        "runs",
        "run",
        "series",
        "test",
        "compare",
        "trends",
        "flaky",
        "configs",
        "experiments",
        "alerts",
        "cost",
        "error",
    ],
)
def test_no_page_holds_recorded_markup_unescaped(hostile, name: str) -> None:
    response = hostile.http.get(pages(hostile)[name])
    assert response.status_code == (404 if name == "error" else 200)
    assert_inert(response.text)


def test_run_page_shows_the_test_id_message_and_config_value_as_text(hostile) -> None:
    html = page(hostile.http, f"/runs/{hostile.recorded.id('hostile')}")
    assert ESCAPED_TEST in html
    assert ESCAPED_MESSAGE in html
    assert ESCAPED_CONFIG in html
    assert ESCAPED_SUITE in html
    assert body_rows(html, "tests-table")[0] == [
        XSS_TEST,
        "failed",
        "10.00",
        "30,000.0",
        XSS_MESSAGE,
    ]
    assert tables(html)["configuration"] == [["prompt", XSS_CONFIG]]
    assert f'<a href="/test?{TEST_QUERY}" class="test-link">{ESCAPED_TEST}</a>' in html


def test_test_page_shows_the_test_id_as_text(hostile) -> None:
    html = page(hostile.http, f"/test?{TEST_QUERY}")
    assert f'<span class="mono" id="test-id">{ESCAPED_TEST}</span>' in html
    assert ESCAPED_MESSAGE in html
    assert [row[5] for row in body_rows(html, "history-table")] == [XSS_MESSAGE, ""]


def test_compare_page_shows_the_changed_config_value_as_text(hostile) -> None:
    plain, bad = hostile.recorded.id("plain"), hostile.recorded.id("hostile")
    html = page(hostile.http, f"/compare?base={plain}&head={bad}")
    assert body_rows(html, "config-diff") == [["config.prompt", "plain", XSS_CONFIG, "changed"]]
    for escaped in (ESCAPED_CONFIG, ESCAPED_TEST, ESCAPED_MESSAGE):
        assert escaped in html
    assert body_rows(html, "compare-tests")[0][:2] == [XSS_TEST, "newly_failing"]


def test_chart_texts_are_escaped_for_plotly_which_draws_them_as_typed(hostile) -> None:
    # Plotly reads labels, names and titles as a little HTML: `&lt;` shows as `<`, and a
    # recorded `<a href>` or `<b>` stays text; the JSON block itself holds no `<` or `>`.
    def shown(text: str) -> str:
        return html.escape(text, quote=False)

    cost = page(hostile.http, "/cost?by=test")
    assert "<" not in chart_blocks(cost)["chart-cost-data"]
    assert charts(cost)["chart-cost-data"]["data"][0]["x"] == [shown(XSS_TEST)]
    trends = page(hostile.http, "/trends?group=suite")
    names = [line["name"] for line in charts(trends)["chart-trend-data"]["data"]]
    assert names == [shown(XSS_SUITE)]
    configs = page(hostile.http, "/configs")
    labels = charts(configs)["chart-configs-data"]["data"][0]["x"]
    assert sorted(labels) == sorted(["config.prompt=plain", f"config.prompt={shown(XSS_CONFIG)}"])
    assert "<" not in chart_blocks(configs)["chart-configs-data"]


def test_the_api_returns_the_recorded_text_as_it_was_recorded(hostile) -> None:
    data = api(hostile.http, f"/api/runs/{hostile.recorded.id('hostile')}")
    assert data["tests"][0]["test_id"] == XSS_TEST
    assert data["tests"][0]["message"] == XSS_MESSAGE
    assert data["configuration"] == {"prompt": XSS_CONFIG}
    assert data["provenance"]["suite"] == XSS_SUITE
    response = hostile.http.get(f"/api/test?{TEST_QUERY}")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["test_id"] == XSS_TEST

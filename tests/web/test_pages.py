"""Every page of the dashboard and its JSON twin, over a history recorded by hand.

The history is the table in `web_history`: six runs in the default 30-day window
(one still running), one older run outside it. Each test reads a page as a reader
sees it (its tables' cell texts, its charts' points) and the same view's
`/api/...` answer, and checks both against values computed from that table.
Every test runs on the embedded backend and on the local store.
"""

from __future__ import annotations

from web_history import BASE_CONFIG, TWEAK_CONFIG, day
from web_pages import api, body_rows, charts, column, page, tables

# --- runs -------------------------------------------------------------------------------

NEWEST_FIRST = ["live", "latest", "broken", "tweak", "second", "first"]


def test_the_home_page_redirects_to_the_runs(site) -> None:
    response = site.http.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/runs"


def test_runs_api_lists_the_window_newest_first(site) -> None:
    data = api(site.http, "/api/runs")
    ids = [run["evaluation_run_id"] for run in data["runs"]]
    assert ids == [site.recorded.id(name) for name in NEWEST_FIRST]  # `ancient` is 40 days old
    assert [run["status"] for run in data["runs"]] == [
        "running",
        "completed",
        "failed",
        "completed",
        "completed",
        "completed",
    ]
    assert [run["score"] for run in data["runs"]] == [None, 65.0, 55.0, 75.0, 55.0, 70.0]
    assert [(run["num_passed"], run["num_tests"]) for run in data["runs"]] == [
        (0, 0),
        (2, 5),
        (1, 2),
        (4, 4),
        (1, 4),
        (3, 4),
    ]
    assert data["choices"]["branch"] == ["feature-x", "main"]
    assert data["choices"]["environment"] == ["dev", "prod", "stage"]
    assert data["choices"]["tag"] == ["baseline", "tweak"]


def test_runs_page_shows_the_same_runs_and_a_sparkline_of_finished_ones(site) -> None:
    html = page(site.http, "/runs")
    ids = [site.recorded.id(name) for name in NEWEST_FIRST]
    assert column(html, "runs-table", 1) == ids
    assert column(html, "runs-table", 4) == ["main", "main", "main", "feature-x", "main", "main"]
    assert column(html, "runs-table", 8) == [
        "running",
        "completed",
        "failed",
        "completed",
        "completed",
        "completed",
    ]
    assert column(html, "runs-table", 11) == ["-", "65.00", "55.00", "75.00", "55.00", "70.00"]
    assert "6 runs, newest first" in html
    for run_id in ids:
        assert f'<a href="/runs/{run_id}" class="run-link">{run_id}</a>' in html
        assert f'<input type="checkbox" name="run" value="{run_id}"' in html
    spark = charts(html)["chart-scores-data"]["data"][0]
    assert spark["y"] == [70.0, 55.0, 75.0, 55.0, 65.0]  # oldest first, the running run left out
    assert spark["customdata"] == [f"/runs/{i}" for i in reversed(ids[1:])]


# --- one run -----------------------------------------------------------------------------


def test_run_api_lists_failures_first_with_the_alert_it_raised(site) -> None:
    run_id = site.recorded.id("second")
    data = api(site.http, f"/api/runs/{run_id}")
    assert data["run"]["evaluation_run_id"] == run_id
    assert data["run"]["score"] == 55.0
    assert [(t["test_id"], t["status"], t["score"]) for t in data["tests"]] == [
        ("beta", "failed", 60.0),
        ("gamma", "failed", 30.0),
        ("delta", "failed", 40.0),
        ("alpha", "passed", 90.0),
    ]
    assert data["configuration"] == BASE_CONFIG
    assert data["counts"] == {
        "num_tests": 4,
        "num_passed": 1,
        "num_failed": 3,
        "num_errors": 0,
        "num_skipped": 0,
    }
    assert data["provenance"]["git_branch"] == "main"
    assert data["provenance"]["git_dirty"] is False
    assert [(a["rule"], a["test_id"], a["value"]) for a in data["alerts"]] == [
        ("gamma-low", "gamma", 30.0)
    ]


def test_run_page_shows_its_tests_failures_first(site) -> None:
    html = page(site.http, f"/runs/{site.recorded.id('latest')}")
    assert body_rows(html, "tests-table") == [
        ["gamma", "failed", "35.00", "30,000.0", "gamma flaked"],
        ["delta", "failed", "45.00", "30,000.0", "delta: 45 is below 50"],
        ["alpha", "passed", "95.00", "30,000.0", ""],
        ["beta", "passed", "85.00", "30,000.0", ""],
        ["epsilon", "skipped", "-", "30,000.0", "not ready"],
    ]
    assert '<p class="big">65.00</p>' in html
    assert "2 failed, 0 errors, 1 skipped" in html
    assert tables(html)["configuration"] == [["beam_size", "1"], ["model", "small"]]
    assert ["environment", "prod"] in tables(html)["provenance"]
    assert '<a href="/test?id=gamma" class="test-link">gamma</a>' in html


def test_run_page_shows_the_alert_the_run_raised(site) -> None:
    html = page(site.http, f"/runs/{site.recorded.id('second')}")
    assert body_rows(html, "run-alerts") == [
        ["error", "gamma-low", "firing", "score is 30, below 50"]
    ]


def test_run_page_and_api_show_its_cost_per_model_and_its_curve(site) -> None:
    run_id = site.recorded.id("tweak")
    data = api(site.http, f"/api/runs/{run_id}")
    assert [(c["model"], c["calls"], c["input_tokens"], c["cost"]) for c in data["cost"]] == [
        ("model-a", 1, 1000, 0.25),
        ("model-b", 1, 500, 0.5),
    ]
    assert data["usage"]["cost"] == 0.75
    assert data["configuration"] == TWEAK_CONFIG
    html = page(site.http, f"/runs/{run_id}")
    assert body_rows(html, "run-cost") == [
        ["model-a", "", "1", "1,000", "200", "0.2500"],
        ["model-b", "", "1", "500", "100", "0.5000"],
    ]
    assert '<p class="big">$0.7500</p>' in html
    curve = charts(html)["series-0-data"]
    assert curve["layout"]["title"]["text"] == "loss"
    assert [(line["name"], line["x"], line["y"]) for line in curve["data"]] == [
        ("train", [0, 1, 2], [1.0, 0.5, 0.25])
    ]
    assert f'href="/runs/{run_id}/series"' in html


def test_run_can_be_named_latest_or_by_a_unique_prefix(site) -> None:
    run_id = site.recorded.id("tweak")
    assert api(site.http, f"/api/runs/{run_id[:24]}")["run"]["evaluation_run_id"] == run_id


def test_series_page_and_api_hold_the_points_the_run_logged(site) -> None:
    run_id = site.recorded.id("tweak")
    data = api(site.http, f"/api/runs/{run_id}/series")
    assert data["series"] == [
        {
            "metric": "loss",
            "split": "train",
            "count": 3,
            "first_step": 0,
            "last_step": 2,
            "last": 0.25,
            "mean": (1.0 + 0.5 + 0.25) / 3,
            "min": 0.25,
            "min_step": 2,
            "max": 1.0,
            "max_step": 0,
        }
    ]
    assert data["charts"]["series-0"]["data"][0]["y"] == [1.0, 0.5, 0.25]
    html = page(site.http, f"/runs/{run_id}/series")
    assert body_rows(html, "series-table") == [
        ["loss", "train", "3", "0", "2", "0.2500", "0.2500 (2)", "1.0000 (0)", "0.5833"]
    ]
    assert charts(html)["series-0-data"]["data"][0]["x"] == [0, 1, 2]


def test_series_page_of_a_run_without_curves_says_so(site) -> None:
    html = page(site.http, f"/runs/{site.recorded.id('first')}/series")
    assert "This run logged no training metrics" in html
    assert api(site.http, f"/api/runs/{site.recorded.id('first')}/series")["series"] == []


# --- compare ------------------------------------------------------------------------------


def test_compare_api_lists_what_newly_fails(site) -> None:
    first, second = site.recorded.id("first"), site.recorded.id("second")
    data = api(site.http, f"/api/compare?base={first}&head={second}")
    assert data["base"]["evaluation_run_id"] == first
    assert data["head"]["evaluation_run_id"] == second
    assert data["comparison"]["newly_failing"] == ["beta", "gamma"]
    assert data["comparison"]["newly_passing"] == []
    assert data["comparison"]["regressed"] is True
    assert [
        (t["test_id"], t["base_score"], t["head_score"], t["delta"]) for t in data["tests"]
    ] == [
        ("beta", 80.0, 60.0, -20.0),
        ("gamma", 70.0, 30.0, -40.0),
    ]
    assert data["unchanged"] == 2  # alpha passed twice, delta failed twice at 40
    assert data["configuration"] == []  # the same configuration


def test_compare_page_shows_the_regressions_side_by_side(site) -> None:
    first, second = site.recorded.id("first"), site.recorded.id("second")
    html = page(site.http, f"/compare?base={first}&head={second}")
    assert body_rows(html, "compare-tests") == [
        [
            "beta",
            "newly_failing",
            "passed",
            "failed",
            "80.00",
            "60.00",
            "-20.00",
            "0.0",
            "beta regressed",
        ],
        [
            "gamma",
            "newly_failing",
            "passed",
            "failed",
            "70.00",
            "30.00",
            "-40.00",
            "0.0",
            "gamma flaked",
        ],
    ]
    assert "Regressed: 2 tests got worse" in html
    assert "2 newly failing, 0 newly passing, 0 added, 0 removed." in html
    assert tables(html)["compare-runs"][1] == ["run", first, second]
    assert "Same configuration." in html


def test_compare_two_ticked_runs_takes_the_older_as_base(site) -> None:
    first, second = site.recorded.id("first"), site.recorded.id("second")
    data = api(site.http, f"/api/compare?run={second}&run={first}")
    assert (data["base"]["evaluation_run_id"], data["head"]["evaluation_run_id"]) == (first, second)
    assert data["comparison"]["newly_failing"] == ["beta", "gamma"]


def test_compare_shows_the_configuration_keys_that_differ(site) -> None:
    tweak, latest = site.recorded.id("tweak"), site.recorded.id("latest")
    data = api(site.http, f"/api/compare?base={tweak}&head={latest}")
    assert data["configuration"] == [
        {"path": "config.beam_size", "a": 5, "b": 1, "change": "changed"}
    ]
    assert data["comparison"]["added"] == ["epsilon"]
    assert data["comparison"]["newly_failing"] == ["delta", "gamma"]
    html = page(site.http, f"/compare?base={tweak}&head={latest}")
    assert body_rows(html, "config-diff") == [["config.beam_size", "5", "1", "changed"]]
    everything = api(site.http, f"/api/compare?base={tweak}&head={latest}&show=all")
    assert [d["path"] for d in everything["configuration"]] == ["config.beam_size", "config.model"]
    assert len(everything["tests"]) == 5


# --- one test's history ------------------------------------------------------------------


def test_test_history_api_has_every_run_of_the_test(site) -> None:
    data = api(site.http, "/api/test?id=gamma")
    names = ["latest", "broken", "tweak", "second", "first"]
    assert [row["evaluation_run_id"] for row in data["history"]] == [
        site.recorded.id(name) for name in names
    ]
    assert [row["score"] for row in data["history"]] == [35.0, 20.0, 70.0, 30.0, 70.0]
    assert (data["runs"], data["passed"], data["pass_rate"]) == (5, 2, 0.4)
    score = data["charts"]["score"]["data"][0]
    assert score["y"] == [70.0, 30.0, 70.0, 20.0, 35.0]  # oldest first
    assert score["customdata"] == [f"/runs/{site.recorded.id(n)}" for n in reversed(names)]


def test_test_history_page_shows_the_scores_and_the_pass_rate(site) -> None:
    html = page(site.http, "/test?id=gamma")
    assert "5 runs shown (newest 200 at most), passed 2 (40.0%)" in html
    assert column(html, "history-table", 1) == [
        site.recorded.id(name) for name in ("latest", "broken", "tweak", "second", "first")
    ]
    assert column(html, "history-table", 2) == ["failed", "failed", "passed", "failed", "passed"]
    assert column(html, "history-table", 3) == ["35.00", "20.00", "70.00", "30.00", "70.00"]
    assert set(charts(html)) == {"chart-score-data", "chart-duration-data"}


def test_history_of_a_test_never_run_is_empty(site) -> None:
    assert "No run of this test is stored." in page(site.http, "/test?id=never-ran")
    assert api(site.http, "/api/test?id=never-ran")["history"] == []


# --- trends, flaky, configurations, experiments ------------------------------------------


def test_trends_api_and_page_show_the_mean_score_per_day(site) -> None:
    data = api(site.http, "/api/trends")
    days = [day(n).date().isoformat() for n in (5, 4, 3, 2, 1)]
    assert data["lines"] == [
        {
            "name": "score",
            "points": [
                {"period": d, "mean": mean, "runs": 1}
                for d, mean in zip(days, [70.0, 55.0, 75.0, 55.0, 65.0], strict=True)
            ],
        }
    ]
    html = page(site.http, "/trends")
    assert body_rows(html, "trend-table") == [
        ["score", d, mean, "1"]
        for d, mean in zip(days, ["70.000", "55.000", "75.000", "55.000", "65.000"], strict=True)
    ]
    assert charts(html)["chart-trend-data"]["data"][0]["x"] == days


def test_trends_per_environment_draw_a_line_each(site) -> None:
    data = api(site.http, "/api/trends?group=environment")
    lines = {line["name"]: [p["mean"] for p in line["points"]] for line in data["lines"]}
    assert lines == {"dev": [70.0, 55.0, 55.0], "prod": [65.0], "stage": [75.0]}
    html = page(site.http, "/trends?group=environment")
    assert [t["name"] for t in charts(html)["chart-trend-data"]["data"]] == ["dev", "prod", "stage"]


def test_flaky_api_ranks_the_tests_that_flip(site) -> None:
    data = api(site.http, "/api/flaky?min_runs=3")
    assert [(t["test_id"], t["runs"], t["flips"], t["recent"]) for t in data["flaky"]] == [
        ("gamma", 5, 3, "PFPFF"),  # flip rate 3/4
        ("delta", 4, 2, "FFPF"),  # 2/3, pass rate 1/4
        ("beta", 4, 2, "PFPP"),  # 2/3, pass rate 3/4
    ]
    assert [t["pass_rate"] for t in data["flaky"]] == [0.4, 0.25, 0.75]


def test_flaky_page_shows_the_flaky_test_with_its_pass_rate(site) -> None:
    html = page(site.http, "/flaky")  # at least 5 runs by default: only gamma ran 5 times
    rows = body_rows(html, "flaky-table")
    assert [row[:3] for row in rows] == [["gamma", "5", "40.0%"]]
    assert rows[0][4:7] == ["3", "75.0%", "PFPFF"]
    assert [t["test_id"] for t in api(site.http, "/api/flaky")["flaky"]] == ["gamma"]


def test_configurations_api_and_page_list_each_configuration_with_its_mean(site) -> None:
    data = api(site.http, "/api/configs")
    rows = [(c["label"], c["runs"], c["mean_score"]) for c in data["configurations"]]
    # the running run has no score; the failed one counts: (70 + 55 + 55 + 65) / 4
    assert rows == [("config.beam_size=1", 4, 61.25), ("config.beam_size=5", 1, 75.0)]
    base = site.recorded.runs["first"]["system_info_hash"]
    html = page(site.http, "/configs")
    assert [row[2:6] for row in body_rows(html, "configs-table")] == [
        [base[:12], "config.beam_size=1", "4", "61.25"],
        [site.recorded.runs["tweak"]["system_info_hash"][:12], "config.beam_size=5", "1", "75.00"],
    ]
    assert charts(html)["chart-configs-data"]["data"][0]["y"] == [61.25, 75.0]


def test_configurations_diff_two_hashes_by_their_prefixes(site) -> None:
    a = site.recorded.runs["first"]["system_info_hash"]
    b = site.recorded.runs["tweak"]["system_info_hash"]
    data = api(site.http, f"/api/configs?a={a[:12]}&b={b[:12]}")
    assert (data["diff"]["a"], data["diff"]["b"]) == (a, b)
    assert data["diff"]["differences"] == [
        {"path": "config.beam_size", "a": 1, "b": 5, "change": "changed"}
    ]
    html = page(site.http, f"/configs?a={a[:12]}&b={b[:12]}")
    assert body_rows(html, "configs-diff") == [["config.beam_size", "1", "5", "changed"]]


def test_experiments_compare_the_runs_of_two_tags(site) -> None:
    data = api(site.http, "/api/experiments?a=baseline&b=tweak")
    assert data["tags"] == ["baseline", "tweak"]
    # baseline: 70, 55, 55, 65 (mean 61.25, sample std 7.5); tweak: 75
    assert data["metrics"] == [
        {
            "metric": "score",
            "a_mean": 61.25,
            "a_std": 7.5,
            "a_runs": 4,
            "b_mean": 75.0,
            "b_std": None,
            "b_runs": 1,
            "difference": 13.75,
        }
    ]
    html = page(site.http, "/experiments?a=baseline&b=tweak")
    assert body_rows(html, "experiments-table") == [
        ["score", "61.250", "7.500", "4", "75.000", "-", "1", "13.750"]
    ]
    assert api(site.http, "/api/experiments")["metrics"] is None


# --- alerts and cost -----------------------------------------------------------------------


def test_alerts_api_and_page_show_the_alert_the_rule_raised(site) -> None:
    second = site.recorded.id("second")
    data = api(site.http, "/api/alerts")
    assert [
        (a["id"], a["rule"], a["level"], a["state"], a["run"], a["test_id"], a["value"])
        for a in data["alerts"]
    ] == [(site.recorded.alert_ids[0], "gamma-low", "error", "firing", second, "gamma", 30.0)]
    assert data["alerts"][0]["acknowledged"] is False
    html = page(site.http, "/alerts")
    row = body_rows(html, "alerts-table")[0]
    assert row[1:] == [
        "error",
        "gamma-low",
        "firing",
        second,
        "gamma",
        "30.000",
        "score is 30, below 50",
        "no",
    ]
    assert "Acknowledging alerts needs a token" in html  # this server has none


def test_alerts_filters_by_level_and_state(site) -> None:
    assert len(api(site.http, "/api/alerts?level=error")["alerts"]) == 1
    assert api(site.http, "/api/alerts?level=warning")["alerts"] == []
    assert api(site.http, "/api/alerts?state=resolved")["alerts"] == []
    assert "No alert." in page(site.http, "/alerts?state=resolved")


def test_cost_api_totals_the_costs_recorded(site) -> None:
    data = api(site.http, "/api/cost")
    assert data["total_cost"] == 0.75
    assert [(r["label"], r["calls"], r["input_tokens"], r["cost"]) for r in data["rows"]] == [
        (site.recorded.id("tweak"), 2, 1500, 0.75)
    ]
    assert data["rows"][0]["cost_per_passed_test"] == 0.75 / 4
    per_model = api(site.http, "/api/cost?by=model")
    assert [(r["label"], r["cost"]) for r in per_model["rows"]] == [
        ("model-a", 0.25),
        ("model-b", 0.5),
    ]
    assert per_model["total_cost"] == 0.75
    per_test = api(site.http, "/api/cost?by=test")
    assert sorted((r["label"], r["cost"]) for r in per_test["rows"]) == [
        ("(none)", 0.5),
        ("alpha", 0.25),
    ]


def test_cost_page_shows_the_total_and_a_row_per_model(site) -> None:
    html = page(site.http, "/cost?by=model")
    assert '<strong id="total-cost">$0.7500</strong>' in html
    assert body_rows(html, "cost-table") == [
        ["model-a", "1", "1,000", "200", "0", "0.2500"],
        ["model-b", "1", "500", "100", "0", "0.5000"],
    ]
    assert charts(html)["chart-cost-data"]["data"][0]["x"] == ["model-a", "model-b"]


def test_cost_page_with_nothing_recorded_under_the_filters_says_so(site) -> None:
    html = page(site.http, "/cost?branch=main")  # the calls were made on feature-x
    assert "No usage was recorded with these filters" in html
    assert api(site.http, "/api/cost?branch=main")["total_cost"] is None
    assert api(site.http, "/api/cost?branch=feature-x")["total_cost"] == 0.75


# --- the index, static files -------------------------------------------------------------


def test_api_index_lists_every_endpoint(site) -> None:
    data = api(site.http, "/api")
    for name in ("runs", "runs/{id}", "runs/{id}/series", "compare", "test", "trends"):
        assert f"/api/{name}" in data["endpoints"]
    for name in ("flaky", "configs", "experiments", "alerts", "cost", "alerts/{id}/ack (POST)"):
        assert f"/api/{name}" in data["endpoints"]
    assert data["metrics"].startswith("/metrics")


def test_every_page_of_the_nav_links_the_others(site) -> None:
    for name in ("runs", "trends", "flaky", "configs", "experiments", "alerts", "cost"):
        html = page(site.http, f"/{name}")
        assert f'<a href="/{name}" aria-current="page">' in html
        assert '<script src="/static/plotly.min.js"></script>' in html
        assert '<script src="/static/dashboard.js"></script>' in html


def test_static_files_are_served_with_their_types(site) -> None:
    css = site.http.get("/static/dashboard.css")
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    js = site.http.get("/static/dashboard.js")
    assert (js.status_code, js.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    plotly = site.http.get("/static/plotly.min.js")
    assert plotly.status_code == 200
    assert plotly.headers["content-type"].startswith("text/javascript")
    assert len(plotly.content) > 1_000_000  # Plotly itself, from the plotly package
    assert site.http.get("/static/secrets.txt").status_code == 404
    assert site.http.get("/favicon.ico").status_code == 204

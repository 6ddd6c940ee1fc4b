"""Ids are taken exactly as recorded, and the compare page's links keep what was asked.

Two runs, two and one day ago: `case` failed (10) then passed (90); `case ` (a trailing
space: another test) passed (50) then failed (20). Plotly draws chart texts as a little HTML:
a name that looks like a link is escaped so that it is drawn as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from web_history import Outcome, Recorded, day, git_repo, record_run
from web_pages import api, page
from web_site import Site, served

from evalstore import MetricsStorageService
from evalstore.web import charts

LINK_TEXT = "x<a href='https://attacker.example/'>curve</a>"
SHOWN = "x&lt;a href='https://attacker.example/'&gt;curve&lt;/a&gt;"


def hrefs(text: str) -> list[str]:
    """The links of a page, unescaped."""
    return [html.unescape(href) for href in re.findall(r'href="([^"]*)"', text)]


async def record_twins(service: MetricsStorageService, repos: Path) -> Recorded:
    repo = git_repo(repos / "twins", "main") if not (repos / "twins").exists() else repos / "twins"
    recorded = Recorded()
    recorded.runs["old"] = await record_run(
        service,
        day(2),
        [Outcome("case", "failed", 10.0), Outcome("case ", "passed", 50.0)],
        repo=repo,
    )
    recorded.runs["new"] = await record_run(
        service,
        day(1),
        [Outcome("case", "passed", 90.0), Outcome("case ", "failed", 20.0)],
        repo=repo,
    )
    return recorded


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served("mongomock://", record_twins, tmp_path_factory.mktemp("twins")) as site:
        yield site


def test_a_test_id_with_a_trailing_space_is_its_own_test(twins) -> None:
    exact = api(twins.http, "/api/test?id=case+")
    plain = api(twins.http, "/api/test?id=case")

    assert exact["test_id"] == "case "
    assert [(row["status"], row["score"]) for row in exact["history"]] == [
        ("failed", 20.0),
        ("passed", 50.0),
    ]
    assert [(row["status"], row["score"]) for row in plain["history"]] == [
        ("passed", 90.0),
        ("failed", 10.0),
    ]


def test_the_run_page_links_each_test_to_its_own_history(twins) -> None:
    run = page(twins.http, f"/runs/{twins.recorded.id('new')}")
    links = sorted(a for a in hrefs(run) if a.startswith("/test?"))
    assert links == ["/test?id=case", "/test?id=case+"]


def test_the_compare_links_keep_the_tolerance_and_the_runs(twins) -> None:
    old, new = twins.recorded.id("old"), twins.recorded.id("new")
    compare = page(twins.http, f"/compare?base={old}&head={new}&tolerance=40")
    found = {a: parse_qs(urlparse(a).query) for a in hrefs(compare) if a.startswith("/compare?")}
    assert len(found) == 2  # "show every key and test" and "add statistics"
    for query in found.values():
        assert query["base"] == [old]
        assert query["head"] == [new]
        assert query["tolerance"] == ["40.0"]
    assert sorted(tuple(q.get("stats", [])) for q in found.values()) == [(), ("1",)]


def test_chart_texts_from_users_are_escaped_for_plotly() -> None:
    line = charts.trace(LINK_TEXT, [0, 1], [1.0, 0.5], text=[LINK_TEXT, "plain"])
    bars = charts.bar_chart([LINK_TEXT], [0.25], title=LINK_TEXT)

    assert line["name"] == SHOWN
    assert line["text"] == [SHOWN, "plain"]
    assert bars["data"][0]["x"] == [SHOWN]
    assert bars["layout"]["title"]["text"] == SHOWN

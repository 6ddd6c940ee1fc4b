"""Reading the dashboard's answers: a page's tables and chart blocks, an API's JSON.

`tables(html)` parses the page with `html.parser` and returns each `<table id=...>`
as rows of cell texts (character references decoded): what a reader sees in the
browser. Text that was escaped shows up here as text; markup that was not escaped
would be parsed as an element and vanish from the cell's text.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from starlette.testclient import TestClient

HTML = "text/html; charset=utf-8"


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.charts: dict[str, str] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._chart: str | None = None
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "table" and found.get("id"):
            self._table = str(found["id"])
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "script" and found.get("type") == "application/json":
            self._chart = str(found.get("id"))
            self.charts[self._chart] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "script":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._chart is not None:
            self.charts[self._chart] += data
        elif self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    parser.close()
    return parser


def tables(html: str) -> dict[str, list[list[str]]]:
    """Each table with an id: its rows (header row included), each a list of cell texts."""
    return parse(html).tables


def body_rows(html: str, table_id: str) -> list[list[str]]:
    """The rows of one table, without its header row."""
    return tables(html)[table_id][1:]


def column(html: str, table_id: str, index: int) -> list[str]:
    """One column of a table's body."""
    return [row[index] for row in body_rows(html, table_id)]


def charts(html: str) -> dict[str, Any]:
    """The chart specs a page embeds (`<script type="application/json" id=...>`), parsed."""
    return {name: json.loads(text) for name, text in parse(html).charts.items()}


def chart_blocks(html: str) -> dict[str, str]:
    """The chart blocks' text as served (still JSON, before parsing)."""
    return parse(html).charts


def page(http: TestClient, path: str) -> str:
    """The HTML of a page that must answer 200."""
    response = http.get(path)
    assert response.status_code == 200, (path, response.text[:500])
    assert response.headers["content-type"] == HTML
    return response.text


def api(http: TestClient, path: str) -> Any:
    """The JSON of an API answer that must be 200."""
    response = http.get(path)
    assert response.status_code == 200, (path, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    return response.json()

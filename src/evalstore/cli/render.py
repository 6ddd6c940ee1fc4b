"""How the CLI shows documents: Rich tables for people, JSON for scripts.

Everything shown comes from stored documents (test ids such as `test_wer[es-en]`,
messages, tags, configuration values) or from the command line, so it is shown
literally: tables are built from `rich.text.Text` cells, never from strings that
Rich would read as markup (`[es-en]` would vanish, `[/x]` would raise).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evalstore.models import to_jsonable

Column = tuple[str, Callable[[Mapping[str, Any]], Any]]


def print_json(console: Console, value: Any) -> None:
    """Print `value` as indented JSON (no colour codes, safe to pipe)."""
    console.file.write(json.dumps(to_jsonable(value), indent=2, sort_keys=False) + "\n")


def error_line(message: str) -> Text:
    """`error: <message>` with a red `error:`, the message shown literally."""
    return Text.assemble(("error:", "red"), " ", message)


def fmt(value: Any, digits: int = 1) -> str:
    """A cell: numbers rounded, datetimes to the minute in UTC, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


_NUMBER_HEADERS = {"score", "tests", "passed", "failed", "runs", "mean", "ms"}


def number_header(header: str) -> bool:
    """True for the headers of the core commands' number columns (right-aligned)."""
    return header.lower() in _NUMBER_HEADERS


def table(
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    right_aligned: Callable[[str], bool] = number_header,
) -> Table:
    """A Rich table with one column per (header, getter) pair.

    A column is right-aligned when `right_aligned(header)` is true, left-aligned otherwise.
    The title and the cells are shown literally (no Rich markup, no emoji codes).
    """
    result = Table(
        title=Text(title, style="table.title"), title_justify="left", header_style="bold"
    )
    for header, _ in columns:
        result.add_column(header, justify="right" if right_aligned(header) else "left")
    for row in rows:
        result.add_row(*(Text(fmt(getter(row))) for _, getter in columns))
    return result


RUN_COLUMNS: list[Column] = [
    ("evaluation run", lambda r: r.get("evaluation_run_id")),
    ("started (UTC)", lambda r: r.get("started_at")),
    ("suite", lambda r: r.get("suite")),
    ("branch", lambda r: r.get("git_branch")),
    ("env", lambda r: r.get("environment")),
    ("tags", lambda r: r.get("experiment_tags")),
    ("status", lambda r: r.get("status")),
    ("tests", lambda r: r.get("num_tests")),
    ("passed", lambda r: r.get("num_passed")),
    ("score", lambda r: r.get("score")),
]

TEST_RUN_COLUMNS: list[Column] = [
    ("test", lambda r: r.get("test_id")),
    ("status", lambda r: r.get("status")),
    ("score", lambda r: r.get("score")),
    ("metrics", lambda r: metric_summary(r.get("metrics") or {})),
    ("ms", lambda r: r.get("duration_ms")),
    ("message", lambda r: r.get("message")),
]

HISTORY_COLUMNS: list[Column] = [
    ("finished (UTC)", lambda r: r.get("finished_at")),
    ("status", lambda r: r.get("status")),
    ("score", lambda r: r.get("score")),
    ("metrics", lambda r: metric_summary(r.get("metrics") or {})),
    ("message", lambda r: r.get("message")),
]

TREND_COLUMNS: list[Column] = [
    ("period", lambda r: r.get("period")),
    ("mean", lambda r: r.get("mean")),
    ("runs", lambda r: r.get("runs")),
]


def metric_summary(metrics: Mapping[str, Any]) -> str:
    """`wer=12.5 completeness=90.0` from a test's metrics object."""
    parts = []
    for name, metric in sorted(metrics.items()):
        score = metric.get("score") if isinstance(metric, Mapping) else metric
        parts.append(f"{name}={fmt(score)}")
    return " ".join(parts) or "-"

"""Table columns of the analysis commands (the JSON output is the service's rows as they are)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.table import Table

from evalstore.cli.render import Column, metric_summary, table

_TEXT_HEADERS = {
    "test",
    "evaluation run",
    "status",
    "base",
    "head",
    "change",
    "regressed",
    "metric",
    "path",
    "a",
    "b",
    "configuration",
    "differs in",
    "message",
    "period",
    "last status",
    "test run",
    "metrics (mean)",
    "recent (oldest → newest)",
    "quantity",
    "verdict",
}


def _right_aligned(header: str) -> bool:
    return header not in _TEXT_HEADERS and "(UTC)" not in header


def analysis_table(
    title: str, columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]
) -> Table:
    """`render.table`, with every column right-aligned except text and time columns."""
    return table(title, columns, rows, right_aligned=_right_aligned)


def percent(value: float | None) -> str | None:
    """`60%` from a 0-1 rate; None stays None (shown as a dash)."""
    return None if value is None else f"{value * 100:.0f}%"


def signed(value: float | None, digits: int = 1) -> str | None:
    """`+1.5` / `-2.0` / `0.0`; None stays None."""
    if value is None:
        return None
    return f"{value:+.{digits}f}" if round(value, digits) else f"{0:.{digits}f}"


def percent_range(low: float | None, high: float | None) -> str | None:
    """`23-88%` from two 0-1 rates; None when either is missing."""
    if low is None or high is None:
        return None
    return f"{low * 100:.0f}-{percent(high)}"


def interval(low: float | None, high: float | None, digits: int = 1) -> str | None:
    """`[-6.1, -4.3]`; None when either bound is missing."""
    if low is None or high is None:
        return None
    return f"[{signed(low, digits)}, {signed(high, digits)}]"


def p_value(value: float | None) -> str | None:
    """`0.031`, or `<0.001`; None stays None."""
    if value is None:
        return None
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _change(row: Mapping[str, Any]) -> Any:
    change = row.get("change")
    return f"{change} (known flaky)" if row.get("known_flaky") else change


def _duration_change(row: Mapping[str, Any]) -> str | None:
    """`+120 (+12.0%)`: the head's duration minus the base's in ms, and in percent."""
    ms = signed(row.get("duration_delta_ms"), 0)
    if ms is None:
        return None
    pct = row.get("duration_change_pct")
    return ms if pct is None else f"{ms} ({signed(pct)}%)"


def short_hash(value: Any) -> str:
    """The first 12 hex digits of a configuration hash (enough for `configs diff`)."""
    return str(value)[:12]


SCORE_TREND_COLUMNS: list[Column] = [
    ("evaluation run", lambda r: r.get("evaluation_run_id")),
    ("started (UTC)", lambda r: r.get("started_at")),
    ("status", lambda r: r.get("status")),
    ("score", lambda r: r.get("score")),
    ("passed", lambda r: r.get("num_passed")),
    ("tests", lambda r: r.get("num_tests")),
]

TEST_TREND_COLUMNS: list[Column] = [
    ("finished (UTC)", lambda r: r.get("finished_at")),
    ("status", lambda r: r.get("status")),
    ("score", lambda r: r.get("score")),
    ("test run", lambda r: r.get("test_run_id")),
]

STATS_COLUMNS: list[Column] = [
    ("test", lambda r: r.get("test_id")),
    ("runs", lambda r: r.get("runs")),
    ("mean", lambda r: r.get("mean_score")),
    ("min", lambda r: r.get("min_score")),
    ("max", lambda r: r.get("max_score")),
    ("pass rate", lambda r: percent(r.get("pass_rate"))),
    ("last status", lambda r: r.get("last_status")),
    ("last seen (UTC)", lambda r: r.get("last_seen")),
]

FLAKY_COLUMNS: list[Column] = [
    ("test", lambda r: r.get("test_id")),
    ("runs", lambda r: r.get("runs")),
    ("pass rate", lambda r: percent(r.get("pass_rate"))),
    ("95% interval", lambda r: percent_range(r.get("pass_rate_low"), r.get("pass_rate_high"))),
    ("flip rate", lambda r: percent(r.get("flip_rate"))),
    ("recent (oldest → newest)", lambda r: r.get("recent")),
    ("last seen (UTC)", lambda r: r.get("last_seen")),
]

OUTCOME_CHANGE_COLUMNS: list[Column] = [
    ("test", lambda r: r.get("test_id")),
    ("change", lambda r: r.get("change")),
    ("since (UTC)", lambda r: r.get("changed_at")),
    ("runs", lambda r: r.get("runs")),
    ("pass rate", lambda r: percent(r.get("pass_rate"))),
    ("recent (oldest → newest)", lambda r: r.get("recent")),
    ("last seen (UTC)", lambda r: r.get("last_seen")),
]

CONFIG_COLUMNS: list[Column] = [
    ("configuration", lambda r: short_hash(r.get("system_info_hash"))),
    ("differs in", lambda r: r.get("label")),
    ("runs", lambda r: r.get("runs")),
    ("score", lambda r: r.get("mean_score")),
    ("metrics (mean)", lambda r: metric_summary(r.get("metrics") or {})),
    ("first seen (UTC)", lambda r: r.get("first_seen")),
    ("last seen (UTC)", lambda r: r.get("last_seen")),
]

DIFF_COLUMNS: list[Column] = [
    ("path", lambda r: r.get("path")),
    ("a", lambda r: r.get("a")),
    ("b", lambda r: r.get("b")),
    ("change", lambda r: r.get("change")),
]

COMPARE_TEST_COLUMNS: list[Column] = [
    ("test", lambda r: r.get("test_id")),
    ("base", lambda r: r.get("base_status")),
    ("head", lambda r: r.get("head_status")),
    ("base score", lambda r: r.get("base_score")),
    ("head score", lambda r: r.get("head_score")),
    ("delta", lambda r: signed(r.get("delta"))),
    ("change", _change),
    ("regressed", lambda r: r.get("regressed")),
    ("ms change", _duration_change),
    ("message", lambda r: r.get("head_message")),
]

SIGNIFICANCE_COLUMNS: list[Column] = [
    ("quantity", lambda r: r.get("metric")),
    ("pairs", lambda r: r.get("pairs")),
    ("mean change", lambda r: signed(r.get("mean_difference"), 2)),
    ("95% interval", lambda r: interval(r.get("ci_low"), r.get("ci_high"), 2)),
    ("Wilcoxon p", lambda r: p_value(r.get("wilcoxon_p"))),
    ("verdict", lambda r: (r.get("verdict") or "-").replace("_", " ")),
]

METRIC_DELTA_COLUMNS: list[Column] = [
    ("metric", lambda r: r.get("metric")),
    ("base", lambda r: r.get("base")),
    ("head", lambda r: r.get("head")),
    ("delta", lambda r: signed(r.get("delta"))),
]

EXPERIMENT_COLUMNS: list[Column] = [
    ("metric", lambda r: r.get("metric")),
    ("A mean", lambda r: r.get("a_mean")),
    ("A std", lambda r: r.get("a_std")),
    ("A runs", lambda r: r.get("a_runs")),
    ("B mean", lambda r: r.get("b_mean")),
    ("B std", lambda r: r.get("b_std")),
    ("B runs", lambda r: r.get("b_runs")),
    ("B - A", lambda r: signed(r.get("difference"))),
]

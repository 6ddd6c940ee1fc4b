"""Which table columns are right-aligned: numbers right, text and times left."""

from __future__ import annotations

import pytest

from evalstore.cli import render
from evalstore.cli import tables as analysis_render
from evalstore.cli.render import Column, table
from evalstore.cli.tables import analysis_table

L, R = "left", "right"

CORE_TABLES: dict[str, list[tuple[str, str]]] = {
    "RUN_COLUMNS": [
        ("evaluation run", L),
        ("started (UTC)", L),
        ("suite", L),
        ("branch", L),
        ("env", L),
        ("tags", L),
        ("status", L),
        ("tests", R),
        ("passed", R),
        ("score", R),
    ],
    "TEST_RUN_COLUMNS": [
        ("test", L),
        ("status", L),
        ("score", R),
        ("metrics", L),
        ("ms", R),
        ("message", L),
    ],
    "HISTORY_COLUMNS": [
        ("finished (UTC)", L),
        ("status", L),
        ("score", R),
        ("metrics", L),
        ("message", L),
    ],
    "TREND_COLUMNS": [("period", L), ("mean", R), ("runs", R)],
}

ANALYSIS_TABLES: dict[str, list[tuple[str, str]]] = {
    "TREND_COLUMNS": [("period", L), ("mean", R), ("runs", R)],
    "SCORE_TREND_COLUMNS": [
        ("evaluation run", L),
        ("started (UTC)", L),
        ("status", L),
        ("score", R),
        ("passed", R),
        ("tests", R),
    ],
    "TEST_TREND_COLUMNS": [("finished (UTC)", L), ("status", L), ("score", R), ("test run", L)],
    "STATS_COLUMNS": [
        ("test", L),
        ("runs", R),
        ("mean", R),
        ("min", R),
        ("max", R),
        ("pass rate", R),
        ("last status", L),
        ("last seen (UTC)", L),
    ],
    "FLAKY_COLUMNS": [
        ("test", L),
        ("runs", R),
        ("pass rate", R),
        ("95% interval", R),
        ("flip rate", R),
        ("recent (oldest → newest)", L),
        ("last seen (UTC)", L),
    ],
    "CONFIG_COLUMNS": [
        ("configuration", L),
        ("differs in", L),
        ("runs", R),
        ("score", R),
        ("metrics (mean)", L),
        ("first seen (UTC)", L),
        ("last seen (UTC)", L),
    ],
    "DIFF_COLUMNS": [("path", L), ("a", L), ("b", L), ("change", L)],
    "COMPARE_TEST_COLUMNS": [
        ("test", L),
        ("base", L),
        ("head", L),
        ("base score", R),
        ("head score", R),
        ("delta", R),
        ("change", L),
        ("regressed", L),
        ("ms change", R),
        ("message", L),
    ],
    "SIGNIFICANCE_COLUMNS": [
        ("quantity", L),
        ("pairs", R),
        ("mean change", R),
        ("95% interval", R),
        ("Wilcoxon p", R),
        ("verdict", L),
    ],
    "METRIC_DELTA_COLUMNS": [("metric", L), ("base", L), ("head", L), ("delta", R)],
    "EXPERIMENT_COLUMNS": [
        ("metric", L),
        ("A mean", R),
        ("A std", R),
        ("A runs", R),
        ("B mean", R),
        ("B std", R),
        ("B runs", R),
        ("B - A", R),
    ],
}


def _alignment(columns: list[Column], analysis: bool) -> list[tuple[str, str]]:
    built = (analysis_table if analysis else table)("t", columns, [])
    return [(str(column.header), str(column.justify)) for column in built.columns]


@pytest.mark.parametrize("name", sorted(CORE_TABLES))
def test_core_tables_right_align_number_columns(name: str) -> None:
    assert _alignment(getattr(render, name), analysis=False) == CORE_TABLES[name]


@pytest.mark.parametrize("name", sorted(ANALYSIS_TABLES))
def test_analysis_tables_right_align_all_but_text_and_time_columns(name: str) -> None:
    module = render if name == "TREND_COLUMNS" else analysis_render  # as `evalstore trend` uses it
    assert _alignment(getattr(module, name), analysis=True) == ANALYSIS_TABLES[name]


def test_table_takes_the_alignment_rule() -> None:
    columns: list[Column] = [("x", lambda r: r["x"]), ("score", lambda r: r["x"])]
    built = table("t", columns, [{"x": 1}], right_aligned=lambda header: header == "x")
    assert [column.justify for column in built.columns] == [R, L]

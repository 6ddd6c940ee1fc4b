"""A run's report as Markdown or HTML: provenance, aggregates, failures, alerts, cost,
metric series and plots.

`run_report` builds the report once as blocks (headings, paragraphs, tables, images) and
renders them to either format, so both say the same. Every recorded value (test ids,
messages, branch names, metric names) is escaped where it is written: `md_cell` in
Markdown (no `|` or newline breaks a table, no text turns into markup), `html.escape`
in HTML. Images are linked by relative file name, next to the report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from evalstore.analysis.reports import md_cell, md_table
from evalstore.models import Document
from evalstore.plots.sources import RunReportData

ReportFormat = Literal["md", "html"]
REPORT_FORMATS: dict[str, ReportFormat] = {".md": "md", ".html": "html", ".htm": "html"}
MESSAGE_CHARS = 500
"""A failure message is cut to this many characters (with `…`)."""
_TOKEN_FIELDS = (
    ("calls", "calls"),
    ("input tokens", "input_tokens"),
    ("cached input tokens", "cache_read_tokens"),
    ("cache write tokens", "cache_write_tokens"),
    ("output tokens", "output_tokens"),
    ("reasoning tokens", "reasoning_tokens"),
)


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    right: list[bool] = field(default_factory=list)


@dataclass
class Block:
    """One piece of the report: a heading, a paragraph, a table or an image."""

    kind: Literal["h1", "h2", "p", "table", "image"]
    text: str = ""
    table: Table | None = None
    source: str = ""


def cell(value: object, digits: int = 6) -> str:
    """A value as shown in the report: None as `-`, floats to `digits` significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def money(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"${value:.4f}"


def run_report(
    data: RunReportData,
    *,
    form: ReportFormat,
    generated_at: datetime,
    images: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> str:
    """The report of one run as Markdown (`form="md"`) or a standalone HTML page.

    Args:
        data: what `evalstore.plots.sources.run_report_data` read.
        images: `(metric, file name relative to the report)` for each plot.
        notes: lines shown under Plots (why there are none, say).
    """
    blocks = report_blocks(data, generated_at=generated_at, images=images, notes=notes)
    return to_html(blocks) if form == "html" else to_markdown(blocks)


def report_blocks(
    data: RunReportData,
    *,
    generated_at: datetime,
    images: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> list[Block]:
    run = data["run"]
    blocks = [
        Block("h1", f"Run {run.get('evaluation_run_id')}"),
        Block("p", f"Generated {cell(generated_at)} by evalstore."),
        *_provenance(run),
        *_aggregates(run),
        *_failures(data["failures"], data["failures_total"]),
        *_alerts(data["alerts"]),
        *_cost(run.get("usage")),
        *_series(data["series_summary"]),
        Block("h2", "Plots"),
    ]
    blocks += [Block("p", note) for note in notes]
    blocks += [Block("image", metric, source=source) for metric, source in images]
    if not images and not notes:
        blocks.append(Block("p", "No plots: the run has no metric series."))
    return blocks


def _pairs(pairs: Sequence[tuple[str, object]]) -> Block:
    return Block(
        "table", table=Table(["field", "value"], [[name, cell(value)] for name, value in pairs])
    )


def _provenance(run: Document) -> list[Block]:
    system = run.get("system_info_hash")
    return [
        Block("h2", "Provenance"),
        _pairs(
            [
                ("run", run.get("evaluation_run_id")),
                ("status", run.get("status")),
                ("started", run.get("started_at")),
                ("finished", run.get("finished_at")),
                ("environment", run.get("environment")),
                ("suite", run.get("suite")),
                ("branch", run.get("git_branch")),
                ("commit", run.get("git_commit")),
                ("dirty", run.get("git_dirty")),
                ("configuration", system[:12] if isinstance(system, str) else None),
                ("tags", run.get("experiment_tags") or None),
            ]
        ),
    ]


def _aggregates(run: Document) -> list[Block]:
    tests = run.get("num_tests") or 0
    passed = run.get("num_passed") or 0
    executed = tests - (run.get("num_skipped") or 0)
    blocks = [
        Block("h2", "Aggregates"),
        _pairs(
            [
                ("tests", tests),
                ("passed", passed),
                ("failed", run.get("num_failed")),
                ("errors", run.get("num_errors")),
                ("skipped", run.get("num_skipped")),
                ("pass rate", f"{100 * passed / executed:.1f}%" if executed > 0 else None),
                ("score", run.get("score")),
            ]
        ),
    ]
    metrics: Mapping[str, Any] = run.get("metrics") or {}
    if metrics:
        blocks.append(
            Block(
                "table",
                table=Table(
                    ["metric", "value"],
                    [[name, cell(metrics[name])] for name in sorted(metrics)],
                    [False, True],
                ),
            )
        )
    return blocks


def _failures(failures: Sequence[Document], total: int) -> list[Block]:
    blocks = [Block("h2", f"Failures ({total})")]
    if not failures:
        return [*blocks, Block("p", "No test failed or errored.")]
    rows = []
    for test in failures:
        message = test.get("message") or ""
        if len(message) > MESSAGE_CHARS:
            message = message[: MESSAGE_CHARS - 1] + "…"
        rows.append(
            [cell(test.get("test_id")), cell(test.get("status")), cell(test.get("score")), message]
        )
    blocks.append(
        Block(
            "table",
            table=Table(["test", "status", "score", "message"], rows, [False, False, True, False]),
        )
    )
    if total > len(failures):
        blocks.append(
            Block(
                "p",
                f"The first {len(failures)} of {total} are shown "
                "(`evalstore runs show RUN --failed --all` lists them all).",
            )
        )
    return blocks


def _alerts(alerts: Sequence[Document]) -> list[Block]:
    blocks = [Block("h2", f"Alerts ({len(alerts)})")]
    if not alerts:
        return [*blocks, Block("p", "No alert was raised for this run.")]
    rows = [
        [
            cell(alert.get("level")),
            cell(alert.get("state")),
            cell(alert.get("rule")),
            cell(alert.get("metric")),
            cell(alert.get("value")),
            cell(alert.get("threshold")),
            cell(alert.get("message")),
            cell(alert.get("fired_at")),
        ]
        for alert in alerts
    ]
    headers = ["level", "state", "rule", "metric", "value", "threshold", "message", "fired"]
    right = [False, False, False, False, True, True, False, False]
    return [*blocks, Block("table", table=Table(headers, rows, right))]


def _cost(usage: Mapping[str, Any] | None) -> list[Block]:
    blocks = [Block("h2", "Cost")]
    if not usage:
        return [*blocks, Block("p", "No usage was recorded for this run.")]
    pairs: list[tuple[str, object]] = [
        ("cost", money(usage.get("cost"))),
        ("cost per passed test", money(usage.get("cost_per_passed_test"))),
        *((label, usage.get(name)) for label, name in _TOKEN_FIELDS),
        ("records", usage.get("records")),
        ("records without a price", usage.get("unpriced")),
    ]
    blocks.append(_pairs(pairs))
    by_model: Sequence[Mapping[str, Any]] = usage.get("by_model") or []
    if by_model:
        rows = [
            [
                cell(row.get("model")),
                cell(row.get("provider")),
                cell(row.get("calls")),
                cell(row.get("input_tokens")),
                cell(row.get("cache_read_tokens")),
                cell(row.get("output_tokens")),
                money(row.get("cost")),
                cell(row.get("unpriced")),
            ]
            for row in by_model
        ]
        headers = ["model", "provider", "calls", "input", "cached", "output", "cost", "unpriced"]
        blocks.append(Block("table", table=Table(headers, rows, [False, False] + [True] * 6)))
    return blocks


def _series(summary: Sequence[Document]) -> list[Block]:
    blocks = [Block("h2", "Metric series")]
    if not summary:
        return [*blocks, Block("p", "No metric series was logged for this run.")]
    rows = [
        [
            cell(row.get("metric")),
            cell(row.get("split")),
            cell(row.get("count")),
            f"{cell(row.get('first_step'))} to {cell(row.get('last_step'))}",
            cell(row.get("last")),
            cell(row.get("mean")),
            f"{cell(row.get('min'))} (step {cell(row.get('min_step'))})",
            f"{cell(row.get('max'))} (step {cell(row.get('max_step'))})",
        ]
        for row in summary
    ]
    headers = ["metric", "split", "points", "steps", "last", "mean", "min", "max"]
    right = [False, False, True, False, True, True, True, True]
    return [*blocks, Block("table", table=Table(headers, rows, right))]


def to_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as Markdown (GitHub-flavoured tables); every text escaped with `md_cell`."""
    parts = []
    for block in blocks:
        if block.kind == "h1":
            parts.append(f"# {md_cell(block.text)}")
        elif block.kind == "h2":
            parts.append(f"## {md_cell(block.text)}")
        elif block.kind == "p":
            parts.append(md_cell(block.text))
        elif block.kind == "image":
            parts.append(f"![{md_cell(block.text)}]({quote(block.source)})")
        elif block.table is not None:
            table = block.table
            right = table.right or [False] * len(table.headers)
            parts.append(md_table(table.headers, table.rows, right))
    return "\n\n".join(parts) + "\n"


_STYLE = (
    "body{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top;white-space:pre-wrap}"
    "td.num{text-align:right}img{max-width:100%;display:block;margin:1rem 0}"
)


def to_html(blocks: Sequence[Block]) -> str:
    """The blocks as one standalone HTML page; every text escaped with `html.escape`."""
    esc = html.escape
    title = next((block.text for block in blocks if block.kind == "h1"), "evalstore report")
    body = []
    for block in blocks:
        if block.kind in ("h1", "h2"):
            body.append(f"<{block.kind}>{esc(block.text)}</{block.kind}>")
        elif block.kind == "p":
            body.append(f"<p>{esc(block.text)}</p>")
        elif block.kind == "image":
            body.append(
                f'<figure><img src="{esc(quote(block.source))}" alt="{esc(block.text)}">'
                f"<figcaption>{esc(block.text)}</figcaption></figure>"
            )
        elif block.table is not None:
            table = block.table
            right = table.right or [False] * len(table.headers)
            lines = ["<table>"]
            if any(table.headers):
                lines.append(
                    "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.headers) + "</tr>"
                )
            for row in table.rows:
                cells = "".join(
                    f'<td class="num">{esc(c)}</td>' if r else f"<td>{esc(c)}</td>"
                    for c, r in zip(row, right, strict=True)
                )
                lines.append(f"<tr>{cells}</tr>")
            lines.append("</table>")
            body.append("\n".join(lines))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )

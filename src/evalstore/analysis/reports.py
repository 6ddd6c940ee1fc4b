"""The configurations report in Markdown, and the number formats it shares with the CLI.

`configs_report` writes what `configs compare`/`configs best` and `trend
--direction` answer into one Markdown document (`evalstore report configs`).
Every recorded value that lands in a table cell (configuration values, labels,
branch names) goes through `md_cell`, so a `|` or a newline in a value never
breaks a table.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from evalstore.analysis.types import (
    BestConfiguration,
    ConfigCandidate,
    ConfigFigures,
    ConfigGroup,
    Objective,
    ScoreDirection,
    Slope,
)

OBJECTIVE_NAMES: dict[Objective, str] = {
    "score": "mean score",
    "success": "success rate",
    "cost-per-success": "cost per success",
}
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]#~])")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_BACKTICKS = re.compile(r"`+")


def cost_text(value: float | None) -> str:
    """`1.50`, `0.50`, `0.0042` (two significant digits under 0.01), `-` for None."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"


def number_text(value: float | None, digits: int = 1) -> str:
    """`85.0`; `-` for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def percent_text(value: float | None) -> str:
    """`67%` from a 0-1 rate; `-` for None."""
    return "-" if value is None else f"{value * 100:.0f}%"


def slope_text(value: float | None) -> str:
    """`+0.52`, `-0.00123` (three significant digits, signed); `-` for None."""
    return "-" if value is None else f"{value:+.3g}"


def interval_text(slope: Slope) -> str:
    """`+0.31 to +0.73`; `-` without an interval."""
    if slope["low"] is None or slope["high"] is None:
        return "-"
    return f"{slope_text(slope['low'])} to {slope_text(slope['high'])}"


def objective_text(candidate: ConfigFigures, objective: Objective) -> str:
    """The value an objective ranks a configuration by, as a table shows it."""
    if objective == "score":
        return number_text(candidate["mean_score"])
    if objective == "success":
        return percent_text(candidate["success_rate"])
    return cost_text(candidate["cost_per_success"])


def direction_reason(direction: ScoreDirection) -> str:
    """Why the verdict is what it is, e.g. `the 95% interval of the slope per run is above 0`."""
    if direction["verdict"] == "not enough runs":
        return (
            f"{direction['runs']} finished run(s) with a {direction['metric']} value, "
            "at least 3 needed"
        )
    interval = f"the {direction['confidence'] * 100:g}% interval of the slope per run"
    if direction["verdict"] == "flat":
        return f"{interval} holds 0: no trend the runs can tell from noise"
    return f"{interval} is {'above' if direction['verdict'] == 'improving' else 'below'} 0"


def md_cell(value: object) -> str:
    """Text that stays inside one Markdown table cell and reads literally.

    `|` becomes `&#124;` and newlines `<br>` (a backslash before a `|` would not
    hold in every renderer); `&`, `<` and `>` are escaped, and Markdown
    punctuation gets a backslash, so recorded text never turns into markup.
    """
    text = value if isinstance(value, str) else str(value)
    text = html.escape(text, quote=False)
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)
    text = text.replace("|", "&#124;")
    return _NEWLINES.sub("<br>", text)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A Markdown table; headers and cells are escaped here."""
    lines = [
        "| " + " | ".join(md_cell(h) for h in headers) + " |",
        "|" + "|".join("---:" if r else "---" for r in right) + "|",
    ]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def md_code(text: str, language: str = "") -> str:
    """A fenced code block whose fence is longer than any run of backticks in `text`."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


FIGURE_HEADERS = (
    "runs",
    "success rate",
    "mean score",
    "mean cost",
    "cost per success",
    "mean duration (s)",
)


def figure_cells(row: ConfigFigures) -> list[str]:
    """The cells of `FIGURE_HEADERS` for one group or configuration."""
    return [
        str(row["runs"]),
        percent_text(row["success_rate"]),
        number_text(row["mean_score"]),
        cost_text(row["mean_cost"]),
        cost_text(row["cost_per_success"]),
        number_text(row["mean_duration_s"]),
    ]


def short_hash(value: str) -> str:
    """The first 12 hex digits of a configuration hash, as the tables show it."""
    return value[:12]


def _configurations_section(candidates: Sequence[ConfigCandidate]) -> list[str]:
    rows = [
        [short_hash(c["system_info_hash"]), c["label"] or "-", *figure_cells(c)] for c in candidates
    ]
    table = md_table(
        ["configuration", "differs in", *FIGURE_HEADERS], rows, [False, False] + [True] * 6
    )
    return ["## Configurations", "", table]


def _groups_section(key: str, groups: Sequence[ConfigGroup]) -> list[str]:
    rows = [[g["label"], *figure_cells(g), str(g["configurations"])] for g in groups]
    table = md_table([key, *FIGURE_HEADERS, "configurations"], rows, [False] + [True] * 7)
    return [f"## Runs by {md_cell(key)}", "", table]


def _best_section(best: Mapping[Objective, BestConfiguration]) -> list[str]:
    rows = []
    snapshots: dict[str, Any] = {}
    for objective, answer in best.items():
        name = OBJECTIVE_NAMES[objective]
        chosen = answer["best"]
        if chosen is None:
            rows.append([name, "none qualifies", _none_reason(answer), "-", "-"])
            continue
        snapshots.setdefault(chosen["system_info_hash"], chosen["config"])
        rows.append(
            [
                name,
                short_hash(chosen["system_info_hash"]),
                chosen["label"] or "-",
                objective_text(chosen, objective),
                str(chosen["runs"]),
            ]
        )
    lines = [
        "## Best configuration",
        "",
        md_table(
            ["objective", "configuration", "differs in", "value", "runs"],
            rows,
            [False, False, False, True, True],
        ),
    ]
    for digest, config in snapshots.items():
        text = json.dumps(config, indent=2, sort_keys=True, default=str, ensure_ascii=False)
        lines += ["", f"Configuration snapshot of {short_hash(digest)}:", "", md_code(text, "json")]
    return lines


def _none_reason(answer: BestConfiguration) -> str:
    reasons: dict[str, int] = {}
    for candidate in answer["excluded"]:
        reason = str(candidate["excluded"])
        reasons[reason] = reasons.get(reason, 0) + 1
    if not reasons:
        return "no configuration"
    return "; ".join(f"{count} with {reason}" for reason, count in reasons.items())


def _direction_section(direction: ScoreDirection | None, note: str) -> list[str]:
    lines = ["## Score direction", ""]
    if direction is None:
        return [*lines, md_cell(note)]
    span = ""
    if direction["first"] is not None and direction["last"] is not None:
        span = (
            f" (started {direction['first']:%Y-%m-%d %H:%M} to {direction['last']:%Y-%m-%d %H:%M}"
            " UTC)"
        )
    lines.append(
        f"{md_cell(direction['metric'])} of the last {direction['runs']} finished run(s){span}: "
        f"**{direction['verdict']}** ({md_cell(direction_reason(direction))})."
    )
    if direction["verdict"] != "not enough runs":
        confidence = f"{direction['confidence'] * 100:g}% interval"
        rows = [
            [f"per {name}", slope_text(slope["slope"]), interval_text(slope)]
            for name, slope in (("run", direction["per_run"]), ("day", direction["per_day"]))
        ]
        lines += ["", md_table(["slope", "value", confidence], rows, [False, True, True])]
    return lines


def configs_report(
    *,
    generated_at: datetime,
    window: str,
    candidates: Sequence[ConfigCandidate],
    best: Mapping[Objective, BestConfiguration],
    direction: ScoreDirection | None,
    direction_note: str = "",
    key: str | None = None,
    groups: Sequence[ConfigGroup] = (),
) -> str:
    """The Markdown report of the configurations of a window.

    Args:
        generated_at: when it was made (its first line says so, in UTC).
        window: the window and filters in words (`last 30 days with branch 'main'`).
        candidates: every configuration (`best_configuration`'s ranking and
            excluded together), for the table by hash and the counts.
        best: the answer of `best_configuration` per objective.
        direction: `get_score_direction`'s answer, or None with `direction_note`
            saying why there is none (scipy missing).
        key: with `groups`, the table is by this key instead of by hash.
        groups: `compare_configurations_by(key)`.
    """
    runs = sum(c["runs"] for c in candidates)
    lines = [
        "# Configurations report",
        "",
        f"Generated at {generated_at:%Y-%m-%d %H:%M:%S} UTC by evalstore. "
        f"Window: {md_cell(window)}. {runs} finished run(s), "
        f"{len(candidates)} configuration(s).",
        "",
    ]
    if not candidates:
        lines += ["No finished run in the window: widen it or drop a filter.", ""]
    if key is not None:
        lines += [*_groups_section(key, groups), ""]
    else:
        lines += [*_configurations_section(candidates), ""]
    lines += [*_best_section(best), ""]
    lines += [*_direction_section(direction, direction_note), ""]
    return "\n".join(lines)

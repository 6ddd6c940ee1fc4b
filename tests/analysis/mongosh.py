"""Render the analysis pipelines as mongosh code, for the README and the test that checks it.

`python tests/analysis/mongosh.py` prints every example block of the README's
"History analysis" section; `test_analysis_mongosh.py` checks that each block
appears verbatim there and runs the same pipelines on stored documents.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, NamedTuple

from bson import ObjectId

from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import (
    child_test_runs_filter,
    config_hash_filter,
    configurations_pipeline,
    experiment_pipeline,
    flaky_tests_pipeline,
    latest_runs_pipeline,
    metric_trend_pipeline,
    old_runs_filter,
    per_test_stats_pipeline,
    run_ids_pipeline,
    run_tests_pipeline,
    runs_by_oid_filter,
    score_trend_pipeline,
    single_test_trend_pipeline,
)

WIDTH = 96
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


class JsVar(NamedTuple):
    """A mongosh variable standing where the service passes a value (`runIds`, `cutoff`)."""

    name: str


def _key(key: str) -> str:
    return key if _IDENTIFIER.fullmatch(key) else json.dumps(key)


def inline(value: Any) -> str:
    """`value` as a one-line mongosh literal."""
    if isinstance(value, JsVar):
        return value.name
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{" + ", ".join(f"{_key(k)}: {inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], JsVar):
            return value[0].name  # `{$in: runIds}`: the variable holds the list
        return "[" + ", ".join(inline(v) for v in value) + "]"
    if isinstance(value, datetime):
        stamp = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f'ISODate("{stamp}Z")'
    if isinstance(value, ObjectId):
        return f'ObjectId("{value}")'
    return json.dumps(value)


def js(value: Any, indent: int = 0, used: int = 0) -> str:
    """`value` as mongosh, broken over lines (two-space indent) where it is too wide."""
    flat = inline(value)
    if used + len(flat) <= WIDTH or flat[:1] not in ("{", "["):
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            head = f"{pad}{_key(key)}: "
            lines.append(head + js(item, indent + 2, len(head)))
        return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    lines = [pad + js(item, indent + 2, len(pad)) for item in value]
    return "[\n" + ",\n".join(lines) + "\n" + " " * indent + "]"


def aggregate(collection: str, pipeline: list[dict[str, Any]]) -> str:
    """`db.<collection>.aggregate([...])`, one stage per line (wrapped when long)."""
    stages = ",\n".join("  " + js(stage, 2, 2) for stage in pipeline)
    return f"db.{collection}.aggregate([\n{stages}\n])"


SINCE = datetime(2025, 3, 1, tzinfo=timezone.utc)
UNTIL = datetime(2025, 4, 1, tzinfo=timezone.utc)
MARCH = RunFilters(since=SINCE, until=UNTIL)


def _filters(**kwargs: Any) -> RunFilters:
    return RunFilters(since=SINCE, until=UNTIL, **kwargs)


def examples() -> dict[str, str]:
    """Every mongosh block of the README section, by name."""
    dev = _filters(environment="dev")
    return {
        "metric trend": aggregate(
            "evaluation_runs",
            metric_trend_pipeline("metrics.wer", dev.match(), "week"),
        ),
        "score trend": aggregate(
            "evaluation_runs", score_trend_pipeline(_filters(tags=("baseline",)).match())
        ),
        "test trend": aggregate(
            "test_runs",
            single_test_trend_pipeline(_filters(test_id="hotel-checkin-fr-en").test_match()),
        ),
        "run ids": "const runIds = "
        + aggregate("evaluation_runs", run_ids_pipeline(dev.run_lookup_match()))
        + ".toArray().map((run) => run._id)",
        "test stats": aggregate(
            "test_runs",
            per_test_stats_pipeline(dev.test_match([JsVar("runIds")])),  # type: ignore[list-item]
        ),
        "flaky tests": aggregate("test_runs", flaky_tests_pipeline(MARCH.test_match(), 5)),
        "configurations": aggregate("evaluation_runs", configurations_pipeline(MARCH.match())),
        "configuration diff": (
            'const [hashA] = db.evaluation_runs.distinct("system_info_hash", '
            + inline(config_hash_filter("3f9a1c"))
            + ")\n"
            + "const a = db.evaluation_runs.findOne("
            + inline({"system_info_hash": JsVar("hashA")})
            + ", {system_information: 1})"
        ),
        "latest runs": "const horizon = new Date(Date.now() + 24 * 3600 * 1000)\n"
        + "const [head, base] = "
        + aggregate(
            "evaluation_runs",
            latest_runs_pipeline("main", not_after=JsVar("horizon")),  # type: ignore[arg-type]
        )
        + ".toArray()",
        "tests of a run": aggregate("test_runs", run_tests_pipeline(JsVar("base._id"))),  # type: ignore[arg-type]
        "experiment": aggregate(
            "evaluation_runs", experiment_pipeline(_filters(tags=("baseline",)).match())
        ),
        "retention": (
            "const cutoff = new Date(Date.now() - 90 * 24 * 3600 * 1000)\n"
            "while (true) {\n"
            "  const batch = db.evaluation_runs.find("
            + inline(old_runs_filter(JsVar("cutoff")))  # type: ignore[arg-type]
            + ", {_id: 1}).limit(500)\n"
            "    .toArray().map((run) => run._id)\n"
            "  if (batch.length === 0) break\n"
            "  db.test_runs.deleteMany("
            + inline(child_test_runs_filter([JsVar("batch")]))  # type: ignore[list-item]
            + ")  // children first\n"
            + "  db.evaluation_runs.deleteMany("
            + inline(runs_by_oid_filter([JsVar("batch")]))  # type: ignore[list-item]
            + ")\n}"
        ),
    }


if __name__ == "__main__":  # pragma: no cover
    for name, block in examples().items():
        print(f"// {name}\n{block}\n")

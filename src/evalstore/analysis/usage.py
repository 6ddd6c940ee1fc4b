"""Usage questions in both engines' words: tokens, calls and cost, grouped.

One query, `usage_totals`, answers them all: the usage records matching a filter,
summed per model (and provider), per day, per run or per test. MongoDB groups
with `$group`; the local store with `GROUP BY` over its columns (the `usage_run`
index covers a run's records by model). The Python after it (`totals_rows`) is
shared: a cost is the sum of the priced records, None (never 0) when none was
priced, and `unpriced` counts the records without a price.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from evalstore.models import Document
from evalstore.storage.engine import Filter, Pipeline, Query, Select, SqlRows
from evalstore.storage.sqlite.documents import object_id

UsageBy = Literal["model", "day", "run", "test"]
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "calls",
)
_GROUP_KEYS: dict[UsageBy, Any] = {
    "model": {"model": "$model", "provider": "$provider"},
    "day": {"day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$recorded_at"}}},
    "run": {"evaluation_run_id": "$evaluation_run_id"},
    "test": {"test_id": "$test_id"},
}
_SQL_KEYS: dict[UsageBy, list[tuple[str, str]]] = {
    "model": [("model", "model"), ("provider", "provider")],
    "day": [("day", "strftime('%Y-%m-%d', recorded_at / 1000, 'unixepoch')")],
    "run": [("evaluation_run_id", "evaluation_run_id")],
    "test": [("test_id", "test_id")],
}


def usage_totals_pipeline(match: Filter, by: UsageBy) -> Pipeline:
    """Sums of tokens, calls and priced cost of the matching usage records, per `by`."""
    sums: dict[str, Any] = {name: {"$sum": f"${name}"} for name in TOKEN_FIELDS}
    return [
        {"$match": dict(match)},
        {
            "$group": {
                "_id": _GROUP_KEYS[by],
                **sums,
                "cost": {"$sum": "$cost"},
                "unpriced": {"$sum": {"$cond": [{"$eq": ["$cost_source", "unpriced"]}, 1, 0]}},
                "records": {"$sum": 1},
            }
        },
    ]


def usage_totals_sql(match: Filter, by: UsageBy) -> SqlRows:
    """`usage_totals_pipeline` in SQL."""
    keys = _SQL_KEYS[by]
    key_sql = ", ".join(f"{expression} AS k_{name}" for name, expression in keys)
    sums = ", ".join(f"sum({name}) AS {name}" for name in TOKEN_FIELDS)
    group = ", ".join(f"k_{name}" for name, _ in keys)

    def rows(select: Select) -> list[Document]:
        found = select(
            f"SELECT {key_sql}, {sums}, sum(cost) AS cost, "
            "sum(cost_source = 'unpriced') AS unpriced, count(*) AS records "
            f"FROM usage WHERE {{where}} GROUP BY {group}",
            match,
        )
        result = []
        for row in found:
            key = {name: row.pop(f"k_{name}") for name, _ in keys}
            if "evaluation_run_id" in key:
                key["evaluation_run_id"] = object_id(key["evaluation_run_id"])
            result.append({"_id": key, **row})
        return result

    return rows


def usage_totals(match: Filter, by: UsageBy) -> Query:
    """Usage summed per model, day, run or test, on either engine."""
    return Query("usage", usage_totals_pipeline(match, by), usage_totals_sql(match, by))


def totals_rows(rows: list[Document]) -> list[Document]:
    """The rows of `usage_totals` as answers: the group's fields, integer sums, the cost.

    Sorted by the group's fields (None first), the same on both engines.
    """
    answers = []
    for row in rows:
        key: Mapping[str, Any] = row["_id"]
        records, unpriced = int(row["records"]), int(row["unpriced"] or 0)
        answer: Document = dict(key)
        for name in TOKEN_FIELDS:
            answer[name] = int(row[name] or 0)
        answer["cost"] = None if unpriced == records else float(row["cost"] or 0.0)
        answer["unpriced"] = unpriced
        answer["records"] = records
        answers.append(answer)
    names = list(rows[0]["_id"]) if rows else []
    return sorted(answers, key=lambda answer: _sort_key(answer, names))


def _sort_key(answer: Document, names: list[str]) -> list[tuple[bool, str]]:
    return [(answer[name] is not None, str(answer[name])) for name in names]


def run_usage_summary(by_model: list[Document], num_passed: int) -> Document:
    """The `usage` field of a finished run, from its usage per model.

    `cost` sums the priced records (None when none was priced); `unpriced` counts
    the others, so a partly priced run says so instead of looking cheaper;
    `cost_per_passed_test` divides the cost by the passed tests (None without either, and
    when a record was unpriced: a partly priced run would look cheaper than it was).
    """
    summary: Document = {name: sum(row[name] for row in by_model) for name in TOKEN_FIELDS}
    costs = [row["cost"] for row in by_model if row["cost"] is not None]
    cost = sum(costs) if costs else None
    summary.update(
        cost=cost,
        unpriced=sum(row["unpriced"] for row in by_model),
        records=sum(row["records"] for row in by_model),
        # only a wholly priced run has a cost per passed test: a partial one would look cheap
        cost_per_passed_test=cost / num_passed
        if cost is not None and num_passed and not any(row["unpriced"] for row in by_model)
        else None,
        by_model=[
            {name: row[name] for name in ("model", "provider", *TOKEN_FIELDS, "cost", "unpriced")}
            for row in by_model
        ],
    )
    return summary


def regroup_by_run_field(
    per_run: list[Document], runs: Mapping[Any, Document], field: str, label: str
) -> list[Document]:
    """Per-run totals summed per a run field (`system_info_hash`, `git_branch`).

    Each row gets `runs` (how many runs used anything), `passed_tests` (their
    passed tests) and `cost_per_passed_test`; a run that is gone counts under None.
    """
    groups: dict[Any, Document] = {}
    for row in per_run:
        run = runs.get(row["evaluation_run_id"], {})
        value = run.get(field)
        group = groups.setdefault(
            value,
            {
                label: value,
                **dict.fromkeys(TOKEN_FIELDS, 0),
                "cost": None,
                "unpriced": 0,
                "records": 0,
                "runs": 0,
                "passed_tests": 0,
                "priced_cost": 0.0,
                "priced_passed": 0,
            },
        )
        for name in (*TOKEN_FIELDS, "unpriced", "records"):
            group[name] += row[name]
        if row["cost"] is not None:
            group["cost"] = (group["cost"] or 0.0) + row["cost"]
        group["runs"] += 1
        passed = run.get("num_passed")
        passed = passed if isinstance(passed, int) else 0
        group["passed_tests"] += passed
        if row["cost"] is not None and not row["unpriced"]:  # wholly priced runs only
            group["priced_cost"] += row["cost"]
            group["priced_passed"] += passed
    answers = []
    for group in groups.values():
        cost, passed = group.pop("priced_cost"), group.pop("priced_passed")
        group["cost_per_passed_test"] = cost / passed if passed else None
        answers.append(group)
    return sorted(answers, key=lambda a: (a[label] is not None, str(a[label])))

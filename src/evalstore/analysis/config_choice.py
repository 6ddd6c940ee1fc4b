"""Which configuration to choose: finished runs grouped by any key, and the best configuration.

Both questions read the finished runs of the window (`completed` and `failed`,
see `FINISHED`) with one plain read of the fields they need, and group them
here, in Python shared by both engines (runs are few: thousands at most). Per
group they compute the same figures (`figures`):

* `successes`: runs with at least one test passed and none failed or errored
  (`num_tests > 0`, `num_passed > 0`, `num_failed == 0`, `num_errors == 0`;
  `num_failed` counts errors too). A run whose tests were all skipped is not
  a success. `success_rate` is successes over runs.
* `mean_score`: over the runs with a score.
* costs: a run's cost is `usage.cost` when it is a number and none of its
  usage was unpriced; runs recorded before usage existed, or with a model
  that had no price, have none and are left out of every cost figure.
  `mean_cost` and `total_cost` are over the `cost_runs` runs with a cost,
  and `cost_per_success` is that total over the successes among those same
  runs (a run without a cost counts in neither), None without such a success.
* `mean_duration_s`: `finished_at - started_at`, in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from typing_extensions import Unpack

from evalstore.analysis.base import History
from evalstore.analysis.configs import config_labels
from evalstore.analysis.filters import FilterKwargs, RunFilters
from evalstore.analysis.pipelines import FINISHED
from evalstore.analysis.types import (
    BestConfiguration,
    ConfigCandidate,
    ConfigFigures,
    ConfigGroup,
    Objective,
)
from evalstore.errors import InvalidDataError
from evalstore.models import Document, check_positive_int, is_finite, to_utc

RUN_FIELDS: tuple[str, ...] = (
    "_id",
    "evaluation_run_id",
    "started_at",
    "finished_at",
    "status",
    "git_branch",
    "git_commit",
    "environment",
    "suite",
    "experiment_tags",
    "system_information",
    "system_info_hash",
    "num_tests",
    "num_passed",
    "num_failed",
    "num_errors",
    "score",
    "metrics",
    "usage",
)
"""The run fields these questions read (the read's projection)."""

RUN_KEYS = frozenset(
    {
        "git_branch",
        "git_commit",
        "environment",
        "suite",
        "status",
        "system_info_hash",
        "experiment_tags",
    }
)
"""Keys that name a run field; every other key is a path inside `system_information`."""

MISSING_LABEL = "(missing)"
OBJECTIVES: tuple[Objective, ...] = ("score", "success", "cost-per-success")
_MISSING: Any = object()


async def finished_runs(history: History, filters: RunFilters, action: str) -> list[Document]:
    """The finished runs (`completed`, `failed`) the filters select, oldest first.

    Ties on `started_at` are broken by run id, so both engines give the same order.
    """
    query = {**filters.match(), "status": {"$in": list(FINISHED)}}
    runs = await history.client.read(
        "evaluation_runs", query, projection=dict.fromkeys(RUN_FIELDS, 1), action=action
    )
    runs.sort(key=lambda run: (run["started_at"], run["evaluation_run_id"]))
    return runs


def _count(value: Any) -> int:
    return value if type(value) is int else 0


def _number(value: Any) -> float | None:
    """`value` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not is_finite(value):
        return None
    return float(value)


def is_success(run: Mapping[str, Any]) -> bool:
    """Whether a run is a success: a test passed, and none failed or errored."""
    return (
        _count(run.get("num_tests")) > 0
        and _count(run.get("num_passed")) > 0
        and _count(run.get("num_failed")) == 0
        and _count(run.get("num_errors")) == 0
    )


def run_cost(run: Mapping[str, Any]) -> float | None:
    """The run's `usage.cost` when it is a number and every usage was priced, else None.

    A run with `unpriced` usage has a cost that leaves some calls out: counted,
    it would make its configuration look cheaper than it is.
    """
    usage = run.get("usage")
    if not isinstance(usage, Mapping) or _count(usage.get("unpriced")) > 0:
        return None
    return _number(usage.get("cost"))


def duration_s(run: Mapping[str, Any]) -> float | None:
    """`finished_at - started_at` in seconds, or None without both."""
    started, finished = run.get("started_at"), run.get("finished_at")
    if not isinstance(started, datetime) or not isinstance(finished, datetime):
        return None
    return (to_utc(finished) - to_utc(started)).total_seconds()


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def figures(runs: Sequence[Mapping[str, Any]]) -> ConfigFigures:
    """Runs, successes, mean score, cost and duration of a group of runs (see the module)."""
    successes = sum(is_success(run) for run in runs)
    scores = [s for run in runs if (s := _number(run.get("score"))) is not None]
    priced = [(c, is_success(run)) for run in runs if (c := run_cost(run)) is not None]
    durations = [d for run in runs if (d := duration_s(run)) is not None]
    total = math.fsum(cost for cost, _ in priced) if priced else None
    priced_successes = sum(success for _, success in priced)
    return {
        "runs": len(runs),
        "successes": successes,
        "success_rate": successes / len(runs) if runs else 0.0,
        "mean_score": _mean(scores),
        "cost_runs": len(priced),
        "mean_cost": _mean([cost for cost, _ in priced]),
        "total_cost": total,
        "cost_per_success": total / priced_successes
        if total is not None and priced_successes
        else None,
        "mean_duration_s": _mean(durations),
    }


def check_group_key(key: object) -> str:
    """A dotted key: non-empty parts, no `$`.

    Raises:
        InvalidDataError: anything else.
    """
    if not isinstance(key, str) or not key or "$" in key or any(not p for p in key.split(".")):
        raise InvalidDataError(
            f"key must be a dotted path such as config.llm.temperature or git_branch, got {key!r}"
        )
    return key


def value_at(run: Mapping[str, Any], key: str) -> Any:
    """The value of a run at a dotted key, or `_MISSING`.

    A key whose first part is a run field (`git_branch`, `environment`, ...) reads
    the run; any other reads `system_information` (so `config.llm.temperature` is
    `system_information.config.llm.temperature`, and a leading
    `system_information.` may be written or not).
    """
    parts = key.split(".")
    value: Any
    if parts[0] in RUN_KEYS:
        value = run
    else:
        value = run.get("system_information")
        if parts[0] == "system_information":
            parts = parts[1:]
    for part in parts:
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def group_key(value: Any) -> tuple[Any, ...]:
    """A hashable, totally ordered stand-in for any stored value.

    Types order as MongoDB sorts them (null, numbers, strings, objects, arrays,
    booleans, dates), then anything else, and a missing value last. Numbers
    compare by value: 5 and 5.0 are one group, and True is not 1.
    """
    if value is _MISSING:
        return (9,)
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, int | float):
        return (1, 1, 0) if value != value else (1, 0, value)  # NaN after every number
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, Mapping):
        return (3, tuple(sorted((str(k), group_key(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return (4, tuple(group_key(v) for v in value))
    if isinstance(value, datetime):
        return (6, to_utc(value))
    return (7, type(value).__name__, repr(value))


def _labels(values: Sequence[Any]) -> list[str]:
    """How each group's value reads: strings as they are, others as Python writes them.

    Where two labels would read the same (the string `"0.7"` and the number 0.7,
    or a string `"(missing)"`), the strings are quoted.
    """

    def plain(value: Any) -> str:
        if value is _MISSING:
            return MISSING_LABEL
        return value if isinstance(value, str) else repr(value)

    labels = [plain(value) for value in values]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [
        repr(value) if isinstance(value, str) and seen[label] > 1 else label
        for value, label in zip(values, labels, strict=True)
    ]


def group_runs(runs: Iterable[Document], key: Callable[[Document], Any]) -> list[list[Document]]:
    """The runs grouped by `key(run)` (compared as `group_key`), in that order."""
    groups: dict[tuple[Any, ...], list[Document]] = {}
    for run in runs:
        groups.setdefault(group_key(key(run)), []).append(run)
    return [groups[k] for k in sorted(groups)]


def compare_groups(runs: Sequence[Document], key: str) -> list[ConfigGroup]:
    """The groups of `runs` by the value at `key`, sorted by that value (missing last)."""
    groups = group_runs(runs, lambda run: value_at(run, key))
    values = [value_at(group[0], key) for group in groups]  # the first run's, for 5 vs 5.0
    return [
        {
            "value": None if value is _MISSING else value,
            "label": label,
            "missing": value is _MISSING,
            "configurations": len({run.get("system_info_hash") for run in group}),
            **figures(group),
        }
        for group, value, label in zip(groups, values, _labels(values), strict=True)
    ]


async def compare_configurations_by(
    history: History, key: str, **filters: Unpack[FilterKwargs]
) -> list[ConfigGroup]:
    """Finished runs grouped by the value at one key of their configuration snapshot.

    Args:
        key: a dotted path inside `system_information` (`config.llm.temperature`,
            `packages.torch`), or a run field: `git_branch`, `git_commit`,
            `environment`, `suite`, `status`, `system_info_hash`, `experiment_tags`.
        **filters: `since`, `until`, `environment`, `branch`, `suite`, `tags`,
            `tags_match`, `window_days` (default 30).

    Returns:
        `[{value, label, missing, configurations, runs, successes, success_rate,
        mean_score, cost_runs, mean_cost, total_cost, cost_per_success,
        mean_duration_s}]` sorted by value (types in MongoDB's order, 5 and 5.0
        one group); the runs that lack the key are one last group, `missing`
        True, labelled `(missing)`. Finished runs are `completed` and `failed`.

    Raises:
        InvalidDataError: the key is not a dotted path.
    """
    check_group_key(key)
    runs = await finished_runs(history, RunFilters.of(**filters), "compare configurations by key")
    return compare_groups(runs, key)


def candidates(runs: Sequence[Document]) -> list[ConfigCandidate]:
    """One candidate per configuration hash, by hash, not yet judged (`excluded` None)."""
    groups = group_runs(runs, lambda run: run.get("system_info_hash"))
    newest = [
        max(group, key=lambda run: (run["started_at"], run["evaluation_run_id"]))
        for group in groups
    ]
    labels = config_labels(
        {str(run.get("system_info_hash")): run.get("system_information") or {} for run in newest}
    )
    found: list[ConfigCandidate] = []
    for group, run in zip(groups, newest, strict=True):
        info = run.get("system_information")
        found.append(
            {
                "system_info_hash": str(run.get("system_info_hash")),
                "label": labels[str(run.get("system_info_hash"))],
                "config": info.get("config") if isinstance(info, Mapping) else None,
                "last_seen": run["started_at"],
                "excluded": None,
                **figures(group),
            }
        )
    return found


def objective_value(candidate: ConfigFigures, objective: Objective) -> float | None:
    """What the objective ranks a configuration by: its mean score, success rate or
    cost per success (lower is better for that one)."""
    if objective == "score":
        return candidate["mean_score"]
    if objective == "success":
        return candidate["success_rate"]
    return candidate["cost_per_success"]


def _exclusion(
    candidate: ConfigCandidate, objective: Objective, max_cost: float | None, min_runs: int
) -> str | None:
    runs = candidate["runs"]
    if runs < min_runs:
        return f"{runs} run(s), fewer than the {min_runs} required"
    mean_cost = candidate["mean_cost"]
    if max_cost is not None and mean_cost is None:
        return "no run with a cost, so it cannot be held to the cost cap"
    if max_cost is not None and mean_cost is not None and mean_cost > max_cost:
        return f"mean cost {mean_cost:g} above the cap of {max_cost:g}"
    if objective_value(candidate, objective) is None:
        if objective == "score":
            return "no run with a score"
        if candidate["cost_runs"] == 0:
            return "no run with a cost"
        return "no success among the runs with a cost"
    return None


def _check_max_cost(max_cost: object) -> float | None:
    if max_cost is None:
        return None
    if isinstance(max_cost, bool) or not isinstance(max_cost, int | float):
        raise InvalidDataError(f"max_cost must be a number, got {max_cost!r}")
    if not is_finite(max_cost) or max_cost < 0:
        raise InvalidDataError(f"max_cost must be a finite number of at least 0, got {max_cost!r}")
    return float(max_cost)


def choose(
    runs: Sequence[Document],
    objective: Objective = "score",
    *,
    max_cost: float | None = None,
    min_runs: int = 1,
) -> BestConfiguration:
    """`best_configuration` over runs already read (see there)."""
    if objective not in OBJECTIVES:
        raise InvalidDataError(
            f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}"
        )
    cap = _check_max_cost(max_cost)
    check_positive_int(min_runs, "min_runs")
    ranking: list[ConfigCandidate] = []
    excluded: list[ConfigCandidate] = []
    for candidate in candidates(runs):
        candidate["excluded"] = _exclusion(candidate, objective, cap, min_runs)
        (ranking if candidate["excluded"] is None else excluded).append(candidate)
    sign = 1 if objective == "cost-per-success" else -1  # lower cost per success is better
    ranking.sort(
        key=lambda c: (
            sign * (objective_value(c, objective) or 0.0),
            -c["runs"],
            c["system_info_hash"],
        )
    )
    return {
        "objective": objective,
        "max_cost": cap,
        "min_runs": min_runs,
        "best": ranking[0] if ranking else None,
        "ranking": ranking,
        "excluded": excluded,
    }


async def best_configuration(
    history: History,
    objective: Objective = "score",
    *,
    max_cost: float | None = None,
    min_runs: int = 1,
    **filters: Unpack[FilterKwargs],
) -> BestConfiguration:
    """The best configuration (`system_info_hash`) of the finished runs, for one objective.

    Args:
        objective: `score` (highest mean score), `success` (highest success
            rate) or `cost-per-success` (lowest).
        max_cost: only configurations whose mean cost per run is at most this;
            with a cap, a configuration without any run with a cost is excluded
            (its cost is unknown, not zero).
        min_runs: only configurations with at least this many finished runs.
        **filters: `since`, `until`, `environment`, `branch`, `suite`, `tags`,
            `tags_match`, `window_days` (default 30).

    Returns:
        `{objective, max_cost, min_runs, best, ranking, excluded}`: `ranking`
        holds the configurations that qualify, best first (ties: more runs,
        then the hash), each with the figures of `compare_configurations_by`,
        its `label`, its snapshot `config` (`system_information.config`) and
        `last_seen`; `best` is its first (None when none qualifies); `excluded`
        the others by hash, each with why (`excluded`).

    Raises:
        InvalidDataError: an unknown objective, a negative or non-finite
            `max_cost`, or a `min_runs` below 1.
    """
    if objective not in OBJECTIVES:  # before reading anything
        raise InvalidDataError(
            f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}"
        )
    _check_max_cost(max_cost)
    check_positive_int(min_runs, "min_runs")
    runs = await finished_runs(history, RunFilters.of(**filters), "choose the best configuration")
    return choose(runs, objective, max_cost=max_cost, min_runs=min_runs)

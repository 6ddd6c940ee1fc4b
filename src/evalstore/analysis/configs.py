"""Configuration comparison: runs grouped by `system_info_hash`, and the diff of two snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from typing_extensions import Unpack

from evalstore.analysis import queries
from evalstore.analysis.base import History
from evalstore.analysis.filters import FilterKwargs, RunFilters
from evalstore.analysis.pipelines import config_hash_filter
from evalstore.analysis.types import ConfigDifference, ConfigSummary
from evalstore.errors import InvalidDataError, RunNotFoundError
from evalstore.models import Document

_MISSING: Any = object()


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves of nested mappings by dotted path; lists and empty mappings are leaves."""
    leaves: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, Mapping) and item:
            leaves.update(flatten(item, path))
        else:
            leaves[path] = item
    return leaves


LABEL_KEYS = 3
"""How many differing keys a configuration's label shows before `+N more`."""


def config_labels(snapshots: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """A short readable label per configuration hash: its values of the keys that differ.

    `config.model=gpt-4o, config.temperature=0.2` says more than a hash. Only
    keys whose value differs among the given snapshots are shown (a key one
    snapshot lacks shows as `-`), sorted, at most `LABEL_KEYS` of them. With a
    single configuration there is nothing to tell apart: its label is empty.
    """
    flat = {name: flatten(snapshot) for name, snapshot in snapshots.items()}
    paths = sorted({path for leaves in flat.values() for path in leaves})
    differing = [
        path
        for path in paths
        if len({_label_value(leaves.get(path, _MISSING)) for leaves in flat.values()}) > 1
    ]
    labels = {}
    for name, leaves in flat.items():
        parts = [f"{path}={_label_value(leaves.get(path, _MISSING))}" for path in differing]
        more = len(parts) - LABEL_KEYS
        labels[name] = ", ".join(parts[:LABEL_KEYS]) + (f", +{more} more" if more > 0 else "")
    return labels


def _label_value(value: Any) -> str:
    if value is _MISSING:
        return "-"
    return value if isinstance(value, str) else repr(value)


def diff_snapshots(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[ConfigDifference]:
    """The dotted paths whose values differ between two snapshots, sorted by path.

    Mappings on both sides are compared key by key, so a key added inside a
    mapping that was empty is one `added` row at its own path. A whole mapping
    added or removed is one row per leaf; a mapping on one side and another
    value on the other is one `changed` row at that path.
    """
    differences: list[ConfigDifference] = []
    _diff(a, b, "", differences)
    return sorted(differences, key=lambda row: row["path"])


def _diff(
    a: Mapping[str, Any], b: Mapping[str, Any], prefix: str, out: list[ConfigDifference]
) -> None:
    for key in a.keys() | b.keys():
        path = f"{prefix}.{key}" if prefix else str(key)
        old, new = a.get(key, _MISSING), b.get(key, _MISSING)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            _diff(old, new, path, out)
        elif old is _MISSING:
            leaves = flatten(new, path) if isinstance(new, Mapping) and new else {path: new}
            out += [{"path": p, "a": None, "b": v, "change": "added"} for p, v in leaves.items()]
        elif new is _MISSING:
            leaves = flatten(old, path) if isinstance(old, Mapping) and old else {path: old}
            out += [{"path": p, "a": v, "b": None, "change": "removed"} for p, v in leaves.items()]
        elif old != new or type(old) is not type(new):
            out.append({"path": path, "a": old, "b": new, "change": "changed"})


async def compare_configurations(
    history: History, **filters: Unpack[FilterKwargs]
) -> list[ConfigSummary]:
    """Finished runs in the window grouped by configuration, most recently seen first.

    Args:
        **filters: `since`, `until`, `environment`, `branch`, `tags`,
            `tags_match`, `window_days` (default 30).

    Returns:
        `[{system_info_hash, label, runs, mean_score, metrics, first_seen, last_seen}]`,
        where `metrics` maps each run metric to its mean over the runs that
        measured it, and `label` names what sets the configuration apart from
        the others listed (see `config_labels`).
    """
    run_filters = RunFilters.of(**filters)
    rows = await history.run_rows(run_filters, queries.configurations, "compare configurations")
    facets = rows[0] if rows else {"runs": [], "metrics": []}
    metrics: dict[str, dict[str, float]] = {}
    for row in facets["metrics"]:
        metrics.setdefault(row["_id"]["hash"], {})[row["_id"]["metric"]] = row["mean"]
    labels = config_labels({row["_id"]: row.get("snapshot") or {} for row in facets["runs"]})
    summaries: list[ConfigSummary] = [
        {
            "system_info_hash": row["_id"],
            "label": labels[row["_id"]],
            "runs": row["runs"],
            "mean_score": row.get("mean_score"),
            "metrics": metrics.get(row["_id"], {}),
            "first_seen": row["first_seen"],
            "last_seen": row["last_seen"],
        }
        for row in facets["runs"]
    ]
    summaries.sort(key=lambda s: s["system_info_hash"])
    summaries.sort(key=lambda s: s["last_seen"], reverse=True)
    return summaries


async def diff_configurations(history: History, hash_a: str, hash_b: str) -> list[ConfigDifference]:
    """Which keys of `system_information` differ between two configurations.

    Args:
        hash_a: a `system_info_hash`, or a unique prefix of one (as tables show).
        hash_b: the other one.

    Returns:
        `[{path, a, b, change}]` sorted by dotted path; `change` is
        `changed`, `added` (only in b) or `removed` (only in a).

    Raises:
        RunNotFoundError: no evaluation run has that configuration.
        InvalidDataError: a prefix is not hex, or matches several configurations.
    """
    snapshot_a = await _snapshot(history, hash_a)
    snapshot_b = await _snapshot(history, hash_b)
    return diff_snapshots(snapshot_a, snapshot_b)


async def _snapshot(history: History, hash_or_prefix: str) -> Document:
    query = config_hash_filter(hash_or_prefix)
    action = "read a configuration"
    hashes = await history.client.distinct_values(
        "evaluation_runs", "system_info_hash", query, action=action
    )
    if len(hashes) > 1:
        raise InvalidDataError(
            f"configuration prefix {hash_or_prefix!r} matches {len(hashes)} "
            "configurations: give more digits"
        )
    found: Document | None = None
    if hashes:
        found = await history.client.read_one(
            "evaluation_runs",
            {"system_info_hash": hashes[0]},
            projection={"system_information": 1},
            action=action,
        )
    if found is None:
        raise RunNotFoundError(
            f"no evaluation run has configuration {hash_or_prefix!r}: "
            "list them with `evalstore configs list`"
        )
    snapshot: Document = found.get("system_information") or {}
    return snapshot

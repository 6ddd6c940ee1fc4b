"""Configurations (list, diff, compare by a key) and experiments (two tag sets)."""

from __future__ import annotations

from typing import Any, cast

from evalstore.analysis.filters import TagsMatch
from evalstore.errors import InvalidDataError
from evalstore.service import MetricsStorageService
from evalstore.web import charts
from evalstore.web.links import Links
from evalstore.web.params import Params, shown_filters


async def configs_view(
    service: MetricsStorageService, params: Params, links: Links
) -> dict[str, Any]:
    """Every configuration of the window with its runs and mean score; with `a` and `b`
    (two hashes or unique prefixes of them) what differs; with `by` the runs grouped by
    the value at one configuration key."""
    filters = params.filters()
    summaries = await service.compare_configurations(**filters)
    a, b = params.exact("a"), params.exact("b")
    by = params.text("by")
    diff: dict[str, Any] | None = None
    if a or b:
        if not (a and b):
            raise InvalidDataError("a configuration diff needs both a= and b= (two hashes)")
        diff = {
            "a": _full_hash(a, summaries),
            "b": _full_hash(b, summaries),
        }
        diff["differences"] = await service.diff_configurations(diff["a"], diff["b"])
    groups = await service.compare_configurations_by(by, **filters) if by else None
    made = {}
    if summaries:
        made["scores"] = charts.bar_chart(
            [row["label"] or row["system_info_hash"][:12] for row in summaries],
            [row["mean_score"] for row in summaries],
            title="mean score per configuration",
            y_title="score",
        )
    return {
        "filters": shown_filters(filters),
        "configurations": summaries,
        "diff": diff,
        "by": by,
        "groups": groups,
        "charts": made,
    }


def _full_hash(given: str, summaries: list[Any]) -> str:
    """A configuration hash from a unique prefix of one listed in the window."""
    found = {s["system_info_hash"] for s in summaries if s["system_info_hash"].startswith(given)}
    if len(found) == 1:
        return str(found.pop())
    if not found:
        return given
    raise InvalidDataError(f"{given!r} is the start of {len(found)} configuration hashes")


async def experiments_view(
    service: MetricsStorageService, params: Params, links: Links
) -> dict[str, Any]:
    """The mean and spread of each metric in the runs of tags `a` against tags `b`."""
    window = params.window()
    tags_a, tags_b = params.exacts("a"), params.exacts("b")
    known = (await service.get_run_choices())["tag"]
    metrics = None
    if tags_a or tags_b:
        if not (tags_a and tags_b):
            raise InvalidDataError("an experiment comparison needs tags for both a= and b=")
        metrics = await service.compare_experiments(
            tags_a,
            tags_b,
            tags_match=cast(TagsMatch, params.choice("match", ("any", "all"), "any")),
            **window,
        )
    return {
        "filters": shown_filters(window),
        "a": tags_a,
        "b": tags_b,
        "tags": known,
        "metrics": metrics,
    }

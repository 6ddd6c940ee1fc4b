"""Two runs side by side: the configuration keys that differ, per-test changes, regressions."""

from __future__ import annotations

import importlib.util
from typing import Any

from evalstore.errors import InvalidDataError
from evalstore.service import MetricsStorageService
from evalstore.web.links import Links
from evalstore.web.params import Params
from evalstore.web.views.runs import run_row

CHANGES = ("changed", "all")


def stats_available() -> bool:
    """True when scipy (the `evalstore[stats]` extra) is installed."""
    return importlib.util.find_spec("scipy") is not None


async def compare_view(
    service: MetricsStorageService, params: Params, links: Links
) -> dict[str, Any]:
    """`base` and `head` (or two `run` values, the older being the base) compared test by test.

    `tolerance` is the score drop that counts as a regression; `show=all` lists every
    test and every configuration key, not only what changed; `stats=1` adds the paired
    statistics (bootstrap intervals, Wilcoxon and McNemar p-values; about a second on
    1,000 tests, so asked for, not computed on every visit).
    """
    picked = params.exacts("run")
    base, head = params.exact("base"), params.exact("head")
    if base is None and head is None and len(picked) == 2:
        chosen = [await service.select_evaluation_run(run) for run in picked]
        older, newer = sorted(chosen, key=lambda run: run["started_at"])
        base, head = str(older["evaluation_run_id"]), str(newer["evaluation_run_id"])
    if base is None or head is None:
        raise InvalidDataError(
            "compare needs two runs: tick two runs on the runs page, or pass base= and head= "
            "(a run id, a unique prefix, latest or previous)"
        )
    tolerance = params.number("tolerance") or 0.0
    show = params.choice("show", CHANGES, "changed")
    wanted = params.flag("stats")
    with_stats = wanted and stats_available()
    comparison = await service.compare_runs(base, head, tolerance=tolerance, stats=with_stats)
    base_run = await service.select_evaluation_run(comparison["base"]["evaluation_run_id"])
    head_run = await service.select_evaluation_run(comparison["head"]["evaluation_run_id"])
    base_config = (base_run.get("system_information") or {}).get("config") or {}
    head_config = (head_run.get("system_information") or {}).get("config") or {}
    if base_run.get("system_info_hash") == head_run.get("system_info_hash"):
        differences: list[dict[str, Any]] = []
    else:
        differences = [
            dict(d)
            for d in await service.diff_configurations(
                str(base_run["system_info_hash"]), str(head_run["system_info_hash"])
            )
        ]
    if show == "all":
        shown = {d["path"] for d in differences}
        differences += [
            {"path": f"config.{key}", "a": value, "b": head_config.get(key), "change": "same"}
            for key, value in sorted(base_config.items())
            if not any(
                path == f"config.{key}" or path.startswith(f"config.{key}.") for path in shown
            )
        ]
    tests = [
        {**test, "link": links.test(test["test_id"])}
        for test in comparison["tests"]
        if show == "all" or test["change"] != "same" or test["delta"] or test["slower"]
    ]
    return {
        "base": run_row(base_run, links),
        "head": run_row(head_run, links),
        "show": show,
        "tolerance": tolerance,
        "configuration": differences,
        "comparison": {key: value for key, value in comparison.items() if key != "tests"},
        "tests": tests,
        "unchanged": len(comparison["tests"]) - len(tests),
        "stats": with_stats,
        "statistics_note": None
        if with_stats or not wanted
        else "install evalstore[stats] (scipy) for confidence intervals and p-values",
    }

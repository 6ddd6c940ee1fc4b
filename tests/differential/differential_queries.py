"""The questions the differential tests ask both engines, with the argument variants.

Each `ask_*` function puts every public query of one kind to an `EnginePair`,
over a generated `History`, with arguments drawn from that history: its run
ids, test ids, tags, environments, branches, suites and configuration hashes,
and windows whose edges fall exactly on stored times. Every window is explicit
(`since`, or `until` with `window_days`), so no answer depends on the clock.
"""

from __future__ import annotations

import random
from datetime import timedelta, timezone
from itertools import pairwise
from typing import Any

from bson import ObjectId
from differential_engines import EnginePair, Outcome
from differential_history import DAY, METRIC_NAMES, MS, WEEK, History

from evalstore.analysis.stats import STATS_SORT_KEYS
from evalstore.ids import point_id

UNKNOWN_OID = ObjectId("ffffffffffffffffffffffff")
IST = timezone(timedelta(hours=5, minutes=30))


def tag_pairs(tags: list[str]) -> list[tuple[str, str]]:
    """Neighbouring tags, and the first with the last (not every pair: that grows fast)."""
    pairs = list(pairwise(tags))
    return [*pairs, (tags[0], tags[-1])] if len(tags) > 2 else pairs


def everything(history: History) -> dict[str, Any]:
    """A window holding the whole history (no end)."""
    return {"since": history.monday - DAY}


def window_variants(history: History) -> list[dict[str, Any]]:
    """Time windows (and environment and branch, which every query takes) to ask about."""
    monday, starts = history.monday, history.started_times
    variants: list[dict[str, Any]] = [
        everything(history),
        {"since": monday - WEEK, "until": history.end + WEEK},
        # one ISO week: Monday 00:00:00.000 in, the next Monday 00:00:00.000 out
        {"since": monday + WEEK, "until": monday + 2 * WEEK},
        # edges on stored start times: `since` inclusive, `until` exclusive (ties on both)
        {"since": starts[1], "until": starts[-2]},
        # no `since`: the `window_days` before `until`, whole or fractional
        {"until": monday + 3 * WEEK, "window_days": 7},
        {"until": monday + 10 * DAY + timedelta(hours=12), "window_days": 2.5},
        # a naive datetime is UTC; another offset is converted
        {"since": (monday + 3 * DAY).replace(tzinfo=None), "until": history.end},
        {"since": (monday + 9 * DAY).astimezone(IST), "until": (monday + 20 * DAY).astimezone(IST)},
        {**everything(history), "branch": "no-such-branch"},
        {"since": history.end + WEEK},
        {"since": history.end, "until": monday},  # since after until: an error on both
    ]
    for start in starts:
        if start.hour == 23 and start.minute == 59 and start.microsecond == 999000:
            # the window opens one millisecond after a run started: its tests finish inside
            variants.append({"since": start + MS, "until": start + 2 * DAY})
            break
    for environment in history.values("environment"):
        variants.append({**everything(history), "environment": environment})
    for branch in history.values("git_branch"):
        if branch is not None:
            variants.append({**everything(history), "branch": branch})
    for suite in history.values("suite"):
        if suite is not None:
            variants.append({**everything(history), "suite": suite})
    variants.append(
        {"since": monday + WEEK, "until": history.end, "environment": "dev", "branch": "main"}
    )
    return variants


def filter_variants(history: History) -> list[dict[str, Any]]:
    """`window_variants`, windows whose edges are test-run finish times, and tag filters."""
    tags = history.tags
    variants = window_variants(history)
    finishes = history.finished_times
    if len(finishes) > 10:
        variants.append({"since": finishes[3], "until": finishes[-4]})
        variants.append({"since": finishes[5], "until": finishes[-6], "environment": "dev"})
    for tag in tags:
        variants.append({**everything(history), "tags": [tag]})
    if len(tags) >= 2:
        variants.append({**everything(history), "tags": tags[:2], "tags_match": "all"})
        variants.append({**everything(history), "tags": tags[-2:], "tags_match": "any"})
        variants.append({"since": history.monday + WEEK, "environment": "dev", "tags": tags[:2]})
    variants.append({**everything(history), "tags": "baseline"})  # a bare string is one tag
    variants.append({**everything(history), "tags": ["no-such-tag"], "tags_match": "all"})
    variants.append({**everything(history), "tags": ["gpu", "gpu"], "tags_match": "all"})
    variants.append({**everything(history), "tags": []})
    return variants


async def ask_runs(pair: EnginePair) -> None:
    """Runs by id, ObjectId, hex, prefix, `latest`/`previous`; recent runs; tags; test history."""
    history = pair.history
    for run in history.runs:
        for name in (run.run_id, run.oid, str(run.oid)):
            await pair.same("get_evaluation_run", name)
        await pair.same("select_evaluation_run", run.run_id)
        await pair.same("get_test_runs", run.run_id)
    stamps = sorted({run.run_id[:20] for run in history.runs})  # 2025-03-04T10-30-00Z
    prefixes = {stamp[:length] for stamp in stamps for length in (4, 10, 13, 20)}
    prefixes |= {run.run_id[:-1] for run in history.runs}
    # what a regular expression, LIKE or GLOB would read as a pattern, and another case
    prefixes |= {"2025_", "2025%", "%", "2025.0", "2025*", "2025-?", "[2]025", "^2025", ".*"}
    prefixes |= {stamp[:13].lower() for stamp in stamps}
    prefixes |= {run.run_id.replace("_", "-") for run in history.runs if "_" in run.run_id}
    for prefix in sorted(prefixes):
        await pair.same("select_evaluation_run", prefix)
    for name in ("latest", "previous", UNKNOWN_OID, str(UNKNOWN_OID), "no-such-run", ""):
        await pair.same("get_evaluation_run", name)
        await pair.same("select_evaluation_run", name)
        await pair.same("get_test_runs", name)
    for suite in (None, *history.values("suite"), "no-such-suite"):
        for limit in (1, 3, 100):
            await pair.same("get_recent_evaluation_runs", limit, suite=suite)
    for test_id in [*history.test_ids, "never-ran"]:
        for limit in (1, 4, 100):
            await pair.same("get_test_history", test_id, limit)
    tags = history.tags
    tag_sets = [*([tag] for tag in tags), *(list(p) for p in tag_pairs(tags))]
    for tag_set in [*tag_sets, "gpu", ["gpu", "gpu"], ["baseline", "gpu", "baseline"], []]:
        for match in ("any", "all"):
            await pair.same("get_evaluation_runs_by_tags", tag_set, match)
            await pair.same("get_evaluation_runs_by_tags", tag_set, match, 2)
        for suite in history.values("suite"):
            if suite is not None:
                await pair.same("get_evaluation_runs_by_tags", tag_set, "any", suite=suite)
    await pair.same("get_evaluation_runs_by_tags", ["no-such-tag"])


async def ask_run_lists(pair: EnginePair) -> None:
    """The runs page: its list (runs in a window, by filters and status, newest first,
    limited) and its filter menus."""
    history = pair.history
    whole = everything(history)
    for filters in filter_variants(history):
        await pair.same("find_evaluation_runs", **filters)
        await pair.same("find_evaluation_runs", limit=2, **filters)
        await pair.same("find_evaluation_runs", status=["completed", "failed"], **filters)
    statuses: list[list[str]] = [
        [],
        ["running"],
        ["completed"],
        ["failed"],
        ["interrupted"],
        ["failed", "interrupted"],
        ["completed", "completed"],
        ["bogus"],  # an error on both
        ["running", "bogus"],
    ]
    for status in statuses:
        for limit in (1, 3, 1000):
            await pair.same("find_evaluation_runs", status=status, limit=limit, **whole)
    # ties on started_at are broken by evaluation_run_id, newest first, on both
    for start in history.started_times[:: max(1, len(history.started_times) // 4)]:
        await pair.same("find_evaluation_runs", since=start, limit=3)
        await pair.same("find_evaluation_runs", until=start, window_days=3, limit=3)
    for limit in (0, -1, 1.5, True):  # not a positive whole number: an error on both
        await pair.same("find_evaluation_runs", limit=limit, **whole)
    # the filter menus: branches, environments, suites and tags of the newest runs
    for limit in (1, 2, 5, 1000, 0):
        await pair.same("get_run_choices", limit=limit)


async def ask_trends(pair: EnginePair) -> None:
    """Metric trends (score and run metrics, by day and week), score trend, recorded metrics."""
    history = pair.history
    for filters in filter_variants(history):
        for metric in ("score", "wer", "completeness"):
            for by in ("day", "week"):
                await pair.same("get_metric_trend", metric, by, **filters)
        await pair.same("get_score_trend", **filters)
        await pair.same("get_recorded_metrics", **filters)
    for metric in (*METRIC_NAMES, "never-recorded"):
        for by in ("day", "week"):
            await pair.same("get_metric_trend", metric, by, since=history.monday - WEEK)


async def ask_test_trends(pair: EnginePair) -> None:
    """One test's score and outcome over time, under every filter."""
    history = pair.history
    variants = filter_variants(history)
    for test_id in [*history.test_ids, "never-ran"]:
        await pair.same("get_test_trend", test_id, **everything(history))
    for index, filters in enumerate(variants):
        test_id = history.test_ids[index % len(history.test_ids)]
        await pair.same("get_test_trend", test_id, **filters)


async def ask_stats(pair: EnginePair) -> None:
    """Per-test statistics: every sort key both ways, one test, every filter."""
    history = pair.history
    for sort in STATS_SORT_KEYS:
        for descending in (False, True):
            await pair.same(
                "get_test_stats", sort=sort, descending=descending, **everything(history)
            )
    for test_id in [*history.test_ids, "never-ran"]:
        await pair.same("get_test_stats", test_id=test_id, **everything(history))
    for index, filters in enumerate(filter_variants(history)):
        sort = STATS_SORT_KEYS[index % len(STATS_SORT_KEYS)]
        await pair.same("get_test_stats", sort=sort, descending=index % 2 == 1, **filters)


async def ask_flaky(pair: EnginePair) -> None:
    """Flaky tests and lasting outcome changes, with several `min_runs` and strip lengths.

    Both come from the same rows; outcome changes are asked under fewer filters.
    """
    history = pair.history
    for method in ("get_flaky_tests", "get_outcome_changes", "get_test_outcomes"):
        for min_runs in (1, 2, 3, 5, 50):
            await pair.same(method, min_runs, **everything(history))
        for strip_length in (1, 3):
            await pair.same(method, 2, strip_length=strip_length, **everything(history))
        for test_id in history.test_ids:
            await pair.same(method, 2, test_id=test_id, **everything(history))
    for index, filters in enumerate(filter_variants(history)):
        await pair.same("get_flaky_tests", 2, **filters)
        if index % 3 == 0:
            await pair.same("get_outcome_changes", 2, **filters)


async def ask_durations(pair: EnginePair) -> None:
    """The slowest tests (every limit, every filter) and each test's duration over time."""
    history = pair.history
    for limit in (1, 2, 3, 100, None, 0, -1, True):  # 0, -1 and True: an error on both
        await pair.same("get_slowest_tests", limit=limit, **everything(history))
    for filters in filter_variants(history):
        await pair.same("get_slowest_tests", limit=None, **filters)
    for test_id in [*history.test_ids, "never-ran"]:
        await pair.same("get_test_trend", test_id, value="duration", **everything(history))
        for by in ("day", "week"):
            await pair.same("get_test_duration_trend", test_id, by, **everything(history))
    for index, filters in enumerate(filter_variants(history)):
        test_id = history.test_ids[index % len(history.test_ids)]
        await pair.same("get_test_trend", test_id, value="duration", **filters)
        await pair.same("get_test_duration_trend", test_id, ("day", "week")[index % 2], **filters)
    await pair.same("get_test_trend", history.test_ids[0], value="speed", **everything(history))
    await pair.same("get_test_duration_trend", history.test_ids[0], "run", **everything(history))


async def ask_after_prune(pair: EnginePair) -> None:
    """What remains after a prune: runs, configurations, comparisons, experiments, and
    the trends, statistics and flaky tests of the whole history."""
    await ask_runs(pair)
    await ask_configurations(pair)
    await ask_comparisons(pair)
    await ask_experiments(pair)
    history = pair.history
    for filters in (everything(history), window_variants(history)[2]):
        for metric in ("score", "wer"):
            await pair.same("get_metric_trend", metric, "week", **filters)
        await pair.same("get_score_trend", **filters)
        await pair.same("get_recorded_metrics", **filters)
        await pair.same("get_test_stats", sort="mean_score", **filters)
        await pair.same("get_flaky_tests", 2, **filters)
        await pair.same("get_outcome_changes", 2, **filters)
        await pair.same("get_slowest_tests", limit=None, **filters)
    for test_id in history.test_ids:
        await pair.same("get_test_trend", test_id, **everything(history))
        await pair.same("get_test_trend", test_id, value="duration", **everything(history))


async def ask_configurations(pair: EnginePair) -> None:
    """Configurations compared under every filter, and diffs by full hash and by prefix."""
    history = pair.history
    for filters in filter_variants(history):
        await pair.same("compare_configurations", **filters)
    hashes = history.hashes
    for a in hashes:
        for b in hashes:
            await pair.same("diff_configurations", a, b)
        await pair.same("diff_configurations", a[:12], a.upper()[:20])
    first = hashes[0]
    for other in ("0" * 64, first[:1], " " + first[:8] + " ", "not-hex", ""):
        await pair.same("diff_configurations", other, first)


async def ask_comparisons(pair: EnginePair) -> None:
    """Run comparisons: `previous`/`latest` per branch, environment and suite; runs by id."""
    history = pair.history
    wheres: list[dict[str, Any]] = [{}]
    wheres += [{"branch": b} for b in history.values("git_branch") if b is not None]
    wheres += [{"environment": e} for e in history.values("environment")]
    wheres += [{"suite": s} for s in history.values("suite") if s is not None]
    wheres += [{"branch": "main", "environment": "dev"}, {"branch": "no-such-branch"}]
    for where in wheres:
        await pair.same("compare_runs", "previous", "latest", **where)
    for tolerance in (1.0, 2.5, 100):
        await pair.same("compare_runs", "previous", "latest", tolerance=tolerance)
    runs = sorted(history.runs, key=lambda run: (run.started_at, run.run_id))
    for older, newer in pairwise(runs):
        await pair.same("compare_runs", older.run_id, newer.run_id)
    await pair.same("compare_runs", runs[0].oid, runs[-1].oid, tolerance=5)
    # --stats: metric scores and durations of both runs' tests, paired (issue 12.5/12.6).
    await pair.same("compare_runs", runs[0].oid, runs[-1].oid, stats=True, duration_tolerance=10)
    await pair.same("compare_runs", "previous", "latest", stats=True, tolerance=1)
    await pair.same("compare_runs", runs[-1].run_id, "latest")
    await pair.same("compare_runs", "latest", runs[0].run_id[:-2])
    await pair.same("compare_runs", "no-such-run", "latest")


async def ask_experiments(pair: EnginePair) -> None:
    """Experiments: every pair of tags and of tag sets, any and all, over a few windows."""
    history = pair.history
    tags = history.tags
    sides: list[tuple[Any, Any]] = tag_pairs(tags)
    if len(tags) >= 3:
        sides += [(tags[:2], tags[2:]), (tags[1:], [tags[0]])]
    sides += [("baseline", ["no-such-tag"]), ([], ["baseline"])]
    windows = window_variants(history)
    for index, (a, b) in enumerate(sides):
        for tags_match in ("any", "all"):
            await pair.same(
                "compare_experiments", a, b, tags_match=tags_match, **everything(history)
            )
        await pair.same("compare_experiments", a, b, **windows[index % len(windows)])


async def ask_monitors(pair: EnginePair) -> None:
    """What monitors read (comparable runs, test runs of runs) and the alerts they keep."""
    history = pair.history
    for run in history.runs:
        doc = run.document
        for fields in (
            ("suite", "git_branch", "environment", "system_info_hash"),
            ("git_branch", "environment"),
            (),
        ):
            match = {name: doc.get(name) for name in fields}
            for limit in (1, 5):
                await pair.same("get_comparable_runs", doc, match, limit)
        await pair.same("get_test_runs_of_runs", [run.oid], None)
        await pair.same("get_test_runs_of_runs", [run.oid], history.test_ids[:2])
    await pair.same("get_test_runs_of_runs", [run.oid for run in history.runs[:3]], None)
    await pair.same("get_test_runs_of_runs", [], None)
    levels = ("warning", "error", "critical", "info")
    for index, run in enumerate(history.runs[:8]):
        alert = {
            "_id": ObjectId(f"{index + 1:024x}"),
            "key": f"rule|{index % 3}|",
            "rule": "rule",
            "level": levels[index % 4],
            "state": ("firing", "resolved")[index % 2],
            "acknowledged": False,
            "evaluation_run_id": run.oid,
            "test_id": None,
            "value": float(index),
            "fired_at": history.monday + index * DAY,
            "message": f"alert {index}",
        }
        await pair.same("save_alert", alert)
    for key in ("rule|0|", "rule|1|", "rule|2|", "no-such-key"):
        await pair.same("get_latest_alert", key)
    for level in ((), ("error",), ("warning", "critical")):
        for state in (None, "firing", "resolved"):
            await pair.same("get_alerts", level=level, state=state)
    await pair.same("get_alerts", since=history.monday + 3 * DAY, limit=0)
    await pair.same("get_alerts", evaluation_run_oid=history.runs[0].oid)
    for alert_id in ("nope", str(UNKNOWN_OID)):  # both refused, in the same words
        await pair.same("acknowledge_alert", alert_id)


CONFIG_KEYS = (
    "config.model",
    "config.beam_size",  # 5 and 5.0 in some histories: one group, the first run's value shown
    "config.asr.vad",
    "config.asr",
    "config.cache",
    "config.languages",
    "platform.gpu",  # None in one configuration, missing in the others
    "system_information.python",
    "git_branch",
    "environment",
    "suite",
    "status",
    "system_info_hash",
    "experiment_tags",
    "config.no-such-key",
    "config..model",  # refused on both
)


async def _set_usage(pair: EnginePair) -> None:
    """The same `usage` on both engines' runs: none, a cost, no price, a partly priced cost."""
    for index, run in enumerate(pair.history.runs):
        usage: dict[str, Any] | None = (
            None,
            {"cost": 0.125 * index, "unpriced": 0},
            {"cost": None, "unpriced": 2},
            {"cost": 0.5 + index, "unpriced": index % 2},
        )[index % 4]
        if usage is None:
            continue
        for engine in pair.engines:
            await engine.client.update_run(
                {"_id": run.oid}, {"usage": usage}, action="set usage for the differential test"
            )


async def ask_configs_by(pair: EnginePair) -> None:
    """Configurations compared by any key, the best one per objective, and the score
    direction: first on runs without usage, then with costs on some runs."""
    history = pair.history
    whole = everything(history)
    for with_usage in (False, True):
        if with_usage:
            await _set_usage(pair)
        for key in CONFIG_KEYS:
            await pair.same("compare_configurations_by", key, **whole)
        for filters in filter_variants(history):
            await pair.same("compare_configurations_by", "config.model", **filters)
        for objective in ("score", "success", "cost-per-success"):
            for max_cost in (None, 0.5, 3.0, 1000):
                for min_runs in (1, 3):
                    await pair.same(
                        "best_configuration",
                        objective,
                        max_cost=max_cost,
                        min_runs=min_runs,
                        **whole,
                    )
        for index, filters in enumerate(filter_variants(history)):
            objective = ("score", "success", "cost-per-success")[index % 3]
            await pair.same("best_configuration", objective, **filters)
        await pair.same("best_configuration", "fastest", **whole)  # refused on both
        for last in (1, 2, 3, 5, 20, 1000):
            for metric in (None, "score", *METRIC_NAMES, "never-recorded"):
                await pair.same("get_score_direction", last, metric, **whole)
        for filters in filter_variants(history):
            await pair.same("get_score_direction", 10, **filters)


MODELS = (("gpt-4o", "openai"), ("claude-sonnet-4-0", None), ("in-house-llm", None))


async def ask_usage(pair: EnginePair) -> None:
    """Usage stored the same way on both engines, then summed per model, day, run, test,
    configuration and branch, over windows and scopes."""
    history = pair.history
    documents = []
    for index, run in enumerate(history.runs):
        for k in range(index % 4):
            model, provider = MODELS[(index + k) % len(MODELS)]
            tokens = 100 * (index + 1) + 7 * k
            documents.append(
                {
                    "_id": ObjectId(f"{index + 1:012x}{k + 1:012x}"),
                    "usage_id": f"{run.run_id}/usage/{k:06d}",
                    "evaluation_run_id": run.oid,
                    "test_id": history.test_ids[(index + k) % len(history.test_ids)]
                    if k % 2
                    else None,
                    "step": None,
                    "model": model,
                    "provider": provider,
                    "input_tokens": tokens,
                    "output_tokens": tokens // 3,
                    "cache_read_tokens": tokens // 5,
                    "cache_write_tokens": 0,
                    "reasoning_tokens": 0,
                    "calls": 1 + k,
                    "cost": None if model == "in-house-llm" else tokens * 1.25e-6,
                    "cost_source": "unpriced" if model == "in-house-llm" else "computed",
                    "price": None,
                    "recorded_at": run.document["started_at"] + (k + 1) * MS * 1000,
                    "suite": run.document.get("suite"),
                    "git_branch": run.document.get("git_branch"),
                    "environment": run.document.get("environment"),
                }
            )
    await pair.same("store_usage", documents)
    await pair.same("store_usage", documents[:3])  # stored again: nothing changes
    for run in history.runs[:6]:
        await pair.same("get_usage", run.run_id)
    for by in ("model", "day", "run", "test"):
        await pair.same("get_usage_totals", by)
        await pair.same("get_usage_totals", by, since=history.monday + 2 * DAY)
        for branch in history.values("git_branch")[:2]:
            await pair.same("get_usage_totals", by, branch=branch)
    for by in ("run", "config", "branch", "model", "day", "test"):
        await pair.same("get_cost", by)
        await pair.same("get_cost", by, until=history.monday + 5 * DAY)
    await pair.same("get_cost", "weekday")  # refused in the same words


SERIES_METRICS = (("loss", ("train", "eval")), ("accuracy", ("eval",)), ("lr", ("train",)))


def series_points(history: History) -> list[dict[str, Any]]:
    """Metric points of the first runs: series of 1 to 130 points, dense or sparse steps,
    values rounded to 2 places (ties for min, max and buckets), one negative spike each."""
    rng = random.Random(history.seed)
    documents = []
    for index, run in enumerate(history.runs[:5]):
        for metric, splits in SERIES_METRICS:
            for split in splits:
                length = (1, 40, 130, 60, 3, 101, 25)[(index + len(metric)) % 7]
                stride = rng.choice((1, 1, 2, 7))
                first = rng.choice((0, 0, 5))
                for k in range(length):
                    step = first + k * stride
                    value = round(rng.uniform(0, 2) / (1 + k / 50), 2)
                    if k == length // 3:
                        value = -5.0 - index  # the spike
                    documents.append(
                        {
                            "_id": point_id(run.oid, metric, split, step),
                            "evaluation_run_id": run.oid,
                            "metric": metric,
                            "split": split,
                            "step": step,
                            "value": value,
                            "recorded_at": run.started_at + (k + 1) * MS,
                        }
                    )
    return documents


async def ask_series(pair: EnginePair) -> None:
    """Metric points stored the same way on both engines (one step logged again), then
    every series question: points, downsampling, summary, best step, across runs."""
    history = pair.history
    documents = series_points(history)
    for start in range(0, len(documents), 1000):
        await pair.same("store_points", documents[start : start + 1000])
    again = [{**doc, "value": doc["value"] + 0.5} for doc in documents[::97]]
    await pair.same("store_points", again)  # logged again: replaced, never duplicated
    runs = history.runs[:5]
    for run in runs:
        if run.status != "running":  # finalising stores the run's `series` summary
            finished_at = run.finished_at or run.started_at + DAY
            await pair.same("finalize_evaluation_run", run.oid, run.status, finished_at=finished_at)
    metric_variants: tuple[Any, ...] = (None, ["loss"], ["lr", "loss"], "accuracy", ["nope"])
    for run in [*runs, history.runs[-1]]:
        for max_points in (None, 100, 2, 3, 37, 1):
            await pair.same("get_series", run.run_id, max_points=max_points)
        for index, metrics in enumerate(metric_variants):
            for split in (None, ("eval", "test", "train")[index % 3]):
                await pair.same(
                    "get_series", str(run.oid), metrics=metrics, split=split, max_points=10
                )
                await pair.same("get_series_summary", run.run_id, metrics=metrics, split=split)
        for metric in ("loss", "accuracy", "lr", "nope"):
            for mode, split in (("min", None), ("max", "eval"), ("min", "train")):
                await pair.same("get_best_step", run.run_id, metric, mode=mode, split=split)
        await pair.same("get_best_step", run.run_id, "loss", mode="last")  # refused on both
    await pair.same("get_series", "no-such-run")
    await pair.same("get_series_summary", UNKNOWN_OID)
    variants = ((1, None), (3, 7), (100, 500))
    for metric, splits in SERIES_METRICS:
        for index, split in enumerate((None, *splits, "test")):
            last, max_points = variants[index % len(variants)]
            await pair.same(
                "get_metric_across_runs", metric, split=split, last=last, max_points=max_points
            )
    for branch in history.values("git_branch"):
        if branch is not None:
            await pair.same("get_metric_across_runs", "loss", branch=branch)
    for environment in history.values("environment"):
        await pair.same("get_metric_across_runs", "loss", environment=environment, last=2)
    for suite in history.values("suite"):
        if suite is not None:
            await pair.same("get_metric_across_runs", "accuracy", suite=suite)
    names = [run.run_id for run in runs]
    await pair.same("get_metric_across_runs", "loss", runs=names, max_points=50)
    await pair.same("get_metric_across_runs", "loss", runs=names[::-1], split="eval")
    await pair.same("get_metric_across_runs", "lr", runs=[history.runs[-1].run_id])
    await pair.same("get_metric_across_runs", "loss", last=0)  # refused on both


async def ask_dataframes(pair: EnginePair) -> None:
    """`to_dataframe` (the exports' reads, as pandas frames): the same rows on both engines."""
    for kind in ("runs", "tests", "alerts", "usage", "series"):
        frames = [
            await engine.service.to_dataframe(kind) for engine in (pair.reference, pair.other)
        ]
        rows = [
            frame.astype(object).where(frame.notna(), None).to_dict("records") for frame in frames
        ]
        pair.check(
            f'service."to_dataframe"({kind!r})',
            Outcome(value=(list(frames[0].columns), rows[0])),
            Outcome(value=(list(frames[1].columns), rows[1])),
        )

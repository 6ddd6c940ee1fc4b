"""Every history query answers the same on both engines, over generated histories.

The local store (`file://`, SQL on SQLite) and MongoDB (aggregation pipelines;
`mongomock://` here, and a real server with `MONGODB_TEST_URI`) answer the same
`MetricsStorageService`. Each test stores one generated history (see
`differential_history`) on both engines, asks one kind of question with many
argument variants (see `differential_queries`), and requires equal answers:
the same values and types, lists in the same order, datetimes equal and
UTC-aware, floats within 1e-9 relative, and the same exception type and
message where a call raises. Storing the history is compared the same way,
write by write: finalisation returns the counts, metric means and score each
engine computed from the stored test runs.

A failure lists every query the engines disagreed on: the call with its
arguments, the seed, the first differing path (`$[3]['mean_score']`), both
values, and the command that reruns just that case, e.g.

    EVALSTORE_DIFF_SEED=3 .venv/bin/python -m pytest tests/differential -k 'test_stats and file'

`EVALSTORE_DIFF_CASES=50` runs more seeds than the default six.
"""

from __future__ import annotations

from differential_engines import EnginePair
from differential_queries import (
    ask_comparisons,
    ask_configs_by,
    ask_configurations,
    ask_dataframes,
    ask_durations,
    ask_experiments,
    ask_flaky,
    ask_monitors,
    ask_run_lists,
    ask_runs,
    ask_series,
    ask_stats,
    ask_test_trends,
    ask_trends,
    ask_usage,
)


async def test_runs_by_id_and_recent(pair: EnginePair) -> None:
    await ask_runs(pair)
    pair.assert_agreed()


async def test_run_lists_of_the_runs_page(pair: EnginePair) -> None:
    await ask_run_lists(pair)
    pair.assert_agreed()


async def test_trends(pair: EnginePair) -> None:
    await ask_trends(pair)
    await ask_test_trends(pair)
    pair.assert_agreed()


async def test_stats(pair: EnginePair) -> None:
    await ask_stats(pair)
    pair.assert_agreed()


async def test_usage_and_cost(pair: EnginePair) -> None:
    await ask_usage(pair)
    pair.assert_agreed()


async def test_monitors_reads_and_alerts(pair: EnginePair) -> None:
    await ask_monitors(pair)
    pair.assert_agreed()


async def test_durations(pair: EnginePair) -> None:
    await ask_durations(pair)
    pair.assert_agreed()


async def test_flaky_and_outcome_changes(pair: EnginePair) -> None:
    await ask_flaky(pair)
    pair.assert_agreed()


async def test_configurations(pair: EnginePair) -> None:
    await ask_configurations(pair)
    pair.assert_agreed()


async def test_run_comparisons(pair: EnginePair) -> None:
    await ask_comparisons(pair)
    pair.assert_agreed()


async def test_experiments(pair: EnginePair) -> None:
    await ask_experiments(pair)
    pair.assert_agreed()


async def test_configurations_by_key_best_and_direction(pair: EnginePair) -> None:
    await ask_configs_by(pair)
    pair.assert_agreed()


async def test_metric_series(pair: EnginePair) -> None:
    await ask_series(pair)
    pair.assert_agreed()


async def test_dataframes(pair: EnginePair) -> None:
    await ask_usage(pair)  # usage to export too
    await ask_dataframes(pair)
    pair.assert_agreed()

"""The indexes evalstore declares on its two collections, as plain data.

Names are stable so that `create_indexes()` is idempotent and a DBA can
recognise them. Each index serves queries listed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

EVALUATION_RUNS = "evaluation_runs"
TEST_RUNS = "test_runs"
ALERTS = "alerts"
USAGE = "usage"
POINTS = "metric_points"


@dataclass(frozen=True)
class IndexSpec:
    """One declared index: its collection, stable name, keys in order, and uniqueness."""

    collection: str
    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False


INDEXES: tuple[IndexSpec, ...] = (
    # recent runs, time windows, daily trends
    IndexSpec(EVALUATION_RUNS, "started_at", (("started_at", -1),)),
    # lookup by the human-readable id; uniqueness makes ids collision-proof
    IndexSpec(
        EVALUATION_RUNS, "evaluation_run_id_unique", (("evaluation_run_id", 1),), unique=True
    ),
    # group and filter by configuration
    IndexSpec(EVALUATION_RUNS, "system_info_hash", (("system_info_hash", 1),)),
    # filter by experiment tags (multikey)
    IndexSpec(EVALUATION_RUNS, "experiment_tags", (("experiment_tags", 1),)),
    # score-based queries and graphs
    IndexSpec(EVALUATION_RUNS, "score", (("score", -1),)),
    # `compare latest previous --branch B` (equality on the branch, newest first): without it,
    # finding the two newest completed runs of a rarely-run branch walks the whole `started_at`
    # index; it also serves every `--branch` filter of the analysis queries (branch + window)
    IndexSpec(EVALUATION_RUNS, "git_branch_started_at", (("git_branch", 1), ("started_at", -1))),
    # one suite of several in a database: `--suite` filters, and its latest/previous runs
    IndexSpec(EVALUATION_RUNS, "suite_started_at", (("suite", 1), ("started_at", -1))),
    # lookup of one test execution
    IndexSpec(TEST_RUNS, "test_run_id_unique", (("test_run_id", 1),), unique=True),
    # one test's evolution over time (history, newest first)
    IndexSpec(TEST_RUNS, "test_id_finished_at", (("test_id", 1), ("finished_at", -1))),
    # all tests of one evaluation run, and finalisation's aggregation
    IndexSpec(TEST_RUNS, "evaluation_run_id", (("evaluation_run_id", 1),)),
    # filter by outcome
    IndexSpec(TEST_RUNS, "status", (("status", 1),)),
    # score-based queries and graphs
    IndexSpec(TEST_RUNS, "score", (("score", -1),)),
    # the time window of per-test statistics and flaky tests over all tests (no test id and no
    # run filter): without it those queries scan every test run ever stored
    IndexSpec(TEST_RUNS, "finished_at", (("finished_at", -1),)),
    # metric points: a run's series in step order. One point per run, metric, split and step
    # is kept by `_id`, which derives from that key (`recording.series.point_id`)
    IndexSpec(
        POINTS,
        "point_run_metric_split_step",
        (("evaluation_run_id", 1), ("metric", 1), ("split", 1), ("step", 1)),
    ),
    # usage: replayed once (its id), a run's usage by model at finalisation, cost over time
    IndexSpec(USAGE, "usage_id_unique", (("usage_id", 1),), unique=True),
    IndexSpec(USAGE, "usage_run", (("evaluation_run_id", 1), ("model", 1))),
    IndexSpec(USAGE, "usage_recorded_at", (("recorded_at", -1),)),
    # the open alert of one rule and subject (de-duplication), and alerts newest first
    IndexSpec(ALERTS, "alert_key_state", (("key", 1), ("state", 1))),
    IndexSpec(ALERTS, "alert_fired_at", (("fired_at", -1),)),
    # a run's alerts (the run report, and prune)
    IndexSpec(ALERTS, "alert_run", (("evaluation_run_id", 1),)),
)

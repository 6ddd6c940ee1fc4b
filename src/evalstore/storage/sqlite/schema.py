"""The local store's tables: the fields queries filter, group and sort on as columns,
and the whole document as JSON.

One SQLite file per database, `<dir>/<database>/evalstore.sqlite3`, in WAL mode.
Every row keeps its document in `doc` (relaxed extended JSON, the text the
journals use), so nothing of the schema is lost and `sync` pushes exactly the
documents a MongoDB user would have recorded. The columns beside it are copies
of top-level fields, typed for SQL:

- ObjectIds (`_id`, a test run's `evaluation_run_id`) as their 24 hex digits;
- datetimes as whole milliseconds since the Unix epoch, UTC (MongoDB's own
  precision, so ordering and windows agree with a server);
- `passed` as 0 or 1, scores as REAL, `experiment_tags` as a JSON array;
- a test run's `duration_ms` as the number it is (an integer stays an integer, as
  `json_extract` and MongoDB keep it: the column has no declared type), NULL when it is
  no finite number;
- a missing field, or one whose value is of another type than the column's, as NULL.

Index names match MongoDB's (`storage.indexes`), so `evalstore indexes` reads the
same on both engines; `test_id_finished_at` also covers what per-test statistics,
flaky tests and the slowest tests read, so those scan the index alone.
"""

from __future__ import annotations

FILE_NAME = "evalstore.sqlite3"
"""The store's file inside `<dir>/<database>/`."""

SCHEMA_VERSION = 5
"""1: runs and test runs; 2: alerts; 3: usage; 4: metric points (new tables are created on
open of an older store); 5: `test_runs.duration_ms` (added and filled from `doc` on open of
an older store, see `engine.SqliteEngine._create_schema`)."""

RUN_COLUMNS: tuple[str, ...] = (
    "_id",
    "evaluation_run_id",
    "suite",
    "environment",
    "git_branch",
    "status",
    "started_at",
    "finished_at",
    "last_seen_at",
    "score",
    "num_tests",
    "system_info_hash",
    "experiment_tags",
)
"""The evaluation run fields kept as columns of `evaluation_runs` (beside `doc`)."""

TEST_RUN_COLUMNS: tuple[str, ...] = (
    "_id",
    "test_run_id",
    "evaluation_run_id",
    "test_id",
    "status",
    "passed",
    "score",
    "finished_at",
    "duration_ms",
)
"""The test run fields kept as columns of `test_runs` (beside `doc`)."""

ALERT_COLUMNS: tuple[str, ...] = (
    "_id",
    "key",
    "rule",
    "level",
    "state",
    "acknowledged",
    "evaluation_run_id",
    "test_id",
    "suite",
    "environment",
    "git_branch",
    "fired_at",
    "last_seen_at",
)
"""The alert fields kept as columns of `alerts` (beside `doc`)."""

USAGE_COLUMNS: tuple[str, ...] = (
    "_id",
    "usage_id",
    "evaluation_run_id",
    "test_id",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "calls",
    "cost",
    "cost_source",
    "recorded_at",
    "suite",
    "git_branch",
    "environment",
)
"""The usage fields kept as columns of `usage` (beside `doc`): all a cost question reads."""

POINT_COLUMNS: tuple[str, ...] = (
    "_id",
    "evaluation_run_id",
    "metric",
    "split",
    "step",
    "value",
    "recorded_at",
)
"""A metric point's fields, all of them columns of `metric_points` (beside `doc`)."""

DATE_COLUMNS = frozenset({"started_at", "finished_at", "last_seen_at", "fired_at", "recorded_at"})
OID_COLUMNS = frozenset({"_id", "evaluation_run_id"})  # evaluation_run_id: on test_runs only
REAL_COLUMNS = frozenset({"score"})
INTEGER_COLUMNS = frozenset({"num_tests", "passed", "acknowledged"})
DURATION_FILL = (
    "UPDATE test_runs SET duration_ms = json_extract(doc, '$.duration_ms') "
    "WHERE json_type(doc, '$.duration_ms') IN ('integer', 'real')"
)
"""Fills `test_runs.duration_ms` from `doc` when an older store is opened (schema 5): the
value the durations queries read from `doc` before there was a column."""

TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluation_runs (
    _id TEXT PRIMARY KEY,
    evaluation_run_id TEXT,
    suite TEXT,
    environment TEXT,
    git_branch TEXT,
    status TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    last_seen_at INTEGER,
    score REAL,
    num_tests INTEGER,
    system_info_hash TEXT,
    experiment_tags TEXT,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS test_runs (
    _id TEXT PRIMARY KEY,
    test_run_id TEXT,
    evaluation_run_id TEXT,
    test_id TEXT,
    status TEXT,
    passed INTEGER,
    score REAL,
    finished_at INTEGER,
    duration_ms,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metric_points (
    _id TEXT NOT NULL,
    evaluation_run_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    split TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL,
    recorded_at INTEGER,
    doc TEXT NOT NULL,
    PRIMARY KEY (evaluation_run_id, metric, split, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    _id TEXT PRIMARY KEY,
    usage_id TEXT,
    evaluation_run_id TEXT,
    test_id TEXT,
    model TEXT,
    provider TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    calls INTEGER,
    cost REAL,
    cost_source TEXT,
    recorded_at INTEGER,
    suite TEXT,
    git_branch TEXT,
    environment TEXT,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    _id TEXT PRIMARY KEY,
    key TEXT,
    rule TEXT,
    level TEXT,
    state TEXT,
    acknowledged INTEGER,
    evaluation_run_id TEXT,
    test_id TEXT,
    suite TEXT,
    environment TEXT,
    git_branch TEXT,
    fired_at INTEGER,
    last_seen_at INTEGER,
    doc TEXT NOT NULL
);
"""

INDEXES: dict[str, str] = {
    # evaluation_runs
    "started_at": "CREATE INDEX IF NOT EXISTS started_at ON evaluation_runs (started_at DESC)",
    "evaluation_run_id_unique": (
        "CREATE UNIQUE INDEX IF NOT EXISTS evaluation_run_id_unique "
        "ON evaluation_runs (evaluation_run_id)"
    ),
    "system_info_hash": (
        "CREATE INDEX IF NOT EXISTS system_info_hash ON evaluation_runs (system_info_hash)"
    ),
    "run_score": "CREATE INDEX IF NOT EXISTS run_score ON evaluation_runs (score DESC)",
    "git_branch_started_at": (
        "CREATE INDEX IF NOT EXISTS git_branch_started_at "
        "ON evaluation_runs (git_branch, started_at DESC)"
    ),
    "suite_started_at": (
        "CREATE INDEX IF NOT EXISTS suite_started_at ON evaluation_runs (suite, started_at DESC)"
    ),
    # test_runs
    "test_run_id_unique": (
        "CREATE UNIQUE INDEX IF NOT EXISTS test_run_id_unique ON test_runs (test_run_id)"
    ),
    "test_id_finished_at": (
        "CREATE INDEX IF NOT EXISTS test_id_finished_at ON test_runs "
        "(test_id, finished_at, status, passed, score, evaluation_run_id, duration_ms)"
    ),
    "test_evaluation_run_id": (
        "CREATE INDEX IF NOT EXISTS test_evaluation_run_id ON test_runs (evaluation_run_id)"
    ),
    "test_finished_at": "CREATE INDEX IF NOT EXISTS test_finished_at ON test_runs (finished_at)",
    # usage
    "usage_id_unique": "CREATE UNIQUE INDEX IF NOT EXISTS usage_id_unique ON usage (usage_id)",
    "usage_run": (
        "CREATE INDEX IF NOT EXISTS usage_run ON usage "
        "(evaluation_run_id, model, input_tokens, output_tokens, cost)"
    ),
    "usage_recorded_at": "CREATE INDEX IF NOT EXISTS usage_recorded_at ON usage (recorded_at)",
    # alerts
    "alert_key_state": "CREATE INDEX IF NOT EXISTS alert_key_state ON alerts (key, state)",
    "alert_fired_at": "CREATE INDEX IF NOT EXISTS alert_fired_at ON alerts (fired_at DESC)",
    "alert_run": "CREATE INDEX IF NOT EXISTS alert_run ON alerts (evaluation_run_id)",
}
"""The local store's indexes by name (SQLite index names are per file, not per table)."""

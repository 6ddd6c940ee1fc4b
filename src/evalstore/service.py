"""MetricsStorageService: the one façade the CLI, the plugin and users call.

It stores evaluation runs and test runs through the storage seam
(`evalstore.storage.client.MongoDBClient`'s typed operations) and answers
history questions by calling the analysis functions (`evalstore.analysis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

from bson import ObjectId
from typing_extensions import Unpack

from evalstore.analysis import (
    comparison,
    config_choice,
    configs,
    direction,
    durations,
    experiments,
    queries,
    retention,
    series,
    stats,
    trends,
    usage,
)
from evalstore.analysis.base import History, run_not_found
from evalstore.analysis.filters import FilterKwargs, RunFilters, TagsMatch, WindowKwargs
from evalstore.analysis.pipelines import FINISHED, FUTURE_SLACK, Period, TestValue
from evalstore.analysis.types import (
    BestConfiguration,
    ConfigDifference,
    ConfigGroup,
    ConfigSummary,
    DurationPoint,
    ExperimentMetric,
    FlakyTest,
    HistoryPoint,
    Objective,
    OutcomeChange,
    PerTestStats,
    PruneResult,
    RecordedMetrics,
    RunComparison,
    ScoreDirection,
    ScorePoint,
    SlowTest,
    TestOutcomes,
    TrendPoint,
)
from evalstore.errors import InvalidDataError
from evalstore.ids import point_id
from evalstore.models import (
    Document,
    RunStatus,
    check_positive_int,
    check_tags,
    check_text,
    utcnow,
)
from evalstore.storage.client import MongoDBClient, RefusedDocument
from evalstore.storage.engine import EncodedTestRun

if TYPE_CHECKING:
    from evalstore.schema import EvaluationRun, TestRun

_FINAL_STATUSES = ("completed", "failed", "interrupted")
_ALL_STATUSES = ("running", *_FINAL_STATUSES)


class MetricsStorageService:
    """Store `evaluation_runs` and `test_runs`, and query their history.

    Every method returns plain dicts as stored (with `_id`, datetimes in UTC).

    Args:
        client: the connection; the service never creates one itself.
    """

    def __init__(self, client: MongoDBClient) -> None:
        self.client = client
        self._history = History(client)

    async def create_evaluation_run(self, run: EvaluationRun) -> Document:
        """Insert a new evaluation run; return the stored document (with `_id`).

        Raises:
            DuplicateRunError: a run with the same `evaluation_run_id` exists.
        """
        document = run.to_document()
        what = f"evaluation run {run.evaluation_run_id!r}"
        document["_id"] = await self.client.insert("evaluation_runs", document, what=what)
        return document

    async def save_test_run(self, test_run: TestRun) -> Document:
        """Insert one test run; return the stored document (with `_id`).

        Raises:
            DuplicateRunError: a test run with the same `test_run_id` exists.
        """
        document = test_run.to_document()
        what = f"test run {test_run.test_run_id!r}"
        document["_id"] = await self.client.insert("test_runs", document, what=what)
        return document

    async def upsert_evaluation_run(self, document: Document) -> bool:
        """Store a run document (with its client-side `_id`) unless it is already stored.

        Keyed on `_id` and `evaluation_run_id` with `$setOnInsert`, so replaying it
        never overwrites or duplicates; `last_seen_at` only moves forward.

        Returns:
            True when this call stored it, False when it was already there.

        Raises:
            DuplicateRunError: another run already has this `evaluation_run_id`.
        """
        return await self.client.upsert_run(document)

    async def upsert_test_runs(
        self, documents: Sequence[Document], encoded: Sequence[EncodedTestRun | None] | None = None
    ) -> list[RefusedDocument]:
        """Store test run documents not stored yet, in one unordered bulk write (none if empty).

        Each is upserted on `test_run_id` with `$setOnInsert` of the whole
        document, so writing one twice leaves exactly one, unchanged.

        Returns:
            The documents the store refused, with the reason; the others are stored.
        """
        return await self.client.upsert_test_runs(documents, encoded)

    async def touch_evaluation_run(self, evaluation_run_oid: ObjectId, seen_at: datetime) -> None:
        """Move the run's heartbeat `last_seen_at` forward to `seen_at`."""
        await self.client.touch_run(evaluation_run_oid, seen_at)

    async def finalize_evaluation_run(
        self,
        evaluation_run_id: str | ObjectId,
        status: RunStatus = "completed",
        *,
        finished_at: datetime | None = None,
    ) -> Document:
        """Compute the run's counts, metric means and score from its stored test runs.

        The aggregates come from an aggregation pipeline over `test_runs`, so they
        are right however many writers saved tests, and finalising twice gives
        the same result.

        Returns:
            The updated evaluation run document.
        """
        if status not in _FINAL_STATUSES:
            raise InvalidDataError(f"status must be one of {_FINAL_STATUSES}, got {status!r}")
        if type(evaluation_run_id) is ObjectId:  # what the recorder, replay and reaper pass
            run_oid = evaluation_run_id
        else:
            run_oid = (await self._history.resolve(evaluation_run_id))["_id"]
        action = "finalize an evaluation run"
        [result] = await self.client.rows(queries.run_aggregates(run_oid), action=action)
        # Only string statuses count in a category, whatever else a document may hold
        # (True and 1 are one key in a dict but two groups on the server).
        tests = {row["_id"]: row["tests"] for row in result["counts"] if type(row["_id"]) is str}
        [score] = result["score"] or [{"score": None}]
        update = {
            "status": status,
            "finished_at": finished_at or utcnow(),
            "num_tests": sum(row["tests"] for row in result["counts"]),
            "num_passed": tests.get("passed", 0),
            "num_failed": tests.get("failed", 0) + tests.get("error", 0),
            "num_skipped": tests.get("skipped", 0),
            "num_errors": tests.get("error", 0),
            "score": score["score"],
            "metrics": {m["_id"]: m["mean"] for m in result["means"] if m["mean"] is not None},
        }
        by_model = usage.totals_rows(
            await self.client.rows(
                usage.usage_totals({"evaluation_run_id": run_oid}, "model"), action=action
            )
        )
        if by_model:  # a run without usage keeps the fields it always had
            update["usage"] = usage.run_usage_summary(by_model, update["num_passed"])
        series_rows = await series.summarise(self._history, run_oid)
        if series_rows:  # run lists and dashboards read this summary, never the points
            update["series"] = series_rows
        updated = await self.client.update_run({"_id": run_oid}, update, action=action)
        if updated is None:
            raise run_not_found(evaluation_run_id)
        return updated

    async def get_evaluation_run(self, evaluation_run_id: str | ObjectId) -> Document | None:
        """One evaluation run by its human-readable id or its ObjectId (as object or hex)."""
        return await self._history.get_run(evaluation_run_id)

    async def select_evaluation_run(self, selector: str | ObjectId) -> Document:
        """The run a person names: an id, ObjectId (or hex), `latest`, `previous`, or a prefix.

        `latest`/`previous` are the newest finished runs with tests (as for
        `compare_runs`); a prefix of a run id must match exactly one run.

        Raises:
            RunNotFoundError: nothing matches.
            InvalidDataError: the prefix matches several runs.
        """
        return await self._history.select(selector)

    async def get_test_runs(self, evaluation_run_id: str | ObjectId) -> list[Document]:
        """All test runs of one evaluation run, in the order they finished.

        The run is named as for `select_evaluation_run`.

        Raises:
            RunNotFoundError: no evaluation run has that id.
        """
        run = await self._history.select(evaluation_run_id)
        return await self.client.read(
            "test_runs",
            {"evaluation_run_id": run["_id"]},
            sort=[("finished_at", 1), ("test_id", 1)],
            action="read test runs",
        )

    async def get_recent_evaluation_runs(
        self, limit: int = 10, *, suite: str | None = None
    ) -> list[Document]:
        """The `limit` most recently started evaluation runs (of one suite), newest first."""
        return await self.client.read(
            "evaluation_runs",
            {} if suite is None else {"suite": check_text(suite, "suite")},
            sort=[("started_at", -1)],
            limit=check_positive_int(limit, "limit"),
            action="read recent evaluation runs",
        )

    async def get_test_history(self, test_id: str, limit: int = 20) -> list[Document]:
        """The `limit` most recent runs of one test (by `test_id`), newest first."""
        return await self.client.read(
            "test_runs",
            {"test_id": check_text(test_id, "test_id")},
            sort=[("finished_at", -1)],
            limit=check_positive_int(limit, "limit"),
            action="read a test's history",
        )

    async def get_evaluation_runs_by_tags(
        self,
        tags: Sequence[str],
        match: TagsMatch = "any",
        limit: int = 100,
        *,
        suite: str | None = None,
    ) -> list[Document]:
        """Evaluation runs carrying any (or all) of `tags` (of one suite), newest first."""
        if match not in ("any", "all"):
            raise InvalidDataError(f"match must be 'any' or 'all', got {match!r}")
        tags = check_tags(tags, "tags")
        if not tags:  # MongoDB matches nothing with `$in: []` or `$all: []`: ask nothing
            check_positive_int(limit, "limit")
            return []
        operator = "$in" if match == "any" else "$all"
        return await self.client.read(
            "evaluation_runs",
            {
                "experiment_tags": {operator: list(check_tags(tags, "tags"))},
                **({} if suite is None else {"suite": check_text(suite, "suite")}),
            },
            sort=[("started_at", -1)],
            limit=check_positive_int(limit, "limit"),
            action="read evaluation runs by tags",
        )

    async def find_evaluation_runs(
        self,
        *,
        status: Sequence[RunStatus] = (),
        limit: int = 100,
        **filters: Unpack[FilterKwargs],
    ) -> list[Document]:
        """The evaluation runs started in the window that match the filters, newest first.

        `filters` are those of every history query (`since`, `until`, `environment`,
        `branch`, `suite`, `tags`, `tags_match`, `window_days`); `status` keeps only
        runs in one of these states. The runs page of the dashboard lists these.
        """
        query = RunFilters.of(**filters).match()
        if status:
            unknown = sorted(set(status) - set(_ALL_STATUSES))
            if unknown:
                raise InvalidDataError(
                    f"unknown run status {unknown[0]!r}: use {', '.join(_ALL_STATUSES)}"
                )
            query["status"] = {"$in": list(status)}
        return await self.client.read(
            "evaluation_runs",
            query,
            sort=[("started_at", -1), ("evaluation_run_id", -1)],
            limit=check_positive_int(limit, "limit"),
            action="read evaluation runs",
        )

    async def get_run_choices(self, *, limit: int = 1000) -> dict[str, list[str]]:
        """The branches, environments, suites and experiment tags of the newest `limit`
        runs, each list sorted: what the dashboard offers in its filter menus."""
        runs = await self.client.read(
            "evaluation_runs",
            {},
            projection={"git_branch": 1, "environment": 1, "suite": 1, "experiment_tags": 1},
            sort=[("started_at", -1), ("evaluation_run_id", -1)],
            limit=check_positive_int(limit, "limit"),
            action="read filter choices",
        )
        found: dict[str, set[str]] = {"branch": set(), "environment": set(), "suite": set()}
        tags: set[str] = set()
        for run in runs:
            for name, field in (
                ("branch", "git_branch"),
                ("environment", "environment"),
                ("suite", "suite"),
            ):
                if isinstance(run.get(field), str) and run[field]:
                    found[name].add(run[field])
            tags.update(t for t in run.get("experiment_tags") or () if isinstance(t, str) and t)
        return {**{name: sorted(values) for name, values in found.items()}, "tag": sorted(tags)}

    # History analysis: each method is one function of `evalstore.analysis`, which
    # documents its arguments and rows in full.

    async def get_metric_trend(
        self, metric: str, by: Period = "day", **filters: Unpack[FilterKwargs]
    ) -> list[TrendPoint]:
        """Mean of one run metric (or `score`) per day or ISO week; see `analysis.trends`."""
        return await trends.get_metric_trend(self._history, metric, by, **filters)

    async def get_score_trend(self, **filters: Unpack[FilterKwargs]) -> list[ScorePoint]:
        """Score and tests passed of each finished run, oldest first; see `analysis.trends`."""
        return await trends.get_score_trend(self._history, **filters)

    @overload
    async def get_test_trend(
        self,
        test_id: str,
        *,
        value: Literal["score"] = ...,
        **filters: Unpack[FilterKwargs],
    ) -> list[HistoryPoint]: ...

    @overload
    async def get_test_trend(
        self,
        test_id: str,
        *,
        value: Literal["duration"],
        **filters: Unpack[FilterKwargs],
    ) -> list[DurationPoint]: ...

    async def get_test_trend(
        self, test_id: str, *, value: TestValue = "score", **filters: Unpack[FilterKwargs]
    ) -> list[HistoryPoint] | list[DurationPoint]:
        """One test's score (or duration) and outcome in each run, oldest first.

        See `analysis.trends`.
        """
        return await trends.get_test_trend(
            self._history,
            test_id,
            value=value,
            **filters,
        )

    async def get_test_duration_trend(
        self, test_id: str, by: Period = "day", **filters: Unpack[FilterKwargs]
    ) -> list[TrendPoint]:
        """Mean duration of one test's runs per day or ISO week; see `analysis.durations`."""
        return await durations.get_test_duration_trend(self._history, test_id, by, **filters)

    async def get_slowest_tests(
        self,
        *,
        limit: int | None = durations.DEFAULT_SLOWEST,
        **filters: Unpack[FilterKwargs],
    ) -> list[SlowTest]:
        """The tests with the longest mean duration, slowest first; see `analysis.durations`."""
        return await durations.get_slowest_tests(self._history, limit=limit, **filters)

    async def get_recorded_metrics(self, **filters: Unpack[FilterKwargs]) -> RecordedMetrics:
        """How many finished runs match, and their metric names; see `analysis.trends`."""
        return await trends.get_recorded_metrics(self._history, **filters)

    async def get_test_stats(
        self,
        *,
        sort: stats.StatsSortKey = "test_id",
        descending: bool = False,
        test_id: str | None = None,
        **filters: Unpack[FilterKwargs],
    ) -> list[PerTestStats]:
        """Statistics of every test id that ran in the window; see `analysis.stats`."""
        return await stats.get_test_stats(
            self._history, sort=sort, descending=descending, test_id=test_id, **filters
        )

    async def get_flaky_tests(
        self,
        min_runs: int = 5,
        *,
        strip_length: int = stats.DEFAULT_STRIP_LENGTH,
        test_id: str | None = None,
        **filters: Unpack[FilterKwargs],
    ) -> list[FlakyTest]:
        """Tests whose outcome alternates between runs, most flaky first; see `analysis.stats`."""
        return await stats.get_flaky_tests(
            self._history, min_runs, strip_length=strip_length, test_id=test_id, **filters
        )

    async def get_outcome_changes(
        self,
        min_runs: int = 5,
        *,
        strip_length: int = stats.DEFAULT_STRIP_LENGTH,
        test_id: str | None = None,
        **filters: Unpack[FilterKwargs],
    ) -> list[OutcomeChange]:
        """Tests that broke (or were fixed) once and stayed so; see `analysis.stats`."""
        return await stats.get_outcome_changes(
            self._history, min_runs, strip_length=strip_length, test_id=test_id, **filters
        )

    async def get_test_outcomes(
        self,
        min_runs: int = 5,
        *,
        strip_length: int = stats.DEFAULT_STRIP_LENGTH,
        test_id: str | None = None,
        **filters: Unpack[FilterKwargs],
    ) -> TestOutcomes:
        """Flaky tests and tests that changed once, from one read; see `analysis.stats`."""
        return await stats.get_test_outcomes(
            self._history, min_runs, strip_length=strip_length, test_id=test_id, **filters
        )

    async def compare_configurations(self, **filters: Unpack[FilterKwargs]) -> list[ConfigSummary]:
        """The runs and mean score of each configuration hash; see `analysis.configs`."""
        return await configs.compare_configurations(self._history, **filters)

    async def diff_configurations(self, hash_a: str, hash_b: str) -> list[ConfigDifference]:
        """What differs between two configuration snapshots; see `analysis.configs`."""
        return await configs.diff_configurations(self._history, hash_a, hash_b)

    async def compare_configurations_by(
        self, key: str, **filters: Unpack[FilterKwargs]
    ) -> list[ConfigGroup]:
        """Finished runs grouped by the value at one key of their configuration snapshot.

        Runs, success rate, mean score, mean cost, cost per success and mean
        duration per value; runs lacking the key are one `(missing)` group.
        See `analysis.config_choice`.
        """
        return await config_choice.compare_configurations_by(self._history, key, **filters)

    async def best_configuration(
        self,
        objective: Objective = "score",
        *,
        max_cost: float | None = None,
        min_runs: int = 1,
        **filters: Unpack[FilterKwargs],
    ) -> BestConfiguration:
        """The best configuration for `score`, `success` or `cost-per-success`, with its
        snapshot and the runners-up; see `analysis.config_choice`."""
        return await config_choice.best_configuration(
            self._history, objective, max_cost=max_cost, min_runs=min_runs, **filters
        )

    async def get_score_direction(
        self,
        last: int = direction.DEFAULT_LAST,
        metric: str | None = None,
        **filters: Unpack[FilterKwargs],
    ) -> ScoreDirection:
        """Whether the score (or a metric) of the last runs is improving, degrading or flat:
        least-squares slopes with 95% intervals (needs scipy); see `analysis.direction`."""
        return await direction.get_score_direction(self._history, last, metric, **filters)

    async def compare_runs(
        self,
        base: str | ObjectId,
        head: str | ObjectId,
        *,
        branch: str | None = None,
        environment: str | None = None,
        suite: str | None = None,
        tolerance: float = 0.0,
        stats: bool = False,
        duration_tolerance: float | None = None,
    ) -> RunComparison:
        """Test by test, two runs (or `previous`/`latest`); see `analysis.comparison`.

        `stats=True` pairs the tests of both runs and adds `statistics`
        (bootstrap intervals, Wilcoxon and McNemar p-values; needs the
        `evalstore[stats]` extra); `duration_tolerance` (percent) judges
        slowdowns.
        """
        return await comparison.compare_runs(
            self._history,
            base,
            head,
            branch=branch,
            environment=environment,
            suite=suite,
            tolerance=tolerance,
            stats=stats,
            duration_tolerance=duration_tolerance,
        )

    async def compare_experiments(
        self,
        tags_a: Sequence[str],
        tags_b: Sequence[str],
        *,
        tags_match: TagsMatch = "any",
        **filters: Unpack[WindowKwargs],
    ) -> list[ExperimentMetric]:
        """Mean and spread of each metric for two groups of tags; see `analysis.experiments`."""
        return await experiments.compare_experiments(
            self._history, tags_a, tags_b, tags_match=tags_match, **filters
        )

    async def prune(
        self,
        older_than_days: float,
        dry_run: bool = False,
        *,
        batch_size: int = retention.DEFAULT_BATCH_SIZE,
    ) -> PruneResult:
        """Delete runs older than the cutoff and their test runs; see `analysis.retention`."""
        return await retention.prune(self._history, older_than_days, dry_run, batch_size=batch_size)

    # -- monitors and alerts ----------------------------------------------------------

    async def get_comparable_runs(
        self, run: Document, match: Document, limit: int
    ) -> list[Document]:
        """The `limit` newest finished runs started before `run` and equal to it on `match`.

        `match` holds the run fields that make a run comparable (suite, branch,
        environment, configuration hash), newest first; the baselines of monitors.
        Finished: `completed` or `failed` (a run whose tests failed ran to its end);
        interrupted and running runs are not comparable.
        """
        query = {
            **match,
            "status": {"$in": list(FINISHED)},
            "started_at": {"$lt": run["started_at"]},
        }
        return await self.client.read(
            "evaluation_runs",
            query,
            sort=[("started_at", -1)],
            limit=check_positive_int(limit, "limit"),
            action="read comparable runs",
        )

    async def get_test_runs_of_runs(
        self, run_oids: Sequence[ObjectId], test_ids: Sequence[str] | None = None
    ) -> list[Document]:
        """The test runs of several evaluation runs (only `test_ids`, when given)."""
        if not run_oids:
            return []
        query: Document = {"evaluation_run_id": {"$in": list(run_oids)}}
        if test_ids is not None:
            query["test_id"] = {"$in": list(test_ids)}
        return await self.client.read(
            "test_runs", query, sort=[("finished_at", 1)], action="read test runs"
        )

    async def get_latest_alert(self, key: str) -> Document | None:
        """The newest alert of one de-duplication key (firing or resolved), or None."""
        return await self.client.read_one(
            "alerts", {"key": key}, sort=[("fired_at", -1)], action="read alerts"
        )

    async def save_alert(self, alert: Document) -> None:
        """Store an alert document whole (a new one, or a new state of a stored one)."""
        await self.client.replace("alerts", alert, what=f"alert {alert.get('rule')!r}")

    async def get_alerts(
        self,
        *,
        level: Sequence[str] = (),
        state: str | None = None,
        since: datetime | None = None,
        evaluation_run_oid: ObjectId | None = None,
        limit: int = 100,
    ) -> list[Document]:
        """Stored alerts, newest first: of some levels, in one state, fired since a time."""
        query: Document = {}
        if level:
            query["level"] = {"$in": list(level)}
        if state is not None:
            query["state"] = state
        if since is not None:
            query["fired_at"] = {"$gte": since}
        if evaluation_run_oid is not None:
            query["evaluation_run_id"] = evaluation_run_oid
        return await self.client.read(
            "alerts",
            query,
            sort=[("fired_at", -1)],
            limit=check_positive_int(limit, "limit") if limit else 0,
            action="read alerts",
        )

    async def acknowledge_alert(self, alert_id: str, *, by: str | None = None) -> Document:
        """Mark one alert acknowledged (its `_id` as 24 hex digits); the alert as stored.

        Raises:
            InvalidDataError: `alert_id` is not an alert id, or no alert has it.
        """
        if not isinstance(alert_id, str) or not ObjectId.is_valid(alert_id):
            raise InvalidDataError(
                f"{alert_id!r} is not an alert id: use the 24-character id `evalstore alerts "
                "list` shows"
            )
        alert = await self.client.read_one(
            "alerts", {"_id": ObjectId(alert_id)}, action="read alerts"
        )
        if alert is None:
            raise InvalidDataError(f"no alert has the id {alert_id}")
        alert.update(acknowledged=True, acknowledged_at=utcnow(), acknowledged_by=by)
        await self.save_alert(alert)
        return alert

    # -- usage and cost ---------------------------------------------------------------

    async def store_usage(self, documents: Sequence[Document]) -> None:
        """Store usage records (see `RunRecorder.record_usage`); storing one again does nothing."""
        await self.client.insert_usage(documents)

    async def get_usage(self, evaluation_run_id: str | ObjectId) -> list[Document]:
        """The usage records of one run, in the order they were recorded.

        Raises:
            RunNotFoundError: no evaluation run has that id.
        """
        run = await self._history.select(evaluation_run_id)
        return await self.client.read(
            "usage",
            {"evaluation_run_id": run["_id"]},
            sort=[("recorded_at", 1), ("usage_id", 1)],
            action="read usage",
        )

    async def get_usage_totals(
        self,
        by: usage.UsageBy = "model",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        evaluation_run_oid: ObjectId | None = None,
        branch: str | None = None,
        environment: str | None = None,
        suite: str | None = None,
    ) -> list[Document]:
        """Tokens, calls and cost summed per model, day (UTC), run or test.

        Each row: the group's fields, `input_tokens` ... `calls`, `cost` (None when no
        record of the group was priced), `unpriced` and `records`.
        """
        if by not in ("model", "day", "run", "test"):
            raise InvalidDataError(f"by must be model, day, run or test, got {by!r}")
        match: Document = {}
        window: Document = {}
        if since is not None:
            window["$gte"] = since
        if until is not None:
            window["$lt"] = until
        if window:
            match["recorded_at"] = window
        for name, value in (
            ("evaluation_run_id", evaluation_run_oid),
            ("git_branch", branch),
            ("environment", environment),
            ("suite", suite),
        ):
            if value is not None:
                match[name] = value
        rows = await self.client.rows(usage.usage_totals(match, by), action="read usage")
        return usage.totals_rows(rows)

    async def get_cost(
        self,
        by: Literal["model", "day", "run", "test", "config", "branch"] = "run",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        branch: str | None = None,
        environment: str | None = None,
        suite: str | None = None,
    ) -> list[Document]:
        """Tokens and cost per model, day, run, test, configuration or branch.

        `run`, `config` and `branch` rows also name the run (id, branch, configuration
        hash) and give `cost_per_passed_test`; see `get_usage_totals` for the sums.
        """
        window: dict[str, Any] = {
            "since": since,
            "until": until,
            "branch": branch,
            "environment": environment,
            "suite": suite,
        }
        if by in ("model", "day", "test"):
            return await self.get_usage_totals(by, **window)
        if by not in ("run", "config", "branch"):
            raise InvalidDataError(
                f"by must be run, day, model, config, branch or test, got {by!r}"
            )
        per_run = await self.get_usage_totals("run", **window)
        oids = [row["evaluation_run_id"] for row in per_run]
        runs = (
            {
                run["_id"]: run
                for run in await self.client.read(
                    "evaluation_runs",
                    {"_id": {"$in": oids}},
                    projection={
                        "evaluation_run_id": 1,
                        "started_at": 1,
                        "git_branch": 1,
                        "system_info_hash": 1,
                        "num_passed": 1,
                        "status": 1,
                    },
                    action="read runs",
                )
            }
            if oids
            else {}
        )
        if by == "config":
            return usage.regroup_by_run_field(per_run, runs, "system_info_hash", "configuration")
        if by == "branch":
            return usage.regroup_by_run_field(per_run, runs, "git_branch", "branch")
        answers = []
        for row in per_run:
            run = runs.get(row["evaluation_run_id"], {})
            passed = run.get("num_passed")
            cost = row["cost"]
            answers.append(
                {
                    "evaluation_run_id": run.get("evaluation_run_id"),
                    "started_at": run.get("started_at"),
                    "branch": run.get("git_branch"),
                    "configuration": run.get("system_info_hash"),
                    **{k: v for k, v in row.items() if k != "evaluation_run_id"},
                    "passed_tests": passed if isinstance(passed, int) else 0,
                    "cost_per_passed_test": cost / passed
                    if cost is not None
                    and not row["unpriced"]
                    and isinstance(passed, int)
                    and passed
                    else None,
                }
            )
        return sorted(answers, key=lambda a: (a["started_at"] is not None, str(a["started_at"])))

    # -- metric series ------------------------------------------------------------------

    async def store_points(self, documents: Sequence[Document]) -> None:
        """Store metric points (see `RunRecorder.log_metrics`); a point of the same run,
        metric, split and step replaces the one stored (the later of a batch wins)."""
        latest: dict[tuple[Any, ...], Document] = {}
        for doc in documents:  # an unordered bulk write may apply a batch in any order
            key = (doc["evaluation_run_id"], doc["metric"], doc["split"], doc["step"])
            latest.pop(key, None)
            latest[key] = {**doc, "_id": point_id(*key)}  # one _id per key, on every engine
        await self.client.upsert_points(list(latest.values()))

    async def get_series(
        self,
        evaluation_run_id: str | ObjectId,
        *,
        metrics: Sequence[str] | None = None,
        split: str | None = None,
        max_points: int | None = series.DEFAULT_MAX_POINTS,
    ) -> list[Document]:
        """A run's metric series, one per (metric, split), sorted by metric then split.

        Each: `metric`, `split`, `points` (`{step, value}` in step order), `total`,
        `downsampled`. A series longer than `max_points` is downsampled on the server
        to the min and max point of each of `max_points // 2` step buckets (its global
        min and max always kept); `max_points=None` returns every point. The run is
        named as for `select_evaluation_run`. See `analysis.series`.
        """
        return await series.get_series(
            self._history, evaluation_run_id, metrics=metrics, split=split, max_points=max_points
        )

    async def get_series_summary(
        self,
        evaluation_run_id: str | ObjectId,
        *,
        metrics: Sequence[str] | None = None,
        split: str | None = None,
    ) -> list[Document]:
        """Per (metric, split) of a run: count, first_step, last_step, last, mean, min,
        min_step, max, max_step (earliest steps); see `analysis.series`."""
        return await series.get_series_summary(
            self._history, evaluation_run_id, metrics=metrics, split=split
        )

    async def get_best_step(
        self,
        evaluation_run_id: str | ObjectId,
        metric: str,
        *,
        mode: series.BestMode = "min",
        split: str | None = None,
    ) -> Document:
        """The best step of a metric (`mode` min or max, earliest on ties) with the last
        step and `steps_since_best` (early stopping); see `analysis.series`.

        Raises:
            InvalidDataError: the run never recorded the metric (the message names those
                it did), or recorded it in several splits and `split` is None.
        """
        return await series.get_best_step(
            self._history, evaluation_run_id, metric, mode=mode, split=split
        )

    async def get_metric_across_runs(
        self,
        metric: str,
        *,
        split: str | None = None,
        runs: Sequence[str] | None = None,
        last: int = 5,
        max_points: int | None = series.DEFAULT_MAX_POINTS,
        branch: str | None = None,
        environment: str | None = None,
        suite: str | None = None,
    ) -> list[Document]:
        """One metric in several runs, one entry per (run, split): `evaluation_run_id`,
        `started_at`, `split`, `points`, `total`, `downsampled`.

        The runs are the named `runs` (in that order), or else the `last` newest finished
        runs (of a branch, environment, suite) that recorded the metric, oldest first.
        See `analysis.series`.
        """
        return await series.get_metric_across_runs(
            self._history,
            metric,
            split=split,
            runs=runs,
            last=last,
            max_points=max_points,
            branch=branch,
            environment=environment,
            suite=suite,
            not_after=utcnow() + FUTURE_SLACK,
        )

    # -- exports ------------------------------------------------------------------------

    async def to_dataframe(self, kind: str, **filters: Any) -> Any:
        """The stored `runs`, `tests`, `series`, `alerts` or `usage` as a pandas DataFrame.

        The columns of the CSV export (`metrics.wer.score`, `usage.cost`), dates as
        `datetime64[ns, UTC]`; `filters` as for `evalstore export` (`since`, `until`,
        `environment`, `branch`, `suite`, `tags`, `tags_match`, `run`). Needs the
        `evalstore[pandas]` extra. See `analysis.export`.

        Raises:
            ConfigurationError: pandas is not installed.
        """
        from evalstore.analysis import export  # pandas is imported there, when called

        return await export.to_dataframe(self, kind, **filters)  # type: ignore[arg-type]

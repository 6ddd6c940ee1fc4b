"""The evaluation run a test runner records into: start(), record_test(), finish()."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from evalstore.codec import encode_test_run
from evalstore.errors import (
    ConfigurationError,
    DuplicateRunError,
    EvalstoreError,
    InvalidDataError,
    StorageUnavailableError,
)
from evalstore.ids import new_evaluation_run_id, new_test_run_id
from evalstore.models import (
    MAX_DURATION_MS,
    TEST_STATUSES,
    MetricInput,
    RunStatus,
    TestStatus,
    build_test_run_document,
    check_score,
    check_size,
    check_string,
    check_tags,
    check_text,
    evaluation_run_document,
    invalid,
    metric_model,
    to_utc,
    utcnow,
)
from evalstore.recording.journal import read_journal, target_fingerprint
from evalstore.recording.plain_result import LARGE_TEXT, plain_test_run
from evalstore.recording.provenance import git_info, system_info_hash, system_information
from evalstore.recording.replay import (
    replay_spool,
    store_in_batches,
    store_points,
    sync_command,
)
from evalstore.recording.safety_net import SafetyNet
from evalstore.recording.scoring import score_method
from evalstore.recording.series import (
    POINTS_BATCH,
    SeriesBuffer,
    check_split,
    check_step,
    check_values,
    point_documents,
)
from evalstore.recording.shutdown import TerminationGuard
from evalstore.recording.totals import RunTotals
from evalstore.recording.usage import (
    USAGE_BATCH,
    BudgetStatus,
    UsageLedger,
    UsageReceipt,
    agent_details,
    usage_arguments,
)
from evalstore.recording.writer import BatchWriter
from evalstore.service import MetricsStorageService
from evalstore.settings import ALLOWED_ENVIRONMENTS, Settings, load_settings, parse_tags
from evalstore.storage.client import MongoDBClient
from evalstore.storage.engine import EncodedTestRun

if TYPE_CHECKING:
    from evalstore.monitors.budgets import BudgetTracker
    from evalstore.monitors.monitor import Monitor, RunCheck
    from evalstore.schema import MetricData

log = logging.getLogger("evalstore")

Clock = Callable[[], datetime]
_ID_ATTEMPTS = 5


class RunRecorder:
    """One evaluation run being recorded.

    With a `service` it stores everything; without one (storage disabled) it
    validates and returns the same documents but stores nothing, so a runner's
    code is identical either way. Use `start()`/`finish()` when the run spans
    several callbacks (a pytest session), or `async with` otherwise.
    """

    def __init__(
        self,
        service: MetricsStorageService | None,
        *,
        config: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        environment: str = "dev",
        suite: str | None = None,
        repo_path: str | Path = ".",
        packages: Iterable[str] | Mapping[str, str | None] = (),
        clock: Clock = utcnow,
        owns_client: bool = False,
        settings: Settings | None = None,
        monitor: Monitor | None = None,
        plots_dir: str | Path | None = None,
    ) -> None:
        if environment not in ALLOWED_ENVIRONMENTS:
            raise InvalidDataError(
                f"environment must be one of {', '.join(ALLOWED_ENVIRONMENTS)}, got {environment!r}"
            )
        self.service = service
        self._config = dict(config or {})
        self._tags = parse_tags(list(check_tags(tags, "tags")))
        self._environment = environment
        self._suite = None if suite is None else check_text(suite, "suite")
        self._repo_path = repo_path
        self._packages: tuple[str, ...] | dict[str, str | None] = (
            dict(packages) if isinstance(packages, Mapping) else tuple(packages)
        )
        self._clock = clock
        self._owns_client = owns_client
        self._settings = settings
        self._document: dict[str, Any] | None = None
        self._finished: dict[str, Any] | None = None
        self._finishing = False
        self._journal: SafetyNet | None = None
        self._writer: BatchWriter | None = None
        self._replay: asyncio.Task[Any] | None = None
        self._guard = TerminationGuard()
        self._totals = RunTotals()
        self._stored = False
        self._usage: UsageLedger | None = None
        self._budgets: BudgetTracker | None = None
        self._series = SeriesBuffer()
        self._usage_failed = False
        self._usage_flush_at = USAGE_BATCH
        self.monitor = monitor
        self.check: RunCheck | None = None
        self._plots_dir = plots_dir
        self.plots: list[Path] = []
        """The curves written when the run finished (with `plots_dir` or EVALSTORE_PLOTS_DIR)."""
        """What the monitor's rules said of the finished run (None: no monitor, or not stored)."""

    @property
    def enabled(self) -> bool:
        """True when results are stored (a service was given or MONGODB_ENABLED=true)."""
        return self.service is not None

    @property
    def document(self) -> dict[str, Any]:
        """The evaluation run document as stored at start (or as finalised, after finish)."""
        if self._document is None:
            raise EvalstoreError("the evaluation run has not started: call start() first")
        return self._finished or self._document

    @property
    def usage(self) -> UsageLedger:
        """The run's usage so far (`run_cost`, records waiting to be stored)."""
        if self._usage is None:
            self._usage = UsageLedger(self.document)
        return self._usage

    @property
    def evaluation_run_id(self) -> str:
        """The human-readable id, e.g. `2025-12-05T10-30-00Z-main-3f9a1c`."""
        return str(self.document["evaluation_run_id"])

    async def start(self) -> dict[str, Any]:
        """Capture provenance, store the run as `running` and open its journal; return it.

        When MongoDB cannot be reached the run is recorded into the journal only
        (one warning); it is stored when the server is back.
        """
        if self._document is not None:
            raise EvalstoreError("the evaluation run has already started")
        git = await asyncio.to_thread(git_info, self._repo_path)
        info = system_information(self._config, self._packages)
        started_at = to_utc(self._clock())
        for attempt in range(_ID_ATTEMPTS):
            run = evaluation_run_document(
                {
                    "evaluation_run_id": new_evaluation_run_id(started_at, git.branch),
                    "started_at": started_at,
                    "git_commit": git.commit,
                    "git_branch": git.branch,
                    "git_dirty": git.dirty,
                    "environment": self._environment,
                    "suite": self._suite,
                    "experiment_tags": self._tags,
                    "system_information": info,
                    "system_info_hash": system_info_hash(info),
                    "last_seen_at": utcnow(),
                }
            )
            document = {"_id": ObjectId(), **run}
            try:
                check_size(document, ("system_information", "experiment_tags"))
            except ValueError as exc:
                raise InvalidDataError(str(exc)) from None
            if self.service is None:
                self._document = document
                log.info("Storage disabled (MONGODB_ENABLED=false)")
                return self._document
            try:
                await self.service.upsert_evaluation_run(document)
            except DuplicateRunError:
                if attempt == _ID_ATTEMPTS - 1:
                    raise
                continue
            except InvalidDataError:
                raise  # bad input (the store refused the run document), not an outage
            except EvalstoreError as exc:
                return self._start_recording(self.service, document, unavailable=exc)
            return self._start_recording(self.service, document, unavailable=None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_recording(
        self,
        service: MetricsStorageService,
        document: dict[str, Any],
        *,
        unavailable: EvalstoreError | None,
    ) -> dict[str, Any]:
        """Open the run's journal and writer; replay older journals when the server answers."""
        settings = self._settings or load_settings()
        client = service.client
        target = target_fingerprint(client.connection_string)
        self._journal = SafetyNet.open(
            settings.evalstore_spool_dir,
            document,
            database=client.database_name,
            target=target,
            fsync=settings.evalstore_spool_fsync,
        )
        self._writer = BatchWriter(
            service,
            self._journal,
            document,
            run_stored=unavailable is None,
            batch_size=settings.evalstore_batch_size,
            flush_interval_s=settings.evalstore_flush_interval_ms / 1000,
            queue_size=settings.evalstore_queue_size,
            sync_hint=sync_command(client.connection_string, _shell_connection_string()),
        )
        self._writer.start()
        if unavailable is not None:
            self._writer.back_off(unavailable)
        else:
            self._replay = asyncio.create_task(
                replay_spool(
                    settings.evalstore_spool_dir,
                    lambda database: service,
                    accept=lambda c: c.target == target and c.database == client.database_name,
                )
            )
        self._document = document
        return document

    async def record_test(
        self,
        test_id: str,
        test_name: str | None = None,
        metrics: Mapping[str, MetricInput] | None = None,
        passed: bool | None = None,
        *,
        status: TestStatus | None = None,
        score: float | None = None,
        score_method: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        duration_ms: float | None = None,
        tags: Sequence[str] = (),
        participants: Sequence[str] = (),
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        usage: Sequence[Mapping[str, Any]] = (),
        attempts: int | None = None,
        tool_calls: Mapping[str, Any] | None = None,
        errors: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """Validate and store one test result; return the stored test run document.

        Args:
            test_id: stable id of the test across runs (its history key).
            test_name: human-readable name; defaults to `test_id`.
            metrics: metric name to `MetricData`, a dict of its fields, or a bare score.
            passed: the outcome; by default False when any metric says `passed=False`.
            status: `passed`, `failed`, `skipped` or `error`; derived from `passed` if omitted.
            score: the test's 0-100 score; by default computed by `score_method`.
            score_method: a registered calculator name (default `average`: mean of
                the metric scores, or 100/0 for a passed/failed test without metrics).
            started_at, finished_at, duration_ms: timing; missing parts are derived
                from the others and the clock.
            usage: what calls to models used for this test: dicts of `record_usage`'s
                arguments (without `test_id`).
            attempts: for an agent, how many attempts it took (`first_time_right` is
                derived: passed at the first attempt).
            tool_calls: tool name -> count, or `{count, failures, duration_ms}`.
            errors: exceptions, strings or `{type, message}` dicts met on the way
                (the first 20 are kept, one line each).

        With storage enabled, the result is appended to the run's journal and
        queued for the background writer before this returns; storage problems
        never raise here (see the README's "Durability" section).

        Raises:
            InvalidDataError (a ValueError): a value cannot be stored; names the field.
        """
        # One path for one result and for a batch: validated, journaled and stored alike.
        [outcome] = await self.record_tests(
            [
                {
                    "test_id": test_id,
                    "test_name": test_name,
                    "metrics": metrics,
                    "passed": passed,
                    "status": status,
                    "score": score,
                    "score_method": score_method,
                    "started_at": started_at,
                    "finished_at": finished_at,
                    "duration_ms": duration_ms,
                    "tags": tags,
                    "participants": participants,
                    "message": message,
                    "details": details,
                    "usage": usage,
                    "attempts": attempts,
                    "tool_calls": tool_calls,
                    "errors": errors,
                }
            ]
        )
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def record_tests(
        self, results: Sequence[Mapping[str, Any]], *, copy: bool = True
    ) -> list[dict[str, Any] | Exception]:
        """`record_test(**result)` for each of `results`, journaled in one write.

        What a runner that hands over results in batches (the pytest plugin) calls: each
        result is validated as `record_test` validates it, then the accepted ones go to
        the journal together (one system call, not one per result) before any is queued
        for the store, so that every result is in the journal before this returns, as
        with `record_test`.

        Args:
            results: the keyword arguments of `record_test`, one mapping per result.
            copy: False returns the recorder's own documents rather than copies: the
                caller must not change them (the pytest plugin only looks for refusals,
                and a copy per test costs a session's garbage collector).

        Returns:
            For each result in order, the stored test run document, or the exception
            that refused it (`InvalidDataError`, ...), which is not raised.
        """
        outcomes: list[dict[str, Any] | Exception] = []
        accepted: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
        # Encoded once: the journal's lines, and the local store's rows (the same text).
        encoded: list[EncodedTestRun | None] = []
        run = self._document  # None before start(): `_test_run` says so for each result
        stored = self._journal is not None and self._writer is not None
        for result in results:
            plain = (
                plain_test_run(result, run)
                if run is not None and stored and not self._finishing
                else None
            )
            if plain is not None:  # the usual result, built in one pass (see plain_result)
                accepted.append((len(outcomes), plain[0], []))
                encoded.append(plain[1])
                outcomes.append(plain[0])
                continue
            try:
                test_run, usage_documents = self._test_run(**result)
            except Exception as exc:
                outcomes.append(exc)
                continue
            if not stored:
                self._totals.add(test_run)
                for usage_document in usage_documents:
                    self.usage.add(usage_document)
                outcomes.append(test_run)
                continue
            document = {"_id": ObjectId(), **test_run}
            accepted.append((len(outcomes), document, usage_documents))
            encoded.append(_encoded_test_run(document))
            outcomes.append(test_run)
        if not accepted:
            return outcomes
        assert self._journal is not None
        documents = [document for _, document, _ in accepted]
        journaled = self._journal.append_tests(documents, encoded)
        for (index, document, usage_documents), text in zip(accepted, encoded, strict=True):
            try:
                await self._accept_test(
                    document, usage_documents, journaled=journaled, encoded=text
                )
            except Exception as exc:
                outcomes[index] = exc
                continue
            outcomes[index] = detached(document) if copy else document
        return outcomes

    async def _accept_test(
        self,
        document: dict[str, Any],
        usage_documents: list[dict[str, Any]],
        *,
        journaled: bool,
        encoded: EncodedTestRun | None = None,
    ) -> None:
        """Count a journaled test run, queue it for the store, and keep its usage records."""
        assert self._writer is not None
        self._totals.add(document)
        await self._writer.put(document, journaled=journaled, encoded=encoded)
        for usage_document in usage_documents:
            self._accept_usage(usage_document)
        for usage_document in usage_documents:
            await self._keep_usage(usage_document)

    def _test_run(
        self,
        test_id: str,
        test_name: str | None = None,
        metrics: Mapping[str, MetricInput] | None = None,
        passed: bool | None = None,
        *,
        status: TestStatus | None = None,
        score: float | None = None,
        score_method: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        duration_ms: float | None = None,
        tags: Sequence[str] = (),
        participants: Sequence[str] = (),
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        usage: Sequence[Mapping[str, Any]] = (),
        attempts: int | None = None,
        tool_calls: Mapping[str, Any] | None = None,
        errors: Sequence[Any] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The validated test run document (without `_id`) of `record_test`'s arguments, and
        its usage records."""
        run = self.document
        if self._finishing:
            raise EvalstoreError("the evaluation run is finished: record tests before finish()")
        check_text(test_id, "test_id")
        try:
            check_string(test_id, "test_id")
        except ValueError as exc:
            raise InvalidDataError(str(exc)) from None
        _check_optional(test_name, str, "test_name", "a string")
        _check_optional(message, str, "message", "a string")
        _check_optional(details, Mapping, "details", "a mapping (dict)")
        tags, participants = _tags(tags, "tags"), _tags(participants, "participants")
        metric_models = _metrics(metrics)
        passed, status = _outcome(passed, status, metric_models)
        method = score_method or ("manual" if score is not None else "average")
        if score is None and status != "skipped":
            score = score_method_score(method, metric_models, passed)
        started, finished, duration = self._timing(started_at, finished_at, duration_ms)
        try:
            fields = {
                "evaluation_run_id": run["_id"],
                "test_run_id": new_test_run_id(run["evaluation_run_id"], test_id),
                "test_id": test_id,
                "test_name": test_name or test_id,
                "started_at": started,
                "finished_at": finished,
                "duration_ms": duration,
                "metrics": metric_models,
                "score": score,
                "score_method": method,
                "passed": passed,
                "status": status,
                "tags": list(tags),
                "participants": list(participants),
                "message": message,
                "details": dict(details) if details is not None else None,
            }
            test_run = build_test_run_document(fields)
        except ValueError as exc:
            from pydantic import ValidationError  # loaded: only the model raises here

            if not isinstance(exc, ValidationError):
                raise
            raise invalid(exc) from None
        if _may_be_large(test_run):
            try:
                check_size(test_run, _LARGE_FIELDS)
            except ValueError as exc:
                raise InvalidDataError(str(exc)) from None
        agent = agent_details(
            attempts=attempts,
            tool_calls=None if tool_calls is None else dict(tool_calls),
            errors=errors,
            passed=bool(test_run["passed"]),
        )
        if agent is not None:  # only agent evaluations carry it: other documents keep their shape
            test_run["agent"] = agent
        usage_documents = [
            self._usage_document(test_id=test_id, **usage_arguments(entry)) for entry in usage
        ]
        return test_run, usage_documents

    async def log_metrics(
        self, values: Mapping[str, float], step: int, split: str = "train"
    ) -> None:
        """Log the values of one training step (epoch or batch): `{"loss": 0.31, "lr": 1e-4}`.

        Each value is a point of its metric's series, keyed on (run, metric, split,
        step): logging a step again replaces its values. The time is taken now. The
        step is journaled before this returns and stored write-behind, by the batch.

        Args:
            values: metric name (no `.` or `$`) -> finite number.
            step: a non-negative integer.
            split: `train`, `eval` or any name of letters, digits, `_` and `-`.

        Raises:
            InvalidDataError: a value, the step or the split is invalid (nothing is logged).
        """
        run = self.document
        if self._finishing:
            raise EvalstoreError("the evaluation run is finished: log metrics before finish()")
        checked = check_values(values)
        check_step(step)
        check_split(split)
        at = to_utc(utcnow())
        if self._journal is not None:
            self._journal.append(
                {"kind": "points", "split": split, "step": step, "values": checked, "at": at}
            )
        self._series.add(point_documents(run["_id"], checked, step, split, at))
        if self.service is not None and len(self._series.pending) >= POINTS_BATCH:
            await self._store_points(self.service)

    async def _store_points(self, service: MetricsStorageService) -> None:
        """Store the waiting points; on failure the journal alone keeps them from then on."""
        batch = self._series.take()
        if not batch:
            return
        try:
            await service.store_points(batch)
        except Exception as exc:
            if not self._series.degraded:
                log.warning(
                    "evalstore: could not store metric points (kept in the journal, stored "
                    "at the end of the run or by `evalstore sync`): %s",
                    exc,
                )
            self._series.give_up()

    async def _store_journaled_points(self, service: MetricsStorageService) -> None:
        """After a failed batch: every point of the run, from the journal."""
        assert self._journal is not None
        path = self._journal.path
        contents = read_journal(path) if path.exists() else None
        if contents is None:
            raise StorageUnavailableError("the journal holding the metric points is unreadable")
        await store_points(service, contents.points)

    async def record_usage(
        self,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        calls: int = 1,
        provider: str | None = None,
        cost: float | None = None,
        test_id: str | None = None,
        step: int | None = None,
    ) -> UsageReceipt:
        """Record what calls to a model used, and what they cost; see the README's
        "Cost and tokens" for the fields and how cached tokens are priced.

        Args:
            model: the model called (`gen_ai.request.model`).
            input_tokens: all input tokens, cached ones included (OpenTelemetry's
                `gen_ai.usage.input_tokens`).
            output_tokens: all output tokens, reasoning ones included.
            cache_read_tokens, cache_write_tokens: the part of `input_tokens` read
                from, and written to, the provider's prompt cache.
            reasoning_tokens: the part of `output_tokens` spent reasoning.
            calls: how many API calls this record covers.
            provider: the provider (`gen_ai.provider.name`), to tell apart one model
                sold by several.
            cost: the cost the caller knows (USD); else computed from prices.
            test_id: the test the usage belongs to, if any.
            step: a training or agent step, if any.

        Returns:
            The record, its cost, the run's cost so far and the budget status.

        Raises:
            InvalidDataError: a value is invalid (one line; nothing is recorded).
        """
        _ = self.document
        if self._finishing:
            raise EvalstoreError("the evaluation run is finished: record usage before finish()")
        document = self._usage_document(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            calls=calls,
            provider=provider,
            cost=cost,
            test_id=test_id,
            step=step,
        )
        self._accept_usage(document)
        status = await self._keep_usage(document)
        return UsageReceipt(
            document=dict(document),
            cost=document["cost"],
            run_cost=self.usage.run_cost,
            status=status,
        )

    def _usage_document(self, **fields: Any) -> dict[str, Any]:
        return self.usage.build(**fields, at=to_utc(utcnow()))

    def _accept_usage(self, document: dict[str, Any]) -> None:
        """Journal and count a usage record, at once (before any await: a finish racing
        with the caller can then never leave it behind)."""
        if self._journal is not None:
            self._journal.append({"kind": "usage", "doc": document})
        self.usage.add(document)

    async def _keep_usage(self, document: dict[str, Any]) -> BudgetStatus:
        """Store the waiting usage records by the batch, count an accepted record against
        the budgets; the budget status."""
        ledger = self.usage
        if self.service is not None and len(ledger.pending) >= self._usage_flush_at:
            await self._store_usage(self.service)
        if self.monitor is None or not self.monitor.budgets:
            return "ok"
        if self._budgets is None:
            from evalstore.monitors.budgets import BudgetTracker

            self._budgets = BudgetTracker(
                self.monitor.budgets, self.document, channels=self.monitor.channels
            )
        return await self._budgets.add(self.service, document["cost"], document["recorded_at"])

    async def _store_usage(self, service: MetricsStorageService) -> None:
        """Store the waiting usage records; on failure they wait for the next try (and the
        journal keeps them for `evalstore sync`)."""
        if self._usage is None or not self._usage.pending:
            return
        batch = self._usage.take()
        try:
            await service.store_usage(batch)
            self._usage_flush_at = USAGE_BATCH
        except Exception as exc:
            self._usage.pending[:0] = batch
            # No retry before another batch has come: a store that is away must not make
            # every call wait for its timeout (the journal keeps everything meanwhile).
            self._usage_flush_at = len(self._usage.pending) + USAGE_BATCH
            if not self._usage_failed:
                self._usage_failed = True
                log.warning("evalstore: could not store usage (kept in the journal): %s", exc)

    def _timing(
        self, started_at: datetime | None, finished_at: datetime | None, duration_ms: float | None
    ) -> tuple[datetime, datetime, float]:
        try:
            return self._times(started_at, finished_at, duration_ms)
        except OverflowError:  # datetime's range is years 1 to 9999
            raise InvalidDataError(
                "started_at, finished_at, duration_ms: the times they give fall outside the "
                f"years 1000 to 9999 (started_at={started_at}, finished_at={finished_at}, "
                f"duration_ms={duration_ms})"
            ) from None

    def _times(
        self, started_at: datetime | None, finished_at: datetime | None, duration_ms: float | None
    ) -> tuple[datetime, datetime, float]:
        if duration_ms is not None and (
            isinstance(duration_ms, bool)
            or not isinstance(duration_ms, int | float)
            or not 0 <= duration_ms <= MAX_DURATION_MS
        ):
            raise InvalidDataError(
                "duration_ms must be a non-negative number of milliseconds, at most a century, "
                f"got {duration_ms!r}"
            )
        _check_optional(started_at, datetime, "started_at", "a datetime")
        _check_optional(finished_at, datetime, "finished_at", "a datetime")
        if finished_at is None:
            if started_at is not None and duration_ms is not None:
                finished_at = _exact_utc(started_at) + timedelta(milliseconds=duration_ms)
            else:
                finished_at = self._clock()
        if started_at is None:
            if not duration_ms:  # a result without a duration starts when it finishes
                finished = to_utc(finished_at)
                return finished, finished, 0.0
            started_at = _exact_utc(finished_at) - timedelta(milliseconds=duration_ms)
        started, finished = to_utc(started_at), to_utc(finished_at)
        if duration_ms is None:
            duration_ms = (finished - started) / timedelta(milliseconds=1)
        return started, finished, float(duration_ms)

    async def finish(self, status: RunStatus = "completed") -> dict[str, Any]:
        """Finalise the run with counts, metric means and score; return its document.

        Idempotent: a second call returns the first result.
        """
        _ = self.document  # raises when the run has not started
        if self._finished is not None:
            return self._finished
        # Set before the first await: a record_test racing with finish() is refused,
        # never acknowledged and then left behind.
        self._finishing = True
        # A clock that went backwards (NTP, a VM resumed) must not end a run before it began.
        finished_at = max(to_utc(self._clock()), self.document["started_at"])
        try:
            if self.service is None:
                self._finished = self._local_result(status, finished_at)
            else:
                self._finished = await self._finalize(self.service, status, finished_at)
                if self.monitor is not None and self._stored:
                    await self._check(self.service, self._finished, status)
                if self._stored and os.environ.get("EVALSTORE_PUSHGATEWAY"):
                    await self._push(self._finished)
                plots_dir = self._plots_dir or os.environ.get("EVALSTORE_PLOTS_DIR")
                if self._stored and plots_dir and self._series.logged:
                    from evalstore.plots.auto import write_run_plots

                    self.plots = await write_run_plots(
                        self.service, self._finished, Path(plots_dir)
                    )
        finally:
            if self._owns_client and self.service is not None:
                try:
                    await self.service.client.close()
                except EvalstoreError as exc:  # e.g. a local store on a full disk
                    log.warning("evalstore: closing the store failed: %s", exc)
        return self._finished

    async def _push(self, run: dict[str, Any]) -> None:
        """Push the run's figures to `EVALSTORE_PUSHGATEWAY`; a failure is a warning."""
        from evalstore.monitors.prometheus import push_configured_run

        counts = self.check.counts() if self.check is not None else None
        problem = await asyncio.to_thread(push_configured_run, run, counts)
        if problem:
            log.warning("%s", problem)

    async def _check(
        self, service: MetricsStorageService, run: dict[str, Any], status: RunStatus
    ) -> None:
        """Store the alerts observed during the run and evaluate the rules on it (unless it
        was interrupted); a failure is a warning, never raised."""
        assert self.monitor is not None
        try:
            await self.monitor.store_observed(service, run)
            if status != "interrupted":
                self.check = await self.monitor.evaluate_run(service, run)
        except Exception as exc:  # monitoring must never break the run it watches
            log.warning(
                "evalstore: the monitors could not check run %s: %s", self.evaluation_run_id, exc
            )

    async def _finalize(
        self, service: MetricsStorageService, status: RunStatus, finished_at: datetime
    ) -> dict[str, Any]:
        """Drain the writer, then finalize on the server, or leave the journal for replay."""
        journal, writer = self._journal, self._writer
        assert journal is not None
        assert writer is not None
        journal.append({"kind": "finish", "status": status, "finished_at": finished_at}, sync=True)
        try:
            await writer.close()
        except Exception as exc:
            writer.warn_unavailable(exc)
        if self._replay is not None:
            try:
                await self._replay
            except Exception as exc:  # older journals stay for `evalstore sync`
                log.warning("evalstore: could not replay older journals: %s", exc)
        stored: dict[str, Any] | None = None
        try:
            if writer.degraded or writer.unjournaled:
                stored = await self._store_the_rest(service, status, finished_at)
            else:
                await self._store_usage(service)
                if self._usage is not None and self._usage.pending:
                    raise StorageUnavailableError("usage records could not be stored")
                await self._store_points(service)
                if self._series.degraded:
                    await self._store_journaled_points(service)
                stored = await service.finalize_evaluation_run(
                    self.document["_id"], status, finished_at=finished_at
                )
        except Exception as exc:  # storage must never break the caller: the journal keeps all
            writer.warn_unavailable(exc)
        finally:
            self._stored = stored is not None
            journal.close(remove=stored is not None)
            if not journal.intact:
                self._warn_journal_failed(journal, writer, stored is not None)
        return stored or self._local_result(status, finished_at)

    async def _store_the_rest(
        self, service: MetricsStorageService, status: RunStatus, finished_at: datetime
    ) -> dict[str, Any]:
        """Store what the writer could not (from the journal and from memory), then finalize."""
        writer, journal = self._writer, self._journal
        assert writer is not None
        assert journal is not None
        await service.upsert_evaluation_run(self.document)
        pending = dict(writer.unjournaled)
        kept_more = self._series.logged or (self._usage is not None and self._usage.records)
        journaled = journal.journaled or (kept_more and journal.path.exists())
        contents = read_journal(journal.path) if journaled else None
        if contents is not None:
            target = target_fingerprint(service.client.connection_string)
            for doc in contents.tests_to_replay(target):
                pending.setdefault(doc["test_run_id"], doc)
        await store_in_batches(
            service,
            list(pending.values()),
            journal.path,
            self.evaluation_run_id,
            on_batch=writer.mark_stored,
        )
        if contents is not None:
            await service.store_usage(list(contents.usage.values()))
            await store_points(service, contents.points)
        else:
            await self._store_points(service)
        await self._store_usage(service)
        if self._usage is not None and self._usage.pending:
            raise StorageUnavailableError("usage records could not be stored")
        return await service.finalize_evaluation_run(
            self.document["_id"], status, finished_at=finished_at
        )

    def _warn_journal_failed(self, journal: SafetyNet, writer: BatchWriter, final: bool) -> None:
        """One line on a run whose journal failed: what is stored, what waits, what is lost."""
        total, stored = self._totals.num_tests, len(writer.stored)
        lost, refused = len(writer.unjournaled), len(writer.refused)
        in_journal = total - stored - lost - refused if journal.path.exists() else 0
        if final and not lost and stored == total:
            where = f"all {total} results of run {self.evaluation_run_id} are stored"
        else:
            parts = [f"run {self.evaluation_run_id}: {stored} of {total} results stored"]
            if refused:
                parts.append(f"{refused} refused by the store (see the warning about them)")
            if in_journal:
                parts.append(f"{in_journal} kept in the journal (run `{writer.sync_hint}`)")
            parts.append(f"{lost} lost")
            where = ", ".join(parts)
        log.warning("evalstore: %s; %s", journal.describe_error(), where)

    def _local_result(self, status: RunStatus, finished_at: datetime) -> dict[str, Any]:
        """The finalised run as computed here, where no server computed it."""
        return {
            **self.document,
            **self._totals.as_fields(),
            "status": status,
            "finished_at": finished_at,
        }

    async def __aenter__(self) -> RunRecorder:
        await self.start()
        if self.enabled:
            self._guard.install()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                await self.finish("completed")
                return
            # The block failed: finalise as failed; it was cancelled, interrupted (Ctrl-C) or
            # terminated (BaseException, not Exception): as interrupted, so that a run cut
            # short is never `latest`. The original exception propagates, not one from storage.
            status: RunStatus = "failed" if isinstance(exc, Exception) else "interrupted"
            try:
                await self.finish(status)
            except Exception as storage_error:
                log.warning(
                    "evalstore could not finalize run %s: %s",
                    self.document["evaluation_run_id"],
                    storage_error,
                )
        finally:
            self._guard.exit_if_terminated()


def score_method_score(method: str, metrics: Mapping[str, MetricData], passed: bool) -> float:
    """Run the registered calculator `method`, checking that its result is a valid score."""
    value = score_method(method)(metrics, passed)
    try:
        checked = check_score(value, "score")
    except ValueError:
        checked = None
    if checked is None:
        raise InvalidDataError(
            f"score: score method {method!r} returned {value!r}, not a number from 0 to 100"
        )
    return checked


def _exact_utc(value: datetime) -> datetime:
    """`value` in UTC without rounding (naive = UTC), for arithmetic.

    Arithmetic in local time would drop `fold` and ignore a change of daylight
    saving time in between.
    """
    return (
        value.replace(tzinfo=timezone.utc)
        if value.tzinfo is None
        else value.astimezone(timezone.utc)
    )


def _tags(tags: object, name: str) -> tuple[str, ...]:
    """`check_tags(tags, name)`, with less work for the usual list (or tuple) of strings."""
    if (type(tags) is list or type(tags) is tuple) and all(type(t) is str and t for t in tags):
        return tuple(tags)
    return check_tags(tags, name)


def _metrics(metrics: Mapping[str, MetricInput] | None) -> dict[str, MetricData]:
    if metrics is None or (type(metrics) is dict and not metrics):
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidDataError(
            f"metrics must be a dict of name to metric, got {type(metrics).__name__}"
        )
    models = {name: metric_model(name, value) for name, value in metrics.items()}
    return models


def _outcome(
    passed: bool | None, status: TestStatus | None, metrics: Mapping[str, MetricData]
) -> tuple[bool, TestStatus]:
    if status is not None and status not in TEST_STATUSES:
        raise InvalidDataError(f"status must be one of {', '.join(TEST_STATUSES)}, got {status!r}")
    if passed is not None and not isinstance(passed, bool):
        raise InvalidDataError(f"passed must be True or False, got {passed!r}")
    if status is None:
        if passed is None:
            passed = all(metric.passed is not False for metric in metrics.values())
        return passed, "passed" if passed else "failed"
    if passed is not None and passed != (status == "passed"):
        raise InvalidDataError(f"passed={passed} contradicts status={status!r}")
    return status == "passed", status


_LARGE_FIELDS = ("details", "message", "metrics", "tags", "participants", "test_name", "test_id")


def _may_be_large(test_run: Mapping[str, Any]) -> bool:
    """Whether a result could approach MongoDB's 16 MiB (then it is measured exactly).

    Free-form `details` (of the test or of a metric) always are; otherwise the text
    fields are summed, which costs a few additions for the usual small result.
    """
    metrics = test_run["metrics"]
    if test_run["details"] is not None:
        return True
    text = len(test_run["message"] or "") + len(test_run["test_name"]) + len(test_run["test_id"])
    if metrics:
        if any(metric["details"] is not None for metric in metrics.values()):
            return True
        text += sum(len(name) + len(metric["unit"] or "") for name, metric in metrics.items())
    tags, participants = test_run["tags"], test_run["participants"]
    if tags:
        text += sum(map(len, tags))
    if participants:
        text += sum(map(len, participants))
    return text > LARGE_TEXT


def _shell_connection_string() -> str | None:
    """What a bare `evalstore sync` in this environment would connect to (None: unknown)."""
    try:
        return load_settings().mongodb_connection_string
    except ConfigurationError:
        return None


def detached(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a test run document that shares no list or dict with it: what `record_tests`
    returns, which its caller may change while the store has yet to write the original."""
    copy = dict(document)
    copy["tags"], copy["participants"] = list(copy["tags"]), list(copy["participants"])
    copy["metrics"] = {name: deepcopy(metric) for name, metric in copy["metrics"].items()}
    if copy["details"] is not None:
        copy["details"] = deepcopy(copy["details"])
    if "agent" in copy:  # an agent evaluation's attempts, tool calls and errors
        copy["agent"] = deepcopy(copy["agent"])
    return copy


def _encoded_test_run(document: dict[str, Any]) -> EncodedTestRun | None:
    """`codec.encode_test_run(document)`; None when only the generic encoder can say (it
    then writes the line, or refuses it, as it always did)."""
    try:
        return encode_test_run(document)
    except (TypeError, ValueError):
        return None


def _check_optional(value: object, kind: type | Any, name: str, what: str) -> None:
    """Refuse a value of another type than documented (None is always allowed)."""
    if value is not None and not isinstance(value, kind):
        raise InvalidDataError(f"{name} must be {what}, got {type(value).__name__} {value!r:.80}")


def evaluation_run(
    service: MetricsStorageService | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    environment: str | None = None,
    suite: str | None = None,
    repo_path: str | Path = ".",
    packages: Iterable[str] = (),
    settings: Settings | None = None,
    clock: Clock = utcnow,
    monitor: Monitor | bool | None = True,
    plots_dir: str | Path | None = None,
) -> RunRecorder:
    """Open an evaluation run: `async with evaluation_run(service, config=...) as run:`.

    Args:
        service: where to store; with None, one is built from the environment
            (`MONGODB_ENABLED`, `MONGODB_CONNECTION_STRING`, ...) and storage is
            off unless `MONGODB_ENABLED=true`.
        config: the system configuration to snapshot and hash.
        tags: experiment tags; default `EXPERIMENT_TAGS`.
        environment: dev, stage, prod or lab; default `ENVIRONMENT`.
        suite: what is being evaluated (a project, a benchmark), so that several suites
            recording into one database stay apart; default `EVALSTORE_SUITE`, else none.
        repo_path: where to read git provenance.
        packages: distributions whose versions go into the snapshot.
        settings: settings to use instead of reading the environment.
        clock: the source of timestamps (for importing history with past times).
        monitor: the rules checked when the run ends (not when interrupted); True
            (default): those of `EVALSTORE_MONITORS`, `evalstore.toml` or
            `pyproject.toml`, if any; False: none.
            The result is `run.check`; alerts go to the monitor's channels.
        plots_dir: where to write the curves of the metrics the run logged when it
            finishes, one PNG per metric (default: `EVALSTORE_PLOTS_DIR`, else none;
            needs `evalstore[plot]`). The paths are `run.plots`.

    On leaving the block the run is finalised: `completed`, or `failed` when the
    block raised, was cancelled or interrupted (the exception propagates).

    Raises:
        ConfigurationError: an environment variable or the monitor configuration is invalid.
    """
    owns_client = False
    if service is None or tags is None or environment is None or suite is None:
        settings = settings or load_settings()
    if service is None:
        assert settings is not None
        if settings.mongodb_enabled:
            service = MetricsStorageService(MongoDBClient.from_settings(settings))
            owns_client = True
    if monitor is True:
        monitor = None
        if service is not None:
            from evalstore.monitors.config import configured_monitor

            monitor = configured_monitor()
    return RunRecorder(
        service,
        monitor=monitor or None,
        plots_dir=plots_dir,
        config=config,
        tags=settings.experiment_tags if tags is None and settings else (tags or ()),
        environment=environment or (settings.environment if settings else "dev"),
        suite=suite if suite is not None else (settings.evalstore_suite if settings else None),
        repo_path=repo_path,
        packages=packages,
        clock=clock,
        owns_client=owns_client,
        settings=settings,
    )

"""Storage for the pytest plugin: a private event loop thread driving a `RunRecorder`.

pytest's hooks are synchronous and a test session may run asyncio loops of its
own (pytest-asyncio), so evalstore's async API runs on one event loop owned by
a daemon thread. The pytest thread only appends plain dicts to a list; every
`HANDOFF_BATCH` tests (fewer when `EVALSTORE_BATCH_SIZE` is smaller) or
`HANDOFF_INTERVAL_S` seconds, the batch goes to the loop,
where `RunRecorder.record_tests` validates each result, journals the batch in one
write and queues the results for the recorder's own batching writer. Storage
problems never reach pytest: they are kept (with the warnings the recorder logs)
for one line in the summary.

The pytest thread waits while the loop takes a batch (at most `HANDOFF_WAIT_S`,
and only when the loop has finished with its previous work). Both threads need
the GIL: running side by side, they would hand it to each other at every system
call either makes (a journal line, a SQLite step, pytest's output capture), and
those thousands of hand-overs cost more than recording the results. Waiting
costs pytest nothing, since only one of them could run at a time anyway, and a
batch is then in the journal before the next tests run. With an in-process
store (`mongomock://`, the local store) the wait also covers the store write a
batch completes, and the session waits while the run opens: that is this
process's work too. A MongoDB server's answer is still waited for on the loop
alone: the recorder's writer sends batches in the background, and a loop still
busy with earlier work (opening the run, a store that holds it up) gets the
next batch without a wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from evalstore.analysis.pipelines import FINISHED
from evalstore.errors import EvalstoreError
from evalstore.models import Document, RunStatus
from evalstore.monitors.channels import ALERTS_LOGGER, alert_line
from evalstore.pytest_plugin.outcome import one_line
from evalstore.recording.run import RunRecorder
from evalstore.redaction import redact_uri
from evalstore.service import MetricsStorageService
from evalstore.settings import Settings
from evalstore.storage.client import MongoDBClient, RefusedDocument
from evalstore.storage.engine import EncodedTestRun

log = logging.getLogger("evalstore")
# How many results pytest's thread hands to the recorder at once, and the longest one waits.
# A killed session (SIGKILL) loses what it has not handed over: at most one batch, or one
# second of results. 500 (the recorder's default batch) costs a session of 2,000 trivial tests
# about 3% less than 100 did: fewer journal writes, store transactions and thread wake-ups.
HANDOFF_BATCH = 500
HANDOFF_INTERVAL_S = 1.0
# The longest the pytest thread waits for the loop to take a batch (journaled and queued).
HANDOFF_WAIT_S = 1.0
# Loop turns the recorder's writer needs to wake on its queue, take a batch the handoff filled
# and start writing it (`BatchWriter._next_batch` waits on the queue's getter task).
WRITER_TURNS = 8

T = TypeVar("T")


class BackgroundLoop:
    """One asyncio event loop running in a private daemon thread."""

    def __init__(self, name: str = "evalstore-storage") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def thread_id(self) -> int | None:
        """The identifier of the loop's thread."""
        return self._thread.ident

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coroutine` on the loop; return a future the calling thread can wait on."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what is left on the loop, stop it, join the thread and close the loop."""
        if self._closed:
            return
        self._closed = True

        async def cancel_the_rest() -> None:
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()
            await self._loop.shutdown_default_executor()

        try:
            self.submit(cancel_the_rest()).result(timeout)
        except Exception as exc:  # a loop stuck in a blocking call: stop it anyway
            log.debug("evalstore loop shutdown: %r", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()


class WarningCollector(logging.Handler):
    """Keeps the warnings logged on the `evalstore` logger, one line each, redacted.

    The recorder reports storage trouble it survives (MongoDB unavailable,
    results kept in the spool for replay) as warnings on that logger; the
    plugin keeps those logged from its own loop thread and shows the first one
    in the terminal summary.
    """

    def __init__(self, thread_id: int | None = None) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.thread_id = thread_id

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's first line (only records from `thread_id`, when set)."""
        if self.thread_id is not None and record.thread != self.thread_id:
            return  # e.g. the session's own tests using evalstore
        if record.name == ALERTS_LOGGER:
            return  # the monitor's alerts: the summary lists them, they are no storage problem
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not break the writer
            text = str(record.msg)
        line = one_line(redact_uri(text), limit=None)
        if line:
            self.messages.append(line.removeprefix("evalstore: "))


@dataclass(frozen=True)
class RunSummary:
    """What the terminal summary line says about a finished evaluation run."""

    evaluation_run_id: str
    num_tests: int
    num_passed: int
    score: float | None
    branch: str | None
    environment: str
    previous_run_id: str | None = None
    previous_score: float | None = None
    alerts: list[str] = field(default_factory=list)
    """One line per alert the monitor rules raised on this run, worst first."""

    def line(self) -> str:
        """`evalstore: run <id>  tests 12  passed 11  score 86.6 (+1.3 vs <previous id>)`."""
        score = "-" if self.score is None else f"{self.score:.1f}"
        text = (
            f"evalstore: run {self.evaluation_run_id}  tests {self.num_tests}  "
            f"passed {self.num_passed}  score {score}"
        )
        if self.previous_run_id is None:
            return f"{text} (first run on {self.branch or 'nogit'}/{self.environment})"
        if self.score is None or self.previous_score is None:
            return f"{text} (no score to compare with {self.previous_run_id})"
        return f"{text} ({self.score - self.previous_score:+.1f} vs {self.previous_run_id})"


async def previous_finished_run(client: MongoDBClient, run: Mapping[str, Any]) -> Document | None:
    """The latest finished run with tests before `run` of the same suite, branch and environment.

    Finished as for `compare previous latest`: `completed` or `failed`.
    """
    query = {
        "_id": {"$ne": run["_id"]},
        "status": {"$in": list(FINISHED)},
        "num_tests": {"$gt": 0},
        "environment": run.get("environment"),
        "git_branch": run.get("git_branch"),
        "suite": run.get("suite"),  # None also matches runs stored before suites existed
        "started_at": {"$lte": run["started_at"]},
    }
    return await client.read_one(
        "evaluation_runs",
        query,
        sort=[("started_at", -1), ("_id", -1)],
        action="read the previous evaluation run",
    )


def describe(exc: BaseException) -> str:
    """One line for a warning: evalstore's own messages as they are, others with their type."""
    text = str(exc) if isinstance(exc, EvalstoreError) else f"{type(exc).__name__}: {exc}"
    return one_line(redact_uri(text), limit=None) or type(exc).__name__


class WatchedService(MetricsStorageService):
    """The storage service, noting the batch of test runs being written (for the handoff)."""

    def __init__(self, client: MongoDBClient) -> None:
        super().__init__(client)
        self.writing: asyncio.Future[None] | None = None
        """Done when the latest `upsert_test_runs` call is; None once it is."""

    async def upsert_test_runs(
        self, documents: Sequence[Document], encoded: Sequence[EncodedTestRun | None] | None = None
    ) -> list[RefusedDocument]:
        """`MetricsStorageService.upsert_test_runs`, noted in `writing` while it runs."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writing = done
        try:
            return await super().upsert_test_runs(documents, encoded)
        finally:
            done.set_result(None)
            if self.writing is done:
                self.writing = None


class StorageSession:
    """One evaluation run recorded from pytest's thread onto the background loop.

    Args:
        settings: connection string, database, timeout, environment, spool.
        tags: the run's experiment tags.
        packages: distributions whose versions go into the system information.
        system_config: the system configuration to snapshot.
        repo_path: where to read git provenance.

    Raises:
        ConfigurationError: the connection string is invalid.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tags: Iterable[str] = (),
        packages: Iterable[str] | Mapping[str, str | None] = (),
        system_config: Mapping[str, Any] | None = None,
        repo_path: str | Path = ".",
        suite: str | None = None,
    ) -> None:
        self.client = MongoDBClient.from_settings(settings)
        self.service = WatchedService(self.client)
        self._problems: list[str] = []
        self.monitor_problem: str | None = None
        """Why the monitor rules are not checked (an invalid configuration), or None."""
        monitor = None
        try:
            from evalstore.monitors.config import configured_monitor

            monitor = configured_monitor(Path(repo_path))
        except EvalstoreError as exc:  # the results are still stored; the rules are not checked
            self.monitor_problem = f"monitor rules not checked: {exc}"
        self.recorder = RunRecorder(
            self.service,
            config=system_config,
            tags=tags,
            environment=settings.environment,
            suite=suite,
            repo_path=repo_path,
            packages=packages,
            settings=settings,
            monitor=monitor,
        )
        self._timeout_s = settings.mongodb_timeout_ms / 1000.0
        # No network to wait for: its writes are this process's work, best done in a handoff.
        self._in_process_store = self.client.is_embedded or self.client.is_local
        self._pending: list[dict[str, Any]] = []
        # The recorder's writer stores a handoff in one write, which the handoff waits for.
        self._handoff_batch = min(HANDOFF_BATCH, settings.evalstore_batch_size)
        self._last_flush = time.monotonic()
        self._busy: concurrent.futures.Future[None] | None = None
        """The loop's latest work from this thread: opening the run, or recording a batch."""
        self._problems_lock = threading.Lock()
        self._disabled = False
        self._write_lock: asyncio.Lock | None = None
        self._loop = BackgroundLoop()
        self._collector = WarningCollector(self._loop.thread_id)
        self._logger_level = log.level
        log.addHandler(self._collector)
        if log.getEffectiveLevel() > logging.WARNING:  # e.g. pytest --log-level=ERROR
            log.setLevel(logging.WARNING)

    # --- called from pytest's thread -------------------------------------------------

    @property
    def problems(self) -> list[str]:
        """The storage problems met so far: the recorder's warnings, then the plugin's."""
        with self._problems_lock:
            return [*self._collector.messages, *self._problems]

    def start(self) -> concurrent.futures.Future[None]:
        """Open the evaluation run in the background: tests run while MongoDB answers.

        With an in-process store there is no server to wait for: opening the run (the
        store's modules and schema, git, the run document) is this process's own work,
        so pytest's thread waits for it (at most `HANDOFF_WAIT_S`) rather than compete
        with it for the GIL (see the module docstring).

        Returns:
            The opening, for a caller that wants to wait for it.
        """
        self._busy = self._loop.submit(self._start())
        if self._in_process_store:
            concurrent.futures.wait([self._busy], timeout=HANDOFF_WAIT_S)
        return self._busy

    def add(self, result: dict[str, Any]) -> None:
        """Queue one test result (the keyword arguments of `record_test`)."""
        self._pending.append(result)
        if (
            len(self._pending) >= self._handoff_batch
            or time.monotonic() - self._last_flush >= HANDOFF_INTERVAL_S
        ):
            self._submit_pending()

    def finish(self, status: RunStatus) -> RunSummary | None:
        """Record what is pending and finalise the run; its summary, or None on trouble."""
        self._submit_pending()
        wait_s = max(30.0, 10 * self._timeout_s)
        future = self._loop.submit(self._finish(status))
        try:
            return future.result(wait_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._note(f"results may be incomplete: MongoDB did not answer within {wait_s:.0f} s")
        except Exception as exc:
            self._note(f"results not stored: {describe(exc)}")
        return None

    def close(self) -> None:
        """Close the connection, stop the background loop, detach the log handler."""
        try:
            self._loop.submit(self.client.close()).result(5.0)
        except Exception as exc:
            log.debug("evalstore could not close its client: %r", exc)
        self._loop.close()
        log.removeHandler(self._collector)
        log.setLevel(self._logger_level)

    def _submit_pending(self) -> None:
        self._last_flush = time.monotonic()
        if self._pending:
            batch, self._pending = self._pending, []
            wait = self._busy is None or self._busy.done()
            self._busy = self._loop.submit(self._record(batch))
            if wait:  # see the module docstring; a loop still busy gets no wait
                concurrent.futures.wait([self._busy], timeout=HANDOFF_WAIT_S)

    def _note(self, message: str) -> None:
        with self._problems_lock:
            self._problems.append(message)

    # --- run on the background loop, one at a time, in submission order --------------

    def _lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    def _fail(self, exc: BaseException) -> None:
        self._disabled = True
        self._note(f"results not stored: {describe(exc)}")

    async def _start(self) -> None:
        async with self._lock():
            try:
                await self.recorder.start()
            except Exception as exc:
                self._fail(exc)

    async def _record(self, batch: list[dict[str, Any]]) -> None:
        async with self._lock():
            if self._disabled:
                return
            # The whole batch goes to the journal in one write (see `RunRecorder.record_tests`).
            outcomes = await self.recorder.record_tests(batch, copy=False)
            for result, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    self._note(f"test {result.get('test_id')!r} not stored: {describe(outcome)}")
            if self._in_process_store:
                await self._let_the_writer_catch_up()

    async def _let_the_writer_catch_up(self) -> None:
        """Let the recorder's writer take a batch this handoff filled, and wait while it writes.

        With an in-process store that write is work for this process's GIL: done while
        pytest's thread waits for the handoff, it competes with nothing (see the module
        docstring). A MongoDB server's answer is waited for on the loop alone.
        """
        for _ in range(WRITER_TURNS):
            if self.service.writing is not None:
                break
            await asyncio.sleep(0)
        writing = self.service.writing
        if writing is not None:
            await asyncio.wait([writing])  # not `await writing`: a cancellation must not reach it

    async def _finish(self, status: RunStatus) -> RunSummary | None:
        async with self._lock():
            if self._disabled:
                return None
            try:
                run = await self.recorder.finish(status)
                if self.problems:  # not (all) stored: no comparison, and no more waiting
                    return None
                previous = await previous_finished_run(self.client, run)
            except Exception as exc:
                self._fail(exc)
                return None
        check = self.recorder.check
        return RunSummary(
            alerts=[alert_line(alert) for alert in check.alerts] if check else [],
            evaluation_run_id=str(run["evaluation_run_id"]),
            num_tests=int(run.get("num_tests", 0)),
            num_passed=int(run.get("num_passed", 0)),
            score=run.get("score"),
            branch=run.get("git_branch"),
            environment=str(run.get("environment")),
            previous_run_id=previous["evaluation_run_id"] if previous else None,
            previous_score=previous.get("score") if previous else None,
        )

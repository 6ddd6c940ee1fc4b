"""The background writer: batches journaled test runs into bulk upserts to MongoDB."""

from __future__ import annotations

import asyncio
import logging

from evalstore.errors import EvalstoreError
from evalstore.models import Document, utcnow
from evalstore.recording.rejected import keep_refused
from evalstore.recording.safety_net import SafetyNet
from evalstore.service import MetricsStorageService
from evalstore.storage.client import RefusedDocument
from evalstore.storage.engine import EncodedTestRun

log = logging.getLogger("evalstore")

HEARTBEAT_S = 30.0
ATTEMPTS = 2
RETRY_DELAY_S = 0.05
MAX_BACKOFF_S = 30.0


class BatchWriter:
    """Sends queued test runs in batches; on failure they stay in the journal for replay.

    A result the journal could not take (a full disk) is held here until the
    store has it: `unjournaled` maps its `test_run_id` to the document.

    A batch goes out when it reaches `batch_size` or `flush_interval_s` after
    collection started, and on `close()`. A failed batch is retried once; if
    that fails too, MongoDB counts as unavailable: one warning, and no write is
    tried for a backoff period (doubling up to 30 s) so that recording never
    waits on a dead server. Results that were not acknowledged are replayed from
    the journal at finalization or by `evalstore sync`.

    Args:
        service: where to write.
        journal: the run's journal, where acknowledgements are noted.
        run: the evaluation run document (stored before the first batch if needed).
        run_stored: whether `run` is already on the server.
        batch_size, flush_interval_s, queue_size: batching and back-pressure.
        heartbeat_s: how often `last_seen_at` moves forward while recording.
        sync_hint: the command that stores the journal's results, for the warning.
    """

    def __init__(
        self,
        service: MetricsStorageService,
        journal: SafetyNet,
        run: Document,
        *,
        run_stored: bool,
        batch_size: int,
        flush_interval_s: float,
        queue_size: int,
        heartbeat_s: float = HEARTBEAT_S,
        sync_hint: str = "evalstore sync",
    ) -> None:
        self._service = service
        self._journal = journal
        self._run = run
        self._run_stored = run_stored
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._heartbeat_s = heartbeat_s
        self.sync_hint = sync_hint
        self._queue: asyncio.Queue[Document | None] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._retry_at = 0.0
        self._backoff = 1.0
        self._last_heartbeat = self._loop.time()
        self._warned = False
        self.stored: set[str] = set()
        """The `test_run_id`s the store acknowledged (refused ones not counted)."""
        self.unjournaled: dict[str, Document] = {}
        self._encoded: dict[str, EncodedTestRun] = {}
        """The journal's text of queued test runs, by `test_run_id` (until they are written)."""
        self.refused: set[str] = set()
        """The `test_run_id`s the store refused (kept aside in the rejected file)."""
        self.degraded = not run_stored
        """True once anything (the run, a batch) is only in the journal."""

    def start(self) -> None:
        """Start the background task."""
        self._task = asyncio.create_task(self._run_loop())

    async def put(
        self, document: Document, *, journaled: bool = True, encoded: EncodedTestRun | None = None
    ) -> None:
        """Queue one test run; waits while the queue is full.

        Once a batch is waiting, it also yields to the event loop so that the
        writer can send it even when the caller records in a tight loop.

        Args:
            document: the test run.
            journaled: False when the journal could not take it: it is then held
                in memory (`unjournaled`) until the store acknowledges it.
            encoded: its text as the journal wrote it (`codec.encode_test_run`), which a
                local store keeps instead of encoding it again.
        """
        if not journaled:
            self.unjournaled[document["test_run_id"]] = document
        if encoded is not None:
            self._encoded[document["test_run_id"]] = encoded
        queue = self._queue
        if queue.full():
            await queue.put(document)
        else:  # what put() does when there is room, without creating a coroutine
            queue.put_nowait(document)
        if queue.qsize() >= self._batch_size:
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Send what is queued and stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        if not self._queue.empty():  # queued after close began: only the journal has them
            self.degraded = True

    def warn_unavailable(self, exc: BaseException) -> None:
        """Say once that the store is unavailable and where results wait for it."""
        self.degraded = True
        if self._warned:
            return
        self._warned = True
        if self._journal.intact:
            log.warning(
                "evalstore: %s is unavailable (%s); results are kept in %s and will be "
                "stored when it is back (or run `%s`)",
                self._service.client.store_kind,
                exc,
                self._journal.path,
                self.sync_hint,
            )
        else:  # the counts come at the end of the run, when they are known
            log.warning(
                "evalstore: %s is unavailable (%s) and evalstore %s: results are held in "
                "memory until the end of the run",
                self._service.client.store_kind,
                exc,
                self._journal.describe_error(),
            )

    async def _run_loop(self) -> None:
        closing = False
        while not closing:
            batch: list[Document] = []
            try:
                batch, closing = await self._next_batch()
                self._journal.sync_if_due()
                if batch:
                    await self._write(batch)
                await self._heartbeat()
            except Exception as exc:  # never die: the journal still holds the batch
                self.back_off(exc)

    async def _next_batch(self) -> tuple[list[Document], bool]:
        # The pytest plugin waits for a batch its handoff fills, on an in-process store: it
        # counts on this taking the batch within a few loop turns of the put that fills it
        # (`pytest_plugin.writer.WRITER_TURNS`; tests/pytest_plugin/test_handoff.py).
        batch: list[Document] = []
        deadline = self._loop.time() + self._interval
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                # Not wait_for: on Python < 3.12 it can swallow a cancellation.
                get = asyncio.ensure_future(self._queue.get())
                try:
                    await asyncio.wait({get}, timeout=remaining)
                finally:
                    if not get.done():
                        # A cancelled get() has not taken an item from the queue.
                        get.cancel()
                if get.cancelled() or not get.done():
                    break
                item = get.result()
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _available(self) -> bool:
        return self._loop.time() >= self._retry_at

    def back_off(self, exc: BaseException) -> None:
        """Warn (once) and try no write for a while: MongoDB just failed."""
        self.warn_unavailable(exc)
        self._retry_at = self._loop.time() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    async def _write(self, batch: list[Document]) -> None:
        encoded = [self._encoded.pop(doc["test_run_id"], None) for doc in batch]
        if not self._available():
            self.degraded = True
            return
        for attempt in range(ATTEMPTS):
            try:
                if not self._run_stored:
                    await self._service.upsert_evaluation_run(self._run)
                    self._run_stored = True
                refused = await self._service.upsert_test_runs(batch, encoded)
            except EvalstoreError as exc:
                if attempt == ATTEMPTS - 1:
                    self.back_off(exc)
                    return
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            # A refused result is kept in the rejected file, so it is done with too.
            keep_refused(self._journal.path, refused, self._run["evaluation_run_id"])
            ids = [doc["test_run_id"] for doc in batch]
            self._journal.append({"kind": "acked", "ids": ids})
            self.mark_stored(batch, refused)
            self._backoff = 1.0
            return

    def mark_stored(self, batch: list[Document], refused: list[RefusedDocument]) -> None:
        """Count a batch the store took (its refused documents are kept aside, not stored)."""
        not_stored = {item.document["test_run_id"] for item in refused}
        self.refused |= not_stored
        for doc in batch:
            test_run_id = doc["test_run_id"]
            self.unjournaled.pop(test_run_id, None)
            if test_run_id not in not_stored:
                self.stored.add(test_run_id)

    async def _heartbeat(self) -> None:
        if not self._run_stored or not self._available():
            return
        if self._loop.time() - self._last_heartbeat < self._heartbeat_s:
            return
        self._last_heartbeat = self._loop.time()
        try:
            await self._service.touch_evaluation_run(self._run["_id"], utcnow())
        except EvalstoreError as exc:
            self.back_off(exc)

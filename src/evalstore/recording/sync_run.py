"""`training_run`: an evaluation run for plain, synchronous code (most training loops).

```python
with evalstore.training_run(config=config) as run:
    for epoch in range(epochs):
        run.log_metrics({"loss": loss, "accuracy": accuracy}, step=epoch)
```

The recorder runs on an event loop of its own, in a background thread; each call
waits for it, so a value is journaled when the call returns, exactly as with the
async API, and an exception raised inside the block finalises the run as failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from evalstore.recording.run import RunRecorder, evaluation_run
from evalstore.recording.usage import UsageReceipt

T = TypeVar("T")


class SyncRun:
    """A `RunRecorder` driven from synchronous code; use it as a context manager.

    Args:
        recorder: the run to drive (not started yet).
    """

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the run is not open: use `with training_run(...) as run:`")
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            coroutine, self._loop
        )
        return future.result()

    def __enter__(self) -> SyncRun:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name="evalstore-training-run", daemon=True
        )
        self._thread.start()
        self._loop = loop
        try:
            self._call(self.recorder.__aenter__())
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._call(self.recorder.__aexit__(exc_type, exc, tb))
        finally:
            self._stop()

    def _stop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def log_metrics(self, values: Mapping[str, float], step: int, split: str = "train") -> None:
        """`RunRecorder.log_metrics`, from synchronous code."""
        self._call(self.recorder.log_metrics(values, step, split))

    def record_test(self, test_id: str, **fields: Any) -> dict[str, Any]:
        """`RunRecorder.record_test`, from synchronous code."""
        return self._call(self.recorder.record_test(test_id, **fields))

    def record_usage(self, model: str, **fields: Any) -> UsageReceipt:
        """`RunRecorder.record_usage`, from synchronous code."""
        return self._call(self.recorder.record_usage(model, **fields))

    @property
    def document(self) -> dict[str, Any]:
        """The run document (as finalised, after the block)."""
        return self.recorder.document

    @property
    def evaluation_run_id(self) -> str:
        """The run's human-readable id."""
        return self.recorder.evaluation_run_id


def training_run(**arguments: Any) -> SyncRun:
    """`evaluation_run(...)` for synchronous code: `with training_run(config=...) as run:`.

    Takes the same arguments as `evaluation_run`.
    """
    return SyncRun(evaluation_run(**arguments))

"""Graceful shutdown: SIGTERM finalizes the recording block like Ctrl-C does, then exits."""

from __future__ import annotations

import asyncio
import signal
import threading


class TerminationGuard:
    """While installed, SIGTERM cancels the task recording a run, as asyncio does for SIGINT.

    The run's `async with` block then finalizes (flushing the queue to MongoDB,
    or leaving it in the fsynced journal) and `exit_if_terminated()` re-raises
    SIGTERM with its default action, so the process still dies of SIGTERM.
    Nothing is installed outside the main thread, without a running loop, or
    when the program has its own SIGTERM handler.
    """

    def __init__(self) -> None:
        self.terminated = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Route SIGTERM to cancelling the current task, if that is safe here."""
        task = asyncio.current_task()
        if (
            task is None
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        ):
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, self._terminate, task)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            return
        self._loop = loop

    def _terminate(self, task: asyncio.Task[object]) -> None:
        self.terminated = True
        task.cancel()

    def uninstall(self) -> None:
        """Give SIGTERM back its default action."""
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGTERM)
            self._loop = None

    def exit_if_terminated(self) -> None:
        """After finalizing: die of the SIGTERM we received, like an unguarded process."""
        self.uninstall()
        if self.terminated:
            signal.raise_signal(signal.SIGTERM)

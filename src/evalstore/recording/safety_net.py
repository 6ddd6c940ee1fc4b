"""The journal as a safety net, not a gate: a journal that cannot be written never stops a run.

A full disk, a read-only or missing spool folder: the results still go to the
store directly (write-through), the caller is never raised at, and what was
kept where is counted so that one warning can say it exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from evalstore.models import Document
from evalstore.recording.journal import Journal, journal_path
from evalstore.settings import FsyncPolicy

log = logging.getLogger("evalstore")


class SafetyNet:
    """A run's journal that never raises: after its first failure it is given up.

    Args:
        journal: the open journal, or None when it could not even be created.
        path: where the journal is (or was to be), for messages.
        error: why it could not be created, when `journal` is None.
    """

    def __init__(self, journal: Journal | None, path: Path, error: OSError | None = None) -> None:
        self._journal = journal
        self.path = path
        self.error = error
        self.journaled = 0
        """Test results written to the journal."""

    @classmethod
    def open(
        cls, spool_dir: Path, run: Document, *, database: str, target: str, fsync: FsyncPolicy
    ) -> SafetyNet:
        """Create the run's journal; a folder that cannot hold it gives a net with a hole."""
        path = journal_path(spool_dir, run)
        try:
            journal = Journal.create(spool_dir, run, database=database, target=target, fsync=fsync)
        except OSError as exc:
            return cls(None, path, exc)
        return cls(journal, journal.path)

    @property
    def intact(self) -> bool:
        """True while every line asked for was written."""
        return self._journal is not None and self.error is None

    @property
    def journal(self) -> Journal | None:
        """The journal, while it is usable."""
        return self._journal if self.intact else None

    def append(self, entry: Document, *, sync: bool = False) -> bool:
        """Write one line; False (and the journal given up) when it cannot be written."""
        journal = self.journal
        if journal is None:
            return False
        try:
            journal.append(entry, sync=sync)
        except OSError as exc:
            self.error = exc
            return False
        if entry.get("kind") == "test":
            self.journaled += 1
        return True

    def append_tests(
        self,
        documents: Sequence[Document],
        encoded: Sequence[tuple[str, bool] | None] | None = None,
    ) -> bool:
        """Write one test line per document, in one write; False (and the journal given up)
        when they cannot be written (then none of them is in the journal).

        Args:
            documents: the test run documents.
            encoded: for each, `codec.encode_test_run(document)` when the caller has it.
        """
        journal = self.journal
        if journal is None:
            return False
        try:
            journal.append_tests(documents, encoded or [None] * len(documents))
        except OSError as exc:
            self.error = exc
            return False
        self.journaled += len(documents)
        return True

    def sync_if_due(self) -> None:
        """Fsync per the policy; a failure gives the journal up."""
        journal = self.journal
        if journal is None:
            return
        try:
            journal.sync_if_due()
        except OSError as exc:
            self.error = exc

    def close(self, *, remove: bool) -> None:
        """Close the journal; remove it when everything in it is stored."""
        if self._journal is None:
            return
        try:
            self._journal.close(remove=remove)
        except OSError as exc:
            self.error = self.error or exc
            log.warning("evalstore: cannot close the journal %s: %s", self.path, exc)

    def describe_error(self) -> str:
        """`cannot write the journal <path> (<reason>)`, for warnings."""
        reason = self.error.strerror if self.error and self.error.strerror else self.error
        return f"cannot write the journal {self.path} ({reason})"

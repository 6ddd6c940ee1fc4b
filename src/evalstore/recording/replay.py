"""Replay journals from the spool into MongoDB, idempotently."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evalstore.errors import EvalstoreError
from evalstore.models import Document
from evalstore.recording.journal import (
    JournalContents,
    claim,
    journal_paths,
    read_journal,
    remove_journal,
    target_fingerprint,
)
from evalstore.recording.rejected import keep_refused
from evalstore.redaction import redact_uri
from evalstore.service import MetricsStorageService
from evalstore.storage.client import RefusedDocument

log = logging.getLogger("evalstore")

REPLAY_BATCH = 500
Progress = Callable[[int], None]


def sync_command(connection_string: str, default_connection_string: str | None) -> str:
    """The exact `evalstore sync` command that stores a journal's results in their store.

    A password never appears: a connection string holding one is shown redacted,
    and the user puts it back (or sets MONGODB_CONNECTION_STRING and runs it bare).
    """
    if connection_string == default_connection_string:
        return "evalstore sync"
    redacted = redact_uri(connection_string)
    command = f"evalstore sync --to '{redacted}'"
    if redacted != connection_string:
        command += " (with the password in place of ***)"
    return command


@dataclass
class ReplayReport:
    """What a replay did."""

    journals: int = 0
    test_runs: int = 0
    finalized: int = 0
    locked: int = 0
    skipped_lines: int = 0
    failed: list[str] = field(default_factory=list)


async def store_points(service: MetricsStorageService, points: Sequence[Document]) -> None:
    """Store journaled metric points in batches, in the order they were logged (so that a
    step logged twice keeps its later value)."""
    for start in range(0, len(points), REPLAY_BATCH * 10):
        await service.store_points(points[start : start + REPLAY_BATCH * 10])


async def store_in_batches(
    service: MetricsStorageService,
    documents: Sequence[Document],
    journal: Path,
    run_id: str,
    *,
    on_batch: Callable[[list[Document], list[RefusedDocument]], object] | None = None,
) -> None:
    """Upsert test runs in batches; what the store refuses goes to the run's rejected file.

    `on_batch` is called with each batch sent and the documents of it that were refused.
    """
    for start in range(0, len(documents), REPLAY_BATCH):
        batch = list(documents[start : start + REPLAY_BATCH])
        refused = await service.upsert_test_runs(batch)
        keep_refused(journal, refused, run_id)
        if on_batch is not None:
            on_batch(batch, refused)


async def replay_contents(
    service: MetricsStorageService,
    contents: JournalContents,
    *,
    on_pending: Progress | None = None,
    on_progress: Progress | None = None,
) -> Document | None:
    """Store one journal's run and unacknowledged test runs, then finalize if it finished.

    Every write is an upsert on the human ids with `$setOnInsert`, so replaying
    what is already stored changes nothing. `on_pending` is called first with
    the number of test runs to send, `on_progress` with each number sent.

    Returns:
        The finalized run document, or None when the journal has no finish line
        (the run stays `running` until `evalstore runs reap` interrupts it).
    """
    if contents.headerless:
        # Without its header the run document is unknown: its tests go only where it is.
        if await service.get_evaluation_run(contents.run["_id"]) is None:
            raise EvalstoreError(
                f"journal {contents.path} has no readable header and its run "
                f"{contents.run['_id']} is not in database {service.client.database_name!r}; "
                "left in place"
            )
    else:
        await service.upsert_evaluation_run(contents.run)
    pending = contents.tests_to_replay(target_fingerprint(service.client.connection_string))
    if on_pending is not None:
        on_pending(len(pending))
    await store_in_batches(
        service,
        pending,
        contents.path,
        contents.run.get("evaluation_run_id", "?"),
        on_batch=None
        if on_progress is None
        else lambda sent, refused: on_progress(len(sent) - len(refused)),
    )
    await service.store_usage(list(contents.usage.values()))
    await store_points(service, contents.points)
    if contents.finish is None:
        return None
    return await service.finalize_evaluation_run(
        contents.run["_id"], contents.finish["status"], finished_at=contents.finish["finished_at"]
    )


async def replay_spool(
    spool_dir: Path,
    service_for: Callable[[str], MetricsStorageService],
    *,
    accept: Callable[[JournalContents], bool] | None = None,
    on_pending: Progress | None = None,
    on_progress: Progress | None = None,
    default_database: str | None = None,
) -> ReplayReport:
    """Replay every journal of `spool_dir` that no live process holds, then delete it.

    Args:
        spool_dir: the spool directory.
        service_for: the service for a database name (a journal names its database).
        accept: which journals to replay (e.g. only those of one server), from their header.
        on_pending: called with the number of test runs a journal is about to send.
        on_progress: called with the number of test runs just stored.
        default_database: where to look for the run of a journal whose header is
            unreadable (its tests are stored only if their run is found there).

    A journal whose replay fails stays in place (and is named in `failed`); so does
    one that cannot be read at all, which counts as failed unless `accept` is given
    (an automatic replay leaves what it does not understand to `evalstore sync`).
    An empty journal (the process died before its header) holds nothing: it is removed.
    """
    report = ReplayReport()
    stored = 0

    def count(sent: int) -> None:
        nonlocal stored
        stored += sent
        if on_progress is not None:
            on_progress(sent)

    for path in journal_paths(spool_dir):
        with claim(path) as free:
            if not free:
                report.locked += 1
                continue
            if not path.exists():  # another replayer finished it between glob and claim
                remove_journal(path)
                continue
            try:
                empty = path.stat().st_size == 0
                contents = None if empty else read_journal(path, accept)
            except Exception as exc:  # one journal never stops the others
                log.warning("evalstore: could not read journal %s: %s", path, exc)
                report.failed.append(str(path))
                continue
            if empty:
                log.warning("evalstore: journal %s is empty (nothing recorded): removed", path)
                remove_journal(path)
                continue
            if contents is None:
                if accept is None:
                    report.failed.append(str(path))
                continue
            database = default_database if contents.headerless else contents.database
            if database is None:
                log.warning("evalstore: journal %s has no readable header; left in place", path)
                report.failed.append(str(path))
                continue
            before = stored
            try:
                await replay_contents(
                    service_for(database),
                    contents,
                    on_pending=on_pending,
                    on_progress=count,
                )
            except Exception as exc:  # one journal never stops the others
                log.warning("evalstore: could not replay %s: %s", path, exc)
                report.failed.append(str(path))
                continue
            remove_journal(path)
        report.journals += 1
        report.test_runs += stored - before
        report.finalized += contents.finish is not None
        report.skipped_lines += contents.skipped_lines
    return report

"""The local spool: one append-only NDJSON journal per evaluation run.

Every line is one JSON object, written and read by `evalstore.codec` (BSON
types as relaxed extended JSON, so ObjectIds and datetimes round-trip):

- `{"kind": "header", "version": 1, "database": ..., "target": <sha256>, "run": {...}}`
- `{"kind": "test", "doc": {...}}` — one test run, before `record_test` returns
- `{"kind": "acked", "ids": [...]}` — test runs MongoDB has acknowledged
- `{"kind": "usage", "doc": {...}}` — one usage record (tokens, cost), before `record_usage`
  returns; stored idempotently (keyed on `usage_id`), so it needs no acknowledgement
- `{"kind": "points", "split": ..., "step": ..., "values": {...}, "at": ...}` — one logged
  step, before `log_metrics` returns; stored as upserts keyed on (run, metric, split, step)
- `{"kind": "finish", "status": ..., "finished_at": ...}`

A journal is written by one process, which holds `<journal>.lock` while it
records; the replayer skips locked journals. A torn last line (the process
died mid-write) is skipped with a warning when the journal is read.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bson import ObjectId

from evalstore.codec import decode, encode, encode_test_entry
from evalstore.errors import EvalstoreError
from evalstore.models import Document
from evalstore.recording.lockfile import LockFile
from evalstore.recording.series import journal_points
from evalstore.redaction import redact_uri
from evalstore.settings import FsyncPolicy

log = logging.getLogger("evalstore")

JOURNAL_VERSION = 1
JOURNAL_SUFFIX = ".ndjson"
FSYNC_INTERVAL_S = 1.0
_OPEN_JOURNALS: weakref.WeakSet[Journal] = weakref.WeakSet()


def target_fingerprint(connection_string: str) -> str:
    """A SHA-256 of the connection string without its password: identifies the server.

    The password is left out before hashing, so the fingerprint cannot be used
    to test guesses of it.
    """
    return hashlib.sha256(redact_uri(connection_string).encode("utf-8")).hexdigest()


class Journal:
    """The journal of one evaluation run being recorded by this process.

    Args:
        path: the journal file (created; its parent directories too).
        fsync: `always` (before every append returns), `interval` (at most
            once a second, and on close) or `never` (left to the OS).
    """

    def __init__(self, path: Path, fsync: FsyncPolicy) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fsync = fsync
        self._lock = LockFile(str(path) + ".lock")
        self._lock.acquire()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size  # the end of its last complete line
        self._last_sync = time.monotonic()
        self._dirty = False
        _OPEN_JOURNALS.add(self)

    @classmethod
    def create(
        cls, spool_dir: Path, run: Document, *, database: str, target: str, fsync: FsyncPolicy
    ) -> Journal:
        """Start the journal of `run` in `spool_dir` with its header line."""
        journal = cls(journal_path(spool_dir, run), fsync)
        journal.append(
            {
                "kind": "header",
                "version": JOURNAL_VERSION,
                "database": database,
                "target": target,
                "run": run,
            }
        )
        return journal

    def append(self, entry: Document, *, sync: bool = False) -> None:
        """Write one line; it is in the OS page cache (survives SIGKILL) when this returns.

        Args:
            entry: the line's object.
            sync: fsync now whatever the policy (used for the finish line).
        """
        self._write(encode(entry), sync=sync)

    def append_tests(
        self, documents: Sequence[Document], encoded: Sequence[tuple[str, bool] | None]
    ) -> None:
        """Write one test line per document in one system call, from `encoded` (each
        document's `codec.encode_test_run`, or None to encode it here)."""
        lines = map(encode_test_entry, documents, encoded)
        self._write(b"".join(lines), sync=False)

    def _write(self, line: bytes, *, sync: bool) -> None:
        if self._fd is None:
            raise EvalstoreError(f"journal {self.path} is closed")
        try:
            written = os.write(self._fd, line)
            if written < len(line):  # os.write may write less than asked (e.g. a full disk)
                rest = memoryview(line)[written:]
                while rest:
                    rest = rest[os.write(self._fd, rest) :]
        except OSError:
            # Never leave half a line that a later line would merge with.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(line)
        self._dirty = True
        if sync or self._fsync == "always":
            self._sync()
        else:
            self.sync_if_due()

    def sync_if_due(self) -> None:
        """With the `interval` policy, fsync unsynced lines once a second has passed.

        The writer calls this on every wake-up, so lines do not stay unsynced
        when recording pauses.
        """
        if (
            self._fsync == "interval"
            and self._dirty
            and time.monotonic() - self._last_sync >= FSYNC_INTERVAL_S
        ):
            self._sync()

    def _sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        self._last_sync = time.monotonic()
        self._dirty = False

    def close(self, *, remove: bool = False) -> None:
        """Fsync unsynced lines (unless the policy is `never`), close; delete when `remove`."""
        if self._fd is not None:
            if self._fsync != "never" and self._dirty and not remove:
                self._sync()
            os.close(self._fd)
            self._fd = None
        _OPEN_JOURNALS.discard(self)
        if remove:
            self.path.unlink(missing_ok=True)
        self._lock.release()
        if remove:
            Path(self._lock.lock_file).unlink(missing_ok=True)


@atexit.register
def _close_open_journals() -> None:
    """At interpreter exit, make unfinished runs' journals durable (per the fsync policy)."""
    for journal in list(_OPEN_JOURNALS):
        journal.close()


@dataclass
class JournalContents:
    """What a journal says: the run, its test runs, which were acknowledged, how it ended."""

    path: Path
    database: str
    target: str
    run: Document
    tests: dict[str, Document] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    usage: dict[str, Document] = field(default_factory=dict)
    points: list[Document] = field(default_factory=list)
    """Metric points, in the order logged (a later point of the same key replaces an earlier)."""
    """Usage records by `usage_id` (all of them: storing one again does nothing)."""
    finish: Document | None = None
    skipped_lines: int = 0
    headerless: bool = False
    """The header line was unreadable: `run` holds only the `_id` its test lines carry, and
    `database` and `target` are unknown (empty)."""

    @property
    def pending_tests(self) -> list[Document]:
        """Test runs not yet acknowledged by MongoDB, in journal order."""
        return [doc for test_id, doc in self.tests.items() if test_id not in self.acked]

    def tests_to_replay(self, target: str) -> list[Document]:
        """What replaying into `target` must send: acknowledgements only count on their server."""
        return self.pending_tests if target == self.target else list(self.tests.values())


def read_journal(
    path: Path, accept: Callable[[JournalContents], bool] | None = None
) -> JournalContents | None:
    """Parse a journal, skipping (with a warning naming the line) what cannot be replayed.

    A line that is not complete JSON (a torn write), or that is JSON of the wrong
    shape (a test line without its document, acknowledgements that are not a
    list of ids, a score that is no finite number), is skipped; the rest is read.
    When the header is unreadable, the test lines still carry their run's `_id`:
    the contents are returned `headerless`, for a replayer that can find the run.

    Args:
        path: the journal.
        accept: when given, called with the header's contents: False stops
            reading there (a journal for another server is not parsed).

    Returns:
        The contents, or None when the journal is of another format version,
        not accepted, or holds nothing readable.
    """
    contents: JournalContents | None = None
    before_header: list[tuple[int, Document]] = []
    skipped = 0

    def skip(number: int, reason: object) -> None:
        nonlocal skipped
        log.warning("evalstore: skipping line %d of journal %s (%s)", number, path, reason)
        skipped += 1

    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("no newline: torn write")
                entry = decode(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            # Not only ValueError: a damaged `$oid` or `$date` raises InvalidId, InvalidBSON,
            # TypeError or OverflowError from bson; any of them is one bad line, not a bad journal.
            except (Exception, RecursionError) as exc:
                skip(number, exc)
                continue
            kind = entry.get("kind")
            if kind == "header":
                problem = _header_problem(entry)
                if problem == "version":
                    log.warning(
                        "evalstore: journal %s has format version %r, not %d; left in place",
                        path,
                        entry.get("version"),
                        JOURNAL_VERSION,
                    )
                    return None
                if problem or contents is not None:
                    skip(number, problem or "a second header")
                    continue
                contents = JournalContents(
                    path=path, database=entry["database"], target=entry["target"], run=entry["run"]
                )
                if accept is not None and not accept(contents):
                    return None
                for earlier, held in before_header:  # lines that came before a later header
                    _add(contents, held, earlier, skip)
                before_header = []
            elif contents is None:
                before_header.append((number, entry))
            else:
                _add(contents, entry, number, skip)
    if contents is None:
        contents = _headerless(path, before_header, skip)
        if contents is None or (accept is not None and not accept(contents)):
            return None
    contents.skipped_lines = skipped
    return contents


def _header_problem(entry: Document) -> str | None:
    if entry.get("version") != JOURNAL_VERSION:
        return "version"
    run = entry.get("run")
    if not (
        isinstance(entry.get("database"), str)
        and isinstance(entry.get("target"), str)
        and isinstance(run, dict)
        and isinstance(run.get("_id"), ObjectId)
        and isinstance(run.get("evaluation_run_id"), str)
    ):
        return "a header without its database, target or run"
    return None


def _test_problem(doc: object) -> str | None:
    """Why a test line's document cannot be replayed, or None."""
    if not isinstance(doc, dict):
        return "a test line without its document"
    if not isinstance(doc.get("test_run_id"), str) or not doc["test_run_id"]:
        return "a test run without its test_run_id"
    if not isinstance(doc.get("evaluation_run_id"), ObjectId):
        return "a test run without its evaluation_run_id"
    score = doc.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        return f"a score that is no finite number ({score!r})"
    return None


def _add(
    contents: JournalContents,
    entry: Document,
    number: int,
    skip: Callable[[int, object], None],
) -> bool:
    """Add one line to `contents`; False (and a warning) when it is malformed."""
    kind = entry.get("kind")
    if kind == "test":
        doc = entry.get("doc")
        problem = _test_problem(doc)
        if problem is None and isinstance(doc, dict):
            if doc["evaluation_run_id"] != contents.run["_id"]:
                problem = "a test run of another evaluation run"
            else:
                contents.tests[doc["test_run_id"]] = doc
                return True
        skip(number, problem)
        return False
    elif kind == "usage":
        doc = entry.get("doc")
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("usage_id"), str)
            or doc.get("evaluation_run_id") != contents.run["_id"]
        ):
            skip(number, "a usage line without its record, or of another evaluation run")
            return False
        contents.usage[doc["usage_id"]] = doc
    elif kind == "points":
        points = journal_points(entry, contents.run["_id"])
        if points is None:
            skip(number, "a points line without valid values, step, split or time")
            return False
        contents.points.extend(points)
    elif kind == "acked":
        ids = entry.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            skip(number, "acknowledgements that are not a list of test run ids")
            return False
        contents.acked.update(ids)
    elif kind == "finish":
        if not isinstance(entry.get("status"), str) or not isinstance(
            entry.get("finished_at"), datetime
        ):
            skip(number, "a finish line without its status or time")
            return False
        contents.finish = entry
    else:
        skip(number, f"an unknown kind of line ({kind!r})")
        return False
    return True


def _headerless(
    path: Path, entries: list[tuple[int, Document]], skip: Callable[[int, object], None]
) -> JournalContents | None:
    """The contents of a journal whose header is unreadable, from the run its tests carry."""
    run_ids = [
        entry["doc"]["evaluation_run_id"]
        for _, entry in entries
        if entry.get("kind") == "test" and _test_problem(entry.get("doc")) is None
    ]
    if not run_ids:
        log.warning("evalstore: journal %s has no readable header nor test; left in place", path)
        return None
    contents = JournalContents(
        path=path, database="", target="", run={"_id": run_ids[0]}, headerless=True
    )
    for number, entry in entries:
        _add(contents, entry, number, skip)
    log.warning(
        "evalstore: journal %s has no readable header: its %d test run(s) go to their run's "
        "database if the run is found there",
        path,
        len(contents.tests),
    )
    return contents


def journal_path(spool_dir: Path, run: Document) -> Path:
    """Where the journal of `run` is kept in `spool_dir`."""
    return spool_dir / f"{run['evaluation_run_id']}{JOURNAL_SUFFIX}"


def journal_paths(spool_dir: Path) -> list[Path]:
    """Every journal in the spool directory, oldest name first."""
    if not spool_dir.is_dir():
        return []
    return sorted(spool_dir.glob(f"*{JOURNAL_SUFFIX}"))


@contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Hold the journal's lock while replaying; yield False when a live process holds it."""
    lock = LockFile(str(path) + ".lock")
    try:
        claimed = lock.try_acquire()
    except OSError as exc:  # a file system without locks (NFS without lockd): leave it be
        log.warning("evalstore: cannot lock %s (%s); it is left for later", path, exc)
        claimed = False
    if not claimed:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def remove_journal(path: Path) -> None:
    """Delete a fully synced journal and its lock file."""
    path.unlink(missing_ok=True)
    Path(str(path) + ".lock").unlink(missing_ok=True)

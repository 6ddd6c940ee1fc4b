"""The local spool: one append-only NDJSON journal per evaluation run.

Every line is one JSON object (BSON types as relaxed extended JSON, so
ObjectIds and datetimes round-trip):

- `{"kind": "header", "version": 1, "database": ..., "target": <sha256>, "run": {...}}`
- `{"kind": "test", "doc": {...}}` — one test run, before `record_test` returns
- `{"kind": "acked", "ids": [...]}` — test runs MongoDB has acknowledged
- `{"kind": "finish", "status": ..., "finished_at": ...}`

A journal is written by one process, which holds `<journal>.lock` while it
records; the replayer skips locked journals. A torn last line (the process
died mid-write) is skipped with a warning when the journal is read.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Any

from bson import ObjectId, json_util
from bson.json_util import RELAXED_JSON_OPTIONS
from filelock import FileLock, Timeout

from evalstore.errors import EvalstoreError
from evalstore.models import Document
from evalstore.redaction import redact_uri
from evalstore.settings import FsyncPolicy

log = logging.getLogger("evalstore")

JOURNAL_VERSION = 1
JOURNAL_SUFFIX = ".ndjson"
FSYNC_INTERVAL_S = 1.0
_JSON_OPTIONS = RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=timezone.utc)
_OPEN_JOURNALS: weakref.WeakSet[Journal] = weakref.WeakSet()


def target_fingerprint(connection_string: str) -> str:
    """A SHA-256 of the connection string without its password: identifies the server.

    The password is left out before hashing, so the fingerprint cannot be used
    to test guesses of it.
    """
    return hashlib.sha256(redact_uri(connection_string).encode("utf-8")).hexdigest()


def _extended_json(value: object) -> Document:
    """Relaxed extended JSON for the two BSON types evalstore's documents hold."""
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, datetime):
        return {"$date": format_date(value)}
    raise TypeError(f"cannot journal a {type(value).__name__}")


def _strftime_date(value: datetime) -> str:
    """The journal's text for a datetime: UTC, millisecond precision, `Z` suffix."""
    utc = value.astimezone(timezone.utc) if value.tzinfo else value
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_date(value: datetime) -> str:
    """The same text as `_strftime_date`, about twice as fast for the usual values.

    `isoformat` zero-pads years below 1000 where `strftime("%Y")` may not, and a
    subclass may format itself differently: both keep the strftime path.
    """
    zone = value.tzinfo
    if type(value) is not datetime or value.year < 1000 or (zone is not None and not zone):
        return _strftime_date(value)
    if zone is None:
        return value.isoformat(timespec="milliseconds") + "Z"
    utc = value if zone is timezone.utc else value.astimezone(timezone.utc)
    if utc.year < 1000:
        return _strftime_date(value)
    return utc.isoformat(timespec="milliseconds")[:-6] + "Z"  # without its "+00:00"


# One encoder for every line: `json.dumps` with options builds a new one per call.
_ENCODER = json.JSONEncoder(default=_extended_json, allow_nan=False)


def encode(entry: Document) -> bytes:
    """One journal line (with its newline) for `entry`.

    The stdlib's C encoder with a `default` for ObjectId and datetime writes the
    same relaxed extended JSON as `bson.json_util`, several times faster.
    """
    line = _encode_test_entry(entry)
    if line is None:
        line = _ENCODER.encode(entry) + "\n"
    return line.encode("utf-8")


_TEST_RUN_KEYS = (
    "_id",
    "evaluation_run_id",
    "test_run_id",
    "test_id",
    "test_name",
    "started_at",
    "finished_at",
    "duration_ms",
    "metrics",
    "score",
    "score_method",
    "passed",
    "status",
    "tags",
    "participants",
    "message",
    "details",
)
_METRIC_KEYS = ("score", "passed", "threshold", "unit", "details")
_float_repr = float.__repr__  # what the C encoder writes for a finite float


def _encode_test_entry(entry: Document) -> str | None:
    """`_ENCODER.encode(entry) + "\\n"` for a `test` line of the usual shape, else None.

    A test line is written for every result, and the generic encoder spends
    most of its time calling `_extended_json`; this writes the same text from a
    template. Its fixed fields must have exactly the types `record_test` stores
    (so each value's text is the C encoder's), and free-form `details` go
    through the generic encoder; anything else returns None to go the generic
    way, which then writes it or raises as before.
    """
    if tuple(entry) != ("kind", "doc") or entry["kind"] != "test":
        return None
    doc = entry["doc"]
    if type(doc) is not dict or tuple(doc) != _TEST_RUN_KEYS:
        return None
    (
        oid,
        run_oid,
        test_run_id,
        test_id,
        test_name,
        started,
        finished,
        duration,
        metrics,
        score,
        score_method,
        passed,
        status,
        tags,
        participants,
        message,
        details,
    ) = doc.values()
    if not (
        type(oid) is ObjectId
        and type(run_oid) is ObjectId
        and type(test_run_id) is str
        and type(test_id) is str
        and type(test_name) is str
        and type(started) is datetime
        and type(finished) is datetime
        and type(duration) is float
        and -math.inf < duration < math.inf
        and type(metrics) is dict
        and (score is None or (type(score) is float and -math.inf < score < math.inf))
        and type(score_method) is str
        and type(passed) is bool
        and type(status) is str
        and type(tags) is list
        and type(participants) is list
        and (message is None or type(message) is str)
    ):
        return None
    metrics_text = []
    for name, metric in metrics.items():
        metric_text = _encode_metric(metric) if type(name) is str else None
        if metric_text is None:
            return None
        metrics_text.append(f"{_quote(name)}: {metric_text}")
    tags_text = _encode_strings(tags)
    participants_text = _encode_strings(participants)
    if tags_text is None or participants_text is None:
        return None
    started_text = format_date(started)
    finished_text = started_text if finished is started else format_date(finished)
    return (
        f'{{"kind": "test", "doc": {{"_id": {{"$oid": "{oid}"}}, '
        f'"evaluation_run_id": {{"$oid": "{run_oid}"}}, '
        f'"test_run_id": {_quote(test_run_id)}, "test_id": {_quote(test_id)}, '
        f'"test_name": {_quote(test_name)}, '
        f'"started_at": {{"$date": "{started_text}"}}, '
        f'"finished_at": {{"$date": "{finished_text}"}}, '
        f'"duration_ms": {_float_repr(duration)}, "metrics": {{{", ".join(metrics_text)}}}, '
        f'"score": {"null" if score is None else _float_repr(score)}, '
        f'"score_method": {_quote(score_method)}, "passed": {"true" if passed else "false"}, '
        f'"status": {_quote(status)}, "tags": {tags_text}, "participants": {participants_text}, '
        f'"message": {"null" if message is None else _quote(message)}, '
        f'"details": {"null" if details is None else _ENCODER.encode(details)}}}}}\n'
    )


def _encode_metric(metric: object) -> str | None:
    """The encoder's text for one metric document of the usual shape, else None."""
    if type(metric) is not dict or tuple(metric) != _METRIC_KEYS:
        return None
    score, passed, threshold, unit, details = metric.values()
    if not (
        type(score) is float
        and -math.inf < score < math.inf
        and (passed is None or type(passed) is bool)
        and (threshold is None or (type(threshold) is float and -math.inf < threshold < math.inf))
        and (unit is None or type(unit) is str)
    ):
        return None
    return (
        f'{{"score": {_float_repr(score)}, '
        f'"passed": {"null" if passed is None else "true" if passed else "false"}, '
        f'"threshold": {"null" if threshold is None else _float_repr(threshold)}, '
        f'"unit": {"null" if unit is None else _quote(unit)}, '
        f'"details": {"null" if details is None else _ENCODER.encode(details)}}}'
    )


def _encode_strings(values: list[Any]) -> str | None:
    """The encoder's text for a list of strings, else None."""
    if not values:
        return "[]"
    if not all(type(value) is str for value in values):
        return None
    return f"[{', '.join(map(_quote, values))}]"


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
        self._lock = FileLock(str(path) + ".lock")
        self._lock.acquire(timeout=0)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._last_sync = time.monotonic()
        self._dirty = False
        _OPEN_JOURNALS.add(self)

    @classmethod
    def create(
        cls, spool_dir: Path, run: Document, *, database: str, target: str, fsync: FsyncPolicy
    ) -> Journal:
        """Start the journal of `run` in `spool_dir` with its header line."""
        journal = cls(spool_dir / f"{run['evaluation_run_id']}{JOURNAL_SUFFIX}", fsync)
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
        if self._fd is None:
            raise EvalstoreError(f"journal {self.path} is closed")
        line = encode(entry)
        written = os.write(self._fd, line)
        if written < len(line):  # os.write may write less than asked (e.g. a full disk)
            rest = memoryview(line)[written:]
            while rest:
                rest = rest[os.write(self._fd, rest) :]
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
    finish: Document | None = None
    skipped_lines: int = 0

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
    """Parse a journal, skipping (with a warning) lines that are not complete JSON.

    Args:
        path: the journal.
        accept: when given, called with the header's contents: False stops
            reading there (a journal for another server is not parsed).

    Returns:
        The contents, or None when even the header is unreadable or not accepted.
    """
    contents: JournalContents | None = None
    skipped = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("no newline: torn write")
                entry = json_util.loads(raw, json_options=_JSON_OPTIONS)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                log.warning("evalstore: skipping line %d of journal %s (%s)", number, path, exc)
                skipped += 1
                continue
            kind = entry.get("kind")
            if kind == "header":
                if entry.get("version") != JOURNAL_VERSION:
                    log.warning(
                        "evalstore: journal %s has format version %r, not %d; left in place",
                        path,
                        entry.get("version"),
                        JOURNAL_VERSION,
                    )
                    return None
                contents = JournalContents(
                    path=path, database=entry["database"], target=entry["target"], run=entry["run"]
                )
                if accept is not None and not accept(contents):
                    return None
            elif contents is None:
                skipped += 1
            elif kind == "test":
                contents.tests[entry["doc"]["test_run_id"]] = entry["doc"]
            elif kind == "acked":
                contents.acked.update(entry["ids"])
            elif kind == "finish":
                contents.finish = entry
    if contents is None:
        log.warning("evalstore: journal %s has no readable header; left in place", path)
        return None
    contents.skipped_lines = skipped
    return contents


def journal_paths(spool_dir: Path) -> list[Path]:
    """Every journal in the spool directory, oldest name first."""
    if not spool_dir.is_dir():
        return []
    return sorted(spool_dir.glob(f"*{JOURNAL_SUFFIX}"))


@contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Hold the journal's lock while replaying; yield False when a live process holds it."""
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
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

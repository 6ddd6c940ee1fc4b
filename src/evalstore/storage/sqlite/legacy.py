"""The local store's former format, read once to import it into SQLite.

Before SQLite, a local store kept each database in `<dir>/<database>/` as two
files, `snapshot.ndjson` and `log.ndjson` (written through mongomock by
`evalstore.storage.localstore`, up to commit 5384faf). Each starts with a header
line `{"kind": "header", "format": 1, "generation": G}` followed by records in
relaxed extended JSON: `{"c": collection, "put": document}` (the document's whole
state) or `{"c": collection, "del": _id}`. A database is its snapshot, then its
log applied in order.

This module reads those files with the old reader's rules, without mongomock,
and gives back the documents exactly as the old store returned them:

- a line that is not a complete record (torn by a crash: no newline; not UTF-8,
  not JSON, not a header, a put or a deletion) is skipped with a warning, and
  counted;
- a log of an older generation than the snapshot is stale (a compaction was cut
  between its two renames, and the snapshot holds everything): it is ignored;
- a log of a newer generation means a compaction ran while the files were read,
  so both are read again; if the files did not change meanwhile, the snapshot is
  missing or damaged and what both still hold is used;
- `{"$oid": ...}` becomes an ObjectId and `{"$date": ...}` an aware UTC datetime
  (what mongomock answered with `tz_aware=True`); any other dict stays a dict.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json import JSONDecoder
from pathlib import Path
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from evalstore.errors import ConfigurationError, StorageUnavailableError
from evalstore.models import Document

log = logging.getLogger("evalstore")

SNAPSHOT = "snapshot.ndjson"
LOG = "log.ndjson"
LEGACY_FILES: tuple[str, ...] = (SNAPSHOT, LOG)
"""The files of a database in the former format, the snapshot first."""
FORMAT = 1
IMPORTED_SUFFIX = ".imported"
_COLLECTIONS = ("evaluation_runs", "test_runs")
_READ_ATTEMPTS = 5


def has_legacy_files(directory: Path) -> bool:
    """True when the database directory `directory` holds a store in the former format."""
    return any((directory / name).is_file() for name in LEGACY_FILES)


@dataclass(frozen=True)
class LegacyDatabase:
    """The final state of a database in the former format.

    Attributes:
        evaluation_runs: the `evaluation_runs` documents, in store order.
        test_runs: the `test_runs` documents, in store order.
        skipped_lines: the lines that were not complete records (a torn last line,
            a damaged one) in the files the state was read from.
    """

    evaluation_runs: list[Document]
    test_runs: list[Document]
    skipped_lines: int


def _object_hook(value: dict[str, Any]) -> Any:
    """ObjectIds and aware UTC datetimes, as the old store answered them.

    The old reader kept `$date` naive UTC (`Z`) or converted to UTC (an offset), and
    mongomock then attached UTC to it: replacing the zone of the `Z` form, converting
    the other, is exactly that. Other extended JSON forms stayed plain dicts.
    """
    if len(value) != 1:
        return value
    oid = value.get("$oid")
    if oid is not None:
        try:
            return ObjectId(oid)
        except (InvalidId, TypeError):
            raise ValueError(f"an invalid ObjectId {oid!r}") from None
    stamp = value.get("$date")
    if isinstance(stamp, str):
        if stamp.endswith("Z"):
            return datetime.fromisoformat(stamp[:-1]).replace(tzinfo=timezone.utc)
        return datetime.fromisoformat(stamp).astimezone(timezone.utc)
    return value


_DECODER = JSONDecoder(object_hook=_object_hook)


def _store_key(value: Any) -> Hashable:
    """The key the old store kept a document under, from its `_id`.

    Equal for `_id`s mongomock took as one (a dict `_id` compares as a dict, in any
    key order); raises TypeError for an `_id` that could not be a key (a list).
    """
    if isinstance(value, dict):
        return frozenset((name, _key_member(item)) for name, item in value.items())
    key: Hashable = value
    hash(key)
    return key


def _key_member(item: Any) -> Hashable:
    """A value inside a dict `_id` as mongomock's `hashdict` hashed it (a list as a tuple)."""
    if isinstance(item, dict):
        return _store_key(item)
    if isinstance(item, list):
        return tuple(item)
    member: Hashable = item
    return member


@dataclass
class _File:
    """What one file holds: its header's generation, its records, its unreadable lines."""

    generation: int | None = None
    # (collection, store key, document) for a put, (collection, store key, None) for a del
    records: list[tuple[str, Hashable, Document | None]] = field(default_factory=list)
    skipped: int = 0


def _record(entry: dict[str, Any]) -> tuple[str, Hashable, Document | None]:
    """A put or a deletion as (collection, key, document or None).

    Raises:
        ValueError: `entry` is neither a put of a document with an `_id` nor a deletion.
    """
    collection = entry.get("c")
    if not isinstance(collection, str):
        raise ValueError("neither a put nor a deletion")
    document: Document | None = None
    if "put" in entry:
        document = entry["put"]
        if not isinstance(document, dict) or "_id" not in document:
            raise ValueError("neither a put nor a deletion")
        key = document["_id"]
    elif "del" in entry:
        key = entry["del"]
    else:
        raise ValueError("neither a put nor a deletion")
    try:
        return collection, _store_key(key), document
    except TypeError:
        raise ValueError(f"an _id that cannot be a key ({key!r})") from None


def _read_file(path: Path) -> _File:
    """The header and records of `path` (nothing when it does not exist).

    Raises:
        ConfigurationError: a header names another format than 1.
    """
    found = _File()
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return found
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("no newline: torn write")
                entry = _DECODER.decode(raw.decode("utf-8"))
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                if entry.get("kind") == "header":
                    if entry.get("format") != FORMAT:
                        raise ConfigurationError(
                            f"cannot import the local store database at {path.parent}: "
                            f"{path.name} has format {entry.get('format')!r}, this evalstore "
                            f"reads format {FORMAT}; upgrade evalstore or move the directory away"
                        )
                    generation = entry.get("generation")
                    if not isinstance(generation, int):
                        raise ValueError("a header without a generation")
                    found.generation = int(generation)
                else:
                    found.records.append(_record(entry))
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
                log.warning("evalstore: skipping line %d of %s (%s)", number, path, exc)
                found.skipped += 1
    return found


def _fingerprint(directory: Path) -> tuple[Any, ...]:
    """Identity, size and mtime of both files: equal means unchanged since."""
    found: list[Any] = []
    for name in LEGACY_FILES:
        try:
            stat = (directory / name).stat()
        except FileNotFoundError:
            found.append(None)
        else:
            found.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def read_legacy_database(directory: Path) -> LegacyDatabase:
    """The documents of the database in the former format at `directory`.

    The snapshot's records, then the log's, are applied in order (a put stores the
    document's whole state, keeping its place when it replaces one; a deletion
    removes it), with the old reader's rules on torn lines and generations (see the
    module docstring). Collections other than `evaluation_runs` and `test_runs` are
    ignored. Nothing is written.

    Raises:
        ConfigurationError: a file's header names a format other than 1.
        StorageUnavailableError: the files cannot be read, or kept changing while
            being read (an old evalstore still writing to them).
    """
    try:
        for _attempt in range(_READ_ATTEMPTS):
            fingerprint = _fingerprint(directory)
            snapshot = _read_file(directory / SNAPSHOT)
            log_file = _read_file(directory / LOG)
            generation = snapshot.generation or 0
            if log_file.generation is not None and log_file.generation > generation:
                if _fingerprint(directory) != fingerprint:
                    continue  # a compaction ran meanwhile: read again
                log.warning(
                    "evalstore: the snapshot %s is missing or damaged; importing what it and "
                    "the log still hold (documents only in a lost snapshot are gone)",
                    directory / SNAPSHOT,
                )
                generation = log_file.generation
            files = [snapshot]
            if log_file.generation is not None and log_file.generation < generation:
                log.info("evalstore: ignoring %s, older than its snapshot", directory / LOG)
            else:
                files.append(log_file)
            return _apply(files)
    except OSError as exc:
        raise StorageUnavailableError(
            f"cannot read the local store database at {directory}: {exc}"
        ) from None
    raise StorageUnavailableError(
        f"the local store database at {directory} kept changing while being read "
        "(is an older evalstore still writing to it?); try again"
    )


def _apply(files: list[_File]) -> LegacyDatabase:
    """The state the records of `files`, in order, leave."""
    collections: dict[str, dict[Hashable, Document]] = {name: {} for name in _COLLECTIONS}
    for file in files:
        for collection, key, document in file.records:
            documents = collections.get(collection)
            if documents is None:
                continue
            if document is None:
                documents.pop(key, None)
            else:
                documents[key] = document
    return LegacyDatabase(
        evaluation_runs=list(collections["evaluation_runs"].values()),
        test_runs=list(collections["test_runs"].values()),
        skipped_lines=sum(file.skipped for file in files),
    )


def retire_legacy_files(directory: Path) -> list[Path]:
    """Rename the former format's files once imported; return their new paths.

    Each of `snapshot.ndjson` and `log.ndjson` that exists becomes
    `<name>.imported` (`<name>.imported.2`, `.3`... when a previous import left
    that name), so it is not imported again and the user keeps it. The snapshot
    goes first: an interruption between the renames leaves only the log, whose
    puts are the documents' latest state. Call it after the import is committed.

    Raises:
        StorageUnavailableError: a file cannot be renamed.
    """
    retired: list[Path] = []
    for name in LEGACY_FILES:
        source = directory / name
        if not source.is_file():
            continue
        target = directory / f"{name}{IMPORTED_SUFFIX}"
        copy = 1
        while target.exists():
            copy += 1
            target = directory / f"{name}{IMPORTED_SUFFIX}.{copy}"
        try:
            os.rename(source, target)
        except FileNotFoundError:  # another process opening the store retired it first
            continue
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot rename {source} to {target.name} after importing it: {exc}"
            ) from None
        retired.append(target)
    if retired:
        _sync_directory(directory)
    return retired


def _sync_directory(directory: Path) -> None:
    """Make the renames durable (best effort: not every platform opens a directory)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)

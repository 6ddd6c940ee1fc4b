"""The local store (`file:///absolute/dir`): the embedded backend, persisted in a directory.

Layout: one subdirectory per database, holding `snapshot.ndjson` and `log.ndjson`.
Both files start with a header line `{"kind": "header", "format": 1, "generation": G}`
and then hold records in relaxed extended JSON (as the spool does): `{"c": collection,
"put": document}` (the document's whole state) or `{"c": collection, "del": _id}`.
The state of a database is its snapshot, then its log applied in order.

Opening a database reads both files straight into a private mongomock store
(no replay through mongomock's write path). Every write evalstore makes goes
to mongomock first; the touched documents are tracked by store hooks, and when
the write returns (or fails, after mongomock's own rollback) their current
state is appended to the log and fsynced. When the log outgrows the documents,
the first write compacts it: a new snapshot is written to a temporary file,
fsynced, renamed, then an empty log of the new generation replaces the old one.

One writer at a time: reading takes no lock and writes nothing (a torn last
line is skipped; a log of a newer generation than the snapshot read means a
compaction happened meanwhile, so both are read again). The first write of a
process takes `<dir>/.lock` (filelock), reloads the files and opens the logs;
every client of the store in this process shares it until the last one
closes. A write from another process meanwhile gets a one-line
`StorageUnavailableError` naming the owner's pid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import mongomock
import mongomock.store
from bson import ObjectId
from bson.errors import InvalidId
from filelock import FileLock, Timeout

from evalstore.codec import encode
from evalstore.errors import ConfigurationError, StorageUnavailableError
from evalstore.models import Document
from evalstore.redaction import redact_connection_string
from evalstore.storage import embedded

log = logging.getLogger("evalstore")

FORMAT = 1
SNAPSHOT = "snapshot.ndjson"
LOG = "log.ndjson"
LOCK_WAIT_S = 2.0
# Compact when the log holds more records than this many times the documents (and > 1000).
COMPACT_RATIO = 2
_WRITE_METHODS = frozenset(
    {
        "insert_one",
        "insert_many",
        "bulk_write",
        "update_one",
        "update_many",
        "replace_one",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "delete_one",
        "delete_many",
        "drop",
    }
)
# Methods returning a database or a collection, whose writes must be logged too.
_CHILD_METHODS = frozenset(
    {"get_database", "get_default_database", "get_collection", "with_options"}
)


def store_path(connection_string: str) -> Path:
    """The directory of a `file:///absolute/dir` connection string.

    Percent-escapes are decoded (`%20` is a space, `%23` a `#`), and `/a/../dir` is `/dir`
    (one store).

    Raises:
        ConfigurationError: the path is not absolute (`file://relative`, `file:relative`),
            it has a host, a user or a password, a query or a `#` fragment, a control
            character or a NUL byte (`%00`), its escapes are not UTF-8, or it is the root
            directory. The message shows the connection string with any password masked.
    """

    def refuse(reason: str = "") -> ConfigurationError:
        shown = redact_connection_string(connection_string)
        return ConfigurationError(
            f"invalid local store {shown!r}: {reason}expected file:///absolute/path/to/dir"
        )

    if any(ord(char) < 0x20 or char == "\x7f" for char in connection_string):
        # urlparse would silently drop a tab or a line break: refuse rather than guess.
        raise refuse("it holds a control character; ")
    try:
        parsed = urlparse(connection_string)
    except ValueError:  # an unbalanced `[` where a host would be
        raise refuse() from None
    if parsed.scheme != "file" or parsed.netloc:  # a host, a user or a password
        raise refuse()
    for char, escape in (("#", "%23"), ("?", "%3F")):
        if char in connection_string:
            raise refuse(f"a {char} would end the path there (write it as {escape}); ")
    # The raw path, not parsed.path: urlparse moves a `;...` of the last segment to params.
    raw = connection_string[len("file:") :].removeprefix("//")
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise refuse("its %-escapes are not UTF-8; ") from None
    if not path.startswith("/"):
        raise refuse()
    if "\x00" in path:
        raise refuse("it holds a NUL byte (%00), which no file name can; ")
    directory = Path(os.path.normpath(path))  # `/a/../dir` and `/dir` are one store
    if directory == directory.parent:
        raise refuse("the root directory cannot be a local store (it would write into /); ")
    return directory


def stored_databases(connection_string: str, database: str | None = None) -> list[str]:
    """The databases of the local store to read: `database` alone, or all of them.

    Raises:
        ConfigurationError: there is no store at that path, or no such database in it
            (reading must not answer with an empty history, nor create a store).
    """
    root = store_path(connection_string)
    if not root.is_dir():
        raise ConfigurationError(
            f"no local store at {root}: check the path "
            "(a store is created when results are first recorded into it)"
        )
    names = database_names(root)
    if database is None:
        return names
    if database not in names:
        raise ConfigurationError(
            f"the local store at {root} has no database {database!r} "
            f"(it has: {', '.join(names) or 'none'}); choose one with --db or MONGODB_DATABASE"
        )
    return [database]


def database_names(root: Path) -> list[str]:
    """The databases a local store holds (its subdirectories with a snapshot or log)."""
    if not root.is_dir():
        return []
    return sorted(
        child.name
        for child in root.iterdir()
        if child.is_dir() and ((child / SNAPSHOT).exists() or (child / LOG).exists())
    )


# ---------------------------------------------------------------------------
# Reading and writing the files
# ---------------------------------------------------------------------------


def _object_hook(value: dict[str, Any]) -> Any:
    """ObjectIds and datetimes from extended JSON (datetimes naive UTC, as mongomock keeps them)."""
    if len(value) != 1:
        return value
    oid = value.get("$oid")
    if oid is not None:
        return ObjectId(oid)
    stamp = value.get("$date")
    if isinstance(stamp, str):
        if stamp.endswith("Z"):
            return datetime.fromisoformat(stamp[:-1])
        return datetime.fromisoformat(stamp).astimezone(timezone.utc).replace(tzinfo=None)
    return value


_DECODER = json.JSONDecoder(object_hook=_object_hook)


def _records(path: Path, *, warn: bool = True) -> tuple[int | None, list[Document], int]:
    """The generation, the records and the byte length of the complete lines of `path`.

    A line that is not a complete record is skipped with a warning; a line
    without its newline (a torn write, or one being written) only warns when `warn`.
    """
    if not path.exists():
        return None, [], 0
    generation: int | None = None
    records: list[Document] = []
    good_end = 0
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            offset += len(raw)
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("no newline: torn write")
                entry = _DECODER.decode(raw.decode("utf-8"))
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                _check(entry)
            except (ValueError, InvalidId) as exc:
                # A reader may see the line a writer is appending: no warning for that.
                report = log.warning if warn or raw.endswith(b"\n") else log.debug
                report("evalstore: skipping line %d of %s (%s)", number, path, exc)
                continue
            good_end = offset
            if entry.get("kind") == "header":
                if entry.get("format") != FORMAT:
                    raise StorageUnavailableError(
                        f"{path} has format {entry.get('format')!r}, not {FORMAT}: "
                        "upgrade evalstore to read it"
                    )
                generation = int(entry["generation"])
            else:
                records.append(entry)
    return generation, records, good_end


def _check(entry: Document) -> None:
    """Raise ValueError unless `entry` is a header, a put or a deletion."""
    if entry.get("kind") == "header":
        if not isinstance(entry.get("generation"), int):
            raise ValueError("a header without a generation")
    elif not isinstance(entry.get("c"), str) or not (
        (isinstance(entry.get("put"), dict) and "_id" in entry["put"]) or "del" in entry
    ):
        raise ValueError("neither a put nor a deletion")
    else:
        key = entry["put"]["_id"] if "put" in entry else entry["del"]
        try:
            hash(embedded.store_key(key))
        except TypeError:
            raise ValueError(f"an _id that cannot be a key ({key!r})") from None


def _apply(collections: dict[str, OrderedDict[Any, Any]], records: list[Document]) -> None:
    for record in records:
        documents = collections.setdefault(record["c"], OrderedDict())
        if "put" in record:
            document = record["put"]
            documents[embedded.store_key(document["_id"])] = document
        else:
            documents.pop(embedded.store_key(record["del"]), None)


@dataclass
class _Read:
    """What reading a database's files found."""

    generation: int
    collections: dict[str, OrderedDict[Any, Any]]
    log_records: int
    log_good_end: int  # the byte length of the log's complete lines
    stale_log: bool  # a compaction cut between its renames: the snapshot has it all
    fingerprint: tuple[Any, ...]


def _fingerprint(directory: Path) -> tuple[Any, ...]:
    """Identity, size and mtime of both files: equal means unchanged since."""
    found: list[Any] = []
    for name in (SNAPSHOT, LOG):
        try:
            stat = (directory / name).stat()
        except FileNotFoundError:
            found.append(None)
        else:
            found.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _read(directory: Path, *, warn: bool) -> _Read:
    """The documents of a database, read without writing anything (no lock needed).

    A compaction between reading the snapshot and the log shows as a log of a
    newer generation: read again.
    """
    for _attempt in range(5):
        fingerprint = _fingerprint(directory)
        snap_generation, snap_records, _ = _records(directory / SNAPSHOT, warn=warn)
        log_generation, log_records, good_end = _records(directory / LOG, warn=warn)
        generation = snap_generation or 0
        if log_generation is not None and log_generation > generation:
            if _fingerprint(directory) != fingerprint:
                continue  # a compaction ran meanwhile: read again
            # Nothing changed, so this is no race: the snapshot is missing or its header is
            # damaged. Read what both files still hold rather than refuse the whole store.
            log.warning(
                "evalstore: the snapshot %s of the local store is missing or damaged; reading "
                "what it and the log still hold (documents only in a lost snapshot are gone)",
                directory / SNAPSHOT,
            )
            generation = log_generation
        stale = log_generation is not None and log_generation < generation
        if stale:
            log_records = []
        collections: dict[str, OrderedDict[Any, Any]] = {}
        _apply(collections, snap_records)
        _apply(collections, log_records)
        return _Read(generation, collections, len(log_records), good_end, stale, fingerprint)
    raise StorageUnavailableError(
        f"the local store at {directory.parent} kept changing while being read; try again"
    )


def _header(generation: int) -> bytes:
    return encode({"kind": "header", "format": FORMAT, "generation": generation})


def _write_atomically(path: Path, lines: Iterator[bytes]) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as handle:
        for line in lines:
            handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------
# The in-memory side: mongomock stores that report what they touch
# ---------------------------------------------------------------------------


class _CollectionStore(mongomock.store.CollectionStore):
    """A mongomock collection store that remembers the keys written since the last flush."""

    def __init__(self, name: str) -> None:
        super().__init__(name)  # type: ignore[no-untyped-call]
        self.touched: set[Any] = set()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)  # type: ignore[no-untyped-call]
        self.touched.add(key)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)  # type: ignore[no-untyped-call]
        self.touched.add(key)

    def drop(self) -> None:
        self.touched.update(self._documents)
        super().drop()  # type: ignore[no-untyped-call]


class _DatabaseStore(mongomock.store.DatabaseStore):
    """A mongomock database store whose collections are `_CollectionStore`s."""

    def __getitem__(self, name: str) -> Any:
        found = self._collections.get(name)
        if found is None:
            found = self._collections[name] = _CollectionStore(name)
        return found


class _Database:
    """One database of the store: its mongomock store and, once writable, its open log."""

    def __init__(self, directory: Path, *, writable: bool) -> None:
        self.directory = directory
        self.store = _DatabaseStore()  # type: ignore[no-untyped-call]
        self.lock = threading.RLock()
        self._log: BinaryIO | None = None
        self._read: _Read | None = None
        if writable:
            self.make_writable()
        else:
            self._read = _read(directory, warn=False)
            self._install(self._read.collections)

    def _install(self, collections: dict[str, OrderedDict[Any, Any]]) -> None:
        """Replace the documents in memory (the mongomock stores stay the same objects)."""
        for name in set(self.store._collections) | set(collections):
            collection: _CollectionStore = self.store[name]
            collection._documents = collections.get(name, OrderedDict())
            collection.touched.clear()
            collection.__dict__.pop(embedded.HASH_INDEX_STATE, None)

    def make_writable(self) -> None:
        """Reload the files if another process changed them, then open the log to append.

        Cuts a torn last line off the log and compacts it when due. The caller
        holds the store's lock.
        """
        with self.lock:
            if self._log is not None:
                return
            directory = self.directory
            directory.mkdir(parents=True, exist_ok=True)
            read = self._read
            if read is None or read.fingerprint != _fingerprint(directory):
                read = _read(directory, warn=True)
                self._install(read.collections)
            self._read = None
            log_path = directory / LOG
            torn = log_path.exists() and log_path.stat().st_size != read.log_good_end
            if torn and not read.stale_log:
                log.warning("evalstore: truncating %s after its last complete line", log_path)
                with log_path.open("r+b") as handle:
                    handle.truncate(read.log_good_end)
            generation = read.generation
            documents = sum(len(docs) for docs in read.collections.values())
            compact = read.log_records > max(1000, COMPACT_RATIO * documents)
            if compact or read.stale_log or read.log_good_end == 0:
                generation += 1
                self._compact(read.collections, generation)
            # Never empty here: `_compact` just wrote its header, or it holds complete lines
            # (`log_good_end` > 0, cut to that length if torn) and only the lock holder writes.
            self._log = log_path.open("ab")

    def _compact(self, collections: dict[str, OrderedDict[Any, Any]], generation: int) -> None:
        def snapshot_lines() -> Iterator[bytes]:
            yield _header(generation)
            for name, documents in collections.items():
                for document in documents.values():
                    yield encode({"c": name, "put": document})

        _write_atomically(self.directory / SNAPSHOT, snapshot_lines())
        _write_atomically(self.directory / LOG, iter([_header(generation)]))
        _sync_directory(self.directory)

    def flush(self) -> None:
        """Append the current state of every touched document to the log, then fsync."""
        with self.lock:
            lines: list[bytes] = []
            taken: list[tuple[_CollectionStore, set[Any]]] = []
            for name, collection in list(self.store._collections.items()):
                if not isinstance(collection, _CollectionStore) or not collection.touched:
                    continue
                # Copy, then remove (each atomic under the GIL): a key touched again by
                # another thread meanwhile is written below with its latest state anyway.
                keys = set(collection.touched)
                collection.touched.difference_update(keys)
                taken.append((collection, keys))
                for key in keys:
                    document = collection._documents.get(key)
                    if document is None:
                        lines.append(encode({"c": name, "del": key}))
                    else:
                        lines.append(encode({"c": name, "put": document}))
            if not lines or self._log is None:
                return
            end = self._log.tell()
            try:
                self._log.write(b"".join(lines))
                self._sync()
            except OSError as exc:
                # Keep the keys for the next flush, and no partial line in the log.
                for collection, keys in taken:
                    collection.touched.update(keys)
                with contextlib.suppress(OSError):
                    self._log.seek(end)
                    self._log.truncate(end)
                raise StorageUnavailableError(
                    f"cannot write the local store's log {self.directory / LOG}: {exc}"
                ) from None

    def _sync(self) -> None:
        assert self._log is not None
        self._log.flush()
        os.fsync(self._log.fileno())

    def close(self) -> None:
        try:
            self.flush()
        finally:  # a log that cannot be written (a full disk) is still closed
            if self._log is not None:
                with contextlib.suppress(OSError):
                    self._log.close()
                self._log = None


class _ServerStore(mongomock.store.ServerStore):
    """A mongomock server whose databases are loaded from, and logged to, a directory."""

    def __init__(self, root: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.root = root
        self.local: dict[str, _Database] = {}
        self.lock = threading.RLock()
        self.writable = False

    def __getitem__(self, name: str) -> Any:
        with self.lock:
            database = self.local.get(name)
            if database is None:
                if not name or set("/\\.\0") & set(name):
                    raise ConfigurationError(f"invalid database name {name!r}")
                try:
                    database = _Database(self.root / name, writable=self.writable)
                except OSError as exc:
                    raise StorageUnavailableError(
                        f"cannot open the local store at {self.root}: {exc}"
                    ) from None
                self.local[name] = database
                self._databases[name] = database.store
            return database.store

    def make_writable(self) -> None:
        """Reload every open database and open its log (the caller holds the lock)."""
        with self.lock:
            for database in self.local.values():
                database.make_writable()
            self.writable = True

    def flush(self) -> None:
        for database in list(self.local.values()):
            database.flush()

    def close(self) -> None:
        failure: StorageUnavailableError | None = None
        for database in self.local.values():
            try:
                database.close()
            except StorageUnavailableError as exc:  # close the others anyway, then say so
                failure = failure or exc
        if failure is not None:
            raise failure


# ---------------------------------------------------------------------------
# Opening a store: the process-wide registry and the lock
# ---------------------------------------------------------------------------


class _OpenStore:
    """A store open in this process: read-only until the first write takes the lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.users = 0
        self.file_lock = FileLock(str(root / ".lock"), timeout=LOCK_WAIT_S)
        self.server = _ServerStore(root)
        self.lock = threading.Lock()

    def make_writable(self) -> None:
        """Take the store's lock (once), reload what is open and open the logs.

        Raises:
            StorageUnavailableError: another process writes to the store, or the
                directory cannot be created or written.
        """
        with self.lock:
            if self.server.writable:
                return
            root = self.root
            try:
                root.mkdir(parents=True, exist_ok=True)
                self.file_lock.acquire()
            except Timeout:  # a TimeoutError, hence an OSError: caught first
                raise StorageUnavailableError(
                    f"the local store at {root} is in use by another process "
                    f"(pid {_owner(root)}); close it or use MongoDB for concurrent writers"
                ) from None
            except OSError as exc:
                raise StorageUnavailableError(
                    f"cannot open the local store at {root}: {exc}"
                ) from None
            try:
                (root / ".owner").write_text(str(os.getpid()), encoding="utf-8")
                self.server.make_writable()
            except OSError as exc:
                self.file_lock.release()
                raise StorageUnavailableError(
                    f"cannot open the local store at {root}: {exc}"
                ) from None
            except BaseException:
                self.file_lock.release()
                raise

    def flush(self) -> None:
        self.server.flush()

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            with _REGISTRY_LOCK:
                _REGISTRY.pop(self.root, None)
            try:
                self.server.close()
            finally:
                if self.server.writable:
                    self.file_lock.release()


def _owner(root: Path) -> str:
    try:
        return (root / ".owner").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


_REGISTRY: dict[Path, _OpenStore] = {}
_REGISTRY_LOCK = threading.Lock()


def open_client(connection_string: str) -> Any:
    """A Motor-like client on the local store of `connection_string` (shared in this process).

    Reads need no lock; the first write takes the store's lock for this process
    until its last client closes.

    Raises:
        ConfigurationError: the path is not absolute.
    """
    root = store_path(connection_string)
    embedded.prepare_mongomock()
    with _REGISTRY_LOCK:
        opened = _REGISTRY.get(root)
        if opened is None:
            opened = _REGISTRY[root] = _OpenStore(root)
        opened.users += 1
    from mongomock_motor import AsyncMongoMockClient

    motor: Any = AsyncMongoMockClient(
        mock_mongo_client=mongomock.MongoClient(tz_aware=True, _store=opened.server)
    )
    return _Proxy(motor, opened)


class _Proxy:
    """Wraps a client, a database or a collection: a write takes the lock and is logged."""

    def __init__(self, inner: Any, opened: _OpenStore | None) -> None:
        self._inner = inner
        self._opened = opened

    def __getitem__(self, name: str) -> _Proxy:
        return _Proxy(self._inner[name], self._opened)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in _CHILD_METHODS:
            return lambda *args, **kwargs: self._wrap(value(*args, **kwargs))
        if name not in _WRITE_METHODS:
            return self._wrap(value)
        opened = self._opened

        async def write(*args: Any, **kwargs: Any) -> Any:
            if opened is None:
                raise StorageUnavailableError("this local store client is closed")
            opened.make_writable()
            try:
                return await value(*args, **kwargs)
            finally:
                opened.flush()

        return write

    def _wrap(self, value: Any) -> Any:
        """A database or collection reached as an attribute is wrapped too."""
        from mongomock_motor import AsyncMongoMockCollection, AsyncMongoMockDatabase

        if isinstance(value, AsyncMongoMockDatabase | AsyncMongoMockCollection):
            return _Proxy(value, self._opened)
        return value

    def close(self) -> None:
        """Flush and release this client's hold on the store."""
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.release()

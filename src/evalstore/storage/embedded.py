"""The embedded backend (`mongomock://`): one in-process store and the patches it needs.

With `evalstore.storage.localstore` (the same backend persisted in a directory, for
`file://`), this is the only module that imports mongomock and mongomock-motor.
`storage.client` calls `open_client()` for a `mongomock://` connection string;
nothing here is imported or patched for a real server.

Patches are installed into mongomock's classes, once, when the first embedded
or local client is created (never at import time):

- a compatibility shim for pymongo >= 4.11 bulk updates (mongomock issue #912);
- hash indexes that answer equality lookups on single-field indexes (unique or
  not) and `_id` without a scan. mongomock evaluates every `{field: value}`
  lookup and every unique-index check by running its generic `filter_applies`
  over all documents, so an upsert keyed on a unique field cost two full scans,
  writing N documents cost O(N²), and reading one run's test runs through the
  (non-unique) `evaluation_run_id` index scanned every test run;
- an insert-only upsert (`{field: value}`, `{$setOnInsert: fields}`, the write
  evalstore sends for every test run) answered through the hash index and
  mongomock's own `_insert`, without its generic update machinery;
- constant-factor speed-ups that return exactly what mongomock's code returns:
  its constant version strings parsed once, and the faster reads of
  `evalstore.storage.embedded_reads` (document walks skipping plain values, cursors
  that do not copy the remaining results at every step, `aggregate` reading
  only what a leading `$match` selects).

`tests/storage/test_embedded_index.py` runs random operations on a patched
and an unpatched collection and requires identical answers and documents.

The hash indexes are correct by construction: they only ever narrow the
documents that mongomock's own `filter_applies` then checks, and they are used
only where no matching document can be outside them. A field is served when it
has an index, unique or not, with one key without a dot, neither sparse nor
partial (the buckets hold the stored documents, whatever the index definitions
say), the collection has no TTL index (expiry happens on reads the fast path
would skip), and every stored document holds in that field a value of one of a
few exact types (`str`, `ObjectId`, `None` or missing, `bool`, `int`, `float`,
`datetime`); one array, sub-document or other value disables the field until
that document is gone. Lookup values must be exactly `str`, `ObjectId` or
`None` (nothing else can equal those, so the hash bucket holds every match). A
bucket of several documents is put in store order by numbers the store hooks
keep (a new key goes last in mongomock's `OrderedDict`), without a pass over
every document. The unique-index check counts a bucket only for a unique index
that is itself such an index on a served field; a sparse or partial one is
checked by mongomock's own code (whose lookups the buckets still narrow).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import mongomock
import mongomock.collection
import mongomock.helpers
import mongomock.store
from bson import ObjectId
from bson.errors import BSONError
from pymongo import UpdateOne

from evalstore.storage.embedded_reads import aggregate_match_first, cursor_next, install_fast_copies

_embedded_store: mongomock.store.ServerStore | None = None


def open_client() -> Any:
    """A new mongomock-motor client on the process's shared embedded store."""
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient(
        mock_mongo_client=mongomock.MongoClient(tz_aware=True, _store=_shared_embedded_store())
    )


def prepare_mongomock() -> None:
    """Install the bulk-write shim and the index patches (idempotent)."""
    _install_bulk_write_shim()
    install_index_patches()


def _shared_embedded_store() -> mongomock.store.ServerStore:
    """One in-process store, so every `mongomock://` client sees the same data, like a server."""
    global _embedded_store
    if _embedded_store is None:
        prepare_mongomock()
        _embedded_store = mongomock.store.ServerStore()  # type: ignore[no-untyped-call]
    return _embedded_store


def reset_embedded_backend() -> None:
    """Forget everything stored in the embedded backend of this process (for tests and demos)."""
    global _embedded_store
    _embedded_store = None


def _install_bulk_write_shim() -> None:
    """Let mongomock accept the `sort` argument pymongo >= 4.11 passes to bulk updates.

    pymongo's UpdateOne/ReplaceOne call `add_update(..., sort=None)`, which
    mongomock 4.3 does not accept (mongomock issue #912), so every `bulk_write`
    with updates raised TypeError on the embedded backend. We drop `sort` when
    it is None and refuse it otherwise, since mongomock cannot honour it.
    """
    builder = mongomock.collection.BulkOperationBuilder
    if getattr(builder, "_evalstore_shim", False):
        return
    for method_name in ("add_update", "add_replace"):
        original = getattr(builder, method_name)

        def patched(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if kwargs.pop("sort", None) is not None:
                raise NotImplementedError("the embedded backend cannot sort bulk updates")
            return _original(self, *args, **kwargs)

        patched._evalstore_original = original  # type: ignore[attr-defined]
        setattr(builder, method_name, patched)
    builder._evalstore_shim = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Hash indexes
# ---------------------------------------------------------------------------

_STATE = HASH_INDEX_STATE = "_evalstore_hash_indexes"  # in a CollectionStore's __dict__
# Values that may be looked up: nothing of another type can be equal to one of them.
_LOOKUP_TYPES: frozenset[type] = frozenset({str, ObjectId, type(None)})
# Stored values that can never equal a lookup value (kept out of the buckets).
_INERT_TYPES: frozenset[type] = frozenset({bool, int, float, datetime})
# Filter values that cannot make `filter_applies` raise whatever the document.
_PLAIN_TYPES = _LOOKUP_TYPES | _INERT_TYPES


class _FieldIndex:
    """`value -> store keys` for one top-level field, and `store key -> value`."""

    __slots__ = ("buckets", "field", "unsafe", "values")

    def __init__(self, field: str) -> None:
        self.field = field
        self.buckets: dict[Any, set[Any]] = {}
        self.values: dict[Any, Any] = {}
        self.unsafe: set[Any] = set()

    @property
    def usable(self) -> bool:
        return not self.unsafe

    def add(self, key: Any, document: Any) -> None:
        value = document.get(self.field)  # missing counts as None, as in mongomock
        kind = type(value)
        if kind in _LOOKUP_TYPES:
            self.values[key] = value
            self.buckets.setdefault(value, set()).add(key)
        elif kind not in _INERT_TYPES:
            self.unsafe.add(key)

    def remove(self, key: Any) -> None:
        if key in self.values:
            value = self.values.pop(key)
            bucket = self.buckets[value]
            bucket.discard(key)
            if not bucket:
                del self.buckets[value]
        else:
            self.unsafe.discard(key)


class _StoreIndexes:
    """The hash indexes of one `CollectionStore`, built lazily, kept current by the hooks."""

    def __init__(self) -> None:
        self.fields: dict[str, _FieldIndex] = {}
        self.lock = threading.RLock()
        # per thread, the documents the running `_update` has seen
        self.recordings: dict[int, list[Any]] = {}
        # `_served_fields` for the index definitions it was computed from (see there)
        self.served: tuple[Any, int, int, frozenset[str]] | None = None
        # store key -> a number increasing in store order (see `_positions`), or None
        self.positions: dict[Any, int] | None = None
        self.next_position = 0


def _state(store: Any) -> _StoreIndexes:
    state: _StoreIndexes | None = store.__dict__.get(_STATE)
    if state is None:
        state = _StoreIndexes()
        store.__dict__[_STATE] = state
    return state


def _plain_field(field: Any) -> bool:
    return isinstance(field, str) and bool(field) and "." not in field and field[0] != "$"


@functools.lru_cache(maxsize=256)
def _plain_fields(keys: tuple[Any, ...]) -> bool:
    """Whether every key is a plain field (cached: every test run has the same keys)."""
    return all(_plain_field(key) for key in keys)


def _served_fields(store: Any) -> frozenset[str]:
    """The fields whose equality lookups a hash index may answer in `store`.

    Cached per store: `create_index`, `drop_index` and `drop` clear the cache,
    and `drop_indexes` (which replaces the definitions' dict) and any other
    change of their number invalidate it. Only this answer depends on the
    definitions: the buckets of `_field_index` depend on the documents alone.
    """
    state = _state(store)
    cached = state.served
    if (
        cached is not None
        and cached[0] is store.indexes
        and cached[1] == len(store.indexes)
        and cached[2] == len(store._ttl_indexes)
    ):
        return cached[3]
    # Counted before computing: an index created meanwhile by another thread makes the
    # counts differ at the next call, which then computes again.
    indexes, count, ttl_count = store.indexes, len(store.indexes), len(store._ttl_indexes)
    fields = frozenset(_compute_served_fields(store))
    state.served = (indexes, count, ttl_count, fields)
    return fields


def _compute_served_fields(store: Any) -> set[str]:
    if store._ttl_indexes:
        return set()
    fields = {"_id"}
    for index in store.indexes.values():
        field = _plain_index_field(index)
        if field is not None:
            fields.add(field)
    return fields


def _plain_index_field(index: Any) -> str | None:
    """The field of an index definition a hash index can stand for, or None.

    One key naming a plain top-level field, neither sparse nor partial, no TTL;
    unique or not.
    """
    keys = list(index.get("key") or ())  # a list, or a live view of a SON's items
    if (
        len(keys) == 1
        and not index.get("sparse")
        and index.get("partialFilterExpression") is None
        and index.get("expireAfterSeconds") is None
        and _plain_field(keys[0][0])
    ):
        field: str = keys[0][0]
        return field
    return None


def _field_index(store: Any, field: str) -> _FieldIndex | None:
    """The usable hash index of `field` (built on first use), or None."""
    state = _state(store)
    with state.lock:
        index = state.fields.get(field)
        if index is None:
            index = _FieldIndex(field)
            with store._rwlock.reader():  # mongomock's lock for iterating its documents
                for key, document in store._documents.items():
                    index.add(key, document)
            state.fields[field] = index
        return index if index.usable else None


def _positions(store: Any, state: _StoreIndexes) -> dict[Any, int]:
    """Numbers for the store keys that sort them in store order (built on first use).

    mongomock's documents are an `OrderedDict`: a new key goes last, a key
    stored again keeps its place, so the hooks number a new key after every
    other and forget a deleted one. The caller holds `state.lock`.
    """
    positions = state.positions
    if positions is None:
        with store._rwlock.reader():  # mongomock's lock for iterating its documents
            positions = {key: number for number, key in enumerate(store._documents)}
        state.positions, state.next_position = positions, len(positions)
    return positions


def store_key(value: Any) -> Any:
    """The key mongomock stores a document under, given its `_id` (a dict `_id` as a hashdict)."""
    return mongomock.helpers.hashdict(value) if isinstance(value, dict) else value


def _refresh(store: Any, document: Any) -> None:
    """Re-index `document` if it is the one stored under its `_id` (after an in-place update)."""
    state: _StoreIndexes | None = store.__dict__.get(_STATE)
    if state is None or not state.fields or not isinstance(document, dict):
        return
    try:
        key = store_key(document.get("_id"))
        if store._documents.get(key) is not document:
            return
    except TypeError:  # an unhashable _id: mongomock cannot store it either
        return
    with state.lock:
        for index in state.fields.values():
            # Values held are str, ObjectId or None: the same object means the same bucket.
            if key in index.values and index.values[key] is document.get(index.field):
                continue
            index.remove(key)
            index.add(key, document)


def _lookup_values(value: Any) -> list[Any] | None:
    """The values `{field: value}` can match through a hash bucket, or None."""
    if type(value) in _LOOKUP_TYPES:
        return [value]
    if type(value) is dict and len(value) == 1 and "$in" in value:
        values = value["$in"]
        if isinstance(values, (list, tuple)) and all(type(v) in _LOOKUP_TYPES for v in values):
            return list(values)
    return None


def _candidates(store: Any, filter: Any) -> list[Any] | None:
    """A superset of the documents matching `filter`, in store order, or None to scan.

    Only for a filter that is a conjunction of plain fields with plain values
    (so `filter_applies` cannot raise on any document and skipping documents
    changes nothing but speed), one of which is served by a usable hash index.
    """
    if type(filter) is not dict or not filter:
        return None
    served: list[tuple[str, list[Any]]] = []
    for field, value in filter.items():
        if not _plain_field(field):
            return None
        values = _lookup_values(value)
        if values is not None:
            served.append((field, values))
        elif type(value) not in _PLAIN_TYPES:
            return None
    if not served:
        return None
    fields = _served_fields(store)
    for field, values in served:
        if field not in fields:
            continue
        index = _field_index(store, field)
        if index is None:
            continue
        documents = store._documents
        with _state(store).lock:
            keys: set[Any] = set()
            for value in values:
                keys.update(index.buckets.get(value, ()))
            ranked: list[Any] | None = list(keys)
            if len(keys) > 1:
                try:
                    ranked = sorted(keys, key=_positions(store, _state(store)).__getitem__)
                except KeyError:  # another thread between its store change and its hooks
                    ranked = None
        if ranked is not None:
            # .get: another thread may have deleted it since the bucket was read
            found = [documents.get(key) for key in ranked]
            return [document for document in found if document is not None]
        with store._rwlock.reader():  # mongomock's lock for iterating its documents
            return [document for key, document in documents.items() if key in keys]
    return None


def _iter_documents(self: Any, filter: Any) -> Iterator[Any] | Iterable[Any]:
    store = self._store
    candidates = _candidates(store, filter)
    if candidates is None:
        found: Iterable[Any] = _ORIGINALS["_iter_documents"](self, filter)
    else:
        # Looked up at call time, where mongomock's own scan finds it, so a test can count calls.
        filter_applies: Callable[[Any, Any], bool] = vars(mongomock.collection)["filter_applies"]
        found = (document for document in candidates if filter_applies(filter, document))
    state: _StoreIndexes | None = store.__dict__.get(_STATE)
    if state is not None and state.recordings:
        seen = state.recordings.get(threading.get_ident())
        if seen is not None:
            return _recorded(found, seen)
    return found


def _recorded(documents: Iterable[Any], into: list[Any]) -> Iterator[Any]:
    for document in documents:
        into.append(document)
        yield document


def _ensure_uniques(self: Any, new_data: Any) -> None:
    # mongomock updates documents in place, then checks them here: re-index first.
    store = self._store
    _refresh(store, new_data)
    if not _unique_by_hash(store, new_data):
        _ORIGINALS["_ensure_uniques"](self, new_data)


def _unique_by_hash(store: Any, new_data: Any) -> bool:
    """mongomock's unique-index check of `new_data` (already stored) through the hash indexes.

    mongomock counts, for each unique index, the documents equal to `new_data`
    on its key and raises when there are two. When every unique index is
    served by a usable hash index and `new_data`'s value is a lookup type,
    those counts are bucket sizes. Each unique index is judged by its own
    definition (a field being served by another, non-unique index says
    nothing about a sparse or partial unique one). Returns False, having
    checked nothing, when one index cannot be checked this way.
    """
    if type(new_data) is not dict:
        return False
    served = _served_fields(store)
    checks: list[tuple[_FieldIndex, Any]] = []
    for definition in store.indexes.values():
        if not definition.get("unique"):
            continue
        field = _plain_index_field(definition)
        if field is None or field not in served:
            return False
        value = new_data.get(field)  # missing counts as None, as in mongomock
        index = _field_index(store, field)
        if index is None or type(value) not in _LOOKUP_TYPES:
            return False
        checks.append((index, value))
    with _state(store).lock:
        if any(len(index.buckets.get(value, ())) > 1 for index, value in checks):
            raise mongomock.DuplicateKeyError("E11000 Duplicate Key Error", 11000)
    return True


def _update(
    self: Any,
    spec: Any,
    document: Any,
    upsert: bool = False,
    *args: Any,
    **kwargs: Any,
) -> Any:
    if upsert and not args and not any(kwargs.values()):
        result = _insert_only_upsert(self, spec, document)
        if result is not None:
            return result
    # Re-index every document the update saw, even one changed into an equal value
    # (which mongomock does not re-check).
    store = self._store
    state = _state(store)
    thread = threading.get_ident()
    outer = state.recordings.get(thread)
    seen = state.recordings[thread] = []
    try:
        return _ORIGINALS["_update"](self, spec, document, upsert, *args, **kwargs)
    finally:
        if outer is None:
            del state.recordings[thread]
        else:
            state.recordings[thread] = outer
        touched: set[Any] | None = getattr(store, "touched", None)  # the local store's
        for document in seen:
            _refresh(store, document)
            if touched is not None:
                touched.add(store_key(document.get("_id")))  # documents it stores


def _insert_only_upsert(collection: Any, spec: Any, document: Any) -> dict[str, Any] | None:
    """`{field: value}, {"$setOnInsert": fields}, upsert=True` without mongomock's generic update.

    The write evalstore sends for every test run. mongomock found the match by
    a scan, deep-copied it, applied the update field by field and compared the
    copies; here the hash index finds the match, a match is left as it is
    (`$setOnInsert` changes nothing in an existing document) and otherwise
    the document mongomock would build (the filter's field, a new `_id`, then
    the fields) goes through its own `_insert`, with its validation and
    unique-index checks. Returns mongomock's result, or None for any other
    update (mongomock's own path then runs).
    """
    if type(spec) is not dict or len(spec) != 1 or type(document) is not dict or len(document) != 1:
        return None
    fields = document.get("$setOnInsert")
    if type(fields) is not dict or not fields or not _plain_fields(tuple(fields)):
        return None
    [(field, value)] = spec.items()
    if field == "_id" or not _plain_field(field) or type(value) not in _LOOKUP_TYPES:
        return None
    candidates = _candidates(collection._store, spec)
    if candidates is None:
        return None
    filter_applies: Callable[[Any, Any], bool] = vars(mongomock.collection)["filter_applies"]
    matched = any(filter_applies(spec, candidate) for candidate in candidates)
    upserted_id = None
    if matched:
        # mongomock normalises the update's datetimes before it looks: same errors (overflow)
        vars(mongomock.helpers)["patch_datetime_awareness_in_document"](fields)
    else:
        try:
            upserted_id = collection._insert({field: value, "_id": ObjectId(), **fields})
        except (TypeError, ValueError, ArithmeticError, BSONError):
            # Refused before anything was stored (mongomock's _insert validates, normalises,
            # then stores): let mongomock's update path refuse it with its own error.
            return None
    return {
        "connectionId": collection.database.client._id,
        "err": None,
        "n": 1,
        "nModified": 0,
        "ok": 1,
        "upserted": upserted_id,
        "updatedExisting": matched,
    }


def _bulk_write(
    self: Any,
    requests: Any,
    ordered: bool = True,
    bypass_document_validation: bool = False,
    session: Any = None,
) -> Any:
    if not (bypass_document_validation or session):
        requests = list(requests)
        result = _upserts_only(self, requests, ordered)
        if result is not None:
            return result
    return _ORIGINALS["bulk_write"](
        self,
        requests,
        ordered=ordered,
        bypass_document_validation=bypass_document_validation,
        session=session,
    )


def _upserts_only(collection: Any, requests: list[Any], ordered: bool) -> Any | None:
    """mongomock's `bulk_write` of `UpdateOne(..., upsert=True)` requests, without its builder.

    mongomock validates every request, then runs each through `_update` and
    sums the results; this does the same with a loop (each `_update` taking
    the insert-only fast path when it can) and returns the same result or
    raises the same `BulkWriteError`. None for any other batch.
    """
    if not requests:
        return None
    for request in requests:
        if (
            type(request) is not UpdateOne
            or not request._upsert
            or request._collation is not None
            or request._array_filters is not None
            or request._hint is not None
            or getattr(request, "_sort", None) is not None
        ):
            return None
    namespace = vars(mongomock.collection)
    for request in requests:
        namespace["validate_ok_for_update"](request._doc)
    result: dict[str, Any] = {
        "nModified": 0,
        "nUpserted": 0,
        "nMatched": 0,
        "writeErrors": [],
        "upserted": [],
        "writeConcernErrors": [],
        "nRemoved": 0,
        "nInserted": 0,
    }
    for position, request in enumerate(requests):
        try:
            outcome = collection._update(
                spec=request._filter, document=request._doc, multi=False, upsert=True
            )
        except namespace["WriteError"] as error:
            result["writeErrors"].append(
                {"index": position, "code": error.code, "errmsg": str(error)}
            )
            if ordered:
                break
            continue
        if outcome.get("upserted"):
            # mongomock numbers upserts by their rank among upserts, not by request
            result["upserted"].append(
                {"index": len(result["upserted"]), "_id": outcome["upserted"]}
            )
            result["nUpserted"] += outcome["n"]
        else:
            result["nMatched"] += outcome["n"]
        result["nModified"] += outcome["nModified"]
    if result["writeErrors"]:
        raise namespace["BulkWriteError"](result)
    return namespace["BulkWriteResult"](result, True)


def _cursor_next(self: Any) -> Any:
    return cursor_next(self, _ORIGINALS["__next__"])


def _aggregate(self: Any, pipeline: Any, session: Any = None, **kwargs: Any) -> Any:
    result = aggregate_match_first(self, pipeline, session, _candidates)
    if result is None:
        result = _ORIGINALS["aggregate"](self, pipeline, session=session, **kwargs)
    return result


def _store_setitem(self: Any, key: Any, value: Any) -> None:
    _ORIGINALS["__setitem__"](self, key, value)
    state: _StoreIndexes | None = self.__dict__.get(_STATE)
    if state is not None and state.fields:
        with state.lock:
            for index in state.fields.values():
                index.remove(key)
                index.add(key, value)
            positions = state.positions
            if positions is not None and key not in positions:  # a new key: the last
                positions[key] = state.next_position
                state.next_position += 1


def _store_delitem(self: Any, key: Any) -> None:
    _ORIGINALS["__delitem__"](self, key)
    state: _StoreIndexes | None = self.__dict__.get(_STATE)
    if state is not None and state.fields:
        with state.lock:
            for index in state.fields.values():
                index.remove(key)
            if state.positions is not None:
                state.positions.pop(key, None)


def _invalidating(name: str, *, buckets: bool) -> Any:
    """`name`, then forget `_served_fields`' answer and, when `buckets`, the hash buckets.

    The buckets hold stored documents, whatever the index definitions (the
    store hooks keep them current, and whether a field's are usable depends
    on its documents only), so creating or dropping an index keeps them:
    every new client's `ensure_indexes` re-creates the same indexes, which
    would otherwise rebuild every bucket from all documents. `drop` replaces
    the documents without the hooks: its buckets and store order numbers go.
    """

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return _ORIGINALS[name](self, *args, **kwargs)
        finally:
            state: _StoreIndexes | None = self.__dict__.get(_STATE)
            if state is not None:
                with state.lock:
                    if buckets:
                        state.fields.clear()
                        state.positions = None
                    state.served = None

    patched.__name__ = name
    return patched


_ORIGINALS: dict[str, Any] = {}
_PATCHES: tuple[tuple[type, str, Any], ...] = (
    (mongomock.collection.Collection, "_iter_documents", _iter_documents),
    (mongomock.collection.Collection, "_ensure_uniques", _ensure_uniques),
    (mongomock.collection.Collection, "_update", _update),
    (mongomock.collection.Collection, "aggregate", _aggregate),
    (mongomock.collection.Collection, "bulk_write", _bulk_write),
    (mongomock.collection.Cursor, "__next__", _cursor_next),
    (mongomock.collection.Cursor, "next", _cursor_next),
    (mongomock.store.CollectionStore, "__setitem__", _store_setitem),
    (mongomock.store.CollectionStore, "__delitem__", _store_delitem),
    (mongomock.store.CollectionStore, "drop", _invalidating("drop", buckets=True)),
    (
        mongomock.store.CollectionStore,
        "create_index",
        _invalidating("create_index", buckets=False),
    ),
    (
        mongomock.store.CollectionStore,
        "drop_index",
        _invalidating("drop_index", buckets=False),
    ),
)


def install_index_patches() -> None:
    """Install the hash indexes into mongomock (idempotent; affects every mongomock client).

    Collections created before this call (by a raw mongomock client wrapped by
    mongomock-motor) keep the methods they were created with. Also lets
    mongomock's collection module parse its constant version strings once:
    it parsed one per written field, a tenth of the cost of an upsert.
    """
    if _ORIGINALS:
        return
    install_fast_copies()
    namespace = vars(mongomock.collection)
    if not isinstance(namespace["version"], SimpleNamespace):
        version = namespace["version"]
        namespace["version"] = SimpleNamespace(
            parse=functools.lru_cache(maxsize=None)(version.parse), Version=version.Version
        )
    for cls, name, _patched in _PATCHES:
        _ORIGINALS[name] = cls.__dict__[name]
    for cls, name, patched in _PATCHES:
        setattr(cls, name, patched)

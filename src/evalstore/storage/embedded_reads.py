"""Faster reads for the embedded backend: the same answers as mongomock, less copying.

Installed by `evalstore.embedded.install_index_patches`, with the hash indexes:

- mongomock's document walks (the datetime normalisation of every document
  written and read, the copy of every document read) skip plain values;
- `aggregate` with a leading `$match` reads only the documents that stage
  selects, through `find`: mongomock copied the whole collection, then
  filtered the copies, so one run's aggregates cost a copy of every run's
  test runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import mongomock.aggregate
import mongomock.collection
import mongomock.helpers
from bson import ObjectId

# Types both of mongomock's datetime walks return unchanged (exact types, not subclasses).
_ATOMS: frozenset[type] = frozenset({str, int, float, bool, type(None), ObjectId, bytes})
# Types `copy.copy` returns as they are, or (`datetime`, `ObjectId`) as an equal copy of an
# immutable value, which is as good as the value itself.
_IMMUTABLE_ATOMS: frozenset[type] = _ATOMS | {datetime}
# Exact types that are not mappings (the key check recurses into mappings only).
_NOT_MAPPINGS: frozenset[type] = _IMMUTABLE_ATOMS | {list, tuple}


def _stored_datetime(value: datetime) -> datetime:
    """mongomock's `patch_datetime_awareness_in_document` for an exact datetime: naive UTC, ms."""
    milliseconds = (value.microsecond // 1000) * 1000
    if value.tzinfo:
        return (value - value.utcoffset()).replace(tzinfo=None, microsecond=milliseconds)  # type: ignore[operator]
    return value.replace(microsecond=milliseconds)


def _aware_datetime(value: datetime) -> datetime:
    """mongomock's `make_datetime_timezone_aware_in_document` for an exact datetime."""
    return value.replace(tzinfo=vars(mongomock.helpers)["utc"])


_DATETIME_STEPS = {
    "patch_datetime_awareness_in_document": _stored_datetime,
    "make_datetime_timezone_aware_in_document": _aware_datetime,
}


def install_fast_copies() -> None:
    """Let mongomock's document walks skip plain values and plain dicts and lists.

    `patch_datetime_awareness_in_document` copies every written document two or
    three times per upsert (a quarter of its cost), testing each value against
    six types; `make_datetime_timezone_aware_in_document` does the same for
    every document read. For an exact `str`, `int`, `float`, `bool`, `None`,
    `ObjectId` or `bytes` both return the value itself, for an exact `datetime`
    their datetime step, and for an exact `dict` or `list` a copy with each item
    walked: the replacements do just that and hand everything else (datetime
    subclasses, tuples, SON, Timestamp...) to the original,
    whose recursive calls come back to the replacement. The same for
    `_copy_field`, which copies every document a read returns.
    """
    helpers = vars(mongomock.helpers)
    for name in (
        "patch_datetime_awareness_in_document",
        "make_datetime_timezone_aware_in_document",
    ):
        original = helpers[name]
        if getattr(original, "_evalstore_original", None) is not None:
            continue

        moment = _DATETIME_STEPS[name]

        def walk(
            value: Any, _original: Any = original, _name: str = name, _moment: Any = moment
        ) -> Any:
            kind = type(value)
            if kind in _ATOMS:
                return value
            if kind is datetime:
                return _moment(value)
            step = helpers[_name]
            # atoms inline: most values are, and a call per value is most of the cost
            if kind is dict:
                return {
                    key: item if type(item) in _ATOMS else step(item) for key, item in value.items()
                }
            if kind is list:
                return [item if type(item) in _ATOMS else step(item) for item in value]
            return _original(value)

        walk._evalstore_original = original  # type: ignore[attr-defined]
        helpers[name] = walk
    # The copy of every document a read returns.
    namespace = vars(mongomock.collection)
    copy_field = namespace["_copy_field"]
    if getattr(copy_field, "_evalstore_original", None) is None:

        def fast_copy_field(obj: Any, container: Any, _original: Any = copy_field) -> Any:
            kind = type(obj)
            if kind in _IMMUTABLE_ATOMS:
                return obj
            step = namespace["_copy_field"]
            if kind is dict:
                new = container()
                for key, value in obj.items():
                    new[key] = value if type(value) in _IMMUTABLE_ATOMS else step(value, container)
                return new
            if kind is list:
                return [
                    item if type(item) in _IMMUTABLE_ATOMS else step(item, container)
                    for item in obj
                ]
            return _original(obj, container)

        fast_copy_field._evalstore_original = copy_field  # type: ignore[attr-defined]
        namespace["_copy_field"] = fast_copy_field
    # The key check of every document inserted: `isinstance(value, Mapping)` is an ABC check,
    # slow for each value; values of these exact types are not mappings.
    key_check = namespace["_recursive_key_check_null_character"]
    if getattr(key_check, "_evalstore_original", None) is None:

        def fast_key_check(data: Any) -> None:
            for key, value in data.items():
                if "\0" in key:
                    raise namespace["InvalidDocument"](
                        f"Field names cannot contain the null character (found: {key})"
                    )
                if type(value) in _NOT_MAPPINGS:
                    continue
                if isinstance(value, Mapping):
                    namespace["_recursive_key_check_null_character"](value)

        fast_key_check._evalstore_original = key_check  # type: ignore[attr-defined]
        namespace["_recursive_key_check_null_character"] = fast_key_check


def aggregate_match_first(
    collection: Any, pipeline: Any, session: Any, candidates: Callable[[Any, Any], Any]
) -> Any | None:
    """Run `pipeline` copying only what its leading `$match` selects; None if it has none.

    mongomock's `aggregate` copied every document (as `find` does), then kept
    the copies that the `$match` filter applies to once their datetimes are
    normalised. This applies the same filter to the same normalised values
    (of the documents `candidates(store, filter)` narrows to through a hash
    index, or of all of them), then copies only the documents it keeps, in
    store order, so the rest of the pipeline sees exactly what it saw before.
    """
    first = pipeline[0] if type(pipeline) is list and pipeline else None
    if session or type(first) is not dict or len(first) != 1:
        return None
    match = first.get("$match")
    if type(match) is not dict:
        return None
    helpers = vars(mongomock.helpers)
    normalise = helpers["patch_datetime_awareness_in_document"]
    filter_applies = vars(mongomock.collection)["filter_applies"]
    copy_field = vars(mongomock.collection)["_copy_field"]
    spec = normalise(match)
    store = collection._store
    documents = candidates(store, spec)
    if documents is None:
        documents = list(store.documents)  # mongomock's locked walk (expiring TTL documents)
    roots = _field_roots(spec)
    if roots is None:
        kept = [document for document in documents if filter_applies(spec, normalise(document))]
    else:  # the filter reads only these fields: normalise just them
        kept = [
            document
            for document in documents
            if filter_applies(
                spec, normalise({root: document[root] for root in roots if root in document})
            )
        ]
    if collection.codec_options.tz_aware:
        aware = helpers["make_datetime_timezone_aware_in_document"]
        copies = [_aware_copy(document, copy_field, aware) for document in kept]
    else:
        copies = [copy_field(document, dict) for document in kept]
    rest = pipeline[1:]
    return mongomock.aggregate.process_pipeline(copies, collection.database, rest, None)  # type: ignore[no-untyped-call]


def _aware_copy(value: Any, copy_field: Any, aware: Any) -> Any:
    """`aware(copy_field(value, dict))` (what `find` returns) in one walk instead of two."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is datetime:
        return _aware_datetime(value)
    if kind is dict:
        return {key: _aware_copy(item, copy_field, aware) for key, item in value.items()}
    if kind is list:
        return [_aware_copy(item, copy_field, aware) for item in value]
    return aware(copy_field(value, dict))


def _field_roots(spec: dict[str, Any]) -> list[str] | None:
    """The top-level fields a filter of field conditions reads, or None for `$and`, `$expr`...

    A condition on `a` or `a.b.c` looks only inside the document's `a`; a
    top-level operator may look anywhere.
    """
    roots = []
    for key in spec:
        if type(key) is not str or not key or key.startswith("$"):
            return None
        roots.append(key.split(".", 1)[0])
    return roots


def cursor_next(cursor: Any, original: Any) -> Any:
    """mongomock's `Cursor.__next__` without copying the rest of the results at every step.

    mongomock sliced `results[skip:][:limit]` for each document it returned,
    so reading N documents cost O(N²). This returns the same document, or
    raises StopIteration at the same point; a skip or limit that is not a
    non-negative int (pymongo refuses them; mongomock slices with them) goes
    to `original`, mongomock's own method.
    """
    skip, limit = cursor._skip, cursor._limit
    if type(skip) is not int or skip < 0 or (limit is not None and type(limit) is not int):
        return original(cursor)
    results = cursor._compute_results()
    position = skip + cursor._emitted
    if position >= len(results) or (limit and cursor._emitted >= abs(limit)):
        raise StopIteration
    cursor._emitted += 1
    return results[position]

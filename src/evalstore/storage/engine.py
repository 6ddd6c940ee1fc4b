"""The storage seam: the operations every engine implements, and a history query in
both engines' words.

Two engines answer the same service: MongoDB (a server through PyMongo's async
client, or the in-process `mongomock://` test double) runs aggregation pipelines
on the server; the local store runs SQL on SQLite. Everything above
`evalstore.storage` talks to `MongoDBClient`, which hands each operation to the
engine its connection string names.

A history question is a `Query`: its pipeline for MongoDB and its SQL for the
local store, each returning rows of the same shape, so that the Python that
turns rows into answers is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import bson
from bson import ObjectId
from bson.errors import InvalidDocument

from evalstore.models import MAX_DOCUMENT_BYTES, Document
from evalstore.redaction import redact_uri

Collection = Literal["evaluation_runs", "test_runs", "alerts", "usage", "metric_points"]
"""The collections (tables) evalstore keeps."""
Filter = Mapping[str, Any]
"""A MongoDB query filter (the local store compiles the subset evalstore uses to SQL)."""
Sort = Sequence[tuple[str, int]]
"""Sort keys: `[(field, 1 or -1), ...]`."""
Pipeline = Sequence[Mapping[str, Any]]
"""An aggregation pipeline."""


class Select(Protocol):
    """Runs one SQL statement on the local store and returns its rows as dicts.

    `{where}` in `sql` stands for the SQL of `match` (a MongoDB filter on the
    statement's table; `1` when None); other parameters are named (`:name`).
    """

    def __call__(
        self, sql: str, match: Filter | None = None, **params: Any
    ) -> list[dict[str, Any]]: ...


SqlRows = Callable[[Select], list[Document]]
"""The local store's side of a query: rows shaped as the pipeline's."""


@dataclass(frozen=True)
class Query:
    """One history question: a pipeline for MongoDB, SQL for the local store, one row shape.

    Args:
        collection: the collection the pipeline runs on.
        pipeline: what MongoDB runs.
        sql: what the local store runs, given a `Select`; it returns the rows the
            pipeline would.
    """

    collection: Collection
    pipeline: Pipeline
    sql: SqlRows


@dataclass(frozen=True)
class RefusedDocument:
    """A document the store would not take, and why (the others of its batch were stored)."""

    document: Document
    reason: str


class Engine(Protocol):
    """What a storage engine does; `MongoDBClient` delegates every operation to one."""

    async def ping(self) -> float: ...

    async def create_indexes(self) -> list[str]: ...

    async def list_indexes(self) -> dict[str, list[dict[str, Any]]]: ...

    async def close(self) -> None: ...

    async def drop_database(self) -> None: ...

    async def insert(self, collection: Collection, document: Document, *, what: str) -> Any: ...

    async def replace(self, collection: Collection, document: Document, *, what: str) -> None: ...

    async def insert_usage(self, documents: Sequence[Document]) -> None: ...

    async def upsert_points(self, documents: Sequence[Document]) -> None: ...

    async def upsert_run(self, document: Document) -> bool: ...

    async def upsert_test_runs(
        self, documents: Sequence[Document], encoded: Sequence[EncodedTestRun | None] | None = None
    ) -> list[RefusedDocument]: ...

    async def touch_run(self, run_oid: ObjectId, seen_at: datetime) -> None: ...

    async def update_run(
        self, query: Filter, fields: Document, *, action: str
    ) -> Document | None: ...

    async def read(
        self,
        collection: Collection,
        query: Filter,
        *,
        action: str,
        projection: Mapping[str, Any] | None,
        sort: Sort,
        limit: int,
    ) -> list[Document]: ...

    async def read_one(
        self,
        collection: Collection,
        query: Filter,
        *,
        action: str,
        projection: Mapping[str, Any] | None,
        sort: Sort,
    ) -> Document | None: ...

    async def rows(self, query: Query, *, action: str) -> list[Document]: ...

    async def count(self, collection: Collection, query: Filter, *, action: str) -> int: ...

    async def distinct_values(
        self, collection: Collection, field: str, query: Filter, *, action: str
    ) -> list[Any]: ...

    async def delete(self, collection: Collection, query: Filter, *, action: str) -> int: ...


DATA_ERRORS: tuple[type[Exception], ...] = (
    InvalidDocument,
    UnicodeEncodeError,
    OverflowError,
)
"""What encoding a document to BSON raises for a value MongoDB cannot hold (a NUL byte in a
key, a lone surrogate, an integer beyond 64 bits)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, connection strings masked."""
    text = redact_uri(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


EncodedTestRun = tuple[str, bool]
"""A test run document's JSON text and whether it is plain, as `codec.encode_test_run` wrote
it: what the journal holds of it, so that the local store need not encode it again."""

BSON_BYTES_PER_PLAIN_CHAR = 4
"""An upper bound on a plain test run's BSON bytes per character of its JSON text.

Plain (see `codec.encode_test_run`): typed fields, no free-form value, ASCII text.
The most BSON takes per character of such text is an empty string in a list of
tags (`"", ` is 4 characters; its BSON element is 7 bytes plus the digits of its
index), less than 4 for any list a 16 MiB document could hold; every other field
takes less than its text (an ObjectId is 12 bytes for 34 characters, a date 8 for
37, a float 8 for at least 3 characters plus its key, quotes and separators).
"""
_PLAIN_TEXT_LIMIT = MAX_DOCUMENT_BYTES // BSON_BYTES_PER_PLAIN_CHAR


def bson_problem(document: Document, *, plain_text: str | None = None) -> str | None:
    """Why MongoDB would refuse `document` (it cannot be encoded, or it is too large), or None.

    Both engines refuse the same documents, so that a local store can always be
    pushed to a server.

    Args:
        document: the document.
        plain_text: its JSON, when `codec.encode_test_run` wrote it as plain. Short
            enough that even `BSON_BYTES_PER_PLAIN_CHAR` bytes per character fit, and
            without a `\\u` escape (a NUL byte or a lone surrogate would be one), such
            a document encodes within the limit: it is not encoded to find out.
    """
    if plain_text is not None and len(plain_text) <= _PLAIN_TEXT_LIMIT and "\\u" not in plain_text:
        return None
    try:
        size = len(bson.encode(document))
    except DATA_ERRORS as exc:
        return first_line(exc)
    if size > MAX_DOCUMENT_BYTES:
        return f"the document is {size:,} bytes; MongoDB's limit is {MAX_DOCUMENT_BYTES:,}"
    return None


def project(document: Document, projection: Mapping[str, Any] | None) -> Document:
    """`document` with a MongoDB projection of top-level fields applied (`_id` kept unless 0).

    Only what evalstore asks of a store: inclusion (`{f: 1}`) or exclusion (`{f: 0}`) of
    top-level fields.
    """
    if not projection:
        return document
    include = {name for name, flag in projection.items() if flag and name != "_id"}
    keep_id = bool(projection.get("_id", 1))
    if include:
        return {
            name: value
            for name, value in document.items()
            if name in include or (name == "_id" and keep_id)
        }
    exclude = {name for name, flag in projection.items() if not flag}
    return {name: value for name, value in document.items() if name not in exclude}

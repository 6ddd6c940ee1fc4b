"""The embedded backend's hash indexes: mongomock's answers, without its full scans."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import mongomock
import mongomock.collection
import mongomock.helpers
import pytest
from bson import SON, ObjectId
from bson.errors import BSONError
from embedded_originals import original_methods, original_walks
from mongomock.filtering import filter_applies
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from evalstore import MongoDBClient
from evalstore.storage import embedded

MISSING = object()


@pytest.fixture(autouse=True)
def patches() -> None:
    embedded._install_bulk_write_shim()
    embedded.install_index_patches()


@contextmanager
def unpatched() -> Iterator[None]:
    """mongomock's own methods, for the duration of the block."""
    originals = original_methods()
    patched = {(cls, name): cls.__dict__[name] for cls, name in originals}
    try:
        for (cls, name), method in originals.items():
            setattr(cls, name, method)
        yield
    finally:
        for (cls, name), method in patched.items():
            setattr(cls, name, method)


def fresh_collection(unique: str | None = "k") -> Any:
    collection = mongomock.MongoClient().db[f"c_{uuid.uuid4().hex[:8]}"]
    if unique:
        collection.create_index(unique, unique=True)
    return collection


def scan(collection: Any, query: dict[str, Any]) -> list[Any]:
    """What mongomock answers without the patches: every document through `filter_applies`."""
    return [doc for doc in collection._store.documents if filter_applies(query, doc)]


def lookup(collection: Any, query: dict[str, Any]) -> list[Any]:
    return list(collection._iter_documents(query))


def assert_indexes_current(collection: Any) -> None:
    """Every hash index equals one rebuilt from the stored documents."""
    store = collection._store
    state = store.__dict__.get(embedded._STATE)
    for field, index in (state.fields if state else {}).items():
        rebuilt = embedded._FieldIndex(field)
        for key, document in store._documents.items():
            rebuilt.add(key, document)
        assert (index.buckets, index.values, index.unsafe) == (
            rebuilt.buckets,
            rebuilt.values,
            rebuilt.unsafe,
        ), field
    if state is not None and state.positions is not None:  # numbered in store order
        numbers = [state.positions[key] for key in store._documents]
        assert len(state.positions) == len(numbers)
        assert numbers == sorted(numbers)
        assert len(set(numbers)) == len(numbers)


def _exactly(value: Any) -> Any:
    """`value` with types, time zones and folds spelled out, for comparisons that see them."""
    if isinstance(value, dict):
        return (type(value), [(key, _exactly(item)) for key, item in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [_exactly(item) for item in value])
    if isinstance(value, datetime):
        return (type(value), value.isoformat(), value.tzinfo, value.fold)
    return (type(value), value)


def test_document_walks_return_what_mongomocks_own_return() -> None:
    """The replaced datetime walks (every document written and read) against mongomock's."""
    rng = random.Random(7)
    zones = [None, timezone.utc, timezone(timedelta(hours=-5)), ZoneInfo("Europe/Berlin")]
    moments = [
        datetime(
            rng.randint(1, 9999),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, 999, 1000, 123456, 999999]),
            tzinfo=rng.choice(zones),
            fold=rng.randint(0, 1),
        )
        for _ in range(2000)
    ]
    documents = [
        {"at": moment, "nested": {"list": [moment, 1, "x", None, (moment,)]}, "n": 2.5}
        for moment in moments
    ]
    walks = original_walks()
    walks.pop("_recursive_key_check_null_character")  # compared in its own test below
    assert walks, "the walks are replaced"
    for name, original in walks.items():
        replaced = vars(mongomock.helpers)[name]
        assert replaced is not original
        for value in [*moments, *documents]:
            try:
                expected = _exactly(original(value))
            except OverflowError:  # year 1 minus a positive offset, as in mongomock
                with pytest.raises(OverflowError):
                    replaced(value)
                continue
            assert _exactly(replaced(value)) == expected, (name, value)


def test_a_duplicate_insert_raises_and_writes_nothing() -> None:
    collection = fresh_collection()
    collection.insert_one({"_id": 1, "k": "a"})
    with pytest.raises(DuplicateKeyError) as error:
        collection.insert_one({"_id": 2, "k": "a"})
    assert error.value.code == 11000
    with pytest.raises(BulkWriteError) as bulk_error:
        collection.insert_many([{"_id": 3, "k": "b"}, {"_id": 4, "k": "b"}])
    assert bulk_error.value.details["writeErrors"][0]["code"] == 11000
    assert [d["_id"] for d in collection.find()] == [1, 3]
    assert lookup(collection, {"k": "a"}) == [{"_id": 1, "k": "a"}]
    assert lookup(collection, {"k": "b"}) == [{"_id": 3, "k": "b"}]
    assert_indexes_current(collection)


def test_a_duplicate_upsert_raises_and_writes_nothing() -> None:
    collection = fresh_collection()
    collection.insert_one({"_id": 1, "k": "a"})
    with pytest.raises(DuplicateKeyError) as error:
        collection.update_one({"_id": 2}, {"$set": {"k": "a"}}, upsert=True)
    assert error.value.code == 11000
    assert list(collection.find()) == [{"_id": 1, "k": "a"}]
    assert lookup(collection, {"k": "a"}) == [{"_id": 1, "k": "a"}]
    assert lookup(collection, {"_id": 2}) == []
    assert_indexes_current(collection)


def test_an_update_onto_a_taken_value_is_rejected_and_rolled_back() -> None:
    collection = fresh_collection()
    collection.insert_many([{"_id": 1, "k": "a"}, {"_id": 2, "k": "b", "n": 1}])
    with pytest.raises(DuplicateKeyError):
        collection.update_one({"k": "b"}, {"$set": {"k": "a", "n": 2}})
    with pytest.raises(DuplicateKeyError):
        collection.replace_one({"k": "b"}, {"k": "a"})
    assert list(collection.find()) == [{"_id": 1, "k": "a"}, {"_id": 2, "k": "b", "n": 1}]
    assert lookup(collection, {"k": "a"}) == [{"_id": 1, "k": "a"}]
    assert lookup(collection, {"k": "b"}) == [{"_id": 2, "k": "b", "n": 1}]
    assert_indexes_current(collection)


def test_a_missing_field_counts_as_none_for_uniqueness() -> None:
    collection = fresh_collection()
    collection.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"_id": 2})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"_id": 3, "k": None})
    collection.update_one({"_id": 1}, {"$set": {"k": "a"}})
    collection.insert_one({"_id": 4, "k": None})
    with pytest.raises(DuplicateKeyError):
        collection.update_one({"_id": 1}, {"$unset": {"k": ""}})
    assert lookup(collection, {"k": None}) == [{"_id": 4, "k": None}]
    assert lookup(collection, {"k": "a"}) == [{"_id": 1, "k": "a"}]
    assert_indexes_current(collection)


def test_lookups_follow_every_kind_of_write() -> None:
    collection = fresh_collection()
    collection.insert_many([{"_id": i, "k": f"v{i}"} for i in range(5)])
    assert lookup(collection, {"k": "v3"}) == [{"_id": 3, "k": "v3"}]
    collection.update_one({"k": "v3"}, {"$set": {"k": "w3"}})  # in place
    collection.replace_one({"_id": 4}, {"k": "w4"})
    collection.delete_one({"k": "v0"})
    collection.delete_many({"k": {"$in": ["v1", "v2"]}})
    for value in ("v0", "v1", "v2", "v3", "v4", "w3", "w4", None):
        assert lookup(collection, {"k": value}) == scan(collection, {"k": value}), value
    assert lookup(collection, {"k": {"$in": ["w4", "w3"]}}) == [
        {"_id": 3, "k": "w3"},
        {"_id": 4, "k": "w4"},
    ]
    assert_indexes_current(collection)
    collection.drop_index("k_1")
    collection.insert_one({"_id": 9, "k": "w3"})  # no longer unique
    assert lookup(collection, {"k": "w3"}) == [{"_id": 3, "k": "w3"}, {"_id": 9, "k": "w3"}]
    collection.drop()
    assert lookup(collection, {"k": "w3"}) == []
    assert lookup(collection, {"_id": 9}) == []


def test_an_array_value_disables_the_fast_path_until_it_is_gone() -> None:
    collection = fresh_collection()
    collection.insert_many([{"_id": 1, "k": "a"}, {"_id": 2, "k": ["b", "c"]}])
    assert embedded._field_index(collection._store, "k") is None
    assert lookup(collection, {"k": "b"}) == [{"_id": 2, "k": ["b", "c"]}]
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"_id": 3, "k": "a"})
    collection.update_one({"_id": 2}, {"$set": {"k": "b"}})
    assert embedded._field_index(collection._store, "k") is not None
    assert lookup(collection, {"k": "b"}) == [{"_id": 2, "k": "b"}]
    assert_indexes_current(collection)


def test_an_equal_value_of_another_type_is_still_found() -> None:
    class Label(str):
        __hash__ = object.__hash__

    collection = fresh_collection()
    collection.insert_one({"_id": 1, "k": "a"})
    # equal to "a", so mongomock sees no change and checks nothing
    collection.update_one({"_id": 1}, {"$set": {"k": Label("a")}})
    assert embedded._field_index(collection._store, "k") is None
    assert lookup(collection, {"k": "a"}) == scan(collection, {"k": "a"}) == [{"_id": 1, "k": "a"}]


def test_one_upsert_into_a_large_collection_checks_a_few_documents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the hash indexes, one upsert runs `filter_applies` on every document twice."""
    collection = fresh_collection()
    collection.insert_many([{"k": f"v{i}", "n": i} for i in range(1000)])
    calls = 0
    original = mongomock.collection.filter_applies

    def counting(*args: Any) -> bool:
        nonlocal calls
        calls += 1
        return original(*args)

    monkeypatch.setattr(mongomock.collection, "filter_applies", counting)
    collection.bulk_write(
        [
            UpdateOne({"k": "new"}, {"$setOnInsert": {"n": -1}}, upsert=True),
            UpdateOne({"k": "v500"}, {"$setOnInsert": {"n": -1}}, upsert=True),
        ]
    )
    collection.update_one({"k": "v7"}, {"$set": {"n": 7}})
    assert 0 < calls <= 10
    assert collection.count_documents({}) == 1001


def test_a_non_unique_index_answers_lookups_from_its_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`{evaluation_run_id: oid}` on its non-unique index: the group's documents, not a scan."""
    collection = fresh_collection()
    collection.create_index("g")
    collection.insert_many([{"k": f"v{i}", "g": f"g{i % 10}", "n": i} for i in range(1000)])
    collection.insert_one({"k": "none"})  # a missing `g` is None
    calls = 0
    original = mongomock.collection.filter_applies

    def counting(*args: Any) -> bool:
        nonlocal calls
        calls += 1
        return original(*args)

    monkeypatch.setattr(mongomock.collection, "filter_applies", counting)
    found = lookup(collection, {"g": "g3"})
    assert calls == 100
    both = lookup(collection, {"g": {"$in": ["g7", None]}})
    assert calls == 100 + 101
    monkeypatch.setattr(mongomock.collection, "filter_applies", original)
    assert [d["n"] for d in found] == list(range(3, 1000, 10))  # in store order
    assert found == scan(collection, {"g": "g3"})
    assert both == scan(collection, {"g": {"$in": ["g7", None]}})
    assert lookup(collection, {"g": "g3", "n": 13}) == [{"_id": found[1]["_id"], **found[1]}]
    assert_indexes_current(collection)


def test_a_sparse_or_partial_unique_index_beside_a_plain_one_is_checked_as_mongomock_does() -> None:
    """A plain index serves `g`; the sparse and partial unique ones on `g` keep their rules."""
    outcomes = []
    for patches in (True, False):
        collection = fresh_collection(unique=None)
        with contextlib.nullcontext() if patches else unpatched():
            collection.create_index("g")
            collection.create_index("g", unique=True, sparse=True, name="g_sparse")
            collection.create_index(
                "h", unique=True, partialFilterExpression={"n": {"$gt": 5}}, name="h_partial"
            )
            collection.create_index("h")
            steps = [
                lambda c: c.insert_one({"_id": 1, "n": 1}).inserted_id,
                lambda c: c.insert_one({"_id": 2, "n": 1}).inserted_id,  # no `g`: sparse
                lambda c: c.insert_one({"_id": 3, "g": "a", "h": "x", "n": 1}).inserted_id,
                lambda c: c.insert_one({"_id": 4, "g": "a", "n": 1}).inserted_id,  # duplicate
                lambda c: c.insert_one({"_id": 5, "h": "x", "n": 1}).inserted_id,  # not partial
                lambda c: c.insert_one({"_id": 6, "h": "x", "n": 9}).inserted_id,
                lambda c: c.insert_one({"_id": 7, "h": "x", "n": 8}).inserted_id,  # duplicate
                lambda c: c.update_one({"_id": 5}, {"$set": {"n": 7}}).modified_count,
                lambda c: c.update_one({"h": "x"}, {"$set": {"g": None}}).modified_count,
                lambda c: c.update_one({"_id": 2}, {"$set": {"g": None}}).modified_count,
                lambda c: sorted(d["_id"] for d in c.find({"g": None})),
                lambda c: sorted(d["_id"] for d in c.find({"h": "x"})),
            ]
            outcomes.append([_run(step, collection) for step in steps])
            outcomes.append(_normal(list(collection.find())))
        if patches:
            assert {"g", "h"} <= embedded._served_fields(collection._store)
            assert_indexes_current(collection)
    assert outcomes[0] == outcomes[2]
    assert outcomes[1] == outcomes[3]
    errors = [outcome[1] for outcome in outcomes[0] if outcome[0] == "error"]
    assert errors == ["DuplicateKeyError"] * 3  # `_id` 4 on `g`, 7 and 5 (now n > 5) on `h`


def test_index_definitions_changing_keep_the_buckets_a_drop_does_not() -> None:
    """Each new client re-creates the same indexes: that must not rebuild every bucket."""
    collection = fresh_collection()
    collection.create_index("g")
    collection.insert_many([{"k": f"v{i}", "g": f"g{i % 3}"} for i in range(30)])
    store = collection._store
    k_index, g_index = embedded._field_index(store, "k"), embedded._field_index(store, "g")
    assert k_index is not None
    assert g_index is not None
    collection.create_index("k", unique=True)  # the same again, as `ensure_indexes` does
    collection.create_index("n")
    collection.drop_index("g_1")
    assert "g" not in embedded._served_fields(store)
    collection.insert_one({"k": "new", "g": "g1"})
    collection.update_one({"k": "v4"}, {"$set": {"g": "g0"}})
    collection.create_index("g")
    assert embedded._field_index(store, "k") is k_index
    assert embedded._field_index(store, "g") is g_index
    assert_indexes_current(collection)
    for query in ({"g": "g1"}, {"g": "g0"}, {"k": "new"}):
        assert lookup(collection, query) == scan(collection, query), query
    assert embedded._state(store).positions is not None  # numbered by the lookups of `g`
    collection.drop()
    assert embedded._state(store).fields == {}
    assert embedded._state(store).positions is None
    assert lookup(collection, {"g": "g1"}) == []
    collection.create_index("g")
    collection.insert_many([{"g": "g1", "n": i} for i in range(3)])
    assert [d["n"] for d in lookup(collection, {"g": "g1"})] == [0, 1, 2]
    assert_indexes_current(collection)


@pytest.mark.mongodb_only
async def test_duplicates_through_the_client(client: MongoDBClient) -> None:
    await client.ensure_indexes()
    document = {"test_run_id": "r1", "status": "passed"}
    await client.test_runs.insert_one(dict(document))
    with pytest.raises(DuplicateKeyError):
        await client.test_runs.insert_one(dict(document))
    upsert = UpdateOne({"test_run_id": "r1"}, {"$setOnInsert": {"status": "failed"}}, upsert=True)
    result = await client.test_runs.bulk_write([upsert], ordered=False)
    assert (result.upserted_count, result.matched_count) == (0, 1)
    found = await client.test_runs.find({"test_run_id": "r1"}, {"_id": 0}).to_list(None)
    assert found == [document]


def test_patches_are_installed_by_the_first_embedded_client_not_by_imports() -> None:
    code = (
        "import evalstore, evalstore.storage.client, evalstore.storage.embedded\n"
        "import mongomock.collection as c\n"
        "assert c.Collection._iter_documents.__module__ == 'mongomock.collection'\n"
        "evalstore.MongoDBClient('mongomock://', 'db').engine.client()\n"
        "assert c.Collection._iter_documents.__module__ == 'evalstore.storage.embedded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# A differential test: random operations on a patched collection and, with mongomock's own
# methods, on a reference collection; same results, same documents, indexes always current.

VALUES: list[Any] = [*"abcdefghijklmnop", None, MISSING, 7, ObjectId("0" * 24)]


def _value(rng: random.Random) -> Any:
    if rng.random() < 0.03:
        return [rng.choice("abc"), "z"]
    return rng.choice(VALUES)


def _with_k(document: dict[str, Any], value: Any) -> dict[str, Any]:
    return document if value is MISSING else {**document, "k": value}


# `g`, under a non-unique index: a few documents per value, missing when n is 9.
G_VALUES: list[Any] = ["g0", "g1", "g2", None, "gx"]


def _with_g(document: dict[str, Any], n: int) -> dict[str, Any]:
    return document if n == 9 else {**document, "g": f"g{n % 3}"}


def _normal(value: Any) -> Any:
    """Upserted documents get random ObjectIds: compare them as equal; field order counts."""
    if isinstance(value, dict):
        return [(key, _normal(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_normal(item) for item in value]
    if isinstance(value, ObjectId) and value != VALUES[-1]:
        return "oid"
    return value


# $setOnInsert fields mongomock refuses (each with its own error) or cannot normalise.
BAD_FIELDS: list[dict[str, Any]] = [
    {"nested": {1: "int key"}},
    {"nul\x00key": 1},
    {"nested": {"nul\x00": 1}},
    {"set": {1, 2}},
    {"at": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))},  # overflows to UTC
]


def _operation(rng: random.Random) -> Callable[[Any], Any]:
    def next_id() -> str:
        return f"i{rng.randrange(40)}"  # a small pool: some inserts clash on `_id`

    v, w = _value(rng), _value(rng)
    q, r = (None if x is MISSING else x for x in (v, w))
    n = rng.randrange(10)
    choice = rng.randrange(28)
    if choice in (0, 16, 17):
        doc = _with_g(_with_k({"_id": next_id(), "n": n}, v), n)
        return lambda c: c.insert_one(doc).inserted_id
    if choice == 1:
        docs = [
            _with_g(_with_k({"_id": next_id(), "n": n}, x), n + i) for i, x in enumerate((v, w))
        ]
        return lambda c: c.insert_many(docs, ordered=rng.random() < 0.5).inserted_ids
    if choice == 2:
        return lambda c: c.update_one({"k": q}, {"$set": {"k": r}}).raw_result["nModified"]
    if choice in (3, 18):
        return lambda c: c.update_one({"k": q}, {"$set": {"n": n}}, upsert=True).upserted_id
    if choice == 4:
        return lambda c: c.update_many({"n": {"$lt": n}}, {"$set": {"k": q}}).modified_count
    if choice == 5:
        return lambda c: c.update_one({"k": q}, {"$unset": {"k": ""}}).modified_count
    if choice == 6:
        doc = _with_k({"n": n}, w)
        upsert = n < 5
        return lambda c: c.replace_one({"k": q}, doc, upsert=upsert).matched_count
    if choice == 7:
        return lambda c: c.delete_one({"k": q}).deleted_count
    if choice == 8:
        return lambda c: c.delete_many({"k": {"$in": [q, r]}}).deleted_count
    if choice == 9:
        return lambda c: c.delete_many({"n": n}).deleted_count
    if choice == 10:
        return lambda c: c.find_one_and_update({"_id": next_id()}, {"$set": {"k": q}})
    if choice == 19:
        update = {"$setOnInsert": {"n": n}}
        return lambda c: {
            key: value
            for key, value in c.update_one({"k": q}, update, upsert=True).raw_result.items()
            if key != "connectionId"  # differs between the two clients
        }
    if choice == 11:
        return lambda c: (
            c.bulk_write(
                [UpdateOne({"k": q}, {"$setOnInsert": {"n": n}}, upsert=True)], ordered=False
            ).upserted_count
        )
    if choice == 12 and n < 4:
        index = rng.choice(
            [
                ("k", {}),
                ("n", {"unique": True}),
                ("n", {"sparse": True}),
                ("g", {"unique": True, "sparse": True, "name": "g_u"}),
            ]
        )
        return lambda c: c.create_index(index[0], **index[1])
    if choice == 13 and n < 2:
        name = "n_1" if n == 0 else "g_u"
        return lambda c: c.drop_index(name)
    if choice == 13:
        doc = _with_k({"_id": next_id()}, v)

        def without_the_unique_index(c: Any) -> Any:
            c.drop_index("k_1")
            c.insert_one(doc)  # may duplicate a value while no index forbids it
            found = list(c.find({"k": q}))
            c.delete_one({"_id": doc["_id"]})
            c.create_index("k", unique=True)
            return found

        return without_the_unique_index
    if choice == 14 and n == 0:
        doc = _with_k({"_id": next_id()}, v)

        def drop_and_refill(c: Any) -> Any:
            before = list(c.find({"_id": doc["_id"]}))
            c.drop()
            c.insert_one(doc)
            found = [before, list(c.find({"k": q}))]
            found += [list(c.find({"_id": f"i{k}"})) for k in range(40)]
            c.create_index("k", unique=True)
            c.create_index("g")
            return found

        return drop_and_refill
    if choice == 20:  # evalstore's test-run write: whole documents, some clashing on `_id`
        extra = rng.choice([{}, {}, {}, *BAD_FIELDS])  # some that mongomock refuses, its way
        requests = [
            UpdateOne(
                {"k": x},
                {
                    "$setOnInsert": _with_g(
                        {"_id": next_id(), "n": n, "doc": {"list": [n, "x"]}, **extra}, n
                    )
                },
                upsert=True,
            )
            for x in ("a", q, r, "b")
        ]
        ordered = n < 5
        return lambda c: c.bulk_write(requests, ordered=ordered).bulk_api_result
    if choice == 21:
        skip = rng.randrange(-2, 4)  # pymongo refuses a negative skip; mongomock slices with it
        limit: float = rng.choice([rng.randrange(-3, 4), 2.0])
        return lambda c: list(c.find({"n": {"$gte": n // 2}}).sort("n").skip(skip).limit(limit))
    if choice in (22, 23):
        stage = rng.choice(
            [
                {"k": {"$in": [q, r]}},
                {"n": {"$lt": n}},
                {"doc.list": n},  # the documents of choice 20
                {"$or": [{"n": {"$lt": n}}, {"k": q}]},
            ]
        )
        pipeline = [
            {"$match": stage},
            {"$group": {"_id": "$k", "total": {"$sum": "$n"}, "docs": {"$push": "$$ROOT"}}},
            {"$sort": {"total": 1}},
        ]
        return lambda c: list(c.aggregate(pipeline))
    if choice == 24:
        pipeline = [{"$sort": {"n": -1}}, {"$match": {"n": {"$gt": n}}}, {"$limit": 3}]
        return lambda c: list(c.aggregate(pipeline))
    g, h = rng.choice(G_VALUES), rng.choice(G_VALUES)
    if choice == 25:  # moves documents between `g` buckets
        return lambda c: c.update_many({"g": g}, {"$set": {"g": h, "n": n}}).modified_count
    if choice == 26:
        return lambda c: [
            list(c.find({"g": g}).sort("n")),
            c.count_documents({"g": {"$in": [g, h]}}),
            c.delete_one({"g": g, "n": n}).deleted_count,
        ]
    if choice == 27:
        pipeline = [{"$match": {"g": g}}, {"$group": {"_id": "$k", "n": {"$sum": "$n"}}}]
        return lambda c: [
            list(c.aggregate(pipeline)),
            c.find_one_and_update({"g": g}, {"$unset": {"g": ""}}),
        ]
    some_id = next_id()
    return lambda c: list(c.find({"k": q, "n": n}) if n < 3 else c.find({"_id": some_id}))


def _run(operation: Callable[[Any], Any], collection: Any) -> Any:
    try:
        return ("ok", _normal(operation(collection)))
    except (
        PyMongoError,
        BSONError,
        TypeError,
        ValueError,
        ArithmeticError,
        NotImplementedError,
    ) as exc:
        return (
            "error",
            type(exc).__name__,
            str(exc),
            getattr(exc, "code", None),
            _normal(getattr(exc, "details", None)),
        )


def test_random_operations_answer_exactly_as_mongomock_does() -> None:
    rng = random.Random(20251125)
    patched, reference = fresh_collection(), fresh_collection(unique=None)
    patched.create_index("g")  # not unique: several documents per value
    with unpatched():
        reference.create_index("k", unique=True)
        reference.create_index("g")
    served = 0
    for step in range(600):
        operation = _operation(rng)
        state = rng.getstate()
        outcome = _run(operation, patched)
        rng.setstate(state)  # insert_many draws `ordered` when it runs
        with unpatched():
            expected = _run(operation, reference)
        assert outcome == expected, step
        assert _normal(list(patched.find())) == _normal(list(reference.find())), step
        assert_indexes_current(patched)
        for value in VALUES:
            query = {"k": None if value is MISSING else value}
            assert lookup(patched, query) == scan(patched, query), (step, value)
        for query in ({"_id": f"i{step % 40}"}, {"_id": {"$in": ["i1", "i2", "i3"]}}):
            assert lookup(patched, query) == scan(patched, query), (step, query)
        for value in G_VALUES:
            for query in ({"g": value}, {"g": {"$in": [value, "g1"]}}, {"g": value, "n": 3}):
                assert lookup(patched, query) == scan(patched, query), (step, query)
        if "g" in embedded._served_fields(patched._store):
            served += embedded._field_index(patched._store, "g") is not None
    assert served > 400


def test_a_matching_insert_only_upsert_refuses_what_mongomock_refuses() -> None:
    """mongomock normalises the update's dates before looking, so a match still raises."""
    # 00:30 at UTC+1 is the year 0 in UTC: normalising it overflows
    overflowing = {
        "$setOnInsert": {"at": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))}
    }
    outcomes = []
    for patches in (True, False):
        collection = fresh_collection()
        collection.insert_one({"k": "a"})
        with contextlib.nullcontext() if patches else unpatched():
            outcomes.append(
                _run(lambda c: c.update_one({"k": "a"}, overflowing, upsert=True), collection)
            )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][:2] == ("error", "OverflowError")


def test_a_leading_match_compares_dates_as_mongomock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """`$currentDate` stores microseconds in mongomock; its `$match` compares them at ms."""
    monkeypatch.setattr(mongomock, "utcnow", lambda: datetime(2025, 1, 2, 3, 4, 5, 678901))
    pipelines = [
        [{"$match": {"at": datetime(2025, 1, 2, 3, 4, 5, 678000)}}, {"$project": {"k": 1}}],
        [{"$match": {"at": {"$lte": datetime(2025, 1, 2, 3, 4, 5, 678000)}}}],
    ]
    outcomes = []
    for patches in (True, False):
        collection = mongomock.MongoClient(tz_aware=True).db[f"c_{uuid.uuid4().hex[:8]}"]
        collection.insert_many([{"k": "a"}, {"k": "b"}])
        collection.update_one({"k": "a"}, {"$currentDate": {"at": True}})
        with contextlib.nullcontext() if patches else unpatched():
            outcomes.append([[d["k"] for d in collection.aggregate(p)] for p in pipelines])
    assert outcomes == [[["a"], ["a"]], [["a"], ["a"]]]


def test_bulk_write_refuses_its_options_first_as_mongomock_does() -> None:
    outcomes = []
    for patches in (True, False):
        collection = fresh_collection()
        with contextlib.nullcontext() if patches else unpatched():
            outcomes.append(
                _run(lambda c: c.bulk_write(None, bypass_document_validation=True), collection)
            )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][:2] == ("error", "NotImplementedError")


def test_a_leading_match_on_paths_and_operators_finds_what_mongomock_finds() -> None:
    documents = [
        {"_id": 1, "k": "a", "doc": {"list": [1, "x"], "at": datetime(2025, 1, 2)}},
        {"_id": 2, "k": "b", "doc": {"list": [2]}, "son": SON([("x", (1, 2))])},
        {"_id": 3, "k": "c", "doc": [{"list": 1}], "raw": b"\x00", "t": (datetime(2025, 1, 3),)},
        {"_id": 4, "k": "d"},
    ]
    filters: list[dict[str, Any]] = [
        {"doc.list": 1},
        {"doc.list.0": 2},
        {"doc.at": {"$gte": datetime(2025, 1, 1)}},
        {"doc": {"$exists": False}},
        {"$or": [{"doc.list": 2}, {"k": "d"}]},
        {"k": {"$in": ["a", "c"]}, "doc.list": {"$ne": 2}},
    ]
    outcomes, found = [], []
    for patches in (True, False):
        collection = mongomock.MongoClient(tz_aware=True).db[f"c_{uuid.uuid4().hex[:8]}"]
        collection.insert_many(documents)
        with contextlib.nullcontext() if patches else unpatched():
            results = [list(collection.aggregate([{"$match": f}])) for f in filters]
        outcomes.append([[_exactly(d) for d in result] for result in results])
        found.append([[d["k"] for d in result] for result in results])
    assert outcomes[0] == outcomes[1]  # the same documents, types and time zones
    assert found[0] == [["a", "c"], ["b"], ["a"], ["d"], ["b", "d"], ["a", "c"]]


def _outcome(check: Callable[[Any], Any], document: Any) -> Any:
    try:
        return ("ok", check(document))
    except Exception as exc:  # the comparison is the point: any error, same type and text
        return ("error", type(exc).__name__, str(exc))


def test_the_key_check_of_inserted_documents_answers_as_mongomocks_own() -> None:
    original = original_walks()["_recursive_key_check_null_character"]
    replaced = vars(mongomock.collection)["_recursive_key_check_null_character"]
    assert replaced is not original
    documents: list[Any] = [
        {"a": 1, "b": "x", "c": None, "d": 2.5, "e": datetime(2025, 1, 1), "f": ObjectId()},
        {"a": {"b": {"c\0": 1}}},
        {"a\0": 1},
        {"a": {1: "int key"}},
        {"a": [{"in\0list": 1}]},  # lists are not searched
        {"a": SON([("b", SON([("c\0", 1)]))])},
        {"a": OrderedDict([("b\0", 1)])},
        {"a": ({"t\0": 1},)},
        {"a": b"bytes", "b": True, "c": {"d": {"e": {"f": "deep"}}}},
    ]
    for document in documents:
        assert _outcome(replaced, document) == _outcome(original, document), document

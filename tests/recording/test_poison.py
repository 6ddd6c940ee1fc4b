"""One result the store refuses never holds back the others (issue 18.1, 16.3).

The refused result is stored nowhere it cannot be, is not retried forever, and is
kept (with the reason) in `<spool>/rejected/<run>.ndjson`, which a warning names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from engine_wrappers import WrappedCollections
from pymongo.errors import BulkWriteError

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.codec import encode

DEAD = "mongodb://127.0.0.1:1"


def make_test_run(test_id: str, **extra: Any) -> dict[str, Any]:
    return {"test_run_id": f"r1:{test_id}", "test_id": test_id, "evaluation_run_id": 1, **extra}


async def test_a_batch_stores_all_but_the_documents_that_cannot_be_encoded(
    embedded: MetricsStorageService,
) -> None:
    batch = [
        make_test_run("ok1"),
        make_test_run("nul", metrics={"a\x00b": 1}),
        make_test_run("ok2"),
        make_test_run("surrogate", message="\ud800"),
        make_test_run("big", details={"blob": "x" * (16 * 1024 * 1024)}),
    ]
    refused = await embedded.upsert_test_runs(batch)
    assert [(r.document["test_id"], r.reason) for r in refused[:2]] == [
        ("nul", "Invalid document: Key names must not contain the NULL byte"),
        (
            "surrogate",
            "'utf-8' codec can't encode character '\\ud800' in position 0: surrogates not allowed",
        ),
    ]
    assert refused[2].document["test_id"] == "big"
    assert refused[2].reason.startswith("the document is 16,777,")
    assert refused[2].reason.endswith(" bytes; MongoDB's limit is 16,777,216")
    stored = await embedded.client.test_runs.distinct("test_id")
    assert sorted(stored) == ["ok1", "ok2"]


class RefusingCollection:
    """`test_runs` of a server that refuses, in each bulk write, the tests named `bad*`.

    Like MongoDB's answer to an unordered bulk write: the others are written, and
    a BulkWriteError lists the refused ones by index.
    """

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    async def bulk_write(self, operations: list[Any], ordered: bool) -> None:
        refused = [
            i
            for i, op in enumerate(operations)
            if op._doc["$setOnInsert"]["test_id"].startswith("bad")
        ]
        good = [op for i, op in enumerate(operations) if i not in refused]
        if good:
            await self._collection.bulk_write(good, ordered=ordered)
        if refused:
            errors = [{"index": i, "code": 2, "errmsg": "refused by the server"} for i in refused]
            raise BulkWriteError({"writeErrors": errors})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


class RefusingServer(WrappedCollections):
    def wrap(self, name: str, collection: Any) -> Any:
        return RefusingCollection(collection) if name == "test_runs" else collection


async def test_a_refused_result_is_kept_aside_and_the_run_completes(
    database: str,
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    spool_dir: Path,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clean_env.setenv("EVALSTORE_BATCH_SIZE", "50")
    caplog.set_level(logging.WARNING, logger="evalstore")
    service = MetricsStorageService(RefusingServer("mongomock://", database))
    async with evaluation_run(service, environment="dev") as run:
        for i in range(100):
            await run.record_test(f"ok{i:03d}", passed=True)
        await run.record_test("bad", passed=False)
        for i in range(100):
            await run.record_test(f"ok2-{i:03d}", passed=True)
    assert run.document["status"] == "completed"
    assert await embedded.client.test_runs.count_documents({}) == 200
    assert journals() == []  # everything else stored: nothing left to replay
    [rejected] = sorted((spool_dir / "rejected").iterdir())
    [line] = rejected.read_text().splitlines()
    assert '"reason": "refused by the server"' in line
    assert '"test_id": "bad"' in line
    [warning] = [r.getMessage() for r in caplog.records if r.name == "evalstore"]
    assert warning == (
        f"evalstore: the store refused 1 result(s) of run {run.evaluation_run_id} "
        f"(first: test 'bad': refused by the server); they are kept in {rejected}"
    )
    assert "unavailable" not in warning


async def test_sync_stores_the_rest_of_a_journal_with_a_poison_line_and_goes_on(
    database: str,
    embedded: MetricsStorageService,
    sync: Callable[..., Any],
    journals: Callable[[], list[Path]],
    spool_dir: Path,
) -> None:
    ids, oids = [], []
    for _ in range(2):  # two runs recorded while the server was down
        async with MongoDBClient(DEAD, database, timeout_ms=100) as client:
            run = evaluation_run(MetricsStorageService(client), environment="dev")
            async with run:
                for i in range(5):
                    await run.record_test(f"t{i}", passed=True)
        ids.append(run.evaluation_run_id)
        oids.append(run.document["_id"])
    first = next(p for p in journals() if ids[0] in p.name)
    poison = {
        "_id": ObjectId(),
        "evaluation_run_id": oids[0],
        "test_run_id": f"{ids[0]}:poison",
        "test_id": "poison",
        "metrics": {"a\x00b": {"score": 1.0}},
    }
    lines = first.read_bytes().splitlines(keepends=True)
    first.write_bytes(b"".join([lines[0], encode({"kind": "test", "doc": poison}), *lines[1:]]))

    report = await sync()
    assert (report.journals, report.failed) == (2, [])
    assert journals() == []
    assert await embedded.client.test_runs.count_documents({}) == 10
    for run_id in ids:
        stored = await embedded.get_evaluation_run(run_id)
        assert stored is not None
        assert (stored["status"], stored["num_tests"]) == ("completed", 5)
    [rejected] = list((spool_dir / "rejected").iterdir())
    assert "NULL byte" in rejected.read_text()


async def test_a_refused_result_is_not_counted_as_kept_in_a_journal_that_is_not_there(
    database: str,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    clean_env.setenv("EVALSTORE_SPOOL_DIR", str(a_file / "spool"))  # no journal, no rejected/
    caplog.set_level(logging.WARNING, logger="evalstore")
    service = MetricsStorageService(RefusingServer("mongomock://", database))
    async with evaluation_run(service, environment="dev") as run:
        await run.record_test("ok1", passed=True)
        await run.record_test("bad", passed=True)
        await run.record_test("ok2", passed=True)
    refused, summary = [r.getMessage() for r in caplog.records if r.name == "evalstore"]
    assert "they are lost: cannot write" in refused  # the rejected file could not be written
    assert summary.endswith(
        f"run {run.evaluation_run_id}: 2 of 3 results stored, 1 refused by the store "
        "(see the warning about them), 0 lost"
    )

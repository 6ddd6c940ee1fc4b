"""`RunRecorder.record_tests`: a batch of results (the plugin's handoff) in one journal write.

Each result is validated as `record_test` validates it; the accepted ones are all in
the journal (one `os.write`) before the call returns, and stored as `record_test`
stores them; a refused one is returned as its error, the others are still recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from evalstore import InvalidDataError, MetricsStorageService, evaluation_run
from evalstore.recording import journal as spool


async def test_a_batch_is_journaled_in_one_write_before_it_returns(
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("EVALSTORE_BATCH_SIZE", "1000")
    clean_env.setenv("EVALSTORE_FLUSH_INTERVAL_MS", "3600000")
    writes: list[bytes] = []
    real_write = spool.os.write

    def counted(fd: int, data: bytes | memoryview) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    async with evaluation_run(embedded, environment="dev") as run:
        clean_env.setattr(spool.os, "write", counted)
        outcomes = await run.record_tests(
            [
                {"test_id": "t1", "score": 80.0, "passed": True},
                {"test_id": "t2", "status": "nonsense"},  # refused, the others are recorded
                {"test_id": "t3", "status": "failed", "duration_ms": 12.5},
                {"test_id": "t4", "metrics": {"wer": {"score": 50.0, "passed": False}}},
            ]
        )
        clean_env.setattr(spool.os, "write", real_write)
        [journal] = journals()
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        assert await embedded.client.test_runs.count_documents({}) == 0  # not stored yet

    assert len(writes) == 1  # the three accepted results, in one write
    assert [line["doc"]["test_id"] for line in lines if line["kind"] == "test"] == [
        "t1",
        "t3",
        "t4",
    ]
    assert isinstance(outcomes[1], InvalidDataError)
    assert "status must be one of" in str(outcomes[1])
    stored = [outcomes[0], outcomes[2], outcomes[3]]
    assert all(isinstance(outcome, dict) for outcome in stored)
    assert [(o["test_id"], o["status"], o["score"]) for o in stored] == [  # type: ignore[index]
        ("t1", "passed", 80.0),
        ("t3", "failed", 0.0),
        ("t4", "failed", 50.0),
    ]
    found = await embedded.client.test_runs.find({}, sort=[("test_id", 1)]).to_list(None)
    assert found == stored
    assert (run.document["num_tests"], run.document["num_passed"]) == (3, 1)
    assert journals() == []


async def test_a_batch_without_storage_validates_and_counts(
    clean_env: pytest.MonkeyPatch,
) -> None:
    async with evaluation_run(None, environment="dev", tags=[], suite="s") as run:
        outcomes = await run.record_tests([{"test_id": "a", "passed": True}, {"test_id": ""}])
        assert isinstance(outcomes[0], dict)
        assert outcomes[0]["status"] == "passed"
        assert isinstance(outcomes[1], InvalidDataError)
    assert run.document["num_tests"] == 1


async def test_each_result_reaches_the_local_store_as_the_journal_wrote_it(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """A batch is encoded once: the journal's text of each result is what the local store
    keeps in that result's row (never another result's)."""
    from evalstore import MongoDBClient, Settings

    settings = Settings(
        _env_file=None,
        mongodb_connection_string=f"file://{tmp_path / 'store'}",
        mongodb_database="encoded_once",
        evalstore_spool_dir=tmp_path / "spool",
    )
    service = MetricsStorageService(MongoDBClient.from_settings(settings))
    results = [
        {"test_id": f"t{i}", "score": float(10 * i), "passed": i % 2 == 0, "tags": [f"tag{i}"]}
        for i in range(7)
    ]
    async with evaluation_run(service, environment="dev") as run:
        recorded = await run.record_tests(results)
    assert all(isinstance(document, dict) for document in recorded)

    # Read by the indexed column: each row must hold its own result's document.
    stored = {}
    for result in results:
        [stored[result["test_id"]]] = await service.client.read(
            "test_runs", {"test_id": result["test_id"]}, action="read a test run back"
        )
    assert stored == {document["test_id"]: document for document in recorded}
    assert [stored[f"t{i}"]["score"] for i in range(7)] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert [stored[f"t{i}"]["tags"] for i in range(7)] == [[f"tag{i}"] for i in range(7)]
    await service.client.close()

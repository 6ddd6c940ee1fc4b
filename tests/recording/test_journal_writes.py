"""Journal appends survive short writes: every byte of every line reaches the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bson import ObjectId

from evalstore.codec import encode
from evalstore.recording import journal as spool
from evalstore.recording.journal import Journal, read_journal


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_short_writes_are_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    real_write = os.write

    def short_write(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:chunk]))

    monkeypatch.setattr(spool.os, "write", short_write)
    run = {"_id": ObjectId(), "evaluation_run_id": "run-1", "status": "running"}
    journal = Journal.create(tmp_path, run, database="db", target="t", fsync="never")
    entries = [{"kind": "acked", "ids": [f"id-{n}" * n]} for n in range(20)]
    for entry in entries:
        journal.append(entry)
    journal.close()
    expected = b"".join(
        encode(line)
        for line in (
            {"kind": "header", "version": 1, "database": "db", "target": "t", "run": run},
            *entries,
        )
    )
    assert journal.path.read_bytes() == expected
    contents = read_journal(journal.path)
    assert contents is not None
    assert contents.skipped_lines == 0
    assert len(contents.acked) == 20

"""The journal's lock: one holder at a time, gone with its process, the same lock filelock took.

Earlier versions of evalstore locked journals with filelock's `FileLock`; a
recorder of this version and a replayer of an older one (or the other way round)
must still keep out of each other's way.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from evalstore.recording.journal import claim
from evalstore.recording.lockfile import LockFile


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    path = str(tmp_path / "run.ndjson.lock")
    first, second = LockFile(path), LockFile(path)
    assert first.try_acquire()
    assert not second.try_acquire()
    with pytest.raises(TimeoutError, match="held by another process"):
        second.acquire()
    first.release()
    assert second.try_acquire()
    second.release()
    second.release()  # releasing twice does nothing


def test_filelock_and_this_lock_exclude_each_other(tmp_path: Path) -> None:
    path = str(tmp_path / "run.ndjson.lock")
    ours = LockFile(path)
    assert ours.try_acquire()
    with pytest.raises(Timeout):
        FileLock(path).acquire(timeout=0)
    ours.release()

    theirs = FileLock(path)
    theirs.acquire(timeout=0)
    assert not LockFile(path).try_acquire()
    theirs.release()
    assert LockFile(path).try_acquire()


def test_a_killed_holder_leaves_the_journal_free(tmp_path: Path) -> None:
    journal = tmp_path / "run.ndjson"
    journal.write_text("", encoding="utf-8")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from evalstore.recording.lockfile import LockFile
                lock = LockFile({str(journal) + ".lock"!r})
                assert lock.try_acquire()
                print("held", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with claim(journal) as claimed:
            assert claimed is False  # a live recorder holds it: the replayer leaves it
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    with claim(journal) as claimed:
        assert claimed is True

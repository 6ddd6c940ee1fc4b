"""The journal's lock: one holder at a time, gone with its process, the same lock filelock took.

Earlier versions of evalstore locked journals with filelock's `FileLock`; a
recorder of this version and a replayer of an older one (or the other way round)
must still keep out of each other's way.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
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


def _forked(child_release: bool, lock: LockFile) -> tuple[int, int]:
    """Fork a child that keeps living (a server a test started); it first closes its copy of
    the lock when `child_release`. Returns its pid and a pipe end to close."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            if child_release:
                lock.release()
            os.write(writer, b"ready")
            time.sleep(30)
        finally:
            os._exit(0)
    assert os.read(reader, 5) == b"ready"
    os.close(writer)
    return child, reader


def test_the_recorders_release_frees_the_journal_a_forked_child_shares(tmp_path: Path) -> None:
    path = str(tmp_path / "run.ndjson.lock")
    lock = LockFile(path)
    assert lock.try_acquire()
    child, reader = _forked(False, lock)  # the child keeps the inherited descriptor
    try:
        lock.release()
        other = LockFile(path)
        assert other.try_acquire()
        other.release()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(reader)


def test_a_forked_child_closing_its_copy_leaves_the_recorders_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "run.ndjson.lock")
    lock = LockFile(path)
    assert lock.try_acquire()
    child, reader = _forked(True, lock)
    try:
        assert not LockFile(path).try_acquire()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(reader)
        lock.release()


def test_a_file_system_without_locks_leaves_the_journal_for_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "run.ndjson"
    journal.write_text("", encoding="utf-8")

    def no_locks(fd: int, operation: int) -> None:  # NFS without a lock daemon
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with claim(journal) as claimed:
        assert claimed is False
    assert "cannot lock" in caplog.text
    assert "No locks available" in caplog.text


@pytest.mark.parametrize("held", [errno.EAGAIN, errno.EACCES])
def test_a_held_lock_is_reported_as_held_whatever_its_errno(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    def busy(fd: int, operation: int) -> None:
        raise OSError(held, os.strerror(held))

    monkeypatch.setattr(fcntl, "flock", busy)
    assert LockFile(str(tmp_path / "x.lock")).try_acquire() is False

"""Human-readable ids for evaluation runs and test runs."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from datetime import datetime

from bson import ObjectId

from evalstore.models import to_utc

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
NO_GIT = "nogit"


def sanitise(text: str, *, max_length: int = 60) -> str:
    """Replace every run of characters outside `[A-Za-z0-9._-]` by one `-`."""
    return _UNSAFE.sub("-", text).strip("-")[:max_length]


def new_evaluation_run_id(started_at: datetime, branch: str | None) -> str:
    """An id like `2025-12-05T10-30-00Z-main-3f9a1c`.

    The random suffix keeps two runs started in the same second apart; the
    unique index on `evaluation_run_id` catches the rare collision, and the
    caller then draws a new id. `nogit` stands for a run outside a repository
    (and for a detached HEAD, which has no branch).
    """
    stamp = to_utc(started_at).strftime("%Y-%m-%dT%H-%M-%SZ")
    branch_part = sanitise(branch) if branch else ""
    return f"{stamp}-{branch_part or NO_GIT}-{secrets.token_hex(3)}"


def new_test_run_id(evaluation_run_id: str, test_id: str) -> str:
    """An id like `<evaluation run id>/<test id>/<random>`: unique even when a test repeats."""
    return f"{evaluation_run_id}/{sanitise(test_id, max_length=120) or 'test'}/{_random_hex(4)}"


class _RandomBytes:
    """Bytes from `os.urandom`, read a few kilobytes at a time.

    Each `os.urandom` call is a system call (about 8 µs on a virtual machine), and
    every recorded test needs four random bytes: reading them in blocks costs a
    20,000-test session 0.15 s less. The bytes are the same kind `secrets` gives; a
    forked child drops the block it inherited, so that it never repeats its parent's.
    """

    BLOCK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._position = 0
        os.register_at_fork(after_in_child=self._forget)

    def take(self, count: int) -> bytes:
        """`count` fresh random bytes (at most `BLOCK`)."""
        with self._lock:
            end = self._position + count
            if end > len(self._block):
                self._block, self._position, end = os.urandom(self.BLOCK), 0, count
            taken = self._block[self._position : end]
            self._position = end
        return taken

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._block, self._position = b"", 0


_RANDOM = _RandomBytes()


def _random_hex(count: int) -> str:
    """`secrets.token_hex(count)`, from `_RANDOM`'s blocks."""
    return _RANDOM.take(count).hex()


def point_id(run_oid: ObjectId, metric: str, split: str, step: int) -> ObjectId:
    """The `_id` of a metric point: derived from its key (run, metric, split, step), so that
    every write of one point (a step logged again, a replay after a crash) names the same
    document on every engine, and the `_id` index keeps one point per key."""
    digest = hashlib.blake2b(f"{run_oid}|{metric}|{split}|{step}".encode(), digest_size=12)
    return ObjectId(digest.digest())

"""Human-readable ids for evaluation runs and test runs."""

from __future__ import annotations

import hashlib
import re
import secrets
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
    return (
        f"{evaluation_run_id}/{sanitise(test_id, max_length=120) or 'test'}/{secrets.token_hex(4)}"
    )


def point_id(run_oid: ObjectId, metric: str, split: str, step: int) -> ObjectId:
    """The `_id` of a metric point: derived from its key (run, metric, split, step), so that
    every write of one point (a step logged again, a replay after a crash) names the same
    document on every engine, and the `_id` index keeps one point per key."""
    digest = hashlib.blake2b(f"{run_oid}|{metric}|{split}|{step}".encode(), digest_size=12)
    return ObjectId(digest.digest())

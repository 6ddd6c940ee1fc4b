"""Human-readable ids for evaluation runs and test runs."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

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

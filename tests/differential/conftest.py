"""Fixtures of the differential tests: a generated history stored on two engines.

`pair` stores the history of one seed on the reference engine (`mongomock://`)
and on another one: the local store (`file://`), and the real server named by
`MONGODB_TEST_URI` when it is set. Each engine gets a fresh database, dropped
after the test.

Seeds: `EVALSTORE_DIFF_SEED=7` (or `3,7,12`) runs only those;
`EVALSTORE_DIFF_CASES=N` runs seeds 0 to N-1 (default 6).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from differential_engines import REAL_URI, REFERENCE, EnginePair, close_engine, open_engine
from differential_history import History, generate_history

DEFAULT_CASES = 6


def diff_seeds() -> list[int]:
    """The seeds to run: `EVALSTORE_DIFF_SEED`, else `range(EVALSTORE_DIFF_CASES)`."""
    chosen = os.environ.get("EVALSTORE_DIFF_SEED", "").strip()
    if chosen:
        return [int(seed) for seed in chosen.split(",")]
    return list(range(int(os.environ.get("EVALSTORE_DIFF_CASES", DEFAULT_CASES))))


@pytest.fixture(params=diff_seeds(), ids=lambda seed: f"seed{seed}")
def history(request: pytest.FixtureRequest) -> History:
    """The generated history of one seed."""
    return generate_history(request.param)


@pytest.fixture(
    params=[
        pytest.param("file", id="file"),
        pytest.param(
            "mongodb",
            id="mongodb",
            marks=[
                pytest.mark.integration,
                pytest.mark.skipif(not REAL_URI, reason="MONGODB_TEST_URI is not set"),
            ],
        ),
    ]
)
def other_engine(request: pytest.FixtureRequest) -> str:
    """The engine compared with the reference."""
    return str(request.param)


@pytest.fixture
async def pair(
    history: History, other_engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[EnginePair]:
    """The history stored on the reference engine and on `other_engine`."""
    pair = EnginePair(
        history,
        open_engine(REFERENCE, tmp_path),
        open_engine(other_engine, tmp_path),
        request.node.originalname,
    )
    try:
        await pair.store()
        yield pair
    finally:
        for engine in pair.engines:
            await close_engine(engine)

"""The comparison itself: `assert_same` says where two answers differ, and a pair reports it.

A differential test that cannot fail proves nothing, so these check that a
difference of value, type, length, key or time zone is caught at the right
path, that floats get their tolerance and nothing else does, and that two
engines holding different histories are reported with the query, the seed,
the path, both values and the command to rerun.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from differential_engines import (
    REFERENCE,
    Disagreement,
    EnginePair,
    assert_same,
    close_engine,
    open_engine,
)
from differential_history import generate_history, store_history
from differential_queries import everything

from evalstore import MetricsStorageService

UTC = timezone.utc
WHEN = datetime(2025, 3, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"x": [1, 2.5, None, "s"], "t": WHEN}, {"t": WHEN, "x": [1, 2.5, None, "s"]}),
        (0.1 + 0.2, 0.3),  # the last bits of a sum
        (1e-13, 0.0),
        (WHEN, WHEN.astimezone(timezone(timedelta(0), "UTC"))),  # another UTC tzinfo object
    ],
)
def test_equal_answers_pass(a: object, b: object) -> None:
    assert_same(a, b)


@pytest.mark.parametrize(
    ("a", "b", "path"),
    [
        ([{"mean": 50.0}], [{"mean": 50.001}], "$[0]['mean']"),
        ({"runs": 1}, {"runs": 1.0}, "$['runs']"),  # an int is not a float
        ({"passed": True}, {"passed": 1}, "$['passed']"),
        ({"a": 1}, {"a": 1, "b": None}, "$['b']"),  # a missing key is not None
        ([1, 2], [1, 2, 3], "$[2]"),
        ([1, 2], (1, 2), "$"),
        ({"t": WHEN}, {"t": WHEN.replace(tzinfo=None)}, "$['t']"),
        ({"t": WHEN}, {"t": WHEN + timedelta(milliseconds=1)}, "$['t']"),
        (["b", "a"], ["a", "b"], "$[0]"),
    ],
)
def test_different_answers_name_the_first_differing_path(a: object, b: object, path: str) -> None:
    with pytest.raises(Disagreement) as caught:
        assert_same(a, b)
    assert caught.value.path == path


async def test_a_pair_of_different_histories_is_reported(tmp_path: Path) -> None:
    history = generate_history(0)
    changed = generate_history(0)
    run = next(run for run in changed.runs if run.test_runs and run.finished_at)
    del run.test_runs[0]  # one test run fewer on the other engine
    pair = EnginePair(
        history, open_engine(REFERENCE, tmp_path), open_engine("file", tmp_path), "test_stats"
    )
    try:
        await store_history(pair.reference.service, history)
        await store_history(pair.other.service, changed)
        await pair.same("get_test_stats", sort="runs", **everything(history))
        await pair.same("get_evaluation_run", "no-such-run")
        with pytest.raises(AssertionError) as caught:
            pair.assert_agreed()
    finally:
        for engine in pair.engines:
            await close_engine(engine)
    message = str(caught.value)
    assert "disagree on 1 of 2 queries (seed 0)" in message
    assert (
        "query: service.get_test_stats(sort='runs', since=datetime.datetime(2024, 12, 15" in message
    )
    assert "seed 0, first difference at $[" in message
    assert "mongomock://:" in message
    assert f"file://{tmp_path}/store:" in message
    assert (
        "rerun: EVALSTORE_DIFF_SEED=0 .venv/bin/python -m pytest tests/differential "
        "-k 'test_stats and file'" in message
    )


def test_every_public_method_of_the_service_is_called() -> None:
    """A query added to the service without a differential check fails here."""
    methods = [
        name
        for name, _ in inspect.getmembers(MetricsStorageService, inspect.iscoroutinefunction)
        if not name.startswith("_")
    ]
    here = Path(__file__).parent
    sources = "".join(
        (here / name).read_text()
        for name in (
            "differential_history.py",
            "differential_queries.py",
            "test_differential_prune.py",
        )
    )
    assert [name for name in methods if f'"{name}"' not in sources] == []

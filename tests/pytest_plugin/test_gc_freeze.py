"""While it records, the plugin keeps the collector off what existed before the session.

The objects alive when the run opens (pytest, the plugins, evalstore's own modules)
live until the session ends: freezing them (`gc.freeze()`) spares every full
collection of the session from scanning them again. They are unfrozen when the
session ends, so pytest's last collections (and the process after an in-process
session) see them all again, and a process that froze objects itself is left alone.
"""

from __future__ import annotations

import gc
import weakref

import pytest

SEES_THE_FREEZE = """
import gc

def test_frozen_while_recording():
    assert gc.get_freeze_count() > 0
"""

NO_FREEZE = """
import gc

def test_not_frozen():
    assert gc.get_freeze_count() == 0
"""


class Cycle:
    """An object in a reference cycle: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_recording_freezes_the_objects_of_before_and_unfreezes_them_at_the_end(
    run_recorded, inner, monkeypatch
):
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    assert gc.get_freeze_count() == 0
    before = Cycle()
    gone = weakref.ref(before)
    inner.makepyfile(test_frozen=SEES_THE_FREEZE)

    result = run_recorded()

    result.assert_outcomes(passed=1)
    assert gc.get_freeze_count() == 0
    del before
    gc.collect()
    assert gone() is None  # unfrozen: a cycle of before the session is collectable again


def test_a_session_that_does_not_record_freezes_nothing(inner, monkeypatch):
    monkeypatch.setenv("MONGODB_ENABLED", "false")
    inner.makepyfile(test_not_frozen=NO_FREEZE)

    result = inner.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_objects_frozen_by_someone_else_stay_frozen(run_recorded, inner, monkeypatch):
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    inner.makepyfile(test_frozen=SEES_THE_FREEZE)
    gc.freeze()
    try:
        result = run_recorded()
        result.assert_outcomes(passed=1)
        assert gc.get_freeze_count() > 0  # still frozen: not unfrozen by the plugin
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


@pytest.fixture(autouse=True)
def _no_freeze_left() -> None:
    """These tests start from an unfrozen process (xdist workers and plain runs are)."""
    assert gc.get_freeze_count() == 0

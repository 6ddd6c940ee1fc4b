"""Retention answers and deletes the same on both engines, and what remains still agrees.

`prune(older_than_days)` counts from now, so each age is computed from a cutoff
chosen in the generated history (in the middle of a gap of at least two hours
between run starts, so the milliseconds between the two calls cannot move a
run across it). Both engines must count (dry run) or delete the same runs and
test runs, and report a cutoff within the milliseconds the calls took. After a
real prune the other queries are asked again.

Rerun a failing seed with

    EVALSTORE_DIFF_SEED=3 .venv/bin/python -m pytest tests/differential -k 'test_prune and file'
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise

from differential_engines import (
    Disagreement,
    EnginePair,
    Outcome,
    call_text,
    compare_outcomes,
    outcome_of,
)
from differential_history import DAY, WEEK, History
from differential_queries import ask_after_prune

from evalstore.models import utcnow

GAP = timedelta(hours=2)
SLACK = timedelta(seconds=1)


def cutoffs(history: History) -> list[datetime]:
    """Cutoffs before, inside (one per wide gap between run starts) and after the history."""
    starts = sorted(set(history.started_times))
    inside = [a + (b - a) / 2 for a, b in pairwise(starts) if b - a >= GAP]
    return [history.monday - WEEK, *inside[::3], history.end + WEEK]


def same_prune(earliest: datetime, latest: datetime) -> Callable[[Outcome, Outcome], None]:
    """Compare two prune results: each cutoff between `earliest` and `latest`, the rest equal."""

    def compare(a: Outcome, b: Outcome) -> None:
        if a.error is None and b.error is None:
            for side in (a, b):
                if not earliest <= side.value["cutoff"] <= latest:
                    raise Disagreement(
                        "$['cutoff']",
                        a.value["cutoff"],
                        b.value["cutoff"],
                        f"expected from {earliest.isoformat()} to {latest.isoformat()}",
                    )
            a, b = (Outcome({k: v for k, v in o.value.items() if k != "cutoff"}) for o in (a, b))
        compare_outcomes(a, b)

    return compare


async def prune_both(pair: EnginePair, cutoff: datetime, **kwargs: object) -> None:
    """Prune both engines at `cutoff` (as an age from now) and compare what they report."""
    before = utcnow()
    days = (before - cutoff) / DAY
    a = await outcome_of(pair.reference.service, "prune", (days,), kwargs)
    b = await outcome_of(pair.other.service, "prune", (days,), kwargs)
    after = utcnow()
    call = f"{call_text('prune', (days,), kwargs)}  # cutoff {cutoff.isoformat()}"
    earliest, latest = cutoff - SLACK, cutoff + (after - before) + SLACK
    pair.check(call, a, b, compare=same_prune(earliest, latest))


async def test_prune(pair: EnginePair) -> None:
    history = pair.history
    middle = cutoffs(history)[len(cutoffs(history)) // 2]
    for cutoff in cutoffs(history):
        await prune_both(pair, cutoff, dry_run=True)
        await prune_both(pair, cutoff, dry_run=True, batch_size=3)
    await prune_both(pair, middle, batch_size=4)
    await prune_both(pair, middle, dry_run=True)  # nothing older is left
    await ask_after_prune(pair)
    pair.assert_agreed()

"""Engines side by side: the same call on each, and where their answers differ.

`assert_same(a, b)` walks two answers and raises a `Disagreement` naming the
first path where they differ (`$[3]['mean_score']`). Equal means: the same
types (an int is not a float, True is not 1, a list is not a tuple), dicts with
the same keys (in any order), lists in the same order, datetimes equal and both
UTC-aware, and floats within `math.isclose(rel_tol=1e-9, abs_tol=1e-12)` (a SQL
sum and a pipeline sum may differ in the last bits).

`EnginePair` asks the reference engine (`mongomock://`, MongoDB's own
aggregation pipelines) and another engine the same question and keeps every
disagreement, with what is needed to reproduce it: the call and its arguments,
the seed, the first differing path and both values.
"""

from __future__ import annotations

import math
import os
import reprlib
import uuid
from collections.abc import Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from differential_history import History, writes

from evalstore import MetricsStorageService, MongoDBClient

REFERENCE = "mongomock"
REAL_URI = os.environ.get("MONGODB_TEST_URI")
REL_TOL = 1e-9
ABS_TOL = 1e-12
SHOWN_DISAGREEMENTS = 8
"""How many disagreements one failing test spells out (it counts all of them)."""

IDENTITY_KEYS = (
    "_id",
    "evaluation_run_id",
    "test_run_id",
    "test_id",
    "system_info_hash",
    "metric",
    "period",
    "path",
)
"""Keys compared first in a dict, so that rows out of order differ at what names them."""


class _Shown(reprlib.Repr):
    """`repr`, shortened, with datetimes as ISO text (`2025-03-03T00:00:00.000+00:00`)."""

    def repr_datetime(self, value: datetime, level: int) -> str:
        if value.tzinfo is None:
            return f"{value.isoformat(timespec='milliseconds')} (naive)"
        return value.isoformat(timespec="milliseconds")


_shown = _Shown()
_shown.maxstring = 200
_shown.maxother = 200
_shown.maxlist = _shown.maxdict = 8
_shown.maxlevel = 4


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
"""Stands for the side of a dict that lacks a key, or of a list that is shorter."""


class Disagreement(AssertionError):
    """Two answers differ at `path`: `a` on one side, `b` on the other."""

    def __init__(self, path: str, a: Any, b: Any, why: str = "") -> None:
        self.path, self.a, self.b, self.why = path, a, b, why
        super().__init__(f"differ at {path}: {_shown.repr(a)} against {_shown.repr(b)}")

    def __str__(self) -> str:  # `why` may be completed on the way up
        why = f" ({self.why})" if self.why else ""
        return f"differ at {self.path}{why}: {_shown.repr(self.a)} against {_shown.repr(self.b)}"


def _is_utc(value: datetime) -> bool:
    return value.utcoffset() == timedelta(0)


def assert_same(a: Any, b: Any, path: str = "$") -> None:
    """Raise `Disagreement` at the first place where `a` and `b` differ.

    Floats are compared with `math.isclose(rel_tol=1e-9, abs_tol=1e-12)`;
    everything else exactly, types included.
    """
    if a is MISSING or b is MISSING:
        raise Disagreement(path, a, b, "in one answer only")
    if type(a) is not type(b):
        raise Disagreement(path, a, b, f"{type(a).__name__} against {type(b).__name__}")
    if isinstance(a, float):
        if not math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            raise Disagreement(path, a, b)
    elif isinstance(a, dict):
        keys = a.keys() | b.keys()
        first = [key for key in IDENTITY_KEYS if key in keys]
        for key in first + sorted(keys - set(first), key=repr):
            assert_same(a.get(key, MISSING), b.get(key, MISSING), f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        sizes = "" if len(a) == len(b) else f"{len(a)} items against {len(b)}"
        for index in range(max(len(a), len(b))):
            x = a[index] if index < len(a) else MISSING
            y = b[index] if index < len(b) else MISSING
            try:
                assert_same(x, y, f"{path}[{index}]")
            except Disagreement as exc:
                if sizes:
                    exc.why = f"{exc.why}; {sizes}" if exc.why else sizes
                raise
    elif isinstance(a, datetime):
        if not (_is_utc(a) and _is_utc(b)):
            raise Disagreement(path, a, b, "a datetime that is not UTC-aware")
        if a != b:
            raise Disagreement(path, a, b)
    elif a != b:
        raise Disagreement(path, a, b)


@dataclass(frozen=True)
class Outcome:
    """What a call gave: its value, or the type and message of what it raised."""

    value: Any = None
    error: tuple[str, str] | None = None

    def shown(self) -> str:
        if self.error is not None:
            return f"raised {self.error[0]}: {self.error[1]}"
        return _shown.repr(self.value)


async def outcome_of(
    service: MetricsStorageService, method: str, args: Any, kwargs: Any
) -> Outcome:
    """Call `service.<method>(*args, **kwargs)`; keep what it returned or raised."""
    try:  # a copy each: an engine must not see what another did to its arguments
        call = getattr(service, method)(*deepcopy(args), **deepcopy(kwargs))
        return Outcome(value=await call)
    except Exception as exc:  # an engine's bug is a disagreement to report, not a crash
        return Outcome(error=(type(exc).__name__, str(exc)))


def compare_outcomes(a: Outcome, b: Outcome) -> None:
    """Raise `Disagreement` unless both returned the same, or raised the same type and message."""
    if a.error is not None or b.error is not None:
        if a.error != b.error:
            raise Disagreement("$", a.shown(), b.shown(), "raised")
        return
    assert_same(a.value, b.value)


_arguments = reprlib.Repr()
_arguments.maxstring = _arguments.maxother = 300
_arguments.maxlist = _arguments.maxtuple = 6
_arguments.maxdict = 4  # documents given to a write are cut short; query arguments are not
_arguments.maxlevel = 3


def call_text(method: str, args: Iterable[Any], kwargs: dict[str, Any]) -> str:
    """`service.method(arg, key=value)`, as Python that can be pasted (documents cut short)."""
    parts = [_arguments.repr(arg) for arg in args]
    parts += [f"{key}={_arguments.repr(value)}" for key, value in kwargs.items()]
    return f"service.{method}({', '.join(parts)})"


@dataclass
class Engine:
    """One store opened on one engine, with its service."""

    name: str
    client: MongoDBClient
    service: MetricsStorageService = field(init=False)

    def __post_init__(self) -> None:
        self.service = MetricsStorageService(self.client)

    @property
    def url(self) -> str:
        return self.client.redacted_uri


def connection_string(name: str, directory: Path) -> str:
    """The connection string of engine `name` (`mongomock`, `file` or `mongodb`)."""
    if name == "mongomock":
        return "mongomock://"
    if name == "file":
        return f"file://{directory / 'store'}"
    if name == "mongodb" and REAL_URI:
        return REAL_URI
    raise ValueError(f"no engine {name!r} here")


def open_engine(name: str, directory: Path) -> Engine:
    """A client on a fresh database of engine `name` (drop it with `close_engine`)."""
    database = f"evalstore_diff_{uuid.uuid4().hex[:12]}"
    return Engine(name, MongoDBClient(connection_string(name, directory), database))


async def close_engine(engine: Engine) -> None:
    """Drop the engine's database and close its client."""
    try:
        await engine.client.drop_database()
    finally:
        await engine.client.close()


@dataclass
class EnginePair:
    """The same history stored on the reference engine and on another one.

    `await pair.same("get_test_stats", sort="runs", since=...)` asks both and
    records a disagreement; `pair.assert_agreed()` fails the test with all of
    them. `test_name` and `seed` make the reproduction command.
    """

    history: History
    reference: Engine
    other: Engine
    test_name: str
    calls: int = 0
    disagreements: list[str] = field(default_factory=list)

    @property
    def engines(self) -> tuple[Engine, Engine]:
        return self.reference, self.other

    async def store(self) -> None:
        """Write the history into both engines, call by call, comparing what each call returns.

        Finalisation returns the run with the aggregates each engine computed, so
        those are compared as they are written.
        """
        for write in writes(self.history):
            await self.same(write.method, *write.args, **write.kwargs)

    async def same(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Ask both engines `service.<method>(*args, **kwargs)`; return the reference's answer.

        A disagreement is recorded (not raised), so that one test reports all of them.
        """
        a = await outcome_of(self.reference.service, method, args, kwargs)
        b = await outcome_of(self.other.service, method, args, kwargs)
        self.check(call_text(method, args, kwargs), a, b)
        return a.value

    def check(
        self,
        call: str,
        a: Outcome,
        b: Outcome,
        compare: Callable[[Outcome, Outcome], None] = compare_outcomes,
    ) -> None:
        """Record a disagreement between the two outcomes of `call`, if any."""
        self.calls += 1
        try:
            compare(a, b)
        except Disagreement as exc:
            self.disagreements.append(self.describe(call, exc))

    def describe(self, call: str, exc: Disagreement) -> str:
        """The report of one disagreement: call, seed, path, both values, how to rerun it."""
        width = max(len(self.reference.url), len(self.other.url)) + 1
        why = f" ({exc.why})" if exc.why else ""
        return "\n".join(
            (
                f"query: {call}",
                f"  seed {self.history.seed}, first difference at {exc.path}{why}",
                f"  {self.reference.url + ':':<{width}} {_shown.repr(exc.a)}",
                f"  {self.other.url + ':':<{width}} {_shown.repr(exc.b)}",
                f"  rerun: {self.rerun_command}",
            )
        )

    @property
    def rerun_command(self) -> str:
        return (
            f"EVALSTORE_DIFF_SEED={self.history.seed} .venv/bin/python -m pytest "
            f"tests/differential -k '{self.test_name} and {self.other.name}'"
        )

    def assert_agreed(self) -> None:
        """Fail with every disagreement recorded so far (the first few spelled out)."""
        if not self.disagreements:
            return
        count = len(self.disagreements)
        shown = self.disagreements[:SHOWN_DISAGREEMENTS]
        more = f"\n... and {count - len(shown)} more" if count > len(shown) else ""
        raise AssertionError(
            f"{self.reference.url} and {self.other.url} disagree on {count} of {self.calls} "
            f"queries (seed {self.history.seed}):\n\n" + "\n\n".join(shown) + more
        )

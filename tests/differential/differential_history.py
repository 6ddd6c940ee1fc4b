"""Random evaluation histories for the differential tests, one per seed.

`generate_history(seed)` draws, from `random.Random(seed)` only, a history of
evaluation runs and their test runs with the awkward material the history
queries have to get right:

- runs `completed`, `failed`, `interrupted` and still `running`, some with no
  test at all; suites (and runs stored before suites existed, without the
  field), environments, branches (and none), overlapping experiment tags (and
  none), a few nested system configurations and their `system_info_hash`
  (one differs from another only by `5` against `5.0`);
- start times spread over four ISO weeks (one history in three crosses a year
  end, where `%G-W%V` and `%Y` disagree), with runs at exact UTC midnights, on
  Sunday 23:59:59.999 and Monday 00:00:00.000, and runs that started at the
  same millisecond;
- test ids shared across runs with a behaviour each (always passing, flaky,
  broke once, fixed once, often skipped, erratic, ...), tests added and removed
  between runs, a test repeated within a run (sometimes finishing at the same
  millisecond), scores None, 0, 1.0, 100, fractions and integers, metrics
  dicts of varying keys (some missing, one named `score`);
- names that SQL could misread: `_` and `%` (LIKE wildcards), quotes, spaces
  and non-ASCII letters in test ids, branches, suites, tags and metric names,
  a tag listed twice in one run, and free-form `details` holding a 63-bit
  integer, a datetime, empty containers and a float that looks like an int.

All datetimes are whole milliseconds in UTC (what MongoDB keeps) and every
document gets a fixed `_id`, so every engine receives the same documents.
`writes(history)` lists the service calls that store them, the way the
recorder, replay and sync do: the run document, its test runs, heartbeats,
then finalisation with the generated status and `finished_at`; some runs are
written twice and probed with duplicates that must be refused.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from bson import ObjectId

from evalstore import (
    DuplicateRunError,
    EvaluationRun,
    MetricData,
    MetricsStorageService,
    TestRun,
    system_info_hash,
)
from evalstore.ids import sanitise
from evalstore.models import TestStatus

UTC = timezone.utc
MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
SPAN_WEEKS = 4

MONDAYS = (
    datetime(2024, 12, 16, tzinfo=UTC),  # crosses the year end: 2024-12-30 is in ISO week 2025-W01
    datetime(2025, 3, 3, tzinfo=UTC),
    datetime(2025, 9, 22, tzinfo=UTC),
)
"""The first day of a history (a Monday, 00:00 UTC); the seed picks one."""

ENVIRONMENTS = ("dev", "dev", "stage", "prod", "lab")
BRANCHES = ("main", "main", "feature/wer-fix", "release-1.2", "fix_wer", "o'brien/ünï", None)
SUITES = ("asr", "mt", "mt_%", None)
TAGS = ("baseline", "config-tweak", "gpu", "nightly", "exp-1", "exp_1", 'say "hi"')
RUN_STATUSES = ("completed",) * 5 + ("failed",) * 3 + ("interrupted",) * 2 + ("running",) * 2
COMMON_METRICS = ("wer", "completeness", "latency")
RARE_METRICS = ("score", "exact match", "p@1", "1", "naïve 'q'")
"""Names a SQL JSON path must quote; `score` is also the name of the run score."""
METRIC_NAMES = COMMON_METRICS + RARE_METRICS

TEST_IDS = (
    "tests/test_asr.py::test_wer[es-en]",
    "tests/test_asr.py::test_wer[fr-en]",
    "doctor-patient-es-en",
    "hotel-checkin-fr-en",
    "Zulu-upper-case",
    "café-ü",
    "it's 100%_done",
    "test_latency",
    "a",
    "a_b",
    "test_summary",
)
BEHAVIOURS = (
    "always_passes",
    "always_passes",
    "flaky",
    "flaky",
    "broke_once",
    "fixed_once",
    "often_skipped",
    "erratic",
    "sometimes_errors",
    "always_fails",
)

EDGE_DETAILS: dict[str, Any] = {
    "big": 2**62 + 1,  # beyond a double's 53 bits
    "when": datetime(2025, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    "flag": False,
    "ratio": 1.0,
    "empty": {},
    "none": [],
    "text": 'dollar $ dot . quote " nul-free ünïcode',
}
"""Values in free-form `details` that a JSON or SQL round trip could change."""

PASS_SCORES: tuple[Any, ...] = (100, 100.0, 1.0, 87, 92.5, 200 / 3, 33.3, 99.99, 50, None)
FAIL_SCORES: tuple[Any, ...] = (0, 0.0, 12.5, 40, 100 / 3, 1.0, 0.1, None)
METRIC_SCORES: tuple[Any, ...] = (
    0,
    1e-9,
    0.5,
    1.0,
    12.25,
    33.3,
    100 / 7,
    75,
    88.8,
    100 - 1e-12,
    100,
)


@dataclass
class PlannedRun:
    """One evaluation run: its document as first stored, its test runs, how it ends."""

    document: dict[str, Any]
    test_runs: list[dict[str, Any]]
    status: str
    """The final status (`running`: never finalised)."""
    finished_at: datetime | None
    heartbeats: list[datetime] = field(default_factory=list)
    """`last_seen_at` moves to each (only forward)."""
    replayed: bool = False
    """Written a second time (replay, sync), and probed with duplicates."""

    @property
    def oid(self) -> ObjectId:
        oid: ObjectId = self.document["_id"]
        return oid

    @property
    def run_id(self) -> str:
        run_id: str = self.document["evaluation_run_id"]
        return run_id

    @property
    def started_at(self) -> datetime:
        started: datetime = self.document["started_at"]
        return started


@dataclass
class History:
    """A generated history and the values the queries are asked about."""

    seed: int
    monday: datetime
    runs: list[PlannedRun]
    """In the order they are stored (not the order they started)."""
    configurations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        """The first instant after the generated span."""
        return self.monday + SPAN_WEEKS * WEEK

    @property
    def test_ids(self) -> list[str]:
        return sorted({t["test_id"] for run in self.runs for t in run.test_runs})

    @property
    def hashes(self) -> list[str]:
        return sorted({run.document["system_info_hash"] for run in self.runs})

    def values(self, key: str) -> list[Any]:
        """The distinct values of a run field, None (or absent) included, in a stable order."""
        found = {run.document.get(key) for run in self.runs}
        return sorted(found, key=lambda v: (v is None, v or ""))

    @property
    def tags(self) -> list[str]:
        return sorted({tag for run in self.runs for tag in run.document["experiment_tags"]})

    @property
    def started_times(self) -> list[datetime]:
        return sorted(run.started_at for run in self.runs)

    @property
    def finished_times(self) -> list[datetime]:
        """When the test runs finished, sorted."""
        return sorted(t["finished_at"] for run in self.runs for t in run.test_runs)


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _oid(rng: random.Random) -> ObjectId:
    return ObjectId(rng.getrandbits(96).to_bytes(12, "big"))


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _configurations(rng: random.Random) -> list[dict[str, Any]]:
    """A few system snapshots: nested mappings, an int/double twin, an empty mapping, a null."""
    base: dict[str, Any] = {
        "python": "3.11.9",
        "platform": {"system": "Linux", "machine": "x86_64"},
        "packages": {"torch": "2.3.0", "transformers": "4.41.2"},
        "config": {"model": "whisper-small", "beam_size": 5, "asr": {"lang": "es", "vad": True}},
    }
    larger = deepcopy(base)
    larger["config"]["model"] = "whisper-large"
    larger["config"]["languages"] = ["es", "fr"]
    as_double = deepcopy(base)
    as_double["config"]["beam_size"] = 5.0  # a double is another configuration than the int
    cached = deepcopy(base)
    cached["config"]["cache"] = {}
    cached["packages"].pop("transformers")
    cached["platform"]["gpu"] = None
    tweaked = deepcopy(larger)
    tweaked["config"]["asr"] = {"lang": "es", "vad": False, "threshold": 0.35}
    tweaked["python"] = "3.12.4"
    configs = [base, larger, as_double, cached, tweaked]
    rng.shuffle(configs)
    return configs[: rng.randint(2, len(configs))]


def _start_times(rng: random.Random, monday: datetime, count: int) -> list[datetime]:
    """Run start times: random milliseconds, midnights, ISO-week edges and exact ties."""
    span_days = SPAN_WEEKS * 7
    times: list[datetime] = []
    for _ in range(count):
        kind = rng.choice(("random",) * 6 + ("midnight", "sunday", "monday", "day_end", "tie"))
        if kind == "tie" and times:
            times.append(rng.choice(times))
        elif kind == "midnight":
            times.append(monday + rng.randrange(span_days) * DAY)
        elif kind == "sunday":  # the last millisecond of an ISO week
            times.append(monday + rng.randint(1, SPAN_WEEKS - 1) * WEEK - MS)
        elif kind == "monday":
            times.append(monday + rng.randint(1, SPAN_WEEKS - 1) * WEEK)
        elif kind == "day_end":
            times.append(monday + rng.randint(1, span_days - 1) * DAY - MS)
        else:
            times.append(_ms(monday + timedelta(seconds=rng.uniform(0, span_days * 86400))))
    return times


def _outcome(rng: random.Random, behaviour: str, when: datetime, turn: datetime) -> TestStatus:
    """The status of one run of a test whose behaviour is `behaviour`."""
    if behaviour == "always_passes":
        return "passed"
    if behaviour == "always_fails":
        return "failed"
    if behaviour == "flaky":
        return rng.choice(("passed", "passed", "failed", "error"))
    if behaviour == "broke_once":
        return "passed" if when < turn else rng.choice(("failed", "failed", "error"))
    if behaviour == "fixed_once":
        return "failed" if when < turn else "passed"
    if behaviour == "often_skipped":
        return rng.choice(("skipped", "passed"))
    if behaviour == "sometimes_errors":
        return rng.choice(("passed", "passed", "error"))
    return rng.choice(("passed", "failed", "error", "skipped"))  # erratic


def _metrics(rng: random.Random) -> dict[str, MetricData]:
    names = [
        name for name in METRIC_NAMES if rng.random() < (0.55 if name in COMMON_METRICS else 0.06)
    ]
    metrics = {}
    for name in names:
        score = rng.choice(METRIC_SCORES)
        extra: dict[str, Any] = {}
        if rng.random() < 0.5:
            extra["threshold"] = rng.choice((70, 85.5))
            extra["passed"] = score >= extra["threshold"]
        if rng.random() < 0.3:
            extra["unit"] = "%"
        if rng.random() < 0.2:
            extra["details"] = {"wer_percent": 100 - score, "words": [1, 2], "by": {"x": None}}
            extra["details"] |= rng.choice(({}, EDGE_DETAILS))
        metrics[name] = MetricData(score=score, **extra)
    return metrics


def _test_run(
    rng: random.Random,
    run: dict[str, Any],
    test_id: str,
    status: TestStatus,
    finished_at: datetime,
) -> dict[str, Any]:
    if status == "skipped":
        score = None
    else:
        score = rng.choice(PASS_SCORES if status == "passed" else FAIL_SCORES)
    duration = rng.choice((0, 1, 250, 1500, 61_000)) + rng.randrange(1000)
    test_run = TestRun(
        evaluation_run_id=run["_id"],
        test_run_id=f"{run['evaluation_run_id']}/{sanitise(test_id)}/{_hex(rng, 8)}",
        test_id=test_id,
        test_name=test_id.rsplit("::", 1)[-1],
        started_at=finished_at - duration * MS,
        finished_at=finished_at,
        duration_ms=float(duration),
        metrics={} if status == "skipped" else _metrics(rng),
        score=score,
        score_method=rng.choice(("average", "manual")),
        passed=status == "passed",
        status=status,
        tags=sorted(rng.sample(("medical", "slow", "en"), rng.randint(0, 2))),
        participants=["doctor", "patient"] if rng.random() < 0.3 else [],
        message=None if status == "passed" else f"AssertionError: {test_id} ({status})",
        details=rng.choice(
            (None, None, {"phase": "call"}, {"subtests": {"total": 2, "failed": 1}}, EDGE_DETAILS)
        ),
    )
    document = test_run.to_document()
    document["_id"] = _oid(rng)
    return document


def _plan_run(
    rng: random.Random,
    started_at: datetime,
    configurations: list[dict[str, Any]],
    behaviours: dict[str, tuple[str, datetime]],
) -> PlannedRun:
    branch = rng.choice(BRANCHES)
    suite = rng.choice(SUITES)
    info = rng.choice(configurations)
    stamp = started_at.strftime("%Y-%m-%dT%H-%M-%SZ")
    status = rng.choice(RUN_STATUSES)
    tags = rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2, 3)))
    if tags and rng.random() < 0.1:
        tags.append(tags[0])  # a tag given twice (EXPERIMENT_TAGS="gpu,gpu")
    model = EvaluationRun(
        evaluation_run_id=f"{stamp}-{sanitise(branch) if branch else 'nogit'}-{_hex(rng, 6)}",
        started_at=started_at,
        git_commit=_hex(rng, 40) if branch or rng.random() < 0.5 else None,
        git_branch=branch,
        git_dirty=rng.choice((True, False, None)),
        environment=rng.choice(ENVIRONMENTS),
        suite=suite,
        experiment_tags=tags,
        system_information=info,
        system_info_hash=system_info_hash(info),
        last_seen_at=started_at + rng.randint(0, 3_600_000) * MS,
    )
    document = {"_id": _oid(rng), **model.to_document()}
    if suite is None and rng.random() < 0.5:
        del document["suite"]  # stored before suites existed

    test_runs: list[dict[str, Any]] = []
    finished = started_at
    if rng.random() >= 0.08:  # a few runs record no test at all
        for test_id, (behaviour, turn) in behaviours.items():
            if rng.random() < 0.2:
                continue  # this run did not run that test
            finished += rng.choice((0, 1, 999, 30_000, 90_000)) * MS
            status_of_test = _outcome(rng, behaviour, started_at, turn)
            test_runs.append(_test_run(rng, document, test_id, status_of_test, finished))
            if rng.random() < 0.1:  # the test ran twice in this run
                if rng.random() < 0.5:
                    finished += rng.randint(1, 5000) * MS
                again = _outcome(rng, behaviour, started_at, turn)
                test_runs.append(_test_run(rng, document, test_id, again, finished))
    rng.shuffle(test_runs)  # stored in another order than they finished
    finished_at = None if status == "running" else finished + rng.randint(0, 600_000) * MS
    seen = document["last_seen_at"]
    heartbeats = [seen + rng.randint(-60_000, 60_000) * MS for _ in range(rng.choice((0, 0, 1, 2)))]
    replayed = rng.random() < 0.2
    return PlannedRun(document, test_runs, status, finished_at, heartbeats, replayed)


def generate_history(seed: int) -> History:
    """The history of `seed`: the same documents every time, on every machine."""
    rng = random.Random(seed)
    monday = MONDAYS[seed % len(MONDAYS)]
    configurations = _configurations(rng)
    test_ids = rng.sample(TEST_IDS, rng.randint(6, len(TEST_IDS)))
    behaviours = {
        test_id: (
            rng.choice(BEHAVIOURS),
            monday + timedelta(days=rng.uniform(3, SPAN_WEEKS * 7 - 3)),
        )
        for test_id in test_ids
    }
    starts = _start_times(rng, monday, rng.randint(14, 22))
    runs = [_plan_run(rng, started, configurations, behaviours) for started in starts]
    rng.shuffle(runs)
    return History(seed=seed, monday=monday, runs=runs, configurations=configurations)


class Write(NamedTuple):
    """One call that stores part of a history: `service.<method>(*args, **kwargs)`."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    raises: type[Exception] | None = None
    """The error the call must raise (a duplicate), or None."""


def writes(history: History) -> Iterator[Write]:
    """The calls that store `history`, in order, as the recorder, replay and sync make them.

    Per run: the run document, its test runs, heartbeats, then finalisation with
    the planned status and `finished_at`. Some runs are written twice (replay:
    nothing changes), and some writes must be refused as duplicates.
    """
    for run in history.runs:
        yield Write("upsert_evaluation_run", (run.document,), {})
        yield Write("upsert_test_runs", (run.test_runs,), {})
        for seen_at in run.heartbeats:
            yield Write("touch_evaluation_run", (run.oid, seen_at), {})
        if run.replayed:
            yield Write("upsert_evaluation_run", (run.document,), {})
            yield Write("upsert_test_runs", (run.test_runs[:3],), {})
            copy = {**run.document, "_id": ObjectId(bytes(reversed(run.oid.binary)))}
            yield Write("upsert_evaluation_run", (copy,), {}, DuplicateRunError)
            fields = {k: v for k, v in run.document.items() if k != "_id"}
            yield Write("create_evaluation_run", (EvaluationRun(**fields),), {}, DuplicateRunError)
            for test_run in run.test_runs[:1]:
                model = TestRun(**{k: v for k, v in test_run.items() if k != "_id"})
                yield Write("save_test_run", (model,), {}, DuplicateRunError)
        if run.finished_at is not None:
            yield Write(
                "finalize_evaluation_run",
                (run.oid, run.status),
                {"finished_at": run.finished_at},
            )


async def store_history(service: MetricsStorageService, history: History) -> None:
    """Make the `writes` of `history` on one service (duplicates must be refused)."""
    for write in writes(history):
        call = getattr(service, write.method)(*deepcopy(write.args), **deepcopy(write.kwargs))
        if write.raises is None:
            await call
            continue
        try:
            await call
        except write.raises:
            continue
        raise AssertionError(f"{write.method}{write.args!r} was not refused")

"""The local store (SQLite) at scale: the CLI's history commands against plain sqlite3.

Builds a local store (`file:///dir`, database `bench`) holding N test runs
(default 500,000: 500 evaluation runs of 1,000 tests, 20 runs a day over 25
days, branches `main` and `feature/beam-8`, environments `dev` and `lab`)
through evalstore's own API, as a recorder writes it: each run is an
`EvaluationRun` document stored with `MetricsStorageService.upsert_evaluation_run`,
its test runs `TestRun` documents stored with `upsert_test_runs` in batches of
1,000, then `finalize_evaluation_run` computes its counts, metric means
(`accuracy`, `wer`) and score. About 10% of the test runs fail: tests that
always fail, flaky tests that alternate, tests that broke once and stayed
broken, tests failing on the feature branch only; 1% are skipped. The store is
kept in `--store DIR` (default: under /tmp, one directory per size), so a second
run measures without building again.

Then each command runs in a fresh process (`evalstore ...`, the console
script's `main`), timed from the parent around the child's whole life (start-up
and imports included), its peak RSS from `os.wait4`; and the same query
written directly in sqlite3 runs in a fresh `python -c` process too, so both pay
for an interpreter's start-up (its in-process time, open + query + fetch, is
printed beside). Each figure is the median of `--repeat` runs (default 3),
evalstore and sqlite3 alternating.

Targets (the issue's): up to 500,000 test runs, each command at most 1.0 s
wall, peak RSS at most 300 MB, and its work at most 2x the direct query's:
evalstore's in-process time (everything after `import evalstore.cli`: opening
the store, the query, the table) against the direct query's (open, query,
fetch). Where the direct query takes under 10 ms, a ratio measures only
evalstore's fixed cost (about 40 ms: opening the store in a worker thread,
building the table), so those rows show that cost instead of a verdict on the
ratio. The process-to-process ratio is printed too; it is dominated by
evalstore's start-up (about 0.3 s of imports: Typer, Rich, pydantic) against a
bare interpreter's. Above 500,000 (the issue's 5,000,000), at most 10 s each.
`evalstore ping` only opens the store: it must not read every row, so it costs
the same at any size.
The exit code is 0 unless a command fails (or, with `--fail-on-miss`, misses
a target).

Usage:
    .venv/bin/python scripts/bench_localstore.py                     # 500,000 test runs
    .venv/bin/python scripts/bench_localstore.py --size 5m           # 5,000,000
    .venv/bin/python scripts/bench_localstore.py --tests-total 20000 # a smoke run
Options: --store DIR, --rebuild, --repeat N, --tests-per-run N, --fail-on-miss.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bson import ObjectId

from evalstore import MetricsStorageService, MongoDBClient
from evalstore.ids import new_evaluation_run_id, new_test_run_id
from evalstore.models import EvaluationRun, MetricData, RunStatus, TestRun, TestStatus
from evalstore.recording.provenance import system_info_hash
from evalstore.storage.sqlite.schema import FILE_NAME, SCHEMA_VERSION

DATABASE = "bench"
MANIFEST = "bench-manifest.json"
BENCH_FORMAT = 2
"""Bump when the generated history changes, so cached stores are built again."""
DATA_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
SINCE = "2024-01-01"
BATCH = 1_000
FEATURE_BRANCH = "feature/beam-8"
SUITE = "asr-regression"
COMMAND_TIMEOUT_S = 600.0

# Targets of the issue: up to 500,000 test runs, 1 s wall, 300 MB and 2x the direct query
# each; above that (the 5,000,000), 10 s each.
TARGET_SIZE = 500_000
WALL_LIMIT_S = 1.0
LARGE_WALL_LIMIT_S = 10.0
RSS_LIMIT_MB = 300.0
RATIO_LIMIT = 2.0
RATIO_FLOOR_S = 0.010  # below this, a direct query is too quick for a ratio to mean anything


# -- sizes and the plan of the history ---------------------------------------------------


def parse_size(text: str) -> int:
    """`500k`, `5m`, `2000`, `5_000_000` as a number of test runs."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text.replace("_", ""))
    if not found:
        raise argparse.ArgumentTypeError(f"expected a size such as 20k, 500k or 5m, got {text!r}")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[found.group(2).lower()]
    value = round(float(found.group(1)) * scale)
    if value < 20:
        raise argparse.ArgumentTypeError(f"at least 20 test runs, got {value}")
    return value


@dataclass(frozen=True)
class Plan:
    """How many runs of how many tests, and when they start."""

    tests_total: int
    tests_per_run: int
    runs_per_day: int = 20

    @property
    def runs(self) -> int:
        return self.tests_total // self.tests_per_run

    @property
    def days(self) -> float:
        return self.runs / self.runs_per_day

    def key(self) -> dict[str, Any]:
        return {
            "format": BENCH_FORMAT,
            "tests_total": self.tests_total,
            "tests_per_run": self.tests_per_run,
            "runs_per_day": self.runs_per_day,
        }


def default_tests_per_run(total: int) -> int:
    """1,000 tests a run at full size; small stores keep 20 runs (a day) of fewer tests."""
    return min(1_000, max(1, total // 20))


@dataclass(frozen=True)
class TestProfile:
    """How one test id behaves across runs."""

    test_id: str
    kind: str  # stable, failing, flaky, broke, feature_only, skipped
    quality: float  # its usual accuracy score when it passes


def test_profiles(count: int) -> list[TestProfile]:
    """`count` test ids: 8% always failing, 3% flaky, 0.5% broke once, 0.5% failing on the
    feature branch only, 1% skipped, the rest stable."""
    rng = random.Random(1234)
    profiles = []
    for k in range(count):
        slot = k % 200
        if slot in (7, 31, 55, 79, 103, 127, 151, 175, 19, 43, 67, 91, 115, 139, 163, 187):
            kind = "failing"
        elif slot in (11, 47, 83, 119, 155, 191):
            kind = "flaky"
        elif slot == 123:
            kind = "broke"
        elif slot == 59:
            kind = "feature_only"
        elif slot in (99, 199):
            kind = "skipped"
        else:
            kind = "stable"
        test_id = f"tests/asr/test_corpus_{k // 50:02d}.py::test_utterance[{k:04d}]"
        profiles.append(TestProfile(test_id, kind, rng.uniform(72.0, 99.0)))
    return profiles


# -- documents ----------------------------------------------------------------------------


@dataclass
class RunSpec:
    """One evaluation run to record: its document and what its tests will look like."""

    index: int
    started_at: datetime
    branch: str
    environment: str
    status: RunStatus
    document: dict[str, Any] = field(default_factory=dict)


def run_spec(plan: Plan, index: int) -> RunSpec:
    """The `index`-th evaluation run: its start, branch, environment, final status, document."""
    day, slot = divmod(index, plan.runs_per_day)
    started = DATA_START + timedelta(days=day, minutes=30 + slot * (24 * 60 // plan.runs_per_day))
    branch = FEATURE_BRANCH if index % 5 == 3 else "main"
    environment = "lab" if index % 10 == 7 else "dev"
    status: RunStatus = "completed"
    if index % 25 == 24:
        status = "failed"  # the block raised
    elif index % 97 == 50:
        status = "interrupted"
    beam = 8 if branch == FEATURE_BRANCH else 5
    config = {"asr": "whisper-small", "beam_size": beam, "language": "es-en"}
    info = {
        "python": "3.11.7",
        "implementation": "CPython",
        "os": "Linux",
        "machine": "x86_64",
        "packages": {"torch": "2.3.1", "transformers": "4.41.2"},
        "config": config,
    }
    run = EvaluationRun(
        evaluation_run_id=new_evaluation_run_id(started, branch),
        started_at=started,
        git_commit=hashlib.sha1(f"{branch}@{day}".encode()).hexdigest(),  # a commit a day
        git_branch=branch,
        git_dirty=False,
        environment=environment,
        suite=SUITE,
        experiment_tags=["nightly"] if branch == "main" else ["beam-8", "experiment"],
        system_information=info,
        system_info_hash=system_info_hash(info),
        last_seen_at=started,
    )
    document = {"_id": ObjectId(), **run.to_document()}
    return RunSpec(index, started, branch, environment, status, document)


def test_documents(
    spec: RunSpec, profiles: list[TestProfile], rng: random.Random, runs: int
) -> Iterator[dict[str, Any]]:
    """The test run documents of one run, in the order they finish (as `record_test` builds
    them: a `TestRun` model's document with an `_id` in front)."""
    run = spec.document
    clock = spec.started_at
    feature = spec.branch == FEATURE_BRANCH
    for profile in profiles:
        duration = round(rng.uniform(50.0, 2_500.0), 1)
        started = clock
        finished = started + timedelta(milliseconds=duration)
        clock = finished + timedelta(milliseconds=rng.randint(5, 400))
        fails = {
            "failing": True,
            "flaky": rng.random() < 0.4,
            "broke": spec.index >= runs // 2,
            "feature_only": feature,
        }.get(profile.kind, False)
        skipped = profile.kind == "skipped"
        accuracy = profile.quality + (1.0 if feature else 0.0) + rng.gauss(0.0, 1.5)
        if fails:
            accuracy = rng.uniform(35.0, 68.0)
        accuracy = min(100.0, max(0.0, accuracy))
        wer = min(100.0, max(0.0, accuracy - 3.0 + rng.gauss(0.0, 2.0)))
        metrics = {
            "accuracy": MetricData(score=round(accuracy, 2), threshold=70.0, passed=not fails),
            "wer": MetricData(score=round(wer, 2), unit="%", details={"ref_words": 120}),
        }
        status: TestStatus = "skipped" if skipped else "passed"
        message = "SkipTest: no reference transcript" if skipped else None
        if fails:
            status = "error" if profile.kind == "flaky" and rng.random() < 0.25 else "failed"
            message = (
                "TimeoutError: the ASR service did not answer in 30 s"
                if status == "error"
                else f"AssertionError: accuracy {accuracy:.1f} < 70.0"
            )
        test = TestRun(
            evaluation_run_id=run["_id"],
            test_run_id=new_test_run_id(run["evaluation_run_id"], profile.test_id),
            test_id=profile.test_id,
            test_name=profile.test_id.rsplit("::", 1)[-1],
            started_at=started,
            finished_at=finished,
            duration_ms=duration,
            metrics={} if skipped else metrics,
            score=None if skipped else round((accuracy + wer) / 2, 4),
            score_method="average",
            passed=status == "passed",
            status=status,
            tags=["asr", "es-en"],
            participants=["doctor", "patient"],
            message=message,
            details=None,
        )
        yield {"_id": ObjectId(), **test.to_document()}


async def record_history(root: Path, plan: Plan) -> None:
    """Record the whole history into the local store at `root`, through the service.

    As a recorder's background writer does, a batch is written (in the engine's
    worker thread) while the next results are produced: the next run's test run
    documents are built while its predecessor's last batch is stored.
    """
    profiles = test_profiles(plan.tests_per_run)
    rng = random.Random(42)
    started = time.perf_counter()

    def documents(index: int) -> tuple[RunSpec, list[dict[str, Any]]]:
        spec = run_spec(plan, index)
        return spec, list(test_documents(spec, profiles, rng, plan.runs))

    async def store(batch: list[dict[str, Any]]) -> None:
        refused = await service.upsert_test_runs(batch)
        if refused:
            raise SystemExit(f"the store refused {len(refused)} test runs: {refused[0]}")

    async with MongoDBClient(f"file://{root}", DATABASE) as client:
        service = MetricsStorageService(client)
        spec, tests = documents(0)
        for index in range(plan.runs):
            await service.upsert_evaluation_run(spec.document)
            chunks = [tests[i : i + BATCH] for i in range(0, len(tests), BATCH)]
            for chunk in chunks[:-1]:
                await store(chunk)
            writing = asyncio.create_task(store(chunks[-1]))
            await asyncio.sleep(0)  # the task encodes its batch and hands the SQL to a thread
            following = documents(index + 1) if index + 1 < plan.runs else None
            await writing
            finished = tests[-1]["finished_at"] + timedelta(seconds=1)
            await service.finalize_evaluation_run(
                spec.document["_id"], spec.status, finished_at=finished
            )
            await service.touch_evaluation_run(spec.document["_id"], finished)
            done = index + 1
            if done % max(1, plan.runs // 20) == 0 or done == plan.runs:
                elapsed = time.perf_counter() - started
                print(
                    f"  built {done}/{plan.runs} runs ({done * plan.tests_per_run:,} test runs) "
                    f"in {elapsed:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
            if following is not None:
                spec, tests = following


# -- the cached store -----------------------------------------------------------------------


def default_store(plan: Plan) -> Path:
    return Path(tempfile.gettempdir()) / (
        f"evalstore-bench-localstore-{plan.tests_total}-{plan.tests_per_run}"
    )


def store_size(root: Path) -> int:
    directory = root / DATABASE
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith(FILE_NAME))


def prepare_store(root: Path, plan: Plan, *, rebuild: bool) -> dict[str, Any]:
    """The store at `root` for `plan`, built unless a complete one is there; its manifest."""
    manifest_path = root / MANIFEST
    manifest: dict[str, Any] = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    elif root.exists() and any(root.iterdir()) and not rebuild:
        raise SystemExit(
            f"{root} holds something else than a benchmark store (no {MANIFEST}): "
            "choose another --store, or pass --rebuild to replace its `bench` database"
        )
    if (
        not rebuild
        and manifest.get("complete")
        and manifest.get("plan") == plan.key()
        and (root / DATABASE / FILE_NAME).exists()
    ):
        manifest["cached"] = True
        return manifest
    shutil.rmtree(root / DATABASE, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"plan": plan.key(), "complete": False}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    print(
        f"building {root} ({plan.runs} runs x {plan.tests_per_run} tests) ...",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    asyncio.run(record_history(root, plan))
    manifest.update(
        complete=True,
        build_s=round(time.perf_counter() - started, 1),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    manifest["cached"] = False
    return manifest


def upgrade_store(root: Path) -> str | None:
    """Bring a cached store of an older schema up to date (as any evalstore command would on
    its first open), so that no measured command pays for it; what was done, or None."""
    with closing(sqlite3.connect(root / DATABASE / FILE_NAME)) as connection:
        [(version,)] = connection.execute("PRAGMA user_version").fetchall()
    if version >= SCHEMA_VERSION:
        return None

    async def open_store() -> None:
        async with MongoDBClient(f"file://{root}", DATABASE) as client:
            await client.ping()

    started = time.perf_counter()
    asyncio.run(open_store())
    took = time.perf_counter() - started
    return f"schema {version} brought up to {SCHEMA_VERSION} on first open in {took:.1f} s"


# -- the commands and their direct equivalents ------------------------------------------------

# The command in a fresh process; at exit it reports on stderr how long it ran after
# `import evalstore.cli` (opening the store, the query, the table): its in-process time.
INNER_MARK = "evalstore-in-process-s"
EVALSTORE_MAIN = (
    "import atexit, sys, time; sys.argv[0] = 'evalstore'; from evalstore.cli import main; "
    "t = time.perf_counter(); "
    f"atexit.register(lambda: print('{INNER_MARK}', time.perf_counter() - t, file=sys.stderr)); "
    "sys.exit(main())"
)
DIRECT_PRELUDE = """\
import sqlite3, sys, time
start = time.perf_counter()
con = sqlite3.connect(sys.argv[1])
rows = 0
def q(sql, *params):
    global rows
    found = con.execute(sql, params).fetchall()
    rows += len(found)
    return found
"""
DIRECT_EPILOGUE = """
con.close()
print(f"{time.perf_counter() - start:.6f} {rows}")
"""
DAY = "strftime('%Y-%m-%d', started_at / 1000, 'unixepoch')"


@dataclass(frozen=True)
class Command:
    """An evalstore command line and the same query written directly for sqlite3."""

    args: tuple[str, ...]
    direct: str

    @property
    def label(self) -> str:
        return "evalstore " + " ".join(self.args)


def commands(test_id: str) -> list[Command]:
    """The commands of the issue, then `ping` (opening the store alone)."""
    since = int(datetime.fromisoformat(SINCE).replace(tzinfo=timezone.utc).timestamp() * 1000)
    return [
        Command(
            ("stats", "--since", SINCE),
            f"""q('''SELECT g.*, (SELECT t.status FROM test_runs AS t
  WHERE t.test_id = g._id AND t.finished_at IS g.last_seen AND t.finished_at >= ?
  ORDER BY t.rowid DESC LIMIT 1) AS last_status
FROM (SELECT test_id AS _id, count(*) AS runs, sum(CASE WHEN passed THEN 1 ELSE 0 END) AS passed,
  avg(score) AS mean_score, min(score) AS min_score, max(score) AS max_score,
  avg(CASE WHEN status = 'skipped' THEN NULL WHEN passed THEN 1.0 ELSE 0.0 END) AS pass_rate,
  max(finished_at) AS last_seen
  FROM test_runs WHERE finished_at >= ? GROUP BY test_id) AS g ORDER BY g._id''',
  {since}, {since})""",
        ),
        Command(
            ("flaky", "--since", SINCE),
            f"""q('''SELECT test_id, count(*) AS runs,
  sum(CASE WHEN passed THEN 1 ELSE 0 END) AS passes,
  json_group_array(json_array(finished_at, status, rowid)) AS outcomes
FROM test_runs WHERE finished_at >= ? AND status IS NOT 'skipped' GROUP BY test_id
HAVING count(*) >= 5 AND passes BETWEEN 1 AND count(*) - 1 ORDER BY test_id''', {since})""",
        ),
        Command(
            ("slowest", "--since", SINCE),
            f"""q('''SELECT g.*, (SELECT t.duration_ms FROM test_runs AS t
  WHERE t.test_id = g._id AND t.finished_at IS g.last_seen AND t.finished_at >= ?
  AND t.status IS NOT 'skipped' AND t.duration_ms IS NOT NULL
  ORDER BY t.rowid DESC LIMIT 1) AS last_ms
FROM (SELECT test_id AS _id, count(*) AS runs, avg(duration_ms) AS mean_ms,
  max(duration_ms) AS max_ms, max(finished_at) AS last_seen
  FROM test_runs WHERE finished_at >= ? AND status IS NOT 'skipped' AND duration_ms IS NOT NULL
  GROUP BY test_id) AS g ORDER BY g._id''', {since}, {since})""",
        ),
        Command(
            ("trend", "--metric", "accuracy", "--since", SINCE),
            f"""q('''SELECT {DAY} AS day, avg(doc ->> '$.metrics.accuracy'), count(*)
FROM evaluation_runs WHERE started_at >= ?
AND json_type(doc, '$.metrics.accuracy') IN ('integer', 'real')
GROUP BY day ORDER BY day''', {since})""",
        ),
        Command(
            ("trend", "--since", SINCE),
            f"""q('''SELECT {DAY} AS day, avg(score), count(*) FROM evaluation_runs
WHERE started_at >= ? AND score IS NOT NULL GROUP BY day ORDER BY day''', {since})""",
        ),
        Command(
            ("tests", "history", test_id),
            f"""q('''SELECT doc FROM test_runs WHERE test_id = ?
ORDER BY finished_at DESC, rowid LIMIT 20''', {test_id!r})""",
        ),
        Command(
            ("compare", "previous", "latest"),
            """runs = q('''SELECT _id, doc FROM evaluation_runs
WHERE status IN ('completed', 'failed') AND num_tests > 0 AND started_at <= ?
ORDER BY started_at DESC, rowid LIMIT 2''', int(time.time() * 1000) + 86400000)
for run_id, _doc in runs:
    q('''SELECT test_id, status, score, finished_at, doc -> '$.message' FROM test_runs
WHERE evaluation_run_id = ? ORDER BY rowid''', run_id)""",
        ),
        Command(
            ("runs", "list"),
            "q('SELECT doc FROM evaluation_runs ORDER BY started_at DESC, rowid LIMIT 10')",
        ),
        Command(("ping",), "q('SELECT 1')"),
    ]


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    rss_mb: float
    stdout: str
    stderr: str
    returncode: int


def _max_rss_mb(kilobytes_or_bytes: int) -> float:
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return kilobytes_or_bytes / divisor


def run_child(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """Run one child process; its wall time (from the parent) and peak RSS (`os.wait4`)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        timer = threading.Timer(COMMAND_TIMEOUT_S, child.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Sample(
            wall,
            usage.ru_utime + usage.ru_stime,
            _max_rss_mb(usage.ru_maxrss),
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            child.returncode,
        )


@dataclass
class Row:
    command: Command
    evalstore: list[Sample]
    direct: list[Sample]
    direct_inner_s: list[float]
    evalstore_inner_s: list[float]

    @property
    def failed(self) -> Sample | None:
        return next((s for s in (*self.evalstore, *self.direct) if s.returncode != 0), None)


def measure(command: Command, root: Path, repeat: int, workdir: Path) -> Row:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MONGODB_", "EVALSTORE_"))
    }
    env.update(
        MONGODB_CONNECTION_STRING=f"file://{root}",
        MONGODB_DATABASE=DATABASE,
        NO_COLOR="1",
    )
    direct_program = DIRECT_PRELUDE + command.direct + DIRECT_EPILOGUE
    database = str(root / DATABASE / FILE_NAME)
    row = Row(command, [], [], [], [])
    for _ in range(repeat):
        sample = run_child([sys.executable, "-c", EVALSTORE_MAIN, *command.args], env, workdir)
        row.evalstore.append(sample)
        inner = [line for line in sample.stderr.splitlines() if line.startswith(INNER_MARK)]
        if inner:
            row.evalstore_inner_s.append(float(inner[-1].split()[-1]))
        direct = run_child([sys.executable, "-c", direct_program, database], env, workdir)
        row.direct.append(direct)
        if direct.returncode == 0:
            row.direct_inner_s.append(float(direct.stdout.split()[-2]))
        if row.failed:
            break
    return row


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def verdict(row: Row, wall_limit: float, check_memory_and_ratio: bool) -> str:
    if row.failed:
        return f"ERROR (exit {row.failed.returncode})"
    wall = median([s.wall_s for s in row.evalstore])
    rss = median([s.rss_mb for s in row.evalstore])
    ratio = median(row.evalstore_inner_s) / median(row.direct_inner_s)
    missed = []
    if wall > wall_limit:
        missed.append(f"wall > {wall_limit:g} s")
    if check_memory_and_ratio and rss > RSS_LIMIT_MB:
        missed.append(f"RSS > {RSS_LIMIT_MB:g} MB")
    quick = median(row.direct_inner_s) < RATIO_FLOOR_S
    if check_memory_and_ratio and ratio > RATIO_LIMIT and not quick:
        missed.append(f"in-process ratio > {RATIO_LIMIT:g}")
    if check_memory_and_ratio and quick and not missed:
        fixed = median(row.evalstore_inner_s) * 1000
        return f"yes (query < {RATIO_FLOOR_S * 1000:g} ms; evalstore {fixed:.0f} ms)"
    return "yes" if not missed else "NO: " + ", ".join(missed)


def print_table(rows: list[Row], wall_limit: float, check_memory_and_ratio: bool) -> bool:
    header = (
        "command",
        "evalstore wall s",
        "evalstore CPU s",
        "peak RSS MB",
        "direct sqlite3 wall s",
        "direct in-process s",
        "evalstore in-process s",
        "ratio in-process",
        "ratio process",
        "target met?",
    )
    lines = []
    all_met = True
    for row in rows:
        met = verdict(row, wall_limit, check_memory_and_ratio)
        all_met = all_met and met == "yes"
        wall = median([s.wall_s for s in row.evalstore])
        direct = median([s.wall_s for s in row.direct])
        lines.append(
            (
                f"`{row.command.label}`",
                f"{wall:.3f}",
                f"{median([s.cpu_s for s in row.evalstore]):.3f}",
                f"{median([s.rss_mb for s in row.evalstore]):.0f}",
                f"{direct:.3f}",
                f"{median(row.direct_inner_s):.4f}",
                f"{median(row.evalstore_inner_s):.4f}",
                f"{median(row.evalstore_inner_s) / median(row.direct_inner_s):.1f}x",
                f"{wall / direct:.1f}x",
                met,
            )
        )
    widths = [max(len(cells[i]) for cells in (header, *lines)) for i in range(len(header))]

    def show(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(show(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in lines:
        print(show(cells))
    return all_met


def main() -> int:
    """Build (or reuse) the store, run every command, print the table."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--tests-total", type=parse_size, help="test runs in the store (default 500000)"
    )
    size.add_argument("--size", type=parse_size, help="the same, as 20k, 500k or 5m")
    parser.add_argument(
        "--tests-per-run",
        type=int,
        help="tests of each evaluation run, i.e. distinct test ids (default 1000; fewer for "
        "stores under 20,000 test runs, so that there are 20 runs)",
    )
    parser.add_argument("--store", type=Path, help="the store's directory (default under /tmp)")
    parser.add_argument("--rebuild", action="store_true", help="build the store even if cached")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a command misses a target"
    )
    args = parser.parse_args()
    total = args.tests_total or args.size or 500_000
    per_run = args.tests_per_run or default_tests_per_run(total)
    if not 1 <= per_run <= total // 2:
        parser.error("--tests-per-run must leave at least two evaluation runs")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    plan = Plan(total - total % per_run, per_run)
    root = (args.store or default_store(plan)).resolve()

    manifest = prepare_store(root, plan, rebuild=args.rebuild)
    upgraded = upgrade_store(root)
    profiles = test_profiles(plan.tests_per_run)
    flaky_id = next((p.test_id for p in profiles if p.kind == "flaky"), profiles[0].test_id)
    with closing(sqlite3.connect(root / DATABASE / FILE_NAME)) as connection:
        [(tests_stored,)] = connection.execute("SELECT count(*) FROM test_runs").fetchall()
        [(runs_stored,)] = connection.execute("SELECT count(*) FROM evaluation_runs").fetchall()

    large = plan.tests_total > TARGET_SIZE
    wall_limit = LARGE_WALL_LIMIT_S if large else WALL_LIMIT_S
    built = (
        f"cached (built in {manifest['build_s']:.1f} s on {manifest['built_at']})"
        if manifest["cached"]
        else f"{manifest['build_s']:.1f} s"
    )
    print(
        f"store: file://{root} (database {DATABASE}): {runs_stored:,} evaluation runs, "
        f"{tests_stored:,} test runs ({plan.runs} x {plan.tests_per_run} tests, "
        f"{plan.runs_per_day} runs a day over {plan.days:g} days), "
        f"{store_size(root) / 1e6:.1f} MB"
    )
    print(f"store build: {built}" + (f"; {upgraded}" if upgraded else ""))
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cpus; median of {args.repeat}; targets: wall <= {wall_limit:g} s"
        + (
            ""
            if large
            else f", peak RSS <= {RSS_LIMIT_MB:g} MB, in-process ratio (evalstore / direct) "
            f"<= {RATIO_LIMIT:g}"
        )
    )
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:  # no .env of the caller's directory
        for command in commands(flaky_id):
            print(f"  measuring {command.label} ...", file=sys.stderr, flush=True)
            rows.append(measure(command, root, args.repeat, Path(workdir)))
    print(
        f"1-minute load average {load_before:.2f} before the measurements, "
        f"{os.getloadavg()[0]:.2f} after (wall times grow with other processes' load; "
        "CPU s does not)"
    )
    print()
    all_met = print_table(rows, wall_limit, not large)
    errors = [row for row in rows if row.failed]
    for row in errors:
        failed = row.failed
        assert failed is not None
        print(f"\n{row.command.label} exited {failed.returncode}:\n{failed.stderr.strip()}")
    if errors:
        return 1
    return 1 if args.fail_on_miss and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())

"""Small histories for the dashboard's tests, recorded through evalstore's public API.

Every score, status, message, cost and curve below is chosen by hand, so the
tests can say exactly what each page shows. Runs start at noon on the days
before today (UTC), so they fall in the pages' default 30-day window; each test
finishes one minute after the previous one, and a run finishes an hour after
it started.

The main history (`record_main_history`), oldest first:

| run     | day      | branch    | env   | tags     | beam | alpha | beta | gamma | delta | score |
|---------|----------|-----------|-------|----------|------|-------|------|-------|-------|-------|
| ancient | -40      | main      | dev   | baseline | 1    | P 50  |      |       |       | 50.0  |
| first   | -5       | main      | dev   | baseline | 1    | P 90  | P 80 | P 70  | F 40  | 70.0  |
| second  | -4       | main      | dev   | baseline | 1    | P 90  | F 60 | F 30  | F 40  | 55.0  |
| tweak   | -3       | feature-x | stage | tweak    | 5    | P 100 | P 80 | P 70  | P 50  | 75.0  |
| broken  | -2       | main      | dev   | baseline | 1    | P 90  |      | F 20  |       | 55.0  |
| latest  | -1       | main      | prod  | baseline | 1    | P 95  | P 85 | F 35  | F 45  | 65.0  |
| live    | -1 18:00 | main      | dev   | baseline | 1    | still running, no test | -     |

`beam` is the configuration's `beam_size` (`model` is `small` in all). `broken` failed
(its block raised); `latest` also skipped `epsilon` (no score).

`second` runs a monitor rule (gamma's score below 50, level error): one alert.
`tweak` records two model calls with explicit costs (0.25 and 0.5 USD) and a
training curve (loss 1.0, 0.5, 0.25 at steps 0, 1, 2).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from evalstore import (
    EvaluationRun,
    MetricsStorageService,
    evaluation_run,
    system_info_hash,
    system_information,
)
from evalstore.monitors.monitor import Monitor
from evalstore.monitors.rules import Rule

UTC = timezone.utc
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
BASE_CONFIG = {"model": "small", "beam_size": 1}
TWEAK_CONFIG = {"model": "small", "beam_size": 5}
XSS_TEST = "<img src=x onerror=alert(1)>"
XSS_MESSAGE = "<script>alert(1)</script>"
XSS_CONFIG = "</script><script>alert(2)</script>"
XSS_SUITE = "<svg onload=alert(3)>"


def day(days_ago: int, hour: int = 12) -> datetime:
    """Noon (or `hour`) UTC, `days_ago` days before today."""
    return TODAY - timedelta(days=days_ago) + timedelta(hours=hour)


def git_repo(path: Path, branch: str) -> Path:
    """A git repository at `path` with one empty commit on `branch`."""
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=evalstore", "-c", "user.email=evalstore@example.com"]
    subprocess.run([*git, "init", "-q", "-b", branch, str(path)], check=True)
    subprocess.run(
        [*git, "-C", str(path), "commit", "-q", "--allow-empty", "-m", "init"], check=True
    )
    return path


class RunClock:
    """A run's clock: its start time first, then one hour later (when it finishes)."""

    def __init__(self, started_at: datetime) -> None:
        self.started_at = started_at
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.started_at if self.calls == 1 else self.started_at + timedelta(hours=1)


@dataclass(frozen=True)
class Outcome:
    """One test of a run: status, score and message."""

    test_id: str
    status: str
    score: float | None
    message: str | None = None


@dataclass
class Recorded:
    """What a history recorded: run documents by name, and the alert ids."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    alert_ids: list[str] = field(default_factory=list)

    def id(self, name: str) -> str:
        """The evaluation run id of a run of the history, by its name in the table."""
        return str(self.runs[name]["evaluation_run_id"])


class _Abort(Exception):
    """Raised inside a run to have it finalised as `failed`."""


async def record_run(
    service: MetricsStorageService,
    started_at: datetime,
    outcomes: Sequence[Outcome],
    *,
    repo: Path,
    config: Mapping[str, Any] = BASE_CONFIG,
    tags: Sequence[str] = ("baseline",),
    environment: str = "dev",
    suite: str | None = None,
    monitor: Monitor | None = None,
    usage: Sequence[Mapping[str, Any]] = (),
    curve: Mapping[str, Sequence[float]] | None = None,
    fail: bool = False,
) -> dict[str, Any]:
    """Record one run; return its document as stored at the end."""
    recorder = evaluation_run(
        service,
        config=dict(config),
        tags=list(tags),
        environment=environment,
        suite=suite,
        clock=RunClock(started_at),
        repo_path=repo,
        monitor=monitor or False,
    )
    try:
        async with recorder:
            for index, outcome in enumerate(outcomes):
                end = started_at + timedelta(minutes=index + 1)
                await recorder.record_test(
                    outcome.test_id,
                    status=outcome.status,  # type: ignore[arg-type]
                    score=outcome.score,
                    message=outcome.message,
                    started_at=end - timedelta(seconds=30),
                    finished_at=end,
                    duration_ms=30_000.0,
                )
            for record in usage:
                await recorder.record_usage(**record)
            for name, values in (curve or {}).items():
                for step, value in enumerate(values):
                    await recorder.log_metrics({name: value}, step=step)
            if fail:
                raise _Abort
    except _Abort:
        pass
    return recorder.document


def gamma_rule() -> Monitor:
    """An error alert when gamma's score falls below 50."""
    return Monitor(
        [
            Rule(
                name="gamma-low",
                metric="score",
                tests="gamma",
                check="below",
                threshold=50,
                level="error",
            )
        ]
    )


async def record_main_history(service: MetricsStorageService, repos: Path) -> Recorded:
    """The main history of the module docstring."""
    main = git_repo(repos / "main", "main") if not (repos / "main").exists() else repos / "main"
    feature = (
        git_repo(repos / "feature", "feature-x")
        if not (repos / "feature").exists()
        else repos / "feature"
    )
    recorded = Recorded()
    P, F = "passed", "failed"
    recorded.runs["ancient"] = await record_run(
        service, day(40), [Outcome("alpha", P, 50.0)], repo=main
    )
    recorded.runs["first"] = await record_run(
        service,
        day(5),
        [
            Outcome("alpha", P, 90.0),
            Outcome("beta", P, 80.0),
            Outcome("gamma", P, 70.0),
            Outcome("delta", F, 40.0, "delta: 40 is below 50"),
        ],
        repo=main,
    )
    recorded.runs["second"] = await record_run(
        service,
        day(4),
        [
            Outcome("alpha", P, 90.0),
            Outcome("beta", F, 60.0, "beta regressed"),
            Outcome("gamma", F, 30.0, "gamma flaked"),
            Outcome("delta", F, 40.0, "delta: 40 is below 50"),
        ],
        repo=main,
        monitor=gamma_rule(),
    )
    recorded.runs["tweak"] = await record_run(
        service,
        day(3),
        [
            Outcome("alpha", P, 100.0),
            Outcome("beta", P, 80.0),
            Outcome("gamma", P, 70.0),
            Outcome("delta", P, 50.0),
        ],
        repo=feature,
        config=TWEAK_CONFIG,
        tags=("tweak",),
        environment="stage",
        usage=[
            {
                "model": "model-a",
                "input_tokens": 1000,
                "output_tokens": 200,
                "cost": 0.25,
                "test_id": "alpha",
            },
            {"model": "model-b", "input_tokens": 500, "output_tokens": 100, "cost": 0.5},
        ],
        curve={"loss": [1.0, 0.5, 0.25]},
    )
    recorded.runs["broken"] = await record_run(
        service,
        day(2),
        [Outcome("alpha", P, 90.0), Outcome("gamma", F, 20.0, "gamma flaked again")],
        repo=main,
        fail=True,
    )
    recorded.runs["latest"] = await record_run(
        service,
        day(1),
        [
            Outcome("alpha", P, 95.0),
            Outcome("beta", P, 85.0),
            Outcome("gamma", F, 35.0, "gamma flaked"),
            Outcome("delta", F, 45.0, "delta: 45 is below 50"),
            Outcome("epsilon", "skipped", None, "not ready"),
        ],
        repo=main,
        environment="prod",
    )
    info = system_information(BASE_CONFIG)
    recorded.runs["live"] = await service.create_evaluation_run(
        EvaluationRun(
            evaluation_run_id=f"{day(1, 18):%Y-%m-%dT%H-%M-%SZ}-main-live01",
            started_at=day(1, 18),
            git_branch="main",
            environment="dev",
            experiment_tags=["baseline"],
            system_information=info,
            system_info_hash=system_info_hash(info),
        )
    )
    recorded.alert_ids = [str(alert["_id"]) for alert in await service.get_alerts()]
    return recorded


async def record_hostile_history(service: MetricsStorageService, repos: Path) -> Recorded:
    """Two runs whose recorded text is markup: a test id, a message, a config value, a suite.

    `plain` (two days ago) passes the hostile test; `hostile` (yesterday) fails it with
    the message `<script>alert(1)</script>`, under a configuration whose `prompt` is
    `</script><script>alert(2)</script>`, and records a call with a cost for that test.
    """
    repo = git_repo(repos / "hostile", "main") if not (repos / "hostile").exists() else None
    repo = repo or repos / "hostile"
    recorded = Recorded()
    recorded.runs["plain"] = await record_run(
        service,
        day(2),
        [Outcome(XSS_TEST, "passed", 90.0), Outcome("calm", "passed", 80.0)],
        repo=repo,
        config={"prompt": "plain"},
        suite=XSS_SUITE,
    )
    recorded.runs["hostile"] = await record_run(
        service,
        day(1),
        [Outcome(XSS_TEST, "failed", 10.0, XSS_MESSAGE), Outcome("calm", "passed", 80.0)],
        repo=repo,
        config={"prompt": XSS_CONFIG},
        suite=XSS_SUITE,
        usage=[{"model": "model-a", "input_tokens": 10, "cost": 0.125, "test_id": XSS_TEST}],
    )
    return recorded


async def record_alert_history(service: MetricsStorageService, repos: Path) -> Recorded:
    """One run (`alerting`, yesterday) in which gamma scores 30: the gamma rule fires once."""
    repo = repos / "alerting"
    if not repo.exists():
        git_repo(repo, "main")
    recorded = Recorded()
    recorded.runs["alerting"] = await record_run(
        service,
        day(1),
        [Outcome("alpha", "passed", 90.0), Outcome("gamma", "failed", 30.0, "gamma flaked")],
        repo=repo,
        monitor=gamma_rule(),
    )
    recorded.alert_ids = [str(alert["_id"]) for alert in await service.get_alerts()]
    return recorded


async def record_nothing(service: MetricsStorageService, repos: Path) -> Recorded:
    """No history (for a store that cannot be reached)."""
    return Recorded()

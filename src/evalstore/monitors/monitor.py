"""`Monitor`: rules evaluated on finished runs and on values observed in a training loop.

On a run, each rule applying to it reads the run's value (or each matching test's)
and, when its check needs history, the same value of the comparable runs before it
(same suite, branch, environment and configuration unless the rule says otherwise).
The answer depends only on stored history, so `evalstore check` says the same of a
run whenever it is asked.

One ongoing breach is one alert: an alert is keyed on its rule, what it concerns
(a test, or the run) and the comparable group; while it fires, later breaching runs
update it (its level may rise) and a run that no longer breaches resolves it. Only
a new alert, or one whose level rose, is sent to the channels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from evalstore.models import Document, utcnow
from evalstore.monitors.budgets import Budget, parse_budgets
from evalstore.monitors.channels import AlertCallback, Channels
from evalstore.monitors.checks import SEVERITY, Verdict, check_value
from evalstore.monitors.rules import COMPARABLE_FIELDS, Rule, parse_rules
from evalstore.monitors.values import observed_value, run_value, test_value
from evalstore.service import MetricsStorageService

FAILING_LEVELS = ("error", "critical")


@dataclass
class RunCheck:
    """What the rules said of one run.

    Attributes:
        run: the run's human-readable id.
        alerts: the alerts firing for this run (new and ongoing), worst first.
        new: those that fired (or rose a level) with this run.
        resolved: alerts this run resolved.
        undecided: one line per rule and subject that could not decide, and why.
    """

    run: str
    alerts: list[Document] = field(default_factory=list)
    new: list[Document] = field(default_factory=list)
    resolved: list[Document] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)

    def fails(self, *, strict: bool = False) -> bool:
        """True when an error or critical alert fires (with `strict`, a warning too)."""
        levels = ("warning", *FAILING_LEVELS) if strict else FAILING_LEVELS
        return any(alert["level"] in levels for alert in self.alerts)

    def counts(self) -> dict[str, int]:
        """How many alerts fire at each level."""
        counts = dict.fromkeys(("warning", "error", "critical"), 0)
        for alert in self.alerts:
            if alert["level"] in counts:
                counts[str(alert["level"])] += 1
        return counts


def matches(pattern: str, test_id: str) -> bool:
    """True when `test_id` matches a glob of `*` (any text) and `?` (one character).

    Everything else is literal, brackets included: pytest ids such as
    `test_wer[es-en]` are their own pattern.
    """
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, test_id, re.DOTALL) is not None


def _applies(rule: Rule, run: Document) -> bool:
    if rule.on != "run":
        return False
    for name, field_name in (
        ("environment", "environment"),
        ("branch", "git_branch"),
        ("suite", "suite"),
    ):
        wanted = getattr(rule, name)
        if wanted is not None and run.get(field_name) != wanted:
            return False
    tags = run.get("experiment_tags") or []
    return all(tag in tags for tag in rule.tags)


def _group(rule: Rule, run: Document) -> dict[str, Any]:
    """The fields an earlier run must share with `run` to be comparable under `rule`."""
    return {COMPARABLE_FIELDS[name]: run.get(COMPARABLE_FIELDS[name]) for name in rule.comparable}


def _key(rule: Rule, subject: str | None, group: Mapping[str, Any]) -> str:
    scope = ",".join(f"{name}={value}" for name, value in sorted(group.items()))
    return f"{rule.name}|{subject or ''}|{scope}"


class Monitor:
    """Rules, and the channels their alerts go to.

    Args:
        rules: `Rule`s, or tables as in `evalstore.toml` (validated all at once).
        callbacks: functions called with each new alert document.
        webhook_url: a URL to POST new alerts to (Slack-compatible JSON).
        callback_timeout_s: how long one callback may take.
        channels: all channel settings at once, instead of the three above.
        budgets: cost budgets (`Budget`s or tables as in `evalstore.toml`).

    Raises:
        ConfigurationError: a rule is invalid (one line naming the rule and field).
    """

    def __init__(
        self,
        rules: Iterable[Rule | Mapping[str, Any]],
        *,
        callbacks: Sequence[AlertCallback] = (),
        webhook_url: str | None = None,
        callback_timeout_s: float = 5.0,
        channels: Channels | None = None,
        budgets: Iterable[Budget | Mapping[str, Any]] = (),
    ) -> None:
        self.rules = parse_rules(list(rules), "Monitor")
        self.budgets = parse_budgets(list(budgets), "Monitor")
        """Cost budgets, checked as usage is recorded (see `monitors.budgets`)."""
        self.channels = channels or Channels(
            callbacks=list(callbacks),
            callback_timeout_s=callback_timeout_s,
            webhook_url=webhook_url,
        )
        self._observed: dict[str, list[float]] = {}
        self._firing: dict[str, tuple[int, Document]] = {}
        self._step = 0
        self._stored_observed = 0
        self.alerts: list[Document] = []
        """Every alert `observe` raised, oldest first."""

    # -- runs ----------------------------------------------------------------------

    async def evaluate_run(
        self, service: MetricsStorageService, run: Document, *, store: bool = True
    ) -> RunCheck:
        """Check a finished run; store and send its alerts (unless `store` is False).

        Raises:
            StorageUnavailableError: the history or the alerts could not be read or written.
        """
        result = RunCheck(run=str(run.get("evaluation_run_id")))
        cache: dict[tuple[Any, ...], tuple[int, list[Document]]] = {}
        tests_cache: dict[tuple[Any, ...], list[Document]] = {}
        for rule in self.rules:
            if not _applies(rule, run):
                continue
            group = _group(rule, run)
            depth = (rule.window if rule.needs_history else 0) + rule.consecutive - 1
            earlier = await self._earlier(service, run, group, depth, cache)
            runs = [run, *earlier]
            series: dict[str | None, list[float | None]]
            if rule.tests is None:
                series = {None: [run_value(r, rule.metric) for r in runs]}
            else:
                series = await self._test_series(service, rule, runs, tests_cache)
            for subject, values in series.items():
                verdict = self._decide(rule, values)
                if verdict.undecided and not verdict.breached:
                    where = f" [{subject}]" if subject else ""
                    result.undecided.append(f"{rule.name}{where}: {verdict.undecided}")
                await self._settle(service, run, rule, subject, group, verdict, store, result)
        result.alerts.sort(key=lambda alert: -SEVERITY[str(alert["level"])])
        if store:
            self.channels.send(result.new)
        return result

    async def _earlier(
        self,
        service: MetricsStorageService,
        run: Document,
        group: dict[str, Any],
        depth: int,
        cache: dict[tuple[Any, ...], tuple[int, list[Document]]],
    ) -> list[Document]:
        if depth <= 0:
            return []
        key = tuple(sorted(group.items(), key=lambda item: item[0]))
        fetched = cache.get(key)
        if fetched is None or fetched[0] < depth:
            fetched = (depth, await service.get_comparable_runs(run, group, depth))
            cache[key] = fetched
        cached = fetched[1]
        return cached[:depth]

    async def _test_series(
        self,
        service: MetricsStorageService,
        rule: Rule,
        runs: list[Document],
        cache: dict[tuple[Any, ...], list[Document]],
    ) -> dict[str | None, list[float | None]]:
        key = tuple(str(r["_id"]) for r in runs)
        tests = cache.get(key)
        if tests is None:
            tests = await service.get_test_runs_of_runs([r["_id"] for r in runs])
            cache[key] = tests
        assert rule.tests is not None
        by_run: dict[str, dict[str, Document]] = {}
        for test in tests:
            if matches(rule.tests, str(test.get("test_id"))):
                by_run.setdefault(str(test["evaluation_run_id"]), {})[str(test["test_id"])] = test
        current = by_run.get(str(runs[0]["_id"]), {})
        subjects = sorted(current) or ([rule.tests] if rule.check == "missing" else [])
        return {
            subject: [
                test_value(found, rule.metric)
                if (found := by_run.get(str(r["_id"]), {}).get(subject)) is not None
                else None
                for r in runs
            ]
            for subject in subjects
        }

    @staticmethod
    def _decide(rule: Rule, values: Sequence[float | None]) -> Verdict:
        """The verdict on the newest value, required of `consecutive` runs in a row."""
        verdicts = []
        for index in range(rule.consecutive):
            if index >= len(values):
                break
            history = [v for v in values[index + 1 :] if v is not None]
            verdicts.append(check_value(rule, values[index], history))
        first = verdicts[0]
        if not first.breached or first.kind == "improvement" or rule.consecutive == 1:
            return first
        streak = sum(1 for _ in _takewhile_breached(verdicts))
        if streak < rule.consecutive:
            return Verdict(
                rule,
                first.value,
                baseline=first.baseline,
                statistic=first.statistic,
                undecided=(
                    f"breaching in {streak} comparable run(s) in a row, "
                    f"{rule.consecutive} needed: {first.message}"
                ),
            )
        return first

    async def _settle(
        self,
        service: MetricsStorageService,
        run: Document,
        rule: Rule,
        subject: str | None,
        group: dict[str, Any],
        verdict: Verdict,
        store: bool,
        result: RunCheck,
    ) -> None:
        """Open, update or resolve the alerts of one rule and subject for this run.

        A regression and an improvement are two alerts (two keys): a run much better
        than its baseline resolves the regression and may open an `info` alert.
        """
        key = _key(rule, subject, group)
        decided = verdict.undecided is None
        improved = verdict.breached and verdict.kind == "improvement"
        regression = verdict if verdict.breached and not improved else None
        await self._settle_key(service, run, rule, subject, key, regression, decided, store, result)
        if rule.improvement:
            await self._settle_key(
                service,
                run,
                rule,
                subject,
                f"{key}|improvement",
                verdict if improved else None,
                decided,
                store,
                result,
            )

    async def _settle_key(
        self,
        service: MetricsStorageService,
        run: Document,
        rule: Rule,
        subject: str | None,
        key: str,
        breach: Verdict | None,
        decided: bool,
        store: bool,
        result: RunCheck,
    ) -> None:
        latest = await service.get_latest_alert(key) if store else None
        if latest is not None and latest["last_run_started_at"] > run["started_at"]:
            # An older run, checked again: report what it breached, change nothing.
            if breach is not None:
                result.alerts.append(_alert_document(rule, breach, run, subject, key, utcnow()))
            return
        firing = latest if latest is not None and latest["state"] == "firing" else None
        if breach is not None:
            alert = _alert_document(rule, breach, run, subject, key, utcnow())
            if firing is None:
                result.new.append(alert)
            else:
                same_run = firing["last_run_started_at"] == run["started_at"]
                alert.update({name: firing[name] for name in _KEPT})
                alert["runs"] = int(firing.get("runs", 1)) + (0 if same_run else 1)
                worst = max(
                    str(firing.get("max_level", firing["level"])),
                    str(alert["level"]),
                    key=SEVERITY.__getitem__,
                )
                alert["max_level"] = worst
                if SEVERITY[str(alert["level"])] > SEVERITY[str(firing["level"])]:
                    result.new.append(alert)  # it rose a level: tell the channels again
            if store:
                await service.save_alert(alert)
            result.alerts.append(alert)
        elif firing is not None and decided:
            firing.update(
                state="resolved",
                resolved_at=utcnow(),
                resolved_by=result.run,
                last_run_started_at=run["started_at"],
            )
            await service.save_alert(firing)
            result.resolved.append(firing)

    async def store_observed(self, service: MetricsStorageService, run: Document) -> int:
        """Store the alerts `observe` raised that are not stored yet, as alerts of `run`.

        The run recorder calls this when the run ends, so alerts raised in a training
        loop inside `evaluation_run(monitor=...)` are kept with their run and step.
        """
        pending = self.alerts[self._stored_observed :]
        for alert in pending:
            context = ",".join(f"{k}={v}" for k, v in sorted(alert["context"].items()))
            stored = {
                **alert,
                "key": f"{alert['rule']}|step {alert['step']}|{context}",
                "test_id": None,
                "acknowledged": False,
                "evaluation_run_id": run["_id"],
                "run": run.get("evaluation_run_id"),
                "suite": run.get("suite"),
                "environment": run.get("environment"),
                "git_branch": run.get("git_branch"),
                "last_seen_at": alert["fired_at"],
            }
            await service.save_alert(stored)
            self._stored_observed += 1
        return len(pending)

    # -- training loops ------------------------------------------------------------

    def observe(
        self,
        metrics: Mapping[str, Any],
        step: int | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        """Check values logged in a training loop against the `on = "step"` rules.

        A breach alerts once and again only after the value recovered (or, with
        the rule's `cooldown`, after that many steps still breaching). Trend checks
        (delta, percent, zscore, t_test) compare with the values observed before.

        Args:
            metrics: the values of this step, nested dicts allowed (`drift.detected`).
            step: the step (epoch, batch); default: one more than the last.
            context: labels stored with the alerts (a model name, a dataset).

        Returns:
            The alerts raised at this step (also sent to the channels).
        """
        self._step = self._step + 1 if step is None else step
        raised: list[Document] = []
        label = ",".join(f"{k}={v}" for k, v in sorted((context or {}).items()))
        for rule in self.rules:
            if rule.on != "step":
                continue
            value = observed_value(metrics, rule.metric)
            key = f"{rule.name}||{label}"
            history = self._observed.setdefault(key, [])
            verdict = check_value(rule, value, history[::-1])
            if value is not None:
                history.append(value)
                del history[: -max(rule.window, 1)]
            firing = self._firing.get(key)
            if not verdict.breached:
                if firing is not None and verdict.undecided is None:
                    del self._firing[key]
                continue
            if firing is not None:
                since, earlier = firing
                rose = SEVERITY[str(verdict.level)] > SEVERITY[str(earlier["level"])]
                if not rose and (rule.cooldown is None or self._step - since < rule.cooldown):
                    continue
            now = utcnow()
            alert = {
                "_id": ObjectId(),
                "rule": rule.name,
                "level": verdict.level,
                "kind": verdict.kind,
                "check": rule.check,
                "metric": rule.metric,
                "value": verdict.value,
                "threshold": verdict.bound,
                "baseline": verdict.baseline.as_document() if verdict.baseline else None,
                "statistic": dict(verdict.statistic),
                "step": self._step,
                "context": dict(context or {}),
                "message": verdict.message,
                "state": "firing",
                "fired_at": now,
            }
            self._firing[key] = (self._step, alert)
            raised.append(alert)
        self.alerts.extend(raised)
        self.channels.send(raised)
        return raised


_KEPT = ("_id", "fired_at", "first_evaluation_run_id", "first_run", "acknowledged")


def _takewhile_breached(verdicts: Sequence[Verdict]) -> Iterable[Verdict]:
    for verdict in verdicts:
        if not verdict.breached or verdict.kind == "improvement":
            return
        yield verdict


def _alert_document(
    rule: Rule, verdict: Verdict, run: Document, subject: str | None, key: str, now: Any
) -> Document:
    return {
        "_id": ObjectId(),
        "key": key,
        "rule": rule.name,
        "level": verdict.level,
        "max_level": verdict.level,
        "kind": verdict.kind,
        "check": rule.check,
        "metric": rule.metric,
        "test_id": subject,
        "step": None,
        "value": verdict.value,
        "threshold": verdict.bound,
        "baseline": verdict.baseline.as_document() if verdict.baseline else None,
        "statistic": dict(verdict.statistic),
        "message": verdict.message,
        "state": "firing",
        "acknowledged": False,
        "evaluation_run_id": run["_id"],
        "run": run.get("evaluation_run_id"),
        "first_evaluation_run_id": run["_id"],
        "first_run": run.get("evaluation_run_id"),
        "last_run_started_at": run["started_at"],
        "runs": 1,
        "suite": run.get("suite"),
        "environment": run.get("environment"),
        "git_branch": run.get("git_branch"),
        "fired_at": now,
        "last_seen_at": now,
    }

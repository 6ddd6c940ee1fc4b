"""Cost budgets: a `warning` and a `limit` amount per run or per day, checked as usage arrives.

```toml
[[tool.evalstore.budgets]]
name = "ci-daily"
per = "day"            # or "run"
warning = 20.0         # USD
limit = 50.0
environment = "ci"     # optional scope: branch, environment, suite
```

A run's budgets start from what the store already holds for the period (a day's
budget counts every run of that UTC day in its scope) and add each priced usage
record as it is recorded. Each level fires once per period: an alert (level
`warning` at the warning amount, `error` at the limit) stored in `alerts` and sent
to the monitor's channels; a second run crossing the same day's level finds it
stored and stays quiet. `record_usage` returns the worst status: `ok`, `warning`
or `exceeded`, so a caller can stop spending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalstore.errors import ConfigurationError
from evalstore.models import Document, utcnow
from evalstore.monitors.channels import Channels
from evalstore.service import MetricsStorageService

log = logging.getLogger("evalstore")
BudgetStatus = Literal["ok", "warning", "exceeded"]
_SEVERITY = {"ok": 0, "warning": 1, "exceeded": 2}


class Budget(BaseModel):
    """One budget: `warning` and/or `limit` in USD, per run or per UTC day, in a scope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    per: Literal["run", "day"] = "run"
    warning: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    limit: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    branch: str | None = None
    environment: str | None = None
    suite: str | None = None

    @model_validator(mode="after")
    def _amounts(self) -> Budget:
        if self.warning is None and self.limit is None:
            raise ValueError("a budget needs warning or limit (USD)")
        if self.warning is not None and self.limit is not None and self.warning > self.limit:
            raise ValueError("warning must not be above limit")
        return self

    def applies(self, run: Mapping[str, Any]) -> bool:
        """True when `run` is in the budget's scope."""
        return all(
            wanted is None or run.get(name) == wanted
            for name, wanted in (
                ("git_branch", self.branch),
                ("environment", self.environment),
                ("suite", self.suite),
            )
        )

    def status(self, spent: float) -> BudgetStatus:
        """`exceeded` from the limit on, `warning` from the warning amount on, else `ok`."""
        if self.limit is not None and spent >= self.limit:
            return "exceeded"
        if self.warning is not None and spent >= self.warning:
            return "warning"
        return "ok"


def parse_budgets(entries: Any, source: str) -> list[Budget]:
    """Validate budget tables; every one, or one clear line naming the file, budget and field.

    Raises:
        ConfigurationError: an invalid budget.
    """
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigurationError(f"{source}: budgets must be a list of tables ([[budgets]])")
    budgets = []
    for index, entry in enumerate(entries, start=1):
        if isinstance(entry, Budget):
            budgets.append(entry)
            continue
        label = f"budget #{index}"
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str) and entry["name"]:
            label = f"budget {entry['name']!r}"
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{source}: {label} is not a table")
        try:
            budgets.append(Budget.model_validate(dict(entry)))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            raise ConfigurationError(
                f"{source}: {label}: {where + ': ' if where else ''}{message}"
            ) from None
    names = [budget.name for budget in budgets]
    for name in names:
        if names.count(name) > 1:
            raise ConfigurationError(f"{source}: two budgets are named {name!r}: names must differ")
    return budgets


def _day(at: datetime) -> tuple[datetime, datetime]:
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


@dataclass
class BudgetTracker:
    """The budgets of one run, as its usage arrives.

    Args:
        budgets: the configured budgets (those out of the run's scope are ignored).
        run: the run document.
        channels: where crossing alerts go.
    """

    budgets: Sequence[Budget]
    run: Document
    channels: Channels = field(default_factory=Channels)
    _spent: dict[str, float] = field(default_factory=dict)
    _period: dict[str, str] = field(default_factory=dict)
    _fired: set[str] = field(default_factory=set)
    _loaded: bool = False
    _loading: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.budgets = [budget for budget in self.budgets if budget.applies(self.run)]

    async def _load(self, service: MetricsStorageService | None, at: datetime) -> None:
        """What each day budget's day already spent, in the store (this run's stored usage too)."""
        for budget in self.budgets:
            if budget.per == "run":
                self._period[budget.name] = str(self.run.get("evaluation_run_id"))
                self._spent[budget.name] = 0.0
                continue
            start, end = _day(at)
            self._period[budget.name] = start.strftime("%Y-%m-%d")
            spent = 0.0
            if service is not None:
                rows = await service.get_usage_totals(
                    "day",
                    since=start,
                    until=end,
                    branch=budget.branch,
                    environment=budget.environment,
                    suite=budget.suite,
                )
                spent = sum(row["cost"] or 0.0 for row in rows)
            self._spent[budget.name] = spent

    async def add(
        self, service: MetricsStorageService | None, cost: float | None, at: datetime
    ) -> BudgetStatus:
        """Add one record's cost; fire what it crossed; the worst status now.

        Never raises: a store that cannot be read or written leaves budgets counting
        this run only, with one warning.
        """
        if not self.budgets:
            return "ok"
        async with self._loading:  # concurrent first records wait for one load
            if not self._loaded:
                try:
                    await self._load(service, at)
                except Exception as exc:
                    log.warning(
                        "evalstore: budgets count this run only (store unreadable: %s)", exc
                    )
                    for budget in self.budgets:
                        self._spent.setdefault(budget.name, 0.0)
                        self._period.setdefault(budget.name, at.strftime("%Y-%m-%d"))
                self._loaded = True
        worst: BudgetStatus = "ok"
        for budget in self.budgets:
            if budget.per == "day" and self._period[budget.name] != at.strftime("%Y-%m-%d"):
                self._period[budget.name] = at.strftime("%Y-%m-%d")  # a run across midnight
                self._spent[budget.name] = 0.0
            self._spent[budget.name] += cost or 0.0
            status = budget.status(self._spent[budget.name])
            if status != "ok":
                await self._fire(service, budget, status)
            if _SEVERITY[status] > _SEVERITY[worst]:
                worst = status
        return worst

    def spent(self, name: str) -> float:
        """What the budget `name` counts as spent in its current period."""
        return self._spent.get(name, 0.0)

    async def _fire(
        self, service: MetricsStorageService | None, budget: Budget, status: BudgetStatus
    ) -> None:
        levels = ["warning"] if status == "warning" else ["warning", "exceeded"]
        for level in levels:
            if level == "warning" and budget.warning is None:
                continue
            key = f"budget|{budget.name}|{self._period[budget.name]}|{level}"
            if key in self._fired:
                continue
            self._fired.add(key)
            try:
                if service is not None and await service.get_latest_alert(key) is not None:
                    continue  # another run of the period crossed it already
                alert = self._alert(budget, level, key)
                if service is not None:
                    await service.save_alert(alert)
            except Exception as exc:
                log.warning("evalstore: a budget alert could not be stored: %s", exc)
                alert = self._alert(budget, level, key)
            self.channels.send([alert])

    def _alert(self, budget: Budget, level: str, key: str) -> Document:
        amount = budget.limit if level == "exceeded" else budget.warning
        spent = self._spent[budget.name]
        period = "this run" if budget.per == "run" else f"on {self._period[budget.name]}"
        word = "limit" if level == "exceeded" else "warning amount"
        now = utcnow()
        return {
            "_id": ObjectId(),
            "key": key,
            "rule": budget.name,
            "level": "error" if level == "exceeded" else "warning",
            "kind": "budget",
            "check": f"budget per {budget.per}",
            "metric": "cost",
            "test_id": None,
            "step": None,
            "value": spent,
            "threshold": amount,
            "baseline": None,
            "statistic": {},
            "message": f"cost {period} is ${spent:.4f}, at or over its {word} ${amount:.2f}",
            "state": "firing",
            "acknowledged": False,
            "evaluation_run_id": self.run["_id"],
            "run": self.run.get("evaluation_run_id"),
            "suite": self.run.get("suite"),
            "environment": self.run.get("environment"),
            "git_branch": self.run.get("git_branch"),
            "fired_at": now,
            "last_seen_at": now,
            "last_run_started_at": self.run.get("started_at"),
        }

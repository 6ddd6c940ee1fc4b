"""Query filters shared by the history queries: time window, environment, branch, tags, test.

Every history query is bounded by a time window (by default the last 30 days),
so its cost does not grow with the age of the database. On `evaluation_runs`
the window applies to `started_at`; on `test_runs` to `finished_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict

from bson import ObjectId

from evalstore.errors import InvalidDataError
from evalstore.models import check_tags, check_text, to_utc, utcnow

TagsMatch = Literal["any", "all"]
DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 36525
"""A century: the longest window or age evalstore accepts (longer ones overflow dates)."""

RUN_LOOKUP_SLACK = timedelta(days=1)
"""How far before the window a run may have started and still count for test-run queries.

Test runs carry no environment, branch or tags; with those filters a test-run
query first looks up the matching evaluation runs. A run that started just
before the window can have tests that finished inside it, so the lookup
reaches this much earlier (runs are assumed to last less than a day).
"""


class WindowKwargs(TypedDict, total=False):
    """The keyword filters every history query takes, except experiment tags."""

    since: datetime | None
    until: datetime | None
    environment: str | None
    branch: str | None
    suite: str | None
    window_days: float


class FilterKwargs(WindowKwargs, total=False):
    """The keyword filters of a history query (`since`, `until`, ..., `tags`, `tags_match`)."""

    tags: Sequence[str]
    tags_match: TagsMatch


@dataclass(frozen=True)
class RunFilters:
    """Which evaluation runs (and test runs) a history query looks at.

    Without `since`, the window is the last `window_days` days before `until`
    (or now). `since` is inclusive and `until` exclusive. `test_id` only
    applies to queries over `test_runs`.
    """

    since: datetime | None = None
    until: datetime | None = None
    environment: str | None = None
    branch: str | None = None
    suite: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    tags_match: TagsMatch = "any"
    window_days: float = DEFAULT_WINDOW_DAYS
    test_id: str | None = None

    def __post_init__(self) -> None:
        if self.tags_match not in ("any", "all"):
            raise InvalidDataError(f"tags_match must be 'any' or 'all', got {self.tags_match!r}")
        if (
            isinstance(self.window_days, bool)
            or not isinstance(self.window_days, int | float)
            or not 0 < self.window_days <= MAX_WINDOW_DAYS
        ):
            raise InvalidDataError(
                f"window_days must be positive and at most {MAX_WINDOW_DAYS}, "
                f"got {self.window_days!r}"
            )
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise InvalidDataError(f"{name} must be a datetime, got {value!r}")
        if self.since and self.until and to_utc(self.since) > to_utc(self.until):
            raise InvalidDataError("since is after until")
        if any(not isinstance(tag, str) or not tag for tag in self.tags):
            raise InvalidDataError(f"tags must be non-empty strings, got {list(self.tags)!r}")
        for name in ("environment", "branch", "suite", "test_id"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, name)

    @classmethod
    def of(
        cls,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        environment: str | None = None,
        branch: str | None = None,
        suite: str | None = None,
        tags: Sequence[str] = (),
        tags_match: TagsMatch = "any",
        window_days: float = DEFAULT_WINDOW_DAYS,
        test_id: str | None = None,
    ) -> RunFilters:
        """Filters from the keyword arguments of a service method (a lone tag string is a tag)."""
        tags = check_tags(tags, "tags")
        return cls(
            since=since,
            until=until,
            environment=environment,
            branch=branch,
            suite=suite,
            tags=tuple(tags),
            tags_match=tags_match,
            window_days=window_days,
            test_id=test_id,
        )

    @property
    def selects_runs(self) -> bool:
        """True when a filter (environment, branch, suite, tags) needs the runs' fields."""
        return bool(self.environment or self.branch or self.suite or self.tags)

    def bounds(self, now: datetime | None = None) -> tuple[datetime, datetime | None]:
        """The (inclusive lower, exclusive upper) time bounds of the window."""
        until = to_utc(self.until) if self.until else None
        if self.since:
            return to_utc(self.since), until
        return (until or now or utcnow()) - timedelta(days=self.window_days), until

    def _window(self, now: datetime | None, earlier: timedelta = timedelta(0)) -> dict[str, Any]:
        """`{"$gte": since, "$lt": until}` of the window, its start moved `earlier` back.

        Without an end (`until`), there is no `$lt`.
        """
        since, until = self.bounds(now)
        window: dict[str, Any] = {"$gte": since - earlier}
        if until:
            window["$lt"] = until
        return window

    def _run_match(self, window: dict[str, Any]) -> dict[str, Any]:
        query: dict[str, Any] = {"started_at": window}
        if self.environment:
            query["environment"] = self.environment
        if self.branch:
            query["git_branch"] = self.branch
        if self.suite:
            query["suite"] = self.suite
        if self.tags:
            query["experiment_tags"] = {
                "$in" if self.tags_match == "any" else "$all": list(self.tags)
            }
        return query

    def match(self, now: datetime | None = None) -> dict[str, Any]:
        """The `$match` document on `evaluation_runs` (prefix-free field names)."""
        return self._run_match(self._window(now))

    def run_lookup_match(self, now: datetime | None = None) -> dict[str, Any]:
        """The `$match` on `evaluation_runs` that selects the runs whose tests a query reads.

        It is `match()` with the window's start moved `RUN_LOOKUP_SLACK` earlier.
        """
        return self._run_match(self._window(now, earlier=RUN_LOOKUP_SLACK))

    def test_match(
        self, evaluation_run_oids: Sequence[ObjectId] | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """The `$match` document on `test_runs`: the test id, `finished_at` in the window,
        and, when given, only the test runs of these evaluation runs.
        """
        query: dict[str, Any] = {}
        if self.test_id is not None:
            query["test_id"] = self.test_id
        query["finished_at"] = self._window(now)
        if evaluation_run_oids is not None:
            query["evaluation_run_id"] = {"$in": list(evaluation_run_oids)}
        return query

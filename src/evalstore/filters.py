"""Query filters shared by the history queries: time window, environment, branch, tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from evalstore.errors import InvalidDataError
from evalstore.models import to_utc, utcnow

TagsMatch = Literal["any", "all"]
DEFAULT_WINDOW_DAYS = 30


@dataclass(frozen=True)
class RunFilters:
    """Which evaluation runs a history query looks at.

    Without `since`, the window is the last `window_days` days before `until`
    (or now), so a query's cost does not grow with the age of the database.
    """

    since: datetime | None = None
    until: datetime | None = None
    environment: str | None = None
    branch: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    tags_match: TagsMatch = "any"
    window_days: float = DEFAULT_WINDOW_DAYS

    def __post_init__(self) -> None:
        if self.tags_match not in ("any", "all"):
            raise InvalidDataError(f"tags_match must be 'any' or 'all', got {self.tags_match!r}")
        if not self.window_days > 0:
            raise InvalidDataError(f"window_days must be positive, got {self.window_days!r}")
        if self.since and self.until and to_utc(self.since) > to_utc(self.until):
            raise InvalidDataError("since is after until")

    def bounds(self, now: datetime | None = None) -> tuple[datetime, datetime | None]:
        """The (inclusive lower, exclusive upper) time bounds of the window."""
        until = to_utc(self.until) if self.until else None
        if self.since:
            return to_utc(self.since), until
        return (until or now or utcnow()) - timedelta(days=self.window_days), until

    def match(self, time_field: str = "started_at", now: datetime | None = None) -> dict[str, Any]:
        """The `$match` document on `evaluation_runs` (prefix-free field names)."""
        since, until = self.bounds(now)
        window: dict[str, Any] = {"$gte": since}
        if until:
            window["$lt"] = until
        query: dict[str, Any] = {time_field: window}
        if self.environment:
            query["environment"] = self.environment
        if self.branch:
            query["git_branch"] = self.branch
        if self.tags:
            query["experiment_tags"] = {
                "$in" if self.tags_match == "any" else "$all": list(self.tags)
            }
        return query

"""History analysis: trends and the other questions asked of many runs.

`AnalysisQueries` is mixed into `MetricsStorageService`; its methods run
server-side aggregation pipelines from `evalstore.pipelines`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from evalstore.client import MongoDBClient
from evalstore.errors import InvalidDataError
from evalstore.filters import RunFilters, TagsMatch
from evalstore.models import check_key
from evalstore.pipelines import Period, metric_trend_pipeline

Document = dict[str, Any]


class AnalysisQueries:
    """Queries over the history of many runs (mixed into `MetricsStorageService`)."""

    client: MongoDBClient

    async def _ready(self) -> MongoDBClient:
        raise NotImplementedError

    async def get_metric_trend(
        self,
        metric: str,
        by: Period = "day",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        environment: str | None = None,
        branch: str | None = None,
        tags: Sequence[str] = (),
        tags_match: TagsMatch = "any",
        window_days: float = 30,
    ) -> list[Document]:
        """Mean of one run metric per day or ISO week: `[{period, mean, runs}]`, oldest first.

        `metric="score"` follows the run score; any other name follows
        `metrics.<name>`. Runs that did not measure the metric are left out.
        """
        if by not in ("day", "week"):
            raise InvalidDataError(f"by must be 'day' or 'week', got {by!r}")
        filters = RunFilters(
            since=since,
            until=until,
            environment=environment,
            branch=branch,
            tags=tuple(tags),
            tags_match=tags_match,
            window_days=window_days,
        )
        try:
            field = "score" if metric == "score" else f"metrics.{check_key(metric, 'metric')}"
        except ValueError as exc:
            raise InvalidDataError(str(exc)) from None
        client = await self._ready()
        with client.errors("compute a metric trend"):
            rows = await client.evaluation_runs.aggregate(
                metric_trend_pipeline(field, filters.match(), by)
            ).to_list(None)
        return [{"period": r["_id"], "mean": r["mean"], "runs": r["runs"]} for r in rows]

"""History analysis: the questions asked of many runs.

`AnalysisQueries` is mixed into `MetricsStorageService`. It gathers one small
mixin per topic; each runs server-side aggregation pipelines from
`evalstore.analysis.pipelines` (and `evalstore.analysis.pipelines`) and returns plain
dicts (typed in `evalstore.analysis.types`):

* trends (`analysis_trends`): `get_metric_trend`, `get_score_trend`, `get_test_trend`;
* per-test statistics and flaky tests (`analysis_stats`): `get_test_stats`, `get_flaky_tests`;
* configurations (`analysis_configs`): `compare_configurations`, `diff_configurations`;
* run comparison (`comparison`): `compare_runs`;
* experiments (`analysis_experiments`): `compare_experiments`;
* retention (`retention`): `prune`.

Every query over history takes the filters `since`, `until`, `environment`,
`branch`, `tags`, `tags_match` and `window_days` (default 30 days), and every
query's filter and sort are served by a declared index
(`index_coverage`).
"""

from __future__ import annotations

from evalstore.analysis.comparison import ComparisonQueries
from evalstore.analysis.configs import ConfigQueries
from evalstore.analysis.experiments import ExperimentQueries
from evalstore.analysis.retention import RetentionQueries
from evalstore.analysis.stats import PerTestQueries
from evalstore.analysis.trends import TrendQueries


class AnalysisQueries(
    TrendQueries,
    PerTestQueries,
    ConfigQueries,
    ComparisonQueries,
    ExperimentQueries,
    RetentionQueries,
):
    """Queries over the history of many runs (mixed into `MetricsStorageService`)."""

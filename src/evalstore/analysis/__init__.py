"""History analysis: the questions asked of many runs, one module per topic.

Each module holds plain async functions taking a `History` (`base.py`: the store,
a run by id, the rows of a pipeline); `MetricsStorageService` calls them:

* `trends`: `get_metric_trend`, `get_score_trend`, `get_test_trend`;
* `stats`: `get_test_stats`, `get_flaky_tests`;
* `configs`: `compare_configurations`, `diff_configurations`;
* `comparison`: `compare_runs`;
* `experiments`: `compare_experiments`;
* `retention`: `prune`.

The server-side part of each question is a pipeline in `pipelines.py` (pure
functions); what the embedded backend cannot compute (standard deviations, flip
rates, rounding) is Python after it, written once. `filters.py` builds the
window and run filters every query takes (`since`, `until`, `environment`,
`branch`, `tags`, `tags_match`, `window_days`, default 30 days), and
`types.py` types the rows returned. The test suite checks that every query's
filter and sort are served by a declared index (tests/analysis/index_coverage.py).
"""

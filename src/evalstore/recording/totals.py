"""Run aggregates kept in memory as results are recorded.

The server computes a run's aggregates from its stored test runs (see
`pipelines.run_aggregates_pipeline`). These running totals give the same numbers
where no server does: with storage disabled, and when MongoDB is still away at
finish (the journal then holds the results until `evalstore sync`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunTotals:
    """Counts, score and per-metric means of the test runs added so far."""

    num_tests: int = 0
    num_passed: int = 0
    num_failed: int = 0
    num_skipped: int = 0
    num_errors: int = 0
    _score_sum: float = 0.0
    _scored: int = 0
    _metric_sums: dict[str, float] = field(default_factory=dict)
    _metric_counts: dict[str, int] = field(default_factory=dict)

    def add(self, test_run: Mapping[str, Any]) -> None:
        """Count one test run document (as `record_test` builds it)."""
        status = test_run["status"]
        self.num_tests += 1
        self.num_passed += status == "passed"
        self.num_failed += status in ("failed", "error")
        self.num_skipped += status == "skipped"
        self.num_errors += status == "error"
        if test_run.get("score") is not None:
            self._score_sum += test_run["score"]
            self._scored += 1
        for name, metric in (test_run.get("metrics") or {}).items():
            self._metric_sums[name] = self._metric_sums.get(name, 0.0) + metric["score"]
            self._metric_counts[name] = self._metric_counts.get(name, 0) + 1

    def as_fields(self) -> dict[str, Any]:
        """The aggregate fields of an `evaluation_runs` document."""
        return {
            "num_tests": self.num_tests,
            "num_passed": self.num_passed,
            "num_failed": self.num_failed,
            "num_skipped": self.num_skipped,
            "num_errors": self.num_errors,
            "score": self._score_sum / self._scored if self._scored else None,
            "metrics": {
                name: self._metric_sums[name] / self._metric_counts[name]
                for name in sorted(self._metric_sums)
            },
        }

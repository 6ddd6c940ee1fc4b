"""`/metrics`: the Prometheus exposition of the newest finished run of each label set.

Parsed with prometheus_client's own parser. In `web_history`'s table the label sets
(branch, environment, configuration) are main/dev (newest finished: `broken`, which
failed, at 55; `live` is still running and left out), main/prod (`latest`, 65) and
feature-x/stage (`tweak`, 75).
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from web_history import day


def scrape(site) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each family of `/metrics`: its samples, labels -> value."""
    answer = site.http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        family.name: {
            tuple(sorted(sample.labels.items())): sample.value for sample in family.samples
        }
        for family in text_string_to_metric_families(answer.text)
    }


def labels(site, run: str, **extra: str) -> tuple[tuple[str, str], ...]:
    document = site.recorded.runs[run]
    found = {
        "branch": document["git_branch"],
        "environment": document["environment"],
        "configuration": document["system_info_hash"][:12],
        "suite": "",
        **extra,
    }
    return tuple(sorted(found.items()))


def test_metrics_has_the_score_of_the_newest_finished_run_of_each_label_set(site) -> None:
    families = scrape(site)
    assert families["evalstore_run_score"] == {
        labels(site, "latest"): 65.0,
        labels(site, "broken"): 55.0,
        labels(site, "tweak"): 75.0,
    }
    assert families["evalstore_run_duration_seconds"][labels(site, "latest")] == 3600.0


def test_metrics_counts_the_tests_of_the_newest_run_by_status(site) -> None:
    tests = scrape(site)["evalstore_run_tests"]
    assert {
        status: tests[labels(site, "latest", status=status)]
        for status in ("passed", "failed", "skipped", "error")
    } == {"passed": 2.0, "failed": 2.0, "skipped": 1.0, "error": 0.0}


def test_metrics_last_success_is_the_newest_completed_run(site) -> None:
    success = scrape(site)["evalstore_run_last_success_timestamp_seconds"]
    # main/dev: `broken` failed, so its last success is `second`, which finished at 13:00
    assert success[labels(site, "broken")] == (day(4) + timedelta(hours=1)).timestamp()
    assert success[labels(site, "tweak")] == (day(3) + timedelta(hours=1)).timestamp()

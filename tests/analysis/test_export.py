"""Exports (issue 14.4): every kind as CSV, JSON and NDJSON, checked value by value, in pages."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import Result, at, record_run
from bson import ObjectId

from evalstore import (
    ConfigurationError,
    EvalstoreError,
    InvalidDataError,
    MetricsStorageService,
    evaluation_run,
)
from evalstore.analysis import export
from evalstore.analysis.export import Export, columns_of


async def two_runs(service: MetricsStorageService) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two runs: three tests with metrics `wer` and `bleu` on dev, one with `wer` on prod."""
    first = await record_run(
        service,
        at(1),
        [
            Result("a", "passed", 80.0, {"wer": 70.0, "bleu": 90.0}),
            Result("b", "failed", 20.0, {"wer": 10.0, "bleu": 30.0}),
            Result("c", "skipped"),
        ],
        tags=["baseline"],
    )
    second = await record_run(
        service, at(5), [Result("a", "passed", 60.0, {"wer": 60.0})], environment="prod"
    )
    return first, second


async def csv_rows(
    service: MetricsStorageService, kind: str, page_size: int = 1000, **filters: Any
) -> list[dict[str, str]]:
    stream = io.StringIO()
    written = await Export(service.client, kind, filters, page_size=page_size).write(  # type: ignore[arg-type]
        stream, "csv"
    )
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert written == len(rows)
    return rows


async def json_docs(
    service: MetricsStorageService, kind: str, fmt: str = "json", **filters: Any
) -> list[dict[str, Any]]:
    stream = io.StringIO()
    await Export(service.client, kind, filters).write(stream, fmt)  # type: ignore[arg-type]
    if fmt == "json":
        docs: list[dict[str, Any]] = json.loads(stream.getvalue())
        return docs
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_runs_csv_value_by_value(service: MetricsStorageService) -> None:
    first, second = await two_runs(service)
    rows = await csv_rows(service, "runs")
    assert list(rows[0]) == [c.name for c in columns_of("runs", ["bleu", "wer"])]
    assert list(rows[0])[-2:] == ["metrics.bleu", "metrics.wer"]
    for row, run in zip(rows, [first, second], strict=True):
        stored = await service.get_evaluation_run(run["evaluation_run_id"])
        assert stored is not None
        assert row["_id"] == str(stored["_id"])
        assert row["evaluation_run_id"] == stored["evaluation_run_id"]
        assert row["status"] == "completed"
        assert row["started_at"] == iso(stored["started_at"]) == iso(run["started_at"])
        assert row["finished_at"] == iso(stored["finished_at"])
        assert row["environment"] == stored["environment"]
        assert row["experiment_tags"] == json.dumps(
            stored["experiment_tags"], separators=(",", ":")
        )
        assert row["system_info_hash"] == stored["system_info_hash"]
        assert json.loads(row["system_information.config"]) == {"model": "default"}
        assert row["num_tests"] == str(stored["num_tests"])
        assert row["num_passed"] == str(stored["num_passed"])
        assert row["score"] == repr(stored["score"])
        assert row["usage.cost"] == ""  # no usage recorded
    assert rows[0]["started_at"] == "2025-03-01T10:00:00Z"
    assert (rows[0]["num_tests"], rows[0]["num_failed"], rows[0]["num_skipped"]) == ("3", "1", "1")
    assert (float(rows[0]["metrics.wer"]), float(rows[0]["metrics.bleu"])) == (40.0, 60.0)
    assert (float(rows[1]["metrics.wer"]), rows[1]["metrics.bleu"]) == (60.0, "")
    assert float(rows[0]["score"]) == 50.0
    assert rows[0]["experiment_tags"] == '["baseline"]'


async def test_tests_csv_flattens_each_metric(service: MetricsStorageService) -> None:
    first, second = await two_runs(service)
    rows = await csv_rows(service, "tests")
    header = list(rows[0])
    assert header[-8:] == [
        "metrics.bleu.score",
        "metrics.bleu.passed",
        "metrics.bleu.threshold",
        "metrics.bleu.unit",
        "metrics.wer.score",
        "metrics.wer.passed",
        "metrics.wer.threshold",
        "metrics.wer.unit",
    ]
    stored = await service.get_test_runs(first["_id"]) + await service.get_test_runs(second["_id"])
    stored.sort(key=lambda t: t["_id"])
    assert len(rows) == len(stored) == 4
    for row, test in zip(rows, stored, strict=True):
        assert row["_id"] == str(test["_id"])
        assert row["evaluation_run_id"] == str(test["evaluation_run_id"])
        expected_run = first if test["evaluation_run_id"] == first["_id"] else second
        assert row["run"] == expected_run["evaluation_run_id"]
        assert row["test_id"] == test["test_id"]
        assert row["test_run_id"] == test["test_run_id"]
        assert row["status"] == test["status"]
        assert row["passed"] == ("true" if test["passed"] else "false")
        assert row["score"] == ("" if test["score"] is None else repr(test["score"]))
        assert row["finished_at"] == iso(test["finished_at"])
        assert row["duration_ms"] == repr(test["duration_ms"])
        for name in ("wer", "bleu"):
            metric = test["metrics"].get(name)
            assert row[f"metrics.{name}.score"] == ("" if metric is None else repr(metric["score"]))
            assert row[f"metrics.{name}.passed"] == ""  # not given
    assert [(r["test_id"], r["metrics.wer.score"], r["metrics.bleu.score"]) for r in rows] == [
        ("a", "70.0", "90.0"),
        ("b", "10.0", "30.0"),
        ("c", "", ""),
        ("a", "60.0", ""),
    ]
    assert rows[0]["finished_at"] == "2025-03-01T10:01:00Z"


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_json_keeps_documents_whole(service: MetricsStorageService, fmt: str) -> None:
    first, _ = await two_runs(service)
    docs = await json_docs(service, "tests", fmt, run=first["evaluation_run_id"])
    stored = sorted(await service.get_test_runs(first["_id"]), key=lambda t: t["_id"])
    assert len(docs) == 3
    for doc, test in zip(docs, stored, strict=True):
        expected = export.plain(test)
        expected["run"] = first["evaluation_run_id"]
        assert doc == expected
        assert doc["metrics"] == export.plain(test["metrics"])  # nested, as stored
        assert doc["evaluation_run_id"] == str(first["_id"])
        assert doc["finished_at"].endswith("Z")
    assert list(docs[0])[list(docs[0]).index("evaluation_run_id") + 1] == "run"
    runs = await json_docs(service, "runs", fmt)
    assert [r["metrics"] for r in runs] == [{"wer": 40.0, "bleu": 60.0}, {"wer": 60.0}]


async def test_empty_exports(service: MetricsStorageService) -> None:
    for fmt, expected in (("json", "[]\n"), ("ndjson", "")):
        stream = io.StringIO()
        assert await Export(service.client, "alerts").write(stream, fmt) == 0  # type: ignore[arg-type]
        assert stream.getvalue() == expected
    stream = io.StringIO()
    await Export(service.client, "runs").write(stream, "csv")
    assert stream.getvalue().splitlines() == [",".join(c.name for c in columns_of("runs"))]


class CountingReads:
    """Records every `read` the export makes: collection and limit."""

    def __init__(self, service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int, Any]] = []
        original = service.client.read

        async def read(collection: str, query: Any, **kwargs: Any) -> list[dict[str, Any]]:
            self.calls.append((collection, kwargs.get("limit", 0), kwargs.get("sort")))
            return await original(collection, query, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(service.client, "read", read)


async def test_pages_cover_every_row_once_with_a_bounded_read(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await two_runs(service)
    everything = await csv_rows(service, "tests")
    reads = CountingReads(service, monkeypatch)
    paged = await csv_rows(service, "tests", page_size=3)
    assert paged == everything  # same rows, same order, none twice
    assert len({row["_id"] for row in paged}) == 4
    assert [row["_id"] for row in paged] == sorted(row["_id"] for row in paged)
    # every read is bounded and in `_id` order: the metric-name pass and the rows, 2 pages each
    pages = [call for call in reads.calls if call[0] == "test_runs"]
    assert pages == [("test_runs", 3, [("_id", 1)])] * 4
    # a page's runs are named in one read, when not known yet: once per run here
    assert [c for c, _, _ in reads.calls].count("evaluation_runs") == 2
    single = await csv_rows(service, "tests", page_size=1)
    assert single == everything


async def test_series_rows_name_their_run(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await two_runs(service)
    points = []
    for run, offset in ((first, 0.0), (second, 1.0)):
        for step in range(3):
            for split, value in (("train", 1.0 / (step + 1)), ("eval", 2.0 / (step + 1))):
                points.append(
                    {
                        "_id": ObjectId(),
                        "evaluation_run_id": run["_id"],
                        "metric": "loss",
                        "split": split,
                        "step": step,
                        "value": value + offset,
                        "recorded_at": at(7, second=step),
                    }
                )
    await service.store_points(points)
    # run after run, then by metric, split and step
    points.sort(key=lambda p: (p["evaluation_run_id"] != first["_id"], p["split"], p["step"]))
    reads = CountingReads(service, monkeypatch)
    rows = await csv_rows(service, "series", page_size=2)
    assert list(rows[0]) == ["run", "metric", "split", "step", "value", "recorded_at"]
    assert [tuple(row.values()) for row in rows] == [
        (
            (first if p["evaluation_run_id"] == first["_id"] else second)["evaluation_run_id"],
            "loss",
            p["split"],
            str(p["step"]),
            repr(p["value"]),
            iso(p["recorded_at"]),
        )
        for p in points
    ]
    # the runs are read once, in pages (naming them); each series in pages of 2 steps
    assert reads.calls == [
        ("evaluation_runs", 2, [("_id", 1)]),  # both runs
        *[("metric_points", 2, [("step", 1)])] * 8,  # each: eval 2 + 1, train 2 + 1
        ("evaluation_runs", 2, [("_id", 1)]),  # no third run
    ]
    one = await csv_rows(service, "series", run=second["evaluation_run_id"])
    assert {row["run"] for row in one} == {second["evaluation_run_id"]}
    assert len(one) == 6
    docs = await json_docs(service, "series", "ndjson", run="latest")
    assert [d["value"] for d in docs] == [p["value"] for p in points[6:]]
    assert set(docs[0]) == {
        "_id",
        "evaluation_run_id",
        "run",
        "metric",
        "split",
        "step",
        "value",
        "recorded_at",
    }


async def test_usage_and_alerts(service: MetricsStorageService) -> None:
    async with evaluation_run(service, config={"model": "m"}, environment="stage") as run:
        await run.record_test("t1", passed=True, score=90.0)
        await run.record_usage("m-large", input_tokens=1200, output_tokens=300, cost=0.25)
        await run.record_usage("m-small", input_tokens=10, cache_read_tokens=4, cost=0.5)
    document = run.document
    usage = await csv_rows(service, "usage")
    stored = sorted(await service.get_usage(document["_id"]), key=lambda u: u["_id"])
    assert len(usage) == 2
    for row, record in zip(usage, stored, strict=True):
        assert row["usage_id"] == record["usage_id"]
        assert row["run"] == document["evaluation_run_id"]
        assert row["evaluation_run_id"] == str(document["_id"])
        assert row["model"] == record["model"]
        assert row["input_tokens"] == str(record["input_tokens"])
        assert row["output_tokens"] == str(record["output_tokens"])
        assert row["cache_read_tokens"] == str(record["cache_read_tokens"])
        assert row["cost"] == repr(record["cost"])
        assert row["cost_source"] == "reported"
        assert row["recorded_at"] == iso(record["recorded_at"])
        assert row["environment"] == "stage"
    assert [(r["model"], r["cost"]) for r in usage] == [("m-large", "0.25"), ("m-small", "0.5")]
    runs = await csv_rows(service, "runs")
    assert (runs[0]["usage.cost"], runs[0]["usage.input_tokens"], runs[0]["usage.calls"]) == (
        "0.75",
        "1210",
        "2",
    )

    alert = {
        "_id": ObjectId(),
        "key": "floor||g",
        "rule": "floor",
        "level": "error",
        "kind": "threshold",
        "check": "below",
        "metric": "score",
        "test_id": None,
        "step": None,
        "value": 55.0,
        "threshold": 70.0,
        "baseline": {"mean": 80.0, "std": 2.5, "n": 5},
        "statistic": {"z": -3.5},
        "message": "score 55.0 is below 70.0",
        "state": "firing",
        "acknowledged": False,
        "evaluation_run_id": document["_id"],
        "run": document["evaluation_run_id"],
        "runs": 1,
        "suite": None,
        "environment": "stage",
        "git_branch": "main",
        "fired_at": at(2),
        "last_seen_at": at(2),
    }
    await service.save_alert(alert)
    [row] = await csv_rows(service, "alerts")
    assert row["_id"] == str(alert["_id"])
    assert (row["rule"], row["level"], row["value"], row["threshold"]) == (
        "floor",
        "error",
        "55.0",
        "70.0",
    )
    assert (row["baseline.mean"], row["baseline.std"], row["baseline.n"]) == ("80.0", "2.5", "5")
    assert (row["statistic.z"], row["statistic.change"]) == ("-3.5", "")
    assert (row["acknowledged"], row["test_id"], row["fired_at"]) == (
        "false",
        "",
        "2025-03-02T10:00:00Z",
    )
    assert row["run"] == document["evaluation_run_id"]
    assert await csv_rows(service, "alerts", environment="prod") == []
    assert len(await csv_rows(service, "alerts", branch="main", since=at(2))) == 1
    assert await csv_rows(service, "alerts", until=at(2)) == []


async def test_filters(service: MetricsStorageService) -> None:
    first, second = await two_runs(service)
    assert [r["evaluation_run_id"] for r in await csv_rows(service, "runs", since=at(3))] == [
        second["evaluation_run_id"]
    ]
    assert [r["evaluation_run_id"] for r in await csv_rows(service, "runs", until=at(3))] == [
        first["evaluation_run_id"]
    ]
    assert [r["evaluation_run_id"] for r in await csv_rows(service, "runs", tags=["baseline"])] == [
        first["evaluation_run_id"]
    ]
    # tests of the runs an environment selects (runs read in pages too)
    prod = await csv_rows(service, "tests", page_size=1, environment="prod")
    assert [(r["run"], r["test_id"]) for r in prod] == [(second["evaluation_run_id"], "a")]
    dev = await csv_rows(service, "tests", page_size=2, environment="dev")
    assert [r["test_id"] for r in dev] == ["a", "b", "c"]
    # prod has no bleu: its CSV has no bleu column
    assert "metrics.bleu.score" not in prod[0]
    # the window is on the tests' own time (finished_at)
    late = await csv_rows(service, "tests", since=at(1, minute=2), until=at(2))
    assert [r["test_id"] for r in late] == ["b", "c"]
    assert await csv_rows(service, "tests", environment="lab") == []
    assert [r["test_id"] for r in await csv_rows(service, "tests", run="previous")] == [
        "a",
        "b",
        "c",
    ]
    exported = Export(service.client, "tests", {"environment": "dev"}, page_size=1)
    assert await exported.count() == 3
    assert await Export(service.client, "runs", {"since": at(3)}).count() == 1


@pytest.mark.parametrize(
    ("kind", "filters", "message"),
    [
        ("nope", {}, "kind must be one of runs, tests, series, alerts, usage"),
        ("runs", {"colour": "red"}, "unknown export filter 'colour'"),
        ("runs", {"run": "latest"}, "run selects tests, series and usage; not runs"),
        ("alerts", {"tags": ["x"]}, "tags select runs, tests, series and usage; not alerts"),
        ("runs", {"environment": {"$ne": None}}, "environment must be a non-empty string"),
        ("runs", {"since": at(3), "until": at(1)}, "since is after until"),
    ],
)
async def test_bad_arguments_are_one_clear_error(
    service: MetricsStorageService, kind: str, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidDataError, match=message.replace("$", r"\$")):
        Export(service.client, kind, filters)  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match="page_size must be a positive integer"):
        Export(service.client, "runs", page_size=0)


async def test_a_file_is_written_whole_or_not_at_all(
    service: MetricsStorageService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await two_runs(service)
    target = tmp_path / "tests.json"
    assert await Export(service.client, "tests", page_size=2).write_file(target, "json") == 4
    assert len(json.loads(target.read_text())) == 4
    before = target.read_text()

    original = service.client.read
    calls = 0

    async def failing(collection: str, query: Any, **kwargs: Any) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise EvalstoreError("the store went away")
        return await original(collection, query, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service.client, "read", failing)
    with pytest.raises(EvalstoreError, match="the store went away"):
        await Export(service.client, "tests", page_size=2).write_file(target, "ndjson")
    assert target.read_text() == before  # untouched
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file is gone
    monkeypatch.setattr(service.client, "read", original)

    with pytest.raises(EvalstoreError, match=r"cannot write .*missing/x\.csv"):
        await Export(service.client, "runs").write_file(tmp_path / "missing" / "x.csv", "csv")
    with pytest.raises(EvalstoreError, match="it is a directory"):
        await Export(service.client, "runs").write_file(tmp_path, "csv")
    assert not list(tmp_path.glob("*.tmp"))


async def test_to_dataframe_columns_and_dtypes(service: MetricsStorageService) -> None:
    pd = pytest.importorskip("pandas")
    first, second = await two_runs(service)
    runs = await service.to_dataframe("runs")
    assert list(runs.columns) == [c.name for c in columns_of("runs", ["bleu", "wer"])]
    assert str(runs["started_at"].dtype) == "datetime64[ns, UTC]"
    assert str(runs["num_tests"].dtype) == "Int64"
    assert str(runs["score"].dtype) == "float64"
    assert str(runs["metrics.wer"].dtype) == "float64"
    assert str(runs["git_dirty"].dtype) == "boolean"
    assert str(runs["evaluation_run_id"].dtype) == "string"
    assert runs["started_at"].tolist() == [pd.Timestamp(at(1)), pd.Timestamp(at(5))]
    assert runs["evaluation_run_id"].tolist() == [
        first["evaluation_run_id"],
        second["evaluation_run_id"],
    ]
    assert runs["metrics.wer"].tolist() == [40.0, 60.0]
    assert pd.isna(runs["metrics.bleu"].iloc[1])
    assert runs["experiment_tags"].tolist() == [["baseline"], []]

    tests = await service.to_dataframe("tests", environment="dev")
    assert tests["test_id"].tolist() == ["a", "b", "c"]
    assert tests["metrics.wer.score"].tolist()[:2] == [70.0, 10.0]
    assert str(tests["metrics.wer.score"].dtype) == "float64"
    assert str(tests["passed"].dtype) == "boolean"
    assert tests["passed"].tolist() == [True, False, False]
    assert str(tests["finished_at"].dtype) == "datetime64[ns, UTC]"
    assert tests["run"].tolist() == [first["evaluation_run_id"]] * 3

    empty = await export.to_dataframe(service.client, "series")
    assert list(empty.columns) == ["run", "metric", "split", "step", "value", "recorded_at"]
    assert len(empty) == 0
    assert str(empty["recorded_at"].dtype) == "datetime64[ns, UTC]"
    assert str(empty["step"].dtype) == "Int64"


async def test_to_dataframe_without_pandas(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ConfigurationError) as raised:
        await service.to_dataframe("runs")
    assert str(raised.value) == "to_dataframe needs pandas: pip install 'evalstore[pandas]'"


async def test_dates_are_utc_iso_with_milliseconds(service: MetricsStorageService) -> None:
    await record_run(service, at(1) + timedelta(milliseconds=250), [Result("a", "passed", 1.0)])
    [row] = await csv_rows(service, "runs")
    assert row["started_at"] == "2025-03-01T10:00:00.250000Z"

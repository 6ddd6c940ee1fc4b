"""Item 4: runs grouped by configuration, and the diff of two configurations.

Configuration A = {asr: {model: small, beam: 1}, vad: silero} and B = {asr:
{model: small, beam: 5}, lang: es}; each run has one test whose score and
metrics become the run's:

| run | started     | config | score | wer | completeness | status    |
|-----|-------------|--------|-------|-----|--------------|-----------|
| A1  | 1st 10:00   | A      | 60    | 50  | 80           | completed |
| A2  | 2nd 10:00   | A      | 80    | 70  | (missing)    | completed |
| B1  | 3rd 10:00   | B      | 90    | 88  | 96           | completed |
| A3  | 4th 10:00   | A      | -     | -   | -            | running   |
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from analysis_helpers import Result, at, invoke, record_run, record_running_run

from evalstore import EvaluationRun, InvalidDataError, MetricsStorageService, RunNotFoundError
from evalstore.analysis.configs import config_labels, diff_snapshots, flatten

MARCH = {"since": at(1, 0), "until": at(1, 0, month=4)}
CONFIG_A = {"asr": {"model": "small", "beam": 1}, "vad": "silero"}
CONFIG_B = {"asr": {"model": "small", "beam": 5}, "lang": "es"}


@pytest.fixture
async def hashes(service: MetricsStorageService) -> dict[str, str]:
    a1 = await record_run(
        service,
        at(1),
        [Result("t", "passed", 60, {"wer": 50, "completeness": 80})],
        config=CONFIG_A,
        tags=["baseline"],
    )
    await record_run(
        service, at(2), [Result("t", "passed", 80, {"wer": 70})], config=CONFIG_A, tags=["baseline"]
    )
    b1 = await record_run(
        service,
        at(3),
        [Result("t", "passed", 90, {"wer": 88, "completeness": 96})],
        config=CONFIG_B,
        environment="prod",
    )
    await record_running_run(service, at(4), config=CONFIG_A)
    assert a1["system_info_hash"] != b1["system_info_hash"]
    return {"a": a1["system_info_hash"], "b": b1["system_info_hash"]}


async def test_runs_per_configuration(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    # Most recently seen first; the running A3 is left out.
    assert await service.compare_configurations(**MARCH) == [
        {
            "system_info_hash": hashes["b"],
            # What sets it apart from A: the keys whose values differ (A has no lang, B no vad).
            "label": "config.asr.beam=5, config.lang=es, config.vad=-",
            "runs": 1,
            "mean_score": 90.0,
            "metrics": {"completeness": 96.0, "wer": 88.0},
            "first_seen": at(3),
            "last_seen": at(3),
        },
        {
            "system_info_hash": hashes["a"],
            "label": "config.asr.beam=1, config.lang=-, config.vad=silero",
            "runs": 2,
            "mean_score": 70.0,
            "metrics": {"completeness": 80.0, "wer": 60.0},
            "first_seen": at(1),
            "last_seen": at(2),
        },
    ]


async def test_configuration_filters(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    baseline = await service.compare_configurations(tags=["baseline"], **MARCH)
    assert [(c["system_info_hash"], c["runs"]) for c in baseline] == [(hashes["a"], 2)]
    prod = await service.compare_configurations(environment="prod", **MARCH)
    assert [(c["system_info_hash"], c["runs"]) for c in prod] == [(hashes["b"], 1)]
    second = await service.compare_configurations(since=at(2), until=at(3))
    assert [(c["runs"], c["mean_score"], c["metrics"]) for c in second] == [
        (1, 80.0, {"wer": 70.0})
    ]
    assert await service.compare_configurations(tags=["nope"], **MARCH) == []
    # Alone, a configuration has nothing to be told apart from.
    assert [c["label"] for c in baseline] == [""]

    assert await service.compare_configurations() == []


def test_config_labels_show_at_most_three_differing_keys() -> None:
    labels = config_labels(
        {
            "h1": {"m": "gpt-4o", "t": 0.2, "k": [1], "z": 1, "same": True},
            "h2": {"m": "gpt-4o-mini", "t": 0.7, "k": [2], "z": 2, "same": True},
        }
    )
    assert labels == {
        "h1": "k=[1], m=gpt-4o, t=0.2, +1 more",
        "h2": "k=[2], m=gpt-4o-mini, t=0.7, +1 more",
    }


async def test_diff_configurations(service: MetricsStorageService, hashes: dict[str, str]) -> None:
    expected = [
        {"path": "config.asr.beam", "a": 1, "b": 5, "change": "changed"},
        {"path": "config.lang", "a": None, "b": "es", "change": "added"},
        {"path": "config.vad", "a": "silero", "b": None, "change": "removed"},
    ]
    assert await service.diff_configurations(hashes["a"], hashes["b"]) == expected
    # Unique prefixes (as the tables show them) will do, in any case.
    assert await service.diff_configurations(hashes["a"][:12], hashes["b"][:8].upper()) == expected
    assert await service.diff_configurations(hashes["a"], hashes["a"]) == []


async def test_diff_errors(service: MetricsStorageService, hashes: dict[str, str]) -> None:
    with pytest.raises(RunNotFoundError, match=r"^no evaluation run has configuration '0{64}'"):
        await service.diff_configurations("0" * 64, hashes["b"])
    with pytest.raises(InvalidDataError, match=r"^configuration hash must be hex digits"):
        await service.diff_configurations("beam=5", hashes["b"])
    for suffix in ("1", "2"):
        await service.create_evaluation_run(
            EvaluationRun(
                evaluation_run_id=f"twin-{suffix}",
                started_at=at(9),
                system_info_hash="abcd" + suffix * 60,
            )
        )
    with pytest.raises(
        InvalidDataError,
        match=r"^configuration prefix 'abcd' matches 2 configurations: give more digits$",
    ):
        await service.diff_configurations("abcd", hashes["b"])
    assert await service.diff_configurations("abcd1", "abcd2") == []


def test_flatten_and_diff_of_nested_values() -> None:
    assert flatten({"a": {"b": {"c": 1}, "d": []}, "e": {}}) == {"a.b.c": 1, "a.d": [], "e": {}}
    assert diff_snapshots({"x": 1, "l": [1, 2]}, {"x": 1.0, "l": [1, 3]}) == [
        {"path": "l", "a": [1, 2], "b": [1, 3], "change": "changed"},
        # An int and a double are different BSON values.
        {"path": "x", "a": 1, "b": 1.0, "change": "changed"},
    ]


def test_a_key_added_inside_an_empty_mapping_is_one_added_row() -> None:
    assert diff_snapshots({"config": {}}, {"config": {"cache_size": 128}}) == [
        {"path": "config.cache_size", "a": None, "b": 128, "change": "added"}
    ]
    assert diff_snapshots({"config": {"cache_size": 128}}, {"config": {}}) == [
        {"path": "config.cache_size", "a": 128, "b": None, "change": "removed"}
    ]
    assert diff_snapshots({"config": {}}, {"config": {}}) == []


def test_whole_mappings_added_removed_or_replaced() -> None:
    assert diff_snapshots({}, {"cache": {"size": 1, "ttl": {"s": 5}}, "empty": {}}) == [
        {"path": "cache.size", "a": None, "b": 1, "change": "added"},
        {"path": "cache.ttl.s", "a": None, "b": 5, "change": "added"},
        {"path": "empty", "a": None, "b": {}, "change": "added"},
    ]
    assert diff_snapshots({"cache": {"size": 1}}, {"cache": "off"}) == [
        {"path": "cache", "a": {"size": 1}, "b": "off", "change": "changed"}
    ]
    assert diff_snapshots({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == [
        {"path": "a.c", "a": 2, "b": 3, "change": "changed"}
    ]


async def test_configs_cli(service: MetricsStorageService, hashes: dict[str, str]) -> None:
    window = ("--since", "2025-03-01", "--until", "2025-04-01")
    result = await invoke(service, "configs", "list", *window, "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    assert [(r["system_info_hash"], r["runs"], r["mean_score"]) for r in rows] == [
        (hashes["b"], 1, 90.0),
        (hashes["a"], 2, 70.0),
    ]
    assert rows[1]["first_seen"] == "2025-03-01T10:00:00Z"

    table = await invoke(service, "configs", "list", *window)
    assert hashes["a"][:12] in table.stdout
    assert "completeness=80.0 wer=60.0" in table.stdout

    diff = await invoke(service, "configs", "diff", hashes["a"][:12], hashes["b"][:12])
    assert diff.exit_code == 0, diff.output
    cells = [
        [cell.strip() for cell in line.split("│")[1:5]]
        for line in diff.stdout.splitlines()
        if line.startswith("│")
    ]
    assert cells == [
        ["config.asr.beam", "1", "5", "changed"],
        ["config.lang", "-", "es", "added"],
        ["config.vad", "silero", "-", "removed"],
    ]
    same = await invoke(service, "configs", "diff", hashes["a"], hashes["a"])
    assert same.stdout == f"{hashes['a']} and {hashes['a']} have the same system information\n"
    missing = await invoke(service, "configs", "diff", "0" * 8, hashes["a"])
    assert (missing.exit_code, missing.stderr) == (
        1,
        "error: no evaluation run has configuration '00000000': "
        "list them with `evalstore configs list`\n",
    )

"""`record_usage`: priced by hand-checkable tables, journaled, stored once, summed at finish."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import RunClock, at, invoke

from evalstore import (
    ConfigurationError,
    InvalidDataError,
    MetricsStorageService,
    Monitor,
    StorageUnavailableError,
    evaluation_run,
)


def recorder(service: MetricsStorageService, monitor: Monitor | bool = False) -> Any:
    return evaluation_run(service, config={"m": 1}, clock=RunClock(at(1)), monitor=monitor)


async def test_costs_by_hand_two_models_cached_tokens_an_override_and_an_unknown_model(
    service: MetricsStorageService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    async with recorder(service) as run:
        await run.record_test("t1", passed=True, score=90.0)
        await run.record_test("t2", passed=True, score=80.0)
        # 600,000 uncached x $2 + 400,000 cached x $0.5 + 100,000 out x $8 = 1.2 + 0.2 + 0.8
        a = await run.record_usage(
            "acme-small", input_tokens=1_000_000, cache_read_tokens=400_000, output_tokens=100_000
        )
        # the table's gpt-4o, not genai-prices': 500,000 x $1 + 250,000 x $2 = 0.5 + 0.5
        b = await run.record_usage("gpt-4o", input_tokens=500_000, output_tokens=250_000)
        c1 = await run.record_usage("mystery-model", input_tokens=1_000, output_tokens=1_000)
        await run.record_usage("mystery-model", input_tokens=2_000, output_tokens=0, calls=2)
        d = await run.record_usage("acme-small", input_tokens=10, cost=0.3, test_id="t1")
    assert (a.cost, b.cost, c1.cost, d.cost) == (pytest.approx(2.2), pytest.approx(1.0), None, 0.3)
    assert [a.document["cost_source"], c1.document["cost_source"], d.document["cost_source"]] == [
        "computed",
        "unpriced",
        "reported",
    ]
    assert a.document["price"]["input_mtok"] == 2.0
    assert a.document["price"]["cache_read_mtok"] == 0.5
    assert a.document["price"]["source"].startswith("price table")
    assert d.document["price"] is None
    warnings = [r.getMessage() for r in caplog.records if "no price for model" in r.getMessage()]
    assert len(warnings) == 1  # one per model per run
    assert "'mystery-model'" in warnings[0]

    stored = await service.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    usage = stored["usage"]
    assert usage["cost"] == pytest.approx(3.5)  # 2.2 + 1.0 + 0.3; unpriced never counts as 0
    assert usage["unpriced"] == 2
    assert (usage["records"], usage["calls"]) == (5, 6)
    assert usage["input_tokens"] == 1_000_000 + 500_000 + 1_000 + 2_000 + 10
    assert usage["cache_read_tokens"] == 400_000
    assert usage["cost_per_passed_test"] is None  # partly unpriced: $3.5 / 2 would look cheap
    by_model = {row["model"]: row for row in usage["by_model"]}
    assert by_model["acme-small"]["cost"] == pytest.approx(2.5)
    assert by_model["mystery-model"]["cost"] is None
    assert by_model["mystery-model"]["input_tokens"] == 3_000
    records = await service.get_usage(run.evaluation_run_id)
    assert [r["model"] for r in records] == [
        "acme-small",
        "gpt-4o",
        "mystery-model",
        "mystery-model",
        "acme-small",
    ]
    assert records[-1]["test_id"] == "t1"


async def test_usage_inside_record_test_belongs_to_the_test(service: MetricsStorageService) -> None:
    async with recorder(service) as run:
        await run.record_test(
            "t1",
            passed=True,
            usage=[{"model": "acme-small", "input_tokens": 500_000, "output_tokens": 0}],
        )
    [record] = await service.get_usage(run.evaluation_run_id)
    assert (record["test_id"], record["cost"]) == ("t1", pytest.approx(1.0))


async def test_200_concurrent_records_sum_exactly(service: MetricsStorageService) -> None:
    async with recorder(service) as run:
        receipts = await asyncio.gather(
            *(
                run.record_usage("acme-small", input_tokens=1_000 + i, output_tokens=i % 7)
                for i in range(200)
            )
        )
    stored = await service.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    usage = stored["usage"]
    inputs = sum(1_000 + i for i in range(200))  # 219,900
    outputs = sum(i % 7 for i in range(200))
    assert (usage["records"], usage["calls"]) == (200, 200)
    assert (usage["input_tokens"], usage["output_tokens"]) == (inputs, outputs)
    assert usage["cost"] == pytest.approx((inputs * 2.0 + outputs * 8.0) / 1e6)
    assert receipts[-1].run_cost == pytest.approx(usage["cost"])
    assert len(await service.get_usage(run.evaluation_run_id)) == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"input_tokens": 1.5}, "input_tokens"),
        ({"output_tokens": True}, "output_tokens"),
        ({"cost": math.nan}, "cost"),
        ({"cost": -0.1}, "cost"),
        ({"model": ""}, "model"),
        ({"calls": -2}, "calls"),
        ({"input_tokens": 10, "cache_read_tokens": 11}, "cache_read_tokens"),
    ],
)
async def test_bad_input_is_one_line_and_nothing_is_stored(
    service: MetricsStorageService, fields: dict[str, Any], message: str
) -> None:
    async with recorder(service) as run:
        with pytest.raises(InvalidDataError) as error:
            await run.record_usage(**{"model": "acme-small", **fields})
        await run.record_usage("acme-small", input_tokens=1)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert len(await service.get_usage(run.evaluation_run_id)) == 1


async def test_budget_status_goes_ok_warning_exceeded_and_each_level_alerts_once(
    service: MetricsStorageService,
) -> None:
    seen: list[tuple[str, str]] = []
    monitor = Monitor(
        [],
        budgets=[{"name": "run-budget", "per": "run", "warning": 2.0, "limit": 3.0}],
        callbacks=[lambda alert: seen.append((alert["rule"], alert["level"]))],
    )
    statuses = []
    async with recorder(service, monitor=monitor) as run:
        for tokens in (1_000_000, 500_000, 250_000, 500_000, 500_000):  # $2 per million
            receipt = await run.record_usage("acme-small", input_tokens=tokens)
            statuses.append((receipt.run_cost, receipt.status))
    assert statuses == [
        (pytest.approx(2.0), "warning"),
        (pytest.approx(3.0), "exceeded"),
        (pytest.approx(3.5), "exceeded"),
        (pytest.approx(4.5), "exceeded"),
        (pytest.approx(5.5), "exceeded"),
    ]
    assert seen == [("run-budget", "warning"), ("run-budget", "error")]
    alerts = sorted(await service.get_alerts(), key=lambda a: a["level"])
    assert [(a["kind"], a["level"], a["threshold"]) for a in alerts] == [
        ("budget", "error", 3.0),
        ("budget", "warning", 2.0),
    ]


async def test_a_day_budget_counts_earlier_runs_of_the_day_and_fires_once_a_day(
    service: MetricsStorageService,
) -> None:
    budget = {"name": "daily", "per": "day", "warning": 1.0}
    first = Monitor([], budgets=[budget])
    async with recorder(service, monitor=first) as run:
        assert (await run.record_usage("acme-small", input_tokens=400_000)).status == "ok"
    second = Monitor([], budgets=[budget])
    async with recorder(service, monitor=second) as run:
        # today: $0.8 stored by the first run + $0.4 = $1.2
        assert (await run.record_usage("acme-small", input_tokens=200_000)).status == "warning"
    third = Monitor([], budgets=[budget])
    async with recorder(service, monitor=third) as run:
        assert (await run.record_usage("acme-small", input_tokens=1)).status == "warning"
    assert [a["rule"] for a in await service.get_alerts()] == ["daily"]  # once for the day


async def test_cost_by_run_and_model_from_the_cli(service: MetricsStorageService) -> None:
    async with recorder(service) as run:
        await run.record_test("t1", passed=True, score=90.0)
        await run.record_usage("acme-small", input_tokens=1_000_000)
        await run.record_usage("mystery-model", input_tokens=5)
    by_model = await invoke(service, "cost", "--by", "model", "--json")
    assert by_model.exit_code == 0, by_model.output
    rows = {row["model"]: row for row in json.loads(by_model.stdout)}
    assert rows["acme-small"]["cost"] == pytest.approx(2.0)
    assert rows["mystery-model"]["cost"] is None
    table = await invoke(service, "cost")
    assert table.exit_code == 0, table.output
    assert run.evaluation_run_id in table.stdout
    assert "total: $2.0000; 1 record(s) without a price" in table.stdout
    bad = await invoke(service, "cost", "--by", "weekday")
    assert bad.exit_code == 2


KILLED = textwrap.dedent(
    """
    import asyncio, os, sys
    from evalstore import evaluation_run

    async def main():
        run = evaluation_run(config={"m": 1}, monitor=False)
        await run.start()
        await run.record_test("t1", passed=True, score=90.0)
        await run.record_usage("acme-small", input_tokens=1_000_000)
        await run.record_usage("acme-small", input_tokens=500_000, cost=0.25)
        os._exit(9)  # killed: no finish, no flush

    asyncio.run(main())
    """
)


def test_usage_of_a_killed_run_is_stored_by_sync(tmp_path: Path, price_table: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    env = dict(
        os.environ,
        MONGODB_ENABLED="true",
        MONGODB_CONNECTION_STRING=store,
        MONGODB_DATABASE="local",
        EVALSTORE_SPOOL_DIR=str(tmp_path / "spool"),
        EVALSTORE_PRICES=str(price_table),
    )
    killed = subprocess.run([sys.executable, "-c", KILLED], env=env, capture_output=True)
    assert killed.returncode == 9, killed.stderr
    evalstore = str(Path(sys.executable).parent / "evalstore")
    synced = subprocess.run([evalstore, "sync", "--json"], env=env, capture_output=True, text=True)
    assert synced.returncode == 0, synced.stderr
    costs = subprocess.run(
        [evalstore, "cost", "--by", "model", "--json"], env=env, capture_output=True, text=True
    )
    [row] = json.loads(costs.stdout)
    assert (row["model"], row["records"], row["input_tokens"]) == ("acme-small", 2, 1_500_000)
    assert row["cost"] == pytest.approx(2.25)  # 2.0 computed + 0.25 reported


async def test_agent_details_are_kept_bounded_and_first_time_right_is_derived(
    service: MetricsStorageService,
) -> None:
    errors: list[Any] = [ValueError("bad json\nat line 2"), "timeout", *["retry"] * 25]
    async with recorder(service) as run:
        first = await run.record_test(
            "fix_issue[1]",
            passed=True,
            attempts=1,
            tool_calls={"search": 3, "edit": {"count": 2, "failures": 1, "duration_ms": 40}},
        )
        retried = await run.record_test("fix_issue[2]", passed=True, attempts=3, errors=errors)
        plain = await run.record_test("unit_test", passed=True)
        with pytest.raises(InvalidDataError, match=r"^attempts must be a positive integer"):
            await run.record_test("fix_issue[3]", passed=True, attempts=0)
        with pytest.raises(InvalidDataError, match=r"failures is more than its count"):
            await run.record_test(
                "fix_issue[4]", passed=True, tool_calls={"x": {"count": 1, "failures": 2}}
            )
    assert first["agent"] == {
        "attempts": 1,
        "first_time_right": True,
        "tool_calls": [
            {"name": "edit", "count": 2, "failures": 1, "duration_ms": 40.0},
            {"name": "search", "count": 3, "failures": 0, "duration_ms": 0.0},
        ],
        "errors": [],
        "errors_dropped": 0,
    }
    agent = retried["agent"]
    assert (agent["first_time_right"], len(agent["errors"]), agent["errors_dropped"]) == (
        False,
        20,
        7,
    )
    assert agent["errors"][:2] == [
        {"type": "ValueError", "message": "bad json"},
        {"type": "error", "message": "timeout"},
    ]
    assert "agent" not in plain  # only agent evaluations carry it
    stored = {t["test_id"]: t for t in await service.get_test_runs(run.evaluation_run_id)}
    assert sorted(stored) == ["fix_issue[1]", "fix_issue[2]", "unit_test"]
    assert stored["fix_issue[1]"]["agent"]["tool_calls"][0]["name"] == "edit"


async def test_a_rule_on_the_runs_cost(service: MetricsStorageService) -> None:
    monitor = Monitor(
        [{"name": "pricey", "metric": "cost", "check": "above", "threshold": 1.5, "level": "error"}]
    )
    async with recorder(service, monitor=monitor) as run:
        await run.record_test("t1", passed=True, score=90.0)
        await run.record_usage("acme-small", input_tokens=1_000_000)  # $2.00
    assert run.check is not None
    [alert] = run.check.alerts
    assert (alert["rule"], alert["value"], alert["level"]) == ("pricey", 2.0, "error")


async def test_a_wholly_priced_run_has_a_cost_per_passed_test(
    service: MetricsStorageService,
) -> None:
    async with recorder(service) as run:
        await run.record_test("t1", passed=True, score=90.0)
        await run.record_test("t2", passed=True, score=80.0)
        await run.record_test("t3", passed=False, score=0.0)
        await run.record_usage("acme-small", input_tokens=1_500_000)  # $3.00
    stored = await service.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    assert stored["usage"]["cost_per_passed_test"] == pytest.approx(1.5)  # $3 / 2 passed


async def test_concurrent_first_records_share_one_load_of_a_day_budget(
    service: MetricsStorageService,
) -> None:
    monitor = Monitor([], budgets=[{"name": "daily", "per": "day", "warning": 100.0}])
    async with recorder(service, monitor=monitor) as run:
        receipts = await asyncio.gather(
            *(run.record_usage("acme-small", input_tokens=100_000) for _ in range(5))
        )
    assert [receipt.status for receipt in receipts] == ["ok"] * 5
    assert receipts[-1].run_cost == pytest.approx(1.0)


async def test_usage_of_a_test_is_kept_when_finish_races_with_it(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = Monitor([], budgets=[{"name": "tiny", "per": "run", "warning": 0.1}])
    save_alert = service.save_alert

    async def slow_save_alert(alert: dict[str, Any]) -> None:
        await asyncio.sleep(0.2)  # a slow store: finish() runs meanwhile
        await save_alert(alert)

    monkeypatch.setattr(service, "save_alert", slow_save_alert)
    run = recorder(service, monitor=monitor)
    await run.start()
    usage = [
        {"model": "acme-small", "input_tokens": 100_000},  # $0.2: crosses the warning
        {"model": "acme-small", "input_tokens": 50_000},
    ]
    recording = asyncio.create_task(run.record_test("t1", passed=True, usage=usage))
    await asyncio.sleep(0.05)
    await run.finish()
    await recording
    stored = await service.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    assert (stored["usage"]["records"], stored["usage"]["cost"]) == (2, pytest.approx(0.3))


async def test_a_store_that_is_away_is_not_retried_at_every_record(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = []

    async def away(documents: Any) -> None:
        attempts.append(len(documents))
        raise StorageUnavailableError("the store is away")

    async with recorder(service) as run:
        monkeypatch.setattr(service, "store_usage", away)
        for _ in range(250):
            await run.record_usage("acme-small", input_tokens=1)
        assert attempts == [100, 200]  # one try per new batch, not one per record
        monkeypatch.undo()
    assert len(await service.get_usage(run.evaluation_run_id)) == 250  # stored at the end


def test_two_budgets_of_one_name_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"two budgets are named 'cost'"):
        Monitor(
            [],
            budgets=[{"name": "cost", "limit": 1.0}, {"name": "cost", "per": "day", "limit": 5.0}],
        )


async def test_an_invalid_price_table_costs_no_result(
    service: MetricsStorageService,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    monkeypatch.setenv("EVALSTORE_PRICES", str(tmp_path / "prices-typo.toml"))
    async with recorder(service) as run:
        await run.record_test("t1", passed=True, usage=[{"model": "acme-small", "cost": 0.01}])
        receipt = await run.record_usage("acme-small", input_tokens=5, cost=0.02)
    assert receipt.cost == 0.02
    assert len(await service.get_test_runs(run.evaluation_run_id)) == 1
    assert len(await service.get_usage(run.evaluation_run_id)) == 2
    [warning] = [r.getMessage() for r in caplog.records if "prices-typo" in r.getMessage()]
    assert warning.endswith("costs come from genai-prices alone")

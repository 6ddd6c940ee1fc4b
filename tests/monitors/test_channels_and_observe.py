"""Where alerts go (logging, callbacks, a webhook, the Pushgateway) and `Monitor.observe`
in a training loop: a breach alerts once, a raising or hanging callback breaks nothing."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import Result, RunClock, at, record_run
from http_receiver import Gateway

from evalstore import ConfigurationError, MetricsStorageService, Monitor, evaluation_run

DROP = {"name": "floor", "metric": "score", "check": "below", "threshold": 50, "level": "error"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def record_with(service: MetricsStorageService, monitor: Monitor, score: float) -> Any:
    recorder = evaluation_run(service, config={"m": 1}, clock=RunClock(at(1)), monitor=monitor)
    async with recorder as run:
        await run.record_test("t1", passed=score >= 50, score=score)
    return recorder


# -- observe -----------------------------------------------------------------------


def test_a_persisting_breach_alerts_once_and_again_only_after_it_recovered() -> None:
    monitor = Monitor(
        [{"name": "mse", "on": "step", "metric": "mse", "check": "above", "threshold": 0.1}]
    )
    raised = [
        monitor.observe({"mse": value}, step=step)
        for step, value in enumerate([0.05, 0.2, 0.3, 0.4, 0.08, 0.25], start=1)
    ]
    assert [[alert["step"] for alert in alerts] for alerts in raised] == [[], [2], [], [], [], [6]]
    assert [alert["value"] for alert in monitor.alerts] == [0.2, 0.25]


def test_a_cooldown_repeats_a_breach_that_never_recovered() -> None:
    monitor = Monitor(
        [
            {
                "name": "mse",
                "on": "step",
                "metric": "mse",
                "check": "above",
                "threshold": 0.1,
                "cooldown": 2,
            }
        ]
    )
    for value in [0.2, 0.3, 0.4, 0.5, 0.6]:
        monitor.observe({"mse": value})  # steps 1, 2, 3...
    assert [alert["step"] for alert in monitor.alerts] == [1, 3, 5]


def test_values_inside_logged_dicts_as_the_old_training_monitor_logged_them() -> None:
    monitor = Monitor(
        [
            {
                "name": "drift",
                "on": "step",
                "metric": "drift.detected",
                "check": "above",
                "threshold": 0.5,
                "level": "critical",
            },
            {
                "name": "unsure",
                "on": "step",
                "metric": "uncertainty.mean",
                "check": "above",
                "threshold": 0.3,
            },
        ]
    )
    assert monitor.observe({"drift": {"detected": False}, "uncertainty": {"mean": 0.1}}) == []
    raised = monitor.observe(
        {"drift": {"detected": True}, "uncertainty": {"mean": 0.35}}, context={"model": "m1"}
    )
    assert [(a["rule"], a["level"], a["value"]) for a in raised] == [
        ("drift", "critical", 1.0),
        ("unsure", "warning", 0.35),
    ]
    assert raised[0]["context"] == {"model": "m1"}


def test_a_trend_check_compares_with_the_steps_observed_before() -> None:
    monitor = Monitor(
        [
            {
                "name": "loss-jump",
                "on": "step",
                "metric": "loss",
                "check": "zscore",
                "threshold": 3.0,
                "better": "lower",
                "baseline": "last:5",
            }
        ]
    )
    for loss in [1.0, 0.9, 0.8, 0.7, 0.6]:
        assert monitor.observe({"loss": loss}) == []
    # the last five: mean 0.8, sample std 0.158; 1.5 is z = 4.43 above
    [alert] = monitor.observe({"loss": 1.5})
    assert alert["statistic"]["z"] == pytest.approx(0.7 / 0.025**0.5)  # 4.427
    assert alert["baseline"]["mean"] == pytest.approx(0.8)
    assert alert["kind"] == "regression"


# -- callbacks ---------------------------------------------------------------------


async def test_a_raising_and_a_hanging_callback_neither_break_the_run_nor_lose_the_alert(
    service: MetricsStorageService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    seen: list[str] = []

    def raises(alert: dict[str, Any]) -> None:
        raise RuntimeError("pager is down")

    def hangs(alert: dict[str, Any]) -> None:
        time.sleep(3)

    def records(alert: dict[str, Any]) -> None:
        seen.append(str(alert["rule"]))

    monitor = Monitor([DROP], callbacks=[raises, hangs, records], callback_timeout_s=0.2)
    started = time.monotonic()
    recorder = await record_with(service, monitor, 10.0)
    assert time.monotonic() - started < 2.5  # the hanging callback was left behind
    assert recorder.document["status"] == "completed"
    assert seen == ["floor"]
    [stored] = await service.get_alerts()
    assert (stored["rule"], stored["state"]) == ("floor", "firing")
    warnings = [r.getMessage() for r in caplog.records if "callback" in r.getMessage()]
    assert warnings == [
        "evalstore: alert callback test_a_raising_and_a_hanging_callback_neither_break_the_run_"
        "nor_lose_the_alert.<locals>.raises raised RuntimeError: pager is down; the alert is kept",
        "evalstore: alert callback test_a_raising_and_a_hanging_callback_neither_break_the_run_"
        "nor_lose_the_alert.<locals>.hangs did not return within 0.2 s; left running, the "
        "alert is kept",
    ]


# -- the webhook -------------------------------------------------------------------


async def test_the_webhook_receives_one_slack_compatible_post(
    service: MetricsStorageService, gateway: Gateway
) -> None:
    monitor = Monitor([DROP], webhook_url=gateway.url(query="hooks/T000/B000/s3cr3tT0ken"))
    await record_with(service, monitor, 10.0)
    [request] = gateway.requests
    assert (request["method"], request["path"]) == ("POST", "/hooks/T000/B000/s3cr3tT0ken")
    body = json.loads(request["body"])
    assert body["text"] == "evalstore: ERROR floor: score is 10, below 50"
    [alert] = body["alerts"]
    assert (alert["rule"], alert["level"], alert["value"]) == ("floor", "error", 10.0)


async def test_a_dead_webhook_fails_nothing_and_never_shows_its_token(
    service: MetricsStorageService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    port = closed_port()
    monitor = Monitor([DROP], webhook_url=f"http://127.0.0.1:{port}/hooks/s3cr3tT0ken")
    recorder = await record_with(service, monitor, 10.0)
    assert recorder.document["status"] == "completed"
    assert len(await service.get_alerts()) == 1
    [warning] = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert warning == (
        f"evalstore: the alert webhook at http://127.0.0.1:{port} failed (ConnectError); "
        "1 alert(s) are kept in the store"
    )
    assert "s3cr3tT0ken" not in caplog.text


# -- Prometheus at the end of a run ------------------------------------------------


async def test_a_finished_run_is_pushed_with_its_alert_counts(
    service: MetricsStorageService,
    gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("EVALSTORE_PUSHGATEWAY", gateway.url())
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "floor"\nmetric = "score"\ncheck = "below"\nthreshold = 50\n'
        'level = "critical"\n'
    )
    await record_run(service, at(1), [Result("t1", "failed", 10.0)])
    [request] = gateway.requests
    assert request["method"] == "PUT"
    assert request["path"].startswith("/metrics/job/evalstore/")
    assert "evalstore_alerts_total{configuration=" in request["body"]
    lines = [line for line in request["body"].splitlines() if "alerts_total{" in line]
    assert sorted(line.split("level=")[1] for line in lines) == [
        '"critical"} 1.0',
        '"error"} 0.0',
        '"warning"} 0.0',
    ]


async def test_alerts_observed_inside_a_run_are_stored_with_their_run_and_step(
    service: MetricsStorageService,
) -> None:
    monitor = Monitor(
        [{"name": "mse", "on": "step", "metric": "mse", "check": "above", "threshold": 0.1}]
    )
    recorder = evaluation_run(service, config={"m": 1}, clock=RunClock(at(1)), monitor=monitor)
    async with recorder as run:
        for epoch, mse in enumerate([0.05, 0.2, 0.3, 0.04, 0.15]):
            monitor.observe({"mse": mse}, step=epoch, context={"model": "m1"})
        await run.record_test("t1", passed=True, score=90.0)
    stored = sorted(await service.get_alerts(), key=lambda alert: alert["step"])
    assert [(a["rule"], a["step"], a["value"], a["context"]) for a in stored] == [
        ("mse", 1, 0.2, {"model": "m1"}),
        ("mse", 4, 0.15, {"model": "m1"}),
    ]
    assert {a["run"] for a in stored} == {recorder.evaluation_run_id}
    assert await monitor.store_observed(service, recorder.document) == 0  # each stored once


def test_observe_alerts_again_when_a_breach_rises_a_level() -> None:
    monitor = Monitor(
        [
            {
                "name": "loss",
                "on": "step",
                "metric": "loss",
                "check": "above",
                "threshold": {"warning": 1.0, "critical": 10.0},
            }
        ]
    )
    levels = [[a["level"] for a in monitor.observe({"loss": v})] for v in (2.0, 3.0, 50.0, 60.0)]
    assert levels == [["warning"], [], ["critical"], []]


def test_all_callbacks_of_one_send_share_one_time_limit() -> None:
    def hangs(alert: dict[str, Any]) -> None:
        time.sleep(3)

    rules = [
        {"name": f"x{i}", "on": "step", "metric": f"m{i}", "check": "above", "threshold": 0}
        for i in range(5)
    ]
    monitor = Monitor(rules, callbacks=[hangs], callback_timeout_s=0.3)
    started = time.monotonic()
    assert len(monitor.observe({f"m{i}": 1 for i in range(5)})) == 5
    assert time.monotonic() - started < 1.5  # not 5 x 0.3 s, let alone 5 x 3 s


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:SECRETPORT/hook", "http://127.0.0.1/hook/s3cr3t\n", "s3cr3t"]
)
def test_a_malformed_webhook_url_is_refused_at_once_without_showing_it(url: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        Monitor([DROP], webhook_url=url)
    assert "s3cr3t" not in str(error.value).lower()
    assert "SECRETPORT" not in str(error.value)
    assert str(error.value) == (
        "the alert webhook URL is not a valid http(s) URL (not shown: it may hold a token)"
    )


def test_the_webhook_token_is_not_in_the_monitors_repr() -> None:
    monitor = Monitor([DROP], webhook_url="https://hooks.example.com/services/s3cr3tT0ken")
    assert "s3cr3tT0ken" not in repr(monitor.channels)

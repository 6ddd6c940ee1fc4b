"""Prometheus: a run's gauges, read back with prometheus_client's own parser.

The textfile is parsed from disk; pushes go to a stand-in Pushgateway (an HTTP server on
127.0.0.1 that records each request); the CLI runs on a local store the demo recorded.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import prometheus_client.exposition
import pytest
import typer
from http_receiver import Gateway
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from evalstore.cli.app import app
from evalstore.cli.prometheus import register_prometheus_commands
from evalstore.errors import EvalstoreError, InvalidDataError
from evalstore.monitors.prometheus import (
    METRIC_NAMES,
    PUSHGATEWAY_ENV,
    PUSHGATEWAY_TIMEOUT_ENV,
    PrometheusExportError,
    exposition,
    push_configured_run,
    push_run,
    run_registry,
    runs_registry,
    write_textfile,
)

GRAFANA = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "evalstore-dashboard.json"
STARTED = datetime(2025, 12, 5, 10, 30, tzinfo=timezone.utc)
FINISHED = STARTED + timedelta(seconds=754.5)
LABELS = {"suite": "asr", "branch": "main", "environment": "ci", "configuration": "3f9a1c0b2d4e"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def a_run(**changes: Any) -> dict[str, Any]:
    """An `evaluation_runs` document as the service returns it."""
    run: dict[str, Any] = {
        "_id": "0123456789abcdef01234567",
        "evaluation_run_id": "2025-12-05T10-30-00Z-main-3f9a1c",
        "started_at": STARTED,
        "finished_at": FINISHED,
        "git_branch": "main",
        "git_commit": "3f9a1c0",
        "environment": "ci",
        "suite": "asr",
        "system_info_hash": "3f9a1c0b2d4e5f60718293a4b5c6d7e8",
        "metrics": {"wer": 0.125, "latency_ms": 812.0},
        "num_tests": 12,
        "num_passed": 8,
        "num_failed": 3,  # failed + error, as finalize_evaluation_run counts them
        "num_skipped": 1,
        "num_errors": 1,
        "status": "completed",
        "score": 87.5,
    }
    run.update(changes)
    return run


def samples(text: str) -> Samples:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


def series(name: str, value: float, **labels: str) -> tuple[tuple[Any, ...], float]:
    return (name, tuple(sorted(labels.items()))), value


def expected(run_labels: dict[str, str], *, alerts: dict[str, int] | None = None) -> Samples:
    finished = FINISHED.timestamp()
    rows = [
        series("evalstore_run_score", 87.5, **run_labels),
        series("evalstore_run_tests", 8, status="passed", **run_labels),
        series("evalstore_run_tests", 2, status="failed", **run_labels),
        series("evalstore_run_tests", 1, status="skipped", **run_labels),
        series("evalstore_run_tests", 1, status="error", **run_labels),
        series("evalstore_run_duration_seconds", 754.5, **run_labels),
        series("evalstore_metric_value", 0.125, metric="wer", **run_labels),
        series("evalstore_metric_value", 812.0, metric="latency_ms", **run_labels),
        series("evalstore_run_last_success_timestamp_seconds", finished, **run_labels),
        series("evalstore_run_finished_timestamp_seconds", finished, **run_labels),
    ]
    for level, count in (alerts or {}).items():
        rows.append(series("evalstore_alerts_total", count, level=level, **run_labels))
    return dict(rows)


# --- the gauges, through a textfile ---------------------------------------------------------


def test_the_textfile_parses_back_to_exactly_the_runs_figures(tmp_path: Path) -> None:
    path = tmp_path / "evalstore.prom"
    written = write_textfile(path, run_registry(a_run()))
    found = samples(path.read_text())
    assert found == expected(LABELS)
    assert written == len(found) == 10
    tests = sum(v for (name, _), v in found.items() if name == "evalstore_run_tests")
    assert tests == 12, "the outcomes add up to num_tests: errors are not counted twice"


def test_alerts_have_every_level_and_unknown_levels_are_refused(tmp_path: Path) -> None:
    registry = run_registry(a_run(), {"error": 2, "critical": 1})
    found = samples(exposition(registry)[0].decode())
    assert found == expected(LABELS, alerts={"warning": 0, "error": 2, "critical": 1})
    with pytest.raises(InvalidDataError, match="unknown level 'fatal'"):
        run_registry(a_run(), {"fatal": 1})
    with pytest.raises(InvalidDataError, match="must be an int >= 0"):
        run_registry(a_run(), {"error": -1})


def test_no_score_means_no_score_series_never_zero() -> None:
    found = samples(exposition(run_registry(a_run(score=None)))[0].decode())
    assert not [key for key in found if key[0] == "evalstore_run_score"]
    assert len(found) == 9


def test_only_a_completed_run_is_a_success() -> None:
    for status in ("failed", "interrupted"):
        found = samples(exposition(run_registry(a_run(status=status)))[0].decode())
        names = {name for name, _ in found}
        assert "evalstore_run_last_success_timestamp_seconds" not in names
        assert "evalstore_run_finished_timestamp_seconds" in names


def test_a_sparse_run_gives_empty_labels_and_no_invented_values() -> None:
    run = a_run(
        suite=None,
        git_branch=None,
        finished_at=None,
        status="running",
        metrics={"wer": None, "ok": True, "nan": float("nan")},
        started_at=STARTED.replace(tzinfo=None),  # mongomock hands back naive UTC dates
    )
    found = samples(exposition(run_registry(run))[0].decode())
    labels = {**LABELS, "suite": "", "branch": ""}
    assert {name for name, _ in found} == {"evalstore_run_score", "evalstore_run_tests"}
    assert all(dict(key[1]).items() >= labels.items() for key in found)


def test_runs_registry_shows_each_label_sets_newest_run_and_its_last_success() -> None:
    older_success = a_run(evaluation_run_id="a", finished_at=FINISHED - timedelta(days=1))
    newest_failure = a_run(evaluation_run_id="b", status="failed", score=None)
    other_branch = a_run(evaluation_run_id="c", git_branch="dev", score=50.0)
    registry = runs_registry([newest_failure, other_branch, older_success])
    found = samples(exposition(registry)[0].decode())
    main, dev = LABELS, {**LABELS, "branch": "dev"}

    def value(name: str, labels: dict[str, str]) -> float | None:
        return found.get((name, tuple(sorted(labels.items()))))

    assert value("evalstore_run_score", main) is None  # the newest run of main has none
    assert value("evalstore_run_score", dev) == 50.0
    success = "evalstore_run_last_success_timestamp_seconds"
    assert value(success, main) == (FINISHED - timedelta(days=1)).timestamp()
    assert value(success, dev) == FINISHED.timestamp()


def test_the_textfile_is_replaced_by_a_rename_in_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evalstore.prom"
    path.write_text("stale\n")
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def spy(source: str, target: str) -> None:
        renames.append((source, target))
        real_rename(source, target)

    monkeypatch.setattr(prometheus_client.exposition.os, "rename", spy)
    write_textfile(path, run_registry(a_run()))
    [(source, target)] = renames
    assert Path(source).parent == tmp_path
    assert not source.endswith(".prom"), "the collector must not read the temporary file"
    assert target == str(path)
    assert os.listdir(tmp_path) == ["evalstore.prom"]
    assert samples(path.read_text()) == expected(LABELS)


@pytest.mark.parametrize("where", ["missing/evalstore.prom", "."])
def test_an_unwritable_textfile_is_one_line_and_leaves_nothing(tmp_path: Path, where: str) -> None:
    target = tmp_path / where
    with pytest.raises(PrometheusExportError) as caught:
        write_textfile(target, run_registry(a_run()))
    message = str(caught.value)
    assert message.startswith(f"cannot write the textfile {target}: ")
    assert "\n" not in message
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# --- the Pushgateway --------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


GROUP_LABELS = {"configuration": LABELS["configuration"]}  # the gateway adds the others
GROUP_PATH = "/metrics/job/evalstore/branch/main/environment/ci/suite/asr"


def test_a_completed_run_replaces_its_group_with_put(gateway: Gateway) -> None:
    line = push_run(gateway.url("bob:s3cret@", "?token=t0ken"), a_run(), {"warning": 1})
    [request] = gateway.requests
    assert request["method"] == "PUT"
    assert request["path"] == f"{GROUP_PATH}?token=t0ken"
    auth = request["headers"]["Authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")) == b"bob:s3cret"
    found = samples(request["body"])
    assert found == expected(GROUP_LABELS, alerts={"warning": 1, "error": 0, "critical": 0})
    assert "instance" not in request["body"]
    assert "job" not in request["body"]
    assert (
        line
        == f"pushed 13 series of run {a_run()['evaluation_run_id']} to {gateway.url()[:-1]} (PUT)"
    )
    assert "s3cret" not in line
    assert "t0ken" not in line


def test_a_run_that_did_not_complete_adds_with_post_and_keeps_the_last_success(
    gateway: Gateway,
) -> None:
    push_run(gateway.url(), a_run(status="failed", suite=None, git_branch="feature/x y"))
    [request] = gateway.requests
    assert request["method"] == "POST"
    # An empty value and one with `/` or a space go base64-encoded, as the Pushgateway asks.
    branch = base64.urlsafe_b64encode(b"feature/x y").decode()
    assert (
        request["path"]
        == f"/metrics/job/evalstore/branch@base64/{branch}/environment/ci/suite@base64/="
    )
    names = {name for name, _ in samples(request["body"])}
    assert "evalstore_run_last_success_timestamp_seconds" not in names
    assert "evalstore_run_finished_timestamp_seconds" in names


def test_push_configured_run_reads_the_environment(gateway: Gateway) -> None:
    assert push_configured_run(a_run(), environ={}) is None
    assert push_configured_run(a_run(), environ={PUSHGATEWAY_ENV: "  "}) is None
    assert gateway.requests == []
    env = {PUSHGATEWAY_ENV: f"127.0.0.1:{gateway.port}", PUSHGATEWAY_TIMEOUT_ENV: "2.5"}
    assert push_configured_run(a_run(), environ=env) is None  # no scheme: http
    [request] = gateway.requests
    assert request["path"] == GROUP_PATH


def test_push_configured_run_defaults_to_os_environ(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PUSHGATEWAY_ENV, gateway.url())
    monkeypatch.delenv(PUSHGATEWAY_TIMEOUT_ENV, raising=False)
    assert push_configured_run(a_run()) is None
    assert len(gateway.requests) == 1


def assert_safe_warning(line: str | None, *secrets: str) -> str:
    assert line is not None
    assert line.startswith("evalstore: ")
    assert "\n" not in line
    for secret in secrets:
        assert secret not in line
    return line


def test_a_dead_gateway_is_a_warning_without_credentials() -> None:
    port = closed_port()
    url = f"http://pushuser:s3cret@127.0.0.1:{port}/?token=t0ken"
    with pytest.raises(PrometheusExportError) as caught:
        push_run(url, a_run(), timeout=2)
    assert "s3cret" not in str(caught.value)
    assert "t0ken" not in str(caught.value)
    line = push_configured_run(a_run(), environ={PUSHGATEWAY_ENV: url})
    line = assert_safe_warning(line, "s3cret", "t0ken")
    assert f"to the Pushgateway at http://127.0.0.1:{port}: " in line
    assert "refused" in line.lower()


def test_a_gateway_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        env = {PUSHGATEWAY_ENV: f"http://127.0.0.1:{port}", PUSHGATEWAY_TIMEOUT_ENV: "0.2"}
        line = assert_safe_warning(push_configured_run(a_run(), environ=env))
    assert line.endswith("timed out")


def test_a_refused_push_shows_what_the_gateway_said(gateway: Gateway) -> None:
    gateway.status = 400
    gateway.answer = b"pushed metrics are invalid or inconsistent with existing metrics\nmore"
    env = {PUSHGATEWAY_ENV: gateway.url("u:s3cret@")}
    line = assert_safe_warning(push_configured_run(a_run(), environ=env), "s3cret")
    assert line.endswith(
        "HTTP 400 Bad Request: pushed metrics are invalid or inconsistent with existing metrics"
    )


@pytest.mark.parametrize(
    ("url", "timeout"),
    [
        ("ftp://u:s3cret@127.0.0.1/", None),
        ("http://u:s3cret@127.0.0.1:99999/", None),
        ("http://u:s3cret@[::1/", None),
        ("http://u:s3cret@127.0.0.1:1/", "soon"),
        ("http://u:s3cret@127.0.0.1:1/", "-1"),
    ],
)
def test_a_bad_setting_is_a_warning_not_a_crash(url: str, timeout: str | None) -> None:
    env = {PUSHGATEWAY_ENV: url, **({PUSHGATEWAY_TIMEOUT_ENV: timeout} if timeout else {})}
    assert_safe_warning(push_configured_run(a_run(), environ=env), "s3cret")


def test_bad_alerts_are_a_warning_from_push_configured_run(gateway: Gateway) -> None:
    line = push_configured_run(a_run(), {"fatal": 1}, environ={PUSHGATEWAY_ENV: gateway.url()})
    assert "unknown level 'fatal'" in assert_safe_warning(line)
    assert gateway.requests == []


# --- the Grafana dashboard --------------------------------------------------------------------


def grafana_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variables = dashboard["templating"]["list"]
    return exprs + [v["query"]["query"] for v in variables if v["type"] == "query"]


def test_the_grafana_dashboard_queries_only_series_we_produce() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("suite", "branch", "environment"):
        assert variables[name]["query"]["query"].startswith("label_values(evalstore_")
    queries = grafana_queries(dashboard)
    assert len(queries) >= 8
    used = set()
    for query in queries:
        # A metric name is an identifier followed by a selector (`name{`) or by `,` or `)`
        # inside label_values(...); PromQL's own words (sum, by, time) are never followed by `{`.
        names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", query))
        names |= set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", query))
        assert names, f"no metric in {query!r}"
        assert names <= set(METRIC_NAMES), f"{query!r} names {names - set(METRIC_NAMES)}"
        used |= names
    assert used == set(METRIC_NAMES), "every series has a panel"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


# --- the CLI ----------------------------------------------------------------------------------

runner = CliRunner()


def metrics_app() -> typer.Typer:
    """`evalstore` itself once `metrics` is registered there; until then, a stand-in."""
    if any(command.name == "metrics" for command in app.registered_commands):
        return app
    stand_in = typer.Typer(pretty_exceptions_enable=False)

    @stand_in.callback()
    def main() -> None:
        """A group, so that `metrics` stays a sub-command."""

    register_prometheus_commands(stand_in)
    return stand_in


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A local store holding the demo's three runs."""
    uri = f"file://{tmp_path / 'store'}"
    result = runner.invoke(app, ["demo", "--url", uri, "--db", "history", "--runs", "3", "--json"])
    assert result.exit_code == 0, result.output
    return uri


def test_cli_writes_the_latest_runs_textfile(store: str, tmp_path: Path) -> None:
    shown = runner.invoke(
        app, ["runs", "show", "latest", "--url", store, "--db", "history", "--json"]
    )
    run = json.loads(shown.stdout)["evaluation_run"]
    path = tmp_path / "evalstore.prom"
    result = runner.invoke(
        metrics_app(), ["metrics", "--textfile", str(path), "--url", store, "--db", "history"]
    )
    assert result.exit_code == 0, result.output
    found = samples(path.read_text())
    run_id = run["evaluation_run_id"]
    assert result.stdout == f"wrote {len(found)} series for run {run_id} to {path}\n"
    assert result.stderr == ""
    labels = {
        "suite": run.get("suite") or "",
        "branch": run.get("git_branch") or "",
        "environment": run["environment"],
        "configuration": run["system_info_hash"][:12],
    }
    assert found[series("evalstore_run_score", 0, **labels)[0]] == pytest.approx(run["score"])
    passed = series("evalstore_run_tests", 0, status="passed", **labels)[0]
    assert found[passed] == run["num_passed"]
    for metric, value in run["metrics"].items():
        key = series("evalstore_metric_value", 0, metric=metric, **labels)[0]
        assert found[key] == pytest.approx(value)
    assert sum(v for (n, _), v in found.items() if n == "evalstore_run_tests") == run["num_tests"]


def test_cli_prints_the_exposition_of_a_named_run(store: str) -> None:
    listed = runner.invoke(app, ["runs", "list", "--url", store, "--db", "history", "--json"])
    oldest = json.loads(listed.stdout)[-1]
    args = ["metrics", oldest["evaluation_run_id"], "--url", store, "--db", "history"]
    result = runner.invoke(metrics_app(), args)
    assert result.exit_code == 0, result.output
    finished = datetime.fromisoformat(oldest["finished_at"].replace("Z", "+00:00")).timestamp()
    found = {name: value for (name, _), value in samples(result.stdout).items()}
    assert found["evalstore_run_finished_timestamp_seconds"] == pytest.approx(finished)
    assert result.stdout.startswith("# HELP evalstore_run_score ")


def test_cli_notes_a_textfile_the_collector_would_skip(store: str, tmp_path: Path) -> None:
    path = tmp_path / "evalstore.txt"
    args = ["metrics", "--textfile", str(path), "--url", store, "--db", "history"]
    result = runner.invoke(metrics_app(), args)
    assert result.exit_code == 0
    assert "reads only files ending in .prom" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--textfile", "{tmp}/missing/evalstore.prom"], 1, "cannot write the textfile"),
        (["--textfile", "{tmp}"], 1, "cannot write the textfile"),
        (["nope-no-such-run"], 1, "nope-no-such-run"),
        (["--textfile", ""], 2, "--textfile"),
        (["--textfile"], 2, "--textfile"),
    ],
)
def test_cli_failures_are_one_line(
    store: str, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = runner.invoke(metrics_app(), ["metrics", "--url", store, "--db", "history", *args])
    assert result.exit_code == code, result.output
    assert message in result.stderr
    if code == 1:
        assert result.stderr.startswith("error: ")
        assert result.stderr.count("\n") == 1


def test_cli_on_a_dead_server_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "300")
    dead = f"mongodb://bob:hunter2@127.0.0.1:{closed_port()}/"
    result = runner.invoke(metrics_app(), ["metrics", "--url", dead, "--db", uuid.uuid4().hex])
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert result.stderr.startswith("error: ")


def test_export_errors_are_evalstore_errors() -> None:
    assert issubclass(PrometheusExportError, EvalstoreError)

"""The `evalstore` command: tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evalstore
from evalstore.cli.app import app
from evalstore.cli.demo import FLAKY_TEST, TESTS

runner = CliRunner()
DEAD = "mongodb://bob:hunter2@127.0.0.1:1"


@pytest.fixture
def demo_db() -> str:
    """A database on the embedded backend holding the demo's ten runs."""
    name = f"evalstore_cli_{uuid.uuid4().hex[:8]}"
    result = runner.invoke(app, ["demo", "--db", name, "--json"])
    assert result.exit_code == 0, result.output
    return name


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_demo_prints_the_three_tables() -> None:
    code, out, _ = invoke("demo", "--db", f"demo_{uuid.uuid4().hex[:8]}")
    assert code == 0
    assert "Recent evaluation runs (10)" in out
    assert f"History of {FLAKY_TEST} (newest first)" in out
    assert "Daily evaluation score trend" in out
    assert "Recorded 10 evaluation runs of 12 tests in the embedded backend" in out


def test_demo_json_has_ten_runs_a_flaky_test_and_a_daily_trend() -> None:
    code, out, _ = invoke("demo", "--db", f"demo_{uuid.uuid4().hex[:8]}", "--json")
    assert code == 0
    data = json.loads(out)
    runs = data["recent_runs"]
    assert len(runs) == 10
    assert {r["num_tests"] for r in runs} == {len(TESTS)}
    assert {tuple(r["experiment_tags"]) for r in runs} == {("baseline",), ("config-tweak",)}
    assert len({r["system_info_hash"] for r in runs}) == 2
    outcomes = [h["passed"] for h in data["test_history"]]
    assert outcomes == [False, True] * 5  # newest first: the flaky test alternates
    assert [p["runs"] for p in data["score_trend"]] == [1] * 10
    assert sorted(p["period"] for p in data["score_trend"]) == [
        p["period"] for p in data["score_trend"]
    ]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    assert all(run["finished_at"] < now for run in runs), "no demo run ends in the future"


def test_runs_list_and_show(demo_db: str) -> None:
    code, out, _ = invoke(
        "runs", "list", "--db", demo_db, "--url", "mongomock://", "--json", "-n", "3"
    )
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == 3
    assert runs[0]["started_at"] > runs[1]["started_at"] > runs[2]["started_at"]
    run_id = runs[0]["evaluation_run_id"]

    code, out, _ = invoke("runs", "show", run_id, "--db", demo_db, "--url", "mongomock://")
    assert code == 0
    assert run_id in out
    assert "Test runs" in out
    assert FLAKY_TEST in out

    code, out, _ = invoke(
        "runs", "show", run_id, "--db", demo_db, "--url", "mongomock://", "--json"
    )
    shown = json.loads(out)
    assert shown["evaluation_run"]["evaluation_run_id"] == run_id
    assert len(shown["test_runs"]) == len(TESTS)


def test_runs_list_by_tag(demo_db: str) -> None:
    code, out, _ = invoke(
        "runs", "list", "--db", demo_db, "--url", "mongomock://", "--tag", "baseline", "--json"
    )
    assert code == 0
    assert [r["experiment_tags"] for r in json.loads(out)] == [["baseline"]] * 5


def test_tests_history(demo_db: str) -> None:
    code, out, _ = invoke(
        "tests",
        "history",
        FLAKY_TEST,
        "--db",
        demo_db,
        "--url",
        "mongomock://",
        "-n",
        "4",
        "--json",
    )
    assert code == 0
    assert [h["status"] for h in json.loads(out)] == ["failed", "passed", "failed", "passed"]


def test_indexes_command(demo_db: str) -> None:
    code, out, _ = invoke("indexes", "--db", demo_db, "--url", "mongomock://", "--json")
    assert code == 0
    found = json.loads(out)
    assert [i["name"] for i in found["test_runs"]] == [
        "_id_",
        "evaluation_run_id",
        "finished_at",
        "score",
        "status",
        "test_id_finished_at",
        "test_run_id_unique",
    ]


def test_ping_names_the_store_it_reached(tmp_path: Path) -> None:
    code, out, _ = invoke("ping", "--url", "mongomock://")
    assert code == 0
    assert out.startswith("The embedded backend answered in ")
    store = tmp_path / "store"
    code, out, err = invoke("ping", "--url", f"file://{store}")
    assert code == 1
    assert err.startswith(f"error: no local store at {store}: ")
    assert invoke("demo", "--url", f"file://{store}", "--db", "local", "--runs", "2")[0] == 0
    code, out, _ = invoke("ping", "--url", f"file://{store}", "--db", "local")
    assert code == 0
    assert out.startswith(f"The local store at {store} answered in ")
    assert "MongoDB" not in out


def test_version() -> None:
    code, out, _ = invoke("--version")
    assert code == 0
    assert out == f"evalstore {evalstore.__version__}\n"


def test_runs_show_puts_failures_first_and_limits_the_rows(demo_db: str) -> None:
    where = ("--db", demo_db, "--url", "mongomock://")
    code, out, _ = invoke("runs", "show", "latest", "--json", *where)
    assert code == 0
    full = json.loads(out)
    statuses = [t["status"] for t in full["test_runs"]]
    failing = [s for s in statuses if s in ("error", "failed")]
    assert failing  # the demo's latest run has a failing test
    assert statuses[: len(failing)] == sorted(failing)  # errors, then failures, first
    assert "passed" in statuses[len(failing) :]
    code, out, err = invoke("runs", "show", "latest", "--limit", "2", *where)
    assert code == 0
    assert f"Test runs (2 of {len(statuses)}, failures first)" in out
    assert err == f"note: {len(statuses) - 2} more test run(s): --all or --limit N shows them\n"
    code, out, _ = invoke("runs", "show", "latest", "--failed", "--json", *where)
    assert [t["status"] for t in json.loads(out)["test_runs"]] == sorted(failing)
    # A unique prefix of the id names the run too.
    run_id = full["evaluation_run"]["evaluation_run_id"]
    code, out, _ = invoke("runs", "show", run_id[:-3], "--json", *where)
    assert json.loads(out)["evaluation_run"]["evaluation_run_id"] == run_id


def test_unknown_run_id_is_one_line_and_exit_1(demo_db: str) -> None:
    code, out, err = invoke("runs", "show", "no-such-run", "--db", demo_db, "--url", "mongomock://")
    assert code == 1
    assert out == ""
    assert err == (
        "error: no evaluation run 'no-such-run': list the recent ones with `evalstore runs list`\n"
    )


def test_unknown_test_history_says_so(demo_db: str) -> None:
    code, _, err = invoke("tests", "history", "nope", "--db", demo_db, "--url", "mongomock://")
    assert (code, err) == (1, "no results stored for test 'nope'\n")


def test_unreachable_server_is_one_redacted_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "200")
    code, _, err = invoke("runs", "list", "--url", DEAD)
    assert code == 1
    assert err.count("\n") == 1
    assert "hunter2" not in err
    assert err.startswith("error: cannot reach MongoDB at mongodb://bob:***@127.0.0.1:1 ")
    assert "docker compose up -d" in err


def test_password_from_the_environment_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", DEAD)
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "200")
    code, out, err = invoke("ping")
    assert code == 1
    assert "hunter2" not in out + err
    assert "Traceback" not in out + err


def test_invalid_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = invoke("runs", "list", "--url", "postgres://bob:hunter2@db")
    assert code == 1
    assert err == (
        "error: invalid connection string 'postgres://bob:***@db': it must start with "
        "mongodb://, mongodb+srv://, mongomock://, file://\n"
    )


def test_invalid_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "qa")
    code, _, err = invoke("runs", "list", "--url", "mongomock://")
    assert code == 1
    assert err == "error: invalid ENVIRONMENT='qa': expected one of dev, stage, prod, lab\n"


def test_trend_of_a_metric(demo_db: str) -> None:
    code, out, _ = invoke(
        "trend", "--metric", "wer", "--db", demo_db, "--url", "mongomock://", "--json"
    )
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 10
    assert all(0 < r["mean"] < 100 for r in rows)

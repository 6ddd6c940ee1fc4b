"""`evalstore serve`: what it refuses before starting a server, and what it starts.

The refusals exit with code 2 and one line on stderr, before any server starts: a
non-loopback `--host` without a token, a token shorter than 16 characters, a port
already in use. Where a server would start, `uvicorn.run` is replaced by a stand-in
that keeps the app it was handed, which the test then serves in-process.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient
from typer.testing import CliRunner
from web_site import SECRET, SECRET_URL, TOKEN

from evalstore.cli.app import app
from evalstore.cli.demo import FLAKY_TEST, TESTS

runner = CliRunner()
LOOPBACK = "http://127.0.0.1:8765"


def serve(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["serve", *args])
    return result.exit_code, result.stdout, result.stderr


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a listening socket holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (the server is never started on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `uvicorn.run` was called with (no server starts)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda asgi, **options: calls.append({"app": asgi, **options})
    )
    return calls


def test_a_public_host_without_a_token_is_refused(started) -> None:
    code, _, err = serve("--host", "0.0.0.0")
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: refusing to serve on 0.0.0.0, which other machines can reach")
    assert "--token" in line
    assert started == []


@pytest.mark.parametrize("token", ["short", "x" * 15])
def test_a_token_shorter_than_16_characters_is_refused(started, token: str) -> None:
    code, _, err = serve("--token", token)
    assert code == 2
    assert one_line(err).startswith("error: the dashboard token must be at least 16 characters")
    assert token not in err
    assert started == []


def test_a_short_token_from_the_environment_is_refused(started, monkeypatch) -> None:
    monkeypatch.setenv("EVALSTORE_DASHBOARD_TOKEN", "abc")
    code, _, err = serve("--host", "0.0.0.0")
    assert code == 2
    assert "at least 16 characters" in one_line(err)


def test_a_port_in_use_is_one_line(started, taken_port: int) -> None:
    code, out, err = serve("--port", str(taken_port))
    assert code == 2
    assert one_line(err) == (
        f"error: port {taken_port} on 127.0.0.1 is in use: pick another with --port"
    )
    assert "Traceback" not in out + err
    assert started == []


def test_demo_with_a_url_is_refused(started) -> None:
    code, _, err = serve("--demo", "--url", "mongomock://")
    assert code == 2
    assert one_line(err) == "error: --demo serves a history of its own: leave out --url"


def test_a_host_that_is_no_address_is_blamed_not_the_port(started) -> None:
    code, _, err = serve("--host", "no-such-host.invalid", "--token", TOKEN)
    assert code == 2
    line = one_line(err)
    assert line.startswith("error: --host: 'no-such-host.invalid' is not an address")
    assert "--port" not in line
    assert started == []


def test_serve_demo_starts_the_dashboard_on_loopback_over_the_demo_history(
    started, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    code, out, err = serve("--demo", "--port", str(free_port))
    assert code == 0, err
    assert one_line(out) == (
        f"evalstore dashboard on http://127.0.0.1:{free_port}/ reading the demo history "
        "(in memory) (Ctrl+C stops it)"
    )
    [call] = started
    assert (call["host"], call["port"]) == ("127.0.0.1", free_port)
    with TestClient(call["app"], base_url=LOOPBACK) as http:  # its lifespan records the demo
        runs = http.get("/api/runs").json()["runs"]
        assert len(runs) == 14
        assert {run["num_tests"] for run in runs} == {len(TESTS)}
        flaky = http.get("/api/flaky").json()["flaky"]
        assert [row["test_id"] for row in flaky] == [FLAKY_TEST]
        assert flaky[0]["pass_rate"] == 0.5  # it alternates
        assert http.get("/api/cost").json()["total_cost"] > 0  # priced usage
        alerts = http.get("/api/alerts").json()["alerts"]
        assert alerts
        assert {(a["rule"], a["test_id"]) for a in alerts} == {("flaky-test-wer", FLAKY_TEST)}
        series = http.get(f"/api/runs/{runs[0]['evaluation_run_id']}/series").json()["series"]
        assert {(row["metric"], row["split"]) for row in series} == {
            ("accuracy", "train"),
            ("loss", "eval"),
            ("loss", "train"),
        }
    # the demo's rule fires by design: recording the demo logs no alert as an error
    assert [r for r in caplog.records if r.name == "evalstore.alerts"] == []


def test_without_a_token_only_loopback_host_names_are_answered(started, free_port: int) -> None:
    """A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) gets 400."""
    code, _, err = serve("--demo", "--port", str(free_port))
    assert code == 0, err
    with TestClient(started[0]["app"], base_url=LOOPBACK) as http:
        for host in ("127.0.0.1", "localhost", f"127.0.0.1:{free_port}", f"localhost:{free_port}"):
            assert http.get("/api/runs", headers={"host": host}).status_code == 200, host
        for host in ("attacker.example", f"attacker.example:{free_port}", "127.0.0.1.nip.io"):
            refused = http.get("/api/runs", headers={"host": host})
            assert (refused.status_code, refused.text) == (400, "Invalid host header"), host
            assert refused.headers["x-content-type-options"] == "nosniff"
            assert "script-src 'self'" in refused.headers["content-security-policy"]


def test_serve_with_a_token_requires_it(started, free_port: int) -> None:
    code, out, err = serve(
        "--demo", "--host", "0.0.0.0", "--port", str(free_port), "--token", TOKEN
    )
    assert code == 0, err
    assert one_line(out).endswith("; requests need the token (Ctrl+C stops it)")
    assert TOKEN not in out
    with TestClient(started[0]["app"], base_url="http://dashboard.example") as http:
        assert http.get("/api/runs").status_code == 401
        ok = http.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200


def test_serve_never_prints_the_password_of_the_store(started, free_port: int) -> None:
    database = f"web_{uuid.uuid4().hex[:8]}"
    code, out, err = serve("--url", SECRET_URL, "--db", database, "--port", str(free_port))
    assert code == 0, err
    assert SECRET not in out + err
    assert "reading mongomock://reader:***@localhost" in one_line(out)


def test_a_store_that_does_not_answer_is_one_line_before_any_server(
    started, free_port, monkeypatch
) -> None:
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "200")
    dead = f"mongodb://reader:{SECRET}@127.0.0.1:1/"
    code, _, err = serve("--url", dead, "--port", str(free_port))
    assert code == 1
    line = one_line(err)
    assert line.startswith("error: cannot reach MongoDB at mongodb://reader:***@127.0.0.1:1")
    assert SECRET not in err
    assert started == []


def test_a_local_store_that_does_not_exist_is_one_line(started, free_port, tmp_path) -> None:
    code, _, err = serve("--url", f"file://{tmp_path / 'nowhere'}", "--port", str(free_port))
    assert code == 1
    assert one_line(err).startswith(f"error: no local store at {tmp_path / 'nowhere'}")
    assert started == []

"""The dashboard on a large local store: how long each page takes, served as a user serves it.

Builds (or reuses) the store of `scripts/bench_localstore.py` (default 500,000 test
runs: 500 evaluation runs of 1,000 tests; kept in `--store DIR`, by default its own
directory under /tmp), starts `evalstore serve --url file://DIR --db bench` in a
fresh process, and requests every page and its JSON twin over HTTP: the first
request (cold: the store's pages not yet in the OS cache of this process) and the
median of `--repeat` more. Beside each page, the same page's main query written
directly in sqlite3 in this process (open, query, fetch; median of `--repeat`), so
the ratio shows what the service, the shared Python and the template add.

With `--browser` (needs Chromium at /usr/bin/chromium and the playwright package), it
also opens each page in headless Chromium and times navigation until every chart is
drawn (Plotly's 4.8 MB script comes from the local server; the first page pays
for parsing it).

Target (issue 15): every page <= 300 ms on the local store with 500,000 test runs.

Usage:
    .venv/bin/python scripts/bench_dashboard.py                  # 500,000 test runs
    .venv/bin/python scripts/bench_dashboard.py --size 20k       # a smoke run
    .venv/bin/python scripts/bench_dashboard.py --browser
Options: --store DIR, --repeat N, --browser.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

HERE = Path(__file__).resolve().parent
TARGET_MS = 300.0


def _bench_localstore() -> Any:
    spec = importlib.util.spec_from_file_location("bench_localstore", HERE / "bench_localstore.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_localstore"] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def evalstore_command() -> list[str]:
    script = Path(sys.executable).with_name("evalstore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "evalstore.cli"]


def wait_until_up(base: str, server: subprocess.Popen[bytes], timeout: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise SystemExit(f"evalstore serve exited {server.returncode}")
        try:
            httpx.get(f"{base}/api", timeout=1)
            return time.perf_counter() - started
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("evalstore serve did not answer within 60 s")


def timed_get(client: httpx.Client, url: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, response.status_code, len(response.content)


def direct_queries(path: Path, flaky_id: str) -> dict[str, Callable[[], Any]]:
    """The main query of each page, hand-written for the store's tables."""

    def run(sql: str, *params: Any) -> Callable[[], Any]:
        def go() -> Any:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
                return connection.execute(sql, params).fetchall()

        return go

    latest = "(SELECT _id FROM evaluation_runs ORDER BY started_at DESC LIMIT 1)"
    return {
        "runs": run("SELECT doc FROM evaluation_runs ORDER BY started_at DESC LIMIT 100"),
        "run": run(f"SELECT doc FROM test_runs WHERE evaluation_run_id = {latest}"),
        "test": run(
            "SELECT doc FROM test_runs WHERE test_id = ? ORDER BY finished_at DESC LIMIT 200",
            flaky_id,
        ),
        "compare": run(
            "SELECT doc FROM test_runs WHERE evaluation_run_id IN "
            "(SELECT _id FROM evaluation_runs ORDER BY started_at DESC LIMIT 2)"
        ),
        "flaky": run(
            "SELECT test_id, count(*), sum(status = 'passed') FROM test_runs GROUP BY test_id"
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench = _bench_localstore()
    parser.add_argument("--size", type=bench.parse_size, default=500_000, help="20k, 500k, 5m")
    parser.add_argument("--store", type=Path, help="the store's directory (default under /tmp)")
    parser.add_argument("--repeat", type=int, default=5, help="warm requests per page (median)")
    parser.add_argument("--browser", action="store_true", help="also time pages in Chromium")
    args = parser.parse_args()
    plan = bench.Plan(
        args.size - args.size % bench.default_tests_per_run(args.size),
        bench.default_tests_per_run(args.size),
    )
    root = (
        args.store or Path(tempfile.gettempdir()) / f"evalstore-bench-dashboard-{plan.tests_total}"
    ).resolve()
    bench.prepare_store(root, plan, rebuild=False)
    database = root / bench.DATABASE / bench.FILE_NAME
    profiles = bench.test_profiles(plan.tests_per_run)
    flaky_id = next(p.test_id for p in profiles if p.kind == "flaky")
    with closing(sqlite3.connect(database)) as connection:
        [(tests,)] = connection.execute("SELECT count(*) FROM test_runs").fetchall()
        [(runs,)] = connection.execute("SELECT count(*) FROM evaluation_runs").fetchall()
    since = "2024-01-01"
    pages = {
        "runs": f"/runs?since={since}",
        "run": "/runs/latest",
        "series": "/runs/latest/series",
        "compare": "/compare?base=previous&head=latest",
        "test": f"/test?id={quote(flaky_id)}",
        "trends": f"/trends?since={since}",
        "trends by branch": f"/trends?since={since}&group=branch",
        "flaky": f"/flaky?since={since}",
        "compare + stats": "/compare?base=previous&head=latest&stats=1",
        "configs": f"/configs?since={since}",
        "experiments": f"/experiments?a=nightly&b=beam-8&since={since}",
        "alerts": "/alerts",
        "cost": "/cost",
    }
    direct = direct_queries(database, flaky_id)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "EVALSTORE_"))}
    server = subprocess.Popen(
        [
            *evalstore_command(),
            "serve",
            "--url",
            f"file://{root}",
            "--db",
            bench.DATABASE,
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        start_s = wait_until_up(base, server)
        print(
            f"store: file://{root}: {runs:,} evaluation runs, {tests:,} test runs; "
            f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} cpus; server up in {start_s:.2f} s; median of {args.repeat}"
        )
        print(
            f"{'page':<18} {'status':>6} {'first ms':>9} {'page ms':>8} {'api ms':>7} "
            f"{'KB':>6} {'sqlite3 ms':>10} {'ratio':>6}  target <= {TARGET_MS:g} ms"
        )
        missed = 0
        with httpx.Client(base_url=base, timeout=120) as client:
            for name, path in pages.items():
                first, status, size = timed_get(client, path)
                page = statistics.median(timed_get(client, path)[0] for _ in range(args.repeat))
                api = statistics.median(
                    timed_get(client, "/api" + path)[0] for _ in range(args.repeat)
                )
                query = direct.get(name)
                direct_ms = (
                    statistics.median(_time(query) for _ in range(args.repeat)) if query else None
                )
                verdict = "met" if status == 200 and page <= TARGET_MS else "MISSED"
                missed += verdict != "met"
                print(
                    f"{name:<18} {status:>6} {first:>9.0f} {page:>8.0f} {api:>7.0f} "
                    f"{size / 1024:>6.0f} "
                    + (
                        f"{direct_ms:>10.1f} {page / direct_ms:>6.1f}"
                        if direct_ms
                        else f"{'':>10} {'':>6}"
                    )
                    + f"  {verdict}"
                )
        if args.browser:
            browser_times(base, pages)
        print(f"{len(pages) - missed} of {len(pages)} pages within {TARGET_MS:g} ms")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)


def _time(query: Callable[[], Any]) -> float:
    started = time.perf_counter()
    query()
    return (time.perf_counter() - started) * 1000


def browser_times(base: str, pages: dict[str, str]) -> None:
    """Navigation until every chart is drawn, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    print("\nin Chromium (navigation until every chart is drawn):")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        for name, path in pages.items():
            started = time.perf_counter()
            page.goto(base + path)
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-chart]')]"
                ".every(e => e.getAttribute('data-drawn') === 'true')"
            )
            print(f"  {name:<18} {(time.perf_counter() - started) * 1000:>7.0f} ms")
        browser.close()


if __name__ == "__main__":
    sys.exit(main())

"""The local store benchmark, run as a user runs it, on a tiny store (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_localstore.py"
COMMANDS = (
    "evalstore stats --since 2024-01-01",
    "evalstore flaky --since 2024-01-01",
    "evalstore slowest --since 2024-01-01",
    "evalstore trend --metric accuracy --since 2024-01-01",
    "evalstore trend --since 2024-01-01",
    "evalstore tests history tests/asr/",
    "evalstore compare previous latest",
    "evalstore runs list",
    "evalstore ping",
)


def _bench(store: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "EVALSTORE_"))}
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--tests-total",
            "2000",
            "--repeat",
            "1",
            "--store",
            str(store),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bench_localstore_builds_a_small_store_and_prints_every_command(tmp_path):
    store = tmp_path / "store"

    done = _bench(store)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"store: file://{store} (database bench): 20 evaluation runs, ")
    assert "2,000 test runs" in lines[0]
    assert lines[1].startswith("store build: ")
    rows = [line for line in lines if line.startswith("| `evalstore ")]
    assert len(rows) == len(COMMANDS)
    for row, command in zip(rows, COMMANDS, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0].startswith(f"`{command}"), row
        assert len(cells) == 10, row
        assert not cells[-1].startswith("ERROR"), row

    again = _bench(store)  # the store is cached: not built again

    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[1].startswith("store build: cached (built in ")

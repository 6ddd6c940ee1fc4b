"""The example custom runner and the overhead benchmark, run as a user runs them.

They run in subprocesses, whose embedded backend dies with them: the tests
read what the scripts print (the runner prints the stored run's aggregates).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
RUN_ID = r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-nogit-[0-9a-f]{6}"


def _run(
    script: str, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_example_runner_stores_the_scenarios_on_the_embedded_backend():
    done = _run(
        "example_runner.py", MONGODB_ENABLED="true", MONGODB_CONNECTION_STRING="mongomock://"
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        rf"evaluation run ({RUN_ID}) \(storing in mongomock:// database vt_metrics\)", lines[0]
    )
    run_id = lines[0].split()[2]
    # By hand: WER 1/15, 0/6 and 2/7 (a deletion; none; a deletion and an insertion);
    # completeness 14/15, 6/6 and 6/7; a test's score is the mean of its two metrics.
    assert lines[1:] == [
        "  passed  fever-follow-up        score  93.33  wer 6.7%  completeness 93.3",
        "  passed  dosage-instructions    score 100.00  wer 0.0%  completeness 100.0",
        "  passed  allergy-check          score  78.57  wer 28.6%  completeness 85.7",
        "tests 3  passed 3  failed 0  score 90.63",
        f"stored: evaluation run {run_id}  status completed  tests 3  passed 3  score 90.63  "
        "metrics completeness=93.02  wer=88.25",
    ]


def test_example_runner_runs_without_storage():
    done = _run("example_runner.py")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        rf"evaluation run {RUN_ID} \(storage disabled: set MONGODB_ENABLED=true to store results\)",
        lines[0],
    )
    assert lines[-1] == "tests 3  passed 3  failed 0  score 90.63"


def test_example_runner_exits_one_when_a_scenario_fails(tmp_path):
    (tmp_path / "garbled.yaml").write_text(
        "id: garbled\n"
        "threshold: 90\n"
        "turns:\n"
        "  - speaker: a\n"
        "    reference: one two three four\n"
        "    hypothesis: one too three for\n",
        encoding="utf-8",
    )

    done = _run(
        "example_runner.py",
        "--scenarios",
        str(tmp_path),
        MONGODB_ENABLED="true",
        MONGODB_CONNECTION_STRING="mongomock://",
    )

    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    # Two substitutions out of four words: WER 50%, completeness 50%.
    assert lines[1] == "  failed  garbled                score  50.00  wer 50.0%  completeness 50.0"
    assert lines[2] == "tests 1  passed 0  failed 1  score 50.00"
    assert "status completed  tests 1  passed 0  score 50.00" in lines[3]


@pytest.mark.parametrize(
    ("content", "message"),
    [("id: x\n", "missing threshold, turns"), (None, "no scenario files (*.yaml) in")],
)
def test_example_runner_rejects_bad_scenarios(tmp_path, content, message):
    if content is not None:
        (tmp_path / "bad.yaml").write_text(content, encoding="utf-8")

    done = _run("example_runner.py", "--scenarios", str(tmp_path))

    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr


def test_overhead_benchmark_prints_each_variant_against_no_plugin():
    # No plugin variant can run in half the time of no plugin: --max-ratio 0.5 fails both.
    done = _run("bench_plugin_overhead.py", "--tests", "30", "--rounds", "1", "--max-ratio", "0.5")

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tests: 30  (1 rounds, medians; ratio to no plugin; paired: ")
    timing = (
        r" +\d+\.\d\d s  x(\d+\.\d\d)  paired x(\d+\.\d\d)   "
        r"cpu +\d+\.\d\d s  x\d+\.\d\d   \(\d+\.\d\d\)"
    )
    names = ["no plugin", "--junitxml", "mongomock://", "file://"]
    rows = [
        re.fullmatch(re.escape(name) + timing, line)
        for name, line in zip(names, lines[1:5], strict=True)
    ]
    assert all(rows), lines
    assert rows[0] is not None
    assert rows[0].group(1) == rows[0].group(2) == "1.00"
    assert re.fullmatch(r"above x0\.5: mongomock:// x\d+\.\d\d, file:// x\d+\.\d\d", lines[5])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind (.ci/run installs it)")
def test_overhead_benchmark_counts_instructions_under_callgrind():
    done = _run(
        "bench_plugin_overhead.py",
        "--tests",
        "5",
        "--rounds",
        "0",
        "--instructions",
        "--only",
        "file://",
        timeout=600,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "tests: 5  (CPU instructions of the whole process, callgrind; ratio to no plugin)"
    )
    baseline = re.fullmatch(r"no plugin +([\d,]+)  x1\.000", lines[1])
    plugin = re.fullmatch(r"file:// +([\d,]+)  x(\d\.\d{3})", lines[2])
    assert baseline is not None, lines
    assert plugin is not None, lines
    counts = [int(match.group(1).replace(",", "")) for match in (baseline, plugin)]
    # A pytest session runs hundreds of millions of instructions; recording adds some.
    assert 10**8 < counts[0] < counts[1]
    assert plugin.group(2) == f"{counts[1] / counts[0]:.3f}"
    assert len(lines) == 3

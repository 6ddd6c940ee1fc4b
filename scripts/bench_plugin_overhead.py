"""Measure the pytest plugin's overhead: a suite of trivial tests, plugin inactive vs active.

Generates a temporary suite (by default 2,000 tests of `assert True` in 20
modules) and runs it in a subprocess, `python -m pytest -q -p no:cacheprovider`,
alternately with the plugin inactive and active on the embedded backend
(`--evalstore --evalstore-url mongomock://`). Prints the median wall time of
each and their ratio; the target is a ratio of at most 1.5.

    python scripts/bench_plugin_overhead.py                 # 2,000 tests, 5 rounds
    python scripts/bench_plugin_overhead.py --max-ratio 1.5 # exit 1 above 1.5

Not a timed test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVALSTORE_PREFIXES = ("MONGODB_", "EVALSTORE_", "ENVIRONMENT", "EXPERIMENT_TAGS")
SUMMARY = re.compile(r"^evalstore: run (\S+)\s+tests (\d+)\s+passed (\d+)", re.MULTILINE)


def write_suite(root: Path, tests: int, per_module: int = 100) -> None:
    """Write `tests` trivial tests into modules of `per_module` tests under `root`."""
    for module, first in enumerate(range(0, tests, per_module)):
        count = min(per_module, tests - first)
        body = "".join(f"def test_{i}():\n    assert True\n\n\n" for i in range(count))
        (root / f"test_m{module:03d}.py").write_text(body, encoding="utf-8")


def run_suite(root: Path, active: bool) -> tuple[float, str]:
    """Run the suite once; return the wall time in seconds and pytest's output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(EVALSTORE_PREFIXES)}
    env["MONGODB_DATABASE"] = "bench"
    env["EVALSTORE_SPOOL_DIR"] = str(root.parent / "spool")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if active:
        command += ["--evalstore", "--evalstore-url", "mongomock://"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pytest exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 1 when the ratio exceeds `--max-ratio`, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000, help="number of trivial tests")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument("--max-ratio", type=float, default=None, help="fail above this ratio")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="evalstore-bench-") as tmp:
        root = Path(tmp) / "suite"
        root.mkdir()
        write_suite(root, args.tests)
        run_suite(root, active=False)  # warm the file system and bytecode caches
        inactive: list[float] = []
        active: list[float] = []
        for _ in range(args.rounds):
            inactive.append(run_suite(root, active=False)[0])
            elapsed, output = run_suite(root, active=True)
            active.append(elapsed)
            summary = SUMMARY.search(output)
            if summary is None or int(summary.group(2)) != args.tests:
                raise SystemExit(f"the plugin did not record {args.tests} tests:\n{output}")

    off, on = statistics.median(inactive), statistics.median(active)
    ratio = on / off
    print(f"tests:            {args.tests}  ({args.rounds} rounds, medians)")
    print(f"plugin inactive:  {off:.2f} s  {' '.join(f'{t:.2f}' for t in inactive)}")
    print(f"plugin active:    {on:.2f} s  {' '.join(f'{t:.2f}' for t in active)}")
    print(f"ratio:            {ratio:.2f}")
    if args.max_ratio is not None and ratio > args.max_ratio:
        print(f"ratio {ratio:.2f} is above {args.max_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

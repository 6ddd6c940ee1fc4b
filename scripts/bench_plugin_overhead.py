"""Measure the pytest plugin's overhead on a suite of trivial parametrized tests.

Generates a temporary suite (by default 2,000 cases of `assert True`, 100 per
module) and runs it in fresh `python -m pytest -q -p no:cacheprovider`
processes, one variant after the other in each round:

- `no plugin`: `-p no:evalstore`, the baseline;
- `--junitxml`: `-p no:evalstore --junitxml=...`, the yardstick of a reporting plugin;
- `mongomock://`: the plugin recording on the embedded backend;
- `file://`: the plugin recording into the local store (a fresh directory each run).

Each round runs the variants in its own shuffled order (seeded by the round's number).

Prints each variant's median wall time and its ratio to `no plugin`, the median of
the ratios of each round (each run to the `no plugin` run of its round: the pair
shares the machine's speed of that moment, which drifts by 10% and more on a
shared virtual machine), the same for
the CPU time the process used (user + system: steadier than wall time on a busy
machine), and the wall time of each round.

    python scripts/bench_plugin_overhead.py                  # 2,000 tests, 5 rounds
    python scripts/bench_plugin_overhead.py --tests 20000    # 20,000 tests
    python scripts/bench_plugin_overhead.py --max-ratio 1.25 # exit 1 when a plugin variant is above
    python scripts/bench_plugin_overhead.py --only file://   # the baseline and one variant

The first run of each variant is a warm-up (file system, bytecode caches) and is
not counted. Not a timed test: timings depend on the machine and its load.

`--instructions` runs each variant once more under `valgrind --tool=callgrind`
and prints the CPU instructions the whole process executed (both threads) and
their ratio: a count that is the same from one run to the next whatever else the
machine does, where wall times on a shared machine drift by 10-40%. It is slow
(about 30 times the wall time) and needs valgrind (`apt-get install valgrind`).
Instructions are not time (cache misses, system calls and waits are not in them),
so both are printed.

    python scripts/bench_plugin_overhead.py --rounds 0 --instructions   # counts only
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

EVALSTORE_PREFIXES = ("MONGODB_", "EVALSTORE_", "ENVIRONMENT", "EXPERIMENT_TAGS")
SUMMARY = re.compile(r"^evalstore: run (\S+)\s+tests (\d+)\s+passed (\d+)", re.MULTILINE)
PER_MODULE = 100
COLLECTED = re.compile(r"Collected : ([\d,]+)")


@dataclass
class Variant:
    """One way of running the suite, and its wall times."""

    name: str
    args: list[str]
    store: str | None = None
    """The connection string the plugin records into (None: the plugin is not loaded)."""
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    instructions: int | None = None
    """What `--instructions` counted (None: not counted)."""
    problem: str | None = None
    """Why the variant stopped (a failed run, a test not recorded)."""


def write_suite(root: Path, tests: int, per_module: int = PER_MODULE) -> None:
    """Write `tests` parametrized trivial test cases into modules of `per_module` cases."""
    for module, first in enumerate(range(0, tests, per_module)):
        count = min(per_module, tests - first)
        body = (
            "import pytest\n\n\n"
            f"@pytest.mark.parametrize('case', range({count}))\n"
            "def test_trivial(case):\n"
            "    assert True\n"
        )
        (root / f"test_m{module:03d}.py").write_text(body, encoding="utf-8")


def variants(work: Path) -> list[Variant]:
    """The four variants, in the order each round runs them."""
    return [
        Variant("no plugin", ["-p", "no:evalstore"]),
        Variant("--junitxml", ["-p", "no:evalstore", f"--junitxml={work / 'junit.xml'}"]),
        Variant("mongomock://", [], store="mongomock://"),
        Variant("file://", [], store=f"file://{work / 'store'}"),
    ]


def run_suite(
    root: Path, work: Path, variant: Variant, tests: int, run: int, *, count: bool = False
) -> None:
    """Run the suite once in a fresh process; add its wall time (or, with `count`, its
    instructions under callgrind), or note its problem."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(EVALSTORE_PREFIXES)}
    # Bytecode caches as users have them: the warm-up run writes them (for the suite too).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["MONGODB_DATABASE"] = "bench"
    # A fresh spool (and local store) per run: no run replays or reads what another left.
    env["EVALSTORE_SPOOL_DIR"] = str(work / f"spool-{run}-{len(variant.times)}")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *variant.args]
    if variant.store is not None:
        store = f"{variant.store}-{run}" if variant.store.startswith("file://") else variant.store
        command += ["--evalstore", "--evalstore-url", store]
    if count:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command]
    used = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    used = _children_cpu() - used
    variant.problem = problem(variant, done, tests)
    if variant.problem is not None:
        return
    if count:
        collected = COLLECTED.search(done.stderr)
        if collected is None:
            variant.problem = "valgrind printed no instruction count"
        else:
            variant.instructions = int(collected.group(1).replace(",", ""))
        return
    variant.times.append(elapsed)
    variant.cpu.append(used)


def _children_cpu() -> float:
    """User and system seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def problem(variant: Variant, done: subprocess.CompletedProcess[str], tests: int) -> str | None:
    """Why a run does not count: pytest failed, or the plugin did not record every test."""
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        return f"pytest exited {done.returncode}: {lines[-1] if lines else ''}"
    if variant.store is None:
        return None
    warning = re.search(r"^evalstore: WARNING: .*$", done.stdout, re.MULTILINE)
    if warning is not None:
        return warning.group(0)
    summary = SUMMARY.search(done.stdout)
    if summary is None or int(summary.group(2)) != tests:
        return f"the plugin did not record {tests} tests"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 1 when a plugin variant's ratio exceeds `--max-ratio`."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000, help="number of trivial test cases")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    parser.add_argument(
        "--max-ratio", type=float, default=None, help="fail when a plugin variant is above"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="VARIANT",
        help="run only this variant besides `no plugin` (repeatable: --junitxml, mongomock://, "
        "file://)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each variant's CPU instructions once under valgrind's callgrind",
    )
    args = parser.parse_args(argv)
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (apt-get install valgrind)")
    if args.rounds < 1 and not args.instructions:
        parser.error("--rounds must be at least 1 (or 0 with --instructions)")

    with tempfile.TemporaryDirectory(prefix="evalstore-bench-") as tmp:
        root, work = Path(tmp) / "suite", Path(tmp) / "work"
        root.mkdir()
        work.mkdir()
        write_suite(root, args.tests)
        runs = variants(work)
        if args.only:
            unknown = set(args.only) - {variant.name for variant in runs}
            if unknown:
                parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
            runs = [runs[0], *(variant for variant in runs[1:] if variant.name in args.only)]
        for variant in runs:  # warm the file system and bytecode caches
            run_suite(root, work, variant, args.tests, run=0)
            variant.times.clear()
            variant.cpu.clear()
        for number in range(1, args.rounds + 1):
            # Each round in its own order: on a shared machine the run after a long one, or
            # the first of a round, may be slower or faster; no variant always gets that place.
            for variant in random.Random(number).sample(runs, len(runs)):
                if variant.problem is None:
                    run_suite(root, work, variant, args.tests, run=number)
        if args.instructions:
            for variant in runs:
                if variant.problem is None:
                    run_suite(root, work, variant, args.tests, run=args.rounds + 1, count=True)

    if runs[0].problem is not None:
        raise SystemExit(f"the suite does not run: {runs[0].problem}")
    if args.instructions:
        print_instructions(runs, args.tests)
    if args.rounds < 1:
        return 1 if any(variant.problem for variant in runs) else 0
    return print_times(runs, args.tests, args.rounds, args.max_ratio)


def print_instructions(runs: list[Variant], tests: int) -> None:
    """Each variant's instruction count and its ratio to `no plugin`'s."""
    baseline = runs[0].instructions
    assert baseline is not None
    print(f"tests: {tests}  (CPU instructions of the whole process, callgrind; ratio to no plugin)")
    for variant in runs:
        if variant.problem is not None or variant.instructions is None:
            print(f"{variant.name:<14} failed: {variant.problem}")
            continue
        ratio = variant.instructions / baseline
        print(f"{variant.name:<14}{variant.instructions:>17,}  x{ratio:.3f}")


def print_times(runs: list[Variant], tests: int, rounds: int, max_ratio: float | None) -> int:
    """Print the wall and CPU times; 1 when a plugin variant's ratio exceeds `max_ratio`."""
    baseline, baseline_cpu = statistics.median(runs[0].times), statistics.median(runs[0].cpu)
    print(
        f"tests: {tests}  ({rounds} rounds, medians; ratio to no plugin; paired: the "
        "median of each round's ratio to the no-plugin run of that round)"
    )
    above = []
    for variant in runs:
        if variant.problem is not None:
            print(f"{variant.name:<14} failed: {variant.problem}")
            above.append(f"{variant.name} failed")
            continue
        median, cpu = statistics.median(variant.times), statistics.median(variant.cpu)
        ratio = median / baseline
        # Close in time, a pair shares the machine's speed of that moment.
        paired = statistics.median(
            t / b for t, b in zip(variant.times, runs[0].times, strict=False)
        )
        each = " ".join(f"{t:.2f}" for t in variant.times)
        print(
            f"{variant.name:<14}{median:7.2f} s  x{ratio:.2f}  paired x{paired:.2f}   "
            f"cpu {cpu:6.2f} s  x{cpu / baseline_cpu:.2f}   ({each})"
        )
        if variant.store is not None and max_ratio is not None and ratio > max_ratio:
            above.append(f"{variant.name} x{ratio:.2f}")
    if above and max_ratio is not None:
        print(f"above x{max_ratio}: {', '.join(above)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

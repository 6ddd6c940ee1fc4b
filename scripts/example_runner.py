"""An example custom runner: runs YAML scenarios, computes metrics, records them in evalstore.

This is the pattern for any runner that is not pytest: open one evaluation run,
call `record_test` once per scenario with the metrics you computed, and let the
`async with` block finalise the run (counts, metric means, score). Storage is
configured only by the environment variables (`MONGODB_ENABLED`,
`MONGODB_CONNECTION_STRING`, `MONGODB_DATABASE`, `ENVIRONMENT`,
`EXPERIMENT_TAGS`); without `MONGODB_ENABLED=true` it runs the same and stores
nothing.

    python scripts/example_runner.py                       # storage disabled
    MONGODB_ENABLED=true MONGODB_CONNECTION_STRING=mongomock:// \\
        python scripts/example_runner.py                   # embedded backend
    python scripts/example_runner.py --scenarios DIR       # other scenario files

Each scenario file holds turns of a conversation, each with the `reference`
(what was said) and the `hypothesis` (what the system under test produced).
Two toy metrics are computed over all turns:

- `wer`: 100 minus the word error rate in percent (word-level edit distance
  divided by the number of reference words), passed when at least `threshold`;
- `completeness`: the percentage of reference words found in the hypothesis.

The test score is their mean. Exit code: 0 when every scenario passed, 1 when
one failed, 2 when a scenario file or the storage configuration is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from evalstore import EvalstoreError, evaluation_run

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return _WORD.findall(text.lower())


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance: substitutions, deletions and insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (ref_word != hyp_word),  # substitution or match
                )
            )
        previous = current
    return previous[-1]


def evaluate(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scenario's metrics, in the shape `record_test(metrics=...)` takes."""
    errors = reference_words = found = 0
    for turn in scenario["turns"]:
        reference, hypothesis = words(turn["reference"]), words(turn["hypothesis"])
        errors += edit_distance(reference, hypothesis)
        reference_words += len(reference)
        found += sum((Counter(reference) & Counter(hypothesis)).values())
    wer_percent = 100.0 * errors / reference_words
    wer_score = max(0.0, 100.0 - wer_percent)
    threshold = float(scenario["threshold"])
    return {
        "wer": {
            "score": wer_score,
            "threshold": threshold,
            "passed": wer_score >= threshold,
            "unit": "%",
            "details": {"wer_percent": wer_percent, "errors": errors, "words": reference_words},
        },
        "completeness": {"score": 100.0 * found / reference_words, "unit": "%"},
    }


def load_scenarios(directory: Path) -> list[dict[str, Any]]:
    """The scenarios of `directory/*.yaml`, in file name order."""
    scenarios = []
    for path in sorted(directory.glob("*.yaml")):
        scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
        missing = {"id", "threshold", "turns"} - set(scenario or {})
        if missing:
            raise ValueError(f"{path}: missing {', '.join(sorted(missing))}")
        scenarios.append(scenario)
    if not scenarios:
        raise ValueError(f"no scenario files (*.yaml) in {directory}")
    return scenarios


async def run_scenarios(directory: Path) -> int:
    """Run every scenario of `directory` inside one evaluation run; return the exit code."""
    scenarios = load_scenarios(directory)
    results: list[dict[str, Any]] = []
    config = {"runner": "example_runner", "metrics": ["wer", "completeness"]}
    async with evaluation_run(config=config, packages=["evalstore", "pyyaml"]) as run:
        where = (
            f"storing in {run.service.client.redacted_uri} database "
            f"{run.service.client.database_name}"
            if run.service is not None
            else "storage disabled: set MONGODB_ENABLED=true to store results"
        )
        print(f"evaluation run {run.evaluation_run_id} ({where})")
        for scenario in scenarios:
            started = time.perf_counter()
            metrics = evaluate(scenario)
            speakers = sorted({turn["speaker"] for turn in scenario["turns"] if "speaker" in turn})
            result = await run.record_test(
                scenario["id"],
                scenario.get("description"),
                metrics=metrics,
                tags=scenario.get("tags", []),
                participants=speakers,
                duration_ms=(time.perf_counter() - started) * 1000.0,
            )
            results.append(result)
            print(
                f"  {result['status']:<7} {result['test_id']:<22} score {result['score']:6.2f}"
                f"  wer {metrics['wer']['details']['wer_percent']:.1f}%"
                f"  completeness {metrics['completeness']['score']:.1f}"
            )
    passed = sum(result["passed"] for result in results)
    score = sum(result["score"] for result in results) / len(results)
    print(
        f"tests {len(results)}  passed {passed}  failed {len(results) - passed}  score {score:.2f}"
    )
    if run.enabled:
        stored = run.document
        means = "  ".join(f"{name}={mean:.2f}" for name, mean in sorted(stored["metrics"].items()))
        print(
            f"stored: evaluation run {stored['evaluation_run_id']}  status {stored['status']}  "
            f"tests {stored['num_tests']}  passed {stored['num_passed']}  "
            f"score {stored['score']:.2f}  metrics {means}"
        )
    return 0 if passed == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the scenarios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS, help="scenario directory")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run_scenarios(args.scenarios))
    except (EvalstoreError, ValueError, OSError, yaml.YAMLError) as exc:
        print(f"example_runner: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

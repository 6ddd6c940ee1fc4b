"""`evalstore demo`: simulate ten evaluation runs through the public API."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from evalstore.models import utcnow
from evalstore.monitors.monitor import Monitor
from evalstore.monitors.rules import Rule
from evalstore.recording.run import RunRecorder, evaluation_run
from evalstore.service import MetricsStorageService

DEMO_DATABASE = "evalstore_demo"
FLAKY_TEST = "hotel-checkin-fr-en"

TESTS: tuple[str, ...] = (
    "doctor-patient-es-en",
    "pharmacy-refill-de-en",
    "school-meeting-ar-en",
    "bank-account-zh-en",
    "emergency-call-es-en",
    "job-interview-pt-en",
    FLAKY_TEST,
    "court-hearing-ru-en",
    "tenant-rights-uk-en",
    "vaccine-consent-vi-en",
    "lost-luggage-it-en",
    "insurance-claim-ko-en",
)

CONFIGS: dict[str, dict[str, object]] = {
    "baseline": {"asr": "whisper-small", "beam_size": 1, "vad": "silero"},
    "config-tweak": {"asr": "whisper-small", "beam_size": 5, "vad": "silero"},
}

WER_THRESHOLD = 70.0  # a test passes when its WER score reaches this
DEMO_MODEL = "gpt-4o-mini"
FINE_TUNING_STEPS = 30


@dataclass
class DemoClock:
    """A clock the demo moves forward by hand, so runs spread over several days."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def record_demo_history(
    service: MetricsStorageService,
    *,
    runs: int = 10,
    seed: int = 7,
    on_test: Callable[[], None] | None = None,
    full: bool = False,
) -> list[str]:
    """Record `runs` evaluation runs, one a day ending today; return their ids, oldest first.

    The first half run the `baseline` configuration, the second half
    `config-tweak` (better WER). One test, `hotel-checkin-fr-en`, flips
    between passing and failing.

    With `full`, each test also records the tokens of its translation model's calls
    (priced by genai-prices), each run a short fine-tuning curve (`loss`, `accuracy`,
    train and eval), and a monitor rule raises an alert whenever the flaky test
    fails: what the dashboard's cost, curves and alerts pages show.
    """
    rng = random.Random(seed)
    # The last run starts half an hour ago, so no run is in the future whatever the time of day.
    last_start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=30)
    ids: list[str] = []
    for index in range(runs):
        name = "baseline" if index < runs // 2 else "config-tweak"
        clock = DemoClock(last_start - timedelta(days=runs - 1 - index))
        async with evaluation_run(
            service,
            config=CONFIGS[name],
            tags=[name],
            environment="dev",
            clock=clock,
            repo_path=".",
            monitor=demo_monitor() if full else True,
        ) as run:
            if full:
                await _log_fine_tuning(run, rng, index)
            for test_id in TESTS:
                started = clock()
                wer, completeness = _scores(rng, name, test_id, index)
                clock.advance(rng.uniform(2.0, 9.0))
                await run.record_test(
                    test_id,
                    test_name=test_id.replace("-", " "),
                    metrics={
                        "wer": {
                            "score": wer,
                            "threshold": WER_THRESHOLD,
                            "unit": "%",
                            "passed": wer >= WER_THRESHOLD,
                        },
                        "completeness": {"score": completeness, "unit": "%"},
                    },
                    started_at=started,
                    finished_at=clock(),
                    tags=[test_id.rsplit("-", 2)[-2]],
                    participants=["doctor", "patient"] if "doctor" in test_id else [],
                )
                if full:
                    await run.record_usage(
                        DEMO_MODEL,
                        provider="openai",
                        input_tokens=rng.randint(900, 1600),
                        output_tokens=rng.randint(150, 400),
                        test_id=test_id,
                    )
                if on_test:
                    on_test()
        ids.append(run.evaluation_run_id)
    return ids


def demo_monitor() -> Monitor:
    """The demo's one rule: an error alert when the flaky test's WER score drops below 70."""
    return Monitor(
        [
            Rule(
                name="flaky-test-wer",
                metric="metrics.wer",
                tests=FLAKY_TEST,
                check="below",
                threshold=WER_THRESHOLD,
                level="error",
            )
        ]
    )


async def _log_fine_tuning(run: RunRecorder, rng: random.Random, index: int) -> None:
    """A fine-tuning curve: the loss falls (a little lower in later runs), accuracy rises."""
    floor = 0.35 - 0.01 * index
    for step in range(FINE_TUNING_STEPS):
        progress = step / (FINE_TUNING_STEPS - 1)
        loss = floor + 2.0 * math.exp(-4.0 * progress) + rng.uniform(-0.03, 0.03)
        await run.log_metrics(
            {"loss": round(loss, 4), "accuracy": round(0.55 + 0.4 * progress**0.5, 4)},
            step=step,
        )
        if step % 5 == 4:
            await run.log_metrics({"loss": round(loss + 0.08, 4)}, step=step, split="eval")


def _scores(rng: random.Random, config: str, test_id: str, index: int) -> tuple[float, float]:
    base = 78.0 if config == "baseline" else 84.0
    wer = base + rng.uniform(-6.0, 8.0)
    if test_id == FLAKY_TEST:
        wer = 82.0 if index % 2 == 0 else 61.0
    completeness = min(100.0, 88.0 + rng.uniform(-5.0, 10.0))
    return round(wer, 1), round(completeness, 1)

"""`evaluation_run_document` gives exactly what the `EvaluationRun` model gives.

The recorder opens a run without pydantic when its values are plainly valid
(`models.evaluation_run_document`), so that a pytest session recording plain
results never imports it. Over many inputs, edge cases included, the document
must equal the model's down to types, key order and time zones, and every
input the model refuses must be refused with the model's error.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from test_test_run_document import containers, same

from evalstore.models import (
    EVALUATION_RUN_FIELDS,
    EvaluationRun,
    _plain_run_document,
    describe_validation_error,
    evaluation_run_document,
)

UTC = timezone.utc
T0 = datetime(2025, 12, 5, 10, 30, 0, 123000, tzinfo=UTC)


class Word(str):
    pass


def base_fields() -> dict[str, Any]:
    """What `RunRecorder.start` gives the builder."""
    return {
        "evaluation_run_id": "2025-12-05T10-30-00Z-main-a1b2c3",
        "started_at": T0,
        "git_commit": "a1b2c3d4",
        "git_branch": "main",
        "git_dirty": False,
        "environment": "dev",
        "suite": "speech",
        "experiment_tags": ["baseline", "beam-5"],
        "system_information": {
            "python": "3.11.7",
            "packages": {"pytest": "9.2.0", "torch": None},
            "config": {"beam": 5, "lr": 0.001, "langs": ("en", "de"), "when": T0},
        },
        "system_info_hash": "0" * 64,
        "last_seen_at": T0 + timedelta(seconds=1),
    }


def field_values() -> dict[str, list[Any]]:
    """For each field, usual, unusual and invalid values."""
    berlin = datetime(2025, 12, 5, 11, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    dates = [
        T0,
        T0.replace(microsecond=123456),
        T0.replace(tzinfo=None),
        berlin,
        datetime(999, 12, 31, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        "2025-12-05T10:30:00Z",
        1764930600,
        None,
    ]
    texts = ["x", "", " ", "é", "\ud800", Word("w"), 1, None, b"bytes"]
    return {
        "evaluation_run_id": texts,
        "started_at": dates,
        "finished_at": dates,
        "last_seen_at": dates,
        "git_commit": texts,
        "git_branch": texts,
        "suite": texts,
        "git_dirty": [True, False, None, 1, 0, "yes", "false"],
        "environment": ["dev", "lab", "", "\ud800", Word("dev"), None, 3],
        "experiment_tags": [
            [],
            ["a"],
            ("a", "b"),
            [Word("a")],
            ["\ud800"],
            [1],
            "a,b",
            None,
            {"a"},
        ],
        "system_information": [
            {},
            {"a": 1},
            {"a": (1, 2), "b": {"c": [T0.replace(microsecond=5)]}},
            {"a": math.nan},
            {"a": 2**63},
            {"a.b": 1},
            {"$a": 1},
            {1: "x"},
            {"a": {1, 2}},
            {"a": b"x"},
            [("a", 1)],
            None,
        ],
        "system_info_hash": texts,
        "metrics": [{}, {"wer": 1.5}, {"wer": "x"}, None],
        "num_tests": [0, 3, -1, True, 2.0, "4", None],
        "num_failed": [0, 1, 1.5],
        "status": ["running", "completed", "failed", "interrupted", "bogus", Word("running"), None],
        "score": [None, 50.0, 50, 101, math.nan, True, "5"],
        "id": [None],
    }


def outcome(fields: dict[str, Any], build: Any) -> tuple[str, Any]:
    try:
        return "ok", build(fields)
    except ValidationError as exc:
        return "invalid", describe_validation_error(exc)


def check(fields: dict[str, Any]) -> bool:
    """Compare the direct builder with the model; True when the direct path built it."""
    expected = outcome(fields, lambda f: EvaluationRun(**f).to_document())
    actual = outcome(fields, evaluation_run_document)
    assert actual[0] == expected[0], (fields, actual, expected)
    if actual[0] == "ok":
        assert same(actual[1], expected[1]), (fields, actual, expected)
        assert not containers(actual[1]) & containers(fields), "shares a container with its input"
    else:
        assert actual == expected
    return _plain_run_document(fields) is not None


def test_the_usual_run_is_built_directly_as_the_model_builds_it() -> None:
    fields = base_fields()
    assert _plain_run_document(fields) is not None  # not pydantic: it costs a session ~60 ms
    assert check(fields)
    document = evaluation_run_document(fields)
    assert tuple(document) == EVALUATION_RUN_FIELDS
    stored_fields = [name for name, info in EvaluationRun.model_fields.items() if not info.exclude]
    assert tuple(stored_fields) == EVALUATION_RUN_FIELDS
    assert document["system_information"]["config"]["langs"] == ["en", "de"]
    assert document["status"] == "running"
    assert document["num_tests"] == 0


def test_each_field_value_gives_the_models_document() -> None:
    base = base_fields()
    direct = 0
    for key, values in field_values().items():
        for value in values:
            direct += check({**base, key: value})
    for missing in base:
        check({k: v for k, v in base.items() if k != missing})
    check({**base, "unknown": 1})
    assert direct > 40


def test_random_combinations_give_the_models_document() -> None:
    rng = random.Random(11)
    base = base_fields()
    choices = field_values()
    direct = 0
    for _ in range(3000):
        fields = dict(base)
        for key in rng.sample(list(choices), rng.randint(1, 4)):
            fields[key] = rng.choice(choices[key])
        direct += check(fields)
    assert direct > 300

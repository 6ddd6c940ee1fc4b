"""The usual test result, checked and built in one pass.

`RunRecorder.record_tests` checks each argument of a result on its own
(`RunRecorder._test_run`), builds the fields and hands them to
`build_test_run_document`, which checks them all again; it then copies the
document to give it an `_id`, and `codec.encode_test_run` checks it a third
time while writing its text. A pytest session does that for every test, with
results of one shape: a status, times, maybe a message and marker tags, no
metrics and no details. `plain_test_run` builds such a result's document (with
its `_id`) and text directly, with each check done once.

Anything else returns None and takes the general path, which stays the
reference: `tests/recording/test_plain_result.py` requires both to build the
same document and text, and the general path to refuse what this one passes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from bson import ObjectId

from evalstore.codec import encode_plain_test_run
from evalstore.ids import new_test_run_id
from evalstore.models import EARLIEST_DATE, MAX_DURATION_MS, TEST_STATUSES, to_utc
from evalstore.recording.scoring import average_score, score_method
from evalstore.storage.engine import EncodedTestRun

PLAIN_KEYS = frozenset(
    (
        "test_id",
        "test_name",
        "status",
        "message",
        "details",
        "tags",
        "metrics",
        "duration_ms",
        "started_at",
        "finished_at",
    )
)
"""The arguments of `record_test` a plain result may give (others take the general path)."""

LARGE_TEXT = 1024 * 1024
"""Text beyond which a result is measured against MongoDB's document limit."""

_UTC = timezone.utc


def plain_test_run(
    result: Mapping[str, Any], run: Mapping[str, Any]
) -> tuple[dict[str, Any], EncodedTestRun] | None:
    """The stored document (with its `_id`) of a plain result of `run`, and its text.

    Args:
        result: the keyword arguments of `record_test`.
        run: the evaluation run document the result belongs to.

    Returns:
        What `record_tests` would store and journal for `result`; None when `result`
        is not plain (metrics, details, usage, an unusual type or value, an error):
        the general path then builds it, or refuses it with its own message.
    """
    if (
        type(result) is not dict
        or not all(type(key) is str for key in result)  # before a key's own __eq__ runs
        or not PLAIN_KEYS.issuperset(result)
    ):
        return None
    get = result.get
    test_id = get("test_id")
    test_name = get("test_name")
    status = get("status")
    message = get("message")
    tags = get("tags", ())
    metrics = get("metrics")
    duration = get("duration_ms")
    started = get("started_at")
    finished = get("finished_at")
    run_oid = run["_id"]
    if not (
        type(test_id) is str
        and test_id.isascii()
        and test_id.strip()
        and (test_name is None or (type(test_name) is str and test_name.isascii()))
        and (message is None or (type(message) is str and message.isascii()))
        and get("details") is None
        and (metrics is None or (type(metrics) is dict and not metrics))
        and (status is None or (type(status) is str and status in TEST_STATUSES))
        and (type(tags) is tuple or type(tags) is list)
        and all(type(tag) is str and tag and tag.isascii() for tag in tags)
        and (type(duration) is float or type(duration) is int)
        and 0 <= duration <= MAX_DURATION_MS
        and type(started) is datetime
        and started.tzinfo is _UTC
        and type(finished) is datetime
        and finished.tzinfo is _UTC
        and type(run_oid) is ObjectId
    ):
        return None
    started, finished = to_utc(started), to_utc(finished)
    name = test_name or test_id
    if started < EARLIEST_DATE or finished < started:
        return None
    if len(test_id) + len(name) + len(message or "") + sum(map(len, tags)) > LARGE_TEXT:
        return None  # the general path measures it against MongoDB's limit
    passed = status is None or status == "passed"
    score: float | None = None
    if status != "skipped":
        if score_method("average") is not average_score:  # a calculator registered instead
            return None
        score = 100.0 if passed else 0.0
    test_run_id = new_test_run_id(run["evaluation_run_id"], test_id)
    if not test_run_id.isascii():
        return None
    document = {
        "_id": ObjectId(),
        "evaluation_run_id": run_oid,
        "test_run_id": test_run_id,
        "test_id": test_id,
        "test_name": name,
        "started_at": started,
        "finished_at": finished,
        "duration_ms": float(duration),
        "metrics": {},
        "score": score,
        "score_method": "average",
        "passed": passed,
        "status": status or "passed",
        "tags": list(tags),
        "participants": [],
        "message": message,
        "details": None,
    }
    return document, encode_plain_test_run(document)

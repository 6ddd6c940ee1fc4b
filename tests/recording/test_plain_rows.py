"""The local store's fast path for test runs refuses and stores exactly as the exact checks do.

`documents.stored_test_row` writes a test run's text from the codec's template and,
for a plain document (typed fields, no free-form value), skips the BSON encoding
that `bson_problem` uses to find a document MongoDB would refuse: the size of such
a document is bounded by `BSON_BYTES_PER_PLAIN_CHAR` bytes per character of its
text, and what BSON cannot encode (a NUL in a key, a lone surrogate) shows as a
`\\u` escape. These tests hold the bound and the answers against the exact path,
on the journal encoding tests' documents and on the worst cases for the bound.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any

import bson
import pytest
from bson import ObjectId
from test_journal_encoding import TEXTS, base_document, outcome, sample_entries

from evalstore.codec import encode_test_run
from evalstore.models import MAX_DOCUMENT_BYTES
from evalstore.storage.engine import BSON_BYTES_PER_PLAIN_CHAR, bson_problem
from evalstore.storage.sqlite import documents
from evalstore.storage.sqlite.documents import encode_document, stored_test_row, templated_test_row

row_of_test = documents.test_row  # not named test_*: pytest would collect it


def exact_row(document: dict[str, Any]) -> tuple[tuple[Any, ...] | None, str]:
    """What the store did before the fast path: BSON's verdict, then the JSON text."""
    problem = bson_problem(document)
    if problem is None:
        try:
            return row_of_test(document, encode_document(document)), ""
        except (TypeError, ValueError) as exc:
            problem = str(exc)
    return None, problem


def documents() -> list[dict[str, Any]]:
    """Test run documents of every shape the journal encoding tests try, and plain ones."""
    docs = [entry["doc"] for entry in sample_entries() if isinstance(entry.get("doc"), dict)]
    base = base_document()
    for text in (*TEXTS, "a\\u0041", "\x00", "nul\x00in", "😀"):
        docs.append({**base, "metrics": {text: base["metrics"]["wer"]}})
        docs.append({**base, "tags": [text, "b"], "test_name": text, "message": text})
    docs.append({**base, "metrics": {}, "score": None})
    return [doc for doc in docs if "_id" in doc]


def test_rows_and_refusals_are_those_of_the_exact_checks() -> None:
    plain = 0
    for doc in documents():
        kind, encoded = outcome(encode_test_run, doc)
        plain += kind == "ok" and encoded is not None and encoded[1]
        assert outcome(stored_test_row, doc) == outcome(exact_row, doc), repr(doc)
    assert plain > 100  # the fast path, not only the exact one, is compared


def test_a_templated_row_is_the_generic_row() -> None:
    for doc in documents():
        kind, encoded = outcome(encode_test_run, doc)
        if kind == "ok" and encoded is not None:
            assert templated_test_row(doc, encoded[0]) == row_of_test(doc, encoded[0]), repr(doc)


def bson_size_per_char(doc: dict[str, Any]) -> float:
    encoded = encode_test_run(doc)
    assert encoded is not None
    assert encoded[1]  # plain
    return len(bson.encode(doc)) / len(encoded[0])


@pytest.mark.parametrize("count", [0, 1, 9, 10, 99, 100, 999, 1000, 10_000, 100_000])
@pytest.mark.parametrize("field", ["tags", "participants"])
def test_the_size_bound_holds_for_lists_of_empty_strings(field: str, count: int) -> None:
    """The worst case for the bound: an empty string in a list costs 7 bytes plus its index."""
    doc = {**base_document(), "metrics": {}, field: [""] * count}
    assert bson_size_per_char(doc) <= BSON_BYTES_PER_PLAIN_CHAR - 0.5


def test_the_size_bound_holds_at_the_largest_plain_text_the_fast_path_takes() -> None:
    """A list of empty tags as long as the fast path allows: its BSON still fits."""
    limit = MAX_DOCUMENT_BYTES // BSON_BYTES_PER_PLAIN_CHAR
    base = {**base_document(), "metrics": {}}
    encoded = encode_test_run({**base, "tags": []})
    assert encoded is not None
    count = (limit - len(encoded[0])) // 4  # each further `"", ` is 4 characters
    doc = {**base, "tags": [""] * count}
    encoded = encode_test_run(doc)
    assert encoded is not None
    assert len(encoded[0]) <= limit
    assert bson_problem(doc, plain_text=encoded[0]) is None
    assert len(bson.encode(doc)) <= MAX_DOCUMENT_BYTES
    assert bson_problem(doc) is None


def test_the_size_bound_holds_for_random_plain_documents() -> None:
    rng = random.Random(11)
    alphabet = ["", "a", "ab", "x" * 40, "\n", '"', "\\"]
    for _ in range(2000):
        metric = {
            "score": rng.choice([0.0, 1.0, 1 / 3, 100.0]),
            "passed": rng.choice([None, True, False]),
            "threshold": rng.choice([None, 0.5]),
            "unit": rng.choice([None, "", "ms"]),
            "details": None,
        }
        doc = {
            **base_document(),
            "started_at": datetime(2025, 1, 1, tzinfo=timezone.utc),
            "finished_at": datetime(2025, 1, 1, 0, 0, 1, tzinfo=timezone.utc),
            "test_id": rng.choice(alphabet),
            "test_name": rng.choice(alphabet),
            "message": rng.choice([None, *alphabet]),
            "score": rng.choice([None, 0.0, 50.0]),
            "metrics": {
                rng.choice(["m", "n" * 30]) + str(i): metric for i in range(rng.randint(0, 20))
            },
            "tags": [rng.choice(alphabet) for _ in range(rng.randint(0, 300))],
            "participants": [rng.choice(alphabet) for _ in range(rng.randint(0, 30))],
        }
        assert bson_size_per_char(doc) <= BSON_BYTES_PER_PLAIN_CHAR


def test_what_bson_cannot_encode_never_takes_the_fast_path() -> None:
    base = base_document()
    for doc in (
        {**base, "metrics": {"nul\x00name": base["metrics"]["wer"]}},
        {**base, "metrics": {"\ud800": base["metrics"]["wer"]}},
        {**base, "tags": ["lone \udfff"]},
        {**base, "test_name": "\ud83d"},
    ):
        encoded = encode_test_run(doc)
        assert encoded is not None
        assert encoded[1]  # plain: the text alone must tell
        assert bson_problem(doc) is not None
        assert bson_problem(doc, plain_text=encoded[0]) is not None
        row, problem = stored_test_row(doc)
        assert row is None
        assert problem == bson_problem(doc)


def test_a_plain_text_too_long_for_the_bound_is_measured() -> None:
    big = "x" * (MAX_DOCUMENT_BYTES // BSON_BYTES_PER_PLAIN_CHAR)
    doc = {**base_document(), "_id": ObjectId(), "message": big}
    encoded = encode_test_run(doc)
    assert encoded is not None
    assert bson_problem(doc, plain_text=encoded[0]) == bson_problem(doc) is None
    doc["message"] = "x" * MAX_DOCUMENT_BYTES
    encoded = encode_test_run(doc)
    assert encoded is not None
    assert bson_problem(doc, plain_text=encoded[0]) == bson_problem(doc) is not None

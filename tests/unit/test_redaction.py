"""Passwords in connection strings never reach a message."""

from __future__ import annotations

import pytest

from evalstore.redaction import redact_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mongodb://localhost:27017", "mongodb://localhost:27017"),
        ("mongodb://bob:hunter2@db:27017/x", "mongodb://bob:***@db:27017/x"),
        (
            "mongodb+srv://bob:p%40ss@cluster.example.net/?retryWrites=true&w=majority",
            "mongodb+srv://bob:***@cluster.example.net/?retryWrites=true&w=majority",
        ),
        ("mongodb://bob:un@escaped@db/", "mongodb://bob:***@db/"),
        (
            "mongodb://h/?authSource=admin&password=zz&w=1",
            "mongodb://h/?authSource=admin&password=***&w=1",
        ),
        (
            "failed: mongodb://a:one@h1 and mongodb://b:two@h2",
            "failed: mongodb://a:***@h1 and mongodb://b:***@h2",
        ),
        ("mongodb://user@db/", "mongodb://user@db/"),
    ],
)
def test_redact_uri(text: str, expected: str) -> None:
    assert redact_uri(text) == expected

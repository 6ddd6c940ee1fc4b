"""Passwords in connection strings never reach a message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from evalstore.redaction import redact_connection_string, redact_uri


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
            "mongodb://u:pw@h/?tlsCertificateKeyFilePassword=zz",
            "mongodb://u:***@h/?tlsCertificateKeyFilePassword=***",
        ),
        (
            "failed: mongodb://a:one@h1 and mongodb://b:two@h2",
            "failed: mongodb://a:***@h1 and mongodb://b:***@h2",
        ),
        ("mongodb://user@db/", "mongodb://user@db/"),
        # The userinfo ends at the last `@`, whatever the password holds.
        ("mongodb://user:S3cret#PW@127.0.0.1:1/", "mongodb://user:***@127.0.0.1:1/"),
        ("mongodb://u:a/b?c#d@h:1/db?w=1", "mongodb://u:***@h:1/db?w=1"),
        ("mongodb://u:x://y@h", "mongodb://u:***@h"),
        ("file://user:pw@/x", "file://user:***@/x"),
        ("mongomock://user:pw@localhost", "mongomock://user:***@localhost"),
        # In a text, up to the last `@` before the next URI: spaces and `@` included.
        ("at mongodb://u:p w@x@h:1 (timeout)", "at mongodb://u:***@h:1 (timeout)"),
        ("at mongodb://u:p w x://y@h:1 now", "at mongodb://u:***@h:1 now"),
        ("'mongodb://a:b@h1', 'mongodb://c:d@h2'", "'mongodb://a:***@h1', 'mongodb://c:***@h2'"),
        (
            "cannot reach mongodb://u:pw@h:1\nsecond line",
            "cannot reach mongodb://u:***@h:1\nsecond line",
        ),
        # A user name that could hold part of the secret is masked with it.
        ("mongodb://u/x:pw@h", "mongodb://***@h"),
        # A path is no userinfo; an address in the text after a URI is masked with it.
        ("file:///dir@x", "file:///dir@x"),
        ("mongomock:// for the embedded backend", "mongomock:// for the embedded backend"),
        ("at mongodb://u:pw@h, mail ops@example.org", "at mongodb://u:***@example.org"),
        # Without `scheme://`: a `user:password@host` word.
        ("user:S3cretPW@127.0.0.1:1", "user:***@127.0.0.1:1"),
        ("got 'user:p@w@h:1': bad", "got 'user:***@h:1': bad"),
        ("mongodb:/user:pw@h", "mongodb:***@h"),
        ("user:S3c://ret@h", "user:***@h"),
        ("mail ops@example.org", "mail ops@example.org"),
    ],
)
def test_redact_uri(text: str, expected: str) -> None:
    assert redact_uri(text) == expected
    assert redact_uri(expected) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mongodb://user:p w@x#y@h:1/db", "mongodb://user:***@h:1/db"),
        ("mongodb://user@h", "mongodb://user@h"),
        ("user:S3c ret@127.0.0.1:1", "user:***@127.0.0.1:1"),
        ("S3cretPW@127.0.0.1:1", "***@127.0.0.1:1"),
        (" mongodb://u:pw@h", "***@h"),
        ("mongodb:/user:pw@h", "mongodb:***@h"),
        ("localhost:27017", "localhost:27017"),
        ("mongodb://h/?password=zz", "mongodb://h/?password=***"),
    ],
)
def test_redact_connection_string_masks_everything_before_the_last_at(
    value: str, expected: str
) -> None:
    assert redact_connection_string(value) == expected


@pytest.mark.parametrize("redact", [redact_uri, redact_connection_string])
def test_redaction_never_raises_and_fails_closed(redact: Callable[[Any], str]) -> None:
    assert redact(None) == "***"
    assert redact(b"mongodb://u:pw@h") == "***"


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000,
        "@" * 200_000,
        "mongodb://" * 20_000,
        "mongodb://x " * 20_000,
        ":@ " * 60_000,
        "x mongodb://u:p@h " * 10_000,
    ],
)
def test_redaction_is_linear_on_long_texts(text: str) -> None:
    started = time.monotonic()
    redact_uri(text)
    redact_connection_string(text)
    assert time.monotonic() - started < 5  # quadratic would take minutes

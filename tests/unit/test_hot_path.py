"""The per-result shortcuts give what the general code gives (or leave the value to it)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from evalstore.errors import InvalidDataError
from evalstore.models import check_tags, to_utc
from evalstore.recording.run import _tags


def reference_to_utc(value: datetime) -> datetime:
    """`to_utc` as it was written before its shortcut for UTC datetimes."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def test_to_utc_of_utc_datetimes_is_unchanged() -> None:
    rng = random.Random(5)
    values = [
        datetime(1, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
        datetime(2025, 1, 1, 0, 0, 0, 999, tzinfo=timezone.utc, fold=1),
        datetime.now(timezone.utc),
    ]
    for _ in range(5000):
        stamp = rng.uniform(-1e10, 1e10)
        values.append(datetime.fromtimestamp(stamp, timezone.utc))
        values.append(datetime.fromtimestamp(round(stamp, 3), timezone.utc).replace(fold=1))
    for value in values:
        converted, expected = to_utc(value), reference_to_utc(value)
        assert (converted, converted.tzinfo, converted.fold) == (
            expected,
            expected.tzinfo,
            expected.fold,
        )
        assert converted.microsecond % 1000 == 0


class Tags(list[str]):
    """A list subclass that iterates its own way: the general code must take it."""

    def __iter__(self) -> Iterator[str]:
        return iter(["from", "iter"])


TAG_VALUES: list[Any] = [
    [],
    (),
    ["a"],
    ["a", "b", "a"],
    ("x", "y"),
    [""],
    ["a", ""],
    ["a", None],
    ["a", 1],
    "one",
    "",
    {"a": 1},
    b"bytes",
    None,
    1,
    Tags(["a"]),
    iter(["g", "h"]),
    {"s"},
]


@pytest.mark.parametrize("value", TAG_VALUES, ids=lambda value: type(value).__name__)
def test_tags_are_checked_as_check_tags_does(value: Any) -> None:
    def result(function: Any) -> Any:
        fresh = iter(["g", "h"]) if type(value) is type(iter([])) else value
        try:
            return function(fresh, "tags")
        except InvalidDataError as exc:
            return str(exc)

    assert result(_tags) == result(check_tags)


def test_to_utc_of_other_zones_is_as_before() -> None:
    zone = timezone(timedelta(hours=-3))
    for value in (datetime(2025, 1, 1, 12, 0, 0, 123_456), datetime(2025, 1, 1, tzinfo=zone)):
        assert to_utc(value) == reference_to_utc(value)

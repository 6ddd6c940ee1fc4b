"""The query parameters of the dashboard's pages and API, checked into service arguments.

Every page takes the same filters as the CLI (`since`, `until`, `days`, `branch`,
`environment`, `suite`, `tag` repeated, `match`); a bad value is a 400 answer that
names the parameter and what it expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from evalstore.analysis.filters import DEFAULT_WINDOW_DAYS, MAX_WINDOW_DAYS
from evalstore.errors import InvalidDataError


class Params:
    """The query parameters of one request, read with checks.

    Args:
        pairs: the (key, value) pairs of the query string, repeated keys kept.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def text(self, name: str) -> str | None:
        """A parameter as given (its first value), stripped; None when absent or empty."""
        values = self.texts(name)
        return values[0] if values else None

    def exact(self, name: str) -> str | None:
        """A parameter exactly as given (ids: `"case "` is not `"case"`); None when absent
        or empty."""
        values = self.exacts(name)
        return values[0] if values else None

    def exacts(self, name: str) -> list[str]:
        """Every non-empty value of a repeated parameter, exactly as given."""
        return [v for v in self._values.get(name, ()) if v]

    def texts(self, name: str) -> list[str]:
        """Every non-empty value of a repeated parameter (`tag=a&tag=b`), in order."""
        return [v.strip() for v in self._values.get(name, ()) if v and v.strip()]

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        """One of `choices`, `default` when absent."""
        value = self.text(name) or default
        if value not in choices:
            raise InvalidDataError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, name: str, default: int, *, low: int = 1, high: int = 10_000) -> int:
        """An integer within [low, high], `default` when absent."""
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise InvalidDataError(f"{name}: expected a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise InvalidDataError(f"{name}: expected {low} to {high}, got {number}")
        return number

    def number(self, name: str) -> float | None:
        """A finite number, None when absent."""
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise InvalidDataError(f"{name}: expected a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidDataError(f"{name}: expected a finite number, got {value!r}")
        return number

    def flag(self, name: str) -> bool:
        """True for `1`, `true`, `yes`, `on`."""
        return (self.text(name) or "").lower() in ("1", "true", "yes", "on")

    def when(self, name: str) -> datetime | None:
        """A date (YYYY-MM-DD) or ISO datetime, aware (naive means UTC); None when absent."""
        value = self.text(name)
        if value is None:
            return None
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidDataError(
                f"{name}: expected a date (YYYY-MM-DD) or an ISO datetime, got {value!r}"
            ) from None
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)

    def window(self, default_days: int = DEFAULT_WINDOW_DAYS) -> dict[str, Any]:
        """`since`, `until`, `window_days`, `environment`, `branch`, `suite` for the service."""
        return {
            "since": self.when("since"),
            "until": self.when("until"),
            "window_days": self.integer("days", default_days, high=MAX_WINDOW_DAYS),
            "environment": self.text("environment"),
            "branch": self.text("branch"),
            "suite": self.text("suite"),
        }

    def filters(self, default_days: int = DEFAULT_WINDOW_DAYS) -> dict[str, Any]:
        """The window and the tags (`tag` repeated, `match` any or all)."""
        return {
            **self.window(default_days),
            "tags": tuple(self.texts("tag")),
            "tags_match": self.choice("match", ("any", "all"), "any"),
        }


def shown_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters a page shows back in its form (dates as given, empty ones left out)."""
    shown: dict[str, Any] = {}
    for key, value in filters.items():
        if value in (None, (), []):
            continue
        shown[key] = value.date().isoformat() if isinstance(value, datetime) else value
    return shown

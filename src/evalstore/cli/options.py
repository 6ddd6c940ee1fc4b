"""The analysis commands' shared options (window, environment, branch, tags) and their parsing.

Bad values give one line on stderr and exit code 2, like a usage error.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, NoReturn

import typer

from evalstore.analysis.filters import MAX_WINDOW_DAYS
from evalstore.cli.common import err
from evalstore.cli.render import error_line

USAGE_EXIT = 2

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Window start, inclusive (YYYY-MM-DD or ISO datetime, UTC); overrides --days.",
        show_default=False,
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="Window end, exclusive (YYYY-MM-DD or ISO datetime, UTC).",
        show_default=False,
    ),
]
EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="Only runs of this environment.", show_default=False),
]
BranchOption = Annotated[
    str | None,
    typer.Option("--branch", help="Only runs of this git branch.", show_default=False),
]
SuiteOption = Annotated[
    str | None,
    typer.Option(
        "--suite", help="Only runs of this suite (see `evalstore runs list`).", show_default=False
    ),
]
TagOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tag", "-t", help="Only runs with this experiment tag (repeat).", show_default=False
    ),
]
MatchOption = Annotated[str, typer.Option("--match", help="With --tag: any or all.")]
DaysOption = Annotated[
    int,
    typer.Option(
        "--days", min=1, max=MAX_WINDOW_DAYS, help="Window: the last N days (without --since)."
    ),
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=MAX_WINDOW_DAYS)


def usage_error(message: str) -> NoReturn:
    """Print `error: message` on stderr and exit with code 2."""
    err.print(error_line(message), soft_wrap=True)
    raise typer.Exit(USAGE_EXIT)


def parse_when(text: str | None, option: str) -> datetime | None:
    """A date or ISO datetime from the command line, as an aware datetime (naive means UTC)."""
    if text is None:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        usage_error(f"{option}: expected a date (YYYY-MM-DD) or an ISO datetime, got {text!r}")
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def parse_duration(text: str, option: str) -> timedelta:
    """A duration such as `90s`, `30m`, `36h`, `2d`, `12w` or `1.5d` (for every option of ages).

    At most a century: a longer one can only be a typo, and it would overflow dates.
    """
    found = _DURATION.fullmatch(text.strip().lower())
    if not found or float(found.group(1)) <= 0:
        usage_error(
            f"{option}: expected a positive duration such as 90s, 30m, 36h, 2d or 12w, got {text!r}"
        )
    seconds = float(found.group(1)) * _SECONDS_PER_UNIT[found.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        usage_error(f"{option}: at most {MAX_DURATION.days}d (a century), got {text!r}")
    return timedelta(seconds=seconds)


def check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    """`value` if it is one of `choices`, else a usage error naming them."""
    if value not in choices:
        usage_error(f"{option}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def window_kwargs(
    since: str | None,
    until: str | None,
    env: str | None,
    branch: str | None,
    days: int,
    suite: str | None = None,
) -> dict[str, Any]:
    """The service's window filters from the command-line options."""
    return {
        "since": parse_when(since, "--since"),
        "until": parse_when(until, "--until"),
        "environment": env,
        "branch": branch,
        "suite": suite,
        "window_days": days,
    }


def filter_kwargs(
    since: str | None,
    until: str | None,
    env: str | None,
    branch: str | None,
    tag: list[str] | None,
    match: str,
    days: int,
    suite: str | None = None,
) -> dict[str, Any]:
    """The service's filters (window, environment, branch, suite, tags) from the options."""
    return {
        **window_kwargs(since, until, env, branch, days, suite),
        "tags": tuple(tag or ()),
        "tags_match": check_choice(match, ("any", "all"), "--match"),
    }


def describe_filters(filters: dict[str, Any]) -> str:
    """` with suite 'asr' and tags nightly (any)`, for notes about an empty answer."""
    parts = [
        f"{name} {filters[key]!r}"
        for name, key in (("suite", "suite"), ("environment", "environment"), ("branch", "branch"))
        if filters.get(key)
    ]
    tags = filters.get("tags")
    if tags:
        parts.append(f"tags {', '.join(tags)} ({filters.get('tags_match', 'any')})")
    return f" with {' and '.join(parts)}" if parts else ""


def describe_window(since: str | None, until: str | None, days: int) -> str:
    """`last 30 days`, `since 2025-03-01`, `2025-03-01 to 2025-03-10`, for table titles."""
    if since and until:
        return f"{since} to {until}"
    if since:
        return f"since {since}"
    if until:
        return f"{days} days before {until}"
    return f"last {days} days"

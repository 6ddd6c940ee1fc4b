"""Pages rendered from templates by Jinja2, escaping everything users recorded.

Autoescape is on for every template: a test id such as `<img src=x onerror=...>`
is shown as text. Chart specs go into the page through `tojson`, which escapes `<`,
`>` and `&`, inside `<script type="application/json">` blocks that no browser runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from evalstore.web.links import Links

NAV = (
    ("runs", "Runs"),
    ("trends", "Trends"),
    ("flaky", "Flaky tests"),
    ("configs", "Configurations"),
    ("experiments", "Experiments"),
    ("alerts", "Alerts"),
    ("cost", "Cost"),
)


def number(value: Any, digits: int = 2) -> str:
    """A number for a cell: rounded, thousands separated; None as a dash."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}"
    return str(value)


def when(value: Any) -> str:
    """A time to the minute, in UTC; None as a dash."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "-" if value is None else str(value)


def percent(value: Any) -> str:
    """A rate in [0, 1] as a percentage."""
    return "-" if value is None else f"{100 * float(value):.1f}%"


def sort_key(value: Any) -> str:
    """What a sortable table sorts a cell by: numbers as numbers, times as ISO text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def shown(value: Any) -> str:
    """A configuration value as text (strings as they are, the rest as JSON-ish text)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Renderer:
    """The dashboard's templates, with its filters."""

    def __init__(self) -> None:
        self.environment = Environment(
            loader=PackageLoader("evalstore.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters.update(
            number=number, when=when, percent=percent, sort_key=sort_key, shown=shown
        )

    def page(
        self,
        template: str,
        *,
        page: str,
        title: str,
        data: Mapping[str, Any],
        links: Links,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """The HTML of one page."""
        return self.environment.get_template(template).render(
            page=page,
            title=title,
            data=data,
            links=links,
            nav=NAV,
            **(extra or {}),
        )

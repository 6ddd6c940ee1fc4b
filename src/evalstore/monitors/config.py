"""Where monitor rules come from: `EVALSTORE_MONITORS`, `evalstore.toml`, `pyproject.toml`.

The first that exists is used, whole:

1. `EVALSTORE_MONITORS=path`: a TOML file with `[[rules]]` (or `[[tool.evalstore.rules]]`);
2. `evalstore.toml` in the working directory, the same;
3. `pyproject.toml` in the working directory, `[[tool.evalstore.rules]]`.

Beside the rules, the same table may hold `webhook_url` (better given as
`EVALSTORE_WEBHOOK_URL`, since it usually carries a token), `webhook_timeout_s`
and `callback_timeout_s`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalstore.errors import ConfigurationError

if TYPE_CHECKING:
    from evalstore.monitors.monitor import Monitor

# What follows is imported only where rules are configured: a pytest session without
# rules pays for none of it (see `configured_monitor`).

SETTINGS = ("webhook_url", "webhook_timeout_s", "callback_timeout_s", "budgets", "prices")


def _read(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        with path.open("rb") as file:
            data: dict[str, Any] = tomllib.load(file)
            return data
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None


def _section(data: Mapping[str, Any], path: Path, top_level: bool) -> Mapping[str, Any] | None:
    tool = data.get("tool")
    if isinstance(tool, Mapping) and "evalstore" in tool:
        section = tool["evalstore"]
        if not isinstance(section, Mapping):
            raise ConfigurationError(f"{path}: [tool.evalstore] must be a table")
        return section
    return data if top_level else None


def _number(section: Mapping[str, Any], name: str, path: Path, default: float) -> float:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{path}: {name} must be a positive number of seconds")
    return float(value)


def monitor_from_file(path: Path, *, top_level: bool = True) -> Monitor | None:
    """The monitor a TOML file defines, or None when it defines no rules.

    Raises:
        ConfigurationError: the file cannot be read, or a rule or setting is invalid
            (one line naming the file, the rule and the field).
    """
    data = _read(path)
    section = _section(data, path, top_level)
    if section is None or ("rules" not in section and "budgets" not in section):
        return None
    unknown = sorted(set(section) - {"rules", *SETTINGS})
    if top_level and unknown:
        raise ConfigurationError(
            f"{path}: unknown setting {unknown[0]!r} (known: rules, {', '.join(SETTINGS)})"
        )
    from evalstore.monitors.budgets import parse_budgets
    from evalstore.monitors.channels import Channels, check_webhook_url
    from evalstore.monitors.monitor import Monitor
    from evalstore.monitors.rules import parse_rules

    rules = parse_rules(section.get("rules", []), str(path))
    budgets = parse_budgets(section.get("budgets", []), str(path))
    url = os.environ.get("EVALSTORE_WEBHOOK_URL") or section.get("webhook_url")
    if url is not None and not isinstance(url, str):
        raise ConfigurationError(f"{path}: webhook_url must be an http(s) URL")
    try:
        channels_url = check_webhook_url(url) if url else None
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    channels = Channels(
        webhook_url=channels_url,
        webhook_timeout_s=_number(section, "webhook_timeout_s", path, 5.0),
        callback_timeout_s=_number(section, "callback_timeout_s", path, 5.0),
    )
    return Monitor(rules, channels=channels, budgets=budgets)


def configured_monitor(directory: Path | None = None) -> Monitor | None:
    """The monitor configured for `directory` (default: the working directory), or None.

    Raises:
        ConfigurationError: as `monitor_from_file`, or `EVALSTORE_MONITORS` names no file.
    """
    named = os.environ.get("EVALSTORE_MONITORS")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"EVALSTORE_MONITORS={named}: no such file")
        return monitor_from_file(path)
    directory = directory or Path.cwd()
    own = directory / "evalstore.toml"
    if own.is_file():
        return monitor_from_file(own)
    project = directory / "pyproject.toml"
    try:
        text = project.read_text(encoding="utf-8", errors="replace")
    except OSError:  # none, or unreadable: pytest reads it too, and says so
        return None
    if "tool.evalstore" not in text:  # most projects: no TOML parsed, no rules imported
        return None
    return monitor_from_file(project, top_level=False)

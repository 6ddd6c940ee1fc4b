"""Whether a pytest session records: answered without the settings when it clearly does not.

pytest imports the plugin in every session of a project that has evalstore
installed, and most of those sessions do not record. Reading `Settings`
(pydantic-settings) would cost such a session more than everything else
evalstore does in it, so `switched_off` first reads `MONGODB_ENABLED` the
way `Settings` reads it: the real environment wins over the `.env` file in
the working directory (which python-dotenv parses, as for `Settings`), names
match case-insensitively, and the last of several spellings wins.

Only a value pydantic reads as false, or no value at all, is "switched off".
Anything else (a true value, a value pydantic refuses, a `.env` that cannot
be read) is left to the full settings, which decide, and word any error, as
they always have.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

ENABLED_NAME = "mongodb_enabled"
"""The setting's field name: `Settings` matches variable names case-insensitively."""
ENV_FILE = ".env"
ENV_FILE_ENCODING = "utf-8"
FALSE_VALUES = frozenset({"0", "off", "f", "false", "n", "no"})
"""The strings pydantic reads as False for a `bool` (in any case, nothing around them)."""


def switched_off(env_file: str = ENV_FILE) -> bool:
    """True when `MONGODB_ENABLED` is clearly false or unset; False when the settings must say.

    Args:
        env_file: the dotenv file `Settings` reads besides the environment.
    """
    found, value = last_value(os.environ.items())
    if _is_dotenv_file(env_file):
        try:
            # `Settings` reads the file even when the environment decides, and fails if it
            # cannot: such a session needs the full settings to fail the same way.
            from dotenv import dotenv_values

            in_file = last_value(dotenv_values(env_file, encoding=ENV_FILE_ENCODING).items())
        except Exception:
            return False
        if not found:
            found, value = in_file
    if not found:
        return True
    return value is not None and value.isascii() and value.lower() in FALSE_VALUES


def last_value(variables: Iterable[tuple[str, str | None]]) -> tuple[bool, str | None]:
    """Whether `MONGODB_ENABLED` is among `variables` (any case), and its last value."""
    found, value = False, None
    for name, text in variables:
        if name.lower() == ENABLED_NAME:
            found, value = True, text
    return found, value


def _is_dotenv_file(path: str) -> bool:
    """Whether pydantic-settings would read `path`: a regular file or a FIFO."""
    try:
        mode = os.stat(os.path.expanduser(path)).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def enabled_despite_invalid_settings() -> bool:
    """When another setting is invalid: was recording switched on (or MONGODB_ENABLED bad)?"""
    from pydantic import TypeAdapter, ValidationError

    from evalstore.settings import environment_values

    value = environment_values((ENABLED_NAME,)).get(ENABLED_NAME)
    if value is None:
        return False
    try:
        return TypeAdapter(bool).validate_python(value)  # as `Settings` reads it
    except ValidationError:
        return True

"""The environment variables (and `.env` entries) that configure evalstore.

`Settings` reads them itself, as pydantic-settings' `BaseSettings` did (the class it
was until the pytest plugin had to start faster: importing pydantic-settings and
building a settings class cost a recording session about 30 ms). The rules are
pydantic-settings' with this configuration (`env_file=".env"`, UTF-8,
case-insensitive names, no prefix, empty values kept, no JSON decoding):

- a variable's name matches a field's name in any case (of several spellings in the
  environment, the last one wins);
- the real environment wins over the `.env` file of the working directory (read only
  when it is a regular file or a FIFO, with python-dotenv; an entry without `=` counts
  as absent), which wins over the defaults; values passed to `Settings(...)` win over all;
- values are validated as pydantic validated them, so every value and every error is
  the same.

Importing pydantic and building a model cost a recording session another 60 ms, so
`Settings` is a plain class: it reads the ordinary values itself (`true`, `5000`,
`lab`, `a,b`, a `mongodb://` URI...), the ones whose result is certain and the
same as pydantic's, and hands anything else to the pydantic model
(`evalstore.settings_model`), which reads it, or refuses it with the same
`ValidationError`, as before.

`tests/unit/test_settings_sources.py` compares it with pydantic-settings itself, and
`tests/unit/test_settings_fast_path.py` its plain reading with the pydantic model.
"""

from __future__ import annotations

import copy
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import platformdirs

from evalstore.errors import ConfigurationError
from evalstore.redaction import redact_connection_string, redact_uri

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo
    from typing_extensions import Self

    # `SettingsFields` as mypy sees it; at run time `__getattr__` below imports it.
    from evalstore.settings_model import SettingsFields as SettingsFields
    from evalstore.settings_model import SettingsModel

Environment = Literal["dev", "stage", "prod", "lab"]
ALLOWED_ENVIRONMENTS: tuple[str, ...] = get_args(Environment)

DEFAULT_CONNECTION_STRING = "mongodb://localhost:27017"
DEFAULT_DATABASE = "vt_metrics"
CONNECTION_SCHEMES = ("mongodb://", "mongodb+srv://", "mongomock://", "file://")
MAX_TIMEOUT_MS = 999_999_999
"""The longest `MONGODB_TIMEOUT_MS`: pymongo refuses a timeout of one billion ms or more."""
FsyncPolicy = Literal["always", "interval", "never"]


def default_spool_dir() -> Path:
    """Where journals go by default: `<user cache dir>/evalstore/spool`."""
    return Path(platformdirs.user_cache_dir("evalstore")) / "spool"


def parse_tags(raw: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Split comma-separated tags, trim whitespace, drop empty items, keep first-seen order."""
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for item in items:
        tag = str(item).strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


ENV_FILE = ".env"
"""The dotenv file read besides the environment (relative to the working directory)."""
ENV_FILE_ENCODING = "utf-8"


def _is_env_file(path: Path) -> bool:
    """Whether `path` is read as a dotenv file: a regular file or a FIFO (as pydantic-settings)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def environment_values(
    names: Iterable[str],
    env_file: str | os.PathLike[str] | None = ENV_FILE,
) -> dict[str, str]:
    """The raw values of the settings `names` (field names, lower case), as `Settings` reads them.

    From the `.env` file (when `env_file` is one), then the environment over it.

    Raises:
        OSError, UnicodeDecodeError: the dotenv file cannot be read (as before).
    """
    wanted = frozenset(names)
    values: dict[str, str] = {}
    if env_file is not None:
        path = Path(env_file).expanduser()
        if _is_env_file(path):
            from dotenv import dotenv_values

            in_file = dotenv_values(path, encoding=ENV_FILE_ENCODING)
            found = {name.lower(): value for name, value in in_file.items()}
            values.update({k: v for k, v in found.items() if k in wanted and v is not None})
    # Every spelling of a name, lowered: the last one in the environment wins.
    in_env = {name.lower(): value for name, value in os.environ.items()}
    values.update({k: v for k, v in in_env.items() if k in wanted})
    return values


FIELD_NAMES: tuple[str, ...] = (
    "mongodb_enabled",
    "mongodb_connection_string",
    "mongodb_database",
    "mongodb_timeout_ms",
    "environment",
    "experiment_tags",
    "evalstore_spool_dir",
    "evalstore_spool_fsync",
    "evalstore_batch_size",
    "evalstore_flush_interval_ms",
    "evalstore_queue_size",
    "evalstore_suite",
)
"""The settings' field names, in the order of `SettingsFields` (and of repr and dumps)."""
_FIELD_SET = frozenset(FIELD_NAMES)


def is_database_name(value: str) -> bool:
    """Whether MongoDB takes `value` as a database name: 1-63 characters, none of `/\\. "$`."""
    return bool(value) and len(value) <= 63 and not set('/\\. "$') & set(value)


def _looks_like_json(value: str) -> bool:
    """A JSON list or object, or quoted items (`"a","b"`): not comma-separated tags."""
    if value.strip().startswith(("[", "{")):
        return True
    return any(
        len(item) >= 2 and item[0] == item[-1] == '"'
        for item in (part.strip() for part in value.split(","))
    )


# --- Reading the ordinary values without pydantic ----------------------------------------
#
# Each reader returns the value pydantic would give, or _UNSURE for anything it is not
# certain of; then the whole of the settings goes through pydantic instead. Only exact
# `str` values are read (a subclass becomes a plain `str` in pydantic), and none holding
# a lone surrogate (which some of pydantic's checks refuse).

_UNSURE: Final = object()
"""What a reader returns for a value it leaves to pydantic."""
_TRUE_WORDS = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE_WORDS = frozenset({"0", "off", "f", "false", "n", "no"})
"""The strings pydantic reads as a `bool` (in any case, nothing around them)."""
_POSITIVE_WHOLE_NUMBER = re.compile(r"[1-9][0-9]{0,17}")
"""A number pydantic reads as this int: no sign, underscore, leading zero or space (< 10**18)."""
_LARGEST_PLAIN_INT = 2**63 - 1
"""Larger numbers are left to pydantic, which reads them as big integers."""
_FSYNC_POLICIES: tuple[str, ...] = get_args(FsyncPolicy)
_PATH_TYPE = type(Path())
"""The concrete `Path` class pydantic gives (`PosixPath` or `WindowsPath`)."""


def _plain_str(value: object) -> str | None:
    """`value` when it is a `str` that pydantic keeps as it is, else None."""
    if type(value) is not str:
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (from an undecodable environment)
            return None
    return value


def _read_bool(value: object) -> object:
    if type(value) is bool:
        return value
    text = _plain_str(value)
    if text is not None and text.isascii():
        word = text.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return _UNSURE


def _positive_int_reader(largest: int) -> Callable[[object], object]:
    """A reader of a whole number from 1 to `largest`."""

    def read(value: object) -> object:
        if type(value) is int:
            number = value
        elif type(value) is str and _POSITIVE_WHOLE_NUMBER.fullmatch(value):
            number = int(value)
        else:
            return _UNSURE
        return number if 0 < number <= largest else _UNSURE

    return read


def _read_connection_string(value: object) -> object:
    text = _plain_str(value)
    if text is None:
        return _UNSURE
    text = text.strip()
    return text if text.startswith(CONNECTION_SCHEMES) else _UNSURE


def _read_database(value: object) -> object:
    text = _plain_str(value)
    return text if text is not None and is_database_name(text) else _UNSURE


def _read_environment(value: object) -> object:
    text = _plain_str(value)
    if text is None:
        return _UNSURE
    name = text.strip().lower()
    return name if name in ALLOWED_ENVIRONMENTS else _UNSURE


def _read_tags(value: object) -> object:
    if value is None:
        return []
    text = _plain_str(value)
    if text is not None:
        return _UNSURE if _looks_like_json(text) else parse_tags(text)
    if (
        isinstance(value, list | tuple)
        and type(value) in (list, tuple)
        and all(_plain_str(item) is not None for item in value)
    ):
        return parse_tags(value)
    return _UNSURE


def _read_spool_dir(value: object) -> object:
    if type(value) is _PATH_TYPE:
        return value
    text = _plain_str(value)
    return Path(text) if text and "\x00" not in text else _UNSURE


def _read_fsync(value: object) -> object:
    return value if _plain_str(value) in _FSYNC_POLICIES else _UNSURE


def _read_suite(value: object) -> object:
    if value is None:
        return None
    text = _plain_str(value)
    return text if text else _UNSURE


_PLAIN_FIELDS: dict[str, tuple[Callable[[], object], Callable[[object], object]]] = {
    "mongodb_enabled": (lambda: False, _read_bool),
    "mongodb_connection_string": (lambda: DEFAULT_CONNECTION_STRING, _read_connection_string),
    "mongodb_database": (lambda: DEFAULT_DATABASE, _read_database),
    "mongodb_timeout_ms": (lambda: 5000, _positive_int_reader(MAX_TIMEOUT_MS)),
    "environment": (lambda: "dev", _read_environment),
    "experiment_tags": (list, _read_tags),
    "evalstore_spool_dir": (default_spool_dir, _read_spool_dir),
    "evalstore_spool_fsync": (lambda: "interval", _read_fsync),
    "evalstore_batch_size": (lambda: 500, _positive_int_reader(_LARGEST_PLAIN_INT)),
    "evalstore_flush_interval_ms": (lambda: 1000, _positive_int_reader(_LARGEST_PLAIN_INT)),
    "evalstore_queue_size": (lambda: 10_000, _positive_int_reader(_LARGEST_PLAIN_INT)),
    "evalstore_suite": (lambda: None, _read_suite),
}
"""Per field, in `FIELD_NAMES` order: its default (as validated) and its plain reader."""


def read_plainly(found: Mapping[str, object]) -> dict[str, object] | None:
    """Every field's value, as pydantic would read `found`; None when any is left to pydantic.

    Args:
        found: raw values by field name (from the environment, `.env` or arguments);
            a name that is not a field's also leaves the whole to pydantic.
    """
    if not found.keys() <= _FIELD_SET:
        return None
    fields: dict[str, object] = {}
    for name, (default, read) in _PLAIN_FIELDS.items():
        if name in found:
            value = read(found[name])
            if value is _UNSURE:
                return None
        else:
            value = default()
        fields[name] = value
    return fields


def _read_with_pydantic(found: Mapping[str, Any]) -> tuple[dict[str, object], set[str]]:
    """The fields' values and the names set, as the pydantic model reads `found`.

    Raises:
        pydantic.ValidationError: titled `Settings`, as it always was.
    """
    from evalstore.settings_model import SettingsModel

    model = SettingsModel(**found)
    return {name: getattr(model, name) for name in FIELD_NAMES}, set(model.model_fields_set)


class _PydanticFieldInfo:
    """`Settings.model_fields`: pydantic's description of each field, imported when asked for."""

    def __get__(self, instance: object, owner: type | None = None) -> dict[str, FieldInfo]:
        from evalstore.settings_model import SettingsFields

        return SettingsFields.model_fields


class Settings:
    """evalstore's configuration.

    Read from environment variables, then from a `.env` file in the working
    directory when present; real environment variables win over `.env`, and
    values given as arguments win over both. It behaves as the pydantic model it
    was: the same values, errors (`pydantic.ValidationError`), `repr`, `str`,
    `==`, `model_copy`, `model_dump` and `model_dump_json`, the connection
    string's password masked wherever it is shown.

    Args:
        _env_file: the dotenv file to read (None: none).
        **values: settings given directly, by field name.

    Raises:
        pydantic.ValidationError: a value is invalid.
    """

    __slots__ = ("__dict__", "_fields_set")

    mongodb_enabled: bool
    mongodb_connection_string: str
    mongodb_database: str
    mongodb_timeout_ms: int
    environment: Environment
    experiment_tags: list[str]
    evalstore_spool_dir: Path
    evalstore_spool_fsync: FsyncPolicy
    evalstore_batch_size: int
    evalstore_flush_interval_ms: int
    evalstore_queue_size: int
    evalstore_suite: str | None
    _fields_set: set[str]

    model_fields = _PydanticFieldInfo()
    """Field name -> pydantic `FieldInfo`, in field order (imports pydantic)."""

    def __init__(self, _env_file: str | os.PathLike[str] | None = ENV_FILE, **values: Any) -> None:
        found: dict[str, Any] = dict(environment_values(FIELD_NAMES, _env_file))
        found.update(values)
        fields = read_plainly(found)
        if fields is None:
            fields, fields_set = _read_with_pydantic(found)
        else:
            fields_set = set(found)
        # As in a pydantic model, __dict__ holds the fields and nothing else.
        object.__setattr__(self, "__dict__", fields)
        object.__setattr__(self, "_fields_set", fields_set)

    @property
    def model_fields_set(self) -> set[str]:
        """The names of the fields given (by the environment, `.env`, arguments or an update)."""
        return self._fields_set

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, with the values of `update` (not validated, as pydantic's `model_copy`).

        Args:
            update: field name -> new value.
            deep: copy the values themselves too (those not updated).
        """
        if deep and update:
            copied = self.__copy__()
            memo: dict[int, Any] = {id(self): copied}
            for name, value in copied.__dict__.items():
                if name not in update:
                    copied.__dict__[name] = copy.deepcopy(value, memo)
        else:
            copied = self.__deepcopy__() if deep else self.__copy__()
        if update:
            copied.__dict__.update(update)
            copied._fields_set.update(update.keys())
        return copied

    def model_dump(self, **options: Any) -> dict[str, Any]:
        """The settings as a dict, by pydantic's `model_dump(**options)`: the password masked.

        Imports pydantic (nothing on the recording path dumps the settings).
        """
        return self._as_pydantic_model().model_dump(**options)

    def model_dump_json(self, **options: Any) -> str:
        """The settings as JSON, by pydantic's `model_dump_json(**options)`: the password masked."""
        return self._as_pydantic_model().model_dump_json(**options)

    def _as_pydantic_model(self) -> SettingsModel:
        """The same values in the pydantic model, built without validation (as they are)."""
        from evalstore.settings_model import SettingsModel

        return SettingsModel.model_construct(_fields_set=set(self._fields_set), **self.__dict__)

    def __copy__(self) -> Self:
        cls = type(self)
        copied = cls.__new__(cls)
        object.__setattr__(copied, "__dict__", dict(self.__dict__))
        object.__setattr__(copied, "_fields_set", set(self._fields_set))
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        if memo is None:
            memo = {}
        cls = type(self)
        copied = cls.__new__(cls)
        memo[id(self)] = copied
        object.__setattr__(copied, "__dict__", copy.deepcopy(self.__dict__, memo))
        object.__setattr__(copied, "_fields_set", set(self._fields_set))
        return copied

    def __replace__(self, **changes: Any) -> Self:
        """`copy.replace(settings, **changes)`: as `model_copy(update=changes)`."""
        return self.model_copy(update=changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        if type(self) is not type(other):
            return False
        if self.__dict__ == other.__dict__:
            return True
        # Keys besides the fields (an update's unknown names) do not count, as in pydantic.
        mine, theirs = self.__dict__, other.__dict__
        return [mine.get(name) for name in FIELD_NAMES] == [
            theirs.get(name) for name in FIELD_NAMES
        ]

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable: as pydantic's model

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """`(name, value)` pairs, so that `dict(settings)` works (as on a pydantic model)."""
        yield from [(k, v) for k, v in self.__dict__.items() if not k.startswith("_")]

    def _shown_fields(self) -> Iterator[tuple[str, Any]]:
        """The fields `repr()` and `str()` show, the connection string's password masked.

        The attribute itself keeps the real value: it is what the client connects with.
        """
        for name, value in self.__dict__.items():
            if name in _FIELD_SET:
                if name == "mongodb_connection_string" and isinstance(value, str):
                    value = redact_connection_string(value)
                yield name, value

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._shown_fields())
        return f"{type(self).__name__}({shown})"

    def __str__(self) -> str:
        return " ".join(f"{name}={value!r}" for name, value in self._shown_fields())

    if not TYPE_CHECKING:  # so that mypy still refuses an unknown attribute

        def __setattr__(self, name: str, value: Any) -> None:
            """Set a field (not validated, as pydantic's model); refuse any other public name."""
            if name in _FIELD_SET:
                self.__dict__[name] = value
                self._fields_set.add(name)
            elif name.startswith("_"):
                object.__setattr__(self, name, value)
            else:
                raise ValueError(f'"{type(self).__name__}" object has no field "{name}"')


def __getattr__(name: str) -> Any:
    """`SettingsFields`, still importable from here: imported (with pydantic) when asked for."""
    if name == "SettingsFields":
        from evalstore.settings_model import SettingsFields

        return SettingsFields
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ENV_NAMES = {
    "mongodb_enabled": ("MONGODB_ENABLED", "true or false"),
    "mongodb_connection_string": (
        "MONGODB_CONNECTION_STRING",
        "a URI starting with " + ", ".join(CONNECTION_SCHEMES),
    ),
    "mongodb_database": ("MONGODB_DATABASE", "a database name"),
    "mongodb_timeout_ms": (
        "MONGODB_TIMEOUT_MS",
        f"a whole number of milliseconds from 1 to {MAX_TIMEOUT_MS} (pymongo's limit)",
    ),
    "environment": ("ENVIRONMENT", "one of " + ", ".join(ALLOWED_ENVIRONMENTS)),
    "experiment_tags": ("EXPERIMENT_TAGS", "comma-separated tags (a,b), not JSON"),
    "evalstore_spool_dir": ("EVALSTORE_SPOOL_DIR", "a directory path"),
    "evalstore_spool_fsync": ("EVALSTORE_SPOOL_FSYNC", "always, interval or never"),
    "evalstore_batch_size": ("EVALSTORE_BATCH_SIZE", "a positive number of results"),
    "evalstore_flush_interval_ms": (
        "EVALSTORE_FLUSH_INTERVAL_MS",
        "a positive number of milliseconds",
    ),
    "evalstore_queue_size": ("EVALSTORE_QUEUE_SIZE", "a positive number of results"),
    "evalstore_suite": ("EVALSTORE_SUITE", "a non-empty name"),
}


def load_settings(*, env_file: str | None = ".env") -> Settings:
    """Read the settings, turning any invalid value into one clear `ConfigurationError`.

    Args:
        env_file: the dotenv file to read besides the environment; `None` reads none.

    Raises:
        ConfigurationError: naming the variable, the value (any password masked) and
            what is allowed.
    """
    try:
        return Settings(_env_file=env_file)
    except ValueError as exc:
        # A ValidationError (a ValueError) comes from the pydantic model, loaded by then.
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name, allowed = _ENV_NAMES.get(field, (field.upper(), "a valid value"))
        raw = str(error.get("input", ""))
        if field == "mongodb_connection_string":
            value = redact_connection_string(raw)
        else:
            value = redact_uri(raw)
        raise ConfigurationError(f"invalid {name}={value!r}: expected {allowed}") from None

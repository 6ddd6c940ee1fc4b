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
- values are validated by pydantic as before, so every error is the same.

`tests/unit/test_settings_sources.py` compares it with pydantic-settings itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

from evalstore.errors import ConfigurationError
from evalstore.redaction import redact_connection_string, redact_uri

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


class SettingsFields(BaseModel):
    """The settings' fields, their validation and how they are shown (`Settings` reads them)."""

    model_config = ConfigDict(
        extra="ignore",
        validate_default=True,
        # A ValidationError would otherwise print the connection string, password included.
        hide_input_in_errors=True,
    )

    mongodb_enabled: bool = False
    mongodb_connection_string: str = DEFAULT_CONNECTION_STRING
    mongodb_database: str = DEFAULT_DATABASE
    mongodb_timeout_ms: int = Field(default=5000, gt=0, le=MAX_TIMEOUT_MS)
    environment: Environment = "dev"
    experiment_tags: list[str] = Field(default_factory=list)
    evalstore_spool_dir: Path = Field(default_factory=default_spool_dir)
    evalstore_spool_fsync: FsyncPolicy = "interval"
    evalstore_batch_size: int = Field(default=500, gt=0)
    evalstore_flush_interval_ms: int = Field(default=1000, gt=0)
    evalstore_queue_size: int = Field(default=10_000, gt=0)
    evalstore_suite: str | None = Field(default=None, min_length=1)

    @field_validator("experiment_tags", mode="before")
    @classmethod
    def _split_tags(cls, value: object) -> list[str]:
        if isinstance(value, str) and _looks_like_json(value):
            raise ValueError("must be comma-separated tags, not JSON")
        if value is None or isinstance(value, str | list | tuple):
            return parse_tags(value)
        raise ValueError("must be a comma-separated list of tags")

    @field_validator("environment", mode="before")
    @classmethod
    def _normalise_environment(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("mongodb_connection_string")
    @classmethod
    def _check_scheme(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(CONNECTION_SCHEMES):
            raise ValueError("must start with " + ", ".join(CONNECTION_SCHEMES))
        return value

    @field_validator("mongodb_database")
    @classmethod
    def _check_database(cls, value: str) -> str:
        bad = set('/\\. "$') & set(value)
        if not value or bad or len(value) > 63:
            raise ValueError('must be 1-63 characters without any of / \\ . " $ or spaces')
        return value

    @field_serializer("mongodb_connection_string")
    def _redact_connection_string(self, value: str) -> str:
        return redact_connection_string(value)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The fields `repr()` and `str()` show, the connection string's password masked.

        The attribute itself keeps the real value: it is what the client connects with.
        """
        for name, value in super().__repr_args__():
            if name == "mongodb_connection_string" and isinstance(value, str):
                value = redact_connection_string(value)
            yield name, value


class Settings(SettingsFields):
    """evalstore's configuration.

    Read from environment variables, then from a `.env` file in the working
    directory when present; real environment variables win over `.env`, and
    values given as arguments win over both.

    Args:
        _env_file: the dotenv file to read (None: none).
        **values: settings given directly, by field name.
    """

    def __init__(self, _env_file: str | os.PathLike[str] | None = ENV_FILE, **values: Any) -> None:
        found: dict[str, Any] = dict(environment_values(_FIELD_NAMES, _env_file))
        found.update(values)
        super().__init__(**found)


_FIELD_NAMES = frozenset(SettingsFields.model_fields)


def _looks_like_json(value: str) -> bool:
    """A JSON list or object, or quoted items (`"a","b"`): not comma-separated tags."""
    if value.strip().startswith(("[", "{")):
        return True
    return any(
        len(item) >= 2 and item[0] == item[-1] == '"'
        for item in (part.strip() for part in value.split(","))
    )


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
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        name, allowed = _ENV_NAMES.get(field, (field.upper(), "a valid value"))
        raw = str(error.get("input", ""))
        if field == "mongodb_connection_string":
            value = redact_connection_string(raw)
        else:
            value = redact_uri(raw)
        raise ConfigurationError(f"invalid {name}={value!r}: expected {allowed}") from None

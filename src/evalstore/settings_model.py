"""The pydantic model of the settings: what `Settings` falls back on for any unusual value.

`evalstore.settings.Settings` reads ordinary values itself: importing pydantic and
building this model cost every recording pytest session about 60 ms. Whatever it is
not certain of (an unusual spelling, another type, an invalid value) goes through
`SettingsModel` here, so that pydantic reads it, and words every error, as it always did.

This module imports `evalstore.settings`; `evalstore.settings` imports it only inside
functions, when a value needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from evalstore.redaction import redact_connection_string
from evalstore.settings import (
    CONNECTION_SCHEMES,
    DEFAULT_CONNECTION_STRING,
    DEFAULT_DATABASE,
    MAX_TIMEOUT_MS,
    Environment,
    FsyncPolicy,
    _looks_like_json,
    default_spool_dir,
    is_database_name,
    parse_tags,
)


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
        if not is_database_name(value):
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


class SettingsModel(SettingsFields):
    """`SettingsFields` under the title `Settings`: what `Settings` validates with when unsure.

    Its errors read "validation error for Settings", as they did when `Settings` was
    this model, and it dumps a `Settings` (`Settings.model_dump`) as pydantic did.
    """

    model_config = ConfigDict(title="Settings")

"""`Settings` reads the environment and `.env` exactly as pydantic-settings did.

`Settings` was a pydantic-settings `BaseSettings`; it now reads its variables itself
(pydantic-settings cost every recording pytest session ~30 ms of imports). The
reference here is the same model with pydantic-settings' own sources and the
configuration `Settings` had: both must agree on every environment and `.env`,
values and errors alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from evalstore.settings import Settings, SettingsFields

NAMES = [name.upper() for name in Settings.model_fields] + [
    "mongodb_enabled",
    "Mongodb_Database",
    "environment",
    "Experiment_Tags",
    "UNRELATED_VARIABLE",
]
SPELLINGS = st.sampled_from(
    ["true", "false", "0", "1", "no", "", " lab", "Prod", "a,b", '["x"]', "12", "-3", "dev"]
)
VALUES = st.one_of(
    SPELLINGS,
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), max_size=8
    ),
)


class Reference(BaseSettings, SettingsFields):
    """`Settings` read by pydantic-settings, configured as `Settings` was."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )
    experiment_tags: Annotated[list[str], NoDecode] = Field(default_factory=list)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Exactly `values` (and what the interpreter needs) as os.environ for the block."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in saved.items() if not _is_setting(k)})
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _is_setting(name: str) -> bool:
    return name.lower() in Settings.model_fields


def _read(kind: type[SettingsFields], **values: Any) -> tuple[str, Any]:
    try:
        return "ok", kind(**values).model_dump()
    except ValidationError as exc:
        return "error", [(e["loc"], e["type"], e.get("input")) for e in exc.errors()]


def test_the_reference_is_what_settings_was() -> None:
    assert set(Reference.model_fields) == set(Settings.model_fields)


@pytest.mark.usefixtures("tmp_path")
@settings(max_examples=300, deadline=None)
@given(
    environ=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4),
    dotenv=st.none() | st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=4),
    bare=st.sampled_from([None, *NAMES]),
)
def test_settings_read_what_pydantic_settings_reads(
    environ: dict[str, str], dotenv: list[tuple[str, str]] | None, bare: str | None
) -> None:
    path = Path(".env")
    if dotenv is None:
        path.unlink(missing_ok=True)
    else:
        lines = [
            f"{name}={value!r}\n" if "#" in value else f"{name}={value}\n" for name, value in dotenv
        ]
        if bare is not None:
            lines.append(f"{bare}\n")  # an entry without a value
        path.write_text("".join(lines), encoding="utf-8")
    with environment(environ):
        assert _read(Settings) == _read(Reference)
        assert _read(Settings, _env_file=None) == _read(Reference, _env_file=None)
        given_directly = {"mongodb_database": "direct", "environment": "lab"}
        assert _read(Settings, **given_directly) == _read(Reference, **given_directly)

"""Switched off, the plugin costs a session next to nothing, and decides exactly as before.

Most sessions of a project with evalstore installed do not record: for them the
plugin must not import pydantic, the driver or evalstore's recorder. Whether it
records is still decided as `Settings` would: the environment, then `.env`,
pydantic's true and false spellings, and the same error for any other value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plugin_helpers import INNER_INI, summary_lines

from evalstore import ConfigurationError, Settings, load_settings
from evalstore.pytest_plugin import switch

HEAVY_PACKAGES = (
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "pymongo",
    "bson",
    "motor",
    "mongomock",
    "mongomock_motor",
    "rich",
    "typer",
    "git",
)
HEAVY_EVALSTORE = (
    "evalstore.settings",
    "evalstore.models",
    "evalstore.storage",
    "evalstore.recording",
    "evalstore.service",
    "evalstore.analysis",
    "evalstore.cli",
)
# Written by the inner session's conftest when pytest is done: every module it imported.
RECORD_MODULES = """
import json
import sys


def pytest_unconfigure(config):
    with open("modules.json", "w", encoding="utf-8") as handle:
        json.dump(sorted(sys.modules), handle)
"""
TWO_PASSING = """
def test_a():
    pass

def test_b():
    pass
"""


def heavy(modules: list[str]) -> list[str]:
    """The modules of `modules` that an inactive plugin must not import."""
    return [
        name
        for name in modules
        if name.split(".")[0] in HEAVY_PACKAGES
        or any(name == prefix or name.startswith(prefix + ".") for prefix in HEAVY_EVALSTORE)
    ]


@pytest.mark.parametrize(
    ("environ", "dotenv"),
    [
        ({}, None),
        ({"MONGODB_ENABLED": "false"}, None),
        ({}, "MONGODB_ENABLED=no\nMONGODB_CONNECTION_STRING=mongomock://\n"),
        ({"mongodb_enabled": "0"}, "MONGODB_ENABLED=true\n"),  # the environment wins
    ],
    ids=["unset", "false", "dotenv-no", "environment-over-dotenv"],
)
def test_an_inactive_session_imports_nothing_heavy(
    inner: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    dotenv: str | None,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    if dotenv is not None:
        (inner.path / ".env").write_text(dotenv, encoding="utf-8")
    inner.makeconftest(RECORD_MODULES)
    inner.makepyfile(test_quiet=TWO_PASSING)

    result = inner.runpytest_subprocess("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    assert summary_lines(result) == []
    modules = json.loads((inner.path / "modules.json").read_text(encoding="utf-8"))
    assert "evalstore.pytest_plugin" in modules  # the entry point was loaded, and stayed off
    assert heavy(modules) == []


def test_the_heavy_module_check_sees_an_active_plugin(inner: pytest.Pytester) -> None:
    inner.makeconftest(RECORD_MODULES)
    inner.makepyfile(test_quiet=TWO_PASSING)

    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "--evalstore")

    assert result.ret == pytest.ExitCode.OK
    modules = json.loads((inner.path / "modules.json").read_text(encoding="utf-8"))
    assert {"bson", "evalstore.settings", "evalstore.recording.run"} <= set(heavy(modules))


@pytest.mark.parametrize(
    "dotenv",
    [
        "MONGODB_ENABLED=true\nMONGODB_CONNECTION_STRING=mongomock://\n",
        "# recording on\nmongodb_enabled = 'Yes'\nMONGODB_CONNECTION_STRING=mongomock://\n",
    ],
)
def test_dotenv_switches_recording_on(
    inner: pytest.Pytester, db_name: str, stored, dotenv: str
) -> None:
    (inner.path / ".env").write_text(dotenv, encoding="utf-8")
    inner.makepyfile(test_dotenv=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    [run], tests = stored()
    assert [test["test_id"] for test in tests] == [
        "test_dotenv.py::test_a",
        "test_dotenv.py::test_b",
    ]
    assert summary_lines(result)[0].startswith(
        f"evalstore: run {run['evaluation_run_id']}  tests 2"
    )


@pytest.mark.parametrize(
    ("environ", "dotenv", "records"),
    [
        ("false", "MONGODB_ENABLED=true", False),
        ("TRUE", "MONGODB_ENABLED=false", True),
        (None, "MONGODB_ENABLED=off\nMONGODB_ENABLED=on", True),  # the last line wins
    ],
)
def test_the_environment_wins_over_dotenv(
    inner: pytest.Pytester,
    db_name: str,
    stored,
    monkeypatch: pytest.MonkeyPatch,
    environ: str | None,
    dotenv: str,
    records: bool,
) -> None:
    if environ is not None:
        monkeypatch.setenv("MONGODB_ENABLED", environ)
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    (inner.path / ".env").write_text(dotenv + "\n", encoding="utf-8")
    inner.makepyfile(test_both=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    runs, _ = stored()
    assert len(runs) == int(records)
    assert len(summary_lines(result)) == int(records)


@pytest.mark.parametrize(
    ("environ", "dotenv", "shown"),
    [
        ("maybe", None, "maybe"),
        (" false ", None, " false "),  # pydantic does not strip it: neither does the plugin
        (None, "MONGODB_ENABLED=nope\n", "nope"),
        ("", "MONGODB_ENABLED=false\n", ""),  # set but empty, in the environment: it wins
    ],
)
def test_an_invalid_mongodb_enabled_is_the_same_clear_warning(
    inner: pytest.Pytester,
    db_name: str,
    stored,
    monkeypatch: pytest.MonkeyPatch,
    environ: str | None,
    dotenv: str | None,
    shown: str,
) -> None:
    if environ is not None:
        monkeypatch.setenv("MONGODB_ENABLED", environ)
    if dotenv is not None:
        (inner.path / ".env").write_text(dotenv, encoding="utf-8")
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    inner.makepyfile(test_bad_flag=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    assert summary_lines(result) == [
        f"evalstore: WARNING: results not stored: invalid MONGODB_ENABLED={shown!r}: "
        "expected true or false"
    ]
    assert stored() == ([], [])


def test_the_evalstore_option_in_addopts_switches_it_on(
    inner: pytest.Pytester, db_name: str, stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_ENABLED", "false")
    inner.makeini(INNER_INI + "addopts = --evalstore --evalstore-url mongomock://\n")
    inner.makepyfile(test_addopts=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    [_run], tests = stored()
    assert len(tests) == 2


def test_the_switch_reads_the_file_and_names_the_settings_read() -> None:
    from evalstore import settings as settings_module

    assert settings_module.ENV_FILE == switch.ENV_FILE
    assert settings_module.ENV_FILE_ENCODING == switch.ENV_FILE_ENCODING
    assert switch.ENABLED_NAME in Settings.model_fields
    assert Settings.model_fields[switch.ENABLED_NAME].alias is None


@pytest.mark.parametrize("name", ["MONGODB_ENABLED", "mongodb_enabled", "MongoDB_Enabled"])
@pytest.mark.parametrize("value", ["0", "off", "OFF", "f", "False", "false", "n", "No", "NO"])
def test_every_false_spelling_is_switched_off_without_the_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert switch.switched_off()
    assert load_settings().mongodb_enabled is False


@pytest.mark.parametrize(
    "value", ["1", "true", "yes", "on", "", " no", "no ", "\tfalse", "maybe", "0.0", "\uff4e\uff4f"]
)
def test_anything_else_is_left_to_the_settings(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MONGODB_ENABLED", value)
    assert not switch.switched_off()


def test_a_dotenv_that_cannot_be_read_is_left_to_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_ENABLED", "false")
    (tmp_path / ".env").write_bytes(b"MONGODB_DATABASE=caf\xe9\n")  # not UTF-8

    assert not switch.switched_off()
    with pytest.raises(UnicodeDecodeError):  # what a session met before, and still meets
        load_settings()


def test_a_directory_named_dotenv_is_no_file(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    assert switch.switched_off()
    assert load_settings().mongodb_enabled is False


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block, restoring it after."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def decided_before() -> bool:
    """What the plugin decided before the switch: the full settings, or MONGODB_ENABLED alone."""
    try:
        return load_settings().mongodb_enabled
    except ConfigurationError:
        return switch.enabled_despite_invalid_settings()


ENV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
SPELLINGS = st.sampled_from(
    ["0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes", "No", "TRUE"]
)
VALUES = st.one_of(SPELLINGS, ENV_TEXT, SPELLINGS.map(lambda s: f" {s}"))
NAMES = st.sampled_from(["MONGODB_ENABLED", "mongodb_enabled", "Mongodb_Enabled"])


@settings(max_examples=300, deadline=None)
@given(
    environ=st.dictionaries(NAMES, VALUES, max_size=2),
    dotenv=st.none() | st.lists(st.tuples(NAMES, VALUES), max_size=3),
)
def test_switched_off_only_when_the_settings_say_off(
    environ: dict[str, str], dotenv: list[tuple[str, str]] | None
) -> None:
    path = Path(".env")
    if dotenv is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text("".join(f"{n}={v}\n" for n, v in dotenv), encoding="utf-8")
    with environment(environ):
        if switch.switched_off():
            assert decided_before() is False


def test_the_entry_point_module_alone_imports_nothing_heavy() -> None:
    code = (
        "import json, sys\nimport evalstore.pytest_plugin\nprint(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert heavy(json.loads(done.stdout)) == []

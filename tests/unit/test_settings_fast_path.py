"""`Settings` reads ordinary values without pydantic, and every value as pydantic does.

`Settings` is a plain class that reads the values it is certain of itself and hands
anything else to the pydantic model `SettingsFields` (under the title `Settings`).
Here it is compared with that model on generated raw values of every kind (the
environment's strings and the Python values given as arguments): the same values,
of the same types, or the same `ValidationError`. And a fresh interpreter shows that
typical settings are read without importing pydantic at all.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import evalstore.settings
from evalstore.errors import ConfigurationError
from evalstore.settings import (
    CONNECTION_SCHEMES,
    FIELD_NAMES,
    MAX_TIMEOUT_MS,
    Settings,
    load_settings,
    read_plainly,
)
from evalstore.settings_model import SettingsFields

BOOL_WORDS = ["0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"]
PADDING = st.sampled_from(["", "", "", "", " ", "  ", "\t", "\n", "\u00a0", "\u2003"])
SURROGATES = st.sampled_from(["a\udcff", "\ud800", "dev\udcff", "mongodb://h\udcff"])
TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=12)


class Word(str):
    """A `str` subclass: pydantic gives a plain `str` of it."""


@st.composite
def spellings(draw: st.DrawFn, words: list[str], *, padded: bool = True) -> str:
    """One of `words` in any case, sometimes with whitespace around it (when `padded`)."""
    word = draw(st.sampled_from(words))
    upper = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    cased = "".join(c.upper() if up else c for c, up in zip(word, upper, strict=True))
    return draw(PADDING) + cased + draw(PADDING) if padded else cased


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """Numbers as text: signs, leading zeros, underscores, decimals, whitespace, huge ones."""
    number = draw(
        st.one_of(
            st.integers(-5, 20),
            st.integers(-(10**22), 10**22),
            st.sampled_from(
                [MAX_TIMEOUT_MS, MAX_TIMEOUT_MS + 1, 10**18 - 1, 10**18, 2**63 - 1, 2**63, 2**64]
            ),
        )
    )
    digits = str(abs(number))
    if draw(st.booleans()):
        digits = "0" * draw(st.integers(1, 3)) + digits
    if len(digits) > 1 and draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(1, len(digits) - 1))
        digits = f"{digits[:cut]}_{digits[cut:]}"
    sign = "-" if number < 0 else draw(st.sampled_from(["", "", "", "+"]))
    suffix = draw(st.sampled_from(["", "", "", "", ".0", ".5", "e3", "L"]))
    return draw(PADDING) + sign + digits + suffix + draw(PADDING)


@st.composite
def connection_strings(draw: st.DrawFn) -> str:
    """A URI of each scheme, and of others, with whitespace and text around it."""
    scheme = draw(
        st.sampled_from(
            [*CONNECTION_SCHEMES, "MONGODB://", "postgres://", "mongodb:/", "mongodb", "", "file:/"]
        )
    )
    rest = draw(st.sampled_from(["localhost:27017", "u:S3cret#PW@h:1/db", "/tmp/x", ""]) | TEXT)
    return draw(PADDING) + scheme + rest + draw(PADDING)


@st.composite
def tag_texts(draw: st.DrawFn) -> str:
    """Comma-separated tags, some of them JSON-looking or quoted."""
    items = st.sampled_from(["a", " b ", "", "gpu[0]", '"x"', '["y"]', "{", 'say "hi"', "é"])
    return ",".join(draw(st.lists(items, max_size=5)))


OTHER_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(),
    st.floats(),
    st.just(5.0),
    st.builds(Path, TEXT),
    st.builds(PurePosixPath, TEXT),
    st.lists(TEXT, max_size=3),
    st.tuples(TEXT),
    st.lists(st.integers(), max_size=2),
    st.binary(max_size=3),
    st.builds(Word, st.sampled_from(["dev", "never", "x", "true", "12"])),
    st.dictionaries(TEXT, TEXT, max_size=1),
)
"""Python values given as arguments, and values of the wrong type."""
ANY_TEXT = st.one_of(TEXT, SURROGATES, st.sampled_from(["", " ", "\x00", "a\x00b"]))

RAW_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "mongodb_enabled": spellings([*BOOL_WORDS, "maybe", "tru", ""]),
    "mongodb_connection_string": connection_strings(),
    "mongodb_database": st.one_of(
        st.text(st.sampled_from('ab_-/\\. "$é9'), max_size=8),
        st.sampled_from(["a" * 63, "a" * 64, "vt_metrics", "from env"]),
    ),
    "mongodb_timeout_ms": number_texts(),
    "environment": spellings(["dev", "stage", "prod", "lab", "production", "test", ""]),
    "experiment_tags": st.one_of(
        tag_texts(), st.lists(st.sampled_from(["a", " b", "", "a", '"q"']), max_size=3)
    ),
    "evalstore_spool_dir": st.one_of(
        TEXT,
        st.sampled_from(["/tmp/spool", "~/spool", ".", " "]),
        st.builds(Path, TEXT),
    ),
    "evalstore_spool_fsync": spellings(["always", "interval", "never", "sometimes"]),
    "evalstore_batch_size": number_texts(),
    "evalstore_flush_interval_ms": number_texts(),
    "evalstore_queue_size": number_texts(),
    "evalstore_suite": st.one_of(TEXT, st.sampled_from(["", " ", "suite"])),
}
"""Per field: the raw values to try, besides `ANY_TEXT` and `OTHER_VALUES`."""


POSITIVE = st.one_of(st.integers(1, 20), st.integers(1, MAX_TIMEOUT_MS))
ORDINARY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "mongodb_enabled": st.one_of(spellings(BOOL_WORDS, padded=False), st.booleans()),
    "mongodb_connection_string": st.builds(
        lambda pad, scheme, rest: pad + scheme + rest,
        PADDING,
        st.sampled_from(CONNECTION_SCHEMES),
        st.sampled_from(["localhost:27017", "u:S3cret#PW@h:1/db?w=1", "/tmp/x", "h"]),
    ),
    "mongodb_database": st.text(st.sampled_from("abcXYZ019_-é"), min_size=1, max_size=63),
    "mongodb_timeout_ms": st.one_of(POSITIVE, POSITIVE.map(str)),
    "environment": spellings(["dev", "stage", "prod", "lab"]),
    "experiment_tags": st.one_of(
        st.lists(st.sampled_from(["a", " b ", "", "gpu[0]", 'say "hi"', "é"])).map(",".join),
        st.lists(st.sampled_from(["a", " b", ""]), max_size=3),
        st.tuples(st.sampled_from(["a", "b "])),
        st.none(),
    ),
    "evalstore_spool_dir": st.one_of(
        st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=10),
        st.builds(Path, TEXT),
    ),
    "evalstore_spool_fsync": st.sampled_from(["always", "interval", "never"]),
    "evalstore_batch_size": st.one_of(POSITIVE, POSITIVE.map(str)),
    "evalstore_flush_interval_ms": st.one_of(POSITIVE, POSITIVE.map(str)),
    "evalstore_queue_size": st.one_of(POSITIVE, POSITIVE.map(str)),
    "evalstore_suite": st.one_of(st.none(), st.text(min_size=1, max_size=8)),
}
"""Per field: values of the kinds it is usually given (most of them read without pydantic)."""


def mostly(
    usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any], tenths: int
) -> st.SearchStrategy[Any]:
    """Values of `usual` `tenths` times in ten, else of `other`."""
    return st.integers(1, 10).flatmap(lambda roll: usual if roll <= tenths else other)


def raw_values(name: str, usual_tenths: int = 5) -> st.SearchStrategy[Any]:
    """The values to give field `name`: of its usual kinds, its unusual ones, or anything."""
    unusual = st.one_of(RAW_VALUES[name], ANY_TEXT, OTHER_VALUES)
    return mostly(ORDINARY_VALUES[name], unusual, usual_tenths)


@contextmanager
def no_setting_variables() -> Iterator[None]:
    """No settings in os.environ for the block: only the given values count."""
    saved = {k: v for k, v in os.environ.items() if k.lower() in FIELD_NAMES}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def shape(value: object) -> object:
    """`value` with its type, and its items' types: `True` and `1` differ."""
    if isinstance(value, list):
        return (list, [shape(item) for item in value])
    return (type(value), value)


def outcome(make: Callable[[], Any]) -> tuple[str, object]:
    """What `make()` gives: every field (typed) and the names set, or its errors."""
    try:
        made = make()
    except ValidationError as exc:
        return "error", [(e["loc"], e["type"], e["msg"]) for e in exc.errors()]
    return "ok", (
        [(name, shape(getattr(made, name))) for name in FIELD_NAMES],
        made.model_fields_set,
    )


def attempt(make: Callable[[], object]) -> object:
    """What `make()` gives, or the type and message of what it raises."""
    try:
        return make()
    except Exception as exc:
        return type(exc), str(exc)


def assert_read_as_pydantic(values: dict[str, Any]) -> None:
    """`Settings(**values)` is `SettingsFields(**values)`: values, shown forms, or errors."""
    with no_setting_variables():
        found = outcome(lambda: Settings(_env_file=None, **values))
        expected = outcome(lambda: SettingsFields(**values))
        assert found == expected
        if found[0] == "ok":
            ours, theirs = Settings(_env_file=None, **values), SettingsFields(**values)
            assert str(ours) == str(theirs)
            assert repr(ours) == "Settings" + repr(theirs).removeprefix("SettingsFields")
            for mode in ("python", "json"):
                dumped = attempt(lambda: ours.model_dump(mode=mode))  # noqa: B023
                assert dumped == attempt(lambda: theirs.model_dump(mode=mode))  # noqa: B023
            assert attempt(ours.model_dump_json) == attempt(theirs.model_dump_json)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(FIELD_NAMES).flatmap(lambda n: st.tuples(st.just(n), raw_values(n))))
def test_each_value_is_read_as_pydantic_reads_it(field: tuple[str, Any]) -> None:
    name, value = field
    event("read plainly" if read_plainly({name: value}) is not None else "left to pydantic")
    assert_read_as_pydantic({name: value})


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={name: raw_values(name, usual_tenths=9) for name in FIELD_NAMES},
    )
)
def test_settings_are_read_as_pydantic_reads_them(values: dict[str, Any]) -> None:
    event("read plainly" if read_plainly(values) is not None else "left to pydantic")
    assert_read_as_pydantic(values)


TYPICAL: dict[str, Any] = {
    "mongodb_enabled": "true",
    "mongodb_connection_string": " mongodb://ci:S3cret#PW@db:27017/?authSource=admin ",
    "mongodb_database": "vt_metrics",
    "mongodb_timeout_ms": "100",
    "environment": "Lab",
    "experiment_tags": "baseline, latency",
    "evalstore_spool_dir": "/tmp/spool",
    "evalstore_spool_fsync": "never",
    "evalstore_batch_size": "50",
    "evalstore_flush_interval_ms": "250",
    "evalstore_queue_size": "1000",
    "evalstore_suite": "nightly",
}


@pytest.mark.parametrize(
    "values",
    [
        {},
        TYPICAL,
        {"mongodb_enabled": "FALSE", "mongodb_connection_string": "file:///tmp/x"},
        {"mongodb_enabled": True, "evalstore_spool_dir": Path("/tmp/s"), "mongodb_timeout_ms": 9},
        {"experiment_tags": ["a", "b"], "evalstore_suite": None, "environment": " prod\n"},
    ],
)
def test_ordinary_values_are_read_without_pydantic(values: dict[str, Any]) -> None:
    assert read_plainly(values) is not None
    assert_read_as_pydantic(values)


@pytest.mark.parametrize(
    "values",
    [
        {"mongodb_enabled": " true"},
        {"mongodb_timeout_ms": "05"},
        {"mongodb_timeout_ms": True},
        {"evalstore_batch_size": 2**63},
        {"environment": Word("dev")},
        {"evalstore_spool_dir": ""},
        {"evalstore_suite": "a\udcff"},
        {"experiment_tags": ["a", 1]},
        {"unknown_name": 1},
    ],
)
def test_unusual_values_are_left_to_pydantic(values: dict[str, Any]) -> None:
    assert read_plainly(values) is None
    assert_read_as_pydantic(values)


def test_the_field_names_are_the_models() -> None:
    assert tuple(SettingsFields.model_fields) == FIELD_NAMES
    assert Settings.model_fields is SettingsFields.model_fields
    assert list(Settings.model_fields) == list(FIELD_NAMES)
    assert evalstore.settings.SettingsFields is SettingsFields  # still importable from there


def test_an_error_reads_as_it_always_did() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, mongodb_timeout_ms="abc", environment="x")
    assert error.value.title == "Settings"
    assert str(error.value).startswith("2 validation errors for Settings\nmongodb_timeout_ms\n")


def test_the_model_api_behaves_as_pydantics() -> None:
    with no_setting_variables():
        ours = Settings(_env_file=None, **TYPICAL)
        theirs = SettingsFields(**TYPICAL)
    update = {"mongodb_connection_string": "mongodb://other:1", "mongodb_timeout_ms": "not checked"}
    for copied, reference in [
        (ours.model_copy(update=update), theirs.model_copy(update=update)),
        (ours.model_copy(update=update, deep=True), theirs.model_copy(update=update, deep=True)),
        (ours.model_copy(deep=True), theirs.model_copy(deep=True)),
        (copy.copy(ours), copy.copy(theirs)),
        (copy.deepcopy(ours), copy.deepcopy(theirs)),
    ]:
        assert type(copied) is Settings
        assert copied.__dict__ == reference.__dict__
        assert copied.model_fields_set == reference.model_fields_set
        assert dict(copied) == dict(reference)
    assert ours.mongodb_timeout_ms == 100  # copies leave the original as it was
    shallow, deep = ours.model_copy(), ours.model_copy(deep=True)
    assert shallow.experiment_tags is ours.experiment_tags
    assert deep.experiment_tags is not ours.experiment_tags
    assert shallow == deep == ours == pickle.loads(pickle.dumps(ours))
    assert ours != ours.model_copy(update={"environment": "dev"})
    assert ours != theirs  # another class, as when Settings was a subclass of it
    with pytest.raises(TypeError, match="unhashable"):
        hash(ours)
    ours.mongodb_enabled = False  # not validated, as pydantic's model
    assert ours.model_fields_set == set(TYPICAL)
    with pytest.raises(ValueError, match='"Settings" object has no field "enabled"'):
        ours.enabled = True  # type: ignore[attr-defined]


def test_typical_settings_load_without_importing_pydantic(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "import evalstore.settings\n"
        "s = evalstore.settings.load_settings(env_file=None)\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('pydantic')),\n"
        "    s.mongodb_enabled, s.mongodb_connection_string, s.environment,\n"
        "    s.experiment_tags, s.evalstore_suite]))\n"
    )
    environ = {k: v for k, v in os.environ.items() if k.lower() not in FIELD_NAMES}
    environ |= {
        "MONGODB_ENABLED": "true",
        "MONGODB_CONNECTION_STRING": "file:///tmp/x",
        "ENVIRONMENT": "lab",
        "EXPERIMENT_TAGS": "a,b",
        "EVALSTORE_SUITE": "s",
        "EVALSTORE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [[], True, "file:///tmp/x", "lab", ["a", "b"], "s"]

    failing = "import evalstore.settings\nevalstore.settings.load_settings(env_file=None)\n"
    done = subprocess.run(
        [sys.executable, "-c", failing],
        env=environ | {"MONGODB_TIMEOUT_MS": "abc"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "evalstore.errors.ConfigurationError: invalid MONGODB_TIMEOUT_MS='abc': expected a "
        "whole number of milliseconds from 1 to 999999999 (pymongo's limit)"
    )


def test_the_same_invalid_setting_fails_the_same_way_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "abc")
    with pytest.raises(ConfigurationError) as error:
        load_settings(env_file=None)
    assert str(error.value) == (
        "invalid MONGODB_TIMEOUT_MS='abc': expected a whole number of milliseconds "
        "from 1 to 999999999 (pymongo's limit)"
    )

"""No password is ever shown: by redaction, Settings, the client, the CLI or a log line.

Each password below rides in every connection-string shape of the README, as typed
(raw) and percent-encoded. Whatever evalstore shows must hold neither form of it,
nor its `quote_plus` form, nor any distinctive piece of it. A dead port (nothing
listens on 127.0.0.1:1) with a 100 ms timeout keeps the unreachable cases fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from evalstore import ConfigurationError, MongoDBClient, Settings, evaluation_run, load_settings
from evalstore.cli import app
from evalstore.errors import StorageUnavailableError
from evalstore.redaction import redact_connection_string, redact_uri

PASSWORDS = [
    "S3cret#PW9x",  # the example: a `#`
    "Pa55/W0rd/7xyz",  # `/`
    "Qy7k?k3yz=v4Lq&zz",  # `?`, `=`, `&`
    "Mx4q@Bq8w@Cz2e",  # `@`, twice
    "Sp4ce Bar9x Xx7y",  # spaces
    "  Lead1ng7",  # leading spaces
    "Tra1l1ng7 ",  # a trailing space
    "Tab1\tSep4r8",  # a tab
    "100%Pur3Zq",  # a bare `%`
    "%41lr3ady%20Enc0d",  # already percent-encoded
    "C0l0n:K3yW8:Zq9x",  # `:`
    "Pässwörd✓9",  # accents and a symbol
    "密码🔑Kx9z",  # CJK and an emoji
    "Sem1c;C0mma,Kq7z",  # `;` and `,`
    "Qu0te'And\"Dbl9",  # quotes
    "Back\\Sl4sh",  # a backslash
    "Br4ck[]{}<>Kz9q",  # brackets
    "Sch3me://Hid3@Kq7z",  # a scheme and an `@` inside
    "Sp8x Sch3me://Kq7z@Zz9q",  # whitespace, then a scheme and an `@`
    "#?/@: %Mix3d",  # every delimiter at once
    "Plus+S1gn=Kx9",  # `+`: quote and quote_plus differ
    "Kx9q&password=Zz7q",  # looks like a query option
    "mongodb://Inn3r:Pw9x@h0st",  # a whole connection string
]
WHITESPACE = [password for password in PASSWORDS if re.search(r"\s", password)]

# The README's shapes, with a user and a password. The SRV one has a port, which pymongo
# refuses before any DNS lookup (none happens in the tests).
DEAD_SHAPES = [
    "mongodb://user:{}@127.0.0.1:1",
    "mongodb://user:{}@127.0.0.1:1/",
    "mongodb://user:{}@127.0.0.1:1/vt_metrics?authSource=admin",
    "mongodb://user:{}@127.0.0.1:1,127.0.0.1:2/?replicaSet=rs0&w=majority",
]
SRV_SHAPE = "mongodb+srv://user:{}@cluster0.example.net:1/?retryWrites=true&w=majority"
EMBEDDED_SHAPE = "mongomock://user:{}@localhost"
LOCAL_SHAPE = "file://user:{}@/tmp/evalstore-history"
SHAPES = [*DEAD_SHAPES, SRV_SHAPE, EMBEDDED_SHAPE, LOCAL_SHAPE]
# Without `://`: refused, and never echoed whole.
SCHEMELESS_SHAPES = {
    "user:{}@127.0.0.1:1": "user:***@127.0.0.1:1",
    "mongodb:/user:{}@127.0.0.1:1": "mongodb:***@127.0.0.1:1",
    "mongodb//user:{}@127.0.0.1:1": "***@127.0.0.1:1",
}
BAD_SCHEME_SHAPE = "postgres://user:{}@db.example:5432/x"
REFUSED_SHAPES = {**SCHEMELESS_SHAPES, BAD_SCHEME_SHAPE: "postgres://user:***@db.example:5432/x"}
# Free text around one or two connection strings, as in evalstore's messages.
TEXTS = [
    "cannot reach MongoDB at {0} (no answer within 100 ms, ServerSelectionTimeoutError)",
    "invalid connection string '{0}': it must start with mongodb://, mongomock://",
    "evalstore: cannot reach {0}\nsecond line",
    "copy from {0} to {0}, then ping {0}",
]
SCHEMES = "mongodb://, mongodb+srv://, mongomock://, file://"


def secrets(password: str) -> set[str]:
    """The forms of `password` that must never be shown, and its distinctive pieces."""
    pieces = re.split(r"[\s/?#@:;,'\"\\\[\]{}<>=&%+]+", password)
    distinctive = {piece for piece in pieces if len(piece) >= 4 and re.search(r"\d", piece)}
    return {password, quote(password, safe=""), quote_plus(password), *distinctive}


def uris(shape: str, password: str) -> list[str]:
    """`shape` holding `password` as typed, and percent-encoded."""
    return [shape.format(password), shape.format(quote(password, safe=""))]


def shown(shape: str) -> str:
    """How `shape` is shown, whatever password it holds."""
    return shape.format("***")


def assert_hidden(password: str, *outputs: str) -> None:
    for output in outputs:
        for secret in secrets(password):
            assert secret not in output, f"{secret!r} is shown in {output!r}"


@contextmanager
def warnings_hide(*passwords: str) -> Iterator[None]:
    """Record the warnings of the block (pymongo warns of options it does not know, as
    in a misread password) and check that none shows a password."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for password in passwords:
        assert_hidden(password, *(str(warning.message) for warning in caught))


@pytest.mark.parametrize("password", PASSWORDS)
def test_redaction_masks_the_whole_userinfo(password: str) -> None:
    for shape in [*SHAPES, BAD_SCHEME_SHAPE]:
        for uri in uris(shape, password):
            assert redact_uri(uri) == shown(shape)
            assert redact_connection_string(uri) == shown(shape)
            for text in TEXTS:
                assert redact_uri(text.format(uri)) == text.format(shown(shape))
            assert redact_uri(redact_uri(uri)) == shown(shape)  # applied again, it holds


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_string_without_scheme_is_never_shown_whole(password: str) -> None:
    for shape, expected in SCHEMELESS_SHAPES.items():
        for uri in uris(shape, password):
            assert redact_connection_string(uri) == expected
            if password not in WHITESPACE:  # one word of a text: redact_uri sees it whole
                assert redact_uri(uri) == expected
                assert redact_uri(f"got '{uri}': no") == f"got '{expected}': no"


@pytest.mark.parametrize("password", PASSWORDS)
def test_settings_never_show_the_password(password: str) -> None:
    for shape in SHAPES:
        for uri in uris(shape, password):
            settings = Settings(mongodb_connection_string=uri)
            assert settings.mongodb_connection_string == uri  # what the client connects with
            assert f"mongodb_connection_string={shown(shape)!r}" in repr(settings)
            assert f"mongodb_connection_string={shown(shape)!r}" in str(settings)
            dumped = json.loads(settings.model_dump_json())
            assert dumped["mongodb_connection_string"] == shown(shape)
            assert settings.model_dump()["mongodb_connection_string"] == shown(shape)
            assert settings.model_dump(mode="json")["mongodb_connection_string"] == shown(shape)
            assert_hidden(
                password,
                repr(settings),
                str(settings),
                settings.model_dump_json(),
                str(settings.model_dump()),
            )


@pytest.mark.parametrize("password", PASSWORDS)
def test_an_invalid_setting_never_shows_the_password(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for shape, expected in REFUSED_SHAPES.items():
        for uri in uris(shape, password):
            with pytest.raises(ValidationError) as invalid:
                Settings(mongodb_connection_string=uri)
            assert_hidden(password, str(invalid.value), repr(invalid.value))
            monkeypatch.setenv("MONGODB_CONNECTION_STRING", uri)
            with pytest.raises(ConfigurationError) as error:
                load_settings()
            assert str(error.value) == (
                f"invalid MONGODB_CONNECTION_STRING={expected!r}: "
                f"expected a URI starting with {SCHEMES}"
            )
            assert_hidden(password, str(error.value))


async def _client_messages(uri: str, *, use: bool) -> list[str]:
    """What a client shows of `uri`: its repr, and the error of its first use (if `use`)."""
    try:
        client = MongoDBClient(uri, "db", timeout_ms=100)
    except ConfigurationError as exc:
        return [str(exc), repr(exc)]
    shown_ = [repr(client)]
    try:
        if use:
            await client.ping()
    except (ConfigurationError, StorageUnavailableError) as exc:
        shown_ += [str(exc), repr(exc)]
    finally:
        await client.close()
    return shown_


async def test_the_client_never_shows_the_password() -> None:
    # A client of a dead port waits for pymongo's 500 ms heartbeat: only one such shape is
    # used (all its clients at once); the others differ from it after the host.
    used = {DEAD_SHAPES[2], SRV_SHAPE, EMBEDDED_SHAPE}
    cases = [
        (password, shape, uri)
        for password in PASSWORDS
        for shape in SHAPES
        for uri in uris(shape, password)
    ]
    with warnings_hide(*PASSWORDS):
        found = await asyncio.gather(
            *(_client_messages(uri, use=shape in used) for _, shape, uri in cases)
        )
    for (password, shape, uri), shown_ in zip(cases, found, strict=True):
        assert_hidden(password, *shown_)
        if shape == LOCAL_SHAPE:
            assert shown_[0].startswith(f"invalid local store {shown(shape)!r}: ")
            continue
        assert shown_[0] == f"MongoDBClient({shown(shape)!r}, 'db')", uri
        if shape not in used or shape == EMBEDDED_SHAPE:
            assert len(shown_) == 1  # not used, or the embedded backend answered
        elif shown_[1].startswith("cannot reach"):
            assert shown_[1].startswith(
                f"cannot reach MongoDB at {shown(shape)} (no answer within 100 ms"
            )
        else:
            assert shown_[1].startswith(f"invalid connection string {shown(shape)!r}: ")


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_client_never_shows_a_string_without_scheme(password: str) -> None:
    for shape, expected in SCHEMELESS_SHAPES.items():
        for uri in uris(shape, password):
            with pytest.raises(ConfigurationError) as error:
                MongoDBClient(uri, "db", timeout_ms=100)
            assert str(error.value) == (
                f"invalid connection string {expected!r}: it must start with {SCHEMES}"
            )
            assert_hidden(password, str(error.value))


def _cli(*args: str) -> str:
    with warnings_hide(*PASSWORDS):
        result = CliRunner().invoke(app, list(args), env={"MONGODB_TIMEOUT_MS": "100"})
    assert result.exit_code == 1, result.output
    return result.output


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_cli_never_shows_the_password(password: str) -> None:
    for uri in uris(SRV_SHAPE, password):
        output = _cli("ping", "--url", uri)
        assert output.startswith(f"error: invalid connection string {shown(SRV_SHAPE)!r}: ")
        assert output.count("\n") == 1
        assert_hidden(password, output)
    for uri in uris(LOCAL_SHAPE, password):
        output = _cli("runs", "list", "--url", uri)
        assert output.startswith(f"error: invalid local store {shown(LOCAL_SHAPE)!r}: ")
        assert output.endswith("expected file:///absolute/path/to/dir\n")
        assert_hidden(password, output)


@pytest.mark.parametrize(
    ("command", "uri", "password"),
    [
        (["ping"], "mongodb://user:S3cret#PW9x@127.0.0.1:1/", "S3cret#PW9x"),
        (["ping", "--json"], "mongodb://user:Sp4ce Bar9x Xx7y@127.0.0.1:1", "Sp4ce Bar9x Xx7y"),
        (
            ["runs", "list"],
            "mongodb://user:%23%3F%2F%40%3A%20%25Mix3d@127.0.0.1:1/",
            "#?/@: %Mix3d",
        ),
    ],
)
def test_an_unreachable_server_in_the_cli_never_shows_the_password(
    command: list[str], uri: str, password: str
) -> None:
    output = _cli(*command, "--url", uri)
    host = uri.rpartition("@")[2]
    assert output.startswith(
        f"error: cannot reach MongoDB at mongodb://user:***@{host} (no answer within 100 ms"
    )
    assert_hidden(password, output)


async def test_log_records_never_show_the_password(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, evalstore's and its libraries'
    chosen = ["S3cret#PW9x", "Sp8x Sch3me://Kq7z@Zz9q", "Mx4q@Bq8w@Cz2e"]
    runs = [(password, uri) for password in chosen for uri in uris(DEAD_SHAPES[1], password)]

    async def record(index: int, uri: str) -> None:
        settings = Settings(
            mongodb_enabled=True,
            mongodb_connection_string=uri,
            mongodb_timeout_ms=100,
            evalstore_spool_dir=tmp_path / f"spool{index}",
        )
        async with evaluation_run(settings=settings, environment="dev") as run:
            await run.record_test("t1", score=50.0)

    with warnings_hide(*chosen):
        await asyncio.gather(*(record(index, uri) for index, (_, uri) in enumerate(runs)))
    logged = [
        record.getMessage() + (caplog.handler.format(record) if record.exc_info else "")
        for record in caplog.records
    ]
    unavailable = [
        record.getMessage()
        for record in caplog.records
        if record.name == "evalstore" and "MongoDB is unavailable" in record.getMessage()
    ]
    hint = f"evalstore sync --to {shown(DEAD_SHAPES[1])!r} (with the password in place of ***)"
    assert len(unavailable) == len(runs)
    assert all(hint in message for message in unavailable)
    for password in chosen:
        assert_hidden(password, *logged)

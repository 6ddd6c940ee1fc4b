"""Settings come from the environment and `.env`, validated with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from evalstore import ConfigurationError, MongoDBClient, Settings, load_settings
from evalstore.settings import MAX_TIMEOUT_MS


def test_defaults_match_the_documented_table() -> None:
    settings = load_settings()
    assert settings.mongodb_enabled is False
    assert settings.mongodb_connection_string == "mongodb://localhost:27017"
    assert settings.mongodb_database == "vt_metrics"
    assert settings.mongodb_timeout_ms == 5000
    assert settings.environment == "dev"
    assert settings.experiment_tags == []


def test_experiment_tags_are_trimmed_and_empty_items_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPERIMENT_TAGS", " baseline, config-tweak ,, ,latency ")
    assert load_settings().experiment_tags == ["baseline", "config-tweak", "latency"]


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_enabled_accepts_common_true_spellings(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MONGODB_ENABLED", value)
    assert load_settings().mongodb_enabled is True


def test_invalid_environment_names_the_allowed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert str(error.value) == (
        "invalid ENVIRONMENT='production': expected one of dev, stage, prod, lab"
    )


def test_environment_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", " Prod ")
    assert load_settings().environment == "prod"


def test_invalid_enabled_flag_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_ENABLED", "maybe")
    with pytest.raises(ConfigurationError, match=r"^invalid MONGODB_ENABLED='maybe': expected"):
        load_settings()


def test_invalid_timeout_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "0")
    with pytest.raises(ConfigurationError, match="MONGODB_TIMEOUT_MS"):
        load_settings()


def test_dotenv_in_working_directory_is_loaded(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "MONGODB_ENABLED=true\nMONGODB_DATABASE=from_dotenv\nEXPERIMENT_TAGS=a,b\n"
    )
    settings = load_settings()
    assert settings.mongodb_enabled is True
    assert settings.mongodb_database == "from_dotenv"
    assert settings.experiment_tags == ["a", "b"]


def test_real_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("MONGODB_DATABASE=from_dotenv\nENVIRONMENT=lab\n")
    monkeypatch.setenv("MONGODB_DATABASE", "from_env")
    settings = load_settings()
    assert settings.mongodb_database == "from_env"
    assert settings.environment == "lab"


def test_dotenv_loading_can_be_turned_off(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MONGODB_DATABASE=from_dotenv\n")
    assert load_settings(env_file=None).mongodb_database == "vt_metrics"


def test_invalid_connection_string_is_rejected_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "postgres://bob:hunter2@db.example:5432")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert str(error.value) == (
        "invalid MONGODB_CONNECTION_STRING='postgres://bob:***@db.example:5432': expected a URI "
        "starting with mongodb://, mongodb+srv://, mongomock://, file://"
    )


@pytest.mark.parametrize("value", ["2147483648", "1000000000", "99999999999999999999999"])
def test_a_timeout_beyond_pymongos_limit_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert str(error.value) == (
        f"invalid MONGODB_TIMEOUT_MS={value!r}: expected a whole number of milliseconds "
        "from 1 to 999999999 (pymongo's limit)"
    )


async def test_the_longest_timeout_is_accepted_by_the_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", str(MAX_TIMEOUT_MS))
    settings = load_settings()
    assert settings.mongodb_timeout_ms == 999_999_999
    async with MongoDBClient.from_settings(settings) as client:
        assert client.db.name == "vt_metrics"  # building the driver's client checks the timeout


@pytest.mark.parametrize("value", ['["a","b"]', '  ["a"]', '{"a": 1}', '"a","b"', 'a,"b"'])
def test_experiment_tags_given_as_json_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("EXPERIMENT_TAGS", value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert str(error.value) == (
        f"invalid EXPERIMENT_TAGS={value!r}: expected comma-separated tags (a,b), not JSON"
    )


def test_experiment_tags_may_hold_brackets_and_quotes_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPERIMENT_TAGS", 'gpu[0],say "hi" twice')
    assert load_settings().experiment_tags == ["gpu[0]", 'say "hi" twice']


PASSWORD_URI = "mongodb://ci:S3cret#PW @db:27017/?authSource=admin"
REDACTED_URI = "mongodb://ci:***@db:27017/?authSource=admin"


def test_settings_show_the_connection_string_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", PASSWORD_URI)
    settings = load_settings()
    assert settings.mongodb_connection_string == PASSWORD_URI  # a plain str, to connect with
    assert type(settings.mongodb_connection_string) is str
    field = f"mongodb_connection_string={REDACTED_URI!r}"
    assert repr(settings).startswith(f"Settings(mongodb_enabled=False, {field}, ")
    assert str(settings).startswith(f"mongodb_enabled=False {field} ")
    assert json.loads(settings.model_dump_json())["mongodb_connection_string"] == REDACTED_URI
    assert settings.model_dump(mode="json")["mongodb_connection_string"] == REDACTED_URI
    assert settings.model_dump()["mongodb_connection_string"] == REDACTED_URI
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "S3cret" not in shown


def test_a_validation_error_of_settings_does_not_show_the_password() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(mongodb_connection_string="postgres://ci:S3cret#PW@db:5432")
    assert "S3cret" not in str(error.value)
    assert "S3cret" not in repr(error.value)
    assert "must start with mongodb://, mongodb+srv://, mongomock://, file://" in str(error.value)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("user:S3cret PW@127.0.0.1:1", "user:***@127.0.0.1:1"),
        ("S3cretPW@127.0.0.1:1", "***@127.0.0.1:1"),
        ("mongodb:/user:S3cret@PW@127.0.0.1:1", "mongodb:***@127.0.0.1:1"),
    ],
)
def test_a_connection_string_without_scheme_is_not_echoed_whole(
    monkeypatch: pytest.MonkeyPatch, value: str, shown: str
) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert str(error.value) == (
        f"invalid MONGODB_CONNECTION_STRING={shown!r}: expected a URI starting with "
        "mongodb://, mongodb+srv://, mongomock://, file://"
    )

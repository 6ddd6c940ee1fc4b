"""Settings come from the environment and `.env`, validated with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalstore import ConfigurationError, load_settings


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

"""The durability settings: defaults, environment variables, one-line errors."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from evalstore import ConfigurationError, load_settings


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.delenv("EVALSTORE_SPOOL_DIR")
    settings = load_settings(env_file=None)
    assert settings.evalstore_spool_dir == Path(platformdirs.user_cache_dir("evalstore")) / "spool"
    assert settings.evalstore_spool_fsync == "interval"
    assert (
        settings.evalstore_batch_size,
        settings.evalstore_flush_interval_ms,
        settings.evalstore_queue_size,
    ) == (500, 1000, 10_000)


def test_from_the_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("EVALSTORE_SPOOL_DIR", str(tmp_path / "s"))
    clean_env.setenv("EVALSTORE_SPOOL_FSYNC", "always")
    clean_env.setenv("EVALSTORE_BATCH_SIZE", "50")
    clean_env.setenv("EVALSTORE_FLUSH_INTERVAL_MS", "200")
    clean_env.setenv("EVALSTORE_QUEUE_SIZE", "100")
    settings = load_settings(env_file=None)
    assert settings.evalstore_spool_dir == tmp_path / "s"
    assert settings.evalstore_spool_fsync == "always"
    assert (
        settings.evalstore_batch_size,
        settings.evalstore_flush_interval_ms,
        settings.evalstore_queue_size,
    ) == (50, 200, 100)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "EVALSTORE_SPOOL_FSYNC",
            "sometimes",
            "invalid EVALSTORE_SPOOL_FSYNC='sometimes': expected always, interval or never",
        ),
        (
            "EVALSTORE_BATCH_SIZE",
            "0",
            "invalid EVALSTORE_BATCH_SIZE='0': expected a positive number of results",
        ),
    ],
)
def test_invalid_values_are_one_line_errors(
    clean_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(env_file=None)
    assert str(raised.value) == message

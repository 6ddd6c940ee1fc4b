"""Hooks the evalstore pytest plugin adds, for a `conftest.py` or another plugin to implement."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_evalstore_system_config(config: pytest.Config) -> dict[str, Any] | None:
    """Return the configuration of the system under test, to snapshot with the run.

    The dicts every implementation returns are merged (later ones win on equal
    keys) into the run's `system_information.config`, which goes into
    `system_info_hash`: runs of the same configuration share a hash. Use plain
    data only (numbers, strings, booleans, None, lists, dicts). Implement it in
    the root `conftest.py` or in a plugin: it is called at session start.

    Args:
        config: the pytest config.
    """

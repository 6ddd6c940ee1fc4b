"""The versions the plugin records of pytest and its plugins: pluggy's, as importlib's."""

from __future__ import annotations

from importlib import metadata

import pytest

from evalstore.pytest_plugin.session import plugin_packages
from evalstore.recording.provenance import package_versions, system_information


def test_the_plugin_versions_are_those_importlib_finds(pytestconfig: pytest.Config) -> None:
    versions = plugin_packages(pytestconfig)
    assert next(iter(versions)) == "pytest"
    assert len(versions) > 1  # this session loads plugins (evalstore, xdist, ...)
    # The same snapshot (and so the same system_info_hash) as looking each name up.
    assert package_versions(versions) == package_versions(list(versions))
    assert all(version == metadata.version(name) for name, version in versions.items())
    assert system_information({}, versions) == system_information({}, list(versions))

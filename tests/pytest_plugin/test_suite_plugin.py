"""The plugin records the suite: the project name of pyproject.toml, else pytest's rootdir."""

from __future__ import annotations

import pytest


def test_the_suite_is_the_project_name(inner: pytest.Pytester, run_recorded, stored) -> None:
    inner.makefile(".toml", pyproject='[project]\nname = "more-itertools"\n')
    inner.makepyfile(test_one="def test_one():\n    pass\n")
    assert run_recorded().ret == 0
    [run], _tests = stored()
    assert run["suite"] == "more-itertools"


def test_without_a_project_the_rootdir_names_the_suite(
    inner: pytest.Pytester, run_recorded, stored
) -> None:
    inner.makepyfile(test_one="def test_one():\n    pass\n")
    assert run_recorded().ret == 0
    [run], _tests = stored()
    assert run["suite"] == inner.path.name


def test_evalstore_suite_wins(
    inner: pytest.Pytester, run_recorded, stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALSTORE_SUITE", "boltons-nightly")
    inner.makefile(".toml", pyproject='[project]\nname = "boltons"\n')
    inner.makepyfile(test_one="def test_one():\n    pass\n")
    assert run_recorded().ret == 0
    [run], _tests = stored()
    assert run["suite"] == "boltons-nightly"

"""What users import and run keeps working: every public name, every command's --help."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import evalstore
from evalstore.cli import app


def command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the CLI, as argument tuples."""
    paths = [prefix]
    if hasattr(command, "commands"):  # a group
        for name, sub in sorted(command.commands.items()):
            paths += command_paths(sub, (*prefix, name))
    return paths


COMMANDS = command_paths(typer.main.get_command(app))


def test_every_public_name_imports() -> None:
    code = "import evalstore\nfor name in evalstore.__all__:\n    getattr(evalstore, name)\n"
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in evalstore.__all__:
        assert getattr(evalstore, name) is not None
    assert sorted(evalstore.__all__) == sorted([*evalstore._EXPORTS, "__version__"])


def test_entry_points_resolve() -> None:
    [console] = [e for e in entry_points(group="console_scripts") if e.name == "evalstore"]
    assert console.value == "evalstore.cli:main"
    assert callable(console.load())
    [plugin] = [e for e in entry_points(group="pytest11") if e.name == "evalstore"]
    assert plugin.value == "evalstore.pytest_plugin"
    assert hasattr(importlib.import_module(plugin.value), "pytest_configure")


def test_the_cli_has_its_commands() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"demo", "ping", "runs list", "runs show", "sync", "compare", "prune"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "evalstore")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output

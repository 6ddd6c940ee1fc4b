"""The package's shape: imports run one way, and only `storage/` touches a collection."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import evalstore

PACKAGE = Path(evalstore.__file__).parent
# Lowest first. A module may import its own sub-package and anything of a lower layer; the
# bottom layer's modules may import one another (settings uses errors and redaction).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "errors",
            "settings",
            "settings_model",
            "redaction",
            "models",
            "schema",
            "ids",
            "codec",
            "pricing",
        }
    ),
    frozenset({"storage"}),
    frozenset({"analysis"}),
    frozenset({"service"}),
    frozenset({"monitors", "plots"}),
    frozenset({"recording"}),
    frozenset({"web"}),
    frozenset({"cli", "pytest_plugin"}),
)
# What a pymongo/Motor collection (or mongomock's) answers to; evalstore's seam uses other names.
COLLECTION_METHODS = frozenset(
    {
        "find",
        "find_one",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "aggregate",
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "bulk_write",
        "count_documents",
        "estimated_document_count",
        "distinct",
        "index_information",
        "create_index",
        "drop_index",
        "watch",
    }
)


def unit_of(module: str) -> str:
    """`evalstore.storage.client` -> `storage`; `evalstore.models` -> `models`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(unit: str) -> int:
    for rank, units in enumerate(LAYERS):
        if unit in units:
            return rank
    raise AssertionError(f"evalstore.{unit} belongs to no layer: add it to LAYERS")


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        if parts:  # the package's own __init__ is the public API: it may name anything
            found.append((".".join(["evalstore", *parts]), path))
    return found


def imported_modules(module: str, path: Path) -> set[str]:
    names: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("evalstore.")}


def layer_violations(module: str, path: Path) -> list[str]:
    own = unit_of(module)
    problems = []
    for target in sorted(imported_modules(module, path)):
        public = target.removeprefix("evalstore.")
        unit = unit_of(evalstore._EXPORTS.get(public, target))  # `from evalstore import X`
        if unit == own or not ((PACKAGE / unit).exists() or (PACKAGE / f"{unit}.py").exists()):
            continue  # its own sub-package, or a name imported from a module (not a module)
        rank, own_rank = layer_of(unit), layer_of(own)
        if rank > own_rank or (rank == own_rank and rank > 0):  # the bottom layer shares
            problems.append(f"{module} imports {target}")
    return problems


def collection_calls(path: Path) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in COLLECTION_METHODS
        ):
            calls.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
    return calls


MODULES = modules()


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_go_one_way(module: str, path: Path) -> None:
    assert layer_violations(module, path) == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    upward = tmp_path / "sync.py"
    upward.write_text("from evalstore.service import MetricsStorageService\n")
    assert layer_violations("evalstore.storage.sync", upward) == [
        "evalstore.storage.sync imports evalstore.service",
        "evalstore.storage.sync imports evalstore.service.MetricsStorageService",
    ]
    public = tmp_path / "localstore.py"
    public.write_text("from evalstore import evaluation_run\n")
    assert layer_violations("evalstore.storage.localstore", public) == [
        "evalstore.storage.localstore imports evalstore.evaluation_run"
    ]
    lazy = tmp_path / "client.py"
    lazy.write_text("def f():\n    from evalstore.recording import journal\n")
    assert layer_violations("evalstore.storage.client", lazy) != []


def test_only_storage_calls_a_collection_method() -> None:
    outside = [p for m, p in MODULES if unit_of(m) != "storage"]
    assert [call for path in outside for call in collection_calls(path)] == []


def test_the_collection_check_catches_a_direct_call(tmp_path: Path) -> None:
    code = (PACKAGE / "analysis" / "trends.py").read_text()
    sneaky = tmp_path / "trends.py"
    sneaky.write_text(code + "\n\nasync def f(client):\n    await client.test_runs.find_one({})\n")
    assert collection_calls(PACKAGE / "analysis" / "trends.py") == []
    assert [call.split(" ")[1] for call in collection_calls(sneaky)] == [".find_one()"]

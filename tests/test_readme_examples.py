"""Every ```python block of README.md runs, as written, on the embedded backend.

A block is one of:

- a script (no `await` at the top level): run as `python block.py` would, in a
  fresh `__main__` namespace;
- an asyncio REPL snippet (`await` at the top level): run as `python -m asyncio`
  would, statement by statement in one namespace shared by all such snippets, the
  value of each expression printed;
- explicitly not runnable: `<!-- not-run: reason -->` on the line before its fence.
  It must still compile.

The blocks run in README order, with MONGODB_ENABLED=true and the settings pointing at
`mongomock://`, after the demo's ten runs were recorded (the examples query the demo's
tests and tags), so a block reads what earlier ones recorded, as a reader's would.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evalstore import MetricsStorageService, MongoDBClient
from evalstore.cli.demo import record_demo_history

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```\s*(\S*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(\S.*?)\s*-->$")
_PYTHON = {"python", "py"}


@dataclass(frozen=True)
class Block:
    """One fenced Python block: where its code starts, the code, and why it is not run."""

    line: int  # README line number of the block's first line of code
    code: str
    not_run: str | None


def python_blocks(text: str) -> list[Block]:
    """The Python blocks of a Markdown text, in order.

    Raises:
        ValueError: a `not-run` marker that does not sit right before a Python block,
            or a fence that is never closed.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        marker = _NOT_RUN.match(lines[index].strip())
        opening = _FENCE.match(lines[index])
        if marker and not (
            index + 1 < len(lines)
            and (fence := _FENCE.match(lines[index + 1]))
            and fence.group(1) in _PYTHON
        ):
            raise ValueError(f"README.md:{index + 1}: not-run marker before no ```python block")
        if opening is None:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"README.md:{index + 1}: fence never closed")
        if opening.group(1) in _PYTHON:
            previous = _NOT_RUN.match(lines[index - 1].strip()) if index else None
            blocks.append(
                Block(
                    line=index + 2,
                    code="\n".join(lines[index + 1 : end]) + "\n",
                    not_run=previous.group(1) if previous else None,
                )
            )
        index = end + 1
    return blocks


def _source(block: Block) -> str:
    # Padded so that a traceback names the README's own line numbers.
    return "\n" * (block.line - 1) + block.code


def is_repl_snippet(block: Block) -> bool:
    """True when the block awaits at the top level (written for `python -m asyncio`)."""
    code = compile(_source(block), str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    return bool(code.co_flags & inspect.CO_COROUTINE)


def run_script(block: Block) -> None:
    """Run a block as a script of its own."""
    exec(compile(_source(block), str(README), "exec"), {"__name__": "__main__"})


def run_repl_snippet(
    block: Block, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop
) -> None:
    """Run a block statement by statement as the asyncio REPL does, echoing expressions."""
    for statement in ast.parse(_source(block)).body:
        code = compile(
            ast.Interactive(body=[statement]),
            str(README),
            "single",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        )
        result = eval(code, namespace)
        if code.co_flags & inspect.CO_COROUTINE:
            loop.run_until_complete(result)


@pytest.fixture
def demo_history(monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings on the embedded backend, recording on, and the demo's runs stored there."""
    database = f"readme_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MONGODB_ENABLED", "true")
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    monkeypatch.setenv("MONGODB_DATABASE", database)

    async def record() -> None:
        async with MongoDBClient("mongomock://", database) as client:
            await record_demo_history(MetricsStorageService(client))

    asyncio.run(record())
    return database


def test_every_python_block_of_the_readme_runs(demo_history: str) -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    printed: dict[int, str] = {}
    namespace: dict[str, Any] = {"__name__": "__main__"}
    loop = asyncio.new_event_loop()
    try:
        for block in blocks:
            if block.not_run is not None:
                compile(_source(block), str(README), "exec")  # still valid Python
                continue
            output = io.StringIO()
            with contextlib.redirect_stdout(output):
                if is_repl_snippet(block):
                    run_repl_snippet(block, namespace, loop)
                else:
                    run_script(block)
            printed[block.line] = output.getvalue()
        if isinstance(namespace.get("client"), MongoDBClient):  # what leaving the REPL does
            loop.run_until_complete(namespace["client"].close())
    finally:
        loop.close()

    not_run = [block for block in blocks if block.not_run is not None]
    assert len(printed) + len(not_run) == len(blocks)
    assert len(printed) >= 12
    silent = [line for line, text in printed.items() if not text.strip()]
    assert silent == [], f"README blocks at lines {silent} print nothing"
    everything = "".join(printed.values())
    # Recording from Python stores doctor-patient-es-en with a WER of 82.5, which
    # "Reading from Python" then lists among the demo's results of that test.
    assert "WER = 82.5" in everything
    # The custom runner prints what the README says it prints.
    assert " completed 2 83.33333333333333\n" in everything
    assert "flaky: hotel-checkin-fr-en" in everything


_SAMPLE = """
Text.

```python
print("run")
```

<!-- not-run: a conftest.py hook -->
```python
def pytest_evalstore_system_config(config): ...
```

```bash
echo not python
```

```
evalstore sync
```
"""


def test_blocks_are_found_with_their_markers() -> None:
    blocks = python_blocks(_SAMPLE)

    assert blocks == [
        Block(line=5, code='print("run")\n', not_run=None),
        Block(
            line=10,
            code="def pytest_evalstore_system_config(config): ...\n",
            not_run="a conftest.py hook",
        ),
    ]


def test_a_marker_must_sit_right_before_a_python_block() -> None:
    with pytest.raises(ValueError, match=r"README\.md:2: not-run marker before no"):
        python_blocks("\n<!-- not-run: stale -->\n\n```python\npass\n```\n")
    with pytest.raises(ValueError, match=r"README\.md:2: not-run marker before no"):
        python_blocks("\n<!-- not-run: stale -->\n```bash\nls\n```\n")


def test_repl_snippets_and_scripts_are_told_apart() -> None:
    assert is_repl_snippet(Block(1, "x = await f()\n", None))
    assert not is_repl_snippet(Block(1, "async def f():\n    await g()\n", None))

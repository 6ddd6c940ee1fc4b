"""`evalstore report --html`: the dashboard's pages for one run (or a comparison) as files.

The folder holds `index.html` (the run's page, or the comparison), the page of each
run shown, the history of the tests worth a look (failing, or changed between the
two runs; at most `MAX_TEST_PAGES`), and `static/` with the dashboard's CSS and
JavaScript and Plotly's: a CI job keeps the folder as an artifact and anyone opens
`index.html` from disk, no server needed. Links to pages not written show as text.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from evalstore.errors import EvalstoreError
from evalstore.service import MetricsStorageService
from evalstore.web.assets import OWN_ASSETS, PLOTLY_JS, asset_bytes
from evalstore.web.links import ReportLinks
from evalstore.web.params import Params
from evalstore.web.render import Renderer
from evalstore.web.views.compare import compare_view
from evalstore.web.views.history import test_view
from evalstore.web.views.runs import FAILING, run_view

MAX_TEST_PAGES = 100


FILE_MODE = 0o666


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


class ReportError(EvalstoreError):
    """The report could not be written (the folder, the disk)."""


async def write_html_report(
    service: MetricsStorageService,
    output: Path,
    run: str,
    against: str | None = None,
) -> list[Path]:
    """Write the report of `run` (compared with `against`, when given) into `output`.

    Returns the pages written, `index.html` first.

    Raises:
        RunNotFoundError: a run does not exist.
        ReportError: the folder cannot be written.
    """
    head = await service.select_evaluation_run(run)
    base = await service.select_evaluation_run(against) if against else None
    runs = [head] if base is None else [base, head]
    run_ids = [str(r["evaluation_run_id"]) for r in runs]
    run_files = (
        {run_ids[0]: "index.html"}
        if base is None
        else {run_ids[0]: "run-base.html", run_ids[1]: "run-head.html"}
    )
    wanted: list[str] = []
    if base is not None:
        comparison = await service.compare_runs(run_ids[0], run_ids[1])
        wanted = [t["test_id"] for t in comparison["tests"] if t["change"] != "same"]
    for test in await service.get_test_runs(head["_id"]):
        if test.get("status") in FAILING and test["test_id"] not in wanted:
            wanted.append(test["test_id"])
    test_files = {test_id: f"test-{n}.html" for n, test_id in enumerate(wanted[:MAX_TEST_PAGES])}
    links = ReportLinks(run_files, test_files)
    renderer = Renderer()
    pages: dict[str, str] = {}
    if base is not None:
        data = await compare_view(
            service, Params([("base", run_ids[0]), ("head", run_ids[1]), ("stats", "1")]), links
        )
        pages["index.html"] = _page(
            renderer, "compare", "compare.html", "Compare runs", data, links
        )
    for run_id, name in run_files.items():
        data = await run_view(service, run_id, Params(), links)
        pages[name] = _page(renderer, "run", "run.html", f"Run {run_id}", data, links)
    for test_id, name in test_files.items():
        data = await test_view(service, Params([("id", test_id)]), links)
        pages[name] = _page(renderer, "test", "test.html", f"Test {test_id}", data, links)
    assets = {name: asset_bytes(name) for name in (*OWN_ASSETS, PLOTLY_JS)}
    return _write(output, pages, assets)


def _page(
    renderer: Renderer, page: str, template: str, title: str, data: Any, links: ReportLinks
) -> str:
    return renderer.page(template, page=page, title=title, data=data, links=links)


def _write(output: Path, pages: dict[str, str], assets: dict[str, bytes]) -> list[Path]:
    """Each file written whole (a temporary file renamed), so a reader never sees half;
    the pages of an earlier report in the folder are removed first (they would link to
    tests that are not this report's)."""
    try:
        (output / "static").mkdir(parents=True, exist_ok=True)
        for stale in (*output.glob("run-*.html"), *output.glob("test-*.html")):
            if stale.name not in pages:
                stale.unlink()
        written = []
        for name, text in pages.items():
            written.append(_replace(output / name, text.encode("utf-8")))
        for name, content in assets.items():
            _replace(output / "static" / name, content)
    except OSError as exc:
        raise ReportError(f"cannot write the report into {output}: {exc.strerror or exc}") from None
    return written


def _replace(path: Path, content: bytes) -> Path:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, FILE_MODE & ~_umask())  # mkstemp's 0600 would hide the pages
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path

"""Where the pages link to: server paths for `evalstore serve`, file names for a report.

Views build every link through a `Links`, so the same page works served (every page
exists) and as a static report (only the pages written exist; links to the others
are shown as plain text: `None`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode


class Links:
    """Links of the served dashboard (absolute paths)."""

    static = False

    def page(self, name: str, **params: str | list[str] | None) -> str | None:
        """A page of the nav (`runs`, `trends`, `flaky`, ...) with its query string."""
        pairs = [
            (key, item)
            for key, value in params.items()
            if value is not None
            for item in (value if isinstance(value, list) else [value])
        ]
        return f"/{name}" + (f"?{urlencode(pairs)}" if pairs else "")

    def run(self, run_id: str) -> str | None:
        """One run's page."""
        return f"/runs/{quote(run_id, safe='')}"

    def series(self, run_id: str) -> str | None:
        """One run's training curves."""
        return f"/runs/{quote(run_id, safe='')}/series"

    def test(self, test_id: str) -> str | None:
        """One test's history."""
        return f"/test?{urlencode({'id': test_id})}"

    def compare(self, base: str, head: str) -> str | None:
        """Two runs side by side."""
        return f"/compare?{urlencode({'base': base, 'head': head})}"

    def asset(self, name: str) -> str:
        """A file of the dashboard's own static files."""
        return f"/static/{name}"


class ReportLinks(Links):
    """Links of a static report: the pages it wrote, relative to its folder.

    Args:
        runs: run id -> the file of its page.
        tests: test id -> the file of its history.
    """

    static = True

    def __init__(self, runs: Mapping[str, str], tests: Mapping[str, str]) -> None:
        self._runs = dict(runs)
        self._tests = dict(tests)

    def page(self, name: str, **params: str | list[str] | None) -> str | None:
        return None

    def run(self, run_id: str) -> str | None:
        return self._runs.get(run_id)

    def series(self, run_id: str) -> str | None:
        return None

    def test(self, test_id: str) -> str | None:
        return self._tests.get(test_id)

    def compare(self, base: str, head: str) -> str | None:
        return None

    def asset(self, name: str) -> str:
        return f"static/{name}"

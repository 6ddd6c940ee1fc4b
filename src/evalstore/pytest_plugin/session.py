"""The pytest plugin's controller side: one evaluation run for the whole session.

Registered by `evalstore.pytest_plugin` only when recording was asked for. It
runs in the process that reports the session (the only one with xdist, whose
workers send their reports here), so one evaluation run gets every test.

Per test it does little in pytest's thread: it folds the test's reports into
one result (`TestOutcome`), reads the test's name, markers and metrics from the
item it has just run (or from the teardown report an xdist worker annotated),
and hands the results over in batches to the storage thread
(`evalstore.pytest_plugin.writer`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from evalstore.models import RunStatus
from evalstore.pytest_plugin.metrics import item_data
from evalstore.pytest_plugin.outcome import TestOutcome, collect_result, subtest_context
from evalstore.pytest_plugin.worker import WORKER_FLAG
from evalstore.pytest_plugin.writer import RunSummary, StorageSession, describe
from evalstore.settings import Settings, parse_tags

SHOWN_ALERTS = 10
"""Alerts listed in the terminal summary; `evalstore alerts list` shows them all."""

# Options with which pytest runs no test: no evaluation run for them.
_NO_RUN_OPTIONS = (
    "collectonly",
    "showfixtures",
    "show_fixtures_per_test",
    "markers",
    "setuponly",
    "setupplan",
)


def with_subtests(line: str, total: int, failed: int) -> str:
    """The summary line with `subtests 6 (2 failed)` after the test counts (when there were any)."""
    if not total:
        return line
    counts = f"subtests {total} ({failed} failed)"
    head, sep, tail = line.partition("  score ")
    return f"{head}  {counts}{sep}{tail}" if sep else f"{line}  {counts}"


def plugin_packages(config: pytest.Config) -> dict[str, str | None]:
    """`pytest` and the distributions of the pytest plugins loaded in this session, with their
    versions (as pluggy found them: looking each up again by name cost a session ~5 ms)."""
    versions: dict[str, str | None] = {"pytest": pytest.__version__}
    for _plugin, dist in config.pluginmanager.list_plugin_distinfo():
        name = str(dist.project_name)
        if name not in versions:
            version = getattr(dist, "version", None)
            versions[name] = version if isinstance(version, str) else None
    return versions


def system_config(config: pytest.Config) -> dict[str, Any]:
    """The merged answers of every `pytest_evalstore_system_config` implementation."""
    merged: dict[str, Any] = {}
    answers: list[Mapping[str, Any] | None] = config.hook.pytest_evalstore_system_config(
        config=config
    )
    # pluggy returns the last registered implementation first: merge oldest first.
    for answer in reversed(answers):
        if answer:
            merged.update(answer)
    return merged


class EvalstorePlugin:
    """Records the session: a run at start, a test run per test, aggregates at the end.

    Args:
        config: the pytest config.
        settings: the settings to record with (None when they could not be read).
        problem: why recording cannot happen (an invalid setting), for the summary.
    """

    def __init__(self, config: pytest.Config, settings: Settings | None, problem: str | None):
        self.config = config
        self.settings = settings
        self.problem = problem
        self.storage: StorageSession | None = None
        self.summary: RunSummary | None = None
        self._open: dict[str, TestOutcome] = {}
        self._item: pytest.Item | None = None
        self._collect_errors: set[str] = set()
        self._subtests_total = 0
        self._subtests_failed = 0
        self._closed = False

    def _record(self, result: dict[str, Any]) -> None:
        if self.storage is not None:
            self.storage.add(result)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: ask each worker to attach names, tags and metrics to its reports."""
        node.workerinput[WORKER_FLAG] = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Open the evaluation run (in the background) unless no test will run."""
        if self.problem is not None or self.settings is None:
            return
        if any(getattr(self.config.option, name, False) for name in _NO_RUN_OPTIONS):
            return
        tags = [*self.settings.experiment_tags]
        for value in self.config.getoption("evalstore_tags") or ():
            tags += parse_tags(value)
        try:
            self.storage = StorageSession(
                self.settings,
                tags=tags,
                packages=plugin_packages(self.config),
                system_config=system_config(self.config),
                repo_path=self.config.rootpath,
                suite=self.settings.evalstore_suite or project_name(self.config.rootpath),
            )
            self.storage.start()
        except Exception as exc:
            self.problem = f"results not stored: {describe(exc)}"
            self._close()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Record a collection error (or a skipped module) as a test of its own."""
        if self.storage is None or report.passed or report.nodeid in self._collect_errors:
            return
        try:
            result = collect_result(report)
            if result is not None:
                self._collect_errors.add(report.nodeid)
                self._record(result)
        except Exception as exc:
            self.problem = self.problem or f"could not record {report.nodeid}: {describe(exc)}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """Note the test being run here: its name, tags and metrics go with its result."""
        self._item = item

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each report into its test; record the test after its teardown."""
        if self.storage is None:
            return
        nodeid = report.nodeid
        try:
            context = subtest_context(report)
            if context is not None:
                self._subtests_total += 1
                self._subtests_failed += bool(report.failed)
            outcome = self._open.get(nodeid)
            if outcome is None:
                outcome = self._open[nodeid] = TestOutcome(nodeid)
            if outcome.add(report, context):
                del self._open[nodeid]
                item = self._item
                # A test run in this process: read its item now (the teardown is over), where
                # an xdist worker attached the same to the report.
                if outcome.data is None and item is not None and item.nodeid == nodeid:
                    outcome.data = item_data(item)
                self._record(outcome.result())
        except Exception as exc:
            self._open.pop(nodeid, None)
            self.problem = self.problem or f"could not record {nodeid}: {describe(exc)}"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Record unfinished tests, finalise the run (`failed` if the session failed)."""
        storage = self.storage
        if storage is None:
            return
        try:
            for outcome in self._open.values():  # interrupted before their teardown
                if outcome.status is not None:  # pytest counts only tests with an outcome
                    self._record(outcome.result())
            self._open.clear()
            status = _run_status(int(session.exitstatus))
            self.summary = storage.finish(status)
        except Exception as exc:
            self.problem = self.problem or f"results not stored: {describe(exc)}"
        finally:
            self._close()

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """One line: the run, its test (and subtest) counts and score change; or one warning."""
        problems = [self.problem] if self.problem else []
        if self.storage is not None:
            problems += self.storage.problems
            if self.storage.monitor_problem:
                problems.append(self.storage.monitor_problem)
        if self.summary is not None:
            line = with_subtests(self.summary.line(), self._subtests_total, self._subtests_failed)
            terminalreporter.write_line(line)
            shown = self.summary.alerts[:SHOWN_ALERTS]
            for alert in shown:
                failing = alert.startswith(("ERROR", "CRITICAL"))
                terminalreporter.write_line(f"evalstore: {alert}", red=failing, yellow=not failing)
            if len(self.summary.alerts) > len(shown):
                hidden = len(self.summary.alerts) - len(shown)
                terminalreporter.write_line(
                    f"evalstore: and {hidden} more alert(s): evalstore alerts list", yellow=True
                )
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            terminalreporter.write_line(f"evalstore: WARNING: {problems[0]}{more}", yellow=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Stop the background loop if the session ended before finishing the run."""
        self._close()

    def _close(self) -> None:
        if self.storage is not None and not self._closed:
            self._closed = True
            self.storage.close()


def project_name(rootdir: Path) -> str:
    """The suite a pytest session records: the project's name in `pyproject.toml`, else the
    name of pytest's rootdir.
    """
    try:
        tomllib = importlib.import_module("tomllib")
    except ImportError:  # Python 3.10: the rootdir's name will do
        return rootdir.name or "tests"
    try:
        with (rootdir / "pyproject.toml").open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, ValueError):
        return rootdir.name or "tests"
    name = data.get("project", {}).get("name") or data.get("tool", {}).get("poetry", {}).get("name")
    return name if isinstance(name, str) and name.strip() else rootdir.name or "tests"


def _run_status(exit_status: int) -> RunStatus:
    """`completed` (exit 0), `interrupted` (2: Ctrl-C, collection errors), else `failed`.

    An interrupted session is not a whole run: it must never be `latest` for a CI gate.
    """
    if exit_status == pytest.ExitCode.OK:
        return "completed"
    if exit_status == pytest.ExitCode.INTERRUPTED:
        return "interrupted"
    return "failed"

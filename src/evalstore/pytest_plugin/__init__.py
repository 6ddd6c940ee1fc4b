"""The pytest plugin, registered through the `pytest11` entry point.

Installing evalstore is enough; the plugin stays inactive unless
`MONGODB_ENABLED=true` or `pytest --evalstore`. When active, each pytest
session becomes one evaluation run and each test one test run; tests attach
metrics through the `evalstore_metrics` fixture. Storage problems never fail a
test or the session: they end up as one warning in the terminal summary.

With pytest-xdist the controller records everything: workers only attach each
test's name, markers and metrics to its teardown report, which xdist sends to
the controller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from evalstore.errors import ConfigurationError
from evalstore.pytest_plugin import hookspecs
from evalstore.pytest_plugin.metrics import EvalstoreMetrics, item_data
from evalstore.pytest_plugin.outcome import REPORT_ATTR, SUBTEST_ATTR, subtest_context
from evalstore.settings import Settings, load_settings

if TYPE_CHECKING:
    from evalstore.pytest_plugin.session import EvalstorePlugin

__all__ = ["EvalstoreMetrics", "evalstore_metrics"]

PLUGIN_KEY: pytest.StashKey[EvalstorePlugin] = pytest.StashKey()


class _Switch(BaseSettings):
    """MONGODB_ENABLED alone, read the way `Settings` reads it."""

    model_config = Settings.model_config

    mongodb_enabled: bool = False


def _enabled_despite_invalid_settings() -> bool:
    """When another setting is invalid: was recording switched on (or MONGODB_ENABLED bad)?"""
    try:
        return _Switch().mongodb_enabled
    except ValidationError:
        return True


class ReportAnnotator:
    """Attaches a test's name, marker tags and metrics to its teardown report.

    It also attaches to each subtest report the subtest's msg and params as they are
    here, before xdist serialises the report (xdist's copy repr()s the params again).
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Runs around pytest's own report making, for the teardown report only."""
        report = yield
        if call.when == "teardown":
            with contextlib.suppress(Exception):  # never let bookkeeping break a test
                setattr(report, REPORT_ATTR, item_data(item))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Runs before xdist's worker sends the report (and before the recorder reads it)."""
        if getattr(report, SUBTEST_ATTR, None) is not None:
            return  # annotated by the worker that ran it
        with contextlib.suppress(Exception):
            context = subtest_context(report)
            if context is not None:
                setattr(report, SUBTEST_ATTR, context)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The `evalstore` option group."""
    group = parser.getgroup("evalstore", "evalstore: store test results in MongoDB")
    group.addoption(
        "--evalstore",
        action="store_true",
        default=False,
        help="record this session as an evaluation run (as MONGODB_ENABLED=true does)",
    )
    group.addoption(
        "--evalstore-tag",
        action="append",
        default=[],
        dest="evalstore_tags",
        metavar="TAG",
        help="add an experiment tag to the run (repeatable; added to EXPERIMENT_TAGS)",
    )
    group.addoption(
        "--evalstore-url",
        default=None,
        dest="evalstore_url",
        metavar="URL",
        help="connection string to use instead of MONGODB_CONNECTION_STRING",
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Declare `pytest_evalstore_system_config`."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    """Decide whether this session is recorded, and register the recorder if so."""
    # Imported here: an inactive plugin (most pytest sessions) never loads the driver.
    from evalstore.pytest_plugin.session import WORKER_FLAG, EvalstorePlugin

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: annotate reports, never open storage
        if workerinput.get(WORKER_FLAG):
            config.pluginmanager.register(ReportAnnotator(), "evalstore-annotator")
        return
    requested = bool(config.getoption("evalstore"))
    settings: Settings | None = None
    problem: str | None = None
    try:
        settings = load_settings()
        requested = requested or settings.mongodb_enabled
    except ConfigurationError as exc:
        requested = requested or _enabled_despite_invalid_settings()
        problem = f"results not stored: {exc}"
    if not requested:
        return
    url = config.getoption("evalstore_url")
    if settings is not None and url:
        settings = settings.model_copy(update={"mongodb_connection_string": url})
    plugin = EvalstorePlugin(config, settings, problem)
    config.stash[PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "evalstore-recorder")
    config.pluginmanager.register(ReportAnnotator(), "evalstore-annotator")


@pytest.fixture
def evalstore_metrics(request: pytest.FixtureRequest) -> EvalstoreMetrics:
    """Attach metrics to the current test's stored result.

    `evalstore_metrics.record("wer", score=87.5, threshold=80, passed=True, unit="%")`.
    A test's score is the mean of its metric scores; a test without metrics
    scores 100 when it passed and 0 when it failed (skipped tests: no score).
    """
    node = request.node
    assert isinstance(node, pytest.Item)
    return EvalstoreMetrics(node)

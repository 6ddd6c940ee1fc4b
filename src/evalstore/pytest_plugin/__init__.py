"""The pytest plugin, registered through the `pytest11` entry point.

Installing evalstore is enough; the plugin stays inactive unless
`MONGODB_ENABLED=true` or `pytest --evalstore`. When active, each pytest
session becomes one evaluation run and each test one test run; tests attach
metrics through the `evalstore_metrics` fixture. Storage problems never fail a
test or the session: they end up as one warning in the terminal summary.

With pytest-xdist the controller records everything: workers only attach each
test's name, markers and metrics to its teardown report, which xdist sends to
the controller (`evalstore.pytest_plugin.worker`).

Imported by pytest in every session of a project that has evalstore installed,
this module imports only pytest and the plugin's light parts (the fixture's
object, the hook specification, the switch). Whether the session records is
decided by `switch.switched_off()` from the environment and `.env` alone when
recording is clearly off; otherwise by the full settings, as it always was.
Only then are the settings, the recorder and the driver imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from evalstore.pytest_plugin import hookspecs
from evalstore.pytest_plugin.metrics import EvalstoreMetrics
from evalstore.pytest_plugin.switch import enabled_despite_invalid_settings, switched_off

if TYPE_CHECKING:
    from evalstore.pytest_plugin.session import EvalstorePlugin
    from evalstore.settings import Settings

__all__ = ["EvalstoreMetrics", "evalstore_metrics"]

PLUGIN_KEY: pytest.StashKey[EvalstorePlugin] = pytest.StashKey()


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
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: annotate reports, never open storage
        from evalstore.pytest_plugin.worker import WORKER_FLAG, ReportAnnotator

        if workerinput.get(WORKER_FLAG):
            config.pluginmanager.register(ReportAnnotator(), "evalstore-annotator")
        return
    requested = bool(config.getoption("evalstore"))
    if not requested and switched_off():
        return  # most sessions: neither the settings nor the recorder are imported
    from evalstore.errors import ConfigurationError
    from evalstore.pytest_plugin.session import EvalstorePlugin
    from evalstore.settings import load_settings

    settings: Settings | None = None
    problem: str | None = None
    try:
        settings = load_settings()
        requested = requested or settings.mongodb_enabled
    except ConfigurationError as exc:
        requested = requested or enabled_despite_invalid_settings()
        problem = f"results not stored: {exc}"
    if not requested:
        return
    url = config.getoption("evalstore_url")
    if settings is not None and url:
        settings = settings.model_copy(update={"mongodb_connection_string": url})
    plugin = EvalstorePlugin(config, settings, problem)
    config.stash[PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, "evalstore-recorder")


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

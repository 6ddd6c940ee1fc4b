"""Fixtures of the dashboard's tests: the histories of `web_history`, served by `web_site`.

The session-scoped fixtures serve one history per test session (and per engine for
`site`): the read-only tests share it. Tests that write (acknowledging an alert)
open their own with `web_site.served`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web_history import record_hostile_history, record_main_history
from web_site import SECRET_URL, TOKEN, Site, engine_url, served


@pytest.fixture(scope="session", params=["embedded", "local"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The main history (see `web_history`), served without a token, on each engine."""
    workdir = tmp_path_factory.mktemp("web")
    with served(engine_url(request.param, workdir), record_main_history, workdir) as found:
        yield found


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two runs whose test id, message, configuration value and suite are markup."""
    workdir = tmp_path_factory.mktemp("web-hostile")
    with served(SECRET_URL, record_hostile_history, workdir) as found:
        yield found


@pytest.fixture(scope="session")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The main history served with a token (read-only tests only)."""
    workdir = tmp_path_factory.mktemp("web-token")
    with served(SECRET_URL, record_main_history, workdir, token=TOKEN) as found:
        yield found

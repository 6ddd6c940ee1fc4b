"""The system Chromium, driven by Playwright, for the browser tests (see browser_helpers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from browser_helpers import CHROMIUM_ARGS, chromium_executable, skip_or_fail

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system Chromium, headless, one per test module.

    Not one per session: between its calls, Playwright's sync API marks its own event
    loop as running in the main thread, which would break the asyncio tests of the
    other folders if the browser stayed open after this folder's tests.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright not installed (pip install -e '.[test]')")
    executable = chromium_executable()
    if executable is None:
        skip_or_fail("chromium not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()

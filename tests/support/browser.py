"""A real headless browser for the dashboard tests: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it is pointed at the system's Chromium
(``AIVBATCH_TEST_CHROMIUM``, else ``/usr/bin/chromium``; ``scripts/test.sh`` installs it
when missing). Without one the tests skip locally and fail in CI.

``browser`` (module scope) is a browser context with a fresh profile; ``page`` is a new
page whose console errors and uncaught exceptions fail the test at teardown.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, sync_playwright

from tests.support.services import require_service

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system Chromium, if there is one."""
    wanted = os.environ.get("AIVBATCH_TEST_CHROMIUM", "/usr/bin/chromium")
    return wanted if Path(wanted).exists() else shutil.which("chromium")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """A headless Chromium context with a profile of its own, closed after the module."""
    executable = chromium_path()
    if executable is None:
        require_service("Chromium", "no chromium executable (apt-get install -y chromium)")

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    """A fresh page (fresh sessionStorage); any console error fails the test."""
    tab = browser.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} ({message.location.get('url')})")

    def on_error(error: Error) -> None:
        errors.append(f"uncaught: {error.message}")

    tab.on("console", on_console)
    tab.on("pageerror", on_error)
    yield tab
    tab.close()
    assert not errors, "the page reported errors:\n" + "\n".join(errors)

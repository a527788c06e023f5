"""Debian's headless Chromium for the UI tests, driven through its chromedriver.

Both are passed explicitly, so nothing is downloaded. Without them a browser test is skipped
locally and fails under ``CI=true``. On failure, what the browser showed is saved as an artifact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.system.conftest import item_failed, record_artifact

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
    "--autoplay-policy=no-user-gesture-required",
)
WAIT_SECONDS = 30.0


def browser_paths() -> tuple[Path, Path]:
    """Chromium and chromedriver, or skip (fail under CI, where they must be installed)."""
    chromium = Path(shutil.which("chromium") or CHROMIUM)
    chromedriver = Path(shutil.which("chromedriver") or CHROMEDRIVER)
    missing = [str(path) for path in (chromium, chromedriver) if not path.exists()]
    if missing:
        message = (
            f"headless browser not installed ({', '.join(missing)}): apt-get install chromium chromium-driver"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, chromedriver


@contextmanager
def headless_chromium(request: pytest.FixtureRequest, failure_screenshot: Path) -> Iterator[WebDriver]:
    """A headless Chromium with a throw-away profile; on failure its screen is saved."""
    chromium, chromedriver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=str(chromedriver)), options=options)
        try:
            yield driver
            if item_failed(request.node):
                failure_screenshot.parent.mkdir(parents=True, exist_ok=True)
                if driver.save_screenshot(str(failure_screenshot)):
                    record_artifact(request.config, failure_screenshot)
        finally:
            driver.quit()


def wait_for(driver: WebDriver, condition: Any, what: str, timeout: float = WAIT_SECONDS) -> Any:
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}") from None

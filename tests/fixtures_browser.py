"""A real browser for the viewer's tests: Debian's chromium + chromium-driver, driven by Selenium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import App

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # lets fixtures see whether the test failed
    return report


class Browser:
    """Headless chromium on the viewer; every page it reaches is screenshot, kept only when the test fails."""

    def __init__(self, app: App, out: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.app = app
        self.shots = out / "screenshots"
        self.downloads = out / "downloads"
        self.shots.mkdir()
        self.downloads.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
            options.add_argument(arg)
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(self.downloads), "download.prompt_for_download": False}
        )
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)}
        )
        self.driver.implicitly_wait(0)
        self._n = 0

    def get(self, path: str) -> None:
        self.driver.get(self.app.url + path)
        self.snap(path)

    def snap(self, name: str) -> None:
        self._n += 1
        safe = "".join(c if c.isalnum() else "-" for c in name)[:60]
        self.driver.save_screenshot(str(self.shots / f"{self._n:02d}-{safe}.png"))

    def wait(self, predicate: Any, what: str, timeout: float = 10.0) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # htmx swaps elements out from under a predicate that is reading them: try again.
        wait = WebDriverWait(self.driver, timeout, ignored_exceptions=[StaleElementReferenceException])
        return wait.until(lambda d: predicate(d), message=what)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path, viewer: App) -> Iterator[Browser]:
    """Fails (never skips) when chromium or its driver is missing: CI installs both (.ci/run)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver", pytrace=False)
    b = Browser(viewer, tmp_path)
    yield b
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    try:
        if failed:
            b.snap("at-failure")
            (tmp_path / "at-failure.html").write_text(b.driver.page_source)
            print(f"browser screenshots: {b.shots}")
        else:
            for shot in b.shots.iterdir():
                shot.unlink()
    finally:
        b.driver.quit()

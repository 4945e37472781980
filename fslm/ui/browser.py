"""A headless Chromium driven by selenium, for the viewer's browser test and its documentation screenshot.

Uses the system's chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`); selenium is
never allowed to fetch a driver, since nothing outside the machine may be reachable.
"""

import shutil
from pathlib import Path

from fslm.errors import FslmError

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
PAGE_WAIT_SECONDS = 20


def missing_browser() -> str | None:
    """Why no headless Chromium can start here, or None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found (Debian: apt-get install -y chromium chromium-driver)"
    return None


def headless_chromium(profile: Path, width: int = 1360, height: int = 900):
    """A selenium WebDriver on a fresh headless Chromium whose profile lives in `profile`."""
    reason = missing_browser()
    if reason:
        raise FslmError(f"cannot start a headless browser: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and chromedriver  # missing_browser found both
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


def open_view(driver, url: str) -> None:
    """Load a viewer URL (`…/#/run/ID`, `…/#/diff/A/B`) and wait until its view has rendered, or failed."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, PAGE_WAIT_SECONDS).until(
        lambda page: page.find_elements("css selector", "#view .messages, #view .diff, #view .error")
    )


def text_of(driver, selector: str) -> list[str]:
    """The text of every element of the open page that `selector` (CSS) matches, in document order."""
    return [
        element.get_attribute("textContent") for element in driver.find_elements("css selector", selector)
    ]


def save_screenshot(driver, url: str, path: Path) -> Path:
    """Open `url` in the viewer and save the whole page as a PNG at `path`: the viewport grows to the page."""
    open_view(driver, url)
    width, height = driver.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]"
    )
    # Sizing the window would include the browser's own frame; the device metrics are the page's exactly.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path

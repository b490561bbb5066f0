"""A real browser for UI tests: Debian's chromium and chromium-driver, driven by Selenium.

Headless, no GPU, no background traffic (component updates, sync, first-run pages), a fresh
profile per run. Selenium gets the driver's path, so it never tries to download one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900")


def browser_problem() -> str | None:
    """Why no browser test can run here, or None."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install selenium (make venv does)"
    return None


def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rentstack-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver._rentstack_profile = profile
    return driver


def quit_chrome(driver) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "_rentstack_profile", ""), ignore_errors=True)


def open_webui_chat(driver, url: str, email: str, password: str, question: str, screenshot: Path,
                    timeout: float = 240) -> str:
    """Log in to Open WebUI, ask `question` in a new chat, return the model's answer as shown."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(f"{url}/auth")
    wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "input[type=email]"))).send_keys(email)
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    box = wait.until(EC.presence_of_element_located((By.ID, "chat-input")))
    # A new user first gets the release notes ("What's New"), like anyone logging in: close them.
    try:
        WebDriverWait(driver, 10).until(EC.element_to_be_clickable(
            (By.XPATH, "//button[contains(., \"Let's Go\")]"))).click()
    except Exception:  # noqa: BLE001 - no dialog this time
        pass
    box = wait.until(EC.element_to_be_clickable((By.ID, "chat-input")))
    box.click()
    box.send_keys(question)
    box.send_keys(Keys.ENTER)

    # The answer streams in; it is done when its text stops changing for a few seconds.
    deadline = time.monotonic() + timeout
    last, stable_since = "", time.monotonic()
    while time.monotonic() < deadline:
        try:
            answers = driver.find_elements(By.ID, "response-content-container")
            text = answers[-1].text.strip() if answers else ""
        except StaleElementReferenceException:      # re-rendered while streaming: read again
            time.sleep(0.2)
            continue
        if text != last:
            last, stable_since = text, time.monotonic()
        elif text and time.monotonic() - stable_since > 4:
            break
        time.sleep(0.5)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(screenshot))
    return last

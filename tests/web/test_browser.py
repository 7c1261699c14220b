"""A real headless Chromium (Debian's, driven by Selenium) against `streamlit run clients/web/page.py`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, stop_process, wait_streamlit_healthy
from tests.web.conftest import PAGE, REPO

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)
DRIVER = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).exists()), None)
VERDICT_WORDS = ("Likely fake", "Likely real", "Uncertain")

# The shared model server may be started by this test's setup; on a busy 2-core machine that alone can take minutes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _need_chromium() -> None:
    """Skip, saying why, where Debian's chromium or chromium-driver is missing."""
    if not CHROMIUM or not DRIVER:
        reason = f"no Chromium found (chromium={CHROMIUM}, chromedriver={DRIVER}); apt-get install chromium chromium-driver"
        print(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def page_url(model_server, tmp_path_factory):
    """`streamlit run clients/web/page.py` on a free loopback port, talking to the test model server."""
    _need_chromium()
    port = free_port()
    log_path = tmp_path_factory.mktemp("web-log") / "streamlit.log"
    env = dict(os.environ, TF_SERVING_TARGET=model_server, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", str(PAGE), f"--server.port={port}", "--server.address=127.0.0.1",
           "--server.headless=true", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
           "--global.developmentMode=false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_streamlit_healthy(proc, url, log_path, 60)
        yield url
    finally:
        stop_process(proc, timeout=15)
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        assert "Traceback" not in text or "the web page failed" not in text, text[-3000:]


@pytest.fixture(scope="module")
def browser(page_url, tmp_path_factory):
    """Headless Chromium with a fresh profile and a download folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,1700"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (the page updates over a websocket)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def body_text(driver) -> str:
    """The visible text of the whole page."""
    return driver.execute_script("return document.body.innerText")


def text_when(driver, test):
    """A poller: the page's text once `test(text)` holds, else None."""
    def poll():
        text = body_text(driver)
        return text if test(text) else None
    return poll


def app_background(driver) -> str:
    """The computed background colour of the app's root."""
    return driver.execute_script("return getComputedStyle(document.querySelector('.stApp')).backgroundColor")


def upload_files(driver, *paths: Path) -> None:
    """Give files to the page's file input, the way a user's file picker does."""
    from selenium.webdriver.common.by import By

    field = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "input[type=file]"), what="the file input")[0]
    driver.execute_script("arguments[0].value = '';", field)  # chromedriver appends to a multiple input's files
    field.send_keys("\n".join(str(p) for p in paths))


def remove_uploads(driver) -> None:
    """Click every 'delete file' button of the uploader."""
    from selenium.webdriver.common.by import By

    while buttons := driver.find_elements(By.CSS_SELECTOR, '[data-testid="stFileChipDeleteBtn"] button'):
        buttons[0].click()
        wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="stFileChipDeleteBtn"] button'))
                 < len(buttons), 20, "the file to go")
    wait_idle(driver)


def wait_idle(driver, timeout: float = 120.0) -> None:
    """Wait until Streamlit has finished running the script (its 'Running...' icon is gone)."""
    from selenium.webdriver.common.by import By

    wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidgetRunningIcon"]'),
             timeout, "the script run to finish")


def test_page_in_a_real_browser(browser, page_url, tmp_path, face_jpeg, plain_png, corrupt_jpeg):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(page_url)
    wait_for(lambda: "Is this face real?" in body_text(browser), 60, "the page title")
    wait_for(lambda: "Online" in body_text(browser), 60, "the server status in the sidebar")

    # A face photo and a faceless picture at once: a verdict for each, with a PDF report to download.
    face, plain = tmp_path / "face.jpg", tmp_path / "plain.png"
    face.write_bytes(face_jpeg)
    plain.write_bytes(plain_png)
    upload_files(browser, face, plain)
    text = wait_for(text_when(browser, lambda t: t.count("Download PDF report") == 2 and "Took" in t), 180,
                    "two verdicts")
    wait_idle(browser)
    text = body_text(browser)
    assert sum(text.count(w) for w in VERDICT_WORDS) >= 2, text
    assert text.count("Checked in") == 2 and "face.jpg" in text and "plain.png" in text
    assert "No face was found" in text, "the no-face warning of the plain picture"
    light = app_background(browser)
    browser.save_screenshot(str(ARTIFACTS / "web-light.png"))

    browser.find_element(By.XPATH, "//button[.//*[contains(text(), 'Download PDF report')]]").click()
    pdf = wait_for(lambda: [p for p in browser.downloads.glob("*.pdf")], 60, "the PDF download")[0]
    wait_for(lambda: pdf.stat().st_size > 0 and not list(browser.downloads.glob("*.crdownload")), 60, "the download")
    assert pdf.name in ("face-report.pdf", "plain-report.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"

    # The theme toggle repaints the page, and stays after another interaction.
    browser.find_element(By.XPATH, "//label[.//*[contains(text(), 'Dark theme')]]").click()
    wait_for(lambda: app_background(browser) != light, 60, "the background to change")
    wait_idle(browser)
    dark = app_background(browser)
    assert mean_rgb(dark) < 60 < mean_rgb(light), f"light {light} -> dark {dark}"
    browser.save_screenshot(str(ARTIFACTS / "web-dark.png"))
    browser.find_element(By.XPATH, "//label[.//*[contains(text(), 'Show heatmaps on faces')]]").click()
    wait_for(text_when(browser, lambda t: "(crop)" in t), 60, "crops instead of heatmaps")
    wait_idle(browser)
    assert app_background(browser) == dark, "the theme must survive a rerun"

    # A cut-off file: a friendly message on its card, no trace.
    remove_uploads(browser)
    broken = tmp_path / "cut-off.jpg"
    broken.write_bytes(corrupt_jpeg)
    upload_files(browser, broken)
    wait_for(text_when(browser, lambda t: "damaged or incomplete" in t), 60, "the friendly message")
    wait_idle(browser)
    text = body_text(browser)
    assert "Download PDF report" not in text, "the removed face's card is gone"
    assert "cut-off.jpg" in text and "Traceback" not in text and "Exception" not in text
    browser.save_screenshot(str(ARTIFACTS / "web-bad-file-dark.png"))


def mean_rgb(css_colour: str) -> float:
    """Mean of the R, G, B channels of a computed CSS colour 'rgb(r, g, b)'."""
    inner = css_colour[css_colour.index("(") + 1: css_colour.index(")")]
    return sum(float(x) for x in inner.split(",")[:3]) / 3


def test_clip_in_a_real_browser(browser, page_url, tmp_path):
    """A short clip: the clip verdict, a score-over-time picture per face track, the driving frames and the PDF."""
    from selenium.webdriver.common.by import By

    from tests.clients.clips import face_clip

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(page_url)
    wait_for(lambda: "Online" in body_text(browser), 60, "the server status in the sidebar")
    clip = tmp_path / "street interview.mp4"
    clip.write_bytes(face_clip("mp4", seconds=4.0, source="synthetic", seed=5))
    upload_files(browser, clip)
    wait_for(text_when(browser, lambda t: "Score over time, per face track" in t and "Download PDF report" in t),
             180, "the clip's verdict")
    wait_idle(browser)
    text = body_text(browser)
    assert sum(text.count(w) for w in VERDICT_WORDS) >= 1, text
    assert "street interview.mp4" in text and "Face tracks" in text and "Frames that drove the verdict" in text
    assert "track score" in text and "Traceback" not in text
    plots = [img for img in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img')
             if img.get_attribute("naturalWidth") == "1200"]
    assert plots, "the score-over-time picture is shown at its full width"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plots[0])
    browser.save_screenshot(str(ARTIFACTS / "web-clip.png"))

"""The page as `streamlit run clients/web/page.py` starts it by default (no address flag, no model server needed):
where it listens, how it lays out on a phone, and the uploader's size limit, in a real headless Chromium."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clients.core.config import ClientConfig
from tests.helpers import free_port, stop_process, wait_streamlit_healthy
from tests.web.conftest import PAGE, REPO
from tests.web.test_browser import CHROMIUM, DRIVER, _need_chromium, body_text, text_when, wait_for

MIB = 1024 * 1024


def listening_addresses(port: int) -> set[str]:
    """The local addresses of every TCP socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]   # each 32-bit word is little-endian
                found.add(_ip(b"".join(words), width))
    return found


def _ip(packed: bytes, width: int) -> str:
    """Dotted or colon notation of a packed address."""
    import ipaddress

    return str(ipaddress.IPv4Address(packed) if width == 8 else ipaddress.IPv6Address(packed))


def streamlit_config(env: dict[str, str]) -> dict[str, str]:
    """`streamlit config show` from the repository root, as key -> raw value (what a start there would use)."""
    out = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120).stdout
    values = {}
    for line in out.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), value.strip().strip('"'))
    return values


@pytest.fixture(scope="module")
def default_page(tmp_path_factory):
    """`streamlit run clients/web/page.py --server.port=P` from the repo root, as a user starts it: no address given."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("web-default") / "streamlit.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(TF_SERVING_TARGET=f"127.0.0.1:{free_port()}", DEEPFAKE_TIMEOUT_S="1", DEEPFAKE_RETRIES="1",
               PYTHONUNBUFFERED="1")
    env.pop("DEEPFAKE_MAX_BYTES", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(PAGE), f"--server.port={port}",
           "--server.fileWatcherType=none", "--global.developmentMode=false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_streamlit_healthy(proc, url, log_path, 90)
        yield port, url
    finally:
        stop_process(proc, timeout=15)


@pytest.mark.integration
def test_the_page_listens_on_loopback_only_by_default(default_page):
    """Like the model server, the page is reachable from this machine only unless told otherwise."""
    port, _ = default_page
    assert listening_addresses(port) == {"127.0.0.1"}


def test_the_documented_override_exposes_the_page():
    """STREAMLIT_SERVER_ADDRESS (what the web image sets) wins over .streamlit/config.toml's loopback default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    assert streamlit_config(env)["address"] == "127.0.0.1"
    assert streamlit_config(dict(env, STREAMLIT_SERVER_ADDRESS="0.0.0.0"))["address"] == "0.0.0.0"
    dockerfile = (REPO / "docker" / "Dockerfile.web").read_text()
    assert "STREAMLIT_SERVER_ADDRESS=0.0.0.0" in dockerfile, "the container must listen beyond its own loopback"


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium with a fresh profile, at a desktop size (tests resize it)."""
    _need_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def sidebar_collapsed(driver) -> str | None:
    """The sidebar's data-collapsed ('true' / 'false'), once the page has drawn it."""
    from selenium.webdriver.common.by import By

    bars = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"]')
    return bars[0].get_attribute("data-collapsed") if bars else None


def sidebar_right_edge(driver) -> float:
    """Where the sidebar ends on screen, in CSS pixels (0 or less: off screen, covering nothing)."""
    return driver.execute_script(
        "return document.querySelector('[data-testid=\"stSidebar\"]').getBoundingClientRect().right;")


def open_page(driver, url: str, width: int, height: int) -> None:
    """Load the page at a window size and wait for its title."""
    driver.set_window_size(width, height)
    driver.get(url)
    wait_for(lambda: "Is this face real?" in body_text(driver), 60, "the page title")
    wait_for(lambda: sidebar_collapsed(driver), 30, "the sidebar")


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_on_a_phone_the_sidebar_starts_collapsed_and_on_a_desktop_open(default_page, chromium):
    """A phone-width screen shows the results, not the sidebar over them; a wide screen shows both."""
    _, url = default_page
    open_page(chromium, url, 1400, 1000)
    assert sidebar_collapsed(chromium) == "false" and sidebar_right_edge(chromium) >= 250
    open_page(chromium, url, 390, 844)
    assert chromium.execute_script("return window.innerWidth") <= 400
    wait_for(lambda: sidebar_right_edge(chromium) <= 1, 10, "the sidebar to be off screen")
    assert sidebar_collapsed(chromium) == "true"
    uploader = chromium.execute_script(
        "const r = document.querySelector('[data-testid=\"stFileUploaderDropzone\"]').getBoundingClientRect();"
        "return [r.left, r.width];")
    assert uploader[0] < 60 and uploader[1] > 250, f"the uploader should use the phone's width: {uploader}"


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_uploader_states_and_enforces_the_cores_limit(default_page, chromium, tmp_path):
    """The widget says the core's 20 MB and itself refuses a 21.6 MB photo (it said 25 MB before, then the core
    refused the same file as 'over 20 MB')."""
    from selenium.webdriver.common.by import By

    _, url = default_page
    limit_mb = ClientConfig().max_bytes // MIB
    open_page(chromium, url, 1400, 1000)
    wait_for(lambda: f"{limit_mb}MB per file" in body_text(chromium), 30, "the uploader's stated limit")
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(21_600_000))
    field = wait_for(lambda: chromium.find_elements(By.CSS_SELECTOR, "input[type=file]"), what="the file input")[0]
    field.send_keys(str(big))
    text = wait_for(text_when(chromium, lambda t: "or smaller" in t), 60, "the widget's refusal")
    assert f"{limit_mb}.0MB or smaller" in text, text
    assert "Checking" not in text and "too large" not in text, "the file must not reach the core"

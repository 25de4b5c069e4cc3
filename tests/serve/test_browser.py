"""End to end: ``radseg serve`` in a subprocess, driven by headless Chromium (Debian's) through Playwright.

Uploads a radiograph, reads back the overlay, the legend, a measurement and the download, takes a
screenshot (into the test's tmp_path only; docs/serve_screenshot.png is documentation, not a test output), then
sends bad uploads and checks each gets a message while the server keeps serving. Every request the page
makes is recorded and must go to the local server; the server's own outgoing HTTP would go through a
recording proxy that must stay unused.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

pytest.importorskip("gradio")
pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("Debian chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from radseg.io.label_png import label_colour
from tests.serve.conftest import grey_png
from tests.train.shapes import disc_case

ROOT = Path(__file__).resolve().parents[2]
MAX_UPLOAD_MB = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingProxy:
    """A 'proxy' on loopback that only records who tried to use it (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.seen.append(conn.recv(200))
                except OSError:
                    self.seen.append(b"?")

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """``radseg serve --model TINY --port FREE --max-upload-mb 1`` with outgoing HTTP pointed at a recorder."""
    port = free_port()
    proxy = RecordingProxy()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
           **{k: f"http://127.0.0.1:{proxy.port}" for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                                             "http_proxy", "https_proxy", "all_proxy")},
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the app must switch analytics off itself
    command = [sys.executable, "-m", "radseg", "serve", "--model", str(tiny_model), "--port", str(port),
               "--max-upload-mb", str(MAX_UPLOAD_MB), "--device", "cpu", "--threads", "2"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            proxy.close()
            pytest.fail(f"radseg serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            if opener.open(url, timeout=2).status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"radseg serve did not answer within 180 s:\n{log.read_text()}")
        time.sleep(0.5)
    yield {"url": url, "port": port, "proxy": proxy, "log": log, "process": process}
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
    proxy.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-background-networking",
                                                    "--disable-component-update", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A page whose every request is recorded; anything not for the local server is blocked and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    requests, blocked, sockets = [], [], []
    local = ("127.0.0.1", "localhost")

    def guard(route):
        if urlparse(route.request.url).hostname in local or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(server["url"])
    page.wait_for_selector("#run", timeout=60_000)
    page.recorded = {"requests": requests, "blocked": blocked, "sockets": sockets}
    yield page
    context.close()


def clear_upload(page) -> None:
    if page.locator("#upload td.filename").count():
        page.locator("#upload button[aria-label='Clear']").first.click()
        page.locator("#upload td.filename").wait_for(state="detached", timeout=10_000)


def upload_and_run(page, path: Path) -> None:
    clear_upload(page)
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.wait_for_selector(f'#upload td.filename[aria-label="{path.name}"]', timeout=30_000)
    page.click("#run")


def wait_status(page, kind: str, contains: str = "", timeout: float = 90_000) -> str:
    page.wait_for_function(
        "([kind, text]) => { const s = document.querySelector('#status [data-kind]');"
        " return s && s.dataset.kind === kind && s.innerText.includes(text); }",
        arg=[kind, contains], timeout=timeout)
    return page.inner_text("#status")


def measurement_rows(page) -> list[list[str]]:
    """The table's rendered rows (gradio's virtual table renders the first screenful)."""
    rows = page.locator("#measurements [role=row][aria-rowindex]:not([aria-rowindex='1'])")
    rows.first.wait_for(timeout=30_000)
    return [[c.strip() for c in rows.nth(i).locator("[role=gridcell]").all_inner_texts()] for i in range(rows.count())]


def assert_only_local(page, server) -> None:
    recorded = page.recorded
    assert recorded["requests"], "no request was recorded"
    assert not recorded["blocked"], f"the page tried to reach other hosts: {recorded['blocked']}"
    outside = [u for u in recorded["requests"] + recorded["sockets"]
               if urlparse(u).scheme not in ("data", "blob") and urlparse(u).netloc != f"127.0.0.1:{server['port']}"]
    assert not outside, f"requests not to the local server: {outside}"
    assert not server["proxy"].seen, f"the server made outgoing requests: {server['proxy'].seen}"


def test_upload_segment_overlay_measurement_download_screenshot(page, server, tmp_path):
    image, truth = disc_case(np.random.default_rng(7), shape=(280, 360))
    upload = grey_png(image, tmp_path / "disc radiograph.png")
    assert "Running on local URL:  http://127.0.0.1:" in server["log"].read_text()  # loopback by default
    intro = page.inner_text("#intro")
    assert "discs" in intro and "nothing is sent anywhere" in intro and f"Uploads up to {MAX_UPLOAD_MB} MB" in intro

    upload_and_run(page, upload)
    status = wait_status(page, "ok")
    assert "segmented by discs" in status and "Labels found: disc, square" in status

    # legend
    assert page.inner_text("#legend tr[data-value='1'] .name") == "disc"
    assert page.inner_text("#legend tr[data-value='2'] .name") == "square"
    legend_pixels = int(page.locator("#legend tr[data-value='1'] td").nth(3).inner_text())

    # overlay: shown, served by the local server, and drawn in the labels' colours
    overlay = page.locator("#overlay img")
    overlay.wait_for(timeout=30_000)
    page.wait_for_function("() => { const i = document.querySelector('#overlay img'); return i && i.complete && i.naturalWidth > 0; }")
    src = overlay.get_attribute("src")
    assert urlparse(src).netloc == f"127.0.0.1:{server['port']}"
    from PIL import Image as PILImage

    picture = np.asarray(PILImage.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))
    assert picture.shape[1] > 360  # enlarged for display, legend on the right
    for value in (1, 2):
        assert (picture == label_colour(value)).all(axis=-1).sum() > 200, f"label {value} colour missing"

    # a measurement: the disc's area (1 mm pixels assumed for a PNG) equals the legend's pixel count
    rows = measurement_rows(page)
    assert any(r[:2] == ["disc", "area"] for r in rows), rows[:3]
    area = next(float(r[2]) for r in rows if r[:2] == ["disc", "area"])
    assert area == legend_pixels
    assert area == pytest.approx((truth.array == 1).sum(), rel=0.3)
    assert any(r[:2] == ["square", "area"] for r in rows)

    # download: NIfTI by default, then PNG after choosing that format
    link = page.locator("#download a[download]")
    assert link.get_attribute("download").endswith(".nii.gz")
    nifti = page.request.get(link.get_attribute("href")).body()
    assert gzip.decompress(nifti)[344:348] == b"n+1\x00"
    page.click("#format input")
    page.get_by_role("option", name="PNG label map (.png, 2D)").click()
    page.wait_for_function("() => { const a = document.querySelector('#download a[download]');"
                           " return a && a.getAttribute('download').endsWith('.png'); }", timeout=30_000)
    png = page.request.get(page.locator("#download a[download]").get_attribute("href")).body()
    labels = np.asarray(PILImage.open(io.BytesIO(png)))
    assert labels.shape == (280, 360) and set(np.unique(labels)) == {0, 1, 2}

    page.wait_for_timeout(500)
    shot = tmp_path / "serve_screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:4] == b"\x89PNG"
    with PILImage.open(shot) as screenshot:  # the whole page, at least as wide as the enlarged overlay
        assert screenshot.width > 360 and screenshot.height > 280
    assert_only_local(page, server)


def _zip(path: Path, entries) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(page, server, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    slip = _zip(tmp_path / "slip.zip", [("series/IM1.dcm", b"x"), ("../../evil.dcm", b"evil")])
    bomb = _zip(tmp_path / "bomb.zip", [("series/IM1.dcm", bytes(40 * 1024 * 1024))])
    assert bomb.stat().st_size < MAX_UPLOAD_MB * 1024 * 1024
    cases = [(notes, ".txt is not a supported image type"), (corrupt, "could not read corrupt.png"),
             (slip, "points outside the zip's folder"), (bomb, "zip bomb")]
    for path, message in cases:
        upload_and_run(page, path)
        status = wait_status(page, "error", message)
        assert "Could not use this upload" in status

    # above --max-upload-mb: gradio refuses it before it is stored, with a message on the page
    big = tmp_path / "big.png"
    PILImage = pytest.importorskip("PIL.Image")
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1200), dtype=np.uint8)).save(big)
    assert big.stat().st_size > MAX_UPLOAD_MB * 1024 * 1024
    clear_upload(page)
    page.locator("#upload input[type=file]").set_input_files(str(big))
    page.get_by_text("exceed the maximum allowed size").first.wait_for(timeout=30_000)
    assert "big.png" in page.inner_text("body")
    assert not list(tmp_path.rglob("evil.dcm"))

    # still serving: a good upload works in the same page
    image, _ = disc_case(np.random.default_rng(3))
    upload_and_run(page, grey_png(image, tmp_path / "good.png"))
    assert "Labels found: disc" in wait_status(page, "ok")
    assert server["process"].poll() is None
    assert_only_local(page, server)

"""End to end in a real browser: Debian's chromium, driven by Playwright, uploads a gray frame to
`memopainter serve`'s page, waits for the coloring, checks it is shown and downloadable, and screenshots it.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the web extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from memopainter.config import RunConfig  # noqa: E402
from memopainter.training.loop import train  # noqa: E402
from memopainter.web.app import create_app  # noqa: E402

CHROMIUM = os.environ.get("MEMOPAINTER_CHROMIUM", "/usr/bin/chromium")
# Headless, and no calls home: the machine's network is closed, so background connections only fail.
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
SCREENSHOT = os.environ.get("MEMOPAINTER_WEB_SCREENSHOT")  # where to save the page, for the README

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.usefixtures("cache_dir"),
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no chromium at {CHROMIUM}"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sprite_writer, tiny_settings):
    """`memopainter serve` of a tiny model on a free loopback port, in a thread; yields its base URL."""
    root = tmp_path_factory.mktemp("browser")
    sprite_writer(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
        config = RunConfig().override([*tiny_settings, "train.steps=12"])
        train(config, root / "data", root / "run", on_event=lambda _: None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(root / "run", port=port)  # the page's POSTs carry its token; Host must name this port
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not served.started:
        assert time.monotonic() < deadline, "the server did not start within 20 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server: str):
    """A headless chromium page on the server's index, with console errors collected in page.errors."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 900, "height": 640}, accept_downloads=True)
        tab = context.new_page()
        tab.errors = []
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        tab.goto(server)
        yield tab
        browser.close()


def frame(tmp_path: Path, name: str, size: tuple[int, int], seed: int) -> Path:
    """A seeded gray frame written as PNG."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8), mode="L").resize((96, 64))
    path = tmp_path / name
    image.save(path)
    return path


def test_upload_shows_the_coloring_and_downloads_it_as_png_and_zip(page, tmp_path: Path) -> None:
    sync_api.expect(page.locator("#model-info")).to_contain_text("model.safetensors")
    files = [frame(tmp_path, "knight.png", (12, 8), 0), frame(tmp_path, "slime.png", (6, 4), 1)]
    page.set_input_files("#file-input", [str(f) for f in files])
    cards = page.locator(".card")
    sync_api.expect(cards).to_have_count(2, timeout=30_000)
    first = cards.nth(0)
    sync_api.expect(first.locator(".card-name")).to_have_text("knight.png (96×64)")
    sync_api.expect(first.locator(".gallery figure")).to_have_count(3)
    assert first.locator(".after").evaluate("img => img.complete && img.naturalWidth") == 96
    assert first.locator(".swatches input").count() > 0

    with page.expect_download() as download:
        first.locator(".download").click()
    saved = tmp_path / "one.png"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "knight_color.png"
    assert Image.open(saved).size == (96, 64)

    with page.expect_download() as download:
        page.click("#download-zip")
    archive = tmp_path / "all.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        assert opened.namelist() == ["knight_color.png", "slime_color.png"]
        assert Image.open(io.BytesIO(opened.read("slime_color.png"))).size == (96, 64)

    first.locator(".slider").fill("20")
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT)
    assert page.errors == []


def test_a_non_image_shows_a_readable_error(page, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    page.set_input_files("#file-input", str(bad))
    sync_api.expect(page.locator("#error")).to_have_text(
        "notes.png: not a recognised image file (supported: PNG, JPEG, WEBP, BMP, GIF, TIFF)", timeout=30_000
    )
    assert page.errors == []


def test_an_animated_gif_is_shown_and_downloaded_as_an_animated_gif(page, tmp_path: Path) -> None:
    gray = [Image.open(frame(tmp_path, f"f{seed}.png", (12, 8), seed)) for seed in range(3)]
    path = tmp_path / "walk.gif"
    gray[0].save(path, save_all=True, append_images=gray[1:], duration=[100, 150, 200], loop=0)
    page.set_input_files("#file-input", str(path))
    card = page.locator(".card", has_text="walk.gif")
    sync_api.expect(card.locator(".card-name")).to_have_text("walk.gif (96×64, 3 frames)", timeout=30_000)
    assert card.locator(".after").evaluate("img => img.complete && img.naturalWidth") == 96
    sync_api.expect(card.locator(".download")).to_have_text("Download GIF")

    with page.expect_download() as download:
        card.locator(".download").click()
    assert download.value.suggested_filename == "walk_color.gif"
    saved = tmp_path / "walk_color.gif"
    download.value.save_as(saved)
    with Image.open(saved) as colored:
        assert (colored.format, colored.n_frames, colored.size) == ("GIF", 3, (96, 64))
    assert page.errors == []

"""Regenerate the README's figures from a finished demo folder.

Run from the repository root, with the web and report extras and Playwright's Python package installed (no
browser download: it drives Debian's chromium at /usr/bin/chromium, or $MEMOPAINTER_CHROMIUM):

    memopainter demo --out /tmp/demo
    .venv/bin/python docs/figures.py --demo /tmp/demo            # writes docs/*.png
    .venv/bin/python docs/figures.py --demo /tmp/demo --out /tmp/figs

It reads DEMO/report/ (index.html, metrics.json, images/NNNNN-*.png) and DEMO/run/model.safetensors, and
writes three PNGs under OUT, each to a temporary name first and then renamed over the old one:

- demo_report.png: the top of the report page (averages, model, the CIEDE2000 histogram), 1100 px wide.
- demo_heldout.png: four held-out frames, one per row: gray | top-1 | top-2 | top-3 | truth, on white, each
  fitted into a 96 px cell with a 4 px margin (pixel art scaled up by a whole factor without smoothing,
  larger sprites shrunk).
- web.png: `memopainter serve` on a free loopback port, 750 px wide, after the first of those frames was
  uploaded under its own file name and colorized: the page down to the end of its card (the before/after
  slider at half, the top-k colorings, the palette).

The held-out frames are chosen, not picked by eye: one per class in --classes (by default four of the animated
Kenney characters), the frame whose top-1 CIEDE2000 is the median of its class (the lower of the two middle
ones when the class has an even count; ties broken by path). NNNNN in the report's image names is the
frame's position in metrics.json's per_image list, as memopainter.evaluation.report writes it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("MEMOPAINTER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/test_web_browser.py: headless and no calls home
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLASSES = ["char_female_adventurer", "char_zombie", "char_robot", "alien_blue"]
CELL = 96  # px: one cell of the held-out grid
MARGIN = 4  # px: white around each image in its cell
REPORT_WIDTH = 1100
WEB_VIEWPORT = {"width": 750, "height": 570}  # two result columns; the shot ends below the card
SERVER_START_S = 180  # loading the model and its backbone on a slow CPU


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="the folder of `memopainter demo --out`")
    parser.add_argument(
        "--out", type=Path, default=Path("docs"), help="where to write the PNGs (default docs)"
    )
    parser.add_argument("--classes", nargs="+", default=CLASSES, help="classes of the held-out frames shown")
    args = parser.parse_args()
    report = args.demo / "report"
    per_image = json.loads((report / "metrics.json").read_text())["per_image"]
    picks = [median_frame(per_image, name) for name in args.classes]
    args.out.mkdir(parents=True, exist_ok=True)
    write_png(args.out / "demo_heldout.png", heldout_grid(report, picks))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            write_png(args.out / "demo_report.png", report_screenshot(browser, report / "index.html"))
            index, entry = picks[0]
            gray = report / "images" / f"{index:05d}-gray.png"
            write_png(
                args.out / "web.png",
                web_screenshot(browser, args.demo / "run" / "model.safetensors", gray, entry),
            )
        finally:
            browser.close()
    return 0


def median_frame(per_image: list[dict], class_name: str) -> tuple[int, dict]:
    """(index in per_image, entry) of the frame of `class_name` with the (lower) median top-1 CIEDE2000."""
    frames = sorted(
        ((i, e) for i, e in enumerate(per_image) if e["class"] == class_name),
        key=lambda item: (item[1]["delta_e2000"], item[1]["path"]),
    )
    if not frames:
        sys.exit(f"figures.py: no held-out frame of class {class_name!r} in metrics.json; choose --classes")
    return frames[(len(frames) - 1) // 2]


def heldout_grid(report: Path, picks: list[tuple[int, dict]]) -> Image.Image:
    """Rows of gray | top-1 .. top-k | truth, each image fitted into a CELL px square on white."""
    rows = []
    for index, entry in picks:
        names = ["gray", *(f"k{k}" for k in range(1, len(entry["delta_e2000_per_k"]) + 1)), "truth"]
        rows.append([report / "images" / f"{index:05d}-{name}.png" for name in names])
    grid = Image.new("RGB", (CELL * max(map(len, rows)), CELL * len(rows)), "white")
    for y, row in enumerate(rows):
        for x, path in enumerate(row):
            image = fit(Image.open(path).convert("RGBA"))
            cell = Image.new("RGBA", (CELL, CELL), "white")
            cell.alpha_composite(image, ((CELL - image.width) // 2, (CELL - image.height) // 2))
            grid.paste(cell.convert("RGB"), (x * CELL, y * CELL))
    return grid


def fit(image: Image.Image) -> Image.Image:
    """The image scaled into its cell's box: by a whole factor without smoothing when small, else shrunk."""
    side, box = max(image.size), CELL - 2 * MARGIN
    if side <= box:
        factor = box // side
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    size = (max(1, round(image.width * box / side)), max(1, round(image.height * box / side)))
    return image.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")  # no dark fringes


def report_screenshot(browser, index: Path) -> bytes:
    """The report page from its top down to the end of its first plot (the histogram)."""
    page = browser.new_page(viewport={"width": REPORT_WIDTH, "height": 900})
    page.goto(index.resolve().as_uri())
    plot = page.locator(".plots img").first.bounding_box()
    clip = {"x": 0, "y": 0, "width": REPORT_WIDTH, "height": plot["y"] + plot["height"] + 12}  # its margin
    shot = page.screenshot(full_page=True, clip=clip)
    page.close()
    return shot


def web_screenshot(browser, model: Path, gray: Path, entry: dict) -> bytes:
    """`memopainter serve MODEL` on a free port, showing `gray` (named as its held-out file) colorized."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "memopainter", "serve", str(model), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url, server)
        page = browser.new_page(viewport=WEB_VIEWPORT)
        page.goto(url)
        expect(page.locator("#model-info")).to_contain_text(model.name, timeout=30_000)
        with tempfile.TemporaryDirectory() as folder:
            upload = Path(folder) / Path(entry["path"]).name  # the card shows the frame's own file name
            shutil.copyfile(gray, upload)
            page.set_input_files("#file-input", str(upload))
            card = page.locator(".card")
            expect(card.locator(".gallery figure")).to_have_count(
                len(entry["delta_e2000_per_k"]), timeout=120_000
            )
        page.wait_for_function("[...document.images].every(img => img.complete)")
        box = card.bounding_box()
        clip = {"x": 0, "y": 0, "width": WEB_VIEWPORT["width"], "height": box["y"] + box["height"] + 16}
        shot = page.screenshot(full_page=True, clip=clip)
        page.close()
        return shot
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for(url: str, server: subprocess.Popen) -> None:
    """Return once `url` answers; exit when the server died or did not answer within SERVER_START_S."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"figures.py: memopainter serve exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"figures.py: memopainter serve did not answer at {url} within {SERVER_START_S} s")


def write_png(path: Path, image: Image.Image | bytes) -> None:
    """Write a PNG to a temporary name beside `path`, then rename it over `path`; say what was written."""
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        image = buffer.getvalue()
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(image)
    os.replace(temporary, path)
    with Image.open(path) as written:
        print(f"wrote {path} ({written.width}x{written.height})")


if __name__ == "__main__":
    sys.exit(main())

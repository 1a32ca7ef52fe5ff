"""Specification of the web API of `memopainter serve` (FastAPI TestClient, a tiny model trained here).

It colorizes through the library's own inference (same pixels as `colorize`), answers every bad input with
a 4xx and a one-line JSON message, never uses a client's path, and teaches the memory into a new checkpoint
file beside the served one unless the user confirms replacing it, keeping only the newest taught ones.
Clients here talk as the page does: at the address served, with the token the page carries (the refusals
of other sites and addresses are specified in test_web_security.py).
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("multipart", reason="the web extra is not installed")

from bad_inputs import gif_with_broken_frame  # noqa: E402
from conftest import run_cli, train_tiny  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from memopainter.cli import serve  # noqa: E402
from memopainter.inference import Colorizer  # noqa: E402
from memopainter.web.app import TOKEN_HEADER, create_app  # noqa: E402
from memopainter.web.uploads import MAX_UPLOAD_FRAMES, Limits, display_name  # noqa: E402

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Path:
    """The final checkpoint of a tiny run with memory (dist feature): 12 steps of 4 over 9 sprites."""
    run = train_tiny(tmp_path_factory.mktemp("web"), [*tiny_settings, "train.steps=12"])
    return run / "model.safetensors"


def page_client(app, **options) -> TestClient:
    """A client talking to `app` as its page does: at the address served, sending the page's token."""
    client = TestClient(app, base_url="http://127.0.0.1:8000", **options)
    page = client.get("/").text
    client.headers[TOKEN_HEADER] = re.search(r'name="memopainter-token" content="([^"]+)"', page)[1]
    return client


@pytest.fixture(scope="module")
def client(model_file: Path) -> TestClient:
    """A client of the app serving the tiny model read-only (no test here teaches through it)."""
    return page_client(create_app(model_file), raise_server_exceptions=False)


@pytest.fixture
def own_model(model_file: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model's checkpoint, in a folder of its own, for tests that teach."""
    folder = tmp_path / "served"
    folder.mkdir()
    return Path(shutil.copy(model_file, folder / "model.safetensors"))


def png(image: Image.Image) -> bytes:
    """An image encoded as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def photo(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A seeded random image of the given size and mode."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8), mode=mode)


def decode(url: str) -> Image.Image:
    """A data:image/png;base64 URL from the API -> the PIL image it holds."""
    import base64

    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


def animation(fmt: str, frames: int = 3) -> bytes:
    """A gray 24 x 16 animation of `fmt` (GIF or WEBP): a square moving right, 100, 150, 200 ms, looping."""
    images = []
    for step in range(frames):
        image = Image.new("LA", (24, 16), (0, 0))
        image.paste((90, 255), (2 + 3 * step, 3, 12 + 3 * step, 13))
        images.append(image.convert("RGBA"))
    buffer = io.BytesIO()
    durations = [100 + 50 * step for step in range(frames)]
    options = {"disposal": 2} if fmt == "GIF" else {"lossless": True}
    images[0].save(
        buffer, format=fmt, save_all=True, append_images=images[1:], duration=durations, loop=0, **options
    )
    return buffer.getvalue()


def decode_animation(url: str, media_type: str) -> Image.Image:
    """A data: URL of an animation from the API -> the PIL image it holds (all its frames)."""
    import base64

    prefix = f"data:{media_type};base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


def post(client: TestClient, url: str, data: bytes, name: str = "frame.png", **fields: str):
    """POST one file as the `image` field with extra form fields."""
    return client.post(url, files={"image": (name, data, "image/png")}, data=fields)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# --- the page ---------------------------------------------------------------------------------------------


def test_page_and_its_assets_are_served_locally_with_no_outside_address(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'src="/static/app.js"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text
    assert "http://" not in page.text and "https://" not in page.text


def test_model_info_names_the_checkpoint_file_and_its_memory(client: TestClient) -> None:
    info = client.get("/api/model").json()
    assert info["checkpoint"] == "model.safetensors"
    assert info["feature"] == "dist" and info["input"] == "gray"
    assert info["has_memory"] is True
    assert 1 <= info["slots_written"] <= info["slots"]
    assert info["max_pixels"] == Limits().max_pixels


# --- colorize ---------------------------------------------------------------------------------------------


def test_colorize_returns_the_same_pixels_as_the_library(client: TestClient, model_file: Path) -> None:
    image = photo(40, 24, seed=1)
    body = post(client, "/api/colorize", png(image)).json()
    (expected,) = Colorizer.from_pretrained(model_file)(image)
    assert (body["width"], body["height"]) == (40, 24)
    np.testing.assert_array_equal(np.asarray(decode(body["results"][0])), np.asarray(expected))


def test_colorize_top_k_gives_k_results_with_their_slots_scores_and_palettes(client: TestClient) -> None:
    body = post(client, "/api/colorize", png(photo(30, 20, mode="RGBA")), top_k="2").json()
    assert len(body["results"]) == len(body["slots"]) == len(body["scores"]) == len(body["palettes"]) == 2
    assert body["scores"][0] >= body["scores"][1]
    assert len(set(body["slots"])) == 2
    for url in [body["gray"], *body["results"]]:
        result = decode(url)
        assert result.size == (30, 20)
        assert result.mode == "RGBA"
    assert all(color.startswith("#") and len(color) == 7 for color in body["palettes"][0])


def test_gray_input_has_no_color(client: TestClient) -> None:
    body = post(client, "/api/colorize", png(photo(16, 16, seed=2))).json()
    gray = np.asarray(decode(body["gray"]).convert("RGB")).astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1
    assert np.abs(gray[..., 1] - gray[..., 2]).max() <= 1


def test_palette_gives_one_result_conditioned_on_those_colors(client: TestClient) -> None:
    body = post(client, "/api/colorize", png(photo(20, 20)), palette="#d02030, F0C020").json()
    assert len(body["results"]) == 1
    assert body["slots"] is None
    assert body["palettes"] == [["#d02030", "#f0c020"]]


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"top_k": "0"}, 422, "top_k"),
        ({"top_k": "three"}, 422, "top_k"),
        ({"top_k": "999"}, 400, "is more than the"),
        ({"palette": "#12345"}, 400, "is not a palette color"),
        ({"palette": ",".join(["#000000"] * 11)}, 400, "1 to 10 colors"),
        ({"palette": "#000000", "top_k": "2"}, 400, "top_k must be 1 with a palette"),
    ],
)
def test_bad_options_are_refused_with_a_message(client, fields, status, message) -> None:
    response = post(client, "/api/colorize", png(photo(8, 8)), **fields)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_errors_name_the_served_model_without_the_servers_path(client: TestClient) -> None:
    served = client.app.state.session.colorizer.path
    error = post(client, "/api/colorize", png(photo(8, 8)), top_k="999").json()["error"]
    assert error.startswith(f"{served.name}: top_k 999 is more than") and str(served.parent) not in error


def test_missing_image_field_is_a_422_naming_it(client: TestClient) -> None:
    response = client.post("/api/colorize", data={"top_k": "1"})
    assert response.status_code == 422
    assert "image" in response.json()["error"]


def test_an_image_part_without_a_file_name_is_a_422_saying_to_send_a_file(client: TestClient) -> None:
    response = client.post("/api/colorize", files={"image": ("", png(photo(8, 8)), "image/png")})
    assert response.status_code == 422
    assert response.json()["error"] == (
        "image: not a file: send the image as a file upload, with its file name"
    )


# --- animations -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type", "extension"), [("GIF", "image/gif", ".gif"), ("WEBP", "image/webp", ".webp")]
)
def test_an_animation_comes_back_as_colored_animations_of_its_format(
    client: TestClient, fmt: str, media_type: str, extension: str
) -> None:
    response = post(client, "/api/colorize", animation(fmt), name=f"walk{extension}", top_k="2")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["frames"], body["extension"], body["width"], body["height"]) == (3, extension, 24, 16)
    assert len(body["results"]) == len(body["slots"]) == len(body["palettes"]) == 2
    for url in [body["gray"], *body["results"]]:
        image = decode_animation(url, media_type)
        assert (image.format, image.n_frames, image.size, image.info["loop"]) == (fmt, 3, (24, 16), 0)
        durations = []
        for index in range(3):
            image.seek(index)
            assert image.convert("RGBA").getpixel((0, 0))[3] == 0  # the transparent corner stays so
            durations.append(image.info["duration"])  # a WebP frame's, once it is decoded
        assert durations == [100, 150, 200]


def test_a_still_upload_is_answered_as_png_with_one_frame(client: TestClient) -> None:
    body = post(client, "/api/colorize", png(photo(8, 8))).json()
    assert (body["frames"], body["extension"]) == (1, ".png")
    assert body["results"][0].startswith("data:image/png;base64,")


def test_the_pixel_cap_counts_every_frame_of_an_animation(model_file: Path) -> None:
    small = page_client(create_app(model_file, limits=Limits(max_pixels=3 * 24 * 16 - 1)))
    over = post(small, "/api/colorize", animation("GIF"), name="walk.gif")
    assert over.status_code == 413
    assert over.json()["error"] == "walk.gif: too many pixels (3 frames of 24x16 = 1152 > max_pixels 1151)"
    assert post(small, "/api/colorize", png(photo(24, 16))).status_code == 200  # one frame fits


def test_the_frames_of_an_upload_are_capped_however_small(client: TestClient) -> None:
    frames = [Image.new("L", (1, 1), value % 256) for value in range(MAX_UPLOAD_FRAMES + 1)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=10)
    over = post(client, "/api/colorize", buffer.getvalue(), name="dots.gif")
    assert over.status_code == 413
    count = MAX_UPLOAD_FRAMES + 1
    assert over.json()["error"] == f"dots.gif: too many frames ({count} > {MAX_UPLOAD_FRAMES})"


def test_a_damaged_frame_is_a_400_naming_the_upload_and_the_frame(client: TestClient) -> None:
    frames = [photo(12, 12, seed=seed) for seed in range(3)]
    response = post(client, "/api/colorize", gif_with_broken_frame(frames, 1), name="walk.gif")
    assert response.status_code == 400
    assert response.json()["error"].startswith("walk.gif: frame 1: corrupt or truncated image (")


# --- bad uploads ------------------------------------------------------------------------------------------


def test_non_image_is_refused_by_content_whatever_its_name_and_type(client: TestClient) -> None:
    response = post(client, "/api/colorize", b"#!/bin/sh\necho not an image\n", name="evil.png")
    assert response.status_code == 415
    assert response.json()["error"].startswith("evil.png: not a recognised image file")


def test_image_named_as_text_is_still_colorized(client: TestClient) -> None:
    response = post(client, "/api/colorize", png(photo(8, 8)), name="notes.txt")
    assert response.status_code == 200


def test_decompression_bomb_header_is_refused_before_decoding(client: TestClient) -> None:
    response = post(client, "/api/colorize", png_header_only(12_000, 12_000), name="bomb.png")
    assert response.status_code == 413
    assert response.json()["error"].startswith("bomb.png: too many pixels (12000x12000")


def test_truncated_image_is_a_400(client: TestClient) -> None:
    response = post(client, "/api/colorize", png(photo(32, 32))[:200])
    assert response.status_code == 400
    assert "corrupt or truncated" in response.json()["error"]


def test_empty_file_is_a_400(client: TestClient) -> None:
    response = post(client, "/api/colorize", b"")
    assert response.status_code == 400
    assert response.json()["error"] == "frame.png: empty file (0 bytes)"


def test_pixel_and_upload_caps_are_configurable(model_file: Path) -> None:
    small = page_client(create_app(model_file, limits=Limits(max_upload_bytes=2000, max_pixels=400)))
    over_pixels = post(small, "/api/colorize", png(Image.new("L", (21, 20))))
    assert over_pixels.status_code == 413
    assert "21x20 = 420 > max_pixels 400" in over_pixels.json()["error"]
    over_bytes = post(small, "/api/colorize", png(photo(40, 40)))  # about 4.8 kB of noise
    assert over_bytes.status_code == 413
    assert over_bytes.json()["error"] == "frame.png: file is larger than the server's limit of 2000 bytes"
    assert post(small, "/api/colorize", png(Image.new("L", (20, 20)))).status_code == 200


def test_client_file_names_are_reduced_to_a_safe_label() -> None:
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\frame 1.png") == "frame 1.png"
    assert display_name("<script>.png") == "script.png"
    assert display_name("..") == "image"
    assert display_name(None) == "image"


def test_a_server_fault_is_a_json_message_not_a_stack_trace(model_file: Path, monkeypatch) -> None:
    app = create_app(model_file)

    def broken(*_, **__):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.session, "colorize", broken)
    # The fault is answered inside the app: nothing escapes to the server (the client would re-raise it).
    response = post(page_client(app), "/api/colorize", png(photo(8, 8)))
    assert response.status_code == 500
    assert response.json() == {"error": "the server failed on this request (RuntimeError); see its log"}


def test_concurrent_requests_all_succeed_with_identical_results(client: TestClient) -> None:
    data = png(photo(24, 24, seed=3))
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: post(client, "/api/colorize", data, top_k="2"), range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    assert len({tuple(r.json()["results"]) for r in responses}) == 1


# --- remember ---------------------------------------------------------------------------------------------


def test_remember_saves_a_new_checkpoint_beside_the_served_one_and_serves_it(own_model: Path) -> None:
    before = own_model.read_bytes()
    client = page_client(create_app(own_model))
    written = client.get("/api/model").json()["slots_written"]
    response = post(client, "/api/remember", png(photo(24, 32, seed=4)), name="hero.png")
    assert response.status_code == 200
    body = response.json()
    assert body["action"] in ("wrote", "refreshed")
    assert own_model.read_bytes() == before
    (new,) = [p for p in own_model.parent.iterdir() if p != own_model]
    assert new.name.startswith("model.taught-") and new.suffix == ".safetensors"
    assert body["checkpoint"] == new.name == client.get("/api/model").json()["checkpoint"]
    taught = Colorizer.from_pretrained(new)
    assert taught.model.source_paths[-1] == "hero.png"
    assert taught.model.memory.num_filled == written + (body["action"] == "wrote")


def test_remember_twice_keeps_every_checkpoint(own_model: Path) -> None:
    client = page_client(create_app(own_model))
    for seed in (5, 6):
        assert post(client, "/api/remember", png(photo(20, 20, seed=seed))).status_code == 200
    assert len(list(own_model.parent.glob("*.safetensors"))) == 3


def test_remember_replaces_the_served_file_only_when_confirmed(own_model: Path) -> None:
    before = own_model.read_bytes()
    client = page_client(create_app(own_model))
    response = post(client, "/api/remember", png(photo(20, 20, seed=7)), name="hero.png", replace="true")
    assert response.status_code == 200
    assert response.json()["checkpoint"] == "model.safetensors"
    assert [p.name for p in own_model.parent.iterdir()] == ["model.safetensors"]
    assert own_model.read_bytes() != before
    assert Colorizer.from_pretrained(own_model).model.source_paths[-1] == "hero.png"


def test_remember_never_replaces_a_runs_resumable_checkpoint(own_model: Path) -> None:
    checkpoint = own_model.rename(own_model.parent / "checkpoint.safetensors")  # a run still training
    before = checkpoint.read_bytes()
    client = page_client(create_app(checkpoint))
    response = post(client, "/api/remember", png(photo(20, 20, seed=7)), name="hero.png", replace="true")
    assert response.status_code == 400
    assert "resumable checkpoint: it is never replaced" in response.json()["error"]
    assert [p.name for p in checkpoint.parent.iterdir()] == ["checkpoint.safetensors"]
    assert checkpoint.read_bytes() == before


def test_failed_remember_writes_nothing_and_keeps_the_served_model(own_model: Path) -> None:
    client = page_client(create_app(own_model))
    info = client.get("/api/model").json()
    response = post(client, "/api/remember", b"GIF89a but not really", name="x.gif")
    assert response.status_code == 415
    assert response.json()["error"].startswith("x.gif: ")
    assert [p.name for p in own_model.parent.iterdir()] == ["model.safetensors"]
    assert client.get("/api/model").json() == info


def test_remember_keeps_only_the_newest_taught_checkpoints(own_model: Path) -> None:
    folder = own_model.parent
    # An earlier session's, oldest first: '-10' is newer than '-2' and both than their unnumbered twin.
    earlier = [f"model.taught-20200101-000000{n}.safetensors" for n in ("", "-2", "-10")]
    another = "other.taught-20200101-000000.safetensors"  # another model's: not counted, not deleted
    for name in [*earlier, another]:
        (folder / name).write_bytes(b"an earlier session's checkpoint")
    client = page_client(create_app(own_model, keep_taught=2))
    first = post(client, "/api/remember", png(photo(20, 20, seed=5))).json()
    assert first["removed"] == earlier[:2]
    second = post(client, "/api/remember", png(photo(20, 20, seed=6))).json()
    assert second["removed"] == earlier[2:]
    left = [
        "model.safetensors",
        first["checkpoint"],
        second["checkpoint"],
        earlier[0].replace("model", "other"),
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted(left)
    assert client.get("/api/model").json()["checkpoint"] == second["checkpoint"]


def test_remember_never_deletes_the_loaded_checkpoint_whatever_its_name(own_model: Path) -> None:
    loaded = own_model.rename(own_model.with_name("model.taught-20200101-000000.safetensors"))
    client = page_client(create_app(loaded, keep_taught=1))
    bodies = [post(client, "/api/remember", png(photo(20, 20, seed=seed))).json() for seed in (5, 6)]
    assert [body["removed"] for body in bodies] == [[], [bodies[0]["checkpoint"]]]
    assert sorted(p.name for p in loaded.parent.iterdir()) == [loaded.name, bodies[1]["checkpoint"]]
    with pytest.raises(ValueError, match="keep_taught must be at least 1"):
        create_app(loaded, keep_taught=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_passes_its_address_and_checkpoint_limit_to_the_app(model_file: Path, monkeypatch) -> None:
    import uvicorn

    served = {}

    def run(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        served.update(app=server.config.app, at=sockets[0].getsockname())
        sockets[0].close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    port = free_port()
    assert run_cli(serve, ["serve", str(model_file), "--port", str(port), "--keep-taught", "3"]) == 0
    assert served["at"] == ("127.0.0.1", port)
    assert served["app"].state.session.keep_taught == 3
    assert TestClient(served["app"], base_url=f"http://localhost:{port}").get("/").status_code == 200
    assert TestClient(served["app"], base_url="http://localhost:1").get("/").status_code == 421


def test_serve_says_a_taken_port_in_one_line_before_announcing_anything(model_file: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli(serve, ["serve", str(model_file), "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert "serving" not in captured.out
    assert captured.err.startswith(f"error: --host 127.0.0.1 --port {port}: cannot listen there (")
    assert len(captured.err.splitlines()) == 1

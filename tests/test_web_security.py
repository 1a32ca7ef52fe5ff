"""`memopainter serve` against a careless or hostile client (FastAPI TestClient and raw ASGI, a tiny model).

Only the server's own page may change the model: POSTs from other origins or sites, or without the page's
token, are refused, and so is every request naming another host (DNS rebinding). Bodies are read only up to
the upload cap, chunked or not. Every bad input, and the model failing, gets a status and one JSON line;
the server answers GET / afterwards and writes nothing outside the served model's folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import shutil
import struct
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("multipart", reason="the web extra is not installed")

import starlette.formparsers  # noqa: E402
from conftest import train_tiny
from fastapi.testclient import TestClient  # noqa: E402

from memopainter.web.app import TOKEN_HEADER, allowed_hosts, create_app  # noqa: E402
from memopainter.web.uploads import Limits  # noqa: E402

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")

HOME = "http://127.0.0.1:8000"  # where the apps here are served
CAP = 100_000  # the upload cap of the apps here: oversized bodies stay small
# Form fields and multipart overhead the server allows on top of the cap (app._FORM_SLACK).
SLACK = 64 * 1024
BOUNDARY = "memopainter-test-boundary"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Path:
    """The final checkpoint of a tiny run with memory (dist feature): 12 steps of 4 over 9 sprites."""
    run = train_tiny(tmp_path_factory.mktemp("web-security"), [*tiny_settings, "train.steps=12"])
    return run / "model.safetensors"


@pytest.fixture
def served(model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An app serving a private copy of the model, run from an empty folder with an empty temp folder.

    Yields (app, client as the page, folder of the model, model file); afterwards the working and temp
    folders must still be empty: the server writes nowhere but beside the model it serves.
    """
    folder, cwd, temp = tmp_path / "served", tmp_path / "cwd", tmp_path / "temp"
    for made in (folder, cwd, temp):
        made.mkdir()
    model = Path(shutil.copy(model_file, folder / "model.safetensors"))
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    app = create_app(model, limits=Limits(max_upload_bytes=CAP))
    yield SimpleNamespace(app=app, client=page_client(app), folder=folder, model=model)
    assert list(cwd.iterdir()) == []
    assert list(temp.iterdir()) == []


def page_client(app, base_url: str = HOME) -> TestClient:
    """A client talking to `app` as its page does: at the address served, sending the page's token."""
    client = TestClient(app, base_url=base_url)
    client.headers[TOKEN_HEADER] = page_token(client.get("/").text)
    return client


def page_token(page: str) -> str:
    return re.search(r'<meta name="memopainter-token" content="([^"]+)">', page)[1]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def multipart(data: bytes, field: str = "image", name: str = "frame.png") -> bytes:
    """A multipart/form-data body with one file, as a browser builds it (boundary BOUNDARY)."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
    return (head + "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def chunked(body: bytes, size: int = 64 * 1024):
    """The body as a generator: httpx sends it with Transfer-Encoding: chunked and no Content-Length."""
    return (body[i : i + size] for i in range(0, len(body), size))


def refused(response, status: int, fragment: str = "") -> str:
    """Check a refusal: the status, and the API's one error shape on one line with no internals."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    assert fragment in body["error"]
    return body["error"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def post(client: TestClient, url: str, image: bytes, name: str = "frame.png", **options):
    """POST one file as the `image` field; `options` go to the client (data=, headers=)."""
    return client.post(url, files={"image": (name, image, "image/png")}, **options)


# --- same origin only -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:8001", "https://127.0.0.1:8000"]
)
def test_a_post_from_another_origin_cannot_replace_the_served_model(served, origin: str) -> None:
    before = sha256(served.model)
    response = post(
        served.client,
        "/api/remember",
        png(photo(20, 20)),
        data={"replace": "true"},
        headers={"Origin": origin},
    )
    refused(response, 403, "cross-origin request refused")
    assert sha256(served.model) == before
    assert [p.name for p in served.folder.iterdir()] == ["model.safetensors"]
    assert served.client.get("/").status_code == 200


def test_a_post_from_the_served_origin_is_accepted(served) -> None:
    response = post(served.client, "/api/colorize", png(photo(8, 8)), headers={"Origin": HOME})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("site", "status"), [("cross-site", 403), ("same-site", 403), ("same-origin", 200), ("none", 200)]
)
def test_fetch_metadata_other_than_same_origin_is_refused(served, site: str, status: int) -> None:
    response = post(served.client, "/api/colorize", png(photo(8, 8)), headers={"Sec-Fetch-Site": site})
    assert response.status_code == status
    if status == 403:
        refused(response, 403, "cross-site request refused")


@pytest.mark.parametrize("token", [None, "", "guessed", "x" * 43])
def test_a_post_without_the_page_token_is_refused(served, token: str | None) -> None:
    client = TestClient(served.app, base_url=HOME)
    headers = {} if token is None else {TOKEN_HEADER: token}
    response = post(client, "/api/remember", png(photo(20, 20)), headers=headers)
    refused(response, 403, f"missing or wrong {TOKEN_HEADER} header: reload the page")
    assert [p.name for p in served.folder.iterdir()] == ["model.safetensors"]


def test_each_server_has_its_own_token_in_a_page_neither_cached_nor_framed(served) -> None:
    other = create_app(served.model)
    page = served.client.get("/")
    assert page_token(page.text) == served.app.state.token != other.state.token
    assert len(served.app.state.token) >= 32
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "access-control-allow-origin" not in page.headers
    assert "access-control-allow-origin" not in served.client.get("/api/model").headers


# --- the served address only (DNS rebinding) --------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example:8000", "evil.example", "127.0.0.1:8001", "testserver", "127.0.0.1"]
)
@pytest.mark.parametrize("path", ["/", "/api/model", "/static/app.js"])
def test_a_request_naming_another_host_is_refused(served, host: str, path: str) -> None:
    refused(served.client.get(path, headers={"Host": host}), 421, "is not an address this server answers at")


def test_a_post_naming_another_host_is_refused_before_it_changes_anything(served) -> None:
    response = post(
        served.client, "/api/remember", png(photo(20, 20)), headers={"Host": "rebound.example:8000"}
    )
    refused(response, 421, f"open {HOME}")
    assert [p.name for p in served.folder.iterdir()] == ["model.safetensors"]


@pytest.mark.parametrize("base_url", ["http://localhost:8000", "http://[::1]:8000", "http://LOCALHOST:8000"])
def test_every_loopback_name_of_the_port_is_served(served, base_url: str) -> None:
    client = page_client(served.app, base_url)
    response = post(client, "/api/colorize", png(photo(8, 8)), headers={"Origin": base_url.lower()})
    assert response.status_code == 200


def test_the_served_hosts_follow_host_and_port() -> None:
    assert allowed_hosts("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert "myhost.lan:9000" in allowed_hosts("MyHost.lan", 9000)
    assert "[fe80::1]:9000" in allowed_hosts("fe80::1", 9000)
    assert {"127.0.0.1", "localhost", "[::1]"} <= allowed_hosts("127.0.0.1", 80)  # browsers drop :80


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("192.168.1.5:8000", 200),
        ("[fe80::1]:8000", 200),
        ("evil.example:8000", 421),
        ("192.168.1.5:8001", 421),
    ],
)
def test_bound_to_every_address_any_ip_is_served_but_no_other_name(
    model_file: Path, host: str, status
) -> None:
    client = TestClient(create_app(model_file, host="0.0.0.0", port=8000), base_url=HOME)
    assert client.get("/", headers={"Host": host}).status_code == status


# --- the upload cap holds for chunked bodies --------------------------------------------------------------


class SpyingSpool(tempfile.SpooledTemporaryFile):
    """The multipart parser's temp file, recording the most bytes any one of them was given."""

    most = 0

    def write(self, data) -> int:
        written = super().write(data)
        SpyingSpool.most = max(SpyingSpool.most, self.tell())
        return written


@pytest.fixture
def spool(monkeypatch: pytest.MonkeyPatch) -> type[SpyingSpool]:
    """SpyingSpool in place of the multipart parser's temp files, its count at 0."""
    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", SpyingSpool)
    monkeypatch.setattr(SpyingSpool, "most", 0)
    return SpyingSpool


def test_a_chunked_body_over_the_cap_is_refused_without_being_spooled(served, spool) -> None:
    body = multipart(b"\0" * (2 * 1024 * 1024))
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    response = served.client.post("/api/colorize", content=chunked(body), headers=headers)
    assert "content-length" not in response.request.headers
    refused(response, 413, "request is larger than the server's upload limit")
    assert spool.most <= CAP + SLACK
    # Under the cap, the same way of sending works.
    small = served.client.post("/api/colorize", content=chunked(multipart(png(photo(8, 8)))), headers=headers)
    assert small.status_code == 200
    assert served.client.get("/").status_code == 200


def test_a_streamed_body_is_read_only_up_to_the_cap(served) -> None:
    """Through ASGI directly, as uvicorn streams: the app stops asking for the body past the cap."""
    piece = 64 * 1024
    pieces = 256  # 16 MiB offered
    head = multipart(b"", name="big.png").split(f"\r\n--{BOUNDARY}--".encode())[0]
    taken = []
    messages = []

    async def receive() -> dict:
        taken.append(piece)
        body = head if len(taken) == 1 else b"\0" * piece
        return {"type": "http.request", "body": body, "more_body": len(taken) < pieces}

    async def send(message: dict) -> None:
        messages.append(message)

    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
        (b"transfer-encoding", b"chunked"),
        (TOKEN_HEADER.lower().encode(), served.app.state.token.encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/colorize",
        "raw_path": b"/api/colorize",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(served.app(scope, receive, send))
    assert messages[0]["type"] == "http.response.start" and messages[0]["status"] == 413
    assert b"upload limit" in b"".join(m.get("body", b"") for m in messages[1:])
    assert sum(taken) <= CAP + SLACK + 2 * piece


def test_a_body_announced_over_the_cap_is_refused_before_it_is_read(served, spool) -> None:
    response = post(served.client, "/api/colorize", b"\0" * (CAP + SLACK + 1))
    refused(response, 413, "request is larger than the server's upload limit")
    assert spool.most == 0


# --- the model failing ------------------------------------------------------------------------------------


OUT_OF_MEMORY = "frame.png: not enough memory to colorize this 12x8 image; try a smaller one"
FAILURES = [
    pytest.param(MemoryError(), 413, OUT_OF_MEMORY, id="memory-error"),
    pytest.param(
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 80000000000 bytes"),
        413,
        OUT_OF_MEMORY,
        id="torch-cpu-allocator",
    ),
    pytest.param(
        RuntimeError("secret internals"),
        500,
        "the server failed on this request (RuntimeError); see its log",
        id="runtime-error",
    ),
]


@pytest.mark.parametrize(("error", "status", "message"), FAILURES)
@pytest.mark.parametrize("endpoint", ["colorize", "remember"])
def test_a_model_failure_is_one_json_line_and_the_server_stays_up(
    served, monkeypatch, endpoint, error, status, message
):
    def fail(*_, **__):
        raise error

    monkeypatch.setattr(served.app.state.session, endpoint, fail)
    # The client re-raises what escapes the app: a failure must be answered inside it.
    response = post(served.client, f"/api/{endpoint}", png(photo(12, 8)))
    assert refused(response, status) == message
    assert "secret" not in response.text
    assert served.client.get("/").status_code == 200
    assert served.client.get("/api/model").status_code == 200


def test_an_extreme_aspect_image_is_refused_in_one_line(served) -> None:
    response = post(served.client, "/api/colorize", png(Image.new("L", (20000, 1))), name="strip.png")
    refused(response, 400, "strip.png: 20000x1 is wider than 100 times its height")
    assert served.client.get("/").status_code == 200


# --- every endpoint against bad input ---------------------------------------------------------------------


def upload(image: bytes, name: str = "frame.png", **options) -> dict:
    """Request options that post `image` as the image file, with more `options` (headers=, data=)."""
    return {"files": {"image": (name, image, "image/png")}, **options}


def bad_posts() -> list[tuple[str, dict, int, str]]:
    """(id, request options, status, message fragment): bad POSTs to either endpoint, else as the page's."""
    form = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return [
        ("zero-byte", upload(b""), 400, "frame.png: empty file (0 bytes)"),
        ("truncated", upload(png(photo(32, 32))[:200]), 400, "corrupt or truncated"),
        ("text", upload(b"just some notes\n", "notes.png"), 415, "notes.png: not a recognised image"),
        ("huge-header", upload(png_header_only(40_000, 40_000)), 413, "too many pixels"),
        ("extreme-aspect", upload(png(Image.new("L", (1, 5000)))), 400, "taller than 100 times its width"),
        ("wrong-field", {"files": {"file": ("f.png", b"x", "image/png")}}, 422, "image"),
        ("no-body", {}, 422, "image"),
        ("json-body", {"json": {"image": "frame.png"}}, 422, "image"),
        ("oversized", upload(b"\0" * (CAP + SLACK + 1)), 413, "upload limit"),
        ("over-cap-file", upload(b"\0" * (CAP + 1)), 413, "frame.png: file is larger"),
        ("chunked", {"content": chunked(multipart(b"\0" * 4 * CAP)), "headers": form}, 413, "upload limit"),
        ("cross-origin", upload(b"", headers={"Origin": "http://a.example"}), 403, "cross-origin"),
        ("cross-site", upload(b"", headers={"Sec-Fetch-Site": "cross-site"}), 403, "cross-site"),
        ("foreign-host", upload(b"", headers={"Host": "a.example:8000"}), 421, "Host a.example:8000"),
        ("no-token", upload(b"", headers={TOKEN_HEADER: ""}), 403, TOKEN_HEADER),
    ]


def bad_requests() -> list:
    """(method, path, request options, status, message fragment) for every endpoint."""
    # bad_posts() runs once per endpoint: each gets its own chunked body, which can be sent only once.
    posts = [
        pytest.param("POST", f"/api/{endpoint}", options, status, fragment, id=f"{endpoint}-{name}")
        for endpoint in ("colorize", "remember")
        for name, options, status, fragment in bad_posts()
    ]
    top_k = upload(png(photo(8, 8)), data={"top_k": "-1"})
    return [
        *posts,
        pytest.param("POST", "/api/colorize", top_k, 422, "top_k", id="colorize-negative-top-k"),
        pytest.param("GET", "/nowhere", {}, 404, "Not Found", id="unknown-path"),
        pytest.param("PUT", "/", {}, 405, "Method Not Allowed", id="put-page"),
        pytest.param("GET", "/api/colorize", {}, 405, "Method Not Allowed", id="get-colorize"),
    ]


@pytest.mark.parametrize(("method", "path", "options", "status", "fragment"), bad_requests())
def test_every_endpoint_answers_bad_input_in_one_line_and_stays_up(
    served, method, path, options, status, fragment
):
    before = sha256(served.model)
    refused(served.client.request(method, path, **options), status, fragment)
    assert served.client.get("/").status_code == 200
    assert sha256(served.model) == before
    assert [p.name for p in served.folder.iterdir()] == ["model.safetensors"]


def test_twenty_concurrent_uploads_all_succeed(served) -> None:
    def upload(i: int):
        endpoint = "/api/remember" if i % 5 == 4 else "/api/colorize"
        return post(served.client, endpoint, png(photo(16 + i, 12, seed=i)), name=f"frame{i}.png")

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(upload, range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert [r.json()["name"] for r in responses] == [f"frame{i}.png" for i in range(20)]
    taught = sorted(p.name for p in served.folder.iterdir() if p.name != "model.safetensors")
    assert len(taught) == 4 and all(name.startswith("model.taught-") for name in taught)
    assert served.client.get("/api/model").json()["checkpoint"] in taught
    assert served.client.get("/").status_code == 200

"""The FastAPI app of `memopainter serve`: a JSON API over one loaded model, and the static page.

    POST /api/colorize  form: image (file), top_k (int, default 1), palette ('#rrggbb,...', optional);
                        an animated GIF, WebP or PNG is colorized as one sequence and answered as animations
    POST /api/remember  form: image (file), class_name (optional), replace ("true" to overwrite the model)
    GET  /api/model     what the served model is and can do

Every error is JSON {"error": "<one line>"} with a 4xx status (5xx only for a fault of the server).

Only the server's own page may change anything: every request must name an address the server answers at in
its Host header (421 otherwise: a DNS-rebound name reaches the loopback address but names its own host), and
every POST must be same-origin (Origin, Sec-Fetch-Site) and carry the page's token in the X-MemoPainter-Token
header (403 otherwise). The token is made per server and written into the page at GET /; responses carry no
CORS headers, so no other origin can read it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from memopainter.core.checkpoint import CheckpointError
from memopainter.data.sequences import Animation
from memopainter.inference.upsample import DEFAULT_UPSAMPLE
from memopainter.web.session import DEFAULT_KEEP_TAUGHT, LOOPBACK_HOSTS, Coloring, ModelSession, data_url
from memopainter.web.uploads import (
    BodyCap,
    Limits,
    UploadError,
    decode_image,
    decode_upload,
    display_name,
    read_upload,
)

# Form fields and multipart overhead on top of the one file a request carries.
_FORM_SLACK = 64 * 1024
_log = logging.getLogger(__name__)
TOKEN_HEADER = "X-MemoPainter-Token"
# Where index.html receives the token; the page's script reads it from there.
_TOKEN_SLOT = '<meta name="memopainter-token" content="">'
_ANY_ADDRESS = ("0.0.0.0", "::", "")
_READ_ONLY_METHODS = ("GET", "HEAD", "OPTIONS")


def create_app(
    model_path: str | os.PathLike,
    *,
    limits: Limits | None = None,
    device: str = "cpu",
    weights: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    keep_taught: int = DEFAULT_KEEP_TAUGHT,
    upsample: str = DEFAULT_UPSAMPLE,
) -> FastAPI:
    """Load the model at `model_path` (run folder or checkpoint file) and build the app that serves it.

    `host` and `port` are where it is served: requests naming another address in their Host header are
    refused. At most `keep_taught` taught checkpoints are kept beside the loaded one.
    """
    limits = limits or Limits()
    session = ModelSession(model_path, device, weights, keep_taught, upsample)
    static = Path(str(resources.files("memopainter.web") / "static"))
    token = secrets.token_urlsafe(32)
    app = FastAPI(title="MemoPainter", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.session = session
    app.state.limits = limits
    app.state.token = token
    _add_error_handling(app)
    _add_routes(app, session, limits, static, token)
    app.mount("/static", StaticFiles(directory=static), name="static")
    mib = limits.max_upload_bytes / (1024 * 1024)
    refusal = _error(413, f"request is larger than the server's upload limit of {mib:g} MiB")
    app.add_middleware(BodyCap, max_bytes=limits.max_upload_bytes + _FORM_SLACK, refusal=refusal)
    # Added last, so outermost: a foreign or cross-site request is refused before its body is read.
    app.add_middleware(SameOrigin, host=host, port=port, token=token)
    return app


class SameOrigin:
    """Pure ASGI middleware: requests must name a served address; POSTs must come from the server's page.

    Host must be one of `allowed_hosts(host, port)`, or any IP address when bound to all of them (0.0.0.0,
    ::): an IP address cannot be rebound. Methods other than GET, HEAD and OPTIONS are refused when their
    Origin is another origin, their Sec-Fetch-Site is not same-origin or none, or they lack the token.
    """

    def __init__(self, app: Any, *, host: str, port: int, token: str) -> None:
        self.app = app
        self.hosts = allowed_hosts(host, port)
        self.any_ip = host in _ANY_ADDRESS
        self.port = port
        self.token = token.encode("latin-1")
        shown = f"[{host}]" if ":" in host else host
        self.home = f"http://{'127.0.0.1' if self.any_ip else shown}:{port}"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (problem := self.refusal(scope)):
            await _error(*problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: dict) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "").lower()
        if host not in self.hosts and not (self.any_ip and _is_ip_at(host, self.port)):
            shown = host[:80] or "(none)"
            return 421, f"Host {shown} is not an address this server answers at; open {self.home}"
        if scope["method"] in _READ_ONLY_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host}":
            return 403, "cross-origin request refused: only the server's own page may send it"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site request refused: only the server's own page may send it"
        if not secrets.compare_digest(headers.get(TOKEN_HEADER, "").encode("latin-1"), self.token):
            return 403, f"missing or wrong {TOKEN_HEADER} header: reload the page (was the server restarted?)"
        return None


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values that name the server at `host`:`port` (lower case, IPv6 in brackets)."""
    names = {name.lower() for name in (*LOOPBACK_HOSTS, host) if name not in _ANY_ADDRESS}
    names = {f"[{name}]" if ":" in name else name for name in names}
    # Browsers leave the port out of Host when it is the scheme's default.
    return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))


def _is_ip_at(host: str, port: int) -> bool:
    """Whether a Host header value is an IP address (not a name) and `port`: 10.0.0.2:8000, [::1]:8000."""
    address, _, given = host.rpartition(":")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    elif ":" in address:
        return False  # an IPv6 address without brackets is ambiguous with its port
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return given == str(port)


def _add_error_handling(app: FastAPI) -> None:
    """Every error as one JSON line with its status."""

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, error: UploadError) -> JSONResponse:
        return _error(error.status, str(error))

    @app.exception_handler(ValueError)
    async def value_error(request: Request, error: ValueError) -> JSONResponse:
        return _error(400, _served_by_name(request, str(error)))

    @app.exception_handler(CheckpointError)
    async def checkpoint_error(request: Request, error: CheckpointError) -> JSONResponse:
        return _error(500, _served_by_name(request, f"could not save the taught model: {error}"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(_describe(problem) for problem in error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def server_fault(_: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error while serving a request")
        return _error(500, _fault(error))


def _add_routes(app: FastAPI, session: ModelSession, limits: Limits, static: Path, token: str) -> None:
    """The page and the JSON API over the served model."""

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return page_with_token(static / "index.html", token)

    @app.get("/api/model")
    def model_info() -> dict:
        """What the served model is: checkpoint name, feature, memory slots, and the server's limits."""
        return {
            **session.info(),
            "max_upload_bytes": limits.max_upload_bytes,
            "max_pixels": limits.max_pixels,
        }

    @app.post("/api/colorize")
    def colorize(
        image: Annotated[UploadFile, File()],
        top_k: Annotated[int, Form(ge=1)] = 1,
        palette: Annotated[str | None, Form()] = None,
    ) -> dict:
        """Colorize one uploaded image or animation: the gray input, top-k results, slots and palettes."""
        name = display_name(image.filename)
        decoded = decode_upload(
            read_upload(image.file, name, limits.max_upload_bytes), name, limits.max_pixels
        )
        palette = palette.strip() if palette else None
        if isinstance(decoded, Animation):
            rgb = decoded.frames[0][0]  # (3, H, W)
            with model_errors(name, rgb), frame_errors(name):
                coloring = session.colorize_animation(decoded, top_k, palette or None)
        else:
            rgb, alpha = decoded
            with model_errors(name, rgb):
                coloring = session.colorize(rgb, alpha, top_k, palette or None)
        return coloring_answer(name, rgb, coloring)

    @app.post("/api/remember")
    def remember(
        image: Annotated[UploadFile, File()],
        class_name: Annotated[str | None, Form()] = None,
        replace: Annotated[bool, Form()] = False,
    ) -> dict:
        """Teach the memory one colored reference; save a new checkpoint (or, confirmed, replace it)."""
        name, rgb, alpha = load_upload(image, limits)
        class_name = class_name.strip() if class_name else None
        with model_errors(name, rgb):
            taught = session.remember(rgb, alpha, name, class_name or None, replace)
        return {
            "name": name,
            "action": taught.action,
            "slot": taught.slot,
            "replaced": taught.replaced,
            "removed": taught.removed,
            **session.info(),
        }


def page_with_token(index: Path, token: str) -> HTMLResponse:
    """The page with this server's token written in, for its script to send with every POST.

    It is never cached, as a restarted server has another token, and never framed, as a page framing it
    could trick the user's clicks into its forms.
    """
    page = index.read_text(encoding="utf-8")
    page = page.replace(_TOKEN_SLOT, _TOKEN_SLOT.replace('content=""', f'content="{token}"'))
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "frame-ancestors 'none'",
    }
    return HTMLResponse(page, headers=headers)


def coloring_answer(name: str, rgb: torch.Tensor, coloring: Coloring) -> dict:
    """The JSON answer of /api/colorize: images as data: URLs, an animation's in its own format."""
    height, width = rgb.shape[1:]
    return {
        "name": name,
        "width": width,
        "height": height,
        "frames": coloring.frames,
        "extension": coloring.extension,
        "gray": data_url(coloring.gray, coloring.media_type),
        "results": [data_url(encoded, coloring.media_type) for encoded in coloring.results],
        "slots": coloring.slots,
        "scores": coloring.scores,
        "palettes": coloring.palettes,
    }


def load_upload(upload: UploadFile, limits: Limits) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    """An uploaded image file -> its display name, rgb (3, H, W) and alpha (H, W) or None, within limits."""
    name = display_name(upload.filename)
    data = read_upload(upload.file, name, limits.max_upload_bytes)
    return (name, *decode_image(data, name, limits.max_pixels))


@contextmanager
def model_errors(name: str, rgb: torch.Tensor) -> Iterator[None]:
    """The model failing on one image as a one-line UploadError, answered here rather than left to escape.

    An exception that escapes the app is answered with a 500 too, but also re-raised to the server, which
    then logs a second traceback. Running out of memory is the image's size: 413 with its size.
    """
    try:
        yield
    except ValueError:
        raise  # bad options, refused images and checkpoints: their handlers answer
    except Exception as error:
        if _out_of_memory(error):
            height, width = rgb.shape[1:]
            problem = f"not enough memory to colorize this {width}x{height} image; try a smaller one"
            raise UploadError(413, f"{name}: {problem}") from None
        _log.exception("the model failed on %s", name)
        raise UploadError(500, _fault(error)) from None


@contextmanager
def frame_errors(name: str) -> Iterator[None]:
    """A refused animation's ValueError ("frame 3: ...", a bad option) as a 400 that names the upload."""
    try:
        yield
    except UploadError:
        raise
    except ValueError as error:
        raise UploadError(400, f"{name}: {error}") from None


def _out_of_memory(error: BaseException) -> bool:
    """Whether an error is a failed allocation: Python's, CUDA's, or the RuntimeError of torch's CPU one."""
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def _fault(error: BaseException) -> str:
    """The message for a fault of the server: its kind, never its details (they go to the log)."""
    return f"the server failed on this request ({type(error).__name__}); see its log"


def _served_by_name(request: Request, message: str) -> str:
    """`message` with the served checkpoint's path cut to its name: the page needs no server paths."""
    served = request.app.state.session.colorizer.path
    return message.replace(str(served), served.name)


def _error(status: int, message: str) -> JSONResponse:
    """The one error shape of the API."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _describe(problem: dict) -> str:
    """A pydantic validation problem as 'field: message'."""
    where = ".".join(str(part) for part in problem.get("loc", ()) if part not in ("body", "query"))
    message = str(problem.get("msg", "invalid"))
    if "Expected UploadFile" in message:  # a multipart field without a file name reaches us as text
        message = "not a file: send the image as a file upload, with its file name"
    return f"{where}: {message}" if where else message

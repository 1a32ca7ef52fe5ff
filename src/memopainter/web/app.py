"""The FastAPI app of `memopainter serve`: a JSON API over one loaded model, and the static page.

    POST /api/colorize  form: image (file), top_k (int, default 1), palette ('#rrggbb,...', optional)
    POST /api/remember  form: image (file), class_name (optional), replace ("true" to overwrite the model)
    GET  /api/model     what the served model is and can do

Every error is JSON {"error": "<one line>"} with a 4xx status (5xx only for a fault of the server).
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path
from typing import Annotated

import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from memopainter.core.checkpoint import CheckpointError
from memopainter.web.session import ModelSession, data_url
from memopainter.web.uploads import Limits, UploadError, decode_image, display_name, read_upload

# Form fields and multipart overhead on top of the one file a request carries.
_FORM_SLACK = 64 * 1024
_log = logging.getLogger(__name__)


def create_app(
    model_path: str | os.PathLike,
    *,
    limits: Limits | None = None,
    device: str = "cpu",
    weights: str | os.PathLike | None = None,
) -> FastAPI:
    """Load the model at `model_path` (run folder or checkpoint file) and build the app that serves it."""
    limits = limits or Limits()
    session = ModelSession(model_path, device=device, weights=weights)
    static = Path(str(resources.files("memopainter.web") / "static"))
    app = FastAPI(title="MemoPainter", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.session = session
    app.state.limits = limits
    _add_error_handling(app, limits)
    _add_routes(app, session, limits, static)
    app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def _add_error_handling(app: FastAPI, limits: Limits) -> None:
    """Every error as one JSON line with its status; bodies over the cap refused before they are read."""

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        """Refuse a body announced larger than the upload cap before it is read."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_upload_bytes + _FORM_SLACK:
            mib = limits.max_upload_bytes / (1024 * 1024)
            return _error(413, f"request is larger than the server's upload limit of {mib:g} MiB")
        return await call_next(request)

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, error: UploadError) -> JSONResponse:
        return _error(error.status, str(error))

    @app.exception_handler(ValueError)
    async def value_error(_: Request, error: ValueError) -> JSONResponse:
        return _error(400, str(error))

    @app.exception_handler(CheckpointError)
    async def checkpoint_error(_: Request, error: CheckpointError) -> JSONResponse:
        return _error(500, f"could not save the taught model: {error}")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(_describe(problem) for problem in error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def server_fault(_: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error while serving a request")
        return _error(500, f"the server failed on this request ({type(error).__name__}); see its log")


def _add_routes(app: FastAPI, session: ModelSession, limits: Limits, static: Path) -> None:
    """The page and the JSON API over the served model."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html")

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
        """Colorize one uploaded image: the gray input, top-k results, their slots and palettes."""
        name, rgb, alpha = load_upload(image, limits)
        palette = palette.strip() if palette else None
        coloring = session.colorize(rgb, alpha, top_k, palette or None)
        height, width = rgb.shape[1:]
        return {
            "name": name,
            "width": width,
            "height": height,
            "gray": data_url(coloring.gray),
            "results": [data_url(png) for png in coloring.results],
            "slots": coloring.slots,
            "scores": coloring.scores,
            "palettes": coloring.palettes,
        }

    @app.post("/api/remember")
    def remember(
        image: Annotated[UploadFile, File()],
        class_name: Annotated[str | None, Form()] = None,
        replace: Annotated[bool, Form()] = False,
    ) -> dict:
        """Teach the memory one colored reference; save a new checkpoint (or, confirmed, replace it)."""
        name, rgb, alpha = load_upload(image, limits)
        class_name = class_name.strip() if class_name else None
        taught = session.remember(rgb, alpha, name, class_name or None, replace)
        return {
            "name": name,
            "action": taught.action,
            "slot": taught.slot,
            "replaced": taught.replaced,
            **session.info(),
        }


def load_upload(upload: UploadFile, limits: Limits) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    """An uploaded image file -> its display name, rgb (3, H, W) and alpha (H, W) or None, within limits."""
    name = display_name(upload.filename)
    data = read_upload(upload.file, name, limits.max_upload_bytes)
    return (name, *decode_image(data, name, limits.max_pixels))


def _error(status: int, message: str) -> JSONResponse:
    """The one error shape of the API."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _describe(problem: dict) -> str:
    """A pydantic validation problem as 'field: message'."""
    where = ".".join(str(part) for part in problem.get("loc", ()) if part not in ("body", "query"))
    return f"{where}: {problem.get('msg', 'invalid')}" if where else str(problem.get("msg", "invalid"))

"""Uploaded image bytes -> image tensors, under size and pixel caps, with errors that carry an HTTP status.

`BodyCap` holds the byte cap for a whole request body as it streams, announced length or not (chunked).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch

from memopainter.data.images import ImageLoadError, load_image
from memopainter.data.sequences import Animation, is_animated, load_animation
from memopainter.files import write_bytes

MIB = 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 20 * MIB
# A 4000 x 4000 image, or all the frames of an animation together; the JSON answer holds k + 1 of them.
DEFAULT_MAX_PIXELS = 16_000_000
_CHUNK = 1 * MIB
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_Decoded = TypeVar("_Decoded")


class UploadError(ValueError):
    """A refused request: `status` is the HTTP status to answer with, the message says why on one line."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


# Hard-coded, not an option: every frame costs a network pass under the model's lock, however small it is
# (about 11 ms on 2 cores), so this keeps one upload from holding the server past some ten seconds.
MAX_UPLOAD_FRAMES = 1_000


@dataclass(frozen=True)
class Limits:
    """What the server accepts: bytes per uploaded file and pixels per decoded image."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be at least 1, got {self.max_upload_bytes}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")


def display_name(filename: str | None) -> str:
    """A client's file name reduced to a safe label: its last path part, odd characters dropped.

    It is only ever shown and used to name downloads; no server path is built from it.
    """
    last = re.split(r"[\\/]", filename or "")[-1]
    name = _UNSAFE.sub("", last).strip(" .")[:100]
    return name or "image"


def read_upload(stream: BinaryIO, name: str, max_bytes: int) -> bytes:
    """All of an uploaded file's bytes, refused (413) past max_bytes and (400) when empty."""
    data = bytearray()
    while chunk := stream.read(_CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise UploadError(413, f"{name}: file is larger than the server's limit of {_size(max_bytes)}")
    if not data:
        raise UploadError(400, f"{name}: empty file (0 bytes)")
    return bytes(data)


class _BodyTooLarge(Exception):
    """Raised into the app when a request body passes the cap; BodyCap answers 413 in its place."""


class BodyCap:
    """Pure ASGI middleware: refuse (with `refusal`, an ASGI response) request bodies over `max_bytes`.

    A body announced larger by its Content-Length is refused before a byte is read. Any other body (chunked,
    or lying about its length) is counted as it streams: past the cap the app's next read fails, so nothing
    beyond the cap is parsed or spooled to disk, and whatever the app then answers is replaced by `refusal`.
    """

    def __init__(self, app: Any, max_bytes: int, refusal: Any) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refusal = refusal

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self.refusal(scope, receive, send)
            return
        seen = 0
        over = started = False

        async def counted() -> dict:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def unless_over(message: dict) -> None:
            nonlocal started
            # FastAPI turns a failed body read into its own 400; after the cap that answer is dropped.
            if not over:
                started = True
                await send(message)

        try:
            await self.app(scope, counted, unless_over)
        except Exception:
            # Past the cap, whatever the app made of the failed read gives way to the refusal.
            if not over:
                raise
        if over and not started:
            await self.refusal(scope, receive, send)


def decode_image(data: bytes, name: str, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Image bytes -> rgb (3, H, W), alpha (H, W) or None, by the same loader as `memopainter colorize`.

    The format is sniffed from the content, never taken from the name or the Content-Type. Non-images are
    refused with 415, images over max_pixels (decompression bombs) with 413, damaged files with 400.
    """
    return _decode_file(data, name, lambda path: load_image(path, max_pixels=max_pixels))


def decode_upload(
    data: bytes, name: str, max_pixels: int
) -> tuple[torch.Tensor, torch.Tensor | None] | Animation:
    """As decode_image, but an animated GIF, WebP or PNG comes back whole, as an Animation of every frame.

    An animation's pixels are counted over all its frames against max_pixels, as one image's would be.
    """

    def load(path: Path) -> tuple[torch.Tensor, torch.Tensor | None] | Animation:
        if is_animated(path):
            return load_animation(path, max_pixels=max_pixels, max_frames=MAX_UPLOAD_FRAMES)
        return load_image(path, max_pixels=max_pixels)

    return _decode_file(data, name, load)


def _decode_file(data: bytes, name: str, load: Callable[[Path], _Decoded]) -> _Decoded:
    """`load` of the bytes as a file; its ImageLoadError as an UploadError with the fitting status."""
    # The loaders work on files: a private temporary folder gives them one under a name of our own.
    with tempfile.TemporaryDirectory(prefix="memopainter-upload-") as folder:
        path = Path(folder) / "upload"
        write_bytes(path, data)
        try:
            return load(path)
        except ImageLoadError as error:
            raise UploadError(_status(error.problem), f"{name}: {error.problem}") from None


def _status(problem: str) -> int:
    """The HTTP status for a load_image or load_animation problem (an animation's may name a frame first)."""
    problem = re.sub(r"^frame \d+: ", "", problem)
    if problem.startswith(("too many pixels", "too many frames")):
        return 413
    if problem.startswith("not a recognised image"):
        return 415
    return 400


def _size(n: int) -> str:
    """A byte count for people: '20 MiB' or '512 bytes'."""
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n} bytes"

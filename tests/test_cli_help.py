"""Every command's --help: an example to copy, and text printed as written."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from memopainter.cli.main import build_parser


def _commands(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Each command that runs (a parser without sub-commands), with its full name."""
    groups = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        yield name, parser
    for group in groups:
        for sub_name, sub in group.choices.items():
            yield from _commands(sub, f"{name} {sub_name}")


COMMANDS = dict(_commands(build_parser(), "memopainter"))


def test_the_walk_finds_the_nested_commands() -> None:
    nested = {"memopainter train", "memopainter experiment compare", "memopainter weights fetch"}
    assert nested <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_shows_an_example_of_itself(name: str) -> None:
    text = " ".join(COMMANDS[name].format_help().split())  # argparse wraps long lines
    assert "example" in text
    assert name in text[text.index("example") :]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_help_text_shows_an_escaped_percent_sign(name: str) -> None:
    # argparse expands %% only in an argument's help, never in a description or epilog.
    assert "%%" not in COMMANDS[name].format_help()

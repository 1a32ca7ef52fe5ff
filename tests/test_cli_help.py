"""Every command's --help: an example to copy, and text printed as written."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from memopainter.cli.main import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser with its full name: the top level, each command group and each command."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


PARSERS = dict(_parsers(build_parser(), "memopainter"))
# The commands that run: parsers without sub-commands of their own.
COMMANDS = {
    name: parser
    for name, parser in PARSERS.items()
    if not any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)
}


def test_the_walk_finds_the_nested_commands() -> None:
    nested = {"memopainter train", "memopainter experiment compare", "memopainter weights fetch"}
    assert nested <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_shows_an_example_of_itself(name: str) -> None:
    epilog = COMMANDS[name].epilog or ""
    assert epilog.startswith("example") and name in epilog


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_help_page_prints_and_shows_no_escaped_percent_sign(name: str) -> None:
    # argparse %-formats an argument's or a sub-command's help, but not a plain description or epilog: a
    # lone % in the first breaks the page, a %% in the second is printed as it stands.
    assert "%%" not in PARSERS[name].format_help()

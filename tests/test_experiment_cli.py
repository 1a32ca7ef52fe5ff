"""What every `memopainter experiment` sub-command checks before any work: where it is to write."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from conftest import run_experiment

from memopainter.cli import experiment

# Every sub-command, with inputs that need not exist: the refusal comes before anything is read or trained.
COMMANDS = {
    "retrieval": lambda tmp: ["retrieval", str(tmp / "data")],
    "compare": lambda tmp: ["compare", str(tmp / "split"), "--steps", "1"],
    "rare": lambda tmp: ["rare", str(tmp / "data"), "--rare", "dark", "--common", "default", "--steps", "1"],
    "lineart": lambda tmp: ["lineart", str(tmp / "split"), "--steps", "1"],
    "time-to-quality": lambda tmp: ["time-to-quality", str(tmp / "split")],
    "sweep": lambda tmp: [
        "sweep",
        str(tmp / "split"),
        "--steps",
        "1",
        "--memory-sizes",
        "4",
        "--thresholds",
        "1",
    ],
    "sequence": lambda tmp: ["sequence", str(tmp / "run"), str(tmp / "test")],
    "upsample": lambda tmp: ["upsample", str(tmp / "run"), str(tmp / "test")],
    "diagnose": lambda tmp: ["diagnose", str(tmp / "run"), str(tmp / "train"), str(tmp / "test")],
    "descriptors": lambda tmp: ["descriptors", str(tmp / "run"), str(tmp / "split")],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_out_that_is_a_file_is_refused_in_one_line_and_left_alone(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.md"
    out.write_text("a user's notes", encoding="utf-8")
    assert run_experiment(["experiment", *COMMANDS[name](tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {out}: exists and is not a folder\n"
    assert out.read_text(encoding="utf-8") == "a user's notes"


def test_every_sub_command_is_checked_above() -> None:
    parser = argparse.ArgumentParser(prog="memopainter")
    experiment.register(parser.add_subparsers(dest="command"))
    experiments = parser._subparsers._group_actions[0].choices["experiment"]._subparsers._group_actions[0]
    assert set(experiments.choices) == set(COMMANDS)

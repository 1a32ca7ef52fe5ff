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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["compare", "SPLIT", "--steps", "1", "--methods", "cic", "cic"],
            "--methods lists cic more than once",
        ),
        (
            ["compare", "SPLIT", "--steps", "1", "--methods", "cic", "--paired-against", "res-cgan"],
            "--paired-against res-cgan: not one of --methods cic",
        ),
        (
            ["compare", "SPLIT", "--steps", "1", "--set", "train.steps=3"],
            "--set train.steps: use --steps, which the report shows",
        ),
        (["lineart", "SPLIT", "--steps", "1", "--set", "data.image_size=32"], "--set data.image_size: use"),
        (
            ["time-to-quality", "SPLIT", "--set", "train.steps=3"],
            "--set train.steps: use --milestones, which the report shows",
        ),
        (["retrieval", "DATA", "--ways", "1"], "--ways must be at least 2"),
        (["retrieval", "DATA", "--threshold", "inf"], "--threshold must be a number > 0, got inf"),
    ],
)
def test_contradictory_or_ignored_options_are_refused_before_any_work(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named = [str(tmp_path / a.lower()) if a in ("SPLIT", "DATA") else a for a in args]
    assert run_experiment(["experiment", *named, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_time_to_quality_has_no_top_k_it_would_ignore(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_experiment(["experiment", *COMMANDS["time-to-quality"](tmp_path), "--top-k", "5", "--out", "x"])

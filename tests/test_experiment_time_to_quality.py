"""Time to quality: each method trained milestone by milestone, scored after each, timed by its own steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_NETWORKS, run_experiment, write_split
from safetensors.torch import load_file

from memopainter.experiments.time_to_quality import Point, reaches


def test_each_milestone_is_scored_and_the_chunks_equal_one_run(tmp_path: Path, cache_dir: Path) -> None:
    split = write_split(tmp_path / "split", ["knight", "slime"])
    args = ["experiment", "time-to-quality", str(split), "--out", str(tmp_path / "out")]
    args += ["--milestones", "3", "1", "--methods", "memopainter-bins", "paper"]
    args += ["--image-size", "32", "--batch-size", "2"]
    for setting in TINY_NETWORKS:
        args += ["--set", setting]
    assert run_experiment(args) == 0
    report = json.loads((tmp_path / "out" / "time_to_quality.json").read_text(encoding="utf-8"))
    points = report["points"]
    assert [(p["method"], p["steps"]) for p in points] == [
        ("memopainter-bins", 1),
        ("memopainter-bins", 3),
        ("paper", 1),
        ("paper", 3),
    ]
    assert all(p["minutes"] > 0 for p in points)
    assert points[1]["minutes"] > points[0]["minutes"]  # minutes add up over the chunks
    assert [(r["method"], r["reference"]) for r in report["reached"]] == [("memopainter-bins", "paper")]
    assert (tmp_path / "out" / "time_to_quality.png").stat().st_size > 0
    assert "| 3 |" in (tmp_path / "out" / "time_to_quality.md").read_text(encoding="utf-8")

    # The chunked run (1 step, then resumed to 3) ends with exactly the weights of one 3-step run.
    single = ["experiment", "time-to-quality", str(split), "--out", str(tmp_path / "single")]
    single += [
        "--milestones",
        "3",
        "--methods",
        "paper",
        "--image-size",
        "32",
        "--batch-size",
        "2",
    ]
    for setting in TINY_NETWORKS:
        single += ["--set", setting]
    assert run_experiment(single) == 0
    chunked = load_file(tmp_path / "out" / "runs" / "paper" / "model.safetensors")
    whole = load_file(tmp_path / "single" / "runs" / "paper" / "model.safetensors")
    assert chunked.keys() == whole.keys()
    for name, tensor in whole.items():
        assert bool((chunked[name] == tensor).all()), name


@pytest.mark.parametrize(
    ("other", "expected"),
    [([12.0, 10.5, 9.0], (2, 2.0)), ([12.0, 11.5, 11.0], (None, None))],
)
def test_reaches_finds_the_first_milestone_at_the_reference_quality(other, expected) -> None:
    points = [Point("memopainter-dist", 800, 3.0, 10.5, 30.0)]
    points += [Point("memopainter-bins", s, float(s), d, 40.0) for s, d in zip([1, 2, 3], other, strict=True)]
    found = reaches(points, "memopainter-bins", "memopainter-dist", 800)
    assert (found["steps"], found["minutes"]) == expected
    assert found["reference_minutes"] == 3.0
    assert reaches(points, "memopainter-bins", "memopainter-dist", 400) is None

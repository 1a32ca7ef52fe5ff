"""`memopainter experiment diagnose`: per-class top-1 retrieval and the kind of every miss."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import run_experiment, write_split

from memopainter.config import RunConfig
from memopainter.training.loop import train


def test_every_test_frame_is_a_hit_or_one_kind_of_miss(
    tmp_path: Path, tiny_settings, cache_dir, capsys
) -> None:
    split = write_split(tmp_path / "split", ["knight", "slime", "wizard"], train=2, test=3)
    config = RunConfig().override(list(tiny_settings))
    run = train(config, split / "train", tmp_path / "run", on_event=lambda _: None)
    out = tmp_path / "out"
    argv = ["experiment", "diagnose", str(run), str(split / "train"), str(split / "test"), "--out", str(out)]
    assert run_experiment(argv) == 0
    classes = json.loads((out / "diagnosis.json").read_text())["classes"]
    assert sorted(c["name"] for c in classes) == ["knight", "slime", "wizard"]
    for c in classes:
        assert c["frames"] == 3
        assert c["hits"] + sum(c["misses"].values()) == 3
        assert set(c["misses"]) <= {"rank 2-3", "same gray", "other"}
        assert sum(c["confused_with"].values()) == 3 - c["hits"]
    assert "| class | frames | top-1 |" in (out / "diagnosis.md").read_text()

    ghost = split / "test" / "ghost"
    ghost.mkdir()
    shutil.copy(next((split / "test" / "knight").iterdir()), ghost / "boo.png")
    assert run_experiment([*argv[:-1], str(tmp_path / "again")]) == 0
    assert "left out 1 test frames of classes the model was not trained on" in capsys.readouterr().err
    only_ghosts = tmp_path / "ghosts"
    shutil.copytree(ghost, only_ghosts / "ghost")
    argv = ["experiment", "diagnose", str(run), str(split / "train"), str(only_ghosts), "--out", str(out)]
    assert run_experiment(argv) == 1
    assert "none of its test frames is of a class the model was trained on" in capsys.readouterr().err


def test_a_model_without_classes_is_refused_in_one_line(
    tmp_path: Path, tiny_settings, cache_dir, capsys
) -> None:
    split = write_split(tmp_path / "split", ["knight", "slime"])
    config = RunConfig().override([*tiny_settings, "memory.enabled=false"])
    run = train(config, split / "train", tmp_path / "run", on_event=lambda _: None)
    argv = [
        "experiment",
        "diagnose",
        str(run),
        str(split / "train"),
        str(split / "test"),
        "--out",
        str(tmp_path),
    ]
    assert run_experiment(argv) == 1
    assert "needs a model with a memory" in capsys.readouterr().err

"""The descriptor experiment: each set's memory replayed on one generator, over seeds, in one table."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TINY_NETWORKS, run_experiment, write_split

from memopainter.config import RunConfig
from memopainter.evaluation.evaluate import evaluate
from memopainter.inference import Colorizer
from memopainter.training.loop import train


def test_every_set_and_seed_is_scored_and_the_model_s_own_is_reproduced(
    tmp_path: Path, cache_dir: Path
) -> None:
    split = write_split(tmp_path / "split", ["knight", "slime", "wizard"])
    settings = [*TINY_NETWORKS, "data.image_size=32", "train.batch_size=4", "train.steps=4"]
    config = RunConfig().override([*settings, "memory.descriptors=pooled", "train.seed=1"])
    run = train(config, split / "train", tmp_path / "run", on_event=lambda _: None)
    out = tmp_path / "out"
    argv = ["experiment", "descriptors", str(run), str(split), "--out", str(out)]
    sets = ["--sets", "pooled", "pooled+lightness", "--seeds", "0", "1", "--lightness-bins", "16", "32"]
    assert run_experiment([*argv, *sets]) == 0
    trials = json.loads((out / "descriptors.json").read_text(encoding="utf-8"))["trials"]
    assert [(t["descriptors"], t["seed"]) for t in trials] == [
        ("pooled", 0),
        ("pooled", 1),
        ("pooled+lightness (16 bins)", 0),
        ("pooled+lightness (16 bins)", 1),
        ("pooled+lightness (32 bins)", 0),
        ("pooled+lightness (32 bins)", 1),
    ]
    # The replay with the model's own settings is the model's own memory: the same per-image scores.
    own = evaluate(Colorizer.from_pretrained(run), split / "test", 3)
    assert trials[1]["per_image"] == [s.metrics.delta_e2000 for s in own.per_image]
    table = (out / "descriptors.md").read_text(encoding="utf-8")
    for row in ("| pooled+lightness (16 bins) |", "| pooled+lightness (32 bins) |"):
        assert row in table and "[" in table.split(row)[1].splitlines()[0]

"""The memory sweep (paper Fig. 9): one generator, a replayed memory per (size, threshold), and its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_NETWORKS, run_experiment, write_split

from memopainter.config import ConfigError, RunConfig
from memopainter.core.checkpoint import load_checkpoint
from memopainter.data.dataset import load_training_data
from memopainter.experiments.methods import SharedSettings
from memopainter.experiments.sweep import replay_memory, sweep_experiment
from memopainter.networks.backbones import load_backbone
from memopainter.training.loop import train


def tiny_config(*extra: str) -> RunConfig:
    return RunConfig().override(
        [*TINY_NETWORKS, "data.image_size=32", "train.batch_size=4", "train.steps=5", *extra]
    )


def test_the_generator_does_not_depend_on_the_memory_settings(tmp_path: Path, cache_dir: Path) -> None:
    # The premise of the sweep: G and D train on ground-truth features, whatever the memory does.
    split = write_split(tmp_path / "split", ["knight", "slime", "wizard"])
    runs = []
    for i, settings in enumerate([("memory.size=3", "memory.threshold=0.2"), ("memory.size=9",)]):
        path = train(tiny_config(*settings), split / "train", tmp_path / f"run{i}", on_event=lambda _: None)
        runs.append(load_checkpoint(path)[0])
    networks = [k for k in runs[0] if k.startswith(("generator.", "discriminator."))]
    assert networks and all(torch.equal(runs[0][k], runs[1][k]) for k in networks)
    memories = [k for k in runs[0] if k.startswith("memory.keys")]
    assert not all(torch.equal(runs[0][k], runs[1][k]) for k in memories)  # the memories do differ


def test_a_replayed_memory_is_bitwise_the_memory_of_a_full_run(tmp_path: Path, cache_dir: Path) -> None:
    split = write_split(tmp_path / "split", ["knight", "slime", "wizard"])
    config = tiny_config("memory.size=4", "memory.threshold=0.5")
    tensors, _ = load_checkpoint(train(config, split / "train", tmp_path / "run", on_event=lambda _: None))
    backbone = load_backbone("tiny")
    data = load_training_data(split / "train", 32, "dist", backbone, progress=lambda _: None)
    head, memory = replay_memory(config, data, backbone.feature_dim)
    replayed = {f"query_head.{k}": v for k, v in head.state_dict().items()}
    replayed |= {f"memory.{k}": v for k, v in memory.state_dict().items()}
    for key, value in replayed.items():
        assert torch.equal(tensors[key], value), key


def test_a_sweep_trains_once_and_scores_every_cell(tmp_path: Path, cache_dir: Path) -> None:
    split = write_split(tmp_path / "split", ["knight", "slime", "wizard"])
    out = tmp_path / "out"
    argv = ["experiment", "sweep", str(split), "--out", str(out), "--steps", "3", "--image-size", "32"]
    argv += ["--batch-size", "4", "--top-k", "2", "--memory-sizes", "1", "8", "--thresholds", "0.3", "3"]
    for setting in TINY_NETWORKS:
        argv += ["--set", setting]
    assert run_experiment(argv) == 0
    report = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    cells = {(c["size"], c["threshold"]): c for c in report["cells"]}
    assert set(cells) == {(1, 0.3), (1, 3.0), (8, 0.3), (8, 3.0)}
    for (size, _), cell in cells.items():
        assert 1 <= cell["slots_filled"] <= size
        assert cell["delta_e2000_best_of_k"] <= cell["delta_e2000"] + 1e-9
        assert 0.0 <= cell["retrieval_top1_accuracy"] <= 1.0
    # a one-slot memory offers no alternative: its best of k is its top-1
    assert cells[(1, 0.3)]["delta_e2000"] == pytest.approx(cells[(1, 0.3)]["delta_e2000_best_of_k"])
    assert report["train_images"] == 6 and report["default_size"] == 8
    assert [p.name for p in (out / "runs").iterdir()] == ["memopainter-dist"]  # trained once
    table = (out / "sweep.md").read_text(encoding="utf-8")
    assert "| 1 |" in table and "| 8 |" in table and "threshold 0.3" in table
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_removed_option_is_refused_before_any_training(tmp_path: Path, cache_dir: Path) -> None:
    # train.retrieved_condition conditioned G on the memory, which the sweep could not replay; it is gone.
    split = write_split(tmp_path / "split", ["knight"])
    shared = SharedSettings(
        steps=1, image_size=32, batch_size=4, overrides=(*TINY_NETWORKS, "train.retrieved_condition=0.5")
    )
    with pytest.raises(ConfigError, match="unknown key 'train.retrieved_condition'"):
        sweep_experiment(split, tmp_path / "out", shared, [2], [1.0])
    assert not (tmp_path / "out").exists()


def test_thresholds_must_be_positive(tmp_path: Path) -> None:
    argv = ["experiment", "sweep", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "1"]
    with pytest.raises(SystemExit):
        run_experiment([*argv, "--memory-sizes", "4", "--thresholds", "0"])

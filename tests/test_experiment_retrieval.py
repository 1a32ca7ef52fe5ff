"""The retrieval experiment (paper Table 2): episodes, training of the memory, the interval and the report."""

from __future__ import annotations

import argparse
import json
import random
import shlex
from pathlib import Path

import pytest
import torch
from conftest import SPRITE_CLASSES, draw_sprite

from memopainter.cli import experiment
from memopainter.experiments import (
    EpisodeError,
    RetrievalSettings,
    draw_episode,
    eligible_classes,
    retrieval_experiment,
    run_episode,
    t_interval,
)
from memopainter.experiments.retrieval import Cell
from memopainter.experiments.statistics import t_quantile_975

FEATURE_DIM = 32


def separable_data(classes: int, per_class: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Backbone-like features around one random centre per class, and one distinct color per class.

    Returns query_features (N, FEATURE_DIM), color (N, 313) ab distributions and labels (N,).
    """
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, FEATURE_DIM, generator=generator) * 3
    labels = torch.arange(classes).repeat_interleave(per_class)  # (N,)
    features = centres[labels] + 0.1 * torch.randn(len(labels), FEATURE_DIM, generator=generator)
    color = torch.full((classes, 313), 1e-4)
    for c in range(classes):
        color[c, 20 * c : 20 * c + 5] = 1.0  # five bins of its own per class: far apart in symmetric KL
    color = color / color.sum(1, keepdim=True)
    return features, color[labels], labels


def write_class_sprites(root: Path, per_class: int, classes: list[str]) -> None:
    """per_class sprites of each class, its colors and shape at varied sizes."""
    for name in classes:
        body, detail, shape, _ = SPRITE_CLASSES[name]
        for i in range(per_class):
            size = (24 + 6 * i, 40 - 3 * i)
            path = root / name / f"{name}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_sprite(size, body, detail, shape).save(path)


def run_cli(argv: list[str]) -> int:
    """Parse and run `memopainter experiment ...` through this module's register()."""
    parser = argparse.ArgumentParser(prog="memopainter")
    experiment.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def test_t_interval_of_two_values_uses_t_with_one_degree_of_freedom():
    mean, low, high = t_interval([0.5, 0.7])
    # sd = 0.1414, t(0.975, 1) = 12.7062: half-width 12.7062 * 0.1414 / sqrt(2) = 1.27062
    assert mean == pytest.approx(0.6)
    assert low == pytest.approx(0.6 - 1.27062, abs=1e-4)
    assert high == pytest.approx(0.6 + 1.27062, abs=1e-4)


def test_t_interval_of_one_value_has_no_bounds():
    assert t_interval([0.8]) == (0.8, None, None)


def test_eligible_classes_need_shots_plus_one_images():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, -1, -1, -1])
    assert eligible_classes(labels, 2) == [0, 2]
    assert eligible_classes(labels, 3) == [2]


def test_episode_has_k_shots_per_class_and_the_rest_held_out():
    labels = torch.arange(6).repeat_interleave(5)  # 6 classes of 5 images
    episode = draw_episode(labels, ways=3, shots=2, rng=random.Random(7))
    assert len(episode.classes) == 3
    assert len(episode.train) == 6 and len(episode.test) == 9
    assert not set(episode.train) & set(episode.test)
    for rows, episode_labels in ((episode.train, episode.train_labels), (episode.test, episode.test_labels)):
        assert [episode.classes[e] for e in episode_labels] == labels[rows].tolist()


def test_episodes_are_deterministic_for_a_seed():
    labels = torch.arange(6).repeat_interleave(5)
    first = draw_episode(labels, 3, 2, random.Random("0/3/2/0"), test_per_class=1)
    again = draw_episode(labels, 3, 2, random.Random("0/3/2/0"), test_per_class=1)
    other = [draw_episode(labels, 3, 2, random.Random(f"0/3/2/{e}"), test_per_class=1) for e in range(1, 5)]
    assert first == again
    assert len(first.test) == 3
    assert any(o != first for o in other)


def test_supervised_memory_retrieves_the_class_of_separable_data():
    features, color, labels = separable_data(classes=4, per_class=6)
    episode = draw_episode(labels, 4, 3, random.Random(0))
    settings = RetrievalSettings(epochs=2, key_dim=16)
    assert run_episode(features, color, episode, True, settings, seed=0) == 1.0


def test_unsupervised_memory_retrieves_the_class_when_colors_follow_classes():
    features, color, labels = separable_data(classes=4, per_class=6)
    episode = draw_episode(labels, 4, 3, random.Random(0))
    settings = RetrievalSettings(epochs=2, key_dim=16)
    assert run_episode(features, color, episode, False, settings, seed=0) == 1.0


def test_experiment_gives_accuracies_in_unit_range_and_is_reproducible():
    features, color, labels = separable_data(classes=5, per_class=4)
    features = features + 3 * torch.randn(features.shape, generator=torch.Generator().manual_seed(1))
    settings = RetrievalSettings(epochs=1, key_dim=16)
    names = [f"c{i}" for i in range(5)]
    result = retrieval_experiment(
        features, color, labels, names, [2, 5], [1, 3], 3, seed=4, settings=settings
    )
    again = retrieval_experiment(features, color, labels, names, [2, 5], [1, 3], 3, seed=4, settings=settings)
    assert [(c.ways, c.shots, c.mode) for c in result.cells][:2] == [
        (2, 1, "unsupervised"),
        (2, 1, "supervised"),
    ]
    assert len(result.cells) == 8
    assert all(len(c.accuracies) == 3 and all(0 <= a <= 1 for a in c.accuracies) for c in result.cells)
    assert [c.accuracies for c in result.cells] == [c.accuracies for c in again.cells]
    assert result.eligible == {1: 5, 3: 5}


def test_experiment_refuses_when_too_few_classes_have_k_plus_one_images():
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 3)
    features, color = torch.randn(15, FEATURE_DIM), torch.full((15, 313), 1 / 313)
    with pytest.raises(
        EpisodeError, match=r"only 2 classes have at least --shots 5 \+ 1 = 6 images.*--ways 3"
    ):
        retrieval_experiment(features, color, labels, ["a", "b", "c"], [3], [5], 1)


def test_cli_writes_table_json_and_plot(tmp_path, cache_dir, one_thread):
    write_class_sprites(tmp_path / "data", 4, ["knight", "slime", "wizard"])
    out = tmp_path / "out"
    argv = ["experiment", "retrieval", str(tmp_path / "data"), "--ways", "2", "3", "--shots", "2"]
    argv += ["--episodes", "2", "--epochs", "1", "--backbone", "tiny", "--out", str(out)]
    assert run_cli(argv) == 0
    body = json.loads((out / "retrieval.json").read_text())
    assert body["command"] == shlex.join(["memopainter", *argv])  # as typed: pasting it reruns the same
    assert body["num_images"] == 12 and body["episodes"] == 2
    assert [(c["ways"], c["mode"]) for c in body["cells"]] == [
        (2, "unsupervised"),
        (2, "supervised"),
        (3, "unsupervised"),
        (3, "supervised"),
    ]
    assert all(0 <= c["mean"] <= 1 and c["ci_low"] <= c["mean"] <= c["ci_high"] for c in body["cells"])
    table = (out / "retrieval.md").read_text()
    assert "| | 2-way 2-shot | 3-way 2-shot |" in table
    assert "| Paper (supervised) | n/a | n/a |" in table
    assert (out / "retrieval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_recorded_command_is_what_was_typed_quoted_for_a_shell():
    parser = argparse.ArgumentParser(prog="memopainter")
    experiment.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["experiment", "retrieval", "my data", "--out=res", "--ways", "5"])
    assert args.command_line == "memopainter experiment retrieval 'my data' --out=res --ways 5"


def test_cli_refuses_shots_without_a_held_out_image(tmp_path, cache_dir, one_thread, capsys):
    write_class_sprites(tmp_path / "data", 3, ["knight", "slime"])
    argv = ["experiment", "retrieval", str(tmp_path / "data"), "--ways", "2", "--shots", "3"]
    argv += ["--backbone", "tiny", "--out", str(tmp_path / "out")]
    assert run_cli(argv) == 2
    error = capsys.readouterr().err
    assert "only 0 classes have at least --shots 3 + 1 = 4 images" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("df", [1, 2, 5, 19, 30, 35, 50, 80, 200, 10_000])
def test_t_quantile_table_matches_scipy(df):
    stats = pytest.importorskip("scipy.stats")
    assert t_quantile_975(df) == pytest.approx(float(stats.t.ppf(0.975, df)), abs=2e-3)


def test_an_interval_of_accuracies_stays_within_0_and_1() -> None:
    summary = Cell(5, 5, "supervised", [1.0, 1.0, 0.8]).summary()
    assert summary["ci_high"] == 1.0 and 0.0 <= summary["ci_low"] < summary["mean"]
    low, high = t_interval([1.0, 1.0, 0.8])[1:]
    assert high > 1.0 and summary["ci_low"] == pytest.approx(low)  # only the bound past 1 is clipped

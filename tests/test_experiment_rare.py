"""The rare-variant experiment: a color variant seen a few times in training, scored against the common."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_NETWORKS, draw_sprite, run_experiment

from memopainter.experiments.rare import make_rare_split

SHAPES = ["ellipse", "rectangle", "triangle"]
VARIANTS = {"yellow": ((240, 200, 40), (60, 40, 20)), "dark": ((90, 55, 30), (20, 20, 20))}


def write_variants(root: Path, items: int = 8) -> Path:
    """root/<variant>/item_<i>.png: the same item (shape and size) in each variant's own colors."""
    for variant, (body, detail) in VARIANTS.items():
        for i in range(items):
            path = root / variant / f"item_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_sprite((24 + 4 * i, 40 - 2 * i), body, detail, SHAPES[i % 3]).save(path)
    return root


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_the_split_trains_on_the_common_variant_and_a_few_rare_items(tmp_path: Path) -> None:
    data = write_variants(tmp_path / "data")
    split = make_rare_split(data, tmp_path / "split", "dark", "yellow", rare_shots=2, test_share=0.5, seed=0)
    train_common = names(tmp_path / "split" / "train" / "yellow")
    train_rare = names(tmp_path / "split" / "train" / "dark")
    assert train_common == split.train_items and len(train_common) == 4
    assert (
        train_rare == split.rare_train_items and len(train_rare) == 2 and set(train_rare) <= set(train_common)
    )
    for subset, variant in (("rare", "dark"), ("common", "yellow")):
        tested = names(split.test_dir(subset) / variant)
        assert tested == split.test_items and not set(tested) & set(train_common)
    again = make_rare_split(data, tmp_path / "again", "dark", "yellow", rare_shots=2, test_share=0.5, seed=0)
    assert again.test_items == split.test_items and again.rare_train_items == split.rare_train_items
    other = make_rare_split(data, tmp_path / "other", "dark", "yellow", rare_shots=2, test_share=0.5, seed=1)
    assert (other.test_items, other.rare_train_items) != (split.test_items, split.rare_train_items)


def test_a_missing_variant_folder_is_named_with_the_folders_there_are(tmp_path: Path) -> None:
    data = write_variants(tmp_path / "data")
    with pytest.raises(ValueError, match=r"no variant folder 'purple' \(folders: dark, yellow\)"):
        make_rare_split(data, tmp_path / "split", "purple", "yellow", 2, 0.5, 0)


def test_too_few_items_for_the_rare_shots_are_refused(tmp_path: Path) -> None:
    data = write_variants(tmp_path / "data", items=4)
    with pytest.raises(ValueError, match="4 items are in both 'dark' and 'yellow'"):
        make_rare_split(data, tmp_path / "split", "dark", "yellow", rare_shots=3, test_share=0.5, seed=0)
    assert not (tmp_path / "split").exists()


def test_the_experiment_scores_every_method_on_both_variants(tmp_path: Path, cache_dir: Path) -> None:
    data = write_variants(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["experiment", "rare", str(data), "--out", str(out), "--steps", "2", "--rare", "dark"]
    argv += ["--common", "yellow", "--rare-shots", "2", "--image-size", "32", "--batch-size", "4"]
    argv += ["--top-k", "2"]
    for setting in TINY_NETWORKS:
        argv += ["--set", setting]
    assert run_experiment(argv) == 0
    report = json.loads((out / "rare.json").read_text(encoding="utf-8"))
    assert report["rare"] == "dark" and report["train_items"] == 4 and len(report["rare_train_items"]) == 2
    assert list(report["methods"]) == ["memopainter-dist", "res-cgan"]
    for name, method in report["methods"].items():
        for subset in ("rare", "common"):
            assert method[subset]["images"] == 4 and method[subset]["delta_e2000"] >= 0
            assert (method[subset]["retrieval_top1_accuracy"] is None) == (name == "res-cgan")
    # One pair, memory minus no memory, per subset: its mean is the difference of the two methods' means.
    [pair] = report["paired"]
    assert (pair["method"], pair["against"]) == ("memopainter-dist", "res-cgan")
    for subset in ("rare", "common"):
        means = [report["methods"][m][subset]["delta_e2000"] for m in ("memopainter-dist", "res-cgan")]
        assert pair[subset]["mean"] == pytest.approx(means[0] - means[1], abs=1e-6)
        assert pair[subset]["low"] <= pair[subset]["mean"] <= pair[subset]["high"]
    table = (out / "rare.md").read_text(encoding="utf-8")
    assert "| MemoPainter (dist) |" in table and "| Res-cGAN (no memory) |" in table
    assert "| MemoPainter (dist) | Res-cGAN (no memory) | " in table  # the paired row
    for name in ("rare.png", "rare_grid.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_test_share_of_one_leaves_nothing_to_train_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["experiment", "rare", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "1"]
    assert run_experiment([*argv, "--rare", "a", "--common", "b", "--test-share", "1"]) == 2
    assert "--test-share must be below 1" in capsys.readouterr().err

"""`memopainter experiment upsample`: each upsampler against bilinear, paired, at native size and upscaled."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_experiment, write_split

from memopainter.config import RunConfig
from memopainter.training.loop import train


def trained_split(tmp_path: Path, tiny_settings) -> tuple[Path, Path]:
    """A tiny split of three classes and a model trained on it."""
    split = write_split(tmp_path / "split", ["knight", "slime", "wizard"])
    config = RunConfig().override(list(tiny_settings))
    return split, train(config, split / "train", tmp_path / "run", on_event=lambda _: None)


def test_every_upsampler_is_scored_against_bilinear_at_every_scale(
    tmp_path: Path, tiny_settings, cache_dir
) -> None:
    split, run = trained_split(tmp_path, tiny_settings)
    out = tmp_path / "out"
    argv = ["experiment", "upsample", str(run), str(split / "test"), "--upscale", "1", "3", "--out", str(out)]
    assert run_experiment(argv) == 0
    body = json.loads((out / "upsampling.json").read_text())
    rows = {(r["upscale"], r["upsample"]): r for r in body["rows"]}
    assert set(rows) == {(s, m) for s in (1, 3) for m in ("bilinear", "guided", "region")}
    for scale in (1, 3):
        base, guided = rows[(scale, "bilinear")], rows[(scale, "guided")]
        assert base["difference"] is None and base["images"] == guided["images"] == 6
        assert abs(guided["difference"] - (guided["delta_e2000"] - base["delta_e2000"])) < 1e-9  # paired mean
        assert guided["low"] <= guided["difference"] <= guided["high"]
        assert 0 < guided["floor"] < base["delta_e2000"]
        assert guided["colorfulness"] > 0 and guided["floor_colorfulness"] > 0
    # Nearest-neighbour upscaling repeats every pixel alike: the truth's colorfulness does not move.
    truth = {r["truth_colorfulness"] for r in body["rows"]}
    assert max(truth) - min(truth) < 1e-6, truth
    assert body["command"].startswith("memopainter experiment upsample ")
    assert "| x3 | guided |" in (out / "upsampling.md").read_text()
    assert (out / "upsampling_grid.png").is_file()


def test_one_test_image_gives_differences_without_an_interval(
    tmp_path: Path, tiny_settings, cache_dir, capsys
) -> None:
    split, run = trained_split(tmp_path, tiny_settings)
    for extra in sorted((split / "test").rglob("*.png"))[1:]:
        extra.unlink()
    broken = split / "test" / "knight" / "zz_broken.png"
    broken.write_bytes(b"not a png")  # skipped and said, as evaluate does, not the end of the run
    out = tmp_path / "out"
    assert run_experiment(["experiment", "upsample", str(run), str(split / "test"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{broken}: skipped" in captured.out + captured.err
    guided = next(
        r for r in json.loads((out / "upsampling.json").read_text())["rows"] if r["upsample"] == "guided"
    )
    assert guided["images"] == 1 and guided["low"] is None
    assert (
        f"| x1 | guided | {guided['delta_e2000']:.3f} | {guided['difference']:+.3f} |"
        in (out / "upsampling.md").read_text()
    )

"""`memopainter experiment sequence`: the test animations as one stream, frame by frame against smoothed
slots, without and with the hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SPRITE_CLASSES, draw_sprite, run_experiment, train_tiny
from PIL import Image

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")


def write_animations(root: Path) -> Path:
    """knight/knight_walk1..5 and slime/slime_hop1..3 (animations) and wizard/wizard.png (a single image)."""
    for name, stem, frames in (("knight", "knight_walk", 5), ("slime", "slime_hop", 3)):
        body, detail, shape, _ = SPRITE_CLASSES[name]
        for i in range(1, frames + 1):
            path = root / name / f"{stem}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            stripe = (detail[0], (detail[1] + 40 * i) % 256, detail[2])  # the stripe changes, the body stays
            draw_sprite((36, 40), body, stripe, shape).save(path)
    body, detail, shape, _ = SPRITE_CLASSES["wizard"]
    (root / "wizard").mkdir()
    draw_sprite((36, 36), body, detail, shape).save(root / "wizard" / "wizard.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Path:
    return train_tiny(tmp_path_factory.mktemp("sequence"), list(tiny_settings))


def test_the_experiment_writes_its_table_json_plot_and_gif(tmp_path: Path, run: Path) -> None:
    test_dir = write_animations(tmp_path / "test")
    out = tmp_path / "out"
    assert run_experiment(["experiment", "sequence", str(run), str(test_dir), "--out", str(out)]) == 0
    body = json.loads((out / "sequence.json").read_text())
    before, no_hold, after = body["rows"]
    assert [r["method"] for r in body["rows"]] == ["frame by frame", "smoothed, no hold", "smoothed"]
    for row in body["rows"]:
        assert row["frames"] == 8  # the single image is no animation
        assert row["flicker_steps"] == 6  # 4 + 2 steps inside the animations
    assert 0.0 <= after["same_class_top1"] <= 1.0
    assert no_hold["switches_per_100"] == after["switches_per_100"]  # the hold leaves the slots alone
    differences = {(d["method"], d["metric"]): d for d in body["differences"]}
    assert set(differences) == {
        (method, metric)
        for method in ("smoothed, no hold", "smoothed")
        for metric in ("delta_e2000", "flicker", "unheld_flicker")
    }
    delta = differences["smoothed", "delta_e2000"]
    assert delta["pairs"] == 8
    assert delta["mean"] == pytest.approx(after["delta_e2000"] - before["delta_e2000"])
    assert differences["smoothed", "flicker"]["pairs"] == 6
    # The stripe changes from frame to frame and the body does not: unheld pixels are the stripe's, if any.
    assert differences["smoothed", "unheld_flicker"]["pairs"] == after["unheld_steps"] <= 6
    overlap = body["overlap"]
    assert overlap["flicker_steps"] == 6 and overlap["unheld_pixels"] <= overlap["still_pixels"]
    assert overlap["hold_tolerance"] == body["hold_tolerance"] == 0.5
    assert set(body["targets"]) == {"flicker_reduction", "flicker_met", "delta_e2000_rise", "delta_e2000_met"}
    assert body["targets"]["delta_e2000_rise"] == pytest.approx(delta["mean"])
    assert body["cuts"]["animation_boundaries"] == 1 and body["cuts"]["inner_steps"] == 6
    assert [s["name"] for s in body["per_sequence"]] == ["knight/knight_walk1", "slime/slime_hop1"]
    assert {"flicker_smoothed_no_hold", "unheld_flicker_smoothed", "switches_frame_by_frame"} <= set(
        body["per_sequence"][0]
    )
    assert body["command"].startswith("memopainter experiment sequence ")
    table = (out / "sequence.md").read_text()
    assert "| frame by frame |" in table and "| smoothed, no hold |" in table and "| smoothed |" in table
    assert "target flicker" in table and "unheld flicker" in table
    assert (out / "sequence.png").read_bytes().startswith(b"\x89PNG")
    with Image.open(out / "sequence.gif") as gif:
        assert gif.n_frames == 5  # the longest animation; the shorter one loops
        assert gif.size == (5 * 96, 16 + 2 * 96)  # gray | frame by frame | no hold | smoothed | truth


def test_a_folder_without_animations_is_an_error(tmp_path: Path, run: Path, capsys) -> None:
    test_dir = write_animations(tmp_path / "test")
    for path in test_dir.rglob("*_*.png"):
        path.rename(path.with_name(f"{path.stem.rstrip('0123456789')}.png"))  # no frame numbers left
    out = tmp_path / "out"
    assert run_experiment(["experiment", "sequence", str(run), str(test_dir), "--out", str(out)]) == 1
    assert "no animations" in capsys.readouterr().err
    assert not out.exists()

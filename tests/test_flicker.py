"""Flicker of colorized sequences (evaluation.flicker) and `memopainter evaluate --sequences`."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
import torch
from conftest import draw_sprite, run_cli, train_tiny

from memopainter.cli import evaluate as evaluate_cli
from memopainter.color import ciede2000, rgb_to_lab
from memopainter.evaluation.flicker import (
    STILL_TOLERANCE,
    flicker,
    mean_defined,
    pair_flicker,
    slot_switches,
    still_pixels,
    switches_per_100,
)

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")

RED, BLUE, GREEN, GRAY = (0.8, 0.1, 0.1), (0.1, 0.2, 0.9), (0.1, 0.7, 0.2), (0.5, 0.5, 0.5)


def halves(left: tuple, right: tuple, size: int = 8) -> torch.Tensor:
    """A (3, size, size) image: one color on the left half, another on the right."""
    image = torch.empty(3, size, size)
    image[:, :, : size // 2] = torch.tensor(left)[:, None, None]
    image[:, :, size // 2 :] = torch.tensor(right)[:, None, None]
    return image


def color_difference(a: tuple, b: tuple) -> float:
    lab = rgb_to_lab(torch.tensor([a, b], dtype=torch.float64).T[:, :, None])  # (3, 2, 1)
    return float(ciede2000(lab[:, 0, 0], lab[:, 1, 0]))


# The truth keeps its left half red and changes its right half from blue to green.
TRUTHS = [halves(RED, BLUE), halves(RED, GREEN)]


def test_identical_outputs_do_not_flicker() -> None:
    outputs = [halves(GRAY, GRAY), halves(GRAY, GRAY)]
    assert pair_flicker(outputs, TRUTHS, [None, None]) == [0.0]


def test_a_color_change_where_the_truth_is_still_is_flicker() -> None:
    outputs = [halves(RED, GRAY), halves(GREEN, GRAY)]  # the left half, which the truth keeps, changes
    assert flicker(outputs, TRUTHS, [None, None]) == pytest.approx(color_difference(RED, GREEN), rel=1e-6)
    assert flicker(outputs, TRUTHS, [None, None]) > 10


def test_a_change_where_the_truth_changes_too_is_no_flicker() -> None:
    outputs = [halves(RED, BLUE), halves(RED, GREEN)]  # right half: follows the truth
    assert flicker(outputs, TRUTHS, [None, None]) == 0.0


def test_pixels_transparent_in_either_frame_do_not_count() -> None:
    outputs = [halves(RED, GRAY), halves(GREEN, GRAY)]
    alpha = torch.ones(8, 8)
    alpha[:, :4] = 0.0  # the left half, where the outputs differ, is transparent in the second frame
    assert pair_flicker(outputs, TRUTHS, [None, alpha]) == [None]  # no still opaque pixel is left
    truths = [halves(RED, RED), halves(RED, RED)]
    assert pair_flicker(outputs, truths, [alpha, None]) == [0.0]  # only the unchanged right half counts


def test_truth_changes_under_the_tolerance_count_as_still() -> None:
    nearly = tuple(c + 0.002 for c in RED)
    assert color_difference(RED, nearly) < STILL_TOLERANCE
    outputs = [halves(RED, GRAY), halves(BLUE, GRAY)]
    value = flicker(outputs, [halves(RED, BLUE), halves(nearly, GREEN)], [None, None])
    assert value == pytest.approx(color_difference(RED, BLUE), rel=1e-6)


def test_min_lightness_change_keeps_only_the_still_pixels_whose_lightness_moved() -> None:
    # The left half keeps its color; the right half's gray lightens by 0.7 L, still under the tolerance.
    lighter = (0.508, 0.508, 0.508)
    truths = [halves(RED, GRAY), halves(RED, lighter)]
    moved = float(
        rgb_to_lab(torch.tensor(lighter)[:, None, None])[0] - rgb_to_lab(torch.tensor(GRAY)[:, None, None])[0]
    )
    assert 0.5 <= moved and color_difference(GRAY, lighter) < STILL_TOLERANCE
    outputs = [halves(RED, RED), halves(GREEN, BLUE)]  # both halves flicker, each by its own amount
    assert flicker(outputs, truths, [None, None]) == pytest.approx(
        (color_difference(RED, GREEN) + color_difference(RED, BLUE)) / 2, rel=1e-6
    )
    changed = pair_flicker(outputs, truths, [None, None], min_lightness_change=0.5)
    assert changed == [pytest.approx(color_difference(RED, BLUE), rel=1e-6)]  # the right half alone
    assert pair_flicker(outputs, truths, [None, None], min_lightness_change=moved + 0.1) == [None]
    every, right = still_pixels(truths, [None, None]), still_pixels(truths, [None, None], 0.5)
    assert int(every[0].sum()) == 64 and right[0][:, 4:].all() and not right[0][:, :4].any()


def test_frames_of_different_sizes_and_short_sequences() -> None:
    outputs = [halves(RED, GRAY), halves(GREEN, GRAY, size=10), halves(GREEN, GRAY, size=10)]
    truths = [halves(RED, RED), halves(RED, RED, size=10), halves(RED, RED, size=10)]
    assert pair_flicker(outputs, truths, [None] * 3) == [None, 0.0]
    assert flicker(outputs[:2], truths[:2], [None] * 2) is None
    assert flicker(outputs[:1], truths[:1], [None]) is None
    with pytest.raises(ValueError, match="differ"):
        pair_flicker(outputs, truths[:2], [None] * 3)


def test_slot_switches_per_100_frames() -> None:
    assert slot_switches([3, 3, 5, 5, 3]) == 2
    assert switches_per_100([3, 3, 5, 5, 3]) == 50.0
    assert switches_per_100([7] * 10) == 0.0
    assert switches_per_100([1]) is None
    assert mean_defined([None, 1.0, 3.0]) == 2.0 and mean_defined([None]) is None


# --- memopainter evaluate --sequences ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Path:
    return train_tiny(tmp_path_factory.mktemp("flicker"), list(tiny_settings))


def write_test_dir(root: Path) -> Path:
    """knight/knight_walk1..4 (an animation) and knight/knight.png and slime/slime_0.png (single images)."""
    for i in range(1, 5):
        path = root / "knight" / f"knight_walk{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_sprite((34, 40), (200, 30, 40), (240, 50 * i, 40), "ellipse").save(path)  # the stripe changes
    draw_sprite((30, 40), (200, 30, 40), (240, 200, 40), "ellipse").save(root / "knight" / "knight.png")
    (root / "slime").mkdir()
    draw_sprite((40, 30), (40, 170, 60), (20, 80, 30), "rectangle").save(root / "slime" / "slime_0.png")
    return root


def test_evaluate_sequences_adds_flicker_and_switches(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    test_dir = write_test_dir(tmp_path / "test")
    argv = ["evaluate", str(run_dir), str(test_dir), "--sequences", "--json", str(tmp_path / "e.json")]
    assert run_cli(evaluate_cli, [*argv, "--report", str(tmp_path / "report")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 6 and summary["failed"] == 0
    assert summary["sequences"] == 1 and summary["sequence_frames"] == 4
    assert summary["flicker"] >= 0.0 and 0.0 <= summary["switches_per_100_frames"] <= 100.0
    body = json.loads((tmp_path / "e.json").read_text())
    (animation,) = body["per_sequence"]
    assert animation["frames"] == [f"knight/knight_walk{i}.png" for i in range(1, 5)]
    assert {entry["path"] for entry in body["per_image"]} >= set(animation["frames"])
    page = (tmp_path / "report" / "index.html").read_text()
    assert html.escape("slot switches per 100 frames") in page

    assert run_cli(evaluate_cli, ["evaluate", str(run_dir), str(test_dir)]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "flicker" not in plain and "sequences" not in plain  # unchanged without the flag
    assert plain["images"] == 6


def test_evaluate_refuses_oracle_with_sequences(run_dir: Path, tmp_path: Path) -> None:
    test_dir = write_test_dir(tmp_path / "test")
    argv = ["evaluate", str(run_dir), str(test_dir), "--sequences", "--oracle"]
    assert run_cli(evaluate_cli, argv) == 2

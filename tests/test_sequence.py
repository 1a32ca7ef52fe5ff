"""Sequences: natural frame order and animations (data.sequences), and colorizing a sequence with one memory
slot per shot (inference.sequence, Colorizer.colorize_sequence)."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import draw_sprite, train_tiny
from PIL import Image

from memopainter.data.sequences import animation_name, group_animations, natural_key
from memopainter.inference import Colorizer, image_tensors
from memopainter.inference.sequence import (
    CUT_SIMILARITY,
    HOLD_TOLERANCE,
    best_path,
    color_distance,
    shot_cuts,
    smoothed_slots,
    step_distances,
)
from memopainter.memory import ColorMemory

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")

# --- data.sequences ----------------------------------------------------------------------------------------


def test_natural_key_orders_numbers_as_numbers_and_ignores_case() -> None:
    names = ["frame10.png", "Frame2.png", "frame1.png", "frame2b.png", "frame02.png"]
    assert sorted(names, key=natural_key)[:2] == ["frame1.png", "Frame2.png"]
    assert sorted(names, key=natural_key)[-1] == "frame10.png"


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("thunderer-ne-bob3", ("thunderer-ne-bob", 3)),
        ("malePerson_walk5", ("malePerson_walk", 5)),
        ("adept-idle-long-14", ("adept-idle-long", 14)),
        ("frame 007", ("frame", 7)),
        ("idle", None),
        ("42", None),  # a number alone names no animation
    ],
)
def test_animation_name_splits_the_stem_from_the_frame_number(stem: str, expected) -> None:
    assert animation_name(Path(f"unit/{stem}.png")) == expected


def test_group_animations_orders_frames_and_keeps_folders_and_stems_apart() -> None:
    paths = [
        Path("zombie/zombie_walk10.png"),
        Path("zombie/zombie_walk2.png"),
        Path("zombie/zombie_walk1.png"),
        Path("zombie/zombie_idle.png"),  # no frame number
        Path("robot/robot_walk1.png"),
        Path("robot/robot_walk2.png"),
        Path("robot/robot_walk3.png"),
        Path("robot/robot_jump1.png"),  # two frames: fewer than min_frames
        Path("robot/robot_jump2.png"),
        Path("knight/zombie_walk1.png"),  # same stem, other folder: another animation
        Path("knight/zombie_walk2.png"),
        Path("knight/zombie_walk3.png"),
    ]
    groups = group_animations(paths)
    assert groups == [
        [Path("knight/zombie_walk1.png"), Path("knight/zombie_walk2.png"), Path("knight/zombie_walk3.png")],
        [Path("robot/robot_walk1.png"), Path("robot/robot_walk2.png"), Path("robot/robot_walk3.png")],
        [Path("zombie/zombie_walk1.png"), Path("zombie/zombie_walk2.png"), Path("zombie/zombie_walk10.png")],
    ]
    assert len(group_animations(paths, min_frames=2)) == 4


# --- the best path over slots -------------------------------------------------------------------------------


def path_cost(unary: torch.Tensor, transition: torch.Tensor, path: list[int]) -> float:
    steps = sum(float(transition[t, path[t], path[t + 1]]) for t in range(len(path) - 1))
    return sum(float(unary[t, i]) for t, i in enumerate(path)) + steps


def test_best_path_is_the_cheapest_of_all_paths() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        unary = torch.rand(5, 3, generator=generator)
        transition = torch.rand(4, 3, 3, generator=generator)
        found = best_path(unary, transition).tolist()
        every = itertools.product(range(3), repeat=5)
        cheapest = min(path_cost(unary, transition, list(p)) for p in every)
        assert path_cost(unary, transition, found) == pytest.approx(cheapest)


def test_best_path_keeps_one_candidate_when_switching_costs_more_than_it_gains() -> None:
    # Frame 1 prefers candidate 1 by 0.1; leaving candidate 0 and coming back costs 2 x 0.3.
    unary = -torch.tensor([[0.9, 0.5], [0.8, 0.9], [0.9, 0.5]])
    switch = torch.tensor([[0.0, 0.3], [0.3, 0.0]]).expand(2, 2, 2)
    assert best_path(unary, switch).tolist() == [0, 0, 0]
    assert best_path(unary, torch.zeros(2, 2, 2)).tolist() == [0, 1, 0]  # free switches: each frame's best
    assert best_path(unary[:1], torch.zeros(0, 2, 2)).tolist() == [0]


def test_color_distance_is_total_variation_for_distributions_and_scale_free_otherwise() -> None:
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.5, 0.5])
    assert float(color_distance(a, b)) == pytest.approx(1.0)
    assert float(color_distance(a, a)) == 0.0
    assert float(color_distance(torch.tensor([0.5, 0.5, 0.0]), b)) == pytest.approx(0.5)
    palette = torch.tensor([0.2, 0.4, 0.6])
    assert float(color_distance(palette, 2 * palette)) == pytest.approx(1 / 3)
    assert float(color_distance(torch.zeros(3), torch.zeros(3))) == 0.0
    values = torch.rand(4, 3, 5)  # (T, C, V)
    expected = color_distance(values[:-1, :, None], values[1:, None, :])  # (T - 1, C, C)
    assert torch.allclose(step_distances(values).float(), expected, atol=1e-6)


def hand_made_memory() -> ColorMemory:
    """Three written slots with unit keys along axes 0, 1 and 2; slots 0 and 2 share one color."""
    memory = ColorMemory(3, key_dim=4, feature="dist", seed=0)
    values = torch.zeros(3, 313)
    values[0, 10] = values[2, 10] = 1.0
    values[1, 200] = 1.0
    with torch.no_grad():
        memory.keys.copy_(torch.eye(4)[:3])
        memory.values.copy_(values)
        memory.filled.fill_(True)
    return memory


def keys_near(*weights: tuple[float, ...]) -> torch.Tensor:
    """Unit query keys (T, 4), one per row of weights on the four axes."""
    return F.normalize(torch.tensor(weights, dtype=torch.float32), dim=1)


def test_smoothing_keeps_a_shot_on_one_slot_where_frame_by_frame_flickers() -> None:
    memory = hand_made_memory()
    # One shot (all keys alike): frame 2 scores slot 1 a little above slot 0.
    keys = keys_near((1.0, 0.5, 0, 0.2), (1.0, 0.6, 0, 0.2), (0.9, 1.0, 0, 0.2), (1.0, 0.6, 0, 0.2))
    _, top1 = memory.retrieve(keys, 1)
    assert top1[:, 0].tolist() == [0, 0, 1, 0]
    path = smoothed_slots(memory, keys)
    assert path.slots[:, 0].tolist() == [0, 0, 0, 0]
    assert path.cuts.tolist() == [True, False, False, False]
    assert torch.allclose(path.scores[:, 0], keys[:, 0])  # the chosen slot's own cosine score


def test_a_cut_lets_the_slot_change_that_a_high_switch_cost_would_hold() -> None:
    memory = hand_made_memory()
    keys = keys_near((1, 0.1, 0, 0), (1, 0.1, 0, 0), (0.2, 1, 0, 0), (0.2, 1, 0, 0))  # a new shot at frame 2
    assert shot_cuts(keys).tolist() == [True, False, True, False]
    assert float((keys[1] * keys[2]).sum()) < CUT_SIMILARITY
    assert smoothed_slots(memory, keys, switch_cost=100.0).slots[:, 0].tolist() == [0, 0, 1, 1]
    held = smoothed_slots(memory, keys, switch_cost=100.0, cut_similarity=-2.0)  # never a cut
    assert held.slots[:, 0].tolist() == [0, 0, 0, 0]


def test_switching_between_slots_of_the_same_color_is_free() -> None:
    memory = hand_made_memory()
    keys = keys_near((1, 0, 0.5, 0), (0.5, 0, 1, 0), (1, 0, 0.5, 0))  # slots 0 and 2: one color
    path = smoothed_slots(memory, keys, switch_cost=100.0)
    assert path.slots[:, 0].tolist() == [0, 2, 0]


def test_top_k_puts_the_path_slot_first_then_the_others_by_score() -> None:
    memory = hand_made_memory()
    keys = keys_near((1.0, 0.5, 0.1, 0.2), (0.9, 1.0, 0.1, 0.2), (1.0, 0.5, 0.1, 0.2))
    path = smoothed_slots(memory, keys, top_k=3)
    assert path.slots.tolist() == [[0, 1, 2], [0, 1, 2], [0, 1, 2]]
    assert path.scores[1].tolist() == pytest.approx([float(keys[1, 0]), float(keys[1, 1]), float(keys[1, 2])])
    assert smoothed_slots(memory, keys, top_k=2, switch_cost=0.0).slots[1].tolist() == [1, 0]


# --- Colorizer.colorize_sequence ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> Colorizer:
    """A tiny run with memory, loaded."""
    return Colorizer.from_pretrained(train_tiny(tmp_path_factory.mktemp("seq"), [*tiny_settings]))


def walk(count: int = 6) -> list[Image.Image]:
    """Frames of a sprite drifting and growing, as a walk cycle does."""
    return [
        draw_sprite((30 + 2 * i, 40 - i), (200, 30 + 20 * i, 40), (240, 200, 40), "ellipse")
        for i in range(count)
    ]


def pixels(images: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(image) for image in images]


def test_without_smoothing_a_sequence_is_exactly_colorize_each(colorizer: Colorizer) -> None:
    frames = walk()
    each = list(colorizer.colorize_each(frames, top_k=2, batch_size=4))
    sequence = colorizer.colorize_sequence(frames, top_k=2, smooth=False, batch_size=4)
    assert len(sequence) == len(frames)
    assert all(c.prepared.backbone_rgb is None for c in sequence)  # the list holds every frame at once
    for a, b in zip(each, sequence, strict=True):
        assert a.slots == b.slots and a.scores == b.scores and a.source is b.source
        assert all(np.array_equal(x, y) for x, y in zip(pixels(a.images), pixels(b.images), strict=True))


def test_smoothed_frames_are_colored_from_the_path_slots(colorizer: Colorizer) -> None:
    frames = walk()
    sequence = colorizer.colorize_sequence(frames, top_k=2, batch_size=4)
    prepared = [colorizer.prepare(*image_tensors(frame)) for frame in frames]
    path = smoothed_slots(colorizer.model.memory, colorizer.query_keys(prepared), top_k=2)
    assert [c.slots for c in sequence] == path.slots.tolist()
    assert [x for c in sequence for x in c.scores] == pytest.approx(path.scores.flatten().tolist())
    assert all(c.prepared.backbone_rgb is None for c in sequence)  # dropped once the key is known
    each = list(colorizer.colorize_each(frames, top_k=2))
    for smoothed, single in zip(sequence, each, strict=True):
        assert len(smoothed.images) == 2 and smoothed.images[0].size == single.images[0].size
        if smoothed.slots == single.slots:  # the same conditions give the same colors
            assert np.array_equal(np.asarray(smoothed.images[0]), np.asarray(single.images[0]))


@pytest.mark.parametrize("smooth", [True, False])
def test_a_bad_frame_fails_the_whole_sequence_naming_its_index(colorizer: Colorizer, smooth: bool) -> None:
    frames: list = walk(4)
    frames[2] = np.zeros((8, 8, 2), dtype=np.uint8)  # two channels: no image
    with pytest.raises(ValueError, match=r"^frame 2: numpy image must be shaped"):
        colorizer.colorize_sequence(frames, smooth=smooth, batch_size=2)
    frames[2] = Path("/nonexistent/frame.png")
    with pytest.raises(ValueError, match=r"^frame 2: .*frame\.png"):
        colorizer.colorize_sequence(frames, smooth=smooth)


def test_palettes_and_empty_sequences_and_bad_requests(colorizer: Colorizer) -> None:
    frames = walk(3)
    with_palette = colorizer.colorize_sequence(frames, palette="#ff0000,#00ff00")
    each = list(colorizer.colorize_each(frames, palette="#ff0000,#00ff00"))
    assert [c.slots for c in with_palette] == [None, None, None]
    assert all(
        np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
        for a, b in zip(with_palette, each, strict=True)
    )
    assert colorizer.colorize_sequence([]) == []
    with pytest.raises(ValueError, match="batch_size"):
        colorizer.colorize_sequence(frames, batch_size=0)
    with pytest.raises(ValueError, match="top_k"):
        colorizer.colorize_sequence(frames, top_k=0)


# --- the hold: still pixels keep their colors within a shot -------------------------------------------------


@pytest.fixture
def reacting(colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch) -> Colorizer:
    """The colorizer with a generator that answers any change of a frame's gray with other colors everywhere:
    ab noise seeded by the frame's gray input, so one frame gets the same colors in every run."""
    real = colorizer.predict

    def predict(prepared: list, *args: object, **kwargs: object):
        prediction = real(prepared, *args, **kwargs)
        for i, frame in enumerate(prepared):
            seed = zlib.crc32(frame.net_gray.numpy().tobytes())
            noise = torch.rand(prediction.ab[i].shape, generator=torch.Generator().manual_seed(seed))
            prediction.ab[i] += 60.0 * noise - 30.0  # (k, 2, S, S)
        return prediction

    monkeypatch.setattr(colorizer, "predict", predict)
    return colorizer


def still_and_moving(count: int = 4, size: tuple[int, int] = (20, 24)) -> list[Image.Image]:
    """RGBA frames: a static opaque body, a half-transparent static patch, and a stripe that moves down a row
    each frame over the body in a lighter color; the rest transparent."""
    height, width = size
    frames = []
    for t in range(count):
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[2:-2, 3:-3] = (180, 40, 60, 255)  # the body
        rgba[4 + t, 3:-3] = (250, 230, 120, 255)  # the stripe, moving
        rgba[-2:, :4] = (40, 120, 200, 100)  # alpha 100 < 128: never held
        frames.append(Image.fromarray(rgba, mode="RGBA"))
    return frames


def expected_hold(frames: list, held_images: list, plain_images: list, starts: set[int]) -> None:
    """Frame t of the hold equals frame t - 1's held colors where the input L and opacity stay, and the
    unheld coloring elsewhere; frames in `starts` (a cut, a new size) equal the unheld coloring outright."""
    for t, (frame, held, plain) in enumerate(zip(frames, held_images, plain_images, strict=True)):
        out, unheld = np.asarray(held), np.asarray(plain)
        if t in starts:
            assert np.array_equal(out, unheld)
            continue
        before_in, now_in = (np.asarray(f.convert("RGBA")).astype(int) for f in (frames[t - 1], frame))
        same = (
            (before_in[..., :3] == now_in[..., :3]).all(-1)
            & (before_in[..., 3] >= 128)
            & (now_in[..., 3] >= 128)
        )
        assert same.any() and (~same).any()
        assert np.array_equal(out[same, :3], np.asarray(held_images[t - 1])[same, :3])  # exactly the same
        assert np.array_equal(out[~same], unheld[~same])
        assert np.array_equal(out[..., 3], now_in[..., 3])  # alpha is the frame's own, never held


def images_of(results: list, k: int = 0) -> list[Image.Image]:
    return [r.images[k] for r in results]


def test_the_hold_keeps_still_pixels_exactly_and_colors_the_rest_as_without_it(reacting: Colorizer) -> None:
    colorizer = reacting
    frames = still_and_moving()
    held = colorizer.colorize_sequence(frames, top_k=2)
    plain = colorizer.colorize_sequence(frames, top_k=2, hold=False)
    assert [r.slots for r in held] == [r.slots for r in plain]  # the hold changes colors, not slots
    for k in range(2):  # each coloring holds from the same coloring of the frame before
        expected_hold(frames, images_of(held, k), images_of(plain, k), starts={0})
        # The generator answers the moving stripe on the still pixels too: there the hold changes colors.
        pairs = zip(pixels(images_of(held, k)), pixels(images_of(plain, k)), strict=True)
        assert not all(np.array_equal(a, b) for a, b in pairs)
    off = colorizer.colorize_sequence(frames, top_k=2, smooth=False)
    each = list(colorizer.colorize_each(frames, top_k=2))
    for a, b in zip(off, each, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(pixels(a.images), pixels(b.images), strict=True))


def test_the_hold_restarts_at_a_cut_and_at_a_change_of_size(
    reacting: Colorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    colorizer = reacting
    frames = still_and_moving(3) + still_and_moving(3, size=(22, 24))  # a new size at frame 3
    plain = images_of(colorizer.colorize_sequence(frames, hold=False))
    expected_hold(frames, images_of(colorizer.colorize_sequence(frames)), plain, starts={0, 3})
    from memopainter.inference import sequence

    def cut_at_1(keys: torch.Tensor, cut_similarity: float = CUT_SIMILARITY) -> torch.Tensor:
        return torch.tensor([True, True] + [False] * (len(keys) - 2))

    monkeypatch.setattr(sequence, "shot_cuts", cut_at_1)
    cut = colorizer.colorize_sequence(frames)
    expected_hold(frames, images_of(cut), plain, starts={0, 1, 3})


def test_the_hold_follows_the_colors_l_not_a_slow_drift(reacting: Colorizer) -> None:
    colorizer = reacting
    # A gray patch that brightens by one level a frame: each step moves L by about 0.4, under the tolerance,
    # but two steps do not stay within it of the frame whose color the patch holds.
    frames = []
    for t in range(3):
        rgb = np.full((16, 16, 3), 30, dtype=np.uint8)
        rgb[4:12, 4:12] = 128 + t
        frames.append(Image.fromarray(rgb, mode="RGB"))
    lightness = [colorizer.prepare(*image_tensors(f)).lightness[8, 8] for f in frames]
    assert 0 < float(lightness[1] - lightness[0]) < HOLD_TOLERANCE <= float(lightness[2] - lightness[0])
    held = pixels(images_of(colorizer.colorize_sequence(frames)))
    plain = pixels(images_of(colorizer.colorize_sequence(frames, hold=False)))
    assert np.array_equal(held[1][8, 8], held[0][8, 8])  # held from frame 0
    assert np.array_equal(held[2][8, 8], plain[2][8, 8])  # 2 levels from frame 0's L: its own color again
    assert not np.array_equal(held[2][8, 8], held[0][8, 8])
    assert np.array_equal(held[2][0, 0], held[0][0, 0])  # the unchanged border stays held throughout


def test_the_hold_applies_with_a_palette_too(reacting: Colorizer) -> None:
    colorizer = reacting
    frames = still_and_moving()
    held = colorizer.colorize_sequence(frames, palette="#ff0000,#00ff00")
    each = list(colorizer.colorize_each(frames, palette="#ff0000,#00ff00"))
    assert [r.slots for r in held] == [None] * len(frames)
    expected_hold(frames, images_of(held), images_of(each), starts={0})
    plain = colorizer.colorize_sequence(frames, palette="#ff0000,#00ff00", hold=False)
    assert all(
        np.array_equal(a, b) for a, b in zip(pixels(images_of(plain)), pixels(images_of(each)), strict=True)
    )

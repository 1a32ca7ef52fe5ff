"""Specification of the color memory: section 3.1 of the paper, eqs. 3 and 5 to 9, on hand-built memories."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F

from memopainter.color import NUM_BINS, symmetric_kl
from memopainter.memory import (
    ColorMemory,
    MemorySettings,
    default_memory_size,
    default_settings,
    topk_lowest_index,
)

RED, GREEN, BLUE, BLACK = (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0)


def palette(*colors: tuple[float, float, float]) -> torch.Tensor:
    """A 10-color palette flattened to (30,), the given colors repeated in turn."""
    return torch.tensor([colors[i % len(colors)] for i in range(10)], dtype=torch.float32).flatten()


def one_hot(bin_index: int) -> torch.Tensor:
    """A 313-bin distribution with all its mass in one bin."""
    return F.one_hot(torch.tensor(bin_index), NUM_BINS).float()


def build(
    keys: list[list[float]],
    values: list[torch.Tensor],
    feature: str = "rgb",
    ages: list[int] | None = None,
    sources: list[int] | None = None,
    labels: list[int] | None = None,
    empty: int = 0,
    **settings: object,
) -> ColorMemory:
    """A memory with len(keys) written slots holding these keys and values, then `empty` empty slots."""
    keys = torch.tensor(keys, dtype=torch.float32)
    count, key_dim = keys.shape
    memory = ColorMemory(count + empty, key_dim=key_dim, feature=feature, seed=0, **settings)
    memory.keys[:count] = keys
    memory.values[:count] = torch.stack(values)
    memory.filled[:count] = True
    if ages is not None:
        memory.ages.copy_(torch.tensor(ages))
    if sources is not None:
        memory.sources[:count] = torch.tensor(sources)
    if labels is not None:
        memory.labels[:count] = torch.tensor(labels)
    return memory


def queries(*rows: list[float]) -> torch.Tensor:
    """Query rows (B, key_dim) as float32."""
    return torch.tensor(rows, dtype=torch.float32)


# ---------------------------------------------------------------------------------- settings


def test_default_settings_per_feature():
    assert default_settings("dist") == MemorySettings(top_k=256, threshold=1.0, margin=0.1)
    assert default_settings("rgb") == MemorySettings(top_k=32, threshold=8.0, margin=0.1)
    with pytest.raises(ValueError, match="feature"):
        default_settings("lab")


def test_default_memory_size_is_1_2_times_the_training_set_rounded_up():
    assert default_memory_size(10) == 12  # 1.2 * 10 in floats is 12.000000000000002
    assert default_memory_size(100) == 120
    assert default_memory_size(7) == 9  # 8.4 rounded up
    assert default_memory_size(1) == 2
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_images"):
            default_memory_size(bad)


def test_constructor_fills_in_the_feature_defaults_and_limits_default_top_k_to_the_size():
    memory = ColorMemory(1000, key_dim=4, feature="rgb")
    assert (memory.value_dim, memory.top_k, memory.threshold, memory.margin) == (30, 32, 8.0, 0.1)
    assert ColorMemory(10, key_dim=4).top_k == 10
    assert ColorMemory(10, key_dim=4, top_k=11).top_k == 10  # a search width past the slots searches them all
    assert ColorMemory(10, key_dim=4).value_dim == 313


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature": "lab"}, "feature"),
        ({"feature": "dist", "value_dim": 30}, "value_dim must be 313"),
        ({"feature": "rgb", "value_dim": 313}, "value_dim must be 30"),
        ({"size": 0}, "size"),
        ({"key_dim": 0}, "key_dim"),
        ({"top_k": 0}, "top_k"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": float("inf")}, "threshold"),
        ({"margin": -0.1}, "margin"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_constructor_rejects_invalid_arguments(kwargs, message):
    arguments = {"size": 10, "key_dim": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        ColorMemory(**arguments)


def test_keys_start_as_normalised_uniform_noise_and_every_slot_empty():
    memory = ColorMemory(50, key_dim=8, seed=3)
    expected = F.normalize(
        torch.empty(50, 8).uniform_(-0.01, 0.01, generator=torch.Generator().manual_seed(3))
    )
    torch.testing.assert_close(memory.keys, expected, rtol=0, atol=0)
    torch.testing.assert_close(memory.keys.norm(dim=1), torch.ones(50))
    assert memory.ages.tolist() == [0] * 50
    assert memory.sources.tolist() == [-1] * 50
    assert memory.labels.tolist() == [-1] * 50
    assert not memory.filled.any()
    assert memory.num_filled == 0
    assert memory.sources.dtype == torch.int64
    assert not torch.equal(ColorMemory(50, key_dim=8, seed=4).keys, memory.keys)


def test_seed_defaults_to_the_global_torch_generator():
    torch.manual_seed(7)
    first = ColorMemory(20, key_dim=4)
    torch.manual_seed(7)
    assert torch.equal(ColorMemory(20, key_dim=4).keys, first.keys)


# ------------------------------------------------------------------------------------- eq. 3


def test_retrieve_ranks_slots_by_cosine_similarity():
    # q = (0.6, 0.8) scores the keys (1, 0), (0, 1), (0.6, 0.8), (0.8, 0.6) at 0.6, 0.8, 1.0, 0.96.
    memory = build([[1, 0], [0, 1], [0.6, 0.8], [0.8, 0.6]], [palette(RED)] * 4)
    scores, slots = memory.retrieve(queries([0.6, 0.8]), k=4)
    assert slots.tolist() == [[2, 3, 1, 0]]
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.96, 0.8, 0.6]]))
    scores, slots = memory.retrieve(queries([0.6, 0.8], [-1, 0]), k=2)
    # q = (-1, 0) scores them -1, 0, -0.6, -0.8.
    assert slots.tolist() == [[2, 3], [1, 2]]
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.96], [0.0, -0.6]]))


def test_retrieve_orders_ties_by_lower_index_also_across_the_kth_boundary():
    # q = (1, 0) scores the five slots 0, 1, 1, 0, 1: the three 1s are slots 1, 2, 4, the two 0s slots 0, 3.
    memory = build([[0, 1], [1, 0], [1, 0], [0, 1], [1, 0]], [palette(RED)] * 5)
    q = queries([1, 0])
    assert memory.retrieve(q, 1)[1].tolist() == [[1]]
    assert memory.retrieve(q, 2)[1].tolist() == [[1, 2]]
    assert memory.retrieve(q, 4)[1].tolist() == [[1, 2, 4, 0]]
    assert memory.retrieve(q, 5)[1].tolist() == [[1, 2, 4, 0, 3]]
    assert memory.retrieve(q, 5)[0].tolist() == [[1, 1, 1, 0, 0]]


def test_topk_lowest_index_equals_a_stable_sort_on_heavily_tied_scores():
    generator = torch.Generator().manual_seed(0)
    for m, k in ((3000, 1), (3000, 7), (3000, 700), (3000, 3000), (40, 39)):
        scores = torch.randint(0, 4, (5, m), generator=generator).float()
        scores[torch.rand(5, m, generator=generator) < 0.3] = float("-inf")
        values, indices = topk_lowest_index(scores, k)
        expected_values, expected_indices = scores.sort(dim=1, descending=True, stable=True)
        assert torch.equal(indices, expected_indices[:, :k])
        assert torch.equal(values, expected_values[:, :k])


def test_retrieve_ranks_empty_slots_last_with_minus_infinity():
    # Slot 1 is the only written one and scores -1; the empty slots' random keys would all score higher.
    memory = ColorMemory(4, key_dim=2, feature="rgb", seed=0)
    memory.keys.copy_(queries([1, 0], [-1, 0], [1, 0], [1, 0]))
    memory.filled[1] = True
    scores, slots = memory.retrieve(queries([1, 0]), k=4)
    assert slots.tolist() == [[1, 0, 2, 3]]
    assert scores[0].tolist() == [-1.0, -math.inf, -math.inf, -math.inf]


def test_retrieve_sees_the_memory_as_it_is_after_an_update():
    memory = build([[1, 0], [0, 1]], [palette(RED), palette(BLUE)], empty=1, ages=[0, 0, 5])
    q = queries([0.6, 0.8])
    assert memory.retrieve(q, 1)[1].tolist() == [[1]]
    memory.update(q, palette(GREEN)[None])  # no match with blue: q is written into the oldest slot, 2
    scores, slots = memory.retrieve(q, 1)
    assert slots.tolist() == [[2]]
    torch.testing.assert_close(scores, torch.tensor([[1.0]]))


def test_retrieve_sees_in_place_edits_and_loaded_state():
    memory = build([[1, 0], [0, 1]], [palette(RED), palette(BLUE)])
    q = queries([0.6, 0.8])
    assert memory.retrieve(q, 1)[1].tolist() == [[1]]
    memory.keys[0] = torch.tensor([0.6, 0.8])
    assert memory.retrieve(q, 1)[1].tolist() == [[0]]
    memory.load_state_dict(build([[0, 1], [1, 0]], [palette(RED), palette(BLUE)]).state_dict())
    assert memory.retrieve(q, 1)[1].tolist() == [[0]]
    memory.filled[0] = False
    assert memory.retrieve(q, 1)[1].tolist() == [[1]]


# ------------------------------------------------------------------------------- eqs. 5 to 7

# q = (1, 0) ranks these four slots 2 (0.96, blue), 0 (0.8, blue), 1 (0.6, red), 3 (0.28, red).
TRIPLET_KEYS = [[0.8, 0.6], [0.6, 0.8], [0.96, 0.28], [0.28, 0.96]]
TRIPLET_VALUES = [palette(BLUE), palette(RED), palette(BLUE), palette(RED)]


def test_triplet_positive_and_negative_are_the_highest_ranked_matching_and_non_matching_slots():
    memory = build(TRIPLET_KEYS, TRIPLET_VALUES)
    q = queries([1, 0]).requires_grad_(True)
    terms = memory.triplet_terms(q, palette(RED)[None])
    assert terms.positive.tolist() == [1]  # the first red slot in rank order
    assert terms.negative.tolist() == [2]  # the first slot that is not red
    assert terms.has_positive.tolist() == [True]
    assert terms.has_negative.tolist() == [True]
    # max(q.K[n_b] - q.K[n_p] + margin, 0) = 0.96 - 0.6 + 0.1 = 0.46
    torch.testing.assert_close(terms.loss, torch.tensor(0.46))
    terms.loss.backward()
    # d/dq (q.K[n_b] - q.K[n_p]) = K[2] - K[1] = (0.96 - 0.6, 0.28 - 0.8)
    torch.testing.assert_close(q.grad, queries([0.36, -0.52]))
    assert not memory.keys.requires_grad


def test_triplet_loss_is_zero_once_the_positive_beats_the_negative_by_the_margin():
    memory = build(TRIPLET_KEYS, TRIPLET_VALUES)
    terms = memory.triplet_terms(queries([1, 0]), palette(BLUE)[None])
    assert (terms.positive.tolist(), terms.negative.tolist()) == ([2], [1])
    # max(0.6 - 0.96 + 0.1, 0) = max(-0.26, 0) = 0
    assert terms.loss.item() == 0.0
    assert memory.triplet_loss(queries([1, 0]), palette(BLUE)[None]).item() == 0.0


def test_queries_without_a_positive_or_a_negative_are_left_out_of_the_mean():
    memory = build(TRIPLET_KEYS, TRIPLET_VALUES, top_k=2)
    # Top-2 of (0.8, 0.6): slot 0 (1.0, blue), slot 1 (0.96, red): loss 1.0 - 0.96 + 0.1 = 0.14.
    # Top-2 of (0, 1): slots 3 and 1, both red: no negative. Top-2 of (1, 0): slots 2 and 0, both blue:
    # no positive for red.
    q = queries([0.8, 0.6], [0, 1], [1, 0]).requires_grad_(True)
    terms = memory.triplet_terms(q, torch.stack([palette(RED)] * 3))
    assert terms.has_positive.tolist() == [True, True, False]
    assert terms.has_negative.tolist() == [True, False, True]
    assert terms.positive.tolist() == [1, 3, -1]
    assert terms.negative.tolist() == [0, -1, 2]
    torch.testing.assert_close(terms.loss, torch.tensor(0.14))  # 0.14 / 1, not 0.14 / 3
    terms.loss.backward()
    assert q.grad[1:].abs().sum().item() == 0.0


def test_triplet_loss_without_any_complete_triplet_is_a_zero_attached_to_the_graph():
    memory = build(TRIPLET_KEYS, TRIPLET_VALUES, top_k=2)
    q = queries([0, 1], [1, 0]).requires_grad_(True)
    loss = memory.triplet_loss(q, torch.stack([palette(RED)] * 2))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(q.grad, torch.zeros(2, 2))


def test_triplet_loss_on_an_empty_memory_is_a_zero_attached_to_the_graph():
    memory = ColorMemory(8, key_dim=2, feature="rgb", seed=0)
    q = queries([1, 0]).requires_grad_(True)
    terms = memory.triplet_terms(q, palette(RED)[None])
    assert (terms.has_positive.tolist(), terms.has_negative.tolist()) == ([False], [False])
    assert terms.loss.item() == 0.0 and terms.loss.requires_grad


def test_triplet_finds_neighbours_beyond_the_first_comparison_window():
    # 40 slots ranked by index (slot i scores cos(i degrees)); only the last one is red.
    angles = torch.deg2rad(torch.arange(40.0))
    keys = torch.stack([angles.cos(), angles.sin()], 1).tolist()
    memory = build(keys, [palette(BLUE)] * 39 + [palette(RED)], top_k=40)
    terms = memory.triplet_terms(queries([1, 0]), palette(RED)[None])
    assert (terms.positive.tolist(), terms.negative.tolist()) == ([39], [0])
    # cos(0) - cos(39 degrees) + 0.1
    assert terms.loss.item() == pytest.approx(1.0 - math.cos(math.radians(39)) + 0.1, abs=1e-6)


def test_histograms_with_empty_bins_give_finite_distances_losses_and_matches():
    # One-hot distributions leave 312 bins empty: the public reimplementation's KL gave NaN here.
    memory = build([[1, 0], [0, 1]], [one_hot(10), one_hot(200)], feature="dist")
    q = queries([0.8, 0.6]).requires_grad_(True)
    terms = memory.triplet_terms(q, one_hot(200)[None])
    assert (terms.positive.tolist(), terms.negative.tolist()) == ([1], [0])
    torch.testing.assert_close(terms.loss, torch.tensor(0.8 - 0.6 + 0.1))
    terms.loss.backward()
    assert torch.isfinite(q.grad).all()
    assert memory.update(queries([0, 1]), one_hot(200)[None]).tolist() == [True]


@pytest.mark.parametrize(
    ("feature", "v"),
    [("rgb", palette(BLACK)), ("dist", torch.full((NUM_BINS,), 1.0 / NUM_BINS))],
)
def test_empty_slots_are_never_a_positive_or_a_match(feature, v):
    # The empty slots hold zeros, which are at distance 0 from black (rgb) or, once smoothed, from the
    # uniform distribution (dist), and slot 1's key equals q: only the filled mask keeps them out.
    memory = ColorMemory(3, key_dim=2, feature=feature, seed=0)
    memory.keys.copy_(queries([0, 1], [1, 0], [1, 0]))
    memory.values[0] = palette(RED) if feature == "rgb" else one_hot(5)
    memory.filled[0] = True
    memory.ages.copy_(torch.tensor([5, 7, 9]))
    assert memory.distance(memory.values[2], v).item() < memory.threshold
    terms = memory.triplet_terms(queries([1, 0]), v[None])
    assert (terms.has_positive.tolist(), terms.has_negative.tolist()) == ([False], [True])
    assert memory.update(queries([1, 0]), v[None]).tolist() == [False]
    assert memory.filled.tolist() == [True, False, True]  # written into the oldest slot, 2
    assert memory.ages.tolist() == [6, 8, 0]
    # In an all-empty memory every slot scores -inf and the top-1 is empty slot 0: still no match.
    fresh = ColorMemory(3, key_dim=2, feature=feature, seed=0)
    assert fresh.update(queries([1, 0]), v[None]).tolist() == [False]
    assert fresh.num_filled == 1


# --------------------------------------------------------------------------------- eqs. 8, 9


def test_a_match_averages_the_top1_key_with_the_query_and_resets_its_age():
    memory = build(
        [[1, 0], [0, 1], [-1, 0]],
        [palette(RED), palette(BLUE), palette(RED)],
        ages=[3, 5, 2],
        sources=[10, 11, 12],
    )
    # q = (0.6, 0.8) scores 0.6, 0.8, -0.6: top-1 is slot 1, blue like v.
    matched = memory.update(queries([0.6, 0.8]), palette(BLUE)[None], sources=torch.tensor([99]))
    assert matched.tolist() == [True]
    # (0, 1) + (0.6, 0.8) = (0.6, 1.8), norm sqrt(3.6): (0.316228, 0.948683)
    torch.testing.assert_close(memory.keys[1], torch.tensor([0.6, 1.8]) / math.sqrt(3.6))
    assert memory.ages.tolist() == [4, 0, 3]
    assert memory.sources.tolist() == [10, 11, 12]  # a match keeps the slot's source and value
    assert torch.equal(memory.values[1], palette(BLUE))
    assert torch.equal(memory.keys[0], torch.tensor([1.0, 0.0]))


def test_a_miss_writes_query_value_and_source_into_the_oldest_slot():
    memory = build(
        [[1, 0], [0, 1], [-1, 0]],
        [palette(RED), palette(BLUE), palette(RED)],
        ages=[3, 1, 7],
        sources=[10, 11, 12],
    )
    matched = memory.update(queries([0.6, 0.8]), palette(GREEN)[None], sources=torch.tensor([99]))
    assert matched.tolist() == [False]
    assert memory.keys[2].tolist() == pytest.approx([0.6, 0.8])
    assert torch.equal(memory.values[2], palette(GREEN))
    assert memory.sources.tolist() == [10, 11, 99]
    assert memory.ages.tolist() == [4, 2, 0]
    assert torch.equal(memory.values[1], palette(BLUE))


def test_a_write_without_sources_records_source_minus_one():
    memory = build([[1, 0]], [palette(RED)], empty=1, sources=[4])
    memory.update(queries([0, 1]), palette(GREEN)[None])
    assert memory.sources.tolist() == [4, -1]
    assert memory.filled.tolist() == [True, True]


def _slot_written_with(seed: int) -> int:
    """The slot a miss writes into, with ages 4, 9, 9, 1, 9, 0, drawing from a generator seeded `seed`."""
    memory = build([[1, 0]] * 6, [palette(RED)] * 6, ages=[4, 9, 9, 1, 9, 0])
    memory.update(queries([0, 1]), palette(GREEN)[None], generator=torch.Generator().manual_seed(seed))
    return int(torch.nonzero(memory.ages == 0))


def test_the_written_slot_is_drawn_uniformly_among_the_oldest_from_the_generator():
    # Oldest (age 9): slots 1, 2, 4. The r-th of them is taken, r = randint(3) from the generator.
    for seed in range(5):
        r = int(torch.randint(3, (1,), generator=torch.Generator().manual_seed(seed)))
        assert _slot_written_with(seed) == [1, 2, 4][r]
    chosen = [_slot_written_with(seed) for seed in range(60)]
    assert set(chosen) == {1, 2, 4}


def test_the_memorys_own_generator_is_seeded_and_saved_in_its_state():
    def written_slots(memory: ColorMemory) -> list[int]:
        slots = []
        for _ in range(5):
            memory.update(queries([0, 1]), palette(GREEN)[None])
            slots.append(int(torch.nonzero(memory.ages == 0)))
            memory.ages.zero_()  # every slot oldest again
            memory.filled.zero_()
        return slots

    first, second = (
        ColorMemory(8, key_dim=2, feature="rgb", seed=1),
        ColorMemory(8, key_dim=2, feature="rgb", seed=1),
    )
    assert written_slots(first) == written_slots(second)
    assert len(set(written_slots(ColorMemory(8, key_dim=2, feature="rgb", seed=1)))) > 1


def test_two_new_writes_in_one_batch_land_in_two_different_slots():
    for seed in range(30):
        memory = ColorMemory(4, key_dim=2, feature="rgb", seed=seed)
        matched = memory.update(queries([1, 0], [0, 1]), torch.stack([palette(RED), palette(BLUE)]))
        assert matched.tolist() == [False, False]
        assert memory.num_filled == 2
        assert sorted(memory.ages[memory.filled].tolist()) == [0, 1]
        written = memory.values[memory.filled]
        assert {tuple(row.tolist()) for row in written} == {
            tuple(palette(RED).tolist()),
            tuple(palette(BLUE).tolist()),
        }


def test_a_slot_refreshed_earlier_in_the_batch_is_not_the_oldest():
    for seed in range(20):
        memory = build([[1, 0]], [palette(RED)], empty=2, ages=[9, 0, 0])
        # Query 1 refreshes slot 0 (age 9 -> 0); query 2 misses and must write into slot 1 or 2.
        matched = memory.update(
            queries([1, 0], [0, 1]),
            torch.stack([palette(RED), palette(GREEN)]),
            generator=torch.Generator().manual_seed(seed),
        )
        assert matched.tolist() == [True, False]
        assert torch.equal(memory.values[0], palette(RED))
        assert memory.ages[0].item() == 1
        assert memory.num_filled == 2


def test_a_later_query_in_the_batch_matches_a_slot_written_earlier_in_the_batch():
    memory = ColorMemory(5, key_dim=2, feature="rgb", seed=0)
    q = queries([0.6, 0.8], [0.8, 0.6])
    matched = memory.update(q, torch.stack([palette(GREEN), palette(GREEN)]))
    assert matched.tolist() == [False, True]
    assert memory.num_filled == 1
    slot = int(torch.nonzero(memory.filled))
    # normalise((0.6, 0.8) + (0.8, 0.6)) = (1.4, 1.4) / (1.4 sqrt(2))
    torch.testing.assert_close(memory.keys[slot], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert memory.ages[slot].item() == 0


def test_two_queries_refreshing_the_same_slot_both_count():
    memory = build([[1, 0], [0, 1]], [palette(RED), palette(BLUE)])
    memory.update(queries([0.6, 0.8], [0, 1]), torch.stack([palette(BLUE), palette(BLUE)]))
    # First (0, 1) + (0.6, 0.8) -> (0.316228, 0.948683); then + (0, 1) and normalised again.
    first = torch.tensor([0.6, 1.8]) / math.sqrt(3.6)
    torch.testing.assert_close(memory.keys[1], F.normalize(first + torch.tensor([0.0, 1.0]), dim=0))


# -------------------------------------------------------------------------- batch = sequence


def reference_update(
    memory: ColorMemory,
    q: torch.Tensor,
    v: torch.Tensor,
    sources: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator,
) -> list[bool]:
    """Eqs. 8 and 9 applied one query at a time, on plain tensors, written independently of the module."""
    keys, values, ages = memory.keys.clone(), memory.values.clone(), memory.ages.clone()
    slot_sources, slot_labels, filled = memory.sources.clone(), memory.labels.clone(), memory.filled.clone()
    matched = []
    for j in range(len(q)):
        scores = torch.where(filled, keys @ q[j], -math.inf)
        n1 = int(scores.argmax())
        if memory.supervised:
            hit = bool(filled[n1]) and int(slot_labels[n1]) == int(labels[j])
        else:
            hit = bool(filled[n1]) and float(symmetric_kl(values[n1], v[j])) < memory.threshold
        if hit:
            slot = n1
            keys[slot] = (keys[slot] + q[j]) / (keys[slot] + q[j]).norm()
        else:
            oldest = torch.nonzero(ages == ages.max()).flatten()
            slot = int(oldest[int(torch.randint(len(oldest), (1,), generator=generator))])
            keys[slot], values[slot], slot_sources[slot], filled[slot] = q[j], v[j], sources[j], True
            if labels is not None:
                slot_labels[slot] = labels[j]
        ages += 1
        ages[slot] = 0
        matched.append(hit)
    memory.keys.copy_(keys)
    memory.values.copy_(values)
    memory.ages.copy_(ages)
    memory.sources.copy_(slot_sources)
    memory.labels.copy_(slot_labels)
    memory.filled.copy_(filled)
    return matched


def random_case(seed: int, supervised: bool) -> tuple[ColorMemory, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small random memory (some slots empty, tied ages) and a batch whose queries often repeat."""
    generator = torch.Generator().manual_seed(seed)
    size, key_dim, batch = 10, 3, 8
    classes = torch.tensor([0, 100, 200])
    memory = ColorMemory(size, key_dim=key_dim, feature="dist", supervised=supervised, seed=seed).double()
    memory.filled.copy_(torch.rand(size, generator=generator) < 0.6)
    memory.keys.copy_(
        F.normalize(torch.randn(size, key_dim, generator=generator, dtype=torch.float64), dim=1)
    )
    slot_classes = torch.randint(3, (size,), generator=generator)
    memory.values.copy_(F.one_hot(classes[slot_classes], NUM_BINS).double() * memory.filled[:, None])
    memory.labels.copy_(torch.where(memory.filled, slot_classes, -1))
    memory.sources.copy_(torch.where(memory.filled, torch.randint(50, (size,), generator=generator), -1))
    memory.ages.copy_(torch.randint(0, 3, (size,), generator=generator))
    q = F.normalize(torch.randn(batch, key_dim, generator=generator, dtype=torch.float64), dim=1)
    for j in range(1, batch):
        if torch.rand(1, generator=generator).item() < 0.5:  # repeat an earlier query, slightly moved
            earlier = int(torch.randint(j, (1,), generator=generator))
            moved = q[earlier] + 0.05 * torch.randn(key_dim, generator=generator, dtype=torch.float64)
            q[j] = F.normalize(moved, dim=0)
    query_classes = torch.randint(3, (batch,), generator=generator)
    v = F.one_hot(classes[query_classes], NUM_BINS).double()
    return memory, q, v, query_classes


@pytest.mark.parametrize("supervised", [False, True])
def test_a_batched_update_equals_the_queries_applied_one_at_a_time(supervised):
    hits = misses = 0
    for seed in range(150):
        memory, q, v, classes = random_case(seed, supervised)
        reference = copy.deepcopy(memory)
        labels = classes if supervised else None
        sources = torch.arange(100, 100 + len(q))
        generator, reference_generator = (torch.Generator().manual_seed(seed) for _ in range(2))
        matched = memory.update(q, v, sources=sources, labels=labels, generator=generator)
        expected = reference_update(reference, q, v, sources, labels, reference_generator)
        assert matched.tolist() == expected, f"seed {seed}"
        for name in ("values", "ages", "sources", "labels", "filled"):
            assert torch.equal(getattr(memory, name), getattr(reference, name)), f"seed {seed}: {name}"
        torch.testing.assert_close(memory.keys, reference.keys, rtol=0, atol=1e-12)
        assert torch.equal(generator.get_state(), reference_generator.get_state()), f"seed {seed}"
        hits, misses = hits + sum(expected), misses + len(expected) - sum(expected)
    assert hits > 100 and misses > 100  # both branches were exercised many times


def test_a_batched_update_equals_single_query_updates_of_the_module():
    for seed in range(30):
        memory, q, v, _ = random_case(seed, supervised=False)
        one_by_one = copy.deepcopy(memory)
        matched = memory.update(q, v)
        single = [one_by_one.update(q[j : j + 1], v[j : j + 1]).item() for j in range(len(q))]
        assert matched.tolist() == single
        for name, buffer in memory.state_dict().items():
            torch.testing.assert_close(buffer, one_by_one.state_dict()[name], rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------- supervised


def test_supervised_memory_decides_positives_negatives_and_matches_by_label():
    # All slots hold the same color; only labels tell them apart. q = (1, 0) ranks 2, 0, 1, 3.
    memory = build(TRIPLET_KEYS, [palette(RED)] * 4, labels=[5, 6, 5, 6], supervised=True, ages=[0, 0, 0, 3])
    terms = memory.triplet_terms(queries([1, 0]), palette(RED)[None], labels=torch.tensor([6]))
    assert (terms.positive.tolist(), terms.negative.tolist()) == ([1], [2])
    torch.testing.assert_close(terms.loss, torch.tensor(0.96 - 0.6 + 0.1))
    # Top-1 (slot 2) has label 5: a query labelled 5 refreshes it, one labelled 7 is written into slot 3.
    matched = memory.update(
        queries([1, 0], [1, 0]), torch.stack([palette(RED)] * 2), labels=torch.tensor([5, 7])
    )
    assert matched.tolist() == [True, False]
    assert memory.labels.tolist() == [5, 6, 5, 7]
    assert memory.ages.tolist() == [2, 2, 1, 0]


# -------------------------------------------------------------------------- state and inputs


def test_the_whole_state_is_buffers_and_a_state_dict_round_trip_restores_it_exactly():
    memory, q, v, _ = random_case(3, supervised=False)
    memory.update(q, v, sources=torch.arange(len(q)))
    assert set(memory.state_dict()) == {"keys", "values", "ages", "sources", "labels", "filled", "rng_state"}
    assert list(memory.parameters()) == []
    buffer = io.BytesIO()
    torch.save(memory.state_dict(), buffer)
    buffer.seek(0)
    restored = ColorMemory(**memory.config(), seed=99).double()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for name, tensor in memory.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name
    # The saved generator state makes the restored memory continue exactly as the original.
    _, q2, v2, _ = random_case(4, supervised=False)
    assert torch.equal(memory.update(q2, v2), restored.update(q2, v2))
    for name, tensor in memory.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name


def test_config_rebuilds_the_same_settings():
    memory = ColorMemory(20, key_dim=4, feature="rgb", threshold=5.0, margin=0.3, top_k=7, supervised=True)
    assert memory.config() == {
        "size": 20,
        "key_dim": 4,
        "value_dim": 30,
        "feature": "rgb",
        "threshold": 5.0,
        "margin": 0.3,
        "top_k": 7,
        "supervised": True,
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_memory_gives_the_same_results_as_cpu():
    cpu, q, v, _ = random_case(5, supervised=False)
    cuda = copy.deepcopy(cpu).cuda()
    assert torch.equal(cpu.update(q, v), cuda.update(q.cuda(), v.cuda()).cpu())
    for name, tensor in cpu.state_dict().items():
        torch.testing.assert_close(cuda.state_dict()[name].cpu(), tensor, rtol=0, atol=1e-12)
    terms_cpu, terms_cuda = cpu.triplet_terms(q, v), cuda.triplet_terms(q.cuda(), v.cuda())
    assert torch.equal(terms_cpu.positive, terms_cuda.positive.cpu())
    torch.testing.assert_close(terms_cpu.loss, terms_cuda.loss.cpu())

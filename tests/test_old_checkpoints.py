"""Models saved before a setting existed load as they were trained: a key missing from the saved config (or
from a network's description) takes the value runs had before it, not today's default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import train_tiny

from memopainter.core.checkpoint import RESERVED_META_KEYS, load_checkpoint, save_checkpoint
from memopainter.core.model import MODEL_FILE
from memopainter.inference import Colorizer


def saved_without(run: Path, dest: Path, section: str, key: str, described: str | None = None) -> Path:
    """A copy of run's model whose config lacks [section] key (and the `described` network its argument of
    the same name), as a model saved before the key existed."""
    tensors, meta = load_checkpoint(run / MODEL_FILE)
    del meta["config"][section][key]
    if described is not None:
        del meta[described][key]
    meta = {name: value for name, value in meta.items() if name not in RESERVED_META_KEYS}
    save_checkpoint(dest, tensors, meta)
    return dest


def same_colorings(first: list, second: list) -> bool:
    return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, second, strict=True))


def test_a_checkpoint_saved_before_the_bins_were_stored_queries_with_16(
    tmp_path: Path, tiny_settings
) -> None:
    run = train_tiny(tmp_path / "run", [*tiny_settings, "memory.lightness_bins=16"])
    image = next((tmp_path / "run" / "data").rglob("*.png"))
    before = Colorizer.from_pretrained(run)(image, top_k=2)
    old = saved_without(run, tmp_path / "old.safetensors", "memory", "lightness_bins")
    colorizer = Colorizer.from_pretrained(old)
    assert colorizer.memopainter.config.memory.lightness_bins == 16
    assert colorizer.memopainter.query_head.linear.in_features == 32 + 16
    assert same_colorings(colorizer(image, top_k=2), before)


def test_a_checkpoint_saved_before_the_condition_was_normalised_loads_without_it(
    tmp_path: Path, tiny_settings
) -> None:
    run = train_tiny(tmp_path / "run", [*tiny_settings, "model.cond_norm=false"])
    image = next((tmp_path / "run" / "data").rglob("*.png"))
    before = Colorizer.from_pretrained(run)(image, top_k=2)
    old = saved_without(run, tmp_path / "old.safetensors", "model", "cond_norm", described="generator")
    colorizer = Colorizer.from_pretrained(old)
    assert not colorizer.memopainter.config.model.cond_norm
    assert not colorizer.memopainter.generator.cond_norm
    assert same_colorings(colorizer(image, top_k=2), before)

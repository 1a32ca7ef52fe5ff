"""Models saved before a setting existed load as they were trained: a key missing from the saved config (or
from a network's description) takes the value runs had before it, not today's default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import train_tiny

from memopainter.core.checkpoint import RESERVED_META_KEYS, load_checkpoint, save_checkpoint
from memopainter.core.model import MODEL_FILE
from memopainter.inference import Colorizer


def loaded_as_old(
    tmp_path: Path, settings: list[str], section: str, key: str, described: str | None = None
) -> Colorizer:
    """Train a tiny run with `settings`, save its model as one written before [section] key existed (and
    before the `described` network recorded the argument of the same name), and load that; the loaded
    model must color a training image exactly as the run's own model does."""
    run = train_tiny(tmp_path / "run", settings)
    image = next((tmp_path / "run" / "data").rglob("*.png"))
    tensors, meta = load_checkpoint(run / MODEL_FILE)
    del meta["config"][section][key]
    if described is not None:
        del meta[described][key]
    meta = {name: value for name, value in meta.items() if name not in RESERVED_META_KEYS}
    save_checkpoint(tmp_path / "old.safetensors", tensors, meta)
    colorizer = Colorizer.from_pretrained(tmp_path / "old.safetensors")
    before = Colorizer.from_pretrained(run)(image, top_k=2)
    after = colorizer(image, top_k=2)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(after, before, strict=True))
    return colorizer


def test_a_checkpoint_saved_before_the_bins_were_stored_queries_with_16(
    tmp_path: Path, tiny_settings
) -> None:
    settings = [*tiny_settings, "memory.lightness_bins=16"]
    colorizer = loaded_as_old(tmp_path, settings, "memory", "lightness_bins")
    assert colorizer.model.config.memory.lightness_bins == 16
    assert colorizer.model.query_head.linear.in_features == 32 + 16


def test_a_checkpoint_saved_before_the_condition_was_normalised_loads_without_it(
    tmp_path: Path, tiny_settings
) -> None:
    settings = [*tiny_settings, "model.cond_norm=false"]
    colorizer = loaded_as_old(tmp_path, settings, "model", "cond_norm", described="generator")
    assert not colorizer.model.config.model.cond_norm
    assert not colorizer.model.generator.cond_norm


def test_a_checkpoint_whose_query_head_recorded_feature_dim_loads(tmp_path: Path, tiny_settings) -> None:
    run = train_tiny(tmp_path / "run", tiny_settings)
    tensors, meta = load_checkpoint(run / MODEL_FILE)
    meta["query_head"] = {"feature_dim": meta["query_head"].pop("descriptor_dim"), **meta["query_head"]}
    meta = {name: value for name, value in meta.items() if name not in RESERVED_META_KEYS}
    save_checkpoint(tmp_path / "old.safetensors", tensors, meta)
    colorizer = Colorizer.from_pretrained(tmp_path / "old.safetensors")
    assert colorizer.model.query_head.linear.in_features == meta["query_head"]["feature_dim"]

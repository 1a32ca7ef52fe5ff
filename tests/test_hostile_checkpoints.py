"""Well-formed but hostile model checkpoints: refused with one line before anything large is allocated."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from memopainter.config import RunConfig
from memopainter.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from memopainter.core.model import build_model, load_memopainter


@pytest.fixture
def saved(tmp_path: Path, tiny_settings: tuple[str, ...]) -> tuple[dict, dict]:
    """The tensors and meta of a freshly built tiny model, as a checkpoint file holds them."""
    config = RunConfig().override(list(tiny_settings))
    model = build_model(config, num_images=9, backbone_name="tiny", backbone_sha256=None, backbone_dim=32)
    path = tmp_path / "model.safetensors"
    model.save(path)
    return load_checkpoint(path)


def rewrite(tmp_path: Path, tensors: dict, meta: dict) -> Path:
    path = tmp_path / "hostile.safetensors"
    meta = {k: v for k, v in meta.items() if k not in ("format_version", "memopainter_version")}
    save_checkpoint(path, tensors, meta)
    return path


def test_the_untouched_checkpoint_loads(tmp_path: Path, saved) -> None:
    assert load_memopainter(rewrite(tmp_path, *saved)).memory.size == 11


def test_nan_weights_are_refused_naming_the_tensor(tmp_path: Path, saved) -> None:
    tensors, meta = saved
    tensors = dict(tensors)
    key = next(k for k in tensors if k.startswith("generator.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    with pytest.raises(CheckpointError, match=f"tensor {key} holds NaN or infinite values") as error:
        load_memopainter(rewrite(tmp_path, tensors, meta))
    assert "\n" not in str(error.value)


def test_a_huge_memory_in_the_header_is_refused_before_it_is_allocated(tmp_path: Path, saved) -> None:
    tensors, meta = copy.deepcopy(saved)
    meta["memory"]["size"] = 10**9  # 10^9 slots x 16 floats: 64 GB of keys if it were believed
    meta["config"]["memory"]["size"] = 10**9
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="the file holds keys"):
        load_memopainter(rewrite(tmp_path, tensors, meta))
    assert time.perf_counter() - start < 30  # refused from the header, not after trying to allocate


def test_a_generator_description_that_disagrees_with_the_config_is_refused(tmp_path: Path, saved) -> None:
    tensors, meta = copy.deepcopy(saved)
    meta["generator"]["base_channels"] = 4096
    with pytest.raises(CheckpointError, match="generator description .* does not match its config"):
        load_memopainter(rewrite(tmp_path, tensors, meta))


@pytest.mark.parametrize(
    ("part", "key", "value", "named"),
    [
        ("config", None, "x", "config is str, not dict"),
        ("memory", None, "x", "memory is str, not dict | None"),
        ("class_names", None, 5, "class_names is int, not list"),
        ("source_paths", None, [1, 2], "source_paths holds items that are not str"),
        ("step", None, None, "step is NoneType, not int"),
        ("generator", "norm", "weird", "model.norm must be"),
        ("generator", "dropout", 5.0, "model.dropout must be in [0, 1)"),
        ("generator", "lightness", "yes", "not true or false"),
    ],
)
def test_a_header_of_the_wrong_kinds_is_refused_in_one_line(tmp_path: Path, saved, part, key, value, named):
    tensors, meta = copy.deepcopy(saved)
    if key is None:
        meta[part] = value
    else:
        meta[part][key] = value
    with pytest.raises(CheckpointError, match="inconsistent model description") as error:
        load_memopainter(rewrite(tmp_path, tensors, meta))
    assert named in str(error.value) and "\n" not in str(error.value)


def test_a_config_with_networks_past_the_size_limits_is_refused(tmp_path: Path, saved) -> None:
    tensors, meta = copy.deepcopy(saved)
    meta["config"]["model"]["base_channels"] = 100_000
    meta["generator"]["base_channels"] = 100_000
    with pytest.raises(CheckpointError, match="model.base_channels must be from 4 to 256"):
        load_memopainter(rewrite(tmp_path, tensors, meta))


@pytest.mark.parametrize("command", ["colorize", "evaluate"])
def test_commands_refuse_a_nan_model_with_one_line(
    tmp_path: Path, saved, sprite_writer, capsys, command
) -> None:
    from memopainter.cli import colorize, evaluate

    tensors, meta = saved
    tensors = {
        k: torch.full_like(v, float("inf")) if k.startswith("query_head.") else v for k, v in tensors.items()
    }
    model = rewrite(tmp_path, tensors, meta)
    sprite_writer(tmp_path / "images")
    module = {"colorize": colorize, "evaluate": evaluate}[command]
    argv = [command, str(model), str(tmp_path / "images")]
    argv += ["--recursive", "-o", str(tmp_path / "out")] if command == "colorize" else []
    assert run_cli(module, argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "holds NaN or infinite values" in lines[0]
    assert not (tmp_path / "out").exists()

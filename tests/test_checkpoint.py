"""Specification of training checkpoints: one safetensors file, atomic writes, exact resume, no pickle."""

from __future__ import annotations

import inspect
import json
import math
import os
import pickle
import random
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import memopainter
import memopainter.core.checkpoint as checkpoint_module
from memopainter.core.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    module_from_tensors,
    module_to_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    rng_from_tensors,
    rng_to_tensors,
    save_checkpoint,
)


def tiny_model(seed: int) -> nn.Module:
    """A two-layer MLP with a buffer, initialised from `seed`."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def adam_steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[torch.Tensor]) -> None:
    """One Adam step per batch on a fixed regression loss."""
    for batch in batches:
        optimizer.zero_grad()
        loss = (model(batch) - 1.0).pow(2).mean()
        loss.backward()
        optimizer.step()


def write_raw(path: Path, meta: dict | None) -> Path:
    """A safetensors file written directly, with the given "memopainter" metadata object (or none)."""
    metadata = None if meta is None else {"memopainter": json.dumps(meta)}
    save_file({"w": torch.zeros(2)}, path, metadata=metadata)
    return path


def temp_files(folder: Path) -> list[str]:
    """Names of leftover temporary files in a folder."""
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# Saving and loading


def test_round_trip_keeps_every_dtype_shape_and_value(tmp_path: Path) -> None:
    tensors = {
        "a.float32": torch.randn(3, 4, generator=torch.Generator().manual_seed(0)),
        "a.float64": torch.tensor([1.0 / 3.0, -2.5e-300], dtype=torch.float64),
        "b.int64": torch.tensor([2**62, -7, 0]),
        "b.bool": torch.tensor([[True, False], [False, True]]),
        "c.uint8": torch.arange(256, dtype=torch.uint8),
        "c.scalar": torch.tensor(7.25),
        "c.empty": torch.zeros(0, 3),
    }
    save_checkpoint(tmp_path / "run.safetensors", tensors, {"step": 1})
    loaded, _ = load_checkpoint(tmp_path / "run.safetensors")
    assert loaded.keys() == tensors.keys()
    for key, tensor in tensors.items():
        assert loaded[key].dtype == tensor.dtype, key
        assert loaded[key].shape == tensor.shape, key
        assert torch.equal(loaded[key], tensor), key


def test_nested_meta_comes_back_with_format_and_package_version(tmp_path: Path) -> None:
    meta = {
        "config": {"feature": "palette", "top_k": 32, "margin": 0.1, "image_size": [256, 256]},
        "backbone": {"name": "resnet18", "sha256": "f37072fd"},
        "class_names": ["knight", "mage"],
        "step": 1200,
        "best": None,
        "resumed": False,
    }
    save_checkpoint(tmp_path / "run.safetensors", {}, meta)
    _, loaded = load_checkpoint(tmp_path / "run.safetensors")
    assert loaded == {**meta, "format_version": 1, "memopainter_version": memopainter.__version__}
    assert FORMAT_VERSION == 1


def test_tuples_in_meta_come_back_as_lists(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "run.safetensors", {}, {"size": (64, 48)})
    assert load_checkpoint(tmp_path / "run.safetensors")[1]["size"] == [64, 48]


def test_save_creates_missing_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "00001" / "last.safetensors"
    save_checkpoint(path, {"x": torch.ones(1)}, {})
    assert path.is_file()


def test_save_replaces_an_existing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, {"x": torch.zeros(1)}, {"step": 1})
    save_checkpoint(path, {"x": torch.ones(1)}, {"step": 2})
    tensors, meta = load_checkpoint(path)
    assert meta["step"] == 2
    assert tensors["x"].item() == 1.0


def test_a_checkpoint_gets_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        save_checkpoint(tmp_path / "run.safetensors", {}, {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "run.safetensors").stat().st_mode) == 0o640


def test_tied_overlapping_and_strided_tensors_are_saved_as_separate_copies(tmp_path: Path) -> None:
    weight = torch.arange(6.0)
    matrix = torch.arange(12.0).reshape(3, 4)
    tensors = {"tied.a": weight, "tied.b": weight, "half.a": weight[:4], "half.b": weight[2:]}
    tensors["t"] = matrix.t()
    save_checkpoint(tmp_path / "run.safetensors", tensors, {})
    loaded, _ = load_checkpoint(tmp_path / "run.safetensors")
    assert loaded["tied.b"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert loaded["half.b"].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert loaded["t"].tolist() == [[0.0, 4.0, 8.0], [1.0, 5.0, 9.0], [2.0, 6.0, 10.0], [3.0, 7.0, 11.0]]
    assert weight.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # the caller's tensors are untouched


def test_save_moves_every_tensor_to_the_cpu_and_load_gives_cpu_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No GPU here: spy on Tensor.cpu, the call that turns a CUDA tensor into a host one.
    moved = []
    original_cpu = torch.Tensor.cpu

    def spy(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        moved.append(tuple(self.shape))
        return original_cpu(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", spy)
    save_checkpoint(tmp_path / "run.safetensors", {"a": torch.ones(2), "b": torch.ones(3, 1)}, {})
    assert sorted(moved) == [(2,), (3, 1)]
    monkeypatch.undo()
    loaded, _ = load_checkpoint(tmp_path / "run.safetensors")
    assert {tensor.device.type for tensor in loaded.values()} == {"cpu"}


def test_save_keeps_gradients_out_of_the_file(tmp_path: Path) -> None:
    weight = nn.Parameter(torch.ones(2))
    save_checkpoint(tmp_path / "run.safetensors", {"w": weight}, {})
    loaded, _ = load_checkpoint(tmp_path / "run.safetensors")
    assert not loaded["w"].requires_grad
    assert type(loaded["w"]) is torch.Tensor


@pytest.mark.parametrize(
    ("meta", "named"),
    [
        ({"loss": torch.tensor(1.0)}, "meta['loss'] is a Tensor"),
        ({"cfg": {"lr": np.float32(0.1)}}, "meta['cfg']['lr'] is a float32"),
        ({"best": math.inf}, "meta['best'] is inf"),
        ({"names": {3: "cat"}}, "meta['names'] has a non-string key 3"),
        ({"items": [1, {2.5}]}, "meta['items'][1] is a set"),
    ],
)
def test_meta_that_json_cannot_hold_is_refused_naming_where(tmp_path: Path, meta: dict, named: str) -> None:
    path = tmp_path / "run.safetensors"
    with pytest.raises(CheckpointError, match="not JSON-serialisable") as caught:
        save_checkpoint(path, {"x": torch.ones(1)}, meta)
    assert str(caught.value).startswith(f"{path}: ")
    assert named in str(caught.value)
    assert not path.exists()


def test_reserved_meta_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "run.safetensors", {}, {"format_version": 1, "step": 3})


@pytest.mark.parametrize(
    ("tensors", "problem"),
    [
        ({"x": [1.0, 2.0]}, "tensors\\['x'\\] is a list, not a torch.Tensor"),
        ({"__metadata__": torch.ones(1)}, "'__metadata__' is reserved"),
        ({"": torch.ones(1)}, "non-empty strings"),
        ({"s": torch.eye(2).to_sparse()}, "only dense tensors"),
    ],
)
def test_bad_tensors_are_refused(tmp_path: Path, tensors: dict, problem: str) -> None:
    with pytest.raises(CheckpointError, match=problem):
        save_checkpoint(tmp_path / "run.safetensors", tensors, {})
    assert not (tmp_path / "run.safetensors").exists()


def test_saving_onto_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is a directory"):
        save_checkpoint(tmp_path, {}, {})


# Atomicity


def test_a_failed_rename_leaves_the_old_checkpoint_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, {"x": torch.zeros(4)}, {"step": 1})
    before = path.read_bytes()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.os, "replace", failing_replace)
    with pytest.raises(CheckpointError, match="No space left on device") as caught:
        save_checkpoint(path, {"x": torch.ones(4)}, {"step": 2})
    assert str(caught.value).startswith(f"{path}: ")
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_a_serializer_crash_mid_write_leaves_the_old_checkpoint_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, {"x": torch.zeros(4)}, {"step": 1})
    before = path.read_bytes()

    def half_write(tensors: dict, filename: Path, metadata: dict) -> None:
        Path(filename).write_bytes(before[: len(before) // 2])
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(checkpoint_module, "save_file", half_write)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        save_checkpoint(path, {"x": torch.ones(4)}, {"step": 2})
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []
    assert load_checkpoint(path)[1]["step"] == 1


def test_the_temp_file_lives_next_to_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # os.replace is atomic only within one file system, hence the same folder.
    renames = []
    original_replace = os.replace

    def recording_replace(src: str, dst: str) -> None:
        renames.append((Path(src), Path(dst)))
        original_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", recording_replace)
    save_checkpoint(tmp_path / "sub" / "run.safetensors", {}, {})
    [(src, dst)] = renames
    assert src.parent == dst.parent == tmp_path / "sub"
    assert src.name.startswith(".run.safetensors.")


# Refusals on load


def truncated(tmp_path: Path) -> Path:
    """A real checkpoint with its last 10 bytes cut off."""
    save_checkpoint(tmp_path / "good.safetensors", {"x": torch.randn(100)}, {"step": 1})
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-10])
    return tmp_path / "cut.safetensors"


def random_bytes(tmp_path: Path) -> Path:
    """A file of seeded random bytes."""
    (tmp_path / "noise.safetensors").write_bytes(np.random.default_rng(0).bytes(1000))
    return tmp_path / "noise.safetensors"


def a_pickle(tmp_path: Path) -> Path:
    """A torch.save file, the format we never read."""
    torch.save({"x": torch.ones(2)}, tmp_path / "old.pt")
    return tmp_path / "old.pt"


def empty(tmp_path: Path) -> Path:
    """A zero-byte file."""
    (tmp_path / "empty.safetensors").write_bytes(b"")
    return tmp_path / "empty.safetensors"


def newer_major(tmp_path: Path) -> Path:
    """A checkpoint claiming a package version one major release ahead."""
    major = int(memopainter.__version__.split(".")[0])
    meta = {"format_version": 1, "memopainter_version": f"{major + 1}.0.0"}
    return write_raw(tmp_path / "future.safetensors", meta)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: tmp / "absent.safetensors", "no such file"),
        (lambda tmp: tmp, "is a directory"),
        (truncated, "not a readable safetensors file.*incomplete metadata"),
        (random_bytes, "not a readable safetensors file"),
        (a_pickle, "not a readable safetensors file"),
        (empty, "not a readable safetensors file"),
        (lambda tmp: write_raw(tmp / "plain.safetensors", None), "not a MemoPainter checkpoint"),
        (newer_major, r"written by memopainter \d+\.0\.0 \(major \d+\).*reads major \d+ checkpoints only"),
        (
            lambda tmp: write_raw(tmp / "f.st", {"format_version": 2, "memopainter_version": "0.1.0"}),
            "checkpoint format 2 is newer than format 1",
        ),
        (lambda tmp: write_raw(tmp / "f.st", {"memopainter_version": "0.1.0"}), "format_version None"),
        (lambda tmp: write_raw(tmp / "f.st", {"format_version": 1}), "memopainter_version None"),
        (lambda tmp: write_raw(tmp / "f.st", [1, 2]), "a list, not an object"),
    ],
    ids=[
        "missing",
        "directory",
        "truncated",
        "random",
        "pickle",
        "empty",
        "no-metadata",
        "major",
        "format",
        "no-format",
        "no-version",
        "not-object",
    ],
)
def test_unusable_files_are_refused_naming_the_path(tmp_path: Path, make, problem: str) -> None:
    path = make(tmp_path)
    with pytest.raises(CheckpointError, match=problem) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_metadata_that_is_not_json_is_refused(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(1)}, tmp_path / "bad.safetensors", metadata={"memopainter": "{step: 1"})
    with pytest.raises(CheckpointError, match="corrupt MemoPainter metadata"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_a_newer_minor_release_of_the_same_major_is_accepted(tmp_path: Path) -> None:
    major = int(memopainter.__version__.split(".")[0])
    meta = {"format_version": 1, "memopainter_version": f"{major}.99.3"}
    path = write_raw(tmp_path / "minor.safetensors", meta)
    assert load_checkpoint(path)[1]["memopainter_version"] == f"{major}.99.3"


def test_checkpoint_error_is_a_value_error() -> None:
    assert issubclass(CheckpointError, ValueError)


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(0)
    save_checkpoint(tmp_path / "run.safetensors", module_to_tensors(model, "generator"), {"step": 1})

    def forbidden(*args, **kwargs) -> None:
        raise AssertionError("pickle used")

    for target, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(target, name, forbidden)
    tensors, _ = load_checkpoint(tmp_path / "run.safetensors")
    assert torch.equal(tensors["generator.0.weight"], model[0].weight)
    source = inspect.getsource(checkpoint_module)
    assert "import pickle" not in source
    assert "torch.load(" not in source


# Modules


def test_module_tensors_are_namespaced_and_include_buffers() -> None:
    tensors = module_to_tensors(tiny_model(0), "generator")
    assert sorted(tensors) == [
        "generator.0.bias",
        "generator.0.weight",
        "generator.1.bias",
        "generator.1.num_batches_tracked",
        "generator.1.running_mean",
        "generator.1.running_var",
        "generator.1.weight",
        "generator.3.bias",
        "generator.3.weight",
    ]


def test_module_round_trip_through_a_file_restores_every_parameter_and_buffer(tmp_path: Path) -> None:
    source, target = tiny_model(0), tiny_model(1)
    source[1].running_mean.fill_(0.5)
    tensors = {**module_to_tensors(source, "generator"), **module_to_tensors(tiny_model(2), "discriminator")}
    save_checkpoint(tmp_path / "run.safetensors", tensors, {})
    module_from_tensors(target, load_checkpoint(tmp_path / "run.safetensors")[0], "generator")
    for name, expected in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], expected), name


def test_module_load_names_missing_and_unexpected_keys() -> None:
    tensors = module_to_tensors(tiny_model(0), "generator")
    del tensors["generator.3.bias"]
    tensors["generator.9.weight"] = torch.ones(1)
    with pytest.raises(ValueError, match=r"missing keys: 3.bias; unexpected keys: 9.weight"):
        module_from_tensors(tiny_model(1), tensors, "generator")


def test_module_load_with_a_wrong_prefix_lists_every_key_missing() -> None:
    tensors = module_to_tensors(tiny_model(0), "generator")
    with pytest.raises(ValueError, match=r"^gen: .*missing keys: 0.bias, 0.weight, 1.bias"):
        module_from_tensors(tiny_model(1), tensors, "gen")


def test_module_load_not_strict_loads_what_matches() -> None:
    source, target = tiny_model(0), tiny_model(1)
    tensors = module_to_tensors(source, "g")
    del tensors["g.3.weight"]
    untouched = target[3].weight.clone()
    module_from_tensors(target, tensors, "g", strict=False)
    assert torch.equal(target[0].weight, source[0].weight)
    assert torch.equal(target[3].weight, untouched)


def test_module_load_names_a_shape_mismatch() -> None:
    tensors = module_to_tensors(tiny_model(0), "g")
    tensors["g.0.weight"] = torch.zeros(8, 5)
    problem = r"'0.weight' has shape \(8, 5\) in the checkpoint, \(8, 4\) in Sequential"
    with pytest.raises(ValueError, match=problem):
        module_from_tensors(tiny_model(1), tensors, "g")


# Optimizers


def test_adam_resumed_from_a_checkpoint_takes_bitwise_identical_steps(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(5, 4, generator=gen) for _ in range(5)]
    model = tiny_model(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.999))
    adam_steps(model, optimizer, batches[:2])
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer, "optim.generator")
    save_checkpoint(
        tmp_path / "run.safetensors",
        {**module_to_tensors(model, "generator"), **opt_tensors},
        {"optim": {"generator": opt_meta}},
    )
    adam_steps(model, optimizer, batches[2:])

    resumed = tiny_model(1)
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=0.5)  # settings come from the checkpoint
    tensors, meta = load_checkpoint(tmp_path / "run.safetensors")
    module_from_tensors(resumed, tensors, "generator")
    optimizer_from_tensors(resumed_optimizer, tensors, meta["optim"]["generator"], "optim.generator")
    adam_steps(resumed, resumed_optimizer, batches[2:])

    for name, expected in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], expected), name
    assert resumed_optimizer.state_dict()["state"][0]["step"].item() == 5.0
    expected_sq = optimizer.state[model[0].weight]["exp_avg_sq"]
    assert torch.equal(resumed_optimizer.state[resumed[0].weight]["exp_avg_sq"], expected_sq)


def test_optimizer_tensors_are_namespaced_and_param_groups_stay_in_meta() -> None:
    model = tiny_model(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    adam_steps(model, optimizer, [torch.ones(3, 4)])
    tensors, meta = optimizer_to_tensors(optimizer, "optim.generator")
    assert "optim.generator.state.3.exp_avg" in tensors
    assert "optim.generator.state.3.step" in tensors
    assert len(tensors) == 3 * len(list(model.parameters()))
    group = meta["param_groups"][0]
    assert group["betas"] == {"tuple": [0.9, 0.999]}
    assert group["lr"] == 1e-3
    assert group["amsgrad"] is False
    assert group["params"] == [0, 1, 2, 3, 4, 5]
    json.dumps(meta, allow_nan=False)


def test_optimizer_param_groups_keep_tuples_none_bools_tensors_and_infinities(tmp_path: Path) -> None:
    model = tiny_model(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01), foreach=False)
    optimizer.param_groups[0]["clip_norm"] = math.inf  # a caller's own key, which JSON cannot hold as is
    adam_steps(model, optimizer, [torch.ones(3, 4)])
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer, "optim")
    save_checkpoint(tmp_path / "run.safetensors", opt_tensors, {"optim": opt_meta})

    fresh = torch.optim.Adam(tiny_model(1).parameters(), lr=0.5)
    tensors, meta = load_checkpoint(tmp_path / "run.safetensors")
    optimizer_from_tensors(fresh, tensors, meta["optim"], "optim")
    group = fresh.param_groups[0]
    assert group["betas"] == (0.9, 0.999) and isinstance(group["betas"], tuple)
    assert group["fused"] is None
    assert group["foreach"] is False
    assert group["amsgrad"] is False
    assert isinstance(group["lr"], torch.Tensor) and group["lr"].item() == pytest.approx(0.01)
    assert group["clip_norm"] == math.inf


def test_a_fresh_optimizer_with_no_state_round_trips() -> None:
    optimizer = torch.optim.Adam(tiny_model(0).parameters(), lr=3e-4)
    tensors, meta = optimizer_to_tensors(optimizer, "optim")
    assert tensors == {}
    fresh = torch.optim.Adam(tiny_model(1).parameters(), lr=1.0)
    optimizer_from_tensors(fresh, tensors, meta, "optim")
    assert fresh.param_groups[0]["lr"] == 3e-4


def test_optimizer_restore_names_a_missing_tensor() -> None:
    model = tiny_model(0)
    optimizer = torch.optim.Adam(model.parameters())
    adam_steps(model, optimizer, [torch.ones(3, 4)])
    tensors, meta = optimizer_to_tensors(optimizer, "optim")
    del tensors["optim.state.2.exp_avg"]
    with pytest.raises(ValueError, match="optimizer tensor 'optim.state.2.exp_avg' is missing"):
        optimizer_from_tensors(torch.optim.Adam(tiny_model(1).parameters()), tensors, meta, "optim")


# Random states


def draw_everything() -> list[float]:
    """A few numbers from every global generator a training loop touches."""
    return [
        *torch.rand(3).tolist(),
        *torch.randn(2).tolist(),
        random.random(),
        random.gauss(0.0, 1.0),
        *np.random.rand(2).tolist(),
        float(np.random.standard_normal()),
    ]


def test_restoring_random_states_repeats_the_same_numbers(tmp_path: Path) -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    draw_everything()  # leaves a cached Gaussian in Python's and numpy's generators
    rng_tensors, rng_meta = rng_to_tensors()
    save_checkpoint(tmp_path / "run.safetensors", rng_tensors, {"rng": rng_meta})
    first = draw_everything()
    draw_everything()

    tensors, meta = load_checkpoint(tmp_path / "run.safetensors")
    rng_from_tensors(tensors, meta["rng"])
    assert draw_everything() == first


def test_random_state_tensors_have_fixed_names_and_exact_dtypes() -> None:
    tensors, meta = rng_to_tensors()
    assert {"rng.torch", "rng.python", "rng.numpy"} <= tensors.keys()
    assert tensors["rng.torch"].dtype == torch.uint8
    assert tensors["rng.numpy"].shape == (624,)
    assert tensors["rng.python"].shape == (625,)
    assert meta["numpy"]["name"] == "MT19937"
    assert meta["cuda_devices"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_random_state_restore_names_missing_tensors() -> None:
    tensors, meta = rng_to_tensors()
    del tensors["rng.numpy"]
    with pytest.raises(ValueError, match="random state tensors missing: rng.numpy"):
        rng_from_tensors(tensors, meta)

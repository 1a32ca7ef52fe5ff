"""LPIPS (alex, v0.1) plumbing with a seeded random AlexNet and random heads saved in the official formats."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from conftest import LPIPS_HEAD_SHAPES, TORCHVISION_FEATURE_SHAPES
from safetensors.torch import load_file, save_file
from torch import nn

import memopainter.evaluation.lpips as lpips_module
from memopainter.evaluation.lpips import (
    ALEXNET_FILE,
    HEADS_FILE,
    HEADS_MEMBER,
    HEADS_SHA256,
    MIN_SIDE,
    AlexNetFeatures,
    LinearHeads,
    LpipsUnavailable,
    extract_lpips_heads,
    load_lpips,
    lpips_distance,
    lpips_status,
)
from memopainter.networks.backbones.weights import search_dirs, sha256_file


@pytest.fixture(scope="session")
def model(weight_files: tuple[Path, Path]) -> nn.Module:
    """LPIPS loaded from the random weight files."""
    return load_lpips(*weight_files)


@pytest.fixture
def no_weight_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty MemoPainter weights and torch hub folders, so nothing is found by name; returns the first."""
    monkeypatch.setenv("MEMOPAINTER_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "weights"


def image(seed: int, height: int = 64, width: int = 48) -> torch.Tensor:
    """A seeded (3, H, W) image in [0, 1]."""
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))


# The state_dict formats.


def test_alexnet_keys_and_shapes_are_torchvisions():
    state = AlexNetFeatures().state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == TORCHVISION_FEATURE_SHAPES


def test_head_keys_and_shapes_are_the_lpips_packages():
    state = LinearHeads().state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == LPIPS_HEAD_SHAPES


def test_loaded_weights_are_the_files_weights(model: nn.Module, weight_files: tuple[Path, Path]):
    alexnet = load_file(weight_files[0])
    heads = load_file(weight_files[1])
    assert torch.equal(model.net.features[10].weight, alexnet["features.10.weight"])
    assert torch.equal(model.heads.lin2.model[1].weight, heads["lin2.model.1.weight"])
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_taps_are_the_five_relus_with_lpips_channel_counts():
    taps = AlexNetFeatures()(torch.zeros(1, 3, 64, 64))
    assert [t.shape[1] for t in taps] == [64, 192, 384, 256, 256]
    assert all(bool((t >= 0).all()) for t in taps)  # taken after the ReLUs


# Distances.


def test_identical_images_are_at_distance_0(model: nn.Module):
    assert lpips_distance(model, image(1), image(1)) == pytest.approx(0.0, abs=1e-7)


def test_different_images_are_at_a_positive_distance(model: nn.Module):
    assert lpips_distance(model, image(1), image(2)) > 1e-3


def test_distance_is_symmetric(model: nn.Module):
    forward, backward = lpips_distance(model, image(3), image(4)), lpips_distance(model, image(4), image(3))
    assert forward == pytest.approx(backward, rel=1e-5)


def test_distance_grows_with_the_perturbation(model: nn.Module):
    base, noise = image(5), image(6) - 0.5
    small = lpips_distance(model, (base + 0.05 * noise).clamp(0, 1), base)
    large = lpips_distance(model, (base + 0.5 * noise).clamp(0, 1), base)
    assert 0.0 < small < large


def test_smallest_accepted_side_is_the_smallest_alexnet_can_take(model: nn.Module):
    assert lpips_distance(model, image(7, MIN_SIDE, MIN_SIDE), image(8, MIN_SIDE, MIN_SIDE)) > 0.0
    with pytest.raises(RuntimeError):  # one pixel less and AlexNet's second max-pool has nothing to pool
        AlexNetFeatures()(torch.zeros(1, 3, MIN_SIDE - 1, MIN_SIDE - 1))
    with pytest.raises(ValueError, match="at least 31 x 31"):
        lpips_distance(model, image(7, 30, 64), image(8, 30, 64))


def test_images_outside_0_1_are_refused(model: nn.Module):
    with pytest.raises(ValueError, match=r"pred_rgb must hold values in \[0, 1\]"):
        lpips_distance(model, image(1) * 2 - 1, image(2))


# Unusable files.


def test_missing_alexnet_file_is_unavailable_with_a_reason(tmp_path: Path, weight_files: tuple[Path, Path]):
    missing = tmp_path / ALEXNET_FILE
    with pytest.raises(LpipsUnavailable, match="no such torchvision AlexNet weights file") as caught:
        load_lpips(missing, weight_files[1])
    assert str(missing) in caught.value.reason
    assert "no package registry ships" in caught.value.reason


def test_missing_heads_file_says_how_to_fetch_it(tmp_path: Path, weight_files: tuple[Path, Path]):
    with pytest.raises(LpipsUnavailable, match="fetch_lpips_heads"):
        load_lpips(weight_files[0], tmp_path / HEADS_FILE)


def test_corrupt_file_is_unavailable(tmp_path: Path, weight_files: tuple[Path, Path]):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(weight_files[1].read_bytes()[:200])  # a truncated download
    with pytest.raises(LpipsUnavailable, match="unreadable as LPIPS v0.1 alex heads"):
        load_lpips(weight_files[0], corrupt)


def test_a_pickle_of_unknown_origin_is_never_unpickled(tmp_path: Path, weight_files):
    odd = tmp_path / "odd.pth"
    torch.save(load_file(weight_files[1]), odd)  # the right tensors, but a pickle nobody published
    with pytest.raises(LpipsUnavailable, match="a pickle of unknown origin is never unpickled"):
        load_lpips(weight_files[0], odd)


def test_the_published_files_pickles_are_read_in_torchvisions_legacy_format(
    monkeypatch, tmp_path: Path, weight_files
):
    alexnet, heads = tmp_path / "alexnet.pth", tmp_path / "heads.pth"
    # torchvision's 2017 file predates the zip format: saved the same way, and taken as the published one.
    torch.save(load_file(weight_files[0]), alexnet, _use_new_zipfile_serialization=False)
    torch.save(load_file(weight_files[1]), heads)
    monkeypatch.setattr(lpips_module, "ALEXNET_SHA256_PREFIX", sha256_file(alexnet)[:8])
    monkeypatch.setattr(lpips_module, "HEADS_SHA256", sha256_file(heads))
    from_pickles, from_safetensors = load_lpips(alexnet, heads), load_lpips(*weight_files)
    assert lpips_distance(from_pickles, image(1), image(2)) == lpips_distance(
        from_safetensors, image(1), image(2)
    )


def test_files_swapped_are_unavailable_naming_the_missing_keys(weight_files: tuple[Path, Path]):
    alexnet, heads = weight_files
    with pytest.raises(LpipsUnavailable, match=r"not torchvision AlexNet weights \(10 keys missing"):
        load_lpips(heads, alexnet)


def test_a_wrong_shape_is_unavailable_naming_the_key(tmp_path: Path, weight_files: tuple[Path, Path]):
    heads = load_file(weight_files[1])
    heads["lin3.model.1.weight"] = torch.zeros(1, 128, 1, 1)
    wrong = tmp_path / "wrong.safetensors"
    save_file(heads, wrong)
    with pytest.raises(LpipsUnavailable, match=r"lin3.model.1.weight is \(1, 128, 1, 1\)"):
        load_lpips(weight_files[0], wrong)


def test_a_file_under_an_official_name_must_carry_its_hash(tmp_path: Path, weight_files: tuple[Path, Path]):
    impostor = tmp_path / ALEXNET_FILE
    impostor.write_bytes(weight_files[0].read_bytes())
    with pytest.raises(LpipsUnavailable, match="is not the published file's"):
        load_lpips(impostor, weight_files[1])


# lpips_status, for the evaluate command.


def test_status_with_both_files_gives_a_model(weight_files: tuple[Path, Path]):
    found, reason = lpips_status(*weight_files)
    assert reason is None
    assert lpips_distance(found, image(1), image(2)) > 0.0


def test_status_without_files_names_both_and_how_to_get_them(no_weight_dirs: Path):
    found, reason = lpips_status()
    assert found is None
    assert reason.startswith("LPIPS unavailable: ")
    assert ALEXNET_FILE in reason and HEADS_FILE in reason
    assert str(no_weight_dirs) in reason
    assert "fetch_lpips_heads" in reason


def test_status_with_a_corrupt_file_gives_the_loaders_reason(tmp_path: Path, weight_files: tuple[Path, Path]):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a checkpoint")
    found, reason = lpips_status(corrupt, weight_files[1])
    assert found is None
    assert reason.startswith(f"LPIPS unavailable: {corrupt}: unreadable")


def test_status_looks_for_the_official_names_in_the_weights_folder(no_weight_dirs: Path, weight_files):
    no_weight_dirs.mkdir(parents=True)
    (no_weight_dirs / ALEXNET_FILE).write_bytes(weight_files[0].read_bytes())
    (no_weight_dirs / HEADS_FILE).write_bytes(weight_files[1].read_bytes())
    found, reason = lpips_status()
    # Found both; random weights under the official name then fail the hash check.
    assert found is None
    assert str(no_weight_dirs / ALEXNET_FILE) in reason and "sha256" in reason


# Reading the heads out of the lpips wheel (no network: hand-made wheels).


def test_extracting_from_a_wheel_with_other_bytes_writes_nothing(tmp_path: Path, weight_files):
    wheel = tmp_path / "lpips-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(weight_files[1], HEADS_MEMBER)
    dest = tmp_path / "out" / HEADS_FILE
    dest.parent.mkdir()
    with pytest.raises(LpipsUnavailable, match="expected df73285e"):
        extract_lpips_heads(wheel, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial file left behind


def test_extracting_from_a_wheel_without_the_heads_writes_nothing(tmp_path: Path):
    wheel = tmp_path / "lpips-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("lpips/__init__.py", "")
    with pytest.raises(LpipsUnavailable, match=f"holds no {HEADS_MEMBER}"):
        extract_lpips_heads(wheel, tmp_path / HEADS_FILE)
    assert not (tmp_path / HEADS_FILE).exists()


def test_extracting_from_a_file_that_is_not_a_zip_is_refused(tmp_path: Path):
    wheel = tmp_path / "lpips-0.1.4-py3-none-any.whl"
    wheel.write_bytes(b"<html>proxy error</html>")
    with pytest.raises(LpipsUnavailable, match="not a readable wheel"):
        extract_lpips_heads(wheel, tmp_path / HEADS_FILE)


# The real heads, when fetched (fetch_lpips_heads()); never downloaded by the tests.


def _real_heads() -> Path | None:
    for folder in search_dirs():
        if (folder / HEADS_FILE).is_file():
            return folder / HEADS_FILE
    return None


@pytest.mark.skipif(_real_heads() is None, reason=f"{HEADS_FILE} not fetched (run fetch_lpips_heads())")
def test_the_real_heads_have_the_expected_hash_keys_and_shapes(weight_files: tuple[Path, Path]):
    path = _real_heads()
    assert sha256_file(path) == HEADS_SHA256
    state = torch.load(path, map_location="cpu", weights_only=True)  # saved from CUDA tensors
    assert {key: tuple(value.shape) for key, value in state.items()} == LPIPS_HEAD_SHAPES
    assert all(bool((value >= 0).all()) for value in state.values())  # trained heads are non-negative
    real = load_lpips(weight_files[0], path)
    assert torch.equal(real.heads.lin0.model[1].weight, state["lin0.model.1.weight"])

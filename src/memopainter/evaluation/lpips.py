"""LPIPS (Zhang et al. 2018), the AlexNet variant v0.1, without torchvision or the lpips package.

It runs only where two files exist; nothing here downloads anything unless `fetch_lpips_heads` is called:
- torchvision's ImageNet AlexNet, `alexnet-owt-7be5be79.pth`. No package registry ships it: copy it from a
  machine where torchvision downloaded it (torch's hub checkpoints folder) or pass its path;
- LPIPS's learned linear heads, `lpips/weights/v0.1/alex.pth` inside the `lpips` 0.1.4 wheel on PyPI, which
  `fetch_lpips_heads` reads out of the wheel (downloaded with `pip download`, never installed).
Unless given as paths, both are looked for in the MemoPainter weights folder, then torch's hub checkpoints.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from memopainter.downloads import DownloadError, pip_download_wheel
from memopainter.evaluation.metrics import check_rgb_pair
from memopainter.files import write_bytes
from memopainter.networks.backbones.weights import (
    UnknownPickle,
    mismatch,
    read_tensors,
    search_dirs,
    sha256_file,
    weights_dir,
)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_SHA256_PREFIX = "7be5be79"  # torchvision names its files by the first 8 hex digits of their SHA-256
HEADS_FILE = "lpips-alex-v0.1.pth"  # our name for the wheel's lpips/weights/v0.1/alex.pth
HEADS_REQUIREMENT = "lpips==0.1.4"
HEADS_MEMBER = "lpips/weights/v0.1/alex.pth"
HEADS_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
TAP_CHANNELS = (64, 192, 384, 256, 256)  # conv1..conv5 of AlexNet
MIN_SIDE = 31  # AlexNet's second max-pool needs a 3 x 3 input: (31 + 4 - 11) // 4 + 1 = 7 -> 3 -> 3

_TAP_LAYERS = (1, 4, 7, 9, 11)  # the ReLUs after conv1..conv5 in torchvision's alexnet.features
# LPIPS v0.1's ScalingLayer: inputs in [-1, 1] -> roughly ImageNet-normalised.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # as lpips.normalize_tensor


class LpipsUnavailable(RuntimeError):
    """LPIPS cannot run: a weights file is missing, unreadable or not the expected one."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet convolutional trunk, same state_dict keys, returning the five post-ReLU taps."""

    def __init__(self) -> None:
        super().__init__()
        # torchvision's final max-pool (index 12) has no weights and comes after the last tap: left out.
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) ImageNet-normalised -> [(B, 64, h1, w1), (B, 192, ...), ..., (B, 256, h5, w5)]."""
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAP_LAYERS:
                taps.append(x)
        return taps


class _LinearHead(nn.Module):
    """One tap's learned channel weights: a 1x1 convolution to one channel, no bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # lpips has a Dropout at index 0 (a no-op when evaluating); the Identity keeps the key model.1.weight.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, 1, h, w)."""
        return self.model(x)


class LinearHeads(nn.Module):
    """The five linear heads lin0..lin4, state_dict keys as in the lpips package's alex.pth."""

    def __init__(self) -> None:
        super().__init__()
        for index, channels in enumerate(TAP_CHANNELS):
            self.add_module(f"lin{index}", _LinearHead(channels))

    def forward(self, diffs: list[torch.Tensor]) -> torch.Tensor:
        """Per-tap squared feature differences -> (B,): each head's spatial mean, summed over taps."""
        heads = [getattr(self, f"lin{index}") for index in range(len(TAP_CHANNELS))]
        return sum(head(diff).mean(dim=(1, 2, 3)) for head, diff in zip(heads, diffs, strict=True))


class LPIPS(nn.Module):
    """LPIPS distance (alex, v0.1) between images in [-1, 1]; load trained weights with `load_lpips`."""

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexNetFeatures()
        self.heads = LinearHeads()
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) twice, values in [-1, 1] -> (B,) distances; 0 for identical inputs."""
        taps = self.net((torch.cat((x0, x1)) - self.shift) / self.scale)  # both images in one batch
        diffs = []
        for tap in taps:
            f0, f1 = _unit(tap).chunk(2)  # each (B, C, h, w)
            diffs.append((f0 - f1) ** 2)
        return self.heads(diffs)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's feature vector to unit length over channels, as lpips.normalize_tensor."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)


def _how_to_get_alexnet() -> str:
    return (
        f"no package registry ships torchvision's AlexNet: copy {ALEXNET_FILE} (from torch's hub "
        f"checkpoints folder on a machine with torchvision) into {weights_dir()} or pass its path"
    )


def _how_to_get_heads() -> str:
    return (
        "call memopainter.evaluation.lpips.fetch_lpips_heads() (pip downloads the lpips 0.1.4 wheel and "
        f"copies its {HEADS_MEMBER} to {weights_dir() / HEADS_FILE}) or pass the file's path"
    )


def _read_state(
    path: Path, official: Callable[[str], bool], official_name: str, what: str, how: str
) -> dict[str, torch.Tensor]:
    """A state_dict of tensors from `path`, or LpipsUnavailable naming `what` and `how` to get it.

    `official(sha256)` tells the published file: under its `official_name` a file must be it (else it is
    corrupt), and only it is read as a pickle; any other file only as .safetensors (see read_tensors).
    """
    if not path.is_file():
        raise LpipsUnavailable(f"{path}: no such {what} file; {how}")
    digest = sha256_file(path)
    if path.name == official_name and not official(digest):
        raise LpipsUnavailable(
            f"{path}: sha256 {digest[:16]}... is not the published file's (corrupt?); {how}"
        )
    try:
        state = read_tensors(path, official(digest), what)
    except UnknownPickle as exc:
        raise LpipsUnavailable(f"{exc}; {how}") from exc
    except Exception as exc:  # torch.load and safetensors raise many types for truncated or foreign files
        raise LpipsUnavailable(f"{path}: unreadable as {what} ({type(exc).__name__}); {how}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LpipsUnavailable(f"{path}: not a state_dict of tensors, so not {what}; {how}")
    return dict(state)


def _check_keys(
    path: Path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str, how: str
) -> None:
    """Raise LpipsUnavailable unless `state` has exactly `expected`'s keys and shapes."""
    problem = mismatch(state, expected)
    if problem is not None:
        raise LpipsUnavailable(f"{path}: not {what} ({problem}); {how}")


def load_lpips(alexnet_path: str | Path, heads_path: str | Path, device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS in eval mode from torchvision's AlexNet file and the lpips alex.pth heads; else LpipsUnavailable.

    The AlexNet file's classifier.* weights are not used. A file under its official name must also carry
    its hash (the 8-digit prefix for AlexNet, the full SHA-256 for the heads); a file of another hash is
    read only as .safetensors (never unpickled), and checked for its keys and shapes.
    """
    model = LPIPS()
    alexnet_path, heads_path = Path(alexnet_path).expanduser(), Path(heads_path).expanduser()

    what, how = "torchvision AlexNet weights", _how_to_get_alexnet()
    state = _read_state(
        alexnet_path, lambda digest: digest.startswith(ALEXNET_SHA256_PREFIX), ALEXNET_FILE, what, how
    )
    features = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    _check_keys(alexnet_path, features, model.net.state_dict(), what, how)
    model.net.load_state_dict(features)

    what, how = "LPIPS v0.1 alex heads", _how_to_get_heads()
    state = _read_state(heads_path, lambda digest: digest == HEADS_SHA256, HEADS_FILE, what, how)
    _check_keys(heads_path, state, model.heads.state_dict(), what, how)
    model.heads.load_state_dict(state)

    return model.to(device).eval().requires_grad_(False)


def lpips_distance(model: LPIPS, pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> float:
    """LPIPS between two sRGB images shaped (3, H, W) in [0, 1], each side at least 31 px; lower is better."""
    check_rgb_pair(pred_rgb, true_rgb)
    height, width = true_rgb.shape[1:]
    if min(height, width) < MIN_SIDE:
        side = f"{MIN_SIDE} x {MIN_SIDE}"
        raise ValueError(f"lpips needs images of at least {side} pixels, got {height} x {width}")
    like = model.shift
    x0 = pred_rgb.detach().to(like) * 2.0 - 1.0  # (3, H, W) in [-1, 1]
    x1 = true_rgb.detach().to(like) * 2.0 - 1.0
    with torch.no_grad():
        return float(model(x0.unsqueeze(0), x1.unsqueeze(0))[0])


def _find(name: str) -> Path | None:
    """The first `name` in search_dirs(), or None."""
    for folder in search_dirs():
        if (folder / name).is_file():
            return folder / name
    return None


def lpips_status(
    alexnet_path: str | Path | None = None,
    heads_path: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[LPIPS | None, str | None]:
    """(model, None) when LPIPS can run, else (None, reason): what is missing or wrong and how to get it.

    Paths left as None are looked for by their official names in the MemoPainter weights folder, then
    torch's hub checkpoints folder.
    """
    alexnet = Path(alexnet_path).expanduser() if alexnet_path is not None else _find(ALEXNET_FILE)
    heads = Path(heads_path).expanduser() if heads_path is not None else _find(HEADS_FILE)
    where = " or ".join(str(folder) for folder in search_dirs())
    missing = []
    if alexnet is None:
        missing.append(f"AlexNet weights {ALEXNET_FILE} not found in {where}: {_how_to_get_alexnet()}")
    elif not alexnet.is_file():
        missing.append(f"AlexNet weights {alexnet}: no such file")
    if heads is None:
        missing.append(f"LPIPS heads {HEADS_FILE} not found in {where}: {_how_to_get_heads()}")
    elif not heads.is_file():
        missing.append(f"LPIPS heads {heads}: no such file")
    if missing:
        return None, "LPIPS unavailable: " + "; ".join(missing)
    try:
        return load_lpips(alexnet, heads, device), None
    except LpipsUnavailable as exc:
        return None, f"LPIPS unavailable: {exc.reason}"


def extract_lpips_heads(wheel_path: str | Path, dest: str | Path) -> Path:
    """Copy the v0.1 alex heads out of an lpips 0.1.4 wheel to `dest`, atomically, if the hash matches."""
    wheel_path, dest = Path(wheel_path), Path(dest)
    try:
        wheel = zipfile.ZipFile(wheel_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise LpipsUnavailable(f"{wheel_path}: not a readable wheel (zip) file; nothing was written") from exc
    with wheel:
        if HEADS_MEMBER not in wheel.namelist():
            raise LpipsUnavailable(f"{wheel_path}: holds no {HEADS_MEMBER}; nothing was written")
        try:
            data = wheel.read(HEADS_MEMBER)  # 6 kB
        except zipfile.BadZipFile as exc:  # a CRC error: the download was damaged
            raise LpipsUnavailable(f"{wheel_path}: damaged ({exc}); nothing was written") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != HEADS_SHA256:
        raise LpipsUnavailable(
            f"{wheel_path}: {HEADS_MEMBER} has sha256 {digest[:16]}..., expected {HEADS_SHA256}; "
            "nothing was written"
        )
    return write_bytes(dest, data)


def fetch_lpips_heads(dest_dir: str | Path | None = None) -> Path:
    """Fetch LPIPS's v0.1 alex heads from the lpips 0.1.4 wheel on PyPI into `dest_dir` (or weights_dir()).

    The only function here that touches the network: `pip download --no-deps` into a temporary folder, the
    wheel never installed. A hash-verified copy already at the destination is returned without downloading.
    """
    dest = (Path(dest_dir).expanduser() if dest_dir is not None else weights_dir()) / HEADS_FILE
    if dest.is_file() and sha256_file(dest) == HEADS_SHA256:
        return dest
    with tempfile.TemporaryDirectory(prefix="memopainter-wheel-") as tmp:
        try:
            wheel = pip_download_wheel(HEADS_REQUIREMENT, Path(tmp))
        except DownloadError as error:
            raise LpipsUnavailable(str(error)) from error
        return extract_lpips_heads(wheel, dest)

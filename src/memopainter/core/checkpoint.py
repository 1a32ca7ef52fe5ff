"""Self-describing training checkpoints: one safetensors file, tensors by namespaced key, JSON metadata.

Layout: tensors under dotted keys ("generator.down.0.weight", "optim.generator.state.3.exp_avg",
"rng.torch"), and everything else (config, versions, step, optimizer param_groups, ...) as one JSON
string in the safetensors header metadata under "memopainter". Nothing is pickled, so loading a
checkpoint cannot run code. Tensors are stored on the CPU, so a GPU-trained checkpoint loads anywhere.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from memopainter import __version__
from memopainter.files import atomic_write

FORMAT_VERSION = 1
METADATA_KEY = "memopainter"  # the safetensors header metadata entry that holds our JSON
RESERVED_META_KEYS = ("format_version", "memopainter_version")
RNG_PREFIX = "rng"
_TAGS = ("tensor", "tuple", "dict", "float")  # markers for values that JSON cannot hold as they are
_MAX_LISTED_KEYS = 10


class CheckpointError(ValueError):
    """A checkpoint file that cannot be written or read; the message is "<path>: <problem>"."""


def _major(version: str) -> int:
    """The major number of a "major.minor.patch" version string."""
    return int(version.split(".", 1)[0])


def _join(prefix: str, name: str) -> str:
    """A namespaced tensor key: "prefix.name", or just "name" when the prefix is empty."""
    return f"{prefix}.{name}" if prefix else name


def _check_json(value: Any, where: str) -> None:
    """Raise TypeError naming `where` unless `value` survives a JSON round trip (tuples become lists)."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value}, which JSON cannot hold")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}")
            _check_json(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where} is a {type(value).__name__}, which JSON cannot hold")


def _prepare_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors with no two sharing storage (safetensors refuses shared storage)."""
    prepared: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()
    for key, tensor in tensors.items():
        if not isinstance(key, str) or not key:
            raise CheckpointError(f"{path}: tensor keys must be non-empty strings, got {key!r}")
        if key == "__metadata__":
            raise CheckpointError(f"{path}: tensor key '__metadata__' is reserved by safetensors")
        if not isinstance(tensor, torch.Tensor):
            kind = type(tensor).__name__
            raise CheckpointError(f"{path}: tensors[{key!r}] is a {kind}, not a torch.Tensor")
        if tensor.layout != torch.strided:
            raise CheckpointError(f"{path}: tensors[{key!r}] has layout {tensor.layout}; only dense tensors")
        cpu = tensor.detach().cpu().contiguous()
        storage = cpu.untyped_storage().data_ptr()
        if storage in seen_storage:  # tied weights, or views of one buffer
            cpu = cpu.clone()
            storage = cpu.untyped_storage().data_ptr()
        if storage:  # empty tensors have no storage to share
            seen_storage.add(storage)
        prepared[key] = cpu
    return prepared


def save_checkpoint(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], meta: dict) -> None:
    """Write tensors (moved to CPU) and JSON meta to a safetensors file atomically: old or new, never half."""
    path = Path(path)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta must be a dict, got {type(meta).__name__}")
    reserved = [key for key in RESERVED_META_KEYS if key in meta]
    if reserved:
        raise CheckpointError(f"{path}: meta keys {reserved} are reserved, save_checkpoint writes them")
    try:
        _check_json(meta, "meta")
    except TypeError as error:
        raise CheckpointError(f"{path}: meta is not JSON-serialisable: {error}") from None
    header = json.dumps({**meta, "format_version": FORMAT_VERSION, "memopainter_version": __version__})
    prepared = _prepare_tensors(path, tensors)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        with atomic_write(path) as temp:
            save_file(prepared, temp, metadata={METADATA_KEY: header})
    except OSError as error:
        raise CheckpointError(f"{path}: cannot write checkpoint: {error.strerror or error}") from error


def _read_meta(path: Path, raw: dict[str, str] | None) -> dict:
    """Our JSON metadata from a safetensors header, refusing foreign, corrupt or incompatible checkpoints."""
    if not raw or METADATA_KEY not in raw:
        raise CheckpointError(f"{path}: not a MemoPainter checkpoint (no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: corrupt MemoPainter metadata: {error}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt MemoPainter metadata: a {type(meta).__name__}, not an object")
    fmt, version = meta.get("format_version"), meta.get("memopainter_version")
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise CheckpointError(f"{path}: corrupt MemoPainter metadata: format_version {fmt!r}")
    try:
        major = _major(version)
    except (AttributeError, ValueError):
        problem = f"corrupt MemoPainter metadata: memopainter_version {version!r}"
        raise CheckpointError(f"{path}: {problem}") from None
    if major != _major(__version__):
        raise CheckpointError(
            f"{path}: written by memopainter {version} (major {major}); this is memopainter {__version__}, "
            f"which reads major {_major(__version__)} checkpoints only"
        )
    if fmt > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {fmt} is newer than format {FORMAT_VERSION} that memopainter "
            f"{__version__} reads; upgrade memopainter"
        )
    return meta


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by save_checkpoint: its tensors (on the CPU) and its meta."""
    return _read(Path(path), with_tensors=True)


def load_checkpoint_meta(path: str | os.PathLike[str]) -> dict:
    """A checkpoint's meta alone, from its header: no tensor is read."""
    return _read(Path(path), with_tensors=False)[1]


def _read(path: Path, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """The meta, and with `with_tensors` the tensors on the CPU, of a checkpoint; else CheckpointError."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        with safe_open(path, framework="pt", device="cpu") as reader:
            meta = _read_meta(path, reader.metadata())
            tensors = {key: reader.get_tensor(key) for key in reader.keys()} if with_tensors else {}
    except SafetensorError as error:
        problem = f"not a readable safetensors file (truncated or corrupt?): {error}"
        raise CheckpointError(f"{path}: {problem}") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read checkpoint: {error.strerror or error}") from error
    return tensors, meta


def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able form of `value`: tensors go into `tensors` under `key`, tags mark what JSON lacks."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, torch.Tensor):
        tensors[key] = value
        return {"tensor": key}
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, f"{key}.{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, f"{key}.{i}", tensors) for i, item in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(name, str) for name in value):
        return {"dict": {name: _encode(item, f"{key}.{name}", tensors) for name, item in value.items()}}
    raise ValueError(f"{key}: a {type(value).__name__} cannot be stored in a checkpoint")


def _decode(value: Any, prefix: str, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of _encode, reading tagged tensors from `tensors` under `prefix`."""
    if isinstance(value, list):
        return [_decode(item, prefix, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or next(iter(value)) not in _TAGS:
        raise ValueError(f"{prefix}: malformed optimizer meta entry {value!r}")
    tag, payload = next(iter(value.items()))
    if tag == "tensor":
        key = _join(prefix, payload)
        if key not in tensors:
            raise ValueError(f"{prefix}: optimizer tensor {key!r} is missing")
        return tensors[key]
    if tag == "tuple":
        return tuple(_decode(item, prefix, tensors) for item in payload)
    if tag == "dict":
        return {name: _decode(item, prefix, tensors) for name, item in payload.items()}
    return float(payload)


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state_dict as tensors under "<prefix>.state.<param>.<name>" and JSON-able meta."""
    state_dict = optimizer.state_dict()
    relative: dict[str, torch.Tensor] = {}
    state = {
        str(param): {name: _encode(value, f"state.{param}.{name}", relative) for name, value in items.items()}
        for param, items in state_dict["state"].items()
    }
    groups = [
        {name: _encode(value, f"param_groups.{i}.{name}", relative) for name, value in group.items()}
        for i, group in enumerate(state_dict["param_groups"])
    ]
    tensors = {_join(prefix, key): tensor for key, tensor in relative.items()}
    return tensors, {"state": state, "param_groups": groups}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: dict, prefix: str
) -> None:
    """Restore an optimizer exactly from what optimizer_to_tensors returned (tensors may hold other keys)."""
    if not isinstance(meta, dict) or "state" not in meta or "param_groups" not in meta:
        raise ValueError(f"{prefix}: optimizer meta needs 'state' and 'param_groups'")
    state = {
        int(param): {name: _decode(value, prefix, tensors) for name, value in entries.items()}
        for param, entries in meta["state"].items()
    }
    groups = [
        {name: _decode(value, prefix, tensors) for name, value in group.items()}
        for group in meta["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _listed(keys: list[str]) -> str:
    """A short, sorted listing of keys for an error message."""
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    return shown if len(keys) <= _MAX_LISTED_KEYS else f"{shown} and {len(keys) - _MAX_LISTED_KEYS} more"


def module_to_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A module's state_dict (parameters and persistent buffers) under "<prefix>.<name>" keys."""
    tensors = {}
    for name, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{prefix}: state_dict entry {name!r} is a {type(value).__name__}, not a tensor")
        tensors[_join(prefix, name)] = value
    return tensors


def module_from_tensors(
    module: nn.Module, tensors: Mapping[str, torch.Tensor], prefix: str, strict: bool = True
) -> None:
    """Load the "<prefix>.*" tensors into a module; strict refuses missing and unexpected keys by name."""
    start = f"{prefix}." if prefix else ""
    state = {key[len(start) :]: tensor for key, tensor in tensors.items() if key.startswith(start)}
    expected = module.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if strict and (missing or unexpected):
        problems = []
        if missing:
            problems.append(f"missing keys: {_listed(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listed(unexpected)}")
        raise ValueError(f"{prefix}: tensors do not match {type(module).__name__}; {'; '.join(problems)}")
    for name, tensor in state.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise ValueError(
                f"{prefix}: {name!r} has shape {tuple(tensor.shape)} in the checkpoint, "
                f"{tuple(expected[name].shape)} in {type(module).__name__}"
            )
    module.load_state_dict(state, strict=strict)


def rng_to_tensors() -> tuple[dict[str, torch.Tensor], dict]:
    """The global random states (torch CPU, every CUDA device, Python `random`, numpy) as tensors and meta."""
    tensors = {f"{RNG_PREFIX}.torch": torch.get_rng_state()}
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    for index, state in enumerate(cuda_states):
        tensors[f"{RNG_PREFIX}.cuda.{index}"] = state
    py_version, py_words, gauss_next = random.getstate()
    tensors[f"{RNG_PREFIX}.python"] = torch.tensor(py_words, dtype=torch.int64)  # (625,) 624 words + position
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors[f"{RNG_PREFIX}.numpy"] = torch.from_numpy(np.array(np_keys, dtype=np.uint32))  # (624,)
    meta = {
        "cuda_devices": len(cuda_states),
        "python": {"version": py_version, "gauss_next": gauss_next},
        "numpy": {
            "name": np_name,
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
    }
    return tensors, meta


def rng_from_tensors(tensors: Mapping[str, torch.Tensor], meta: dict) -> None:
    """Restore the global random states saved by rng_to_tensors, so the same random numbers follow.

    CUDA states are restored on the devices that exist both here and in the checkpoint; a checkpoint
    from a GPU machine still resumes on the CPU, with the CPU streams exact.
    """
    needed = [f"{RNG_PREFIX}.{name}" for name in ("torch", "python", "numpy")]
    needed += [f"{RNG_PREFIX}.cuda.{index}" for index in range(meta.get("cuda_devices", 0))]
    missing = [key for key in needed if key not in tensors]
    if missing:
        raise ValueError(f"{RNG_PREFIX}: random state tensors missing: {_listed(missing)}")
    if not {"python", "numpy"} <= meta.keys():
        raise ValueError(f"{RNG_PREFIX}: random state meta needs 'python' and 'numpy', got {sorted(meta)}")
    torch_state = tensors[f"{RNG_PREFIX}.torch"]
    if torch_state.dtype != torch.uint8:
        raise ValueError(f"{RNG_PREFIX}.torch: expected a uint8 tensor, got {torch_state.dtype}")
    torch.set_rng_state(torch_state.cpu())
    if torch.cuda.is_available():
        for index in range(min(meta.get("cuda_devices", 0), torch.cuda.device_count())):
            torch.cuda.set_rng_state(tensors[f"{RNG_PREFIX}.cuda.{index}"].cpu(), index)
    py = meta["python"]
    words = tuple(int(word) for word in tensors[f"{RNG_PREFIX}.python"].tolist())
    random.setstate((py["version"], words, py["gauss_next"]))
    npm = meta["numpy"]
    keys = tensors[f"{RNG_PREFIX}.numpy"].cpu().numpy().astype(np.uint32)
    np.random.set_state((npm["name"], keys, npm["pos"], npm["has_gauss"], npm["gauss"]))

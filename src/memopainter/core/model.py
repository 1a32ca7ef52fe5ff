"""A trained MemoPainter: generator, discriminator, query head and memory, saved as one checkpoint file.

The checkpoint describes itself: architecture settings, the color feature, the backbone's name and weight
hash, the class of every training image (so retrieval accuracy can be measured later) and the package
version travel with the weights, so inference needs nothing but the file.

A model of head "bins" trains by classification and has no discriminator unless loss.bins_adversarial
adds an adversarial term; older "bins" checkpoints still hold an untrained one, which loading leaves unread.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from memopainter import __version__
from memopainter.color.features import FEATURE_DIMS
from memopainter.config import RunConfig
from memopainter.core.checkpoint import (
    CheckpointError,
    load_checkpoint,
    module_from_tensors,
    module_to_tensors,
    save_checkpoint,
)
from memopainter.data.descriptors import descriptor_dim, parse_descriptors
from memopainter.data.preprocess import AB_SCALE
from memopainter.memory import ColorMemory, QueryHead, default_memory_size
from memopainter.networks.backbones.registry import get_spec
from memopainter.networks.classification import annealed_mean
from memopainter.networks.discriminator import Discriminator
from memopainter.networks.generator import Generator

MODEL_FILE = "model.safetensors"  # the final model in a run folder
CHECKPOINT_FILE = "checkpoint.safetensors"  # the latest resumable state in a run folder
CONFIG_FILE = "config.json"  # the run's settings, readable without loading a model
KIND = "memopainter-model"
# Constructor arguments that set how much a network allocates: checked against the config on loading.
_SIZE_KEYS = ("image_size", "cond_dim", "base_channels", "mlp_hidden", "descriptor_dim", "key_dim")
# Constructor arguments renamed after models were saved with them: old files load under the new name.
_RENAMED = {"query_head": {"feature_dim": "descriptor_dim"}}


@dataclass
class MemoPainter:
    """The networks of one run and what is needed to use them."""

    config: RunConfig
    generator: Generator
    discriminator: Discriminator | None  # None for a model trained without an adversary
    query_head: QueryHead | None  # None for the no-memory ablation
    memory: ColorMemory | None
    backbone: dict = field(default_factory=dict)  # {"name": ..., "sha256": ...} of the query backbone
    class_names: list[str] = field(default_factory=list)
    source_classes: list[int] = field(default_factory=list)  # training image index -> class index, -1 none
    source_paths: list[str] = field(default_factory=list)  # training image index -> path relative to DATA_DIR
    step: int = 0  # training steps taken
    version: str = __version__  # of the package that wrote it

    def modules(self) -> dict[str, torch.nn.Module]:
        """The parts that hold tensors, by checkpoint prefix."""
        parts: dict[str, torch.nn.Module] = {"generator": self.generator}
        if self.discriminator is not None:
            parts["discriminator"] = self.discriminator
        if self.memory is not None:
            parts.update(query_head=self.query_head, memory=self.memory)
        return parts

    def source_class(self, source: int) -> str | None:
        """The class name of training image `source` (an index into source_paths); None when unknown."""
        label = self.source_classes[source] if 0 <= source < len(self.source_classes) else -1
        return self.class_names[label] if 0 <= label < len(self.class_names) else None

    def slot_origin(self, slot: int) -> tuple[str | None, str | None]:
        """(path, class name) of the training image that last wrote memory slot `slot`; None when unknown."""
        source = int(self.memory.sources[slot])
        path = self.source_paths[source] if 0 <= source < len(self.source_paths) else None
        return path, self.source_class(source)

    def to(self, device: str | torch.device) -> MemoPainter:
        """Move every part to `device`."""
        for module in self.modules().values():
            module.to(device)
        return self

    def save(
        self, path: str | Path, extra_tensors: dict | None = None, extra_meta: dict | None = None
    ) -> None:
        """Write the bundle as one checkpoint file (atomically), with any resumable state given."""
        save_checkpoint(
            path, {**self.tensors(), **(extra_tensors or {})}, {**self.meta(), **(extra_meta or {})}
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """All weights and memory buffers under namespaced keys."""
        out: dict[str, torch.Tensor] = {}
        for prefix, module in self.modules().items():
            out.update(module_to_tensors(module, prefix))
        return out

    def meta(self) -> dict:
        """Everything but the tensors, as plain values."""
        return {
            "kind": KIND,
            "config": self.config.to_dict(),
            "generator": self.generator.config(),
            "discriminator": None if self.discriminator is None else self.discriminator.config(),
            "memory": None if self.memory is None else self.memory.config(),
            "query_head": None
            if self.query_head is None
            else {
                "descriptor_dim": self.query_head.linear.in_features,
                "key_dim": self.query_head.linear.out_features,
            },
            "backbone": self.backbone,
            "class_names": self.class_names,
            "source_classes": self.source_classes,
            "source_paths": self.source_paths,
            "step": self.step,
        }


def _descriptor_dim(config: RunConfig, backbone_dim: int) -> int:
    """The query head's input width: the descriptors of config.memory over a backbone's pooled features."""
    memory = config.memory
    return descriptor_dim(backbone_dim, parse_descriptors(memory.descriptors), memory.lightness_bins)


def build_model(
    config: RunConfig,
    num_images: int,
    backbone_name: str | None,
    backbone_sha256: str | None,
    backbone_dim: int,
) -> MemoPainter:
    """Fresh networks for a run over `num_images` training images, seeded from config.train.seed.

    `backbone_dim` is the backbone's pooled feature size; the query head reads memory.descriptors of it.
    """
    torch.manual_seed(config.train.seed)
    generator = Generator(**generator_arguments(config))
    discriminator = None
    if has_adversary(config):
        discriminator = Discriminator(**discriminator_arguments(config))
    query_head = memory = None
    if config.memory.enabled:
        query_head = QueryHead(_descriptor_dim(config, backbone_dim), config.memory.key_dim)
        memory = ColorMemory(**memory_arguments(config, num_images), seed=config.train.seed)
    backbone = {"name": backbone_name, "sha256": backbone_sha256} if config.memory.enabled else {}
    return MemoPainter(config, generator, discriminator, query_head, memory, backbone)


def has_adversary(config: RunConfig) -> bool:
    """Whether the run trains a discriminator: the GAN head, or the bins head with an adversarial term."""
    return config.model.head != "bins" or config.loss.bins_adversarial > 0


def generator_arguments(config: RunConfig) -> dict:
    """Generator constructor arguments from the config: the one place they are derived."""
    cond_dim = _cond_dim(config)
    return {
        "image_size": config.data.image_size,
        "cond_dim": cond_dim,
        "base_channels": config.model.base_channels,
        "mlp_hidden": config.model.mlp_hidden,
        "dropout": config.model.dropout,
        "norm": config.model.norm,
        "head": config.model.head,
        "cond_norm": config.model.cond_norm and cond_dim > 0,  # nothing to normalise without a condition
        "lightness": config.data.input == "lineart",  # line art carries no shading to keep
    }


def discriminator_arguments(config: RunConfig) -> dict:
    """Discriminator constructor arguments from the config."""
    return {
        "image_size": config.data.image_size,
        "cond_dim": _cond_dim(config),
        "base_channels": config.model.base_channels,
    }


def memory_arguments(config: RunConfig, num_images: int) -> dict:
    """ColorMemory constructor arguments; a config value of 0 leaves the setting to ColorMemory's default."""
    return {
        "size": config.memory.size or default_memory_size(num_images),
        "key_dim": config.memory.key_dim,
        "feature": config.data.feature,
        "threshold": config.memory.threshold or None,
        "margin": config.memory.margin or None,
        "top_k": config.memory.top_k or None,
        "supervised": config.memory.supervised,
    }


def _cond_dim(config: RunConfig) -> int:
    """Width of the generator's color condition: the memory's value width, or 0 without a memory."""
    return FEATURE_DIMS[config.data.feature] if config.memory.enabled else 0


def resolve_model_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder: its final model, else its latest checkpoint."""
    path = Path(path)
    if path.is_dir():
        for name in (MODEL_FILE, CHECKPOINT_FILE):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run folder holds neither {MODEL_FILE} nor {CHECKPOINT_FILE}")
    return path


def load_memopainter(path: str | Path, device: str | torch.device = "cpu") -> MemoPainter:
    """Rebuild a MemoPainter from a checkpoint file or run folder."""
    path = resolve_model_path(path)
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a MemoPainter model checkpoint (kind {meta.get('kind')!r})")
    try:
        _check_meta_types(meta)
        _check_memory_tensors(meta, tensors)
        model = _from_meta(meta, str(path))
    except (KeyError, TypeError, ValueError) as error:  # ConfigError is a ValueError
        raise CheckpointError(f"{path}: inconsistent model description ({error})") from error
    bad = next((key for key, tensor in tensors.items() if not _finite(tensor)), None)
    if bad is not None:
        problem = "holds NaN or infinite values (a damaged file, or a run that diverged)"
        raise CheckpointError(f"{path}: tensor {bad} {problem}")
    try:
        for prefix, module in model.modules().items():
            module_from_tensors(module, tensors, prefix)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error
    return model.to(device)


def _check_memory_tensors(meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """The recorded memory size must be that of the keys stored in the file, before anything is allocated:
    the file's own size then bounds what loading it allocates."""
    memory = meta.get("memory")
    if memory is None:
        return
    keys = tensors.get("memory.keys")
    shape = (memory.get("size"), memory.get("key_dim"))
    if keys is None or tuple(keys.shape) != shape:
        found = None if keys is None else tuple(keys.shape)
        raise ValueError(f"its memory is described as {shape} slots x key width, the file holds keys {found}")


def _finite(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def _from_meta(meta: dict, source: str) -> MemoPainter:
    """Fresh networks shaped as the checkpoint describes them (weights not loaded yet).

    Their shapes are derived from the recorded config, which is validated, and must agree with the
    recorded network descriptions: a hand-edited header cannot make us build networks of any size.
    """
    config = RunConfig.from_dict(meta["config"], source=source)
    generator = _described(meta, "generator", generator_arguments(config))
    _check_recorded_generator(generator, config)
    has_memory = config.memory.enabled
    discriminator = None
    if meta.get("discriminator") is not None and has_adversary(config):
        discriminator = Discriminator(**_described(meta, "discriminator", discriminator_arguments(config)))
    if has_memory:
        width = _descriptor_dim(config, get_spec(config.memory.backbone).feature_dim)
        expected = {"descriptor_dim": width, "key_dim": config.memory.key_dim}
        query_head = _described(meta, "query_head", expected)
        _check_memory(meta["memory"], config)
    return MemoPainter(
        config,
        Generator(**generator),
        discriminator,
        QueryHead(**query_head) if has_memory else None,
        ColorMemory(**meta["memory"], seed=0) if has_memory else None,
        meta.get("backbone", {}),
        meta.get("class_names", []),
        meta.get("source_classes", []),
        meta.get("source_paths", []),
        int(meta.get("step", 0)),
        str(meta.get("memopainter_version", "unknown")),
    )


def _check_memory(memory: dict, config: RunConfig) -> None:
    """Refuse a recorded memory of another key width or color feature than its config."""
    if memory.get("key_dim") != config.memory.key_dim or memory.get("feature") != config.data.feature:
        raise ValueError(f"its memory description {memory} does not match its config")


def _check_recorded_generator(generator: dict, config: RunConfig) -> None:
    """The generator's recorded settings, which win over its config's, must make a valid config too."""
    if not isinstance(generator["lightness"], bool) or not isinstance(generator["cond_norm"], bool):
        raise ValueError(f"its generator description {generator} has a setting that is not true or false")
    if generator["lightness"] and generator["head"] != "bins":
        raise ValueError("its generator predicts lightness without the bins head")
    settings = {key: generator[key] for key in ("norm", "head", "dropout", "cond_norm")}
    replace(config, model=replace(config.model, **settings)).validate()


def _check_meta_types(meta: dict) -> None:
    """Refuse a header whose parts are not of the kinds saving writes (a hand-edited or foreign file)."""
    for key, kind in _META_KINDS.items():
        if key in meta and not isinstance(meta[key], kind):
            raise ValueError(f"{key} is {type(meta[key]).__name__}, not {getattr(kind, '__name__', kind)}")
    for key, kind in (("class_names", str), ("source_paths", str), ("source_classes", int)):
        if not all(isinstance(item, kind) for item in meta.get(key, [])):
            raise ValueError(f"{key} holds items that are not {kind.__name__}")


_META_KINDS = {
    "config": dict,
    "generator": dict,
    "discriminator": dict | None,
    "memory": dict | None,
    "query_head": dict | None,
    "backbone": dict,
    "class_names": list,
    "source_classes": list,
    "source_paths": list,
    "step": int,
}


def _described(meta: dict, part: str, expected: dict) -> dict:
    """A network's recorded constructor arguments, refused unless its sizes are what its config builds.

    Settings that older versions did not record (norm, head, ...) come from the config; the recorded ones
    win otherwise, so old checkpoints rebuild exactly the networks they were trained with.
    """
    recorded = meta[part]
    if isinstance(recorded, dict):
        renamed = _RENAMED.get(part, {})
        recorded = {renamed.get(key, key): value for key, value in recorded.items()}
    sizes = [key for key in _SIZE_KEYS if key in expected]
    if not isinstance(recorded, dict) or any(recorded.get(key) != expected[key] for key in sizes):
        raise ValueError(f"its {part} description {recorded} does not match its config")
    return {**expected, **recorded}


@torch.no_grad()
def retrieve_conditions(
    model: MemoPainter, query_features: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k memory values per image (paper Figs. 4, 5): (B, k, value_dim), and their slots (B, k)."""
    if model.memory is None:
        raise ValueError("this model was trained without memory (--no-memory): it has no color conditions")
    k = min(k, model.memory.num_filled) or 1
    _, slots = model.memory.retrieve(model.query_head(query_features), k)  # (B, k)
    return model.memory.values[slots], slots


@torch.no_grad()
def predict_color(
    model: MemoPainter, gray: torch.Tensor, cond: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generator output in Lab units: gray (B, 1, S, S) as L / 100, cond (B, value_dim) -> ab (B, 2, S, S),
    and for a line-art model the predicted L / 100 (B, 1, S, S), else None (the input's lightness is kept).

    A generator of head "bins" (313 logits) is decoded by the annealed mean at model.bins_temperature.
    """
    was_training = model.generator.training
    model.generator.eval()
    try:
        out, lightness = model.generator.split(model.generator(gray, cond))
        if model.generator.head == "bins":  # out: (B, 313, S, S) logits
            return annealed_mean(out, model.config.model.bins_temperature), lightness
        return out * AB_SCALE, lightness  # out: (B, 2, S, S) ab / 110
    finally:
        model.generator.train(was_training)

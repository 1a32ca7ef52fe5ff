"""A trained MemoPainter: generator, discriminator, query head and memory, saved as one checkpoint file.

The checkpoint describes itself: architecture settings, the color feature, the backbone's name and weight
hash, the class of every training image (so retrieval accuracy can be measured later) and the package
version travel with the weights, so inference needs nothing but the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from memopainter.config import RunConfig
from memopainter.memory import ColorMemory, QueryHead, default_memory_size
from memopainter.networks.discriminator import Discriminator
from memopainter.networks.generator import Generator
from memopainter.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    module_from_tensors,
    module_to_tensors,
)

MODEL_FILE = "model.safetensors"  # the final model in a run folder
CHECKPOINT_FILE = "checkpoint.safetensors"  # the latest resumable state in a run folder
KIND = "memopainter-model"


@dataclass
class MemoPainter:
    """The networks of one run and what is needed to use them."""

    config: RunConfig
    generator: Generator
    discriminator: Discriminator
    query_head: QueryHead | None  # None for the no-memory ablation
    memory: ColorMemory | None
    backbone: dict = field(default_factory=dict)  # {"name": ..., "sha256": ...} of the query backbone
    class_names: list[str] = field(default_factory=list)
    source_classes: list[int] = field(default_factory=list)  # training image index -> class index, -1 none
    source_paths: list[str] = field(default_factory=list)  # training image index -> path relative to DATA_DIR

    def modules(self) -> dict[str, torch.nn.Module]:
        """The parts that hold tensors, by checkpoint prefix."""
        parts = {"generator": self.generator, "discriminator": self.discriminator}
        if self.memory is not None:
            parts.update(query_head=self.query_head, memory=self.memory)
        return parts

    def to(self, device: str | torch.device) -> MemoPainter:
        """Move every part to `device`."""
        for module in self.modules().values():
            module.to(device)
        return self

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
            "discriminator": self.discriminator.config(),
            "memory": None if self.memory is None else self.memory.config(),
            "query_head": None
            if self.query_head is None
            else {
                "feature_dim": self.query_head.linear.in_features,
                "key_dim": self.query_head.linear.out_features,
            },
            "backbone": self.backbone,
            "class_names": self.class_names,
            "source_classes": self.source_classes,
            "source_paths": self.source_paths,
        }


def build_model(
    config: RunConfig,
    num_images: int,
    backbone_name: str | None,
    backbone_sha256: str | None,
    feature_dim: int,
) -> MemoPainter:
    """Fresh networks for a run over `num_images` training images, seeded from config.train.seed."""
    torch.manual_seed(config.train.seed)
    value_dim = {"dist": 313, "rgb": 30}[config.data.feature]
    cond_dim = value_dim if config.memory.enabled else 0
    generator = Generator(
        config.data.image_size,
        cond_dim,
        base_channels=config.model.base_channels,
        mlp_hidden=config.model.mlp_hidden,
        dropout=config.model.dropout,
        norm=config.model.norm,
        head=config.model.head,
        cond_norm=config.model.cond_norm,
    )
    discriminator = Discriminator(config.data.image_size, cond_dim, base_channels=config.model.base_channels)
    query_head = memory = None
    if config.memory.enabled:
        query_head = QueryHead(feature_dim, config.memory.key_dim)
        memory = ColorMemory(**memory_arguments(config, num_images), seed=config.train.seed)
    backbone = {"name": backbone_name, "sha256": backbone_sha256} if config.memory.enabled else {}
    return MemoPainter(config, generator, discriminator, query_head, memory, backbone)


def memory_arguments(config: RunConfig, num_images: int) -> dict:
    """ColorMemory constructor arguments from the config; 0 means the paper's default for each setting."""
    size = config.memory.size or default_memory_size(num_images)
    return {
        "size": size,
        "key_dim": config.memory.key_dim,
        "feature": config.data.feature,
        "threshold": config.memory.threshold or None,
        "margin": config.memory.margin or None,
        "top_k": min(config.memory.top_k, size) if config.memory.top_k else None,
        "supervised": config.memory.supervised,
    }


def resolve_model_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder: its final model, else its latest checkpoint."""
    path = Path(path)
    if path.is_dir():
        for name in (MODEL_FILE, CHECKPOINT_FILE):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run folder holds neither {MODEL_FILE} nor {CHECKPOINT_FILE}")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[MemoPainter, dict, dict]:
    """Rebuild a MemoPainter from a checkpoint file or run folder; also returns the raw tensors and meta."""
    path = resolve_model_path(path)
    tensors, meta = load_checkpoint(path, device="cpu")
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a MemoPainter model checkpoint (kind {meta.get('kind')!r})")
    try:
        config = RunConfig.from_dict(meta["config"], source=str(path))
        generator = Generator(**meta["generator"])
        discriminator = Discriminator(**meta["discriminator"])
        query_head = memory = None
        if meta["memory"] is not None:
            query_head = QueryHead(**meta["query_head"])
            memory = ColorMemory(**meta["memory"], seed=0)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: inconsistent model description ({error})") from error
    model = MemoPainter(
        config,
        generator,
        discriminator,
        query_head,
        memory,
        meta.get("backbone", {}),
        meta.get("class_names", []),
        meta.get("source_classes", []),
        meta.get("source_paths", []),
    )
    try:
        for prefix, module in model.modules().items():
            module_from_tensors(module, tensors, prefix)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error
    return model.to(device), tensors, meta

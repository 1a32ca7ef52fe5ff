"""The training loop: per batch, as the paper, a triplet-loss step on the query head, a memory update, a
discriminator step and a generator step (sections 3.1 and 3.2).

With model.head "bins" (the classification of Zhang et al. 2016, with or without a memory) the D and G steps
are one class-rebalanced classification step on the generator instead; the discriminator stays in the model,
untrained, so checkpoints keep their layout.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from memopainter.config import RunConfig
from memopainter.data.cache import FeatureCache
from memopainter.data.dataset import TrainingData, load_training_data
from memopainter.data.preprocess import AB_SCALE
from memopainter.networks.backbones import load_backbone
from memopainter.networks.classification import classification_loss, rebalancing_weights
from memopainter.networks.losses import discriminator_loss, generator_loss
from memopainter.training.augment import draw_rotations, rotate_ab, rotate_feature
from memopainter.training.checkpoint import (
    load_checkpoint,
    module_from_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    rng_from_tensors,
    rng_to_tensors,
    save_checkpoint,
)
from memopainter.training.distributed import Group, is_communication_error
from memopainter.training.model import CHECKPOINT_FILE, MODEL_FILE, MemoPainter, build_model
from memopainter.training.samples import save_sample_grid

log = logging.getLogger(__name__)

SAMPLE_IMAGES = 8  # fixed training images shown in every sample grid


@dataclass
class Optimizers:
    """One Adam per part that learns; the query head has its own learning rate (memory.lr)."""

    generator: torch.optim.Adam
    discriminator: torch.optim.Adam
    query_head: torch.optim.Adam | None

    def items(self) -> dict[str, torch.optim.Adam]:
        """The optimizers by checkpoint prefix."""
        parts = {"generator": self.generator, "discriminator": self.discriminator}
        if self.query_head is not None:
            parts["query_head"] = self.query_head
        return parts


def make_optimizers(model: MemoPainter, config: RunConfig) -> Optimizers:
    """Adam for G and D (pix2pix betas) and for the query head."""
    betas = (config.train.beta1, config.train.beta2)
    query = None
    if model.query_head is not None:
        query = torch.optim.Adam(model.query_head.parameters(), lr=config.memory.lr)
    return Optimizers(
        torch.optim.Adam(model.generator.parameters(), lr=config.train.lr, betas=betas),
        torch.optim.Adam(model.discriminator.parameters(), lr=config.train.lr, betas=betas),
        query,
    )


def total_steps(config: RunConfig, num_images: int, world_size: int = 1) -> int:
    """Steps of the run: train.steps, or train.epochs passes over the data (batch_size images per rank)."""
    if config.train.steps:
        return config.train.steps
    return config.train.epochs * math.ceil(num_images / (config.train.batch_size * world_size))


def train_step(
    model: MemoPainter,
    optimizers: Optimizers,
    config: RunConfig,
    gray: torch.Tensor,
    ab: torch.Tensor,
    color: torch.Tensor,
    query_features: torch.Tensor | None,
    sources: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    bin_weights: torch.Tensor | None = None,
    condition: torch.Tensor | None = None,
) -> dict[str, float]:
    """One batch: triplet step and memory update, then D, then G. Returns the loss terms for the log.

    `gather` (distributed runs) concatenates every rank's tensor in rank order: the memory is then updated
    with the queries of all ranks, the same on each, so every rank keeps the same memory.
    With model.head "bins": G takes one classification step instead of the D and G steps, weighted by
    `bin_weights` (313,), the class-rebalancing weights of the training data (after the memory's step when
    there is a memory). `condition` (B, V) conditions G and D instead of `color`
    (the hue-rotated features of train.hue_rotation); the memory always gets the true `color`.
    """
    stats: dict[str, float] = {}
    cond = None
    if model.memory is not None:
        q, stats = memory_step(
            model, optimizers.query_head, config, query_features, color, sources, labels, gather
        )
        cond = color if condition is None else condition
        # Optionally condition G on what the memory retrieves, as at test time (off by default, as the paper).
        if config.train.retrieved_condition > 0:
            use = torch.rand(color.shape[0], generator=generator) < config.train.retrieved_condition
            _, slots = model.memory.retrieve(q.detach(), 1)
            cond = torch.where(use[:, None].to(color.device), model.memory.values[slots[:, 0]], cond)
    if config.model.head == "bins":
        return {**stats, **_classification_step(model, optimizers, gray, ab, cond, bin_weights)}

    fake = model.generator(gray, cond)  # (B, 2, S, S)
    d_loss = discriminator_loss(
        model.discriminator(gray, ab, cond), model.discriminator(gray, fake.detach(), cond)
    )
    optimizers.discriminator.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizers.discriminator.step()

    g_loss, parts = generator_loss(
        model.discriminator(gray, fake, cond),
        fake,
        ab,
        config.loss.adversarial,
        config.loss.smooth_l1,
        config.loss.smooth_l1_delta,
    )
    optimizers.generator.zero_grad(set_to_none=True)
    g_loss.backward()
    optimizers.generator.step()
    stats.update(d=d_loss.item(), g=g_loss.item(), **parts)
    return stats


def memory_step(
    model: MemoPainter,
    optimizer: torch.optim.Adam,
    config: RunConfig,
    query_features: torch.Tensor,
    color: torch.Tensor,
    sources: torch.Tensor,
    labels: torch.Tensor,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Section 3.1 for one batch: a threshold triplet step on the query head, then the memory update.

    Returns the batch's queries (B, key_dim), detached, and the memory's part of the log. Nothing here
    touches the global random state (the memory has its own), so the generator's training does not depend
    on the memory's settings.
    """
    q = model.query_head(query_features)  # (B, key_dim)
    supervised_labels = labels if config.memory.supervised else None
    terms = model.memory.triplet_terms(q, color, supervised_labels)
    optimizer.zero_grad(set_to_none=True)
    terms.loss.backward()
    optimizer.step()
    shared = [q.detach(), color, sources, supervised_labels]  # (B, key_dim), (B, V), (B,), (B,) or None
    if gather is not None:
        shared = [None if t is None else gather(t) for t in shared]
    matched = model.memory.update(shared[0], shared[1], sources=shared[2], labels=shared[3])
    stats = {
        "triplet": terms.loss.item(),
        "memory_hit_rate": matched.float().mean().item(),
        "no_positive": int((~terms.has_positive).sum()),
        "no_negative": int((~terms.has_negative).sum()),
    }
    return q.detach(), stats


def batch_rows(config: RunConfig, num_images: int, batch: int, step: int) -> torch.Tensor:
    """The dataset rows of global batch `step`: epochs of a permutation seeded by (seed, epoch)."""
    per_epoch = math.ceil(num_images / batch)
    epoch, position = divmod(step, per_epoch)
    # Stateless: a resumed run (or a replay of the memory's training) draws exactly what the first run drew.
    permutation = torch.randperm(num_images, generator=_seeded(config.train.seed, "epoch", epoch))
    return permutation[position * batch : (position + 1) * batch]


def _classification_step(
    model: MemoPainter,
    optimizers: Optimizers,
    gray: torch.Tensor,
    ab: torch.Tensor,
    cond: torch.Tensor | None,
    bin_weights: torch.Tensor | None,
) -> dict[str, float]:
    """Zhang et al.'s eq. 2 on G: gray (B, 1, S, S), ab / 110 (B, 2, S, S), weights (313,) -> {"ce": loss}."""
    if bin_weights is None:
        raise ValueError("train_step: model.head 'bins' needs bin_weights (the class-rebalancing weights)")
    logits = model.generator(gray, cond)  # (B, 313, S, S); cond None for the CIC baseline
    loss = classification_loss(logits, ab * AB_SCALE, bin_weights)
    optimizers.generator.zero_grad(set_to_none=True)
    loss.backward()
    optimizers.generator.step()
    return {"ce": loss.item()}


def train(
    config: RunConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    resume: bool = False,
    cache: FeatureCache | None = None,
    stop_after: int | None = None,
    progress: Callable[[str], None] | None = None,
    group: Group | None = None,
) -> Path:
    """Train on the color images under `data_dir`, writing logs, samples and checkpoints into `run_dir`.

    Returns the path of the final model. With `resume`, continues exactly from run_dir's last checkpoint.
    `stop_after` ends the process's work after that many steps (tests use it to simulate an interruption).
    With `group` (training.distributed.from_env), this process is one rank of a DistributedDataParallel run:
    train.batch_size images per rank, rank 0 alone writes.
    """
    say = progress or log.info
    if group is not None and not group.is_main:
        say = _silent
    run_dir = Path(run_dir)
    device = torch.device(config.train.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but torch sees no CUDA device; use --device cpu")
    if group is not None:
        device = group.device(device)
    backbone = None
    if config.memory.enabled:
        backbone = load_backbone(config.memory.backbone, device=device)
    with nullcontext() if group is None else group.main_first():
        data = load_training_data(data_dir, config.data.image_size, config.data.feature, backbone, cache, say)
    unlabelled = int((data.labels < 0).sum())
    if config.memory.supervised and unlabelled:
        raise ValueError(
            f"{data_dir}: memory.supervised needs every image in a class sub-folder; {unlabelled} are not"
        )
    _warn_small(data, config, say)
    feature_dim = backbone.feature_dim if backbone is not None else 0
    model = build_model(
        config,
        len(data),
        backbone.name if backbone else None,
        backbone.weights_sha256 if backbone else None,
        feature_dim,
    )
    model.class_names = data.class_names
    model.source_classes = data.labels.tolist()
    model.source_paths = [str(r.path.relative_to(data_dir)) for r in data.records]
    model.to(device)
    if model.generator.cond_norm:
        model.generator.fit_condition(data.color.to(device))  # a resumed run restores the same values
    optimizers = make_optimizers(model, config)
    bin_weights = None
    if config.model.head == "bins":
        # Class rebalancing from the whole training set's ab, once: (N, 2, S, S) / 110 -> Lab units (313,).
        bin_weights = rebalancing_weights(
            data.ab.permute(0, 2, 3, 1) * AB_SCALE, config.loss.rebalance_lambda
        )
        bin_weights = bin_weights.to(device)
    world_size = 1 if group is None else group.world_size
    writes = group is None or group.is_main
    steps = total_steps(config, len(data), world_size)
    step = 0
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if resume:
        step = _restore(checkpoint_path, model, optimizers, config)  # every rank reads the same checkpoint
        if writes:
            _truncate_metrics(run_dir / "metrics.jsonl", step)
        say(f"resumed from {checkpoint_path} at step {step}")
    elif writes:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "config.json", config.to_dict())
    # The networks step through DDP wrappers that share their parameters; `model` itself is what is saved.
    net = model
    if group is not None:
        query_head = None if model.query_head is None else group.wrap(model.query_head)
        net = replace(
            model,
            generator=group.wrap(model.generator),
            discriminator=group.wrap(model.discriminator),
            query_head=query_head,
        )

    batch = min(config.train.batch_size * world_size, len(data))  # the global batch, over all ranks
    per_epoch = math.ceil(len(data) / batch)
    samples = torch.linspace(0, len(data) - 1, min(SAMPLE_IMAGES, len(data))).round().long()  # across classes
    metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if writes else None
    bar = _progress_bar(steps, step) if writes else None
    last = time.perf_counter()
    try:
        while step < steps and (stop_after is None or stop_after > 0):
            # Data order and flips come from generators seeded by (seed, epoch) and (seed, step): stateless,
            # so a resumed run draws exactly what the interrupted one would have.
            idx = batch_rows(config, len(data), batch, step)
            draws = _seeded(config.train.seed, "step", step)
            flip = torch.rand(len(idx), generator=draws) < 0.5  # horizontal flips: free extra poses
            angles = None
            if config.train.hue_rotation > 0:  # drawn after the flips: runs without rotation stay the same
                angles = draw_rotations(len(idx), config.train.hue_rotation, draws)  # (B,)
            if group is not None:
                mine = group.shard(len(idx))
                idx, flip = idx[mine], flip[mine]
                angles = None if angles is None else angles[mine]
                group.seed(config.train.seed, step)
            gray, ab = data.gray[idx], data.ab[idx]
            gray = torch.where(flip[:, None, None, None], gray.flip(-1), gray)
            ab = torch.where(flip[:, None, None, None], ab.flip(-1), ab)
            condition = None
            if angles is not None:  # the same gray image in turned colors, and the feature of those colors
                ab = rotate_ab(ab, angles)
                condition = rotate_feature(data.color[idx], config.data.feature, angles).to(device)
            features = None if data.query_features is None else data.query_features[idx].to(device)
            model.generator.train()
            model.discriminator.train()
            stats = train_step(
                net,
                optimizers,
                config,
                gray.to(device),
                ab.to(device),
                data.color[idx].to(device),
                features,
                idx.to(device),
                data.labels[idx].to(device),
                draws,
                None if group is None else group.gather,
                bin_weights,
                condition,
            )
            if group is not None:
                stats = group.reduce_stats(stats)
            step += 1
            now = time.perf_counter()
            images = len(idx) * world_size
            stats.update(step=step, epoch=(step - 1) // per_epoch, images_per_s=images / (now - last))
            last = now
            if model.memory is not None:
                stats["memory_filled"] = model.memory.num_filled
            if writes:
                metrics.write(json.dumps(stats) + "\n")
                metrics.flush()
                _report(bar, stats, step, steps, say)
                if step % config.train.sample_every == 0 or step == steps:
                    grid = run_dir / "samples" / f"step_{step:06d}.png"
                    save_sample_grid(model, data, samples, grid, device)
                if step % config.train.checkpoint_every == 0 or step == steps:
                    _save_resumable(checkpoint_path, model, optimizers, step)
            if stop_after is not None:
                stop_after -= 1
    except RuntimeError as error:
        if group is not None and is_communication_error(error):
            raise group.lost_contact(error, step + 1) from error
        raise
    finally:
        if metrics is not None:
            metrics.close()
        if bar is not None:
            bar.close()
    final = run_dir / MODEL_FILE
    if step == steps and writes:
        save_checkpoint(final, model.tensors(), {**model.meta(), "step": step})
        say(f"model saved to {final}")
    if group is not None:
        group.barrier()  # no rank returns before the final model is written
    return final


def _warn_small(data: TrainingData, config: RunConfig, say: Callable[[str], None]) -> None:
    """Few-shot data is the point of MemoPainter: say what is unusual, never refuse."""
    if len(data) < config.train.batch_size:
        say(f"warning: {len(data)} images, fewer than a batch of {config.train.batch_size}; batches hold all")
    counts = torch.bincount(data.labels[data.labels >= 0], minlength=len(data.class_names))
    if len(data.class_names) and int(counts.min()) == 1:
        say("warning: some classes have a single image; the memory will remember them one-shot")


def _silent(message: str) -> None:
    """Progress of ranks other than 0: dropped, rank 0 speaks for the run."""


def _seeded(seed: int, purpose: str, index: int) -> torch.Generator:
    """A CPU generator for one epoch's order or one step's draws, derived from the run seed."""
    offsets = {"epoch": 0, "step": 1}
    return torch.Generator().manual_seed((seed * 1_000_003 + index) * 2 + offsets[purpose])


def _save_resumable(path: Path, model: MemoPainter, optimizers: Optimizers, step: int) -> None:
    """Everything needed to continue exactly: weights, memory, optimizers, step and the global RNG states."""
    tensors = model.tensors()
    meta = {**model.meta(), "step": step, "optimizers": {}}
    for prefix, optimizer in optimizers.items().items():
        opt_tensors, opt_meta = optimizer_to_tensors(optimizer, f"optim.{prefix}")
        tensors.update(opt_tensors)
        meta["optimizers"][prefix] = opt_meta
    rng_tensors, rng_meta = rng_to_tensors()
    tensors.update(rng_tensors)
    meta["rng"] = rng_meta
    save_checkpoint(path, tensors, meta)


def _restore(path: Path, model: MemoPainter, optimizers: Optimizers, config: RunConfig) -> int:
    """Load a resumable checkpoint into fresh objects and restore the global RNG states; returns its step."""
    tensors, meta = load_checkpoint(path)
    saved = RunConfig.from_dict(meta["config"], source=str(path))
    if _resume_key(saved) != _resume_key(config):
        raise ValueError(f"{path}: written with a different config; resume with the settings in config.json")
    for prefix, module in model.modules().items():
        module_from_tensors(module, tensors, prefix)
    for prefix, optimizer in optimizers.items().items():
        optimizer_from_tensors(optimizer, tensors, meta["optimizers"][prefix], f"optim.{prefix}")
    rng_from_tensors(tensors, meta["rng"])
    return int(meta["step"])


def _resume_key(config: RunConfig) -> dict:
    """The settings a resumed run must share with the interrupted one (length and device may change)."""
    values = config.to_dict()
    for key in ("steps", "epochs", "device"):
        values["train"].pop(key)
    return values


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines after `step` and any line a kill cut short: the resumed run logs those steps again."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int) and entry["step"] <= step:
            kept.append(line + "\n")
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text("".join(kept), encoding="utf-8")
    os.replace(temp, path)


def _write_json(path: Path, value: dict) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)


def _progress_bar(total: int, initial: int):
    """A tqdm bar on a terminal; None otherwise (plain log lines instead)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _report(bar, stats: dict, step: int, steps: int, say: Callable[[str], None]) -> None:
    shown = {k: stats[k] for k in ("d", "g_adv", "g_l1", "ce", "triplet", "images_per_s") if k in stats}
    if bar is not None:
        bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        bar.update(1)
    elif step == 1 or step % 10 == 0 or step == steps:
        say(f"step {step}/{steps} " + " ".join(f"{k}={v:.3g}" for k, v in shown.items()))

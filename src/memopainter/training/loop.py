"""The training loop of the paper's Fig. 3: per batch the memory's step (section 3.1), then the coloring
network's step (section 3.2), then logging, sample grids and checkpoints. The steps themselves are in
training.steps; here are the set-up around them, the data order and resumable checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch

from memopainter.config import RunConfig
from memopainter.core.checkpoint import (
    load_checkpoint,
    module_from_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    rng_from_tensors,
    rng_to_tensors,
)
from memopainter.core.model import CHECKPOINT_FILE, CONFIG_FILE, MODEL_FILE, MemoPainter, build_model
from memopainter.data.cache import FeatureCache
from memopainter.data.dataset import TrainingData, load_training_data
from memopainter.data.images import ImageLoadError
from memopainter.files import remove_leftovers, write_json, write_text
from memopainter.networks.backbones import Backbone, load_backbone
from memopainter.training.distributed import Group, is_communication_error
from memopainter.training.events import EventHandler, TextProgress, TrainEvent
from memopainter.training.run_folder import (
    METRICS_FILE,
    SAMPLES_DIR,
    check_run_folder,
    clear_run,
    make_run_folder,
)
from memopainter.training.samples import save_sample_grid
from memopainter.training.steps import Batch, Optimizers, coloring_step, make_optimizers, memory_step

log = logging.getLogger(__name__)


def train(
    config: RunConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    resume: bool = False,
    cache: FeatureCache | None = None,
    stop_after: int | None = None,
    on_event: EventHandler | None = None,
    group: Group | None = None,
    overwrite: bool = False,
) -> Path:
    """Train on the color images under `data_dir`, writing logs, samples and checkpoints into `run_dir`.

    Returns the path of the final model. With `resume`, continues exactly from run_dir's last checkpoint.
    A run_dir that overlaps data_dir, or holds files without `resume`, is refused (RunFolderError) before
    any work; `overwrite` deletes the files an earlier run wrote there instead, once the data is loaded.
    Unreadable images are skipped, each reported as a "skipped" event.
    `stop_after` ends the process's work after that many steps (tests use it to simulate an interruption).
    With `group` (training.distributed.from_env) this process is one rank of a DistributedDataParallel run:
    train.batch_size images per rank; rank 0 alone writes and reports. Reports go to `on_event` as
    TrainEvents (to the log as text when it is None; `events.TextProgress(say)` prints them).
    """
    run_dir, writes = Path(run_dir), group is None or group.is_main
    emit = (on_event or TextProgress(log.info)) if writes else _ignore
    if writes:  # rank 0 alone writes, so it alone needs the folder
        check_run_folder(run_dir, data_dir, resume, overwrite)
        make_run_folder(run_dir)
    device = _device(config, group)
    data, backbone = _training_data(config, data_dir, cache, device, group, emit)
    model = _fresh_model(config, data, data_dir, backbone, device)
    optimizers = make_optimizers(model, config)
    color_step = coloring_step(config, data.ab, device)  # chosen once: GAN or classification step
    if writes and overwrite:
        clear_run(run_dir)  # only now: a run whose data or backbone fails to load leaves the old one intact
    world = 1 if group is None else group.world_size
    steps, batch_size = total_steps(config, len(data), world), min(config.train.batch_size * world, len(data))
    done = _start(run_dir, data_dir, model, optimizers, config, resume, writes, emit, steps)
    net = _parallel(model, group)  # what steps; `model` shares its parameters and is what is saved
    end = steps if stop_after is None else min(steps, done + stop_after)
    gather = None if group is None else group.gather
    per_epoch = math.ceil(len(data) / batch_size)
    outputs = RunOutputs(run_dir, config, steps, per_epoch, model, data, device, emit) if writes else None
    step = done
    try:
        for step in range(done + 1, end + 1):
            batch = next_batch(config, data, batch_size, step - 1, device, group)
            # Memory: a threshold triplet step on the query head, then the memory update.
            stats, cond = {}, None
            if model.memory is not None:
                stats = memory_step(net.query_head, model.memory, optimizers.query_head, batch, gather)
                cond = batch.color  # G (and D) learn on the true color feature, as the paper
            # Coloring: a D and a G step, or G's classification step.
            stats |= color_step(net, optimizers, batch, cond)
            stats = stats if group is None else group.reduce_stats(stats)
            # Logging, samples and checkpoints: rank 0 alone writes.
            if outputs is not None:
                outputs.step_done(step, stats, len(batch.sources) * world, optimizers)
    except RuntimeError as error:
        if group is not None and is_communication_error(error):
            raise group.lost_contact(error, step) from error
        raise
    finally:
        if outputs is not None:
            outputs.close()
    return _finish(run_dir, model, end, steps, group, emit)


def total_steps(config: RunConfig, num_images: int, world_size: int = 1) -> int:
    """Steps of the run: train.steps, or train.epochs passes over the data (batch_size images per rank)."""
    if config.train.steps:
        return config.train.steps
    return config.train.epochs * math.ceil(num_images / (config.train.batch_size * world_size))


def batch_rows(config: RunConfig, num_images: int, batch: int, step: int) -> torch.Tensor:
    """The dataset rows of global batch `step`: epochs of a permutation seeded by (seed, epoch)."""
    per_epoch = math.ceil(num_images / batch)
    epoch, position = divmod(step, per_epoch)
    # Stateless: a resumed run (or a replay of the memory's training) draws exactly what the first run drew.
    permutation = torch.randperm(num_images, generator=_seeded(config.train.seed, "epoch", epoch))
    return permutation[position * batch : (position + 1) * batch]


def next_batch(
    config: RunConfig, data: TrainingData, batch: int, step: int, device: torch.device, group: Group | None
) -> Batch:
    """This rank's share of global batch `step` (from 0), flipped at random, on `device`.

    The flips come from a generator seeded by (seed, step), as the order: a resumed run draws exactly what
    the interrupted one would have. A rank of a distributed run also seeds its dropout for the step here.
    """
    rows = batch_rows(config, len(data), batch, step)
    flip = torch.rand(len(rows), generator=_seeded(config.train.seed, "step", step)) < 0.5  # free extra poses
    if group is not None:
        mine = group.shard(len(rows))
        rows, flip = rows[mine], flip[mine]
        group.seed(config.train.seed, step)
    flipped = flip[:, None, None, None]  # (B, 1, 1, 1)

    def flipped_rows(images: torch.Tensor | None) -> torch.Tensor | None:
        if images is None:
            return None
        chosen = images[rows]  # (B, C, S, S)
        return torch.where(flipped, chosen.flip(-1), chosen).to(device)

    features = None if data.query_features is None else data.query_features[rows].to(device)
    return Batch(
        gray=flipped_rows(data.gray),
        ab=flipped_rows(data.ab),
        lightness=flipped_rows(data.lightness),
        color=data.color[rows].to(device),
        query_features=features,
        sources=rows.to(device),
        labels=data.labels[rows].to(device),
    )


class RunOutputs:
    """What rank 0 writes as steps go by: a metrics.jsonl line and a step event per step (the speed taken
    between steps), sample grids and resumable checkpoints at their intervals."""

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        steps: int,
        per_epoch: int,
        model: MemoPainter,
        data: TrainingData,
        device: torch.device,
        emit: EventHandler,
    ) -> None:
        self.run_dir, self.config, self.steps, self.per_epoch = run_dir, config, steps, per_epoch
        self.model, self.data, self.device, self.emit = model, data, device, emit
        self.file = open(run_dir / METRICS_FILE, "a", encoding="utf-8")
        self.clock = time.perf_counter()

    def step_done(self, step: int, stats: dict[str, float], images: int, optimizers: Optimizers) -> None:
        """Log the step, then write the sample grid and the checkpoint when they are due."""
        self.record(step, stats, images)
        every = self.config.train
        if step % every.sample_every == 0 or step == self.steps:
            path = self.run_dir / SAMPLES_DIR / f"step_{step:06d}.png"
            grid = save_sample_grid(self.model, self.data, path, self.device)
            self.emit(TrainEvent("sample", step, self.steps, path=grid))
        if step % every.checkpoint_every == 0 or step == self.steps:
            saved = save_resumable(self.run_dir / CHECKPOINT_FILE, self.model, optimizers, step)
            self.emit(TrainEvent("checkpoint", step, self.steps, path=saved))

    def record(self, step: int, stats: dict[str, float], images: int) -> None:
        """Log a step's loss terms with its epoch, the images per second and the memory's filled slots."""
        now = time.perf_counter()
        stats = {**stats, "step": step, "epoch": (step - 1) // self.per_epoch, "seconds": now - self.clock}
        stats["images_per_s"] = images / (now - self.clock)
        self.clock = now
        if self.model.memory is not None:
            stats["memory_filled"] = self.model.memory.num_filled
        self.file.write(json.dumps(stats) + "\n")
        self.file.flush()  # a killed run keeps every step it logged; a resume drops a line cut short
        self.emit(TrainEvent("step", step, self.steps, stats=stats))

    def close(self) -> None:
        self.file.close()


def save_resumable(path: Path, model: MemoPainter, optimizers: Optimizers, step: int) -> Path:
    """Everything needed to continue exactly: weights, memory, optimizers, step and the global RNG states."""
    tensors, meta = {}, {"optimizers": {}}
    for prefix, optimizer in optimizers.by_prefix().items():
        opt_tensors, meta["optimizers"][prefix] = optimizer_to_tensors(optimizer, f"optim.{prefix}")
        tensors.update(opt_tensors)
    rng_tensors, meta["rng"] = rng_to_tensors()
    tensors.update(rng_tensors)
    model.step = step
    remove_leftovers(path)  # the temp file of an earlier save of this checkpoint that a kill cut short
    model.save(path, tensors, meta)
    return path


def restore(
    path: Path,
    model: MemoPainter,
    optimizers: Optimizers,
    config: RunConfig,
    data_dir: str | Path,
) -> int:
    """Load a resumable checkpoint into fresh objects and restore the global RNG states; returns its step.

    `model` must have been built for the same config and the same images (from data_dir) as the checkpoint.
    """
    tensors, meta = load_checkpoint(path)
    if not isinstance(meta.get("optimizers"), dict) or not isinstance(meta.get("rng"), dict):
        raise ValueError(f"{path}: not a resumable checkpoint (no optimizer or random state): a model file")
    saved = RunConfig.from_dict(meta["config"], source=str(path))
    if _resume_key(saved) != _resume_key(config):
        raise ValueError(f"{path}: written with a different config; resume with the settings in config.json")
    _check_same_images(meta, model, path.parent, data_dir)
    for prefix, module in model.modules().items():
        module_from_tensors(module, tensors, prefix)
    for prefix, optimizer in optimizers.by_prefix().items():
        optimizer_from_tensors(optimizer, tensors, meta["optimizers"][prefix], f"optim.{prefix}")
    rng_from_tensors(tensors, meta["rng"])
    model.step = int(meta["step"])
    return model.step


def _ignore(event: TrainEvent) -> None:
    """Reports of ranks other than 0: dropped, rank 0 speaks for the run."""


def _device(config: RunConfig, group: Group | None) -> torch.device:
    device = torch.device(config.train.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but torch sees no CUDA device; use --device cpu")
    return device if group is None else group.device(device)


def _training_data(
    config: RunConfig,
    data_dir: str | Path,
    cache: FeatureCache | None,
    device: torch.device,
    group: Group | None,
    emit: EventHandler,
) -> tuple[TrainingData, Backbone | None]:
    """The images with their color features and, for a memory, the backbone and its features."""
    backbone = load_backbone(config.memory.backbone, device=device) if config.memory.enabled else None

    def say(text: str) -> None:
        emit(TrainEvent("message", text=text))

    def skipped(error: ImageLoadError) -> None:
        emit(TrainEvent("skipped", text=error.problem, path=Path(error.path)))

    with nullcontext() if group is None else group.main_first():  # rank 0 fills the feature cache
        data = load_training_data(
            data_dir,
            config.data.image_size,
            config.data.feature,
            backbone,
            cache,
            say,
            skipped,
            config.memory.descriptors,
            config.memory.lightness_bins,
            config.data.input,
            config.data.lineart or None,
        )
    unlabelled = int((data.labels < 0).sum())
    if config.memory.supervised and unlabelled:
        raise ValueError(
            f"{data_dir}: memory.supervised needs every image in a class sub-folder; {unlabelled} are not"
        )
    # Few-shot data is the point of MemoPainter: say what is unusual, never refuse.
    if len(data) < config.train.batch_size:
        text = f"{len(data)} images, fewer than a batch of {config.train.batch_size}; batches hold all"
        emit(TrainEvent("warning", text=text))
    counts = torch.bincount(data.labels[data.labels >= 0], minlength=len(data.class_names))
    if len(data.class_names) and int(counts.min()) == 1:
        text = "some classes have a single image; the memory will remember them one-shot"
        emit(TrainEvent("warning", text=text))
    return data, backbone


def _fresh_model(
    config: RunConfig,
    data: TrainingData,
    data_dir: str | Path,
    backbone: Backbone | None,
    device: torch.device,
) -> MemoPainter:
    """Networks seeded from config.train.seed, knowing the training images, on `device`."""
    if backbone is None:
        model = build_model(config, len(data), None, None, 0)
    else:
        model = build_model(config, len(data), backbone.name, backbone.weights_sha256, backbone.feature_dim)
    model.class_names = data.class_names
    model.source_classes = data.labels.tolist()
    model.source_paths = [str(r.path.relative_to(data_dir)) for r in data.records]
    model.to(device)
    if model.generator.cond_norm:
        model.generator.fit_condition(data.color.to(device))  # a resumed run restores the same values
    return model


def _start(
    run_dir: Path,
    data_dir: str | Path,
    model: MemoPainter,
    optimizers: Optimizers,
    config: RunConfig,
    resume: bool,
    writes: bool,
    emit: EventHandler,
    steps: int,
) -> int:
    """The steps already done: 0 for a new run (its config.json written), the checkpoint's on resume.

    A checkpoint past the run's `steps` is refused before anything is written: the final model would
    otherwise be the checkpoint's weights labelled with fewer steps.
    """
    if not resume:
        if writes:
            write_json(run_dir / CONFIG_FILE, config.to_dict())
        return 0
    checkpoint = run_dir / CHECKPOINT_FILE
    step = restore(checkpoint, model, optimizers, config, data_dir)  # every rank reads the same checkpoint
    if step > steps:
        raise ValueError(
            f"{checkpoint}: at step {step}, past the {steps} steps asked for; resume with at least "
            f"{step} steps (--steps, train.steps)"
        )
    if writes:
        for path in (checkpoint, run_dir / MODEL_FILE):
            remove_leftovers(path)  # temp files of a save the kill cut short
        _truncate_metrics(run_dir / METRICS_FILE, step)
    emit(TrainEvent("resumed", step, path=checkpoint))
    return step


def _parallel(model: MemoPainter, group: Group | None) -> MemoPainter:
    """The model with its learning networks under DistributedDataParallel wrappers that share parameters."""
    if group is None:
        return model

    def wrap(module: torch.nn.Module | None) -> torch.nn.Module | None:
        return None if module is None else group.wrap(module)

    return replace(
        model,
        generator=group.wrap(model.generator),
        discriminator=wrap(model.discriminator),
        query_head=wrap(model.query_head),
    )


def _finish(
    run_dir: Path, model: MemoPainter, done: int, steps: int, group: Group | None, emit: EventHandler
) -> Path:
    """Save the final model once every step is done (rank 0); no rank returns before it is written."""
    final = run_dir / MODEL_FILE
    if done == steps and (group is None or group.is_main):
        model.step = steps
        remove_leftovers(final)  # the temp file of a save a kill cut short
        model.save(final)
        emit(TrainEvent("saved", steps, steps, path=final))
    if group is not None:
        group.barrier()
    return final


def _seeded(seed: int, purpose: str, index: int) -> torch.Generator:
    """A CPU generator for one epoch's order or one step's draws, derived from the run seed."""
    offsets = {"epoch": 0, "step": 1}
    return torch.Generator().manual_seed((seed * 1_000_003 + index) * 2 + offsets[purpose])


def _resume_key(config: RunConfig) -> dict:
    """The settings a resumed run must share with the interrupted one (length and device may change)."""
    values = config.to_dict()
    for key in ("steps", "epochs", "device"):
        values["train"].pop(key)
    return values


def _check_same_images(meta: dict, model: MemoPainter, run_dir: Path, data_dir: str | Path) -> None:
    """Refuse to resume on other images than the checkpoint's: the memory's size and sources, the data
    order and the class names all follow from them, so the run could not continue exactly."""
    trained = meta.get("source_paths") or []
    count = len(trained) or len(meta.get("source_classes") or [])  # a checkpoint may record classes only
    if count and count != len(model.source_paths):
        raise ValueError(
            f"{run_dir}: the checkpoint was trained on {count} images, {data_dir} has "
            f"{len(model.source_paths)}; resume with the same data"
        )
    for before, now in zip(trained, model.source_paths, strict=False):
        if before != now:
            raise ValueError(
                f"{run_dir}: the checkpoint was trained on other images ({before} where {data_dir} has "
                f"{now}); resume with the same data"
            )


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
    write_text(path, "".join(kept))

"""The methods an experiment trains, and how one is trained (or its finished run reused) and scored.

Every method is a training configuration of the one model (`METHODS`): `--set` assignments on top of the
settings all methods of one experiment share (`SharedSettings`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from memopainter.config import PAPER_SETTINGS, RunConfig, load_config
from memopainter.core.model import MODEL_FILE
from memopainter.core.runs import finished_with, interrupted_with
from memopainter.data.builders.split import LINEART
from memopainter.evaluation.evaluate import evaluate
from memopainter.evaluation.scores import EvaluatedImages, Evaluation, ImageScore
from memopainter.files import write_json
from memopainter.inference import Colorizer
from memopainter.training.events import TrainEvent, describe
from memopainter.training.loop import train

Say = Callable[[str], None]
BASELINE = "res-cgan"  # the no-memory ablation every memory method is paired against
METRICS = ("delta_e2000", "delta_e2000_best_of_k", "psnr", "ssim", "colorfulness")
TIMING_FILE = "training_time.json"  # in a run folder: how long training took


@dataclass(frozen=True)
class Method:
    """One compared method: `--set` assignments on top of the shared settings, and how many colorings."""

    label: str
    description: str
    overrides: tuple[str, ...]
    alternatives: bool  # True: memory methods, scored on their top-k slots too


METHODS: dict[str, Method] = {
    "paper": Method(
        "MemoPainter (paper's configuration)",
        "the paper's as published: pooled query feature, memory of ab distributions, GAN generator",
        PAPER_SETTINGS,
        True,
    ),
    "memopainter-dist": Method(
        "MemoPainter (dist)",
        "the paper's GAN generator conditioned through AdaIN on a memory of 313-bin ab distributions",
        ("model.head=ab",),
        True,
    ),
    "memopainter-rgb": Method(
        "MemoPainter (rgb)",
        "memory of 10 dominant colors (Color Thief), GAN generator conditioned through AdaIN",
        ("data.feature=rgb", "model.head=ab"),
        True,
    ),
    "memopainter-bins": Method(
        "MemoPainter (dist, bins head)",
        "memory of ab distributions conditioning, through AdaIN, the CIC-style classification U-Net, trained "
        "by its rebalanced cross-entropy plus 10 x the L1 distance of its decoded ab to the truth's",
        ("model.head=bins", "loss.bins_adversarial=0"),
        True,
    ),
    "memopainter-bins-ce": Method(
        "MemoPainter (dist, bins head, cross-entropy alone)",
        "the bins head trained by its rebalanced cross-entropy alone (the default before the L1 term)",
        ("model.head=bins", "loss.bins_adversarial=0", "loss.bins_l1=0"),
        True,
    ),
    "memopainter-bins-adv": Method(
        "MemoPainter (dist, bins head + adversary)",
        "the bins head trained by its cross-entropy plus 0.25 x the paper's adversarial term on its ab",
        ("model.head=bins", "loss.bins_adversarial=0.25", "loss.bins_l1=0"),
        True,
    ),
    BASELINE: Method(
        "Res-cGAN (no memory)",
        "the paper's ablation: same generator and discriminator, learned constant AdaIN, no condition",
        ("memory.enabled=false", "model.head=ab"),
        False,
    ),
    "pix2pix": Method(
        "pix2pix",
        "U-Net with BatchNorm + PatchGAN + L1, unconditioned",
        ("memory.enabled=false", "model.norm=batch", "model.head=ab"),
        False,
    ),
    "cic": Method(
        "CIC-style",
        "same U-Net, per-pixel classification over the 313 bins, class rebalancing, annealed-mean decoding, "
        "and the default bins head's L1 term on it: MemoPainter's bins head without the memory",
        ("memory.enabled=false", "model.head=bins"),
        False,
    ),
}


@dataclass(frozen=True)
class SharedSettings:
    """What every method of one comparison trains with."""

    steps: int
    seed: int = 0
    image_size: int = 64
    batch_size: int = 16
    top_k: int = 3  # colorings scored per image for the memory methods (best-of-k)
    device: str = "cpu"
    overrides: tuple[str, ...] = ()  # extra `--set` assignments for every method

    def to_dict(self) -> dict:
        """Plain values for JSON, with this process's CPU threads, which its trainings use (a reused run
        keeps the count it was trained with): a run is bitwise repeatable with the same code, data,
        settings and thread count, but another count rounds sums in another order, and after hundreds of
        steps that is another model."""
        return {**self.__dict__, "overrides": list(self.overrides), "cpu_threads": torch.get_num_threads()}

    def assignments(self) -> list[str]:
        """The shared settings as `--set` assignments (the user's own last, so they win)."""
        return [
            f"train.steps={self.steps}",
            f"train.seed={self.seed}",
            f"train.batch_size={self.batch_size}",
            f"train.device={self.device}",
            f"data.image_size={self.image_size}",
            f"train.sample_every={self.steps}",
            f"train.checkpoint_every={self.steps}",
            *self.overrides,
        ]


def method_config(name: str, shared: SharedSettings, extra: tuple[str, ...] = ()) -> RunConfig:
    """The resolved config of method `name` under the shared settings (and `extra` assignments last)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return load_config(None, [*METHODS[name].overrides, *shared.assignments(), *extra])


@dataclass
class MethodResult:
    """One method's run folder, training time and evaluation."""

    name: str
    run: Path
    train_seconds: float | None  # None for a reused run that kept no training time
    evaluation: Evaluation
    config: dict
    oracle: Evaluation | None = None  # memory methods: each test image conditioned on its own true feature
    cpu_threads: int | None = None  # what its training used; None where not recorded (training_record)

    def summary(self) -> dict:
        """The averaged metrics and where they came from."""
        summary = self.evaluation.summary()
        values = {key: summary[key] for key in (*METRICS, "colorfulness_gt", "retrieval_top1_accuracy")}
        if not METHODS[self.name].alternatives:
            values["delta_e2000_best_of_k"] = None  # one coloring only: there is no choice to be best of
        values["delta_e2000_true_feature"] = (
            None if self.oracle is None else self.oracle.average("delta_e2000")
        )
        return {
            "method": self.name,
            "label": METHODS[self.name].label,
            "description": METHODS[self.name].description,
            "images": summary["images"],
            "failed": summary["failed"],
            "top_k": self.evaluation.top_k,
            "train_seconds": self.train_seconds,
            "cpu_threads": self.cpu_threads,
            "run": str(self.run),
            **values,
        }


def train_or_reuse(name: str, config: RunConfig, train_dir: Path, run: Path, say: Say = print) -> dict:
    """Train `config` on train_dir into `run`, or reuse a finished run of the same settings and images; its
    training record: "seconds" and "cpu_threads" (as training_record reads them).

    The record is kept in run/training_time.json, so a reused run reports it too. An interrupted run of the
    same settings and images resumes where it stopped; its record is then empty, as the earlier process's
    time was never written.
    """
    if finished_with(run, config, train_dir):
        say(f"{name}: reusing the finished run in {run}")
        return training_record(run)
    if interrupted_with(run, config, train_dir):
        say(f"{name}: resuming the interrupted run in {run}")
        train(config, train_dir, run, resume=True, on_event=_quiet(say))
        return {}
    say(f"{name}: training {config.train.steps} steps into {run}")
    started = time.perf_counter()
    train(config, train_dir, _fresh(run), on_event=_quiet(say))
    record = {"seconds": time.perf_counter() - started, "cpu_threads": torch.get_num_threads()}
    write_json(run / TIMING_FILE, record)
    return record


def training_record(run: Path) -> dict:
    """run/training_time.json's "seconds" (a finite number >= 0) and "cpu_threads" (an int >= 1), each
    where it was written and well formed: a run older than the thread record, or resumed after an
    interruption, has fewer; a file that is not JSON none."""
    try:
        record = json.loads((run / TIMING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    kept = {}
    seconds, threads = record.get("seconds"), record.get("cpu_threads")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds < math.inf:
        kept["seconds"] = float(seconds)
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        kept["cpu_threads"] = threads
    return kept


def evaluate_run(
    name: str,
    run: Path,
    test_dir: Path,
    top_k: int,
    device: str = "cpu",
    keep: Callable[[ImageScore, EvaluatedImages], None] | None = None,
    say: Say = print,
    oracle: bool = False,
) -> Evaluation:
    """Evaluate the run's final model on test_dir (top-k for memory models, top-1 otherwise).

    With `oracle`, each test image is conditioned on its own true color feature instead (top-1).
    """
    colorizer = Colorizer.from_pretrained(run / MODEL_FILE, device=device)
    # top_k at most the slots written: a tiny split may write fewer (best of k is then over those)
    k = 1 if oracle or not colorizer.has_memory else min(top_k, colorizer.model.memory.num_filled)
    say(f"{name}: evaluating on {test_dir} (top-{k}{', true features' if oracle else ''})")
    on_image = None if keep is None else (lambda _, score, images: keep(score, images))
    drawn = drawn_lineart(test_dir) if colorizer.lineart else None
    evaluation = evaluate(colorizer, test_dir, k, oracle=oracle, on_image=on_image, lineart_dir=drawn)
    if not evaluation.per_image:
        failed = len(evaluation.failures)
        raise ValueError(f"{name}: none of the {failed} test images of {test_dir} could be scored")
    return evaluation


def train_and_evaluate(
    name: str,
    config: RunConfig,
    train_dir: Path,
    test_dir: Path,
    run: Path,
    top_k: int,
    keep: Callable[[ImageScore, EvaluatedImages], None] | None = None,
    say: Say = print,
) -> MethodResult:
    """Train (or reuse) and evaluate one method; the evaluation is also saved as run/evaluation.json.

    A memory method is evaluated a second time with every test image conditioned on its own true color
    feature: the gap between the two is what imperfect retrieval costs.
    """
    record = train_or_reuse(name, config, train_dir, run, say)
    device = config.train.device
    evaluation = evaluate_run(name, run, test_dir, top_k, device, keep, say)
    write_json(run / "evaluation.json", evaluation.to_json())
    oracle = None
    if METHODS[name].alternatives:
        oracle = evaluate_run(name, run, test_dir, 1, device, say=say, oracle=True)
        write_json(run / "evaluation-true-feature.json", oracle.to_json())
    seconds, threads = record.get("seconds"), record.get("cpu_threads")
    return MethodResult(name, run, seconds, evaluation, config.to_dict(), oracle, threads)


def split_dirs(split: Path) -> tuple[Path, Path]:
    """SPLIT/train and SPLIT/test, as `memopainter data split` writes them; ValueError when one is missing."""
    dirs = split / "train", split / "test"
    for folder in dirs:
        if not folder.is_dir():
            raise ValueError(f"{split}: has no {folder.name}/ folder; make one with `memopainter data split`")
    return dirs


def drawn_lineart(part: Path) -> Path | None:
    """SPLIT/lineart/<part> for SPLIT/<part>, the line art `data split --lineart` copies, if it is there."""
    folder = part.parent / LINEART / part.name
    return folder if folder.is_dir() else None


def _fresh(run: Path) -> Path:
    """An empty run folder: a stale or differently configured run there is set aside, never mixed in."""
    if run.exists():
        stale = run.with_name(f"{run.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        run.rename(stale)
    return run


def _quiet(say: Say) -> Callable[[TrainEvent], None]:
    """Training progress every 100 steps only: an experiment trains many models."""

    def shown(event: TrainEvent) -> None:
        if event.kind == "step" and event.step % 100 and event.step != event.steps:
            return
        text = describe(event)
        if text is not None:
            say(text)

    return shown

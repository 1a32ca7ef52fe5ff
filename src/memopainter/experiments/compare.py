"""MemoPainter against baselines trained on the same data (the paper's Table 1 and Fig. 7, on our data).

Every method is a training configuration of the one model (`METHODS`), trained by the same loop for the same
number of steps, batch, seed and image size on SPLIT/train, and scored by `evaluate` on SPLIT/test, so the
only differences are the ones each method is about. Runs are kept under OUT/runs/<method>, and a run whose
saved settings match is reused instead of trained again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from memopainter.config import PAPER_SETTINGS, RunConfig, load_config
from memopainter.core.model import MODEL_FILE
from memopainter.core.runs import finished_with, interrupted_with
from memopainter.data.builders.split import LINEART
from memopainter.evaluation.evaluate import (
    EvaluatedImages,
    Evaluation,
    ImageScore,
    evaluate,
    list_test_images,
)
from memopainter.evaluation.outputs import figure_png, image_png
from memopainter.evaluation.report import cell
from memopainter.experiments.statistics import t_interval
from memopainter.files import write_bytes, write_json, write_text
from memopainter.inference import Colorizer
from memopainter.training.events import TrainEvent, describe
from memopainter.training.loop import train

Say = Callable[[str], None]
BASELINE = "res-cgan"  # the no-memory ablation every memory method is paired against
METRICS = ("delta_e2000", "delta_e2000_best_of_k", "psnr", "ssim", "colorfulness")
GRID_IMAGES = 8  # test images shown in the comparison grid
GRID_CELL = 96  # px, the side of one image in the grid
TIMING_FILE = "training_time.json"  # in a run folder: how long training took
PRETRAINING_NOTE = (
    "The paper's CIC and Deep Priors baselines were pretrained on ImageNet; ImageNet cannot be had offline, "
    "so ours are trained from scratch on the same few images as MemoPainter, with the same network sizes. "
    "Only MemoPainter's query backbone is ImageNet-pretrained (frozen; it never sees color)."
)


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
            "run": str(self.run),
            **values,
        }


def train_or_reuse(
    name: str, config: RunConfig, train_dir: Path, run: Path, say: Say = print
) -> float | None:
    """Train `config` on train_dir into `run`, or reuse a finished run of the same settings and images; the
    seconds training took.

    The time is kept in run/training_time.json, so a reused run reports it too (None if it was not kept).
    An interrupted run of the same settings and images resumes where it stopped; its time is then not
    known (None), as the earlier process's was never written.
    """
    timing = run / TIMING_FILE
    if finished_with(run, config, train_dir):
        say(f"{name}: reusing the finished run in {run}")
        try:
            return float(json.loads(timing.read_text(encoding="utf-8"))["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    if interrupted_with(run, config, train_dir):
        say(f"{name}: resuming the interrupted run in {run}")
        train(config, train_dir, run, resume=True, on_event=_quiet(say))
        return None
    say(f"{name}: training {config.train.steps} steps into {run}")
    started = time.perf_counter()
    train(config, train_dir, _fresh(run), on_event=_quiet(say))
    seconds = time.perf_counter() - started
    write_json(timing, {"seconds": seconds})
    return seconds


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
    seconds = train_or_reuse(name, config, train_dir, run, say)
    device = config.train.device
    evaluation = evaluate_run(name, run, test_dir, top_k, device, keep, say)
    write_json(run / "evaluation.json", evaluation.to_json())
    oracle = None
    if METHODS[name].alternatives:
        oracle = evaluate_run(name, run, test_dir, 1, device, say=say, oracle=True)
        write_json(run / "evaluation-true-feature.json", oracle.to_json())
    return MethodResult(name, run, seconds, evaluation, config.to_dict(), oracle)


@dataclass
class ComparisonResult:
    """Every method's result on one split, and the images of the grid."""

    split: str
    shared: SharedSettings
    methods: list[MethodResult]
    grid: dict[str, dict[str, Image.Image]] = field(default_factory=dict)  # path -> column -> image
    against: str = BASELINE  # the method every other is paired against

    def paired(self, name: str, baseline: str | None = None) -> dict | None:
        """Per-image delta_e2000 of `name` minus `baseline`'s (default `against`): mean, 95% interval,
        share of images better."""
        baseline = baseline or self.against
        by_name = {m.name: m for m in self.methods}
        if name == baseline or name not in by_name or baseline not in by_name:
            return None
        ours = {s.path: s.metrics.delta_e2000 for s in by_name[name].evaluation.per_image}
        theirs = {s.path: s.metrics.delta_e2000 for s in by_name[baseline].evaluation.per_image}
        common = sorted(ours.keys() & theirs.keys())
        if not common:
            return None
        differences = [ours[p] - theirs[p] for p in common]
        mean, low, high = t_interval(differences)
        better = sum(d < 0 for d in differences) / len(differences)
        return {"images": len(common), "mean": mean, "ci_low": low, "ci_high": high, "share_better": better}

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        return {
            "experiment": "compare",
            "split": self.split,
            "shared": {**self.shared.__dict__, "overrides": list(self.shared.overrides)},
            "note": PRETRAINING_NOTE,
            "methods": [
                {
                    **m.summary(),
                    "paired_vs_ablation": self.paired(m.name, BASELINE),
                    "paired_against": self.against,
                    "paired": self.paired(m.name),
                    # kept so a later run of the same split and seed can be paired with this one untrained
                    "per_image_delta_e2000": {s.path: s.metrics.delta_e2000 for s in m.evaluation.per_image},
                    "config": m.config,
                }
                for m in self.methods
            ],
        }


def compare_experiment(
    split: str | Path,
    out: str | Path,
    shared: SharedSettings,
    methods: list[str] | None = None,
    say: Say = print,
    against: str = BASELINE,
) -> ComparisonResult:
    """Train and evaluate each method on split/train and split/test; runs go to out/runs/<method>.

    Each method's per-image delta_e2000 is paired against method `against` (the no-memory ablation).
    """
    split, out = Path(split), Path(out)
    train_dir, test_dir = split_dirs(split)
    names = list(METHODS) if methods is None else methods
    configs = {name: method_config(name, shared) for name in names}  # every name and value checked first
    for config in configs.values():
        if config.data.input == "lineart" and not config.data.lineart and drawn_lineart(train_dir):
            config.data.lineart = str(drawn_lineart(train_dir).resolve())
    result = ComparisonResult(str(split), shared, [], against=against)
    chosen = _grid_paths(test_dir)
    for name in names:

        def keep(score: ImageScore, images: EvaluatedImages, name: str = name) -> None:
            if score.path in chosen:
                row = result.grid.setdefault(score.path, {})
                row.setdefault("gray", images.gray)
                row.setdefault("truth", images.truth)
                row[name] = images.colorings[0]

        outcome = train_and_evaluate(
            name, configs[name], train_dir, test_dir, out / "runs" / name, shared.top_k, keep, say
        )
        result.methods.append(outcome)
        summary = outcome.summary()
        say(f"{name}: delta_e2000 {summary['delta_e2000']:.2f} on {summary['images']} test images")
    return result


def write_comparison(result: ComparisonResult, out: str | Path, command: str) -> list[Path]:
    """Write out/compare.md, compare.json, compare.png (bars) and compare_grid.png; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in ("compare.md", "compare.json", "compare.png", "compare_grid.png")]
    write_text(paths[0], comparison_markdown(result, command))
    write_json(paths[1], {"command": command, **result.to_dict()})
    write_bytes(paths[2], _bar_plot(result))
    write_bytes(paths[3], image_png(comparison_grid(result)))
    return paths


def comparison_markdown(result: ComparisonResult, command: str) -> str:
    """One table of every method's averages, the paired differences to `against`, and notes."""
    shared = result.shared
    first = result.methods[0].evaluation
    lines = [
        "# MemoPainter against baselines trained on the same data",
        "",
        f"Split: `{result.split}` ({first.summary()['images']} test images). Command: `{command}`",
        "",
        *_averages_table(result),
        "",
        f"Ground-truth colorfulness: {cell(first.average('colorfulness_gt'), 1)}. delta_e2000 is the mean "
        "CIEDE2000 over opaque pixels at full resolution (lower is better); best of "
        f"{shared.top_k} takes, per image, the best of the colorings from the top-{shared.top_k} memory "
        "slots; true feature conditions every test image on its own color feature instead of a memory "
        "slot, what a perfect retrieval would give (memory methods only).",
        "",
        f"Per-image delta_e2000 minus {METHODS[result.against].label}'s, mean and 95% t-interval over the "
        "test images (negative: better):",
        "",
        *_paired_table(result),
        "",
        f"Every method: {shared.steps} steps of batch {shared.batch_size} at {shared.image_size}x"
        f"{shared.image_size}, seed {shared.seed}, on {shared.device}; the same loop, optimizers and "
        "augmentation. Methods:",
        "",
        *[f"- {METHODS[m.name].label}: {METHODS[m.name].description}." for m in result.methods],
        "",
        PRETRAINING_NOTE,
        "",
    ]
    return "\n".join(lines)


def _averages_table(result: ComparisonResult) -> list[str]:
    """Markdown rows of every method's averages."""
    lines = [
        f"| method | delta_e2000 | best of {result.shared.top_k} | true feature | PSNR (dB) | SSIM | "
        "colorfulness | retrieval top-1 | train (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in result.methods:
        s = m.summary()
        accuracy = s["retrieval_top1_accuracy"]
        cells = [
            s["label"],
            cell(s["delta_e2000"]),
            cell(s["delta_e2000_best_of_k"]),
            cell(s["delta_e2000_true_feature"]),
            cell(s["psnr"]),
            cell(s["ssim"], 3),
            cell(s["colorfulness"], 1),
            "–" if accuracy is None else f"{100 * accuracy:.0f}%",
            "–" if s["train_seconds"] is None else f"{s['train_seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_table(result: ComparisonResult) -> list[str]:
    """Markdown rows of each method's paired difference to the method it is paired against."""
    lines = ["| method | mean difference | 95% interval | images better |", "|---|---|---|---|"]
    for m in result.methods:
        paired = result.paired(m.name)
        if paired is None:
            continue
        interval = "–" if paired["ci_low"] is None else f"[{paired['ci_low']:+.2f}, {paired['ci_high']:+.2f}]"
        lines.append(
            f"| {METHODS[m.name].label} | {paired['mean']:+.2f} | {interval} | "
            f"{100 * paired['share_better']:.0f}% |"
        )
    return lines


def comparison_grid(result: ComparisonResult, extra: dict[str, str] | None = None) -> Image.Image:
    """The same test images across methods: one row each, gray | every method's top-1 | ground truth.

    `extra` adds columns of result.grid before the truth, titled {column: title}.
    """
    extra = extra or {}
    columns = ["gray", *(m.name for m in result.methods), *extra, "truth"]
    titles = ["input", *(METHODS[m.name].label for m in result.methods), *extra.values(), "truth"]
    wrapped = [_wrap(title) for title in titles]
    header = 4 + 12 * max(len(lines) for lines in wrapped)
    rows = sorted(result.grid)
    grid = Image.new("RGB", (GRID_CELL * len(columns), header + GRID_CELL * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for c, lines in enumerate(wrapped):
        for line, text in enumerate(lines):
            draw.text((c * GRID_CELL + 3, 2 + 12 * line), text, fill="black")
    for r, path in enumerate(rows):
        for c, column in enumerate(columns):
            image = result.grid[path].get(column)
            if image is not None:
                _paste_fitted(grid, image, c * GRID_CELL, header + r * GRID_CELL)
    return grid


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


def _grid_paths(test_dir: Path) -> set[str]:
    """Up to GRID_IMAGES test images spread evenly over the sorted list (so over the classes)."""
    files = [p.relative_to(test_dir).as_posix() for p in list_test_images(test_dir)]
    if len(files) <= GRID_IMAGES:
        return set(files)
    step = (len(files) - 1) / (GRID_IMAGES - 1)
    return {files[round(i * step)] for i in range(GRID_IMAGES)}


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


def _paste_fitted(canvas: Image.Image, image: Image.Image, x: int, y: int) -> None:
    """Paste `image` scaled to fit a GRID_CELL square (aspect kept), transparency over white."""
    image = image.convert("RGBA")
    scale = (GRID_CELL - 4) / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    image = image.resize(size, resample)
    offset = (x + (GRID_CELL - size[0]) // 2, y + (GRID_CELL - size[1]) // 2)
    canvas.paste(image, offset, image.getchannel("A"))


def _wrap(title: str, width: int = 14) -> list[str]:
    """A column title in lines of at most `width` characters (a longer word gets a line of its own)."""
    words, lines = title.split(), [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return lines


def _bar_plot(result: ComparisonResult) -> bytes:
    """Bar chart of each method's delta_e2000 (and best of k where there is one), as PNG."""
    from matplotlib.figure import Figure

    summaries = [m.summary() for m in result.methods]
    figure = Figure(figsize=(1.6 + 1.3 * len(summaries), 3.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    xs = range(len(summaries))
    axes.bar([x - 0.2 for x in xs], [s["delta_e2000"] for s in summaries], 0.4, label="top-1")
    best = [s["delta_e2000_best_of_k"] or 0.0 for s in summaries]
    axes.bar([x + 0.2 for x in xs], best, 0.4, label=f"best of {result.shared.top_k}")
    axes.set_xticks(list(xs), ["\n".join(_wrap(s["label"])) for s in summaries], fontsize=8)
    axes.set_ylabel("mean CIEDE2000 (lower is better)")
    axes.legend(frameon=False, fontsize=8)
    return figure_png(figure)

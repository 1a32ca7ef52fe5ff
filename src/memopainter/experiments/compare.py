"""MemoPainter against baselines trained on the same data (the paper's Table 1 and Fig. 7, on our data).

Every method (experiments.methods) is trained by the same loop for the same number of steps, batch, seed and
image size on SPLIT/train, and scored by `evaluate` on SPLIT/test, so the only differences are the ones each
method is about. Runs are kept under OUT/runs/<method>, and a run whose saved settings match is reused
instead of trained again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from memopainter.evaluation.evaluate import list_test_images
from memopainter.evaluation.outputs import figure_png, image_png
from memopainter.evaluation.report import cell
from memopainter.evaluation.scores import EvaluatedImages, ImageScore
from memopainter.experiments.methods import (
    BASELINE,
    METHODS,
    MethodResult,
    Say,
    SharedSettings,
    drawn_lineart,
    method_config,
    split_dirs,
    train_and_evaluate,
)
from memopainter.experiments.statistics import t_interval
from memopainter.files import write_bytes, write_json, write_text

GRID_IMAGES = 8  # test images shown in the comparison grid
GRID_CELL = 96  # px, the side of one image in the grid
PRETRAINING_NOTE = (
    "The paper's CIC and Deep Priors baselines were pretrained on ImageNet; ImageNet cannot be had offline, "
    "so ours are trained from scratch on the same few images as MemoPainter, with the same network sizes. "
    "Only MemoPainter's query backbone is ImageNet-pretrained (frozen; it never sees color)."
)


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
            "shared": self.shared.to_dict(),
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
        f"{shared.image_size}, seed {shared.seed}, on {shared.device} with {_threads(result)}; the same "
        "loop, optimizers and augmentation. Methods:",
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


def _threads(result: ComparisonResult) -> str:
    """'2 CPU threads', naming any run whose training used another count (a reused run) or recorded none
    (a run older than the record, or one resumed after an interruption)."""
    threads = result.shared.to_dict()["cpu_threads"]
    exceptions = [
        f"{METHODS[m.name].label} {'not recorded' if m.cpu_threads is None else m.cpu_threads}"
        for m in result.methods
        if m.cpu_threads != threads
    ]
    return f"{threads} CPU threads" + (f" (other runs: {'; '.join(exceptions)})" if exceptions else "")


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


def _grid_paths(test_dir: Path) -> set[str]:
    """Up to GRID_IMAGES test images spread evenly over the sorted list (so over the classes)."""
    files = [p.relative_to(test_dir).as_posix() for p in list_test_images(test_dir)]
    if len(files) <= GRID_IMAGES:
        return set(files)
    step = (len(files) - 1) / (GRID_IMAGES - 1)
    return {files[round(i * step)] for i in range(GRID_IMAGES)}


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

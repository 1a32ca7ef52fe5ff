"""Line art in, color out, measured: MemoPainter in line-art mode against the same network without a memory
and against the nearest reference, on one split.

Both networks are compare METHODS ("memopainter-bins" and its no-memory twin "cic") trained with
data.input = "lineart" by the same loop, steps and seed; SPLIT/lineart/train and SPLIT/lineart/test (as
`data split --lineart` writes them) give drawn line art where a split has it, and lines are extracted
from the colors everywhere else. The nearest reference needs no training: each test drawing is colored
region by region from the training frame whose line art is nearest to it at the network's size, through
the same full-resolution path as the models (the default upsampling), so the three differ only in where
the colors come from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from memopainter.core.model import MODEL_FILE
from memopainter.data.dataset import TrainingData, load_training_data
from memopainter.data.images import load_image, pil_to_tensors
from memopainter.data.preprocess import AB_SCALE
from memopainter.evaluation.evaluate import list_test_images
from memopainter.evaluation.outputs import image_png
from memopainter.evaluation.scores import Evaluation, ImageScore, measure
from memopainter.experiments.compare import ComparisonResult, compare_experiment, comparison_grid
from memopainter.experiments.methods import METHODS, Say, SharedSettings, drawn_lineart, split_dirs
from memopainter.experiments.statistics import t_interval
from memopainter.files import write_bytes, write_json, write_text
from memopainter.inference import Colorizer
from memopainter.inference.fullres import recombine
from memopainter.inference.upsample import DEFAULT_UPSAMPLE

MEMORY, NO_MEMORY = "memopainter-bins", "cic"
NEAREST = "nearest-reference"
NEAREST_LABEL = "Nearest reference"


@dataclass
class LineartResult:
    """The two trained methods (paired against the no-memory one) and the nearest reference."""

    comparison: ComparisonResult
    nearest: Evaluation

    def paired(self, baseline: str) -> dict | None:
        """Per-image delta_e2000 of MemoPainter minus `baseline`'s (NO_MEMORY or NEAREST)."""
        if baseline != NEAREST:
            return self.comparison.paired(MEMORY, baseline)
        ours = {s.path: s.metrics.delta_e2000 for s in self._memory().evaluation.per_image}
        theirs = {s.path: s.metrics.delta_e2000 for s in self.nearest.per_image}
        differences = [ours[p] - theirs[p] for p in sorted(ours.keys() & theirs.keys())]
        if not differences:
            return None
        mean, low, high = t_interval(differences)
        return {
            "images": len(differences),
            "mean": mean,
            "ci_low": low,
            "ci_high": high,
            "share_better": sum(d < 0 for d in differences) / len(differences),
        }

    def _memory(self):
        return next(m for m in self.comparison.methods if m.name == MEMORY)

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        summary = self.nearest.summary()
        nearest = {key: summary[key] for key in ("images", "delta_e2000", "psnr", "ssim", "colorfulness")}
        return {
            "experiment": "lineart",
            **self.comparison.to_dict(),
            "nearest_reference": {**nearest, "same_class": self.nearest.retrieval_top1_accuracy()},
            "paired_memory_vs": {NO_MEMORY: self.paired(NO_MEMORY), NEAREST: self.paired(NEAREST)},
        }


def lineart_experiment(split: str | Path, out: str | Path, shared: SharedSettings, say: Say = print):
    """Train and evaluate MemoPainter and its no-memory twin on line art, then the nearest reference."""
    split = Path(split)
    shared = replace(shared, overrides=("data.input=lineart", *shared.overrides))
    comparison = compare_experiment(split, out, shared, [MEMORY, NO_MEMORY], say, against=NO_MEMORY)
    colorizer = Colorizer.from_pretrained(Path(out) / "runs" / MEMORY / MODEL_FILE, device=shared.device)
    say(f"{NEAREST}: coloring {split / 'test'} from the nearest training line art")

    def keep(path: str, image: Image.Image) -> None:
        if path in comparison.grid:
            comparison.grid[path][NEAREST] = image

    nearest = nearest_reference(colorizer, *split_dirs(split), keep)
    return LineartResult(comparison, nearest)


def nearest_reference(
    colorizer: Colorizer, train_dir: Path, test_dir: Path, keep=None, upsample: str = DEFAULT_UPSAMPLE
) -> Evaluation:
    """Score coloring each test image from the training frame of the nearest line art (L2 at network size).

    The test image is prepared as `colorizer` prepares it (its drawn line art from SPLIT/lineart/test
    when there, else extracted); the reference's lightness and ab at network size take the place of the
    network's, brought to full size as `upsample` (one of upsample.UPSAMPLERS) brings a coloring.
    """
    config = colorizer.model.config
    data = load_training_data(
        train_dir,
        colorizer.image_size,
        config.data.feature,
        input_mode="lineart",
        lineart_dir=drawn_lineart(train_dir),
        progress=lambda _: None,
    )
    references = data.gray.flatten(1)  # (N, S * S) the training frames' line art
    drawings = drawn_lineart(test_dir)
    per_image = []
    for path in list_test_images(test_dir):
        relative = path.relative_to(test_dir)
        drawing = drawings / relative if drawings is not None else None
        truth = load_image(path)
        drawn = drawing is not None and drawing.is_file()
        prepared = colorizer.prepare(*(load_image(drawing) if drawn else truth))
        nearest = int((references - prepared.net_gray.flatten()).square().sum(1).argmin())
        image = _colored_from(data, nearest, prepared, upsample)
        metrics = measure(*truth, [pil_to_tensors(image)[0]], None)
        record = data.records[nearest]
        name = relative.as_posix()
        reference = record.path.relative_to(train_dir).as_posix()
        class_name = relative.parts[0] if len(relative.parts) > 1 else None
        per_image.append(ImageScore(name, class_name, metrics, None, record.class_name, reference))
        if keep is not None:
            keep(name, image)
    return Evaluation(NEAREST, str(test_dir), 1, per_image, [], data.class_names, "not computed")


def _colored_from(data: TrainingData, index: int, prepared, upsample: str) -> Image.Image:
    """The prepared drawing colored with training frame `index`'s lightness and ab at network size."""
    ab = data.ab[index] * AB_SCALE  # (2, S, S) in Lab units
    return recombine(prepared, ab, upsample, data.lightness[index])


def write_lineart(result: LineartResult, out: str | Path, command: str) -> list[Path]:
    """Write out/lineart.md, lineart.json and lineart_grid.png; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in ("lineart.md", "lineart.json", "lineart_grid.png")]
    write_text(paths[0], lineart_markdown(result, command))
    write_json(paths[1], {"command": command, **result.to_dict()})
    write_bytes(paths[2], image_png(comparison_grid(result.comparison, {NEAREST: NEAREST_LABEL})))
    return paths


def lineart_markdown(result: LineartResult, command: str) -> str:
    """The averages of the three, and MemoPainter's paired differences to each baseline."""
    shared = result.comparison.shared
    rows = [
        f"| method | delta_e2000 | best of {shared.top_k} | PSNR (dB) | colorfulness | same class |",
        "|---|---|---|---|---|---|",
    ]
    for method in result.comparison.methods:
        s = method.summary()
        best = s["delta_e2000_best_of_k"]
        rows.append(_row(s["label"], s["delta_e2000"], best, s["psnr"], s, method.evaluation))
    nearest = result.nearest.summary()
    rows.append(_row(NEAREST_LABEL, nearest["delta_e2000"], None, nearest["psnr"], nearest, result.nearest))
    paired = ["| MemoPainter minus | mean | 95% interval | images better |", "|---|---|---|---|"]
    for baseline, label in ((NO_MEMORY, METHODS[NO_MEMORY].label), (NEAREST, NEAREST_LABEL)):
        p = result.paired(baseline)
        if p is not None:
            interval = "–" if p["ci_low"] is None else f"[{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]"
            paired.append(f"| {label} | {p['mean']:+.2f} | {interval} | {100 * p['share_better']:.0f}% |")
    first = result.comparison.methods[0].evaluation
    lines = [
        "# Line art in, color out",
        "",
        f"Split: `{result.comparison.split}` ({len(first.per_image)} test images, colored from their line "
        f"art, scored against their colors). Command: `{command}`",
        "",
        *rows,
        "",
        f"Ground-truth colorfulness: {first.average('colorfulness_gt'):.1f}. delta_e2000: mean CIEDE2000 "
        "over opaque pixels at full resolution (lower is better). Same class: the share of test images whose "
        "memory slot (MemoPainter) or reference (nearest reference) came from a frame of their class.",
        "",
        "Per-image delta_e2000 of MemoPainter minus each baseline's, mean and 95% t-interval:",
        "",
        *paired,
        "",
        f"Both networks: {shared.steps} steps of batch {shared.batch_size} at {shared.image_size}x"
        f"{shared.image_size}, seed {shared.seed}, data.input = lineart, the bins head. The nearest "
        "reference colors each region of the drawing from the training frame whose line art is nearest "
        "(L2 at the network size), through the same full-resolution path.",
        "",
    ]
    return "\n".join(lines)


def _row(label: str, delta_e: float, best: float | None, psnr: float, summary: dict, evaluation) -> str:
    accuracy = evaluation.retrieval_top1_accuracy()
    cells = [
        label,
        f"{delta_e:.2f}",
        "–" if best is None else f"{best:.2f}",
        f"{psnr:.2f}",
        f"{summary['colorfulness']:.1f}",
        "–" if accuracy is None else f"{100 * accuracy:.0f}%",
    ]
    return "| " + " | ".join(cells) + " |"

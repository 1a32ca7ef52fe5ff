"""The evaluation report a person reads: DIR/index.html, its images under DIR/images/ and matplotlib plots.

The page works offline with nothing but its folder: no scripts, no web fonts, no CDN. It shows the averages,
the model's settings, the distribution of per-image CIEDE2000 (overall and per class), the failures, and
every image as gray input | top-1 .. top-k | ground truth, worst first. Images are saved once as PNG
thumbnails (at most THUMB_MAX px a side) and shown in a DISPLAY px box, pixel art scaled up without blur.
Every piece of text from outside (file names, class names, errors) is HTML-escaped.

matplotlib is an optional dependency (the `report` extra), imported only here and only when plotting.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from memopainter.evaluation.outputs import figure_png, image_png
from memopainter.evaluation.scores import PSNR_CAP, EvaluatedImages, Evaluation, ImageScore
from memopainter.files import publish_folder, staging_folder, write_bytes, write_text
from memopainter.inference import Colorizer

INDEX_FILE = "index.html"
IMAGES_DIR = "images"
HISTOGRAM_FILE = "delta_e2000_histogram.png"
BY_CLASS_FILE = "delta_e2000_by_class.png"
THUMB_MAX = 320  # px: twice the display box, sharp on high-density screens
DISPLAY = 160  # px: the box each image is fitted into on the page
MAX_PLOTTED_CLASSES = 40  # a taller per-class plot is unreadable; the worst classes by median are kept
MAX_LISTED_CLASSES = 30
INSTALL_HINT = "install with pip install 'memopainter[report]'"

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1160px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #555; margin: 0 0 12px; word-break: break-all; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
th, td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: 12px; max-width: 900px; }
.plots img { max-width: 100%; margin: 0 12px 12px 0; border: 1px solid #eee; }
.item { border-top: 1px solid #ddd; padding: 10px 0 6px; }
.item h3 { font-size: 14px; margin: 0 0 2px; word-break: break-all; }
.meta { color: #444; font-size: 12px; margin: 0 0 6px; }
.strip { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; width: 160px; }
.box { width: 160px; height: 160px; display: flex; align-items: center; justify-content: center;
  background: repeating-conic-gradient(#ddd 0 25%, #fff 0 50%) 0 0 / 16px 16px; }
.box img.pixel { image-rendering: pixelated; }
figcaption { font-size: 12px; color: #333; text-align: center; margin-top: 2px; }
.failed li { word-break: break-all; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
"""


class ReportUnavailable(RuntimeError):
    """The report cannot be made here: matplotlib is missing."""


@dataclass(frozen=True)
class Thumbnail:
    """One saved image of the report: its path relative to the report folder and its pixel size."""

    src: str
    width: int
    height: int


def require_matplotlib() -> None:
    """Raise ReportUnavailable, saying how to install it, unless matplotlib can be imported."""
    _figure_class()


def check_report_dir(folder: str | os.PathLike) -> None:
    """Raise ValueError unless `folder` is absent or an empty folder: a report never mixes with old files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise ValueError(f"{folder}: is not empty; choose a new report folder")


class ReportImages:
    """Saves each evaluated image's gray input, colorings and ground truth as PNGs under DIR/images/.

    They go into a hidden staging folder beside DIR, which `write_report` fills and puts in DIR's place:
    an evaluation cut short leaves no half report in DIR (nor, once the next report starts, beside it).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        destination = Path(folder)
        for stale in destination.parent.glob(f".{destination.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)  # what a killed evaluation left
        self.folder = staging_folder(destination)
        self.saved: dict[int, list[Thumbnail]] = {}  # per_image index -> gray, colorings..., truth

    def add(self, index: int, score: ImageScore, images: EvaluatedImages) -> None:
        """Save one image's strip; names are made from `index`, never from the (untrusted) file name."""
        strip = [images.gray, *images.colorings, images.truth]
        names = ["gray", *(f"k{k}" for k in range(1, len(images.colorings) + 1)), "truth"]
        saved = []
        for image, name in zip(strip, names, strict=True):
            relative = f"{IMAGES_DIR}/{index:05d}-{name}.png"
            thumb = _thumbnail(image)
            write_bytes(self.folder / relative, image_png(thumb))
            saved.append(Thumbnail(relative, *thumb.size))
        self.saved[index] = saved


def write_report(
    folder: str | os.PathLike,
    evaluation: Evaluation,
    colorizer: Colorizer,
    images: ReportImages | None = None,
) -> Path:
    """Write DIR/index.html and the plots, with the strips `images` saved while evaluating, if any, and put
    them in DIR's place at once; returns DIR/index.html."""
    destination = Path(folder)
    figure = _figure_class()
    folder = images.folder if images is not None else staging_folder(destination)
    plots = []
    values = [s.metrics.delta_e2000 for s in evaluation.per_image]
    if values:
        write_bytes(folder / HISTOGRAM_FILE, _histogram(figure, values))
        plots.append(HISTOGRAM_FILE)
        by_class = _by_class(evaluation)
        if by_class:
            write_bytes(folder / BY_CLASS_FILE, _class_plot(figure, by_class))
            plots.append(BY_CLASS_FILE)
    page = _page(evaluation, colorizer, plots, images.saved if images is not None else {})
    write_text(folder / INDEX_FILE, page)
    publish_folder(folder, destination)
    return destination / INDEX_FILE


def _figure_class() -> type:
    """matplotlib's Figure, imported lazily: pyplot is never used, so no global backend is touched."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ReportUnavailable(f"the evaluation report needs matplotlib: {INSTALL_HINT}") from error
    return Figure


def _histogram(figure_class: type, values: list[float]) -> bytes:
    """PNG histogram of per-image mean CIEDE2000, with the mean marked."""
    figure = figure_class(figsize=(6.0, 3.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.hist(values, bins=max(5, min(30, len(values) // 2)), color="#4a7bb7", edgecolor="white")
    mean = statistics.fmean(values)
    axes.axvline(mean, color="#c0392b", linestyle="--", label=f"mean {mean:.2f}")
    axes.set_xlabel("mean CIEDE2000 per image (lower is better)")
    axes.set_ylabel("images")
    axes.legend(frameon=False)
    return figure_png(figure)


def _class_plot(figure_class: type, by_class: dict[str, list[float]]) -> bytes:
    """PNG of per-image CIEDE2000 per class: a box and the points of each class, worst median on top."""
    order = sorted(by_class, key=lambda name: statistics.median(by_class[name]))
    title = "CIEDE2000 per image, by class"
    if len(order) > MAX_PLOTTED_CLASSES:
        title += f" ({MAX_PLOTTED_CLASSES} worst of {len(order)} classes)"
        order = order[-MAX_PLOTTED_CLASSES:]
    figure = figure_class(figsize=(6.0, 1.0 + 0.32 * len(order)), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    data = [by_class[name] for name in order]
    axes.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False)  # matplotlib >= 3.10
    for row, points in enumerate(data, start=1):
        axes.plot(points, [row] * len(points), "o", color="#4a7bb7", alpha=0.6, markersize=4)
    axes.set_yticks(range(1, len(order) + 1))
    # A '$' would switch matplotlib into math mode: class names are shown literally.
    axes.set_yticklabels([f"{name.replace('$', chr(92) + '$')} ({len(by_class[name])})" for name in order])
    axes.set_xlabel("mean CIEDE2000 per image (lower is better)")
    axes.set_title(title, fontsize=10)
    return figure_png(figure)


def _by_class(evaluation: Evaluation) -> dict[str, list[float]]:
    """Per-image CIEDE2000 grouped by class folder; empty when no test image has a class."""
    groups: dict[str, list[float]] = {}
    for score in evaluation.per_image:
        if score.class_name is not None:
            groups.setdefault(score.class_name, []).append(score.metrics.delta_e2000)
    return groups


def _page(
    evaluation: Evaluation, colorizer: Colorizer, plots: list[str], saved: dict[int, list[Thumbnail]]
) -> str:
    """The whole HTML document."""
    e = html.escape
    summary = evaluation.summary()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>MemoPainter evaluation: {e(evaluation.test_dir)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>MemoPainter evaluation</h1>",
        f'<p class="sub">{summary["images"]} images of {e(evaluation.test_dir)} colorized by '
        f"{e(evaluation.model)}, {summary['failed']} failed, top-{evaluation.top_k}</p>",
        "<h2>Averages</h2>",
        _averages_table(evaluation),
        "<h2>Model</h2>",
        _model_table(colorizer),
    ]
    if plots:
        parts.append("<h2>Distribution of CIEDE2000</h2>")
        images = "".join(f'<img src="{e(p)}" alt="{e(p)}">' for p in plots)
        parts.append(f'<div class="plots">{images}</div>')
    parts.append(_class_table(evaluation))
    if evaluation.failures:
        items = "".join(f"<li>{e(f.path)}: {e(f.error)}</li>" for f in evaluation.failures)
        parts.append(f'<h2>Failed ({len(evaluation.failures)})</h2><ul class="failed">{items}</ul>')
    parts.append("<h2>Images, worst first</h2>")
    parts.append(
        '<p class="note">gray input | the colorings from the top-1 to top-k memory slots | ground truth; '
        "each caption gives that coloring's mean CIEDE2000 against the ground truth.</p>"
    )
    worst_first = sorted(enumerate(evaluation.per_image), key=lambda item: -item[1].metrics.delta_e2000)
    for rank, (index, score) in enumerate(worst_first, start=1):
        parts.append(_image_item(rank, score, saved.get(index)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _averages_table(evaluation: Evaluation) -> str:
    """The averages, with what each means and over how many images."""
    summary = evaluation.summary()

    def count(name: str) -> int:
        return sum(getattr(s.metrics, name) is not None for s in evaluation.per_image)

    lpips_note = "lower is better (LPIPS v0.1 alex)"
    if evaluation.lpips_unavailable is not None:
        lpips_note = evaluation.lpips_unavailable
    rows = [
        ("CIEDE2000 (top-1)", cell(summary["delta_e2000"]), count("delta_e2000"), "lower is better; primary"),
        (
            f"CIEDE2000 best of top-{evaluation.top_k}",
            cell(summary["delta_e2000_best_of_k"]),
            count("delta_e2000"),
            "lower is better; equals top-1 when k = 1",
        ),
        ("PSNR (dB)", cell(summary["psnr"]), count("psnr"), f"higher is better; capped at {PSNR_CAP:g} dB"),
        ("SSIM", cell(summary["ssim"], 4), count("ssim"), "higher is better; images of 11 px a side or more"),
        ("LPIPS", cell(summary["lpips"], 4), count("lpips"), lpips_note),
        ("colorfulness (output)", cell(summary["colorfulness"]), count("colorfulness"), "Hasler, Suesstrunk"),
        ("colorfulness (ground truth)", cell(summary["colorfulness_gt"]), count("colorfulness_gt"), ""),
        (
            "retrieval top-1 accuracy",
            cell(summary["retrieval_top1_accuracy"], 3),
            summary["retrieval_images"],
            "share of images whose top-1 slot was written by an image of their class (paper 4.1.3)",
        ),
    ]
    if evaluation.sequences is not None:
        frames = summary["sequence_frames"]
        rows += [
            (
                "flicker",
                cell(summary["flicker"]),
                frames,
                "mean CIEDE2000 between consecutive outputs where "
                f"the truth is still; lower is better; {summary['sequences']} animations",
            ),
            ("slot switches per 100 frames", cell(summary["switches_per_100_frames"], 1), frames, "top-1"),
        ]
    body = "".join(
        f'<tr><td>{html.escape(name)}</td><td class="num">{value}</td><td class="num">{n}</td>'
        f'<td class="note">{html.escape(note)}</td></tr>'
        for name, value, n, note in rows
    )
    return f"<table><tr><th>metric</th><th>mean</th><th>images</th><th></th></tr>{body}</table>"


def _class_table(evaluation: Evaluation) -> str:
    """Per-class averages, worst first; empty when no test image has a class."""
    groups: dict[str, list[ImageScore]] = {}
    for score in evaluation.per_image:
        if score.class_name is not None:
            groups.setdefault(score.class_name, []).append(score)
    if not groups:
        return ""
    known = set(evaluation.model_classes)
    rows = []
    for name, scores in sorted(groups.items(), key=lambda item: -_mean_delta(item[1])):
        accuracy = "–"
        if name in known:
            accuracy = cell(sum(s.retrieved_class == name for s in scores) / len(scores), 3)
        rows.append(
            f'<tr><td>{html.escape(name)}</td><td class="num">{len(scores)}</td>'
            f'<td class="num">{cell(_mean_delta(scores))}</td><td class="num">{accuracy}</td></tr>'
        )
    head = "<tr><th>class</th><th>images</th><th>CIEDE2000</th><th>retrieval top-1</th></tr>"
    return f"<h2>Per class</h2><table>{head}{''.join(rows)}</table>"


def _mean_delta(scores: list[ImageScore]) -> float:
    return statistics.fmean(s.metrics.delta_e2000 for s in scores)


def _model_table(colorizer: Colorizer) -> str:
    """The model's settings that matter to its results, then its whole configuration."""
    memo = colorizer.model
    config = memo.config
    backbone = "none (no memory)"
    if memo.memory is not None:
        digest = memo.backbone.get("sha256")
        backbone = f"{memo.backbone.get('name')} (weights {digest[:12] if digest else 'none'})"
    memory = "none"
    if memo.memory is not None:
        m = memo.memory
        memory = f"{m.num_filled} of {m.size} slots written; threshold {m.threshold:g}"
        memory += f", triplet loss over the top {m.top_k} slots"
    classes = memo.class_names[:MAX_LISTED_CLASSES]
    more = f" and {len(memo.class_names) - len(classes)} more" if len(memo.class_names) > len(classes) else ""
    training = f"{config.train.steps} steps" if config.train.steps else f"{config.train.epochs} epochs"
    rows = [
        ("checkpoint", str(colorizer.path)),
        ("color feature", config.data.feature),
        ("image size", f"{config.data.image_size} px"),
        ("query backbone", backbone),
        ("memory", memory),
        ("training", f"{training} of batch {config.train.batch_size}, seed {config.train.seed}"),
        ("training images", str(len(memo.source_paths))),
        ("classes", f"{len(memo.class_names)}: {', '.join(classes)}{more}" if memo.class_names else "none"),
        ("memopainter version", memo.version),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    full = html.escape(json.dumps(config.to_dict(), indent=2))
    return f"<table>{body}</table><details><summary>full configuration</summary><pre>{full}</pre></details>"


def _image_item(rank: int, score: ImageScore, thumbs: list[Thumbnail] | None) -> str:
    """One image: its name, class, retrieval and metrics, then its strip of images."""
    e = html.escape
    m = score.metrics
    facts = [f"class {e(score.class_name)}" if score.class_name is not None else "no class"]
    if score.slots is not None:
        writer = e(score.retrieved_class or "no class")
        source = f" ({e(score.retrieved_source)})" if score.retrieved_source is not None else ""
        facts.append(f"top-1 slot {score.slots[0]} written by {writer}{source}")
    facts += [
        f"CIEDE2000 {cell(m.delta_e2000)}",
        f"best of k {cell(m.delta_e2000_best_of_k)}",
        f"PSNR {cell(m.psnr)} dB",
        f"SSIM {cell(m.ssim, 4)}",
        f"LPIPS {cell(m.lpips, 4)}",
        f"colorfulness {cell(m.colorfulness, 1)} (truth {cell(m.colorfulness_gt, 1)})",
    ]
    parts = [f'<div class="item"><h3>{rank}. {e(score.path)}</h3><p class="meta">{" · ".join(facts)}</p>']
    if thumbs:
        captions = ["gray input"]
        best = m.delta_e2000_per_k.index(m.delta_e2000_best_of_k) if len(m.delta_e2000_per_k) > 1 else -1
        for k, delta in enumerate(m.delta_e2000_per_k):
            captions.append(f"top-{k + 1} · {cell(delta)}" + (" (best)" if k == best else ""))
        captions.append("ground truth")
        figures = "".join(_cell(t, c) for t, c in zip(thumbs, captions, strict=True))
        parts.append(f'<div class="strip">{figures}</div>')
    parts.append("</div>")
    return "".join(parts)


def _cell(thumb: Thumbnail, caption: str) -> str:
    """One image fitted into the display box, scaled up without smoothing when it is small."""
    scale = DISPLAY / max(thumb.width, thumb.height)
    width, height = max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))
    pixel = ' class="pixel"' if scale > 1 else ""
    src = html.escape(thumb.src)
    return (
        f'<figure><div class="box"><img{pixel} src="{src}" width="{width}" height="{height}" '
        f'alt="{html.escape(caption)}"></div><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def cell(value: float | None, digits: int = 2) -> str:
    """A table cell: the value to `digits` decimals, or a dash when there is none."""
    return "–" if value is None else f"{value:.{digits}f}"


def _thumbnail(image: Image.Image) -> Image.Image:
    """The image shrunk to THUMB_MAX px a side when larger (premultiplied, so no dark fringes), else as is."""
    if max(image.size) <= THUMB_MAX:
        return image
    scale = THUMB_MAX / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if image.mode == "RGBA":
        return image.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")
    return image.resize(size, Image.Resampling.LANCZOS)

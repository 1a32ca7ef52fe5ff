"""How colors reach full resolution: each upsampler against bilinear on one trained model, at the test
images' native size and upscaled by nearest neighbour (a frame drawn larger than the network's side).

Every test image is colorized once per upsampler from the same prediction, so the per-image differences are
paired; the table gives their mean and 95% t-interval, and the upsampling floor: the same images recombined
from their own true ab at network size, which is what upsampling alone costs. The floor's colorfulness is
the most any generator at that network size can show: fine color detail (dithering, one-pixel highlights)
does not survive the network's side.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from memopainter.data.images import load_image, pil_to_tensors, tensors_to_pil
from memopainter.data.preprocess import AB_SCALE, network_input
from memopainter.evaluation.evaluate import list_test_images
from memopainter.evaluation.metrics import colorfulness, delta_e2000
from memopainter.evaluation.outputs import image_png
from memopainter.experiments.statistics import format_interval, t_interval
from memopainter.files import write_bytes, write_json, write_text
from memopainter.inference import Colorizer
from memopainter.inference.fullres import gray_preview, recombine
from memopainter.inference.results import IMAGE_ERRORS
from memopainter.inference.upsample import UPSAMPLERS

BASELINE = "bilinear"
GRID_IMAGES = 4  # test images shown in the grid, spread evenly over the sorted list
GRID_CELL = 256  # px per grid cell


@dataclass
class Row:
    """One upsampler at one scale: mean delta_e2000 and colorfulness of the model's colorings and of the
    floor, and the truth's colorfulness."""

    upscale: int
    upsample: str
    delta_e2000: float
    floor: float  # from the true ab at network size: upsampling's own error
    difference: float | None  # paired, against bilinear; None for bilinear itself
    low: float | None
    high: float | None
    images: int
    colorfulness: float
    floor_colorfulness: float
    truth_colorfulness: float


@dataclass
class Score:
    """One image under one upsampler; a Row holds the means of these fields."""

    delta_e2000: float  # of the model's coloring
    floor: float  # delta_e2000 of the truth's own ab at network size, recombined
    colorfulness: float
    floor_colorfulness: float
    truth_colorfulness: float


def upsampling_experiment(
    model: str | Path, test_dir: str | Path, upscales: list[int], say: Callable[[str], None] = print
) -> tuple[list[Row], Image.Image]:
    """Every upsampler at every upscale factor on the images of `test_dir`, and a grid of a few of them
    (gray | each upsampler | truth) at the first factor."""
    colorizer = Colorizer.from_pretrained(model)
    if colorizer.lineart:
        # the floor recombines the truth's colors with the input's lightness, which line art does not carry
        raise ValueError(
            f"{colorizer.path}: a line-art model; the upsampling experiment measures gray-input models"
        )
    files = list_test_images(test_dir)
    shown = {files[round(i * (len(files) - 1) / max(GRID_IMAGES - 1, 1))] for i in range(GRID_IMAGES)}
    rows, grid = [], []
    for factor in upscales:
        scores = _scores(colorizer, files, factor, grid if factor == upscales[0] else None, shown, say)
        base = [s.delta_e2000 for s in scores[BASELINE]]
        for name in UPSAMPLERS:
            diff = low = high = None
            if name != BASELINE:
                paired = [s.delta_e2000 - b for s, b in zip(scores[name], base, strict=True)]
                diff, low, high = t_interval(paired)
            mean = {f.name: statistics.fmean(getattr(s, f.name) for s in scores[name]) for f in fields(Score)}
            row = Row(factor, name, difference=diff, low=low, high=high, images=len(base), **mean)
            rows.append(row)
            say(f"x{factor} {name}: delta_e2000 {row.delta_e2000:.3f}, floor {row.floor:.3f}")
    return rows, _grid(grid)


def _scores(
    colorizer: Colorizer,
    files: list[Path],
    factor: int,
    grid: list | None,
    shown: set[Path],
    say: Callable[[str], None],
) -> dict[str, list[Score]]:
    """Per upsampler, the Score of every image; the shown images' renders go to grid. An image that cannot
    be read is said and skipped, as evaluate skips it."""
    scores: dict[str, list[Score]] = {name: [] for name in UPSAMPLERS}
    size = colorizer.image_size
    for path in files:
        try:
            rgb, alpha = _upscaled(*load_image(path), factor)
        except IMAGE_ERRORS as error:
            say(f"{path}: skipped ({' '.join(str(error).split())})")
            continue
        if alpha is not None and not bool((alpha >= 0.5).any()):
            continue
        prepared = colorizer.prepare(rgb, alpha)
        ab = colorizer.predict([prepared]).ab[0, 0]  # (2, S, S), the model's top-1
        truth_ab = network_input(rgb, alpha, size)[1] * AB_SCALE  # (2, S, S)
        renders = [gray_preview(prepared)]
        truth_colorfulness = colorfulness(rgb, alpha)
        for name in UPSAMPLERS:
            renders.append(recombine(prepared, ab, name))
            colored = pil_to_tensors(renders[-1])[0]
            floor = pil_to_tensors(recombine(prepared, truth_ab, name))[0]
            scores[name].append(
                Score(
                    delta_e2000(colored, rgb, alpha),
                    delta_e2000(floor, rgb, alpha),
                    colorfulness(colored, alpha),
                    colorfulness(floor, alpha),
                    truth_colorfulness,
                )
            )
        if grid is not None and path in shown:
            grid.append([*renders, tensors_to_pil(rgb, alpha)])
    return scores


def _grid(rows: list[list[Image.Image]]) -> Image.Image:
    """Rows of gray | each upsampler | truth, each image fitted into a cell on white."""
    titles = ["gray", *UPSAMPLERS, "truth"]
    header = 20
    sheet = Image.new("RGB", (GRID_CELL * len(titles), header + GRID_CELL * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(titles):
        draw.text((c * GRID_CELL + 4, 4), title, fill="black")
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            image = image.convert("RGBA")
            scale = GRID_CELL / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            # Small sprites are enlarged pixel by pixel, so the grid shows their colors, not a blur.
            image = image.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
            sheet.paste(image, (c * GRID_CELL, header + r * GRID_CELL), image)
    return sheet


def _upscaled(rgb: torch.Tensor, alpha: torch.Tensor | None, factor: int):
    """Nearest-neighbour upscaling: the same drawing with `factor` times the pixels."""
    if factor == 1:
        return rgb, alpha
    rgb = rgb.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    if alpha is not None:
        alpha = alpha.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return rgb, alpha


def write_upsampling(
    result: tuple[list[Row], Image.Image], out: str | Path, model: str, test_dir: str, command: str
) -> list[Path]:
    """OUT/upsampling.md, OUT/upsampling.json and OUT/upsampling_grid.png."""
    rows, grid = result
    out = Path(out)
    lines = [
        "# Full-resolution color: upsamplers against bilinear",
        "",
        f"Model `{model}`, test images `{test_dir}`. Command: `{command}`",
        "",
        "| upscale | upsample | delta_e2000 | vs bilinear, 95% interval | floor (true ab) | colorfulness "
        "| floor's colorfulness | images |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paired = "–" if r.difference is None else format_interval(r.difference, r.low, r.high, 3)
        lines.append(
            f"| x{r.upscale} | {r.upsample} | {r.delta_e2000:.3f} | {paired} | {r.floor:.3f} | "
            f"{r.colorfulness:.1f} | {r.floor_colorfulness:.1f} | {r.images} |"
        )
    lines += [
        "",
        "Upscale xN: each test image (and its truth) enlarged N times by nearest neighbour before "
        "colorizing. Floor: the image recombined from its own true ab at the network's size, the error "
        "upsampling alone makes. Differences are per image, paired (the same prediction upsampled both "
        "ways). Colorfulness (Hasler and Suesstrunk, mean over images) of the truth: "
        f"{rows[0].truth_colorfulness:.1f}; the floor's is the most a generator at this network size can "
        "show.",
        "",
    ]
    paths = [out / "upsampling.md", out / "upsampling.json", out / "upsampling_grid.png"]
    write_text(paths[0], "\n".join(lines))
    write_json(
        paths[1],
        {"command": command, "model": model, "test_dir": test_dir, "rows": [asdict(r) for r in rows]},
    )
    write_bytes(paths[2], image_png(grid))
    return paths

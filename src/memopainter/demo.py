"""The newcomer's first run: build Kenney's sprites, split them few-shot, train, colorize the held-out frames
with top-3 alternatives, evaluate them against the originals and write an HTML report.

Every stage reuses what an earlier run left: the built dataset, the split and the trained model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memopainter.config import RunConfig, load_config
from memopainter.core.model import CONFIG_FILE, MODEL_FILE
from memopainter.core.runs import finished_with, interrupted_with
from memopainter.data.builders.kenney import build_kenney
from memopainter.data.builders.split import build_split
from memopainter.evaluation.evaluate import evaluate
from memopainter.evaluation.report import (
    IMAGES_DIR,
    INDEX_FILE,
    ReportImages,
    require_matplotlib,
    write_report,
)
from memopainter.files import write_json
from memopainter.inference import Colorizer
from memopainter.networks.backbones import fetch_weights, find_weights, get_spec
from memopainter.training.events import TextProgress
from memopainter.training.loop import train

SHOTS = 3  # three training frames per class: every Kenney class has at least four
TOP_K = 3
# 800 steps of 16 at 64x64 take about 3 minutes on a 2-core CPU, inside the 5 minute budget.
DEMO_SETTINGS = ["train.steps=800", "train.sample_every=200", "train.checkpoint_every=200"]


@dataclass
class DemoResult:
    """Where the demo put things, and its headline figures."""

    report: Path
    model: Path
    summary: dict


def run_demo(
    out_dir: str | Path,
    dataset: str | Path | None = None,
    overrides: list[str] | None = None,
    say: Callable[[str], None] = print,
    shots: int = SHOTS,
    input_mode: str = "gray",
) -> DemoResult:
    """Run the whole demo into `out_dir`; `dataset` (class folders) replaces Kenney; `overrides` as --set.

    `input_mode` "lineart" trains on line art extracted from the frames and colors the held-out frames from
    their extracted lines, into out_dir/run-lineart and out_dir/report-lineart beside the gray demo's.
    """
    out = Path(out_dir)
    require_matplotlib()  # fail before minutes of work, not after
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: OUT exists and is not a folder; name a folder for the demo")
    config = load_config(None, [*DEMO_SETTINGS, f"data.input={input_mode}", *(overrides or [])])
    suffix = "" if config.data.input == "gray" else f"-{config.data.input}"
    run, report, split = out / f"run{suffix}", out / f"report{suffix}", out / f"split-{shots}shot"
    _check_own_folders(run, report, split, dataset)
    if dataset is None:
        dataset = out / "kenney"
        if not (dataset / "dataset.json").is_file():
            say(f"building Kenney's CC0 sprites into {dataset} (pip download of the arcade wheel, cached)")
            build_kenney(dataset)
    if not (split / "dataset.json").is_file():
        say(f"splitting {dataset}: {shots} training frames per class, the rest held out")
        build_split(dataset, split, shots=shots, seed=0)

    _ensure_backbone(config, say)
    if finished_with(run, config, split / "train"):
        say(f"reusing the model trained earlier in {run}")
    elif interrupted_with(run, config, split / "train"):
        say(f"resuming the interrupted training in {run} ({config.train.steps} steps; progress below)")
        train(config, split / "train", run, on_event=TextProgress(say), resume=True)
    else:
        # A differently configured demo run starts over: only its own files are deleted.
        say(f"training on {split / 'train'} ({config.train.steps} steps; progress below)")
        train(config, split / "train", run, on_event=TextProgress(say), overwrite=run.exists())

    frames = "line art of the held-out frames" if suffix else "held-out frames"
    say(f"colorizing and evaluating the {frames} in {split / 'test'} with top-{TOP_K} alternatives")
    colorizer = Colorizer.from_pretrained(run)
    images = ReportImages(report)  # the report replaces the last one only once it is complete
    result = evaluate(colorizer, split / "test", TOP_K, on_image=images.add)
    index = write_report(report, result, colorizer, images)
    write_json(report / "metrics.json", result.to_json())
    return DemoResult(index, run / MODEL_FILE, result.summary())


def _check_own_folders(run: Path, report: Path, split: Path, dataset: str | Path | None) -> None:
    """Refuse, before any work, an OUT whose folders the demo did not write, or wrote for other data: the
    demo rewrites its report and run folders and reuses its split and model."""
    for folder, mark, what in ((report, INDEX_FILE, "a report"), (run, CONFIG_FILE, "a run")):
        if _holds_files(folder) and not (folder / mark).is_file() and not _old_partial_report(folder, mark):
            raise ValueError(f"{folder}: not {what} the demo wrote (no {mark}); choose another --out")
    manifest = split / "dataset.json"
    if manifest.is_file():
        source = json.loads(manifest.read_text(encoding="utf-8")).get("source")
        wanted = split.parent / "kenney" if dataset is None else Path(dataset)
        if source is None or Path(source).resolve() != wanted.resolve():
            raise ValueError(
                f"{split}: split from {source}, not {wanted}; use another --out for another data set"
            )


def _old_partial_report(folder: Path, mark: str) -> bool:
    """A report that earlier versions, which wrote its images in place, left when cut short: images only."""
    return mark == INDEX_FILE and folder.is_dir() and [p.name for p in folder.iterdir()] == [IMAGES_DIR]


def _holds_files(folder: Path) -> bool:
    """Whether `folder` exists and is not an empty folder (a run killed before it wrote anything)."""
    return folder.exists() and (not folder.is_dir() or any(folder.iterdir()))


def _ensure_backbone(config: RunConfig, say: Callable[[str], None]) -> None:
    """The demo is an explicit request to set everything up: it fetches the backbone's weights if needed."""
    spec = get_spec(config.memory.backbone)
    if spec.weights_file is not None and find_weights(spec) is None:
        say(f"fetching the {spec.name} weights ({spec.pip_requirement}, pip download, cached)")
        fetch_weights(spec.name)

"""The newcomer's first run: build Kenney's sprites, split them few-shot, train, colorize the held-out frames
with top-3 alternatives, evaluate them against the originals and write an HTML report.

Every stage reuses what an earlier run left: the built dataset, the split and the trained model.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memopainter.config import RunConfig, load_config
from memopainter.core.model import MODEL_FILE
from memopainter.core.runs import finished_with
from memopainter.data.builders.kenney import build_kenney
from memopainter.data.builders.split import build_split
from memopainter.evaluation.evaluate import evaluate
from memopainter.evaluation.report import ReportImages, require_matplotlib, write_report
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
    if dataset is None:
        dataset = out / "kenney"
        if not (dataset / "dataset.json").is_file():
            say(f"building Kenney's CC0 sprites into {dataset} (pip download of the arcade wheel, cached)")
            build_kenney(dataset)
    split = out / f"split-{shots}shot"
    if not (split / "dataset.json").is_file():
        say(f"splitting {dataset}: {shots} training frames per class, the rest held out")
        build_split(dataset, split, shots=shots, seed=0)

    config = load_config(None, [*DEMO_SETTINGS, f"data.input={input_mode}", *(overrides or [])])
    _ensure_backbone(config, say)
    suffix = "" if config.data.input == "gray" else f"-{config.data.input}"
    run = out / f"run{suffix}"
    if finished_with(run, config):
        say(f"reusing the model trained earlier in {run}")
    else:
        if run.exists():
            shutil.rmtree(run)  # an interrupted or differently configured demo run: start over
        say(f"training on {split / 'train'} ({config.train.steps} steps; progress below)")
        train(config, split / "train", run, on_event=TextProgress(say))

    frames = "line art of the held-out frames" if suffix else "held-out frames"
    say(f"colorizing and evaluating the {frames} in {split / 'test'} with top-{TOP_K} alternatives")
    colorizer = Colorizer.from_pretrained(run)
    report = out / f"report{suffix}"
    if report.exists():
        shutil.rmtree(report)  # the demo's own output, rewritten each run
    images = ReportImages(report)
    result = evaluate(colorizer, split / "test", TOP_K, on_image=images.add)
    index = write_report(report, result, colorizer, images)
    write_json(report / "metrics.json", result.to_json())
    return DemoResult(index, run / MODEL_FILE, result.summary())


def _ensure_backbone(config: RunConfig, say: Callable[[str], None]) -> None:
    """The demo is an explicit request to set everything up: it fetches the backbone's weights if needed."""
    spec = get_spec(config.memory.backbone)
    if spec.weights_file is not None and find_weights(spec) is None:
        say(f"fetching the {spec.name} weights ({spec.pip_requirement}, pip download, cached)")
        fetch_weights(spec.name)

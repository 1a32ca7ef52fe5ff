"""Time to quality: delta_e2000 on the test images against the minutes spent training, per method.

Each method (a configuration of `methods.METHODS`) trains once, in chunks that end at the milestones: each
chunk resumes the checkpoint of the one before, which continues exactly (same batches, same random state), so
the model at a milestone is the one a single run of that many steps would give. After each chunk the model
is scored top-1 on the test folder. Minutes are the sum of the steps' own times logged in metrics.jsonl:
loading the data, evaluation and the restarts between chunks are not counted, so methods compare on the
work they do, not on how often they were stopped.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from memopainter.core.model import MODEL_FILE
from memopainter.evaluation.evaluate import evaluate
from memopainter.experiments.methods import METHODS, Say, SharedSettings, method_config, split_dirs
from memopainter.files import write_bytes, write_json, write_text
from memopainter.inference import Colorizer
from memopainter.training.loop import train
from memopainter.training.run_folder import METRICS_FILE


@dataclass
class Point:
    """One method after `steps` steps: the training minutes it took and its test error."""

    method: str
    steps: int
    minutes: float
    delta_e2000: float
    colorfulness: float


@dataclass
class Curves:
    """Every method's points, the truth's colorfulness, and when each method reaches the paper's quality."""

    points: list[Point]
    truth_colorfulness: float
    reached: list[dict]


PAPER = "paper"  # the paper's configuration: the reference every other method is timed against
PAPER_STEPS = 800  # the budget of docs/results, whose quality the others must reach


def time_to_quality(
    split: str | Path,
    out: str | Path,
    methods: list[str],
    milestones: list[int],
    shared: SharedSettings,
    say: Say = print,
) -> Curves:
    """Train each method to every milestone in turn (runs in out/runs/<method>) and score it after each."""
    train_dir, test_dir = split_dirs(Path(split))
    milestones = sorted(set(milestones))
    points, truth = [], 0.0
    for name in methods:
        run = Path(out) / "runs" / name
        for index, steps in enumerate(milestones):
            config = method_config(name, shared, (f"train.steps={steps}",))
            say(f"{name}: training to step {steps}")
            train(config, train_dir, run, resume=index > 0, overwrite=index == 0, on_event=lambda _: None)
            summary = evaluate(Colorizer.from_pretrained(run / MODEL_FILE), test_dir).summary()
            point = Point(name, steps, _minutes(run), summary["delta_e2000"], summary["colorfulness"])
            points.append(point)
            truth = summary["colorfulness_gt"]
            say(f"{name}: step {steps}, {point.minutes:.2f} min, delta_e2000 {point.delta_e2000:.2f}")
    reference = PAPER_STEPS if PAPER_STEPS in milestones else milestones[-1]
    reached = [reaches(points, name, PAPER, reference) for name in methods if name != PAPER]
    return Curves(points, truth, [r for r in reached if r is not None])


def _minutes(run: Path) -> float:
    """Training minutes so far: the sum of the logged steps' own durations."""
    lines = (run / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    return sum(json.loads(line)["seconds"] for line in lines if line.strip()) / 60.0


def reaches(points: list[Point], method: str, reference: str, steps: int) -> dict | None:
    """When `method` first matches `reference`'s delta_e2000 at `steps`: its steps and minutes, against the
    reference's minutes to `steps`; None when the reference has no such milestone."""
    target = next((p for p in points if p.method == reference and p.steps == steps), None)
    if target is None:
        return None
    first = next((p for p in points if p.method == method and p.delta_e2000 <= target.delta_e2000), None)
    return {
        "method": method,
        "reference": reference,
        "reference_steps": steps,
        "reference_delta_e2000": target.delta_e2000,
        "reference_minutes": target.minutes,
        "steps": None if first is None else first.steps,
        "minutes": None if first is None else first.minutes,
    }


def write_time_to_quality(curves: Curves, out: str | Path, command: str) -> list[Path]:
    """out/time_to_quality.md, .json and .png (delta_e2000 against minutes, one line per method)."""
    out = Path(out)
    paths = [out / f"time_to_quality.{ext}" for ext in ("md", "json", "png")]
    lines = [
        "# Time to quality",
        "",
        f"Command: `{command}`. Minutes: the steps' own times summed from metrics.jsonl (data loading and "
        "evaluation not counted); delta_e2000 and colorfulness of the top-1 coloring of every test image.",
        "",
        "| method | steps | training minutes | delta_e2000 | colorfulness |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {METHODS[p.method].label} | {p.steps} | {p.minutes:.2f} | {p.delta_e2000:.2f} | "
            f"{p.colorfulness:.1f} |"
            for p in curves.points
        ),
        "",
        f"Colorfulness of the truth: {curves.truth_colorfulness:.1f}.",
        *("\n" + _reached_sentence(r) for r in curves.reached),
    ]
    write_text(paths[0], "\n".join(lines) + "\n")
    write_json(paths[1], {"command": command, **asdict(curves)})
    write_bytes(paths[2], _plot(curves.points))
    return paths


def _reached_sentence(reached: dict) -> str:
    label = METHODS[reached["reference"]].label
    start = (
        f"{label} reaches delta_e2000 {reached['reference_delta_e2000']:.2f} at step "
        f"{reached['reference_steps']} after {reached['reference_minutes']:.2f} training minutes"
    )
    other = METHODS[reached["method"]].label
    if reached["steps"] is None:
        return f"{start}; {other} does not reach it at any milestone."
    return f"{start}; {other} reaches it at step {reached['steps']}, after {reached['minutes']:.2f}."


def _plot(points: list[Point]) -> bytes:
    """delta_e2000 against training minutes, one line per method, each point labelled by its steps."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for name in dict.fromkeys(p.method for p in points):
        mine = [p for p in points if p.method == name]
        axes.plot(
            [p.minutes for p in mine], [p.delta_e2000 for p in mine], marker="o", label=METHODS[name].label
        )
        for p in mine:
            axes.annotate(
                str(p.steps),
                (p.minutes, p.delta_e2000),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    axes.set_xlabel("training minutes (sum of step times)")
    axes.set_ylabel("mean CIEDE2000, top-1 (lower is better)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

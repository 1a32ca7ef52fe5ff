"""The dominant-color effect (paper Figs. 2 and 6): does a color variant seen a few times keep its colors?

DATA holds one folder per color variant, and the same item (a character, an emoji) under the same file
name in each: `memopainter data emoji` writes skin tones that way. The items are split in two. Training gets
the common variant of the training items and the rare variant of only `rare_shots` of them; the test gets
both variants of the other items. A real variant differs in its gray image too (darker skin has a lower
lightness), so it can be retrieved; a pure hue rotation keeps L and could not be told apart by any method.
A model without memory learns the dominant colors and paints the rare variant in them; the memory can
retrieve the few rare frames.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from memopainter.data.images import list_images
from memopainter.evaluation.outputs import figure_png, image_png
from memopainter.evaluation.report import cell
from memopainter.evaluation.scores import EvaluatedImages, Evaluation, ImageScore
from memopainter.experiments.compare import ComparisonResult, comparison_grid
from memopainter.experiments.methods import (
    METHODS,
    MethodResult,
    Say,
    SharedSettings,
    evaluate_run,
    method_config,
    train_or_reuse,
)
from memopainter.experiments.statistics import format_interval, t_interval
from memopainter.files import atomic_folder, write_bytes, write_json, write_text

DEFAULT_METHODS = ("memopainter-dist", "res-cgan")
SUBSETS = ("rare", "common")


@dataclass(frozen=True)
class RareSplit:
    """Which items went where; the folders are under out/split."""

    root: Path
    rare: str  # the rare variant's folder name
    common: str
    train_items: list[str]  # file names of the training items (their common variant is in training)
    rare_train_items: list[str]  # the few whose rare variant is in training too
    test_items: list[str]

    def test_dir(self, subset: str) -> Path:
        """out/split/test-rare or out/split/test-common."""
        return self.root / f"test-{subset}"


def make_rare_split(
    data: Path, out: Path, rare: str, common: str, rare_shots: int, test_share: float, seed: int
) -> RareSplit:
    """Split the items present in both variant folders and copy the files into out/train and out/test-*."""
    if rare == common:
        raise ValueError(f"--rare and --common are both {rare!r}: the rare variant is compared with another")
    folders = {name: data / name for name in (rare, common)}
    for name, folder in folders.items():
        if not folder.is_dir():
            known = (
                ", ".join(sorted(p.name for p in data.iterdir() if p.is_dir())) if data.is_dir() else "none"
            )
            raise ValueError(f"{data}: has no variant folder {name!r} (folders: {known})")
    names = {v: {p.name for p in list_images(f)} for v, f in folders.items()}
    items = sorted(names[rare] & names[common])
    test_count = round(len(items) * test_share)
    if test_count < 1 or len(items) - test_count < rare_shots + 1:
        raise ValueError(
            f"{data}: {len(items)} items are in both {rare!r} and {common!r}; a test share of {test_share:g} "
            f"and {rare_shots} rare training items need more"
        )
    random.Random(f"rare/{seed}").shuffle(items)
    test_items, train_items = sorted(items[:test_count]), sorted(items[test_count:])
    rare_train = sorted(random.Random(f"rare-shots/{seed}").sample(train_items, rare_shots))
    # The experiment's own split, rebuilt each run (deterministic for a seed) and replaced as a whole.
    with atomic_folder(out) as temp:
        copies = [(folders[common] / n, temp / "train" / common / n) for n in train_items]
        copies += [(folders[rare] / n, temp / "train" / rare / n) for n in rare_train]
        for subset, variant in (("rare", rare), ("common", common)):
            copies += [(folders[variant] / n, temp / f"test-{subset}" / variant / n) for n in test_items]
        for source, dest in copies:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
    return RareSplit(out, rare, common, train_items, rare_train, test_items)


@dataclass
class RareResult:
    """Every method scored on both test subsets."""

    data: str
    split: RareSplit
    shared: SharedSettings
    methods: list[str]
    train_seconds: dict[str, float | None]
    evaluations: dict[str, dict[str, Evaluation]]  # method -> subset -> evaluation
    grid: ComparisonResult  # the rare test images across methods

    def summary(self, method: str, subset: str) -> dict:
        """Averages of one method on one subset; retrieval: share of slots written by the same variant."""
        summary = self.evaluations[method][subset].summary()
        return {
            "delta_e2000": summary["delta_e2000"],
            "delta_e2000_best_of_k": summary["delta_e2000_best_of_k"]
            if METHODS[method].alternatives
            else None,
            "colorfulness": summary["colorfulness"],
            "retrieval_top1_accuracy": summary["retrieval_top1_accuracy"],
            "images": summary["images"],
        }

    def paired(self) -> list[dict]:
        """Each memory method minus each method without memory, per test image, on both subsets."""
        pairs = []
        for ours in (m for m in self.methods if METHODS[m].alternatives):
            for theirs in (m for m in self.methods if not METHODS[m].alternatives):
                row = {"method": ours, "against": theirs}
                for subset in SUBSETS:
                    mine, other = self.evaluations[ours][subset], self.evaluations[theirs][subset]
                    differences = [
                        x.metrics.delta_e2000 - y.metrics.delta_e2000
                        for x, y in zip(mine.per_image, other.per_image, strict=True)
                    ]
                    row[subset] = dict(zip(("mean", "low", "high"), t_interval(differences), strict=True))
                pairs.append(row)
        return pairs

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        split = self.split
        return {
            "experiment": "rare",
            "data": self.data,
            "rare": split.rare,
            "common": split.common,
            "train_items": len(split.train_items),
            "rare_train_items": split.rare_train_items,
            "test_items": len(split.test_items),
            "shared": self.shared.to_dict(),
            "methods": {
                m: {
                    "label": METHODS[m].label,
                    "train_seconds": self.train_seconds[m],
                    **{s: self.summary(m, s) for s in SUBSETS},
                }
                for m in self.methods
            },
            "paired": self.paired(),
        }


def rare_experiment(
    data: str | Path,
    out: str | Path,
    shared: SharedSettings,
    rare: str,
    common: str,
    rare_shots: int = 5,
    test_share: float = 0.5,
    methods: list[str] | None = None,
    say: Say = print,
) -> RareResult:
    """Build the split, train every method on it and evaluate each on the rare and the common test items."""
    data, out = Path(data), Path(out)
    names = list(methods or DEFAULT_METHODS)
    configs = {name: method_config(name, shared) for name in names}
    split = make_rare_split(data, out / "split", rare, common, rare_shots, test_share, shared.seed)
    say(
        f"split: {len(split.train_items)} {common!r} + {rare_shots} {rare!r} training images, "
        f"{len(split.test_items)} test items in each variant"
    )
    grid = ComparisonResult(str(split.root), shared, [])
    seconds, evaluations = {}, {}
    for name in names:
        run = out / "runs" / name
        seconds[name] = train_or_reuse(name, configs[name], split.root / "train", run, say).get("seconds")

        def keep(score: ImageScore, images: EvaluatedImages, name: str = name) -> None:
            if len(grid.grid) < 8 or score.path in grid.grid:
                row = grid.grid.setdefault(score.path, {"gray": images.gray, "truth": images.truth})
                row[name] = images.colorings[0]

        evaluations[name] = {
            subset: evaluate_run(
                name,
                run,
                split.test_dir(subset),
                shared.top_k,
                shared.device,
                keep if subset == "rare" else None,
                say,
            )
            for subset in SUBSETS
        }
        grid.methods.append(MethodResult(name, run, seconds[name], evaluations[name]["rare"], {}))
        rare_delta = evaluations[name]["rare"].average("delta_e2000")
        say(f"{name}: delta_e2000 {rare_delta:.2f} on the {rare!r} test images")
    return RareResult(str(data), split, shared, names, seconds, evaluations, grid)


def write_rare(result: RareResult, out: str | Path, command: str) -> list[Path]:
    """Write out/rare.md, rare.json, rare.png (bars per subset) and rare_grid.png; returns the paths."""
    out = Path(out)
    paths = [out / name for name in ("rare.md", "rare.json", "rare.png", "rare_grid.png")]
    write_text(paths[0], rare_markdown(result, command))
    write_json(paths[1], {"command": command, **result.to_dict()})
    write_bytes(paths[2], _plot(result))
    write_bytes(paths[3], image_png(comparison_grid(result.grid)))
    return paths


def rare_markdown(result: RareResult, command: str) -> str:
    """delta_e2000 (and best of k, retrieval) per method on the rare and the common variant's test items."""
    split, k = result.split, result.shared.top_k
    lines = [
        "# The dominant-color effect: a rare color variant (paper Figs. 2 and 6)",
        "",
        f"Data: `{result.data}`. Training: the `{split.common}` variant of {len(split.train_items)} items "
        f"and the `{split.rare}` variant of only {len(split.rare_train_items)} of them. Test: both "
        f"variants of {len(split.test_items)} other items. Command: `{command}`",
        "",
        f"| method | `{split.rare}` delta_e2000 | best of {k} | retrieves `{split.rare}` | "
        f"`{split.common}` delta_e2000 | retrieves `{split.common}` |",
        "|---|---|---|---|---|---|",
    ]
    for m in result.methods:
        rare, common = result.summary(m, "rare"), result.summary(m, "common")
        lines.append(
            f"| {METHODS[m].label} | {cell(rare['delta_e2000'])} | {cell(rare['delta_e2000_best_of_k'])} | "
            f"{_percent(rare['retrieval_top1_accuracy'])} | {cell(common['delta_e2000'])} | "
            f"{_percent(common['retrieval_top1_accuracy'])} |"
        )
    pairs = result.paired()
    if pairs:
        lines += [
            "",
            "Paired per test item, memory minus no memory (mean delta_e2000 difference, 95% t-interval):",
            "",
            f"| method | against | `{split.rare}` | `{split.common}` |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {METHODS[p['method']].label} | {METHODS[p['against']].label} | {_interval(p['rare'])} | "
            f"{_interval(p['common'])} |"
            for p in pairs
        ]
    lines += [
        "",
        "delta_e2000: mean CIEDE2000 over opaque pixels, lower is better. 'retrieves': share of test images "
        "whose top-1 memory slot was written by a training image of the same variant (memory methods only).",
        f"Every method: {result.shared.steps} steps of batch {result.shared.batch_size} at "
        f"{result.shared.image_size}x{result.shared.image_size}, seed {result.shared.seed}.",
        "",
    ]
    return "\n".join(lines)


def _plot(result: RareResult) -> bytes:
    """Bars of delta_e2000 per method, rare and common variant side by side, as PNG."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.6 + 1.4 * len(result.methods), 3.4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    xs = range(len(result.methods))
    for offset, subset, variant in ((-0.2, "rare", result.split.rare), (0.2, "common", result.split.common)):
        values = [result.summary(m, subset)["delta_e2000"] for m in result.methods]
        axes.bar([x + offset for x in xs], values, 0.4, label=f"{variant} (test)")
    axes.set_xticks(list(xs), [METHODS[m].label for m in result.methods], fontsize=8)
    axes.set_ylabel("mean CIEDE2000 (lower is better)")
    axes.legend(frameon=False, fontsize=8)
    return figure_png(figure)


def _interval(values: dict) -> str:
    return format_interval(values["mean"], values["low"], values["high"])


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"

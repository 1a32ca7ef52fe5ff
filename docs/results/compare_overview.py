"""Several `experiment compare` runs side by side, one column per data set, as a markdown table.

Each cell is a method's mean delta_e2000 (its colorfulness in brackets); the last rows pair the default
(memopainter-bins) per image against the best method without memory and against the paper's configuration
of the same run (mean difference and 95% t-interval; negative: the default is better).

    python docs/results/compare_overview.py Kenney=docs/results/compare-kenney/compare.json \
        Wesnoth=docs/results/compare-wesnoth/compare.json ...
"""

import json
import sys

from memopainter.experiments.statistics import format_interval, t_interval

DEFAULT = "memopainter-bins"
NO_MEMORY = ("res-cgan", "pix2pix", "cic")


def paired(methods: dict[str, dict], other: str) -> str:
    """The default minus `other`, per image, as '+0.12 [-0.05, +0.29]'; '–' when a side is missing."""
    if not all("per_image_delta_e2000" in methods.get(m, {}) for m in (DEFAULT, other)):
        return "–"
    a, b = methods[DEFAULT]["per_image_delta_e2000"], methods[other]["per_image_delta_e2000"]
    return format_interval(*t_interval([a[path] - b[path] for path in a if path in b]))


def main(named: list[str]) -> None:
    sets = [
        (name, json.load(open(path, encoding="utf-8"))) for name, _, path in (n.partition("=") for n in named)
    ]
    runs = {name: {m["method"]: m for m in data["methods"]} for name, data in sets}
    order = list(dict.fromkeys(m["method"] for _, data in sets for m in data["methods"]))
    labels = {m["method"]: m["label"] for _, data in sets for m in data["methods"]}
    truth = {name: next(iter(runs[name].values()))["colorfulness_gt"] for name in runs}
    print("| method | " + " | ".join(f"{name} (truth {truth[name]:.1f})" for name in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for method in order:
        cells = []
        for name in runs:
            m = runs[name].get(method)
            cells.append("–" if m is None else f"{m['delta_e2000']:.2f} ({m['colorfulness']:.1f})")
        print(f"| {labels[method]} | " + " | ".join(cells) + " |")
    best = {
        name: min(
            (m for m in NO_MEMORY if m in runs[name]), key=lambda m: runs[name][m]["delta_e2000"], default=""
        )
        for name in runs
    }
    row = " | ".join(f"{paired(runs[name], best[name])} ({best[name] or 'none'})" for name in runs)
    print(f"| default minus the best without memory, 95% | {row} |")
    print(
        "| default minus the paper's, 95% | "
        + " | ".join(paired(runs[name], "paper") for name in runs)
        + " |"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

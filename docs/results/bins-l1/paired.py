"""Paired delta_e2000 of one run minus another over the same test images: mean and 95% t-interval.

Each side is a run's evaluation.json (what `experiment compare` writes into each run folder) or a method of a
compare.json (which keeps every method's per-image errors), named COMPARE.json:METHOD.

    python docs/results/bins-l1/paired.py RUN_A/evaluation.json RUN_B/evaluation.json
    python docs/results/bins-l1/paired.py NEW/compare.json:memopainter-bins OLD/evaluation.json
"""

import json
import sys

from memopainter.experiments.statistics import format_interval, t_interval


def per_image(source: str) -> dict[str, float]:
    """Test image path -> delta_e2000, from an evaluation.json or a COMPARE.json:METHOD."""
    path, _, method = source.partition(".json:")
    if not method:
        rows = json.loads(open(source, encoding="utf-8").read())["per_image"]
        return {row["path"]: row["delta_e2000"] for row in rows}
    methods = json.loads(open(path + ".json", encoding="utf-8").read())["methods"]
    return next(m for m in methods if m["method"] == method)["per_image_delta_e2000"]


def main(first: str, second: str) -> None:
    a, b = per_image(first), per_image(second)
    differences = [a[path] - b[path] for path in a if path in b]
    print(f"{format_interval(*t_interval(differences))} over {len(differences)} images")


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""Paired delta_e2000 of one run minus another over the same test images, from their evaluation.json files
(what `experiment compare` writes into each run folder): mean and 95% t-interval.

    python docs/results/bins-l1/paired.py RUN_A/evaluation.json RUN_B/evaluation.json
"""

import json
import sys

from memopainter.experiments.statistics import format_interval, t_interval


def main(first: str, second: str) -> None:
    a, b = (json.loads(open(path, encoding="utf-8").read())["per_image"] for path in (first, second))
    other = {row["path"]: row["delta_e2000"] for row in b}
    differences = [row["delta_e2000"] - other[row["path"]] for row in a if row["path"] in other]
    print(f"{format_interval(*t_interval(differences))} over {len(differences)} images")


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""MemoPainter against the nearest reference on line art under one upsampler for both: the model's
`memopainter evaluate ... --upsample MODE --json EVAL.json` paired per frame with the nearest reference
colored through the same MODE (the line-art experiment uses the default, region, for both).

    memopainter evaluate RUN/runs/memopainter-bins SPLIT/test --upsample MODE --json EVAL.json \
        [--lineart SPLIT/lineart/test]    # where the split has drawn line art, as the reference uses it
    python docs/results/lineart-wesnoth/upsamplers.py RUN/runs/memopainter-bins SPLIT MODE EVAL.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from memopainter.experiments.lineart import nearest_reference
from memopainter.experiments.statistics import format_interval, t_interval
from memopainter.inference.colorizer import Colorizer


def main() -> None:
    model, split, mode, evaluation = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    colorizer = Colorizer.from_pretrained(model)
    result = nearest_reference(colorizer, split / "train", split / "test", upsample=mode)
    nearest = {score.path: score.metrics.delta_e2000 for score in result.per_image}
    per_image = json.loads(Path(evaluation).read_text(encoding="utf-8"))["per_image"]
    memo = {entry["path"]: entry["delta_e2000"] for entry in per_image}
    both = sorted(memo.keys() & nearest.keys())  # an image either failed to score is left out of both
    differences = [memo[name] - nearest[name] for name in both]
    print(
        f"{mode}: MemoPainter {statistics.mean(memo[n] for n in both):.2f}, nearest reference "
        f"{statistics.mean(nearest[n] for n in both):.2f}, MemoPainter minus nearest "
        f"{format_interval(*t_interval(differences))} over {len(differences)} frames"
    )


if __name__ == "__main__":
    main()

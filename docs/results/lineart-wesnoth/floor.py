"""What multiplying extracted lines over a coloring costs by itself: each test frame's own true colors times
the lines extracted from them, scored against the true colors (mean CIEDE2000 over opaque pixels).

    python docs/results/lineart-wesnoth/floor.py SPLIT [SPLIT ...]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from memopainter.data.images import composite_on_white, load_image
from memopainter.data.lineart import extract_lineart
from memopainter.evaluation.metrics import delta_e2000


def main() -> None:
    for split in map(Path, sys.argv[1:]):
        scores = []
        for path in sorted((split / "test").glob("*/*.png")):
            rgb, alpha = load_image(path)
            truth = composite_on_white(rgb, alpha)
            scores.append(delta_e2000(truth * extract_lineart(rgb, alpha), truth, alpha))
        print(f"{split}: {len(scores)} frames, true colors times their lines {statistics.mean(scores):.2f}")


if __name__ == "__main__":
    main()

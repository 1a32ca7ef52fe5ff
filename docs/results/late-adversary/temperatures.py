"""Decode a saved bins-head model at several annealed-mean temperatures; print delta_e2000 and colorfulness.

Usage: python temperatures.py RUN TEST_DIR OUT.json T [T ...]
"""

import json
import sys
from pathlib import Path

from memopainter.evaluation.evaluate import evaluate
from memopainter.inference.colorizer import Colorizer

SHOWN = ("delta_e2000", "colorfulness", "colorfulness_gt")

run, test_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
results = {}
for temperature in [float(t) for t in sys.argv[4:]]:
    colorizer = Colorizer.from_pretrained(run / "model.safetensors")
    colorizer.model.config.model.bins_temperature = temperature
    evaluation = evaluate(colorizer, test_dir, 1)
    summary = {name: evaluation.summary()[name] for name in SHOWN}
    per_image = [score.metrics.delta_e2000 for score in evaluation.per_image]
    results[temperature] = {"summary": summary, "delta_e2000": per_image}
    print(run, temperature, summary, flush=True)
out.write_text(json.dumps(results), encoding="utf-8")

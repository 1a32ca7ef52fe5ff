"""Run folders that can be reused: a finished model trained with exactly the settings asked for."""

from __future__ import annotations

import json
from pathlib import Path

from memopainter.config import RunConfig
from memopainter.core.model import MODEL_FILE


def finished_with(run: str | Path, config: RunConfig) -> bool:
    """Whether `run` holds a final model whose saved config.json equals `config`."""
    run = Path(run)
    saved = run / "config.json"
    if not (run / MODEL_FILE).is_file() or not saved.is_file():
        return False
    try:
        values = json.loads(saved.read_text(encoding="utf-8"))
        return RunConfig.from_dict(values, source=str(saved)).to_dict() == config.to_dict()
    except (OSError, ValueError):  # ConfigError and JSONDecodeError are ValueErrors
        return False  # unreadable or from another version: not reusable, train again

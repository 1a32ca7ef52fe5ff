"""What a training run reports, as data: callers act on events, and the text people read is made from them
by one function, `describe`, so no caller ever parses a log line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# The terms a step's text shows.
SHOWN_STATS = ("d", "g_adv", "g_l1", "ce", "ab_l1", "triplet", "images_per_s")
LINE_EVERY = 10  # without a progress bar, a text line for the first step, every 10th and the last


@dataclass(frozen=True)
class TrainEvent:
    """One report of a run (rank 0 alone reports in a distributed run).

    kind "message" (data loading, in `text`), "warning" (`text`), "skipped" (an unreadable image `path`,
    left out of the run, its problem in `text`), "resumed" (from the checkpoint `path` at `step`), "step"
    (`step` of `steps` done; `stats` is its metrics.jsonl line), "sample" and "checkpoint" (the file
    written at `step`), "saved" (the final model, `path`).
    """

    kind: str
    step: int = 0
    steps: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    text: str = ""
    path: Path | None = None


EventHandler = Callable[[TrainEvent], None]


def describe(event: TrainEvent) -> str | None:
    """The one-line text of an event for a log or a terminal; None where it shows no line."""
    if event.kind == "message":
        return event.text
    if event.kind == "warning":
        return f"warning: {event.text}"
    if event.kind == "skipped":
        return f"skipped unreadable {event.path}: {event.text}"
    if event.kind == "resumed":
        return f"resumed from {event.path} at step {event.step}"
    if event.kind == "saved":
        return f"model saved to {event.path}"
    if event.kind == "step" and (
        event.step == 1 or event.step % LINE_EVERY == 0 or event.step == event.steps
    ):
        terms = " ".join(f"{key}={value:.3g}" for key, value in shown_stats(event).items())
        return f"step {event.step}/{event.steps} {terms}"
    return None


def shown_stats(event: TrainEvent) -> dict[str, float]:
    """The loss terms and speed of a step event that its text shows, in SHOWN_STATS order."""
    return {key: event.stats[key] for key in SHOWN_STATS if key in event.stats}


class TextProgress:
    """Events as text lines for `say`; on a terminal, step events move a tqdm bar instead."""

    def __init__(self, say: Callable[[str], None], bar: bool | None = None) -> None:
        self.say = say
        self.use_bar = sys.stderr.isatty() if bar is None else bar
        self.bar = None

    def __call__(self, event: TrainEvent) -> None:
        if event.kind == "step" and self.use_bar:
            self._advance(event)
            return
        text = describe(event)
        if text is not None:
            self.say(text)

    def _advance(self, event: TrainEvent) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=event.steps, initial=event.step - 1, unit="step", dynamic_ncols=True)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in shown_stats(event).items()}, refresh=False)
        self.bar.update(1)
        if event.step == event.steps:
            self.bar.close()
            self.bar = None

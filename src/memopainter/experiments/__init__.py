"""The paper's experiments, reproduced on our data: each writes a markdown table, JSON and a PNG plot."""

from memopainter.experiments.retrieval import (
    EpisodeError,
    RetrievalResult,
    RetrievalSettings,
    draw_episode,
    eligible_classes,
    retrieval_experiment,
    run_episode,
    t_interval,
    write_retrieval,
)

__all__ = [
    "EpisodeError",
    "RetrievalResult",
    "RetrievalSettings",
    "draw_episode",
    "eligible_classes",
    "retrieval_experiment",
    "run_episode",
    "t_interval",
    "write_retrieval",
]

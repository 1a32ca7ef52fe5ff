"""The key-value-age color memory (section 3.1 of the paper), its threshold triplet loss and update rules."""

from memopainter.memory.memory import ColorMemory, TripletTerms
from memopainter.memory.query import QueryHead
from memopainter.memory.ranking import topk_lowest_index
from memopainter.memory.settings import MemorySettings, default_memory_size, default_settings

__all__ = [
    "ColorMemory",
    "MemorySettings",
    "QueryHead",
    "TripletTerms",
    "default_memory_size",
    "default_settings",
    "topk_lowest_index",
]

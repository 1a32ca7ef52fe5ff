"""The key-value-age color memory of MemoPainter (section 3.1, eqs. 1 to 9) and its threshold triplet loss.

Slot i holds a unit key K[i] (query space), a color feature V[i] (the generator's condition) and an age
A[i] (queries since the slot was last written or refreshed). Empty slots, those never written, are marked
by the `filled` buffer and take part in nothing: retrieval ranks them below every written slot with score
-inf, they are never a positive, a negative or a match, and a miss writes into them first because, never
refreshed, they are always among the oldest.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from memopainter.color import palette_distance, symmetric_kl
from memopainter.color.features import FEATURE_DIMS
from memopainter.memory.ranking import topk_lowest_index
from memopainter.memory.settings import default_settings

FIRST_WINDOW = 8  # neighbours compared first in the triplet loss; the window grows 4x for the rest
# Slots scored per matrix product on CPU: with few queries, 1,024-key blocks ran 20-35% faster than one
# product over all keys (m = 10,000 and 1,000,000, key_dim 512, 16 queries, 1 and 2 threads).
SCORE_CHUNK = 1024


class TripletTerms(NamedTuple):
    """The threshold triplet loss (eq. 7) and what went into it, for the training log."""

    loss: torch.Tensor  # scalar: mean hinge over the queries that have both a positive and a negative
    has_positive: torch.Tensor  # (B,) bool
    has_negative: torch.Tensor  # (B,) bool
    positive: torch.Tensor  # (B,) int64 slot n_p, -1 where none
    negative: torch.Tensor  # (B,) int64 slot n_b, -1 where none


class _ScoreCache(NamedTuple):
    """The last score matrix, valid while the queries and the keys and filled buffers are unchanged."""

    q: torch.Tensor  # (B, key_dim)
    keys: weakref.ref
    keys_version: int
    filled: weakref.ref
    filled_version: int
    scores: torch.Tensor  # (B, m)


class ColorMemory(nn.Module):
    """Key-value-age memory of color features, trained by the threshold triplet loss (Yoo et al. 2019).

    All state lives in registered buffers, so `state_dict()` restores it exactly and `.to(device)` moves it:
    keys (m, key_dim), values (m, value_dim), ages (m,), sources (m,) (training image that last wrote the
    slot, -1 when never written or not given), labels (m,) (class, supervised mode only, -1 otherwise),
    filled (m,) bool, and rng_state: the CPU generator state from which writes draw their slot, so a
    restored memory continues the same random stream. Two memories built with the same seed and fed the same
    batches stay identical, across processes too.

    With `supervised=True` (the upper bound of the paper's Table 2, after Kaiser et al. 2017), positives,
    negatives and matches are decided by class label equality instead of color distance.
    """

    def __init__(
        self,
        size: int,
        key_dim: int = 512,
        value_dim: int | None = None,
        feature: str = "dist",
        threshold: float | None = None,
        margin: float | None = None,
        top_k: int | None = None,
        supervised: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        defaults = default_settings(feature)
        value_dim = FEATURE_DIMS[feature] if value_dim is None else value_dim
        threshold = defaults.threshold if threshold is None else threshold
        margin = defaults.margin if margin is None else margin
        # top_k is a search width: a memory smaller than it just searches all of its slots.
        top_k = defaults.top_k if top_k is None else top_k
        top_k = min(top_k, size) if _is_int(size) and _is_int(top_k) else top_k
        _check_config(size, key_dim, value_dim, feature, threshold, margin, top_k, seed)
        self.size, self.key_dim, self.value_dim, self.feature = size, key_dim, value_dim, feature
        self.threshold, self.margin, self.top_k = float(threshold), float(margin), top_k
        self.supervised = bool(supervised)
        self._distance = symmetric_kl if feature == "dist" else palette_distance

        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())  # follows torch.manual_seed
        generator = torch.Generator().manual_seed(seed)
        keys = torch.empty(size, key_dim).uniform_(-0.01, 0.01, generator=generator)
        self.register_buffer("keys", F.normalize(keys, dim=1))
        self.register_buffer("values", torch.zeros(size, value_dim))
        self.register_buffer("ages", torch.zeros(size, dtype=torch.int64))
        self.register_buffer("sources", torch.full((size,), -1, dtype=torch.int64))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.int64))
        self.register_buffer("filled", torch.zeros(size, dtype=torch.bool))
        self.register_buffer("rng_state", generator.get_state())
        self._score_cache: _ScoreCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and deepcopy without the score cache, which holds weak references."""
        state = self.__dict__.copy()
        state["_score_cache"] = None
        return state

    def config(self) -> dict[str, int | float | str | bool]:
        """Constructor arguments as plain values, to rebuild this memory before loading its state_dict."""
        return {
            "size": self.size,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "feature": self.feature,
            "threshold": self.threshold,
            "margin": self.margin,
            "top_k": self.top_k,
            "supervised": self.supervised,
        }

    def extra_repr(self) -> str:
        """Settings shown by repr()."""
        return ", ".join(f"{name}={value!r}" for name, value in self.config().items())

    @property
    def num_filled(self) -> int:
        """Number of slots written at least once."""
        return int(self.filled.sum())

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Color distance between values, broadcast over leading dims: symmetric KL or palette CIEDE2000."""
        return self._distance(a, b)

    @torch.no_grad()
    def retrieve(self, q: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k slots by cosine similarity (eq. 3): q (B, key_dim) -> scores, slots, each (B, k).

        Scores descend, equal scores are ordered by lower slot index, and empty slots come after every
        written slot with score -inf. The scores are detached; read the colors as `values[slots]`.
        """
        assert 1 <= k <= self.size, k
        return self._rank(self._queries(q), k)

    def triplet_loss(
        self, q: torch.Tensor, v: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Threshold triplet loss (eq. 7), a scalar whose gradient flows to q only; see `triplet_terms`."""
        return self.triplet_terms(q, v, labels).loss

    def triplet_terms(
        self, q: torch.Tensor, v: torch.Tensor, labels: torch.Tensor | None = None
    ) -> TripletTerms:
        """Threshold triplet loss (eqs. 5-7) with the per-query positives and negatives behind it.

        q (B, key_dim) unit rows, v (B, value_dim) the queries' true color features, labels (B,) classes in
        supervised mode. Among each query's top_k written neighbours, ranked as by `retrieve`, the positive
        n_p is the highest-ranked slot whose value is within the threshold of v (distance < threshold; same
        label when supervised), the negative n_b the highest-ranked one that is not. The loss is the mean of
        max(q.K[n_b] - q.K[n_p] + margin, 0) over the queries that have both; a query missing either adds
        nothing, not a zero, and when no query has both the loss is a zero still attached to q's graph.
        Keys are buffers, so the gradient reaches q alone.
        """
        q = self._queries(q)
        batch = q.shape[0]
        v, labels = self._values(v, batch), self._labels(labels, batch)
        positive = torch.full((batch,), -1, dtype=torch.int64, device=q.device)
        negative = torch.full((batch,), -1, dtype=torch.int64, device=q.device)
        # Empty slots rank below all written ones, so the first min(top_k, filled) neighbours are written.
        k = min(self.top_k, self.num_filled)
        if k > 0:
            _, slots = self._rank(q, k)  # (B, k)
            # Most queries find both neighbours among their first few; comparing values in growing rank
            # windows, only for the queries still missing one, skips most of the B x k distances.
            rows = torch.arange(batch, device=q.device)
            start, width = 0, FIRST_WINDOW
            while rows.numel() > 0 and start < k:
                window = slots[rows, start : start + width]  # (R, w)
                same = self._same(window, v[rows], None if labels is None else labels[rows])  # (R, w)
                for found, mask in ((positive, same), (negative, ~same)):
                    first, has = _first_slot(mask, window)
                    found[rows] = torch.where((found[rows] < 0) & has, first, found[rows])
                rows = rows[(positive[rows] < 0) | (negative[rows] < 0)]
                start, width = start + width, 4 * width
        has_positive, has_negative = positive >= 0, negative >= 0
        positive_score = (q * self.keys[positive.clamp(min=0)]).sum(1)  # (B,)
        negative_score = (q * self.keys[negative.clamp(min=0)]).sum(1)  # (B,)
        hinge = (negative_score - positive_score + self.margin).clamp(min=0.0)
        both = has_positive & has_negative
        loss = torch.where(both, hinge, 0.0).sum() / both.sum().clamp(min=1)
        return TripletTerms(loss, has_positive, has_negative, positive, negative)

    @torch.no_grad()
    def update(
        self,
        q: torch.Tensor,
        v: torch.Tensor,
        sources: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Memory update (eqs. 8, 9) for a batch; returns matched (B,) bool: query j refreshed its top-1.

        Exactly the result of applying the queries one after another: query j sees the memory as left by
        queries < j. If j's top-1 slot n1 is written and its value matches v[j] (same label when supervised),
        K[n1] <- normalise(K[n1] + q[j]) and A[n1] <- 0, value and source kept; otherwise (q[j], v[j]) and
        sources[j] (default -1) are written into one of the oldest slots, age 0. Every other slot ages by 1
        per query. The written slot is the r-th oldest in index order, r = randint(number of oldest) drawn
        from `generator` (a CPU torch.Generator) or, by default, from the memory's own rng_state.
        """
        q = self._queries(q)
        batch = q.shape[0]
        v, labels = self._values(v, batch), self._labels(labels, batch)
        sources = self._sources(sources, batch)
        assert generator is None or generator.device.type == "cpu", "writes draw their slot on the CPU"

        scores = self._scores(q)  # (B, m)
        self._score_cache = None  # the loop below edits scores in place
        # Slot ages at query j are ages + j; a slot used by query t instead gets -1 - t, so the oldest
        # slots are always the argmax of this one vector and a slot touched in this batch is never oldest.
        ages = self.ages.clone()  # (m,)
        first_top, first_match = self._first_matches(scores, v, labels)
        rewritten: set[int] = set()
        matched = torch.zeros(batch, dtype=torch.bool, device=q.device)
        own_generator = generator is None
        for j in range(batch):
            n1 = int(scores[j].argmax())
            if n1 == first_top[j] and n1 not in rewritten:
                hit = first_match[j]
            else:  # n1 was touched earlier in this batch, so it is written
                n1_slot = torch.tensor([[n1]], device=q.device)
                hit = bool(self._same(n1_slot, v[j : j + 1], _rows(labels, j)))
            if hit:
                slot = n1
                self.keys[slot] = F.normalize(self.keys[slot] + q[j], dim=0)
                matched[j] = True
            else:
                if generator is None:
                    generator = torch.Generator().set_state(self.rng_state.cpu())
                slot = _random_oldest(ages, generator)
                self._write(slot, q[j], v[j], sources[j], None if labels is None else labels[j])
                rewritten.add(slot)
            ages[slot] = -1 - j
            scores[j + 1 :, slot] = q[j + 1 :] @ self.keys[slot]  # only this slot changed for later queries
        self.ages.copy_(ages + batch)
        if own_generator and generator is not None:
            self.rng_state.copy_(generator.get_state())
        return matched

    def _first_matches(
        self, scores: torch.Tensor, v: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[list[int], list[bool]]:
        """Each query's top-1 slot before the batch, and whether it matches the query, as Python lists.

        Deciding all queries in one call saves a device round trip per query; `update` decides again only a
        query whose top-1 changes, or whose top-1 slot is rewritten earlier in the batch.
        """
        first_top = scores.argmax(1)  # (B,); argmax returns the first maximum: ties go to the lower index
        first_match = self.filled[first_top] & self._same(first_top[:, None], v, labels)[:, 0]
        return first_top.tolist(), first_match.tolist()

    def _write(
        self, slot: int, q: torch.Tensor, v: torch.Tensor, source: torch.Tensor, label: torch.Tensor | None
    ) -> None:
        """Write one query's key, value, source and (supervised) label into `slot`."""
        self.keys[slot] = q
        self.values[slot] = v
        self.sources[slot] = source
        if label is not None:
            self.labels[slot] = label
        self.filled[slot] = True

    def _rank(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k (scores, slots), each (B, k), empty slots last at -inf."""
        return topk_lowest_index(self._scores(q), k)

    def _scores(self, q: torch.Tensor) -> torch.Tensor:
        """Cosine scores q.K (B, m), detached, with empty slots at -inf.

        A training step scores the same queries against the same keys up to three times (retrieve,
        triplet loss, update), and on CPU each pass is bound by reading all m keys; so the last matrix is
        kept and reused while the queries are equal and the keys and filled buffers are the same tensors at
        the same version. Every in-place change bumps the version (load_state_dict included), except writes
        through `.data`, which bypass version counting: don't edit the buffers that way.
        """
        q = q.detach()
        cache = self._score_cache
        if (
            cache is not None
            and cache.keys() is self.keys
            and cache.keys_version == self.keys._version
            and cache.filled() is self.filled
            and cache.filled_version == self.filled._version
            and torch.equal(cache.q, q)
        ):
            return cache.scores
        with torch.no_grad():
            scores = torch.empty(q.shape[0], self.size, dtype=q.dtype, device=q.device)  # (B, m)
            chunk = SCORE_CHUNK if q.device.type == "cpu" else self.size
            for start in range(0, self.size, chunk):
                torch.mm(q, self.keys[start : start + chunk].T, out=scores[:, start : start + chunk])
            scores.masked_fill_(~self.filled, float("-inf"))
        self._score_cache = _ScoreCache(
            q.clone(),
            weakref.ref(self.keys),
            self.keys._version,
            weakref.ref(self.filled),
            self.filled._version,
            scores,
        )
        return scores

    def _same(self, slots: torch.Tensor, v: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Whether slots (R, w) hold each row's color (distance < threshold) or, supervised, its label."""
        if self.supervised:
            return self.labels[slots] == labels[:, None]
        return self._distance(self.values[slots], v[:, None]) < self.threshold  # (R, w)

    # Per-call inputs come from the library's own training and inference code, so they are asserted, not
    # reported: no device sync, and nothing a user typed reaches them unchecked.

    def _queries(self, q: torch.Tensor) -> torch.Tensor:
        """q (B, key_dim), unit rows (the caller normalises them, eq. 2), in the keys' dtype."""
        assert q.dim() == 2 and q.shape[0] >= 1 and q.shape[1] == self.key_dim, tuple(q.shape)
        assert q.device == self.keys.device, (q.device, self.keys.device)
        return q.to(self.keys.dtype)

    def _values(self, v: torch.Tensor, batch: int) -> torch.Tensor:
        """v (B, value_dim), detached, in the values' dtype."""
        assert v.shape == (batch, self.value_dim) and v.device == self.values.device, (v.shape, v.device)
        return v.detach().to(self.values.dtype)

    def _labels(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """Class labels (B,) as int64: given exactly when the memory is supervised."""
        assert (labels is not None) == self.supervised, "labels go with supervised=True, and only with it"
        return None if labels is None else _ids(labels, batch, self.labels.device)

    def _sources(self, sources: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Sources (B,) as int64, or -1 for each query when not given."""
        if sources is None:
            return torch.full((batch,), -1, dtype=torch.int64, device=self.sources.device)
        return _ids(sources, batch, self.sources.device)


def _first_slot(mask: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot of the first True per row of mask (B, k), -1 where none, and whether there is one (B,)."""
    found = mask.any(1)
    first = mask.to(torch.uint8).argmax(1, keepdim=True)  # argmax returns the first maximum
    return torch.where(found, slots.gather(1, first).squeeze(1), -1), found


def _rows(labels: torch.Tensor | None, j: int) -> torch.Tensor | None:
    """labels[j : j + 1], or None without labels."""
    return None if labels is None else labels[j : j + 1]


def _random_oldest(ages: torch.Tensor, generator: torch.Generator) -> int:
    """The r-th of the oldest slots in index order, r drawn uniformly from `generator`."""
    oldest = (ages == ages.max()).nonzero().flatten()
    pick = int(torch.randint(len(oldest), (1,), generator=generator))
    return int(oldest[pick])


def _ids(ids: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """A (B,) integer tensor on `device`, as int64."""
    assert ids.shape == (batch,) and ids.device == device, (ids.shape, ids.device)
    assert not (ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool), ids.dtype
    return ids.to(torch.int64)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_config(
    size: object,
    key_dim: object,
    value_dim: object,
    feature: str,
    threshold: object,
    margin: object,
    top_k: object,
    seed: object,
) -> None:
    """Raise a one-line error for the first invalid constructor argument."""
    if not _is_int(size) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if not _is_int(key_dim) or key_dim < 1:
        raise ValueError(f"key_dim must be a positive int, got {key_dim!r}")
    expected_dim = FEATURE_DIMS[feature]
    if value_dim != expected_dim:
        raise ValueError(f"value_dim must be {expected_dim} for feature {feature!r}, got {value_dim!r}")
    if not _is_number(threshold) or not 0 < threshold < float("inf"):
        raise ValueError(f"threshold must be a positive finite number, got {threshold!r}")
    if not _is_number(margin) or not 0 <= margin < float("inf"):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if not _is_int(top_k) or not 1 <= top_k <= size:
        raise ValueError(f"top_k must be an int in [1, {size}] (the memory size), got {top_k!r}")
    if seed is not None and not _is_int(seed):
        raise ValueError(f"seed must be an int or None, got {seed!r}")

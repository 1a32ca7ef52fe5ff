"""Top-k selection whose order is fully defined: scores descending, equal scores by lower index."""

from __future__ import annotations

import torch


def topk_lowest_index(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row of `scores` (B, m): (values, indices), each (B, k), ties broken by lower index.

    torch.topk leaves the order of equal scores unspecified, both inside the k it returns and at the k-th
    boundary (which of several equal scores gets in). A full stable sort of m scores per row would fix
    both at O(m log m); instead topk takes k + 1 scores, the first k are re-sorted stably (O(k log k)),
    and only rows whose (k + 1)-th score ties the k-th, so that slots outside may tie slots inside, are
    patched by scanning that row once. Scores must not be NaN; -inf is allowed and ties like any value.
    """
    m = scores.shape[1]
    assert scores.dim() == 2 and 1 <= k <= m, (tuple(scores.shape), k)
    if k == 1:
        indices = scores.argmax(1, keepdim=True)  # argmax returns the first maximum: the lowest index
        return scores.gather(1, indices), indices
    values, indices = torch.topk(scores, min(k + 1, m), dim=1, sorted=True)  # (B, k + 1) each
    straddles = (
        values[:, k - 1] == values[:, k] if k < m else torch.zeros_like(values[:, 0], dtype=torch.bool)
    )
    values, indices = values[:, :k], indices[:, :k]
    indices, order = indices.sort(dim=1)
    values = values.gather(1, order)
    values, order = values.sort(dim=1, descending=True, stable=True)
    indices = indices.gather(1, order)
    for row in straddles.nonzero().flatten().tolist():
        # Every score above the k-th is already in; the tied tail must be the lowest-indexed ties.
        kth = values[row, k - 1]
        n_tied = int((values[row] == kth).sum())
        ties = (scores[row] == kth).nonzero().flatten()[:n_tied]  # ascending slot order
        indices[row, k - n_tied :] = ties
    return values, indices

"""Colorization as classification over the 313 ab bins (Zhang, Isola & Efros 2016), the CIC baseline.

Class rebalancing weights (their eq. 4), the weighted multinomial cross-entropy against soft-encoded targets
(eq. 2) and annealed-mean decoding (eq. 5). Used with a Generator of head "bins".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from memopainter.color.bins import NUM_BINS, ab_bins, soft_encode_sparse

REBALANCE_LAMBDA = 0.5  # Zhang et al.'s lambda
ANNEALED_TEMPERATURE = 0.38  # Zhang et al.'s T
_CHUNK = 1 << 18  # pixels soft-encoded at a time when counting the bin distribution of a whole dataset


@torch.no_grad()
def rebalancing_weights(ab: torch.Tensor, lam: float = REBALANCE_LAMBDA) -> torch.Tensor:
    """Per-bin weights w ~ ((1 - lam) p + lam / 313)^-1 with sum_q p_q w_q = 1, from ab (..., 2) -> (313,)."""
    assert ab.shape[-1] == 2 and ab.numel() > 0, tuple(ab.shape)
    assert 0 < lam <= 1, lam  # loss.rebalance_lambda, checked by RunConfig.validate
    flat = ab.reshape(-1, 2)  # (N, 2)
    counts = torch.zeros(NUM_BINS, dtype=torch.float64, device=ab.device)
    for start in range(0, flat.shape[0], _CHUNK):
        weights, idx = soft_encode_sparse(flat[start : start + _CHUNK])  # (n, 10) each
        counts.index_add_(0, idx.reshape(-1), weights.reshape(-1).to(torch.float64))
    p = counts / counts.sum()  # (313,) empirical distribution of the soft-encoded pixels
    # Zhang et al. also smooth p with a Gaussian (sigma 5) before mixing; the soft encoding (10 nearest bins,
    # sigma 5) already spreads every pixel over its neighbouring bins, so p is used as it is.
    w = 1.0 / ((1.0 - lam) * p + lam / NUM_BINS)  # (313,)
    w = w / (p * w).sum()  # E_p[w] = 1
    return w.to(ab.dtype if ab.is_floating_point() else torch.float32)


def classification_loss(logits: torch.Tensor, ab_target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 2: logits (B, 313, H, W), ab (B, 2, H, W) in Lab units, weights (313,) -> mean weighted CE, ()."""
    b, _, h, w = logits.shape
    assert logits.shape[1] == NUM_BINS and ab_target.shape == (b, 2, h, w) and weights.shape == (NUM_BINS,)
    with torch.no_grad():
        soft, idx = soft_encode_sparse(ab_target.detach().permute(0, 2, 3, 1))  # (B, H, W, 10) each
        soft, idx = soft.permute(0, 3, 1, 2), idx.permute(0, 3, 1, 2)  # (B, 10, H, W) each
        nearest = idx.gather(1, soft.argmax(1, keepdim=True))  # (B, 1, H, W): the bin of largest soft weight
        pixel_weight = weights.to(logits.dtype)[nearest[:, 0]]  # (B, H, W)
    log_p = F.log_softmax(logits, dim=1).gather(1, idx)  # (B, 10, H, W): log Z^_hw,q at the target's bins
    cross_entropy = -(soft.to(logits.dtype) * log_p).sum(1)  # (B, H, W)
    return (pixel_weight * cross_entropy).mean()


def annealed_mean(logits: torch.Tensor, temperature: float = ANNEALED_TEMPERATURE) -> torch.Tensor:
    """Eq. 5: logits (B, 313, H, W) -> ab (B, 2, H, W) in Lab units, the mean of softmax(logits / T)."""
    assert logits.dim() == 4 and logits.shape[1] == NUM_BINS, tuple(logits.shape)
    assert temperature > 0, temperature  # model.bins_temperature, checked by RunConfig.validate
    # softmax(logits / T) = p^(1/T) renormalised, p = softmax(logits); softmax subtracts the max, so a tiny T
    # stays finite.
    annealed = torch.softmax(logits / temperature, dim=1)  # (B, 313, H, W)
    bins = ab_bins(logits.dtype, logits.device)  # (313, 2)
    return torch.einsum("bqhw,qc->bchw", annealed, bins)  # (B, 2, H, W)

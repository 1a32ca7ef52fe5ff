"""Losses of the colorization networks (section 3.2): smooth L1 (eq. 10) and the cGAN objectives (eqs. 11-12).

The discriminator returns raw logits; binary cross-entropy with logits is eqs. 11 and 12 with the sigmoid
folded in, and stays finite where log(sigmoid(x)) would underflow to log(0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """Eq. 10, mean over elements: 0.5 d^2 if |d| <= delta else delta |d| - 0.5 delta^2, d = pred - target."""
    if pred.shape != target.shape:
        raise ValueError(f"smooth_l1: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if not delta > 0:
        raise ValueError(f"smooth_l1: delta must be > 0, got {delta!r}")
    # huber_loss(delta) is eq. 10 exactly; smooth_l1_loss(beta=delta) is eq. 10 divided by delta.
    return F.huber_loss(pred, target, reduction="mean", delta=delta)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 11 as a minimisation: BCE(D(real) -> 1) + BCE(D(fake) -> 0), each a mean over patches."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial term: BCE(D(fake) -> 1) = -log D(fake), a mean over patches.

    The non-saturating form of log(1 - D(fake)): the same fixed point, but strong gradients while the
    discriminator still wins easily.
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def generator_loss(
    fake_logits: torch.Tensor,
    fake_ab: torch.Tensor,
    real_ab: torch.Tensor,
    adversarial_weight: float,
    l1_weight: float,
    delta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 12: adversarial_weight * adversarial_loss + l1_weight * smooth_l1 / delta; parts are unweighted.

    delta is in the units of the ab tensors (ab/110 when they come from the generator). Eq. 10 is divided by
    delta so that beyond delta it is the plain L1 |d| - delta/2 of pix2pix, whose weight (100) then carries
    over unchanged; taken as written, a delta of one ab unit would scale the reconstruction gradient down 110
    times.
    """
    if adversarial_weight < 0 or l1_weight < 0:
        raise ValueError(
            f"generator_loss: weights must be >= 0, got adversarial_weight {adversarial_weight!r} "
            f"and l1_weight {l1_weight!r}"
        )
    adversarial = adversarial_loss(fake_logits)
    reconstruction = smooth_l1(fake_ab, real_ab, delta) / delta
    total = adversarial_weight * adversarial + l1_weight * reconstruction
    return total, {"g_adv": adversarial.item(), "g_l1": reconstruction.item()}

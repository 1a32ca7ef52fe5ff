"""The optimisation steps of one batch, as the paper's Fig. 3: the memory's step (section 3.1), then the
coloring network's step (section 3.2), a GAN step for head "ab" or Zhang et al.'s classification step for
head "bins" (their CIC baseline, or MemoPainter's memory with that head), with an L1 term on the colors it
decodes and optionally an adversary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from memopainter.config import LossConfig, RunConfig
from memopainter.core.model import MemoPainter
from memopainter.data.preprocess import AB_SCALE
from memopainter.memory import ColorMemory
from memopainter.networks.classification import annealed_mean, classification_loss, rebalancing_weights
from memopainter.networks.generator import split_lightness
from memopainter.networks.losses import adversarial_loss, discriminator_loss, generator_loss

Gather = Callable[[torch.Tensor], torch.Tensor]
# Line-art input: weight of the L1 loss on the predicted L / 100 beside the rebalanced cross-entropy. Not an
# option: the two terms are of the same order at this weight (cross-entropy ~2, L1 of L / 100 ~0.1 to 0.2).
LINEART_LIGHTNESS_WEIGHT = 10.0


@dataclass
class MemoryBatch:
    """What the memory's step reads of a batch."""

    query_features: torch.Tensor | None  # (B, F) backbone features; None for a model without a memory
    color: torch.Tensor  # (B, V) the color feature of each image
    sources: torch.Tensor  # (B,) the rows the memory records as each slot's source
    labels: torch.Tensor  # (B,) class indices, -1 for none; read by a supervised memory only


@dataclass
class Batch(MemoryBatch):
    """One batch of training images, on the training device."""

    gray: torch.Tensor  # (B, 1, S, S) the generator's input: L / 100, or the line art's
    ab: torch.Tensor  # (B, 2, S, S) ab / 110
    lightness: torch.Tensor | None = None  # (B, 1, S, S) line-art input: the frame's L / 100, a target


@dataclass
class Optimizers:
    """One Adam per part that learns; the query head has its own learning rate (memory.lr)."""

    generator: torch.optim.Adam
    discriminator: torch.optim.Adam | None  # None for a model trained without an adversary
    query_head: torch.optim.Adam | None  # None without a memory

    def by_prefix(self) -> dict[str, torch.optim.Adam]:
        """The optimizers by checkpoint prefix."""
        parts = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "query_head": self.query_head,
        }
        return {prefix: optimizer for prefix, optimizer in parts.items() if optimizer is not None}


def make_optimizers(model: MemoPainter, config: RunConfig) -> Optimizers:
    """Adam for G and D (pix2pix betas) and for the query head."""
    betas = (config.train.beta1, config.train.beta2)

    def adam(module: torch.nn.Module | None, lr: float, **settings) -> torch.optim.Adam | None:
        return None if module is None else torch.optim.Adam(module.parameters(), lr=lr, **settings)

    return Optimizers(
        adam(model.generator, config.train.lr, betas=betas),
        adam(model.discriminator, config.train.lr, betas=betas),
        adam(model.query_head, config.memory.lr),
    )


def memory_step(
    query_head: torch.nn.Module,
    memory: ColorMemory,
    optimizer: torch.optim.Optimizer,
    batch: MemoryBatch,
    gather: Gather | None = None,
) -> dict[str, float]:
    """Section 3.1 for one batch: a threshold triplet step on the query head, then the memory update.

    `gather` (distributed runs) concatenates every rank's tensor in rank order: the memory is then updated
    with the queries of all ranks, the same on each, so every rank keeps the same memory. Returns the
    memory's part of the log. Nothing here touches the global random state (the memory has its own), so
    the coloring network's training does not depend on the memory's settings.
    """
    q = query_head(batch.query_features)  # (B, key_dim)
    labels = batch.labels if memory.supervised else None
    terms = memory.triplet_terms(q, batch.color, labels)
    optimizer.zero_grad(set_to_none=True)
    terms.loss.backward()
    optimizer.step()
    shared = [q.detach(), batch.color, batch.sources, labels]  # (B, key_dim), (B, V), (B,), (B,) or None
    if gather is not None:
        shared = [None if t is None else gather(t) for t in shared]
    matched = memory.update(shared[0], shared[1], sources=shared[2], labels=shared[3])
    return {
        "triplet": terms.loss.item(),
        "memory_hit_rate": matched.float().mean().item(),
        "no_positive": int((~terms.has_positive).sum()),
        "no_negative": int((~terms.has_negative).sum()),
    }


ColoringStep = Callable[[MemoPainter, Optimizers, Batch, torch.Tensor | None], dict[str, float]]


def coloring_step(config: RunConfig, ab: torch.Tensor, device: torch.device) -> ColoringStep:
    """The coloring network's step for config.model.head: `gan_step` ("ab") or `classification_step`.

    ab (N, 2, S, S) is the whole training set's, in network units; the bins head rebalances by it.
    """
    if config.model.head == "bins":
        # Class rebalancing from the training set's ab, once: (N, 2, S, S) / 110 -> Lab units (313,).
        weights = rebalancing_weights(ab.permute(0, 2, 3, 1) * AB_SCALE, config.loss.rebalance_lambda)
        return partial(
            classification_step,
            bin_weights=weights.to(device),
            adversarial=config.loss.bins_adversarial,
            l1=config.loss.bins_l1,
            temperature=config.model.bins_temperature,
        )
    return partial(gan_step, losses=config.loss)


def discriminator_step(
    net: MemoPainter, optimizers: Optimizers, batch: Batch, fake: torch.Tensor, cond: torch.Tensor | None
) -> float:
    """Eq. 11 for one batch: D tells true ab from fake (B, 2, S, S), beside the input; returns its loss."""
    d_loss = discriminator_loss(
        net.discriminator(batch.gray, batch.ab, cond), net.discriminator(batch.gray, fake.detach(), cond)
    )
    optimizers.discriminator.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizers.discriminator.step()
    return d_loss.item()


def gan_step(
    net: MemoPainter, optimizers: Optimizers, batch: Batch, cond: torch.Tensor | None, *, losses: LossConfig
) -> dict[str, float]:
    """Section 3.2 for one batch: a D step, then a G step on eqs. 10 to 12; cond (B, V) or None."""
    fake = net.generator(batch.gray, cond)  # (B, 2, S, S)
    d_loss = discriminator_step(net, optimizers, batch, fake, cond)
    g_loss, parts = generator_loss(
        net.discriminator(batch.gray, fake, cond),
        fake,
        batch.ab,
        losses.adversarial,
        losses.smooth_l1,
        losses.smooth_l1_delta,
    )
    optimizers.generator.zero_grad(set_to_none=True)
    g_loss.backward()
    optimizers.generator.step()
    return {"d": d_loss, "g": g_loss.item(), **parts}


def classification_step(
    net: MemoPainter,
    optimizers: Optimizers,
    batch: Batch,
    cond: torch.Tensor | None,
    *,
    bin_weights: torch.Tensor,
    adversarial: float,
    l1: float,
    temperature: float,
) -> dict[str, float]:
    """Zhang et al.'s eq. 2 on G, class-rebalanced by bin_weights (313,); cond (B, V), None for CIC.

    A line-art generator also predicts the lightness, under an L1 loss. The ab decoded at the annealed-mean
    temperature (as colorize decodes them) may add two terms: with l1 > 0, that weight times their L1
    distance to the truth's; with adversarial > 0, a D step first judges them, and G adds that weight times
    BCE(D(fake) -> 1).
    """
    logits = net.generator(batch.gray, cond)  # (B, 313, S, S), or (B, 314, S, S) for line art
    parts = {}
    if batch.lightness is not None:  # line-art input: the generator's last channel is the lightness
        logits, lightness = split_lightness(logits)  # (B, 313, S, S), (B, 1, S, S)
        lightness_l1 = (lightness - batch.lightness).abs().mean()
        parts["lightness_l1"] = lightness_l1.item()
    ce = classification_loss(logits, batch.ab * AB_SCALE, bin_weights)
    parts["ce"] = ce.item()
    loss = ce if batch.lightness is None else ce + LINEART_LIGHTNESS_WEIGHT * lightness_l1
    if adversarial > 0 or l1 > 0:
        fake = annealed_mean(logits, temperature) / AB_SCALE  # (B, 2, S, S) in network units
    if l1 > 0:
        ab_l1 = (fake - batch.ab).abs().mean()
        parts["ab_l1"] = ab_l1.item()
        loss = loss + l1 * ab_l1
    if adversarial > 0:
        parts["d"] = discriminator_step(net, optimizers, batch, fake, cond)
        fooled = adversarial_loss(net.discriminator(batch.gray, fake, cond))
        parts["g_adv"] = fooled.item()
        loss = loss + adversarial * fooled
    optimizers.generator.zero_grad(set_to_none=True)
    loss.backward()
    optimizers.generator.step()
    return parts

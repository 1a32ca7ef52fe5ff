"""The bins head with an L1 term (`loss.bins_l1 > 0`): the class-rebalanced cross-entropy plus a weighted L1
distance between the annealed-mean ab and the truth's; no discriminator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import bins_batch, metric_lines

from memopainter.config import ConfigError, RunConfig
from memopainter.core.model import build_model, has_adversary
from memopainter.data.preprocess import AB_SCALE
from memopainter.networks.classification import annealed_mean, classification_loss
from memopainter.training.loop import train
from memopainter.training.steps import Optimizers, classification_step

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")


def test_a_negative_weight_is_refused():
    with pytest.raises(ConfigError, match=r"loss.bins_l1 must be >= 0, got -1"):
        RunConfig().override(["loss.bins_l1=-1"])


def test_a_run_logs_the_term_and_trains_no_discriminator(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
):
    config = tiny_config.override(["model.head=bins", "loss.bins_l1=10"])
    assert not has_adversary(config)
    train(config, sprite_dir, tmp_path / "run", on_event=lambda _: None)
    lines = metric_lines(tmp_path / "run")
    assert all({"ce", "ab_l1"} <= set(line) and "d" not in line for line in lines)
    assert all(0 < line["ab_l1"] < 2 for line in lines)


def test_the_generators_gradient_is_the_cross_entropys_plus_the_weighted_l1(tiny_config: RunConfig):
    config = tiny_config.override(["model.head=bins", "model.dropout=0"])  # no dropout: the same G twice
    model = build_model(config, 8, None, None, 16)
    batch, cond, weights = bins_batch(5)
    gray, ab = batch.gray, batch.ab  # (B, 1, S, S), (B, 2, S, S) in ab / 110
    params = list(model.generator.parameters())
    logits = model.generator(gray, cond)  # (B, 313, S, S)
    ce = classification_loss(logits, ab * AB_SCALE, weights)
    l1 = (annealed_mean(logits, 0.38) / AB_SCALE - ab).abs().mean()
    ce_grads = torch.autograd.grad(ce, params, retain_graph=True)
    l1_grads = torch.autograd.grad(l1, params)
    optimizers = Optimizers(torch.optim.SGD(params, lr=0.0), None, None)  # lr 0: gradients, no move
    parts = classification_step(
        model, optimizers, batch, cond, bin_weights=weights, adversarial=0.0, l1=10.0, temperature=0.38
    )
    assert parts["ce"] == pytest.approx(ce.item()) and parts["ab_l1"] == pytest.approx(l1.item())
    assert any(grad.abs().sum() > 0 for grad in l1_grads)
    for param, ce_grad, l1_grad in zip(params, ce_grads, l1_grads, strict=True):
        torch.testing.assert_close(param.grad, ce_grad + 10.0 * l1_grad, atol=1e-6, rtol=1e-4)

"""The bins head with an adversary (`loss.bins_adversarial > 0`): the class-rebalanced cross-entropy plus a
weighted BCE(D(fake) -> 1) on the annealed-mean ab, judged by the paper's discriminator that trains beside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import bins_batch, metric_lines

from memopainter.config import ConfigError, RunConfig
from memopainter.core.checkpoint import load_checkpoint
from memopainter.core.model import build_model, has_adversary, load_memopainter, predict_color
from memopainter.data.preprocess import AB_SCALE
from memopainter.networks.classification import annealed_mean, classification_loss
from memopainter.networks.losses import adversarial_loss
from memopainter.training.loop import train
from memopainter.training.steps import Optimizers, classification_step

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")

ADVERSARIAL = ("model.head=bins", "loss.bins_adversarial=0.25")


def test_only_a_positive_weight_gives_the_bins_head_a_discriminator(tiny_config: RunConfig):
    assert not has_adversary(tiny_config.override(["model.head=bins"]))
    assert has_adversary(tiny_config.override(list(ADVERSARIAL)))
    assert has_adversary(tiny_config.override(["model.head=ab"]))
    assert build_model(tiny_config.override(list(ADVERSARIAL)), 8, None, None, 16).discriminator is not None


def test_a_negative_weight_is_refused():
    with pytest.raises(ConfigError, match=r"loss.bins_adversarial must be >= 0, got -0.5"):
        RunConfig().override(["loss.bins_adversarial=-0.5"])


def test_a_run_trains_saves_and_reloads_its_discriminator(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
):
    config = tiny_config.override(list(ADVERSARIAL))
    final = train(config, sprite_dir, tmp_path / "run", on_event=lambda _: None)
    lines = metric_lines(tmp_path / "run")
    assert all({"ce", "d", "g_adv", "triplet"} <= set(line) for line in lines)
    tensors, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert set(meta["optimizers"]) == {"generator", "discriminator", "query_head"}
    assert any(key.startswith("discriminator.") for key in load_checkpoint(final)[0])
    model = load_memopainter(final)
    assert model.discriminator is not None and model.generator.head == "bins"
    untrained = build_model(config, 9, None, None, 16).discriminator
    trained = dict(model.discriminator.named_parameters())
    assert any(not torch.equal(p, trained[name]) for name, p in untrained.named_parameters())
    ab, _ = predict_color(model, torch.rand(1, 1, 32, 32), model.memory.values[:1])
    assert ab.shape == (1, 2, 32, 32) and torch.isfinite(ab).all()


def test_a_run_resumes_bitwise_equal_to_an_uninterrupted_one(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig
):
    config = tiny_config.override(list(ADVERSARIAL))
    reference = train(config, sprite_dir, tmp_path / "reference", on_event=lambda _: None)
    train(config, sprite_dir, tmp_path / "run", stop_after=3, on_event=lambda _: None)
    resumed = train(config, sprite_dir, tmp_path / "run", resume=True, on_event=lambda _: None)
    a, b = load_checkpoint(resumed)[0], load_checkpoint(reference)[0]
    assert sorted(a) == sorted(b) and all(torch.equal(a[key], b[key]) for key in a)


def test_the_generators_gradient_is_the_cross_entropys_plus_the_weighted_adversarial_terms(
    tiny_config: RunConfig,
):
    config = tiny_config.override([*ADVERSARIAL, "model.dropout=0"])  # no dropout: the same G twice
    model = build_model(config, 8, None, None, 16)
    batch, cond, weights = bins_batch(3)
    gray, ab = batch.gray, batch.ab  # (B, 1, S, S), (B, 2, S, S) in ab / 110
    params = list(model.generator.parameters())

    def terms() -> tuple[torch.Tensor, torch.Tensor]:
        logits = model.generator(gray, cond)  # (B, 313, S, S)
        fake = annealed_mean(logits, 0.38) / AB_SCALE  # (B, 2, S, S)
        return classification_loss(logits, ab * AB_SCALE, weights), adversarial_loss(
            model.discriminator(gray, fake, cond)
        )

    ce, adv = terms()
    ce_grads = torch.autograd.grad(ce, params, retain_graph=True)
    adv_grads = torch.autograd.grad(adv, params)
    # lr 0: the step computes and leaves its gradients but moves no weight, so D is the same afterwards.
    optimizers = Optimizers(
        torch.optim.SGD(params, lr=0.0), torch.optim.SGD(model.discriminator.parameters(), lr=0.0), None
    )
    parts = classification_step(
        model, optimizers, batch, cond, bin_weights=weights, adversarial=0.25, l1=0.0, temperature=0.38
    )
    assert parts["ce"] == pytest.approx(ce.item()) and parts["g_adv"] == pytest.approx(adv.item())
    assert parts["d"] > 0
    assert any(grad.abs().sum() > 0 for grad in adv_grads)
    for param, ce_grad, adv_grad in zip(params, ce_grads, adv_grads, strict=True):
        torch.testing.assert_close(param.grad, ce_grad + 0.25 * adv_grad, atol=1e-6, rtol=1e-4)

"""Specification of the two comparison baselines, as training configurations of the same model:

pix2pix (`memory.enabled=false model.norm=batch`): the U-Net with BatchNorm in place of AdaIN, unconditioned;
CIC of Zhang, Isola & Efros 2016 (`memory.enabled=false model.head=bins`): 313 logits over the ab bins,
trained by class-rebalanced multinomial cross-entropy (eqs. 2 and 4), decoded by the annealed mean (eq. 5).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import metric_lines
from PIL import Image

from memopainter.cli.main import main
from memopainter.color.bins import NUM_BINS, ab_bins, nearest_bin, soft_encode
from memopainter.config import ConfigError, RunConfig
from memopainter.core.checkpoint import (
    load_checkpoint,
    module_to_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from memopainter.core.model import build_model, load_memopainter, predict_color
from memopainter.data.dataset import load_training_data
from memopainter.inference import Colorizer
from memopainter.networks.classification import annealed_mean, classification_loss, rebalancing_weights
from memopainter.networks.discriminator import Discriminator
from memopainter.networks.generator import AdaIN, Generator
from memopainter.training.loop import train

pytestmark = pytest.mark.usefixtures("cache_dir", "one_thread")

SIZE = 32
PIX2PIX = ("memory.enabled=false", "model.norm=batch", "model.head=ab")
CIC = ("memory.enabled=false", "model.head=bins")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def two_color_pixels(n_common: int = 900, n_rare: int = 100) -> torch.Tensor:
    """ab pixels (n, 2): most near a gray-ish (5, 5), a few near a saturated (40, 40)."""
    draws = torch.Generator().manual_seed(1)
    common = torch.tensor([5.0, 5.0]) + torch.randn(n_common, 2, generator=draws)
    rare = torch.tensor([40.0, 40.0]) + torch.randn(n_rare, 2, generator=draws)
    return torch.cat([common, rare])


def empirical_distribution(ab: torch.Tensor) -> torch.Tensor:
    """p over the 313 bins as the mean dense soft encoding of the pixels (n, 2) -> (313,)."""
    return soft_encode(ab.double()).mean(0)


# --- class rebalancing (Zhang et al. eq. 4) ---------------------------------------------------------------


def test_rebalancing_weights_follow_zhangs_rule_with_unit_expectation_under_p():
    ab = two_color_pixels()
    w = rebalancing_weights(ab).double()
    p = empirical_distribution(ab)
    assert w.shape == (NUM_BINS,)
    assert float((p * w).sum()) == pytest.approx(1.0, abs=1e-5)  # E_p[w] = 1
    # w ((1 - lam) p + lam / Q) is the same constant for every bin.
    product = w * (0.5 * p + 0.5 / NUM_BINS)
    torch.testing.assert_close(product, torch.full_like(product, float(product[0])), rtol=1e-4, atol=0)


def test_rarer_bins_get_larger_weights_and_unseen_bins_the_largest():
    ab = two_color_pixels()
    w = rebalancing_weights(ab)
    common, rare = nearest_bin(torch.tensor([[5.0, 5.0], [40.0, 40.0]]))
    unseen = nearest_bin(torch.tensor([-60.0, 60.0]))
    assert w[rare] > 2 * w[common]
    assert w[unseen] == pytest.approx(float(w.max()))
    assert w[unseen] > w[rare]


def test_lambda_one_gives_every_bin_the_weight_one():
    w = rebalancing_weights(two_color_pixels(), lam=1.0)
    torch.testing.assert_close(w, torch.ones(NUM_BINS))


def test_rebalancing_weights_take_images_shaped_like_the_training_data():
    ab = two_color_pixels(n_common=48, n_rare=16).reshape(2, 4, 8, 2)  # (B, H, W, 2)
    torch.testing.assert_close(rebalancing_weights(ab), rebalancing_weights(ab.reshape(-1, 2)))


# --- annealed mean (eq. 5) --------------------------------------------------------------------------------


def test_a_small_temperature_gives_the_centre_of_the_mode_bin():
    logits = torch.randn(2, NUM_BINS, 3, 3)
    modes = torch.randint(0, NUM_BINS, (2, 3, 3))
    logits.scatter_(1, modes[:, None], logits.amax(1, keepdim=True) + 2.0)  # a clear mode per pixel
    ab = annealed_mean(logits, temperature=0.01)
    assert ab.shape == (2, 2, 3, 3)
    torch.testing.assert_close(ab, ab_bins()[modes].permute(0, 3, 1, 2), atol=1e-3, rtol=0)


def test_a_one_hot_distribution_gives_that_bin_centre():
    logits = torch.full((1, NUM_BINS, 1, 2), -50.0)
    logits[0, 17, 0, 0] = 50.0
    logits[0, 250, 0, 1] = 50.0
    expected = ab_bins()[[17, 250]].T[None, :, None, :]  # (1, 2, 1, 2)
    for temperature in (1.0, 0.38):
        torch.testing.assert_close(annealed_mean(logits, temperature), expected)


def test_temperature_one_is_the_plain_expectation_and_the_default_is_0_38():
    logits = torch.randn(2, NUM_BINS, 2, 2) * 3
    p = torch.softmax(logits.double(), dim=1)
    bins = ab_bins(torch.float64)
    expected = torch.stack([(p * bins[:, c, None, None]).sum(1) for c in range(2)], dim=1)
    torch.testing.assert_close(annealed_mean(logits, 1.0).double(), expected, atol=1e-4, rtol=1e-5)
    sharpened = torch.softmax(torch.log(p) / 0.38, dim=1)  # p^(1/T) renormalised
    expected = torch.stack([(sharpened * bins[:, c, None, None]).sum(1) for c in range(2)], dim=1)
    torch.testing.assert_close(annealed_mean(logits).double(), expected, atol=1e-4, rtol=1e-5)


# --- the classification loss (eq. 2) ----------------------------------------------------------------------


def target_ab(batch: int = 2, size: int = 4) -> torch.Tensor:
    """ab targets (B, 2, H, W) in Lab units: bin centres jittered by up to 4 units."""
    draws = torch.Generator().manual_seed(2)
    picks = torch.randint(0, NUM_BINS, (batch, size, size), generator=draws)
    jitter = (torch.rand(batch, size, size, 2, generator=draws) - 0.5) * 8
    return (ab_bins()[picks] + jitter).permute(0, 3, 1, 2)


def test_logits_peaked_at_the_targets_bins_cost_less_than_uniform_logits():
    ab = target_ab()
    weights = rebalancing_weights(ab.permute(0, 2, 3, 1))
    peaked = torch.log(soft_encode(ab.permute(0, 2, 3, 1)) + 1e-4).permute(0, 3, 1, 2)  # (B, 313, H, W)
    uniform = torch.zeros_like(peaked)
    peaked_loss = classification_loss(peaked, ab, weights)
    uniform_loss = classification_loss(uniform, ab, weights)
    assert peaked_loss < 0.5 * uniform_loss
    # Uniform logits: log(313) at every pixel, times the weight of the pixel's nearest bin.
    nearest = nearest_bin(ab.permute(0, 2, 3, 1))
    assert float(uniform_loss) == pytest.approx(math.log(NUM_BINS) * float(weights[nearest].mean()), rel=1e-5)


def test_the_loss_of_one_pixel_is_the_weighted_cross_entropy_against_its_soft_encoding():
    ab = torch.tensor([12.0, -7.0])
    # By hand: the 10 nearest bins, Gaussian weights of sigma 5, normalised.
    d2 = ((ab_bins(torch.float64) - ab.double()) ** 2).sum(1)  # (313,)
    order = d2.argsort()[:10]
    z = torch.exp(-d2[order] / (2 * 5.0**2))
    z = z / z.sum()
    weights = torch.rand(NUM_BINS, dtype=torch.float64) + 0.5
    logits = torch.randn(1, NUM_BINS, 1, 1, dtype=torch.float64, requires_grad=True)
    log_p = torch.log_softmax(logits.detach()[0, :, 0, 0], 0)
    expected = -weights[order[0]] * (z * log_p[order]).sum()
    loss = classification_loss(logits, ab.double()[None, :, None, None], weights)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    # Gradients flow, and are the cross-entropy's: w_nearest (softmax - z).
    loss.backward()
    dense = torch.zeros(NUM_BINS, dtype=torch.float64).index_put((order,), z)
    softmax = torch.softmax(logits.detach()[0, :, 0, 0], 0)
    torch.testing.assert_close(logits.grad[0, :, 0, 0], weights[order[0]] * (softmax - dense))


def test_the_loss_is_the_mean_over_pixels():
    ab = target_ab(batch=1, size=2)
    weights = torch.rand(NUM_BINS) + 0.5
    logits = torch.randn(1, NUM_BINS, 2, 2)
    per_pixel = [
        classification_loss(logits[:, :, i : i + 1, j : j + 1], ab[:, :, i : i + 1, j : j + 1], weights)
        for i in range(2)
        for j in range(2)
    ]
    assert float(classification_loss(logits, ab, weights)) == pytest.approx(float(sum(per_pixel) / 4))


# --- the generator variants -------------------------------------------------------------------------------


def test_norm_batch_puts_batchnorm_where_adain_was_and_has_no_mlp():
    adain = Generator(SIZE, 0, base_channels=8, mlp_hidden=16)
    batch = Generator(SIZE, 0, base_channels=8, mlp_hidden=16, norm="batch")
    norms = [m for m in batch.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [n.num_features for n in norms] == adain.adain_channels
    assert all(n.affine and n.track_running_stats for n in norms)
    assert batch.mlp is None and batch.affine is None
    assert not any(isinstance(m, AdaIN) for m in batch.modules())
    assert not any(name.startswith(("mlp", "affine")) for name, _ in batch.named_parameters())
    L = torch.rand(3, 1, SIZE, SIZE)
    ab = batch(L, None)
    assert ab.shape == (3, 2, SIZE, SIZE) and ab.abs().max() <= 1
    assert not torch.equal(norms[0].running_mean, torch.zeros_like(norms[0].running_mean))  # batch stats


@pytest.mark.parametrize("norm", ["adain", "batch"])
def test_head_bins_outputs_313_raw_logits_per_pixel(norm: str):
    generator = Generator(SIZE, 0, base_channels=8, mlp_hidden=16, norm=norm, head="bins")
    assert generator.decoder[-1].out_channels == NUM_BINS
    generator.decoder[-1].bias.data.fill_(5.0)  # a tanh would keep every output below 1
    logits = generator(torch.rand(2, 1, SIZE, SIZE), None)
    assert logits.shape == (2, NUM_BINS, SIZE, SIZE)
    assert logits.min() > 1


@pytest.mark.parametrize(
    ("cond_dim", "norm", "head"),
    [(30, "adain", "ab"), (0, "batch", "ab"), (0, "adain", "bins"), (0, "batch", "bins")],
)
def test_generator_config_round_trip_rebuilds_the_same_architecture(cond_dim: int, norm: str, head: str):
    generator = Generator(SIZE, cond_dim, base_channels=8, mlp_hidden=16, norm=norm, head=head)
    cond = torch.rand(2, cond_dim) if cond_dim else None
    generator(torch.rand(4, 1, SIZE, SIZE), None if cond is None else cond.repeat(2, 1))  # BN stats move
    config = json.loads(json.dumps(generator.config()))
    assert config["norm"] == norm and config["head"] == head
    rebuilt = Generator(**config)
    rebuilt.load_state_dict(generator.state_dict())  # strict: same keys and shapes
    L = torch.rand(2, 1, SIZE, SIZE)
    torch.testing.assert_close(rebuilt.eval()(L, cond), generator.eval()(L, cond))


def test_a_generator_meta_without_norm_and_head_rebuilds_the_memopainter_generator(tmp_path: Path):
    old = {"image_size": SIZE, "cond_dim": 0, "base_channels": 8, "mlp_hidden": 16, "dropout": 0.5}
    generator = Generator(**old)
    assert (generator.norm, generator.head) == ("adain", "ab")
    # A checkpoint written before the baselines: no norm / head in its generator meta nor in its config.
    config = RunConfig().override(
        ["memory.enabled=false", "model.base_channels=8", "data.image_size=32", "model.head=ab"]
    )
    model = build_model(config, 4, None, None, 0)
    meta = model.meta()
    for key in ("norm", "head"):
        del meta["generator"][key]
    for key in ("norm", "head", "bins_temperature"):
        del meta["config"]["model"][key]
    del meta["config"]["loss"]["rebalance_lambda"]
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, model.tensors(), meta)
    loaded = load_memopainter(path)
    assert (loaded.generator.norm, loaded.generator.head) == ("adain", "ab")
    assert loaded.config == config
    L = torch.rand(1, 1, SIZE, SIZE)
    torch.testing.assert_close(predict_color(loaded, L, None)[0], predict_color(model, L, None)[0])


# --- configuration ----------------------------------------------------------------------------------------


def test_the_unconditioned_batchnorm_baseline_with_memory_enabled_is_refused():
    with pytest.raises(ConfigError, match=r"needs memory\.enabled = false"):
        RunConfig().override(["model.norm=batch"])
    RunConfig().override(["memory.enabled=false", "model.norm=batch"])  # fine without memory


def test_the_bins_head_takes_a_memory_condition_too():
    assert RunConfig().override(["model.head=bins"]).memory.enabled


def test_a_memory_model_with_the_bins_head_trains_the_memory_and_follows_its_condition(
    tmp_path: Path, cache_dir: Path, sprite_dir: Path, tiny_settings: tuple[str, ...]
):
    config = RunConfig().override([*tiny_settings, "model.head=bins", "train.steps=6"])
    final = train(config, sprite_dir, tmp_path / "run", on_event=lambda _: None)
    lines = metric_lines(tmp_path / "run")
    assert all({"ce", "triplet", "memory_hit_rate"} <= set(line) for line in lines)
    assert not any("d" in line or "g_adv" in line for line in lines)  # no discriminator, no GAN term
    model = load_memopainter(final)
    assert model.discriminator is None
    assert model.memory.num_filled > 0 and model.generator.head == "bins"
    values = model.memory.values[model.memory.filled]
    L = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    colored = [predict_color(model, L, value[None])[0] for value in values[:2]]
    assert colored[0].shape == (1, 2, 32, 32) and not torch.equal(colored[0], colored[1])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("model.norm=instance", 'model.norm must be "adain" or "batch", got \'instance\''),
        ("model.head=rgb", 'model.head must be "ab" or "bins", got \'rgb\''),
        ("model.bins_temperature=0", "model.bins_temperature must be >= 0.01"),
        ("loss.rebalance_lambda=0", r"loss.rebalance_lambda must be in \(0, 1\]"),
        ("loss.rebalance_lambda=1.5", r"loss.rebalance_lambda must be in \(0, 1\]"),
    ],
)
def test_unknown_choices_and_out_of_range_values_are_refused(setting: str, message: str):
    with pytest.raises(ConfigError, match=message):
        RunConfig().override(["memory.enabled=false", setting])


def test_the_new_keys_default_to_memopainter_and_zhangs_values():
    config = RunConfig()
    assert (config.model.norm, config.model.head) == ("adain", "bins")  # bins: chosen by measurement
    assert config.model.bins_temperature == 0.38 and config.loss.rebalance_lambda == 0.5
    both = RunConfig().override([*PIX2PIX, "model.head=bins", "model.bins_temperature=1"])
    assert both.model.bins_temperature == 1.0  # an int given for a float field


# --- end to end: tiny training runs -----------------------------------------------------------------------


def cli_args(data: Path, run_dir: Path, settings) -> list[str]:
    """`memopainter train` arguments with every setting passed as --set."""
    args = ["train", str(data), "--out", str(run_dir)]
    for setting in settings:
        args += ["--set", setting]
    return args


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory: pytest.TempPathFactory, sprite_writer, tiny_settings) -> SimpleNamespace:
    """A tiny pix2pix run through `memopainter train --set memory.enabled=false --set model.norm=batch`."""
    root = tmp_path_factory.mktemp("pix2pix")
    sprite_writer(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
        assert main(cli_args(root / "data", root / "run", [*tiny_settings, *PIX2PIX])) == 0
    return SimpleNamespace(data=root / "data", dir=root / "run")


def test_a_pix2pix_run_trains_the_batchnorm_generator_against_an_unconditioned_discriminator(
    pix2pix: SimpleNamespace,
):
    tensors, meta = load_checkpoint(pix2pix.dir / "model.safetensors")
    assert meta["generator"]["norm"] == "batch" and meta["generator"]["cond_dim"] == 0
    assert meta["discriminator"]["cond_dim"] == 0 and meta["memory"] is None
    assert "generator.batch_norms.0.running_mean" in tensors
    assert not any(key.startswith(("generator.mlp", "generator.affine")) for key in tensors)
    lines = metric_lines(pix2pix.dir)
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert all({"d", "g", "g_adv", "g_l1"} <= set(line) for line in lines)
    assert sorted(p.name for p in (pix2pix.dir / "samples").iterdir()) == [
        "step_000002.png",
        "step_000004.png",
    ]


@pytest.mark.parametrize("size", [(40, 24), (17, 31)])
def test_a_pix2pix_model_colorizes_an_image_to_its_size(pix2pix: SimpleNamespace, size: tuple[int, int]):
    colorizer = Colorizer.from_pretrained(pix2pix.dir)
    assert colorizer.model.generator.norm == "batch"
    image = Image.new("RGB", size, (120, 80, 40))
    (result,) = colorizer(image)
    assert result.size == size


def two_color_images(root: Path, count: int = 8) -> Path:
    """A trivially learnable set: dark blue left, bright yellow right, split at a different column each."""
    root.mkdir(parents=True)
    for i in range(count):
        image = Image.new("RGB", (SIZE, SIZE), (240, 220, 40))
        image.paste((30, 60, 200), (0, 0, 6 + 3 * i, SIZE))
        image.save(root / f"frame_{i}.png")
    return root


CIC_STEPS = 40


@pytest.fixture(scope="module")
def cic(tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> SimpleNamespace:
    """A tiny CIC run on the two-color set: 40 steps of 4 at lr 3e-3."""
    root = tmp_path_factory.mktemp("cic")
    data = two_color_images(root / "data")
    settings = [*tiny_settings, *CIC, f"train.steps={CIC_STEPS}", "train.lr=3e-3", "train.sample_every=20"]
    config = RunConfig().override(settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMOPAINTER_CACHE", str(root / "cache"))
        final = train(config, data, root / "run", on_event=lambda _: None)
    return SimpleNamespace(data=data, dir=root / "run", final=final, config=config)


def test_a_cic_run_logs_only_its_two_terms_and_both_decrease(cic: SimpleNamespace):
    lines = metric_lines(cic.dir)
    assert [line["step"] for line in lines] == list(range(1, CIC_STEPS + 1))
    assert all(set(line) == {"ce", "ab_l1", "step", "epoch", "seconds", "images_per_s"} for line in lines)
    for term in ("ce", "ab_l1"):
        values = [line[term] for line in lines]
        assert all(math.isfinite(v) and v > 0 for v in values)
        assert sum(values[-5:]) < 0.5 * sum(values[:5]), term
    assert sorted(p.name for p in (cic.dir / "samples").iterdir()) == ["step_000020.png", "step_000040.png"]


def test_a_cic_model_predicts_ab_by_annealed_mean_and_its_error_drops(cic: SimpleNamespace):
    tensors, meta = load_checkpoint(cic.final)
    model = load_memopainter(cic.final)
    assert meta["generator"]["head"] == "bins" and model.generator.head == "bins"
    assert tensors["generator.decoder.3.weight"].shape[1] == NUM_BINS  # (in, out, 4, 4)
    data = load_training_data(cic.data, SIZE, "dist", None, None, lambda _: None)
    untrained = build_model(cic.config, len(data), None, None, 0)  # the run's seed: its starting point
    errors = []
    for candidate in (untrained, model):
        ab = predict_color(candidate, data.gray, None)[0]  # (N, 2, S, S) in Lab units
        assert ab.shape == (len(data), 2, SIZE, SIZE)
        errors.append(float((ab - data.ab * 110).norm(dim=1).mean()))
    assert errors[1] < 0.5 * errors[0]
    # The decoding is the annealed mean at model.bins_temperature of the generator's logits.
    model.generator.eval()
    with torch.no_grad():
        logits = model.generator(data.gray[:2], None)
    torch.testing.assert_close(predict_color(model, data.gray[:2], None)[0], annealed_mean(logits, 0.38))
    model.config.model.bins_temperature = 1.0
    torch.testing.assert_close(predict_color(model, data.gray[:2], None)[0], annealed_mean(logits, 1.0))


def test_a_cic_model_colorizes_an_image_to_its_size(cic: SimpleNamespace):
    colorizer = Colorizer.from_pretrained(cic.dir)
    image = Image.new("RGB", (45, 20), (200, 200, 60))
    (result,) = colorizer(image)
    assert result.size == (45, 20)


def with_untrained_discriminator(path: Path, optimizer: bool) -> None:
    """Rewrite a "bins" checkpoint as written before such runs lost their discriminator: an untrained one
    in the tensors and meta, and (resumable checkpoints) its never-stepped Adam."""
    tensors, meta = load_checkpoint(path)
    meta = {key: value for key, value in meta.items() if key not in ("format_version", "memopainter_version")}
    generator = meta["generator"]
    discriminator = Discriminator(generator["image_size"], generator["cond_dim"], generator["base_channels"])
    tensors |= module_to_tensors(discriminator, "discriminator")
    meta["discriminator"] = discriminator.config()
    if optimizer:
        adam = torch.optim.Adam(discriminator.parameters())
        adam_tensors, meta["optimizers"]["discriminator"] = optimizer_to_tensors(adam, "optim.discriminator")
        tensors |= adam_tensors
    save_checkpoint(path, tensors, meta)


def test_a_bins_run_builds_saves_and_optimizes_no_discriminator(cic: SimpleNamespace):
    assert build_model(cic.config, 8, None, None, 0).discriminator is None
    tensors, meta = load_checkpoint(cic.final)
    assert meta["discriminator"] is None
    assert not any(key.startswith("discriminator.") for key in tensors)
    tensors, meta = load_checkpoint(cic.dir / "checkpoint.safetensors")
    assert set(meta["optimizers"]) == {"generator"}
    assert not any(key.startswith(("discriminator.", "optim.discriminator.")) for key in tensors)
    assert load_memopainter(cic.final).discriminator is None


def test_a_bins_model_saved_with_a_discriminator_loads_without_it(cic: SimpleNamespace, tmp_path: Path):
    old = tmp_path / "old.safetensors"
    old.write_bytes(cic.final.read_bytes())
    with_untrained_discriminator(old, optimizer=False)
    assert any(key.startswith("discriminator.") for key in load_checkpoint(old)[0])
    loaded, current = load_memopainter(old), load_memopainter(cic.final)
    assert loaded.discriminator is None and "discriminator" not in loaded.modules()
    a, b = loaded.tensors(), current.tensors()
    assert sorted(a) == sorted(b) and all(torch.equal(a[key], b[key]) for key in a)
    L = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(predict_color(loaded, L, None)[0], predict_color(current, L, None)[0])


@pytest.mark.parametrize("old_style", [False, True], ids=["checkpoint", "checkpoint-with-discriminator"])
def test_a_cic_run_resumes_bitwise_equal_to_an_uninterrupted_one(
    tmp_path: Path, sprite_dir: Path, tiny_config: RunConfig, old_style: bool
):
    config = tiny_config.override(list(CIC))
    reference = train(config, sprite_dir, tmp_path / "reference", on_event=lambda _: None)
    run_dir = tmp_path / "run"
    train(config, sprite_dir, run_dir, stop_after=3, on_event=lambda _: None)  # checkpoint at step 2
    assert not (run_dir / "model.safetensors").exists()
    if old_style:
        with_untrained_discriminator(run_dir / "checkpoint.safetensors", optimizer=True)
    resumed = train(config, sprite_dir, run_dir, resume=True, on_event=lambda _: None)
    a, b = load_checkpoint(resumed)[0], load_checkpoint(reference)[0]
    assert sorted(a) == sorted(b)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert [line["step"] for line in metric_lines(run_dir)] == [1, 2, 3, 4]


def test_classification_uses_rebalancing_weights_of_the_training_data(
    tmp_path: Path, tiny_config: RunConfig, monkeypatch: pytest.MonkeyPatch
):
    import memopainter.training.steps as steps

    data = two_color_images(tmp_path / "data", count=4)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    given: list[torch.Tensor] = []

    def spy_weights(ab, lam):
        seen.append((ab, lam))
        return rebalancing_weights(ab, lam)

    def spy_loss(logits, ab_target, weights):
        given.append(weights)
        return classification_loss(logits, ab_target, weights)

    monkeypatch.setattr(steps, "rebalancing_weights", spy_weights)
    monkeypatch.setattr(steps, "classification_loss", spy_loss)
    config = tiny_config.override([*CIC, "loss.rebalance_lambda=0.25", "train.steps=2"])
    train(config, data, tmp_path / "run", on_event=lambda _: None)
    assert len(seen) == 1 and len(given) == 2  # computed once, used every step
    ab, lam = seen[0]
    assert lam == 0.25 and ab.shape == (4, SIZE, SIZE, 2)
    loaded = load_training_data(data, SIZE, "dist", None, None, lambda _: None)
    torch.testing.assert_close(ab, loaded.ab.permute(0, 2, 3, 1) * 110)  # Lab units
    assert all(torch.equal(w, given[0]) for w in given)
    torch.testing.assert_close(given[0], rebalancing_weights(ab, 0.25))


def test_dense_soft_encoding_agrees_with_the_sparse_one_used_by_the_loss():
    # The loss gathers log_softmax at the 10 soft-encoded bins; that is the dense CE against soft_encode.
    ab = target_ab(batch=1, size=3)
    logits = torch.randn(1, NUM_BINS, 3, 3)
    dense = soft_encode(ab.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (1, 313, 3, 3)
    ce = -(dense * F.log_softmax(logits, 1)).sum(1)  # (1, 3, 3)
    weights = torch.ones(NUM_BINS)
    assert float(classification_loss(logits, ab, weights)) == pytest.approx(float(ce.mean()), rel=1e-5)

"""Colorization networks (section 3.2): the AdaIN U-Net generator, the conditional PatchGAN, the losses."""

from __future__ import annotations

import json
import math

import pytest
import torch

from memopainter.networks.discriminator import Discriminator
from memopainter.networks.generator import AdaIN, Generator
from memopainter.networks.losses import discriminator_loss, generator_loss, smooth_l1

COND_DIM = 313  # the distribution feature: one value per ab bin


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _inputs(batch: int, size: int, cond_dim: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    L = torch.rand(batch, 1, size, size)
    cond = torch.rand(batch, cond_dim) if cond_dim else None
    return L, cond


def _parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _train_one_step(generator: Generator, size: int) -> None:
    """One Adam step on an L1 loss, so the zero-initialised last MLP layer is no longer zero."""
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    L, cond = _inputs(4, size, generator.cond_dim)
    target = torch.rand(4, 2, size, size) * 2 - 1
    (generator(L, cond) - target).abs().mean().backward()
    optimizer.step()
    optimizer.zero_grad()


# --- generator: shapes, depth, sizes ------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("cond_dim", [COND_DIM, 0])
def test_generator_maps_L_to_two_ab_channels_of_the_same_size_within_minus_1_and_1(size: int, cond_dim: int):
    generator = Generator(size, cond_dim, base_channels=8, mlp_hidden=16)
    L, cond = _inputs(3, size, cond_dim)
    # Inputs far outside [0, 1] push activations hard, so the range check exercises the tanh.
    ab = generator(L * 50, cond)
    assert ab.shape == (3, 2, size, size)
    assert ab.min() >= -1 and ab.max() <= 1


@pytest.mark.parametrize(("size", "down_blocks"), [(16, 3), (32, 4), (64, 5), (256, 7)])
def test_generator_downsamples_log2_size_minus_1_times_to_a_2x2_bottleneck(size: int, down_blocks: int):
    generator = Generator(size, COND_DIM, base_channels=4, mlp_hidden=8)
    normalised_sizes: list[tuple[int, int]] = []
    generator.adain.register_forward_hook(lambda m, args, out: normalised_sizes.append(tuple(out.shape[2:])))
    bottleneck: list[torch.Size] = []
    generator.encoder[-1].register_forward_hook(lambda m, args, out: bottleneck.append(out.shape))

    generator(*_inputs(1, size, COND_DIM))

    assert generator.depth == down_blocks == len(generator.encoder) == len(generator.decoder)
    assert bottleneck[0][2:] == (2, 2)
    # AdaIN in every encoder block but the first and every decoder block but the last, never on 1x1.
    assert len(normalised_sizes) == 2 * down_blocks - 2
    assert min(h for h, _ in normalised_sizes) == 2


def test_generator_channels_double_per_level_up_to_8_times_base():
    generator = Generator(128, COND_DIM, base_channels=4, mlp_hidden=8)
    assert [conv.out_channels for conv in generator.encoder] == [4, 8, 16, 32, 32, 32]
    assert [conv.out_channels for conv in generator.decoder] == [32, 32, 16, 8, 4, 2]


# --- AdaIN (eq. 13) -------------------------------------------------------------------------------------


def test_adain_output_has_per_channel_mean_beta_and_std_gamma():
    z = torch.randn(4, 6, 8, 8) * 3 + 2  # (B, C, H, W), statistics far from (0, 1)
    gamma = torch.rand(4, 6) * 2 + 0.1  # (B, C)
    beta = torch.randn(4, 6)
    out = AdaIN()(z, gamma, beta)
    torch.testing.assert_close(out.mean(dim=(2, 3)), beta, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3), correction=0), gamma, atol=1e-3, rtol=0)


def test_adain_normalises_each_sample_on_its_own():
    z = torch.randn(2, 3, 4, 4)
    gamma, beta = torch.ones(2, 3), torch.zeros(2, 3)
    shifted = torch.cat([z[:1], z[1:] * 10 + 5])
    torch.testing.assert_close(AdaIN()(shifted, gamma, beta), AdaIN()(z, gamma, beta), atol=1e-4, rtol=0)


# --- the condition ----------------------------------------------------------------------------------------


def test_generator_starts_as_plain_instance_norm_so_the_condition_has_no_effect_at_init():
    generator = Generator(32, COND_DIM, base_channels=8, mlp_hidden=16).eval()
    L, _ = _inputs(2, 32, COND_DIM)
    style = generator.mlp(torch.rand(1, COND_DIM))
    assert torch.count_nonzero(style) == 0  # (gamma - 1, beta) = 0: gamma 1, beta 0
    torch.testing.assert_close(generator(L, torch.rand(2, COND_DIM)), generator(L, torch.rand(2, COND_DIM)))


def test_two_different_conditions_give_different_colorings_of_the_same_L_after_one_step():
    generator = Generator(32, COND_DIM, base_channels=8, mlp_hidden=16)
    _train_one_step(generator, 32)
    generator.eval()  # dropout off: any difference comes from the condition alone
    L = torch.rand(1, 1, 32, 32).expand(2, -1, -1, -1)
    cond = torch.rand(2, COND_DIM)
    ab = generator(L, cond)
    assert (ab[0] - ab[1]).abs().max() > 1e-3
    same = generator(L, cond[:1].expand(2, -1))
    torch.testing.assert_close(same[0], same[1])  # the batch position alone changes nothing


def test_gradients_reach_the_last_mlp_layer_at_init_and_every_mlp_layer_after_one_step():
    generator = Generator(32, COND_DIM, base_channels=8, mlp_hidden=16)
    linears = [m for m in generator.mlp if isinstance(m, torch.nn.Linear)]
    L, cond = _inputs(2, 32, COND_DIM)
    generator(L, cond).square().mean().backward()
    assert linears[-1].weight.grad.abs().sum() > 0
    generator.zero_grad()

    _train_one_step(generator, 32)
    generator(L, cond).square().mean().backward()
    for layer in linears:
        assert layer.weight.grad.abs().sum() > 0


def test_mlp_maps_the_feature_to_gamma_and_beta_of_all_adain_layers_at_once():
    generator = Generator(64, COND_DIM)
    # AdaIN channels at 64: encoder 64, 128, 256, 256 and decoder 256, 128, 64, 32 -> 1,184; 2 values each.
    assert generator.adain_channels == [64, 128, 256, 256, 256, 128, 64, 32]
    assert generator.mlp[-1].out_features == 2 * 1184
    mlp_parameters = (313 * 256 + 256) + (256 * 256 + 256) + (256 * 2368 + 2368)
    assert _parameter_count(generator.mlp) == mlp_parameters == 754_752


# --- Res-cGAN: cond_dim 0 ---------------------------------------------------------------------------------


def test_unconditioned_generator_has_no_mlp_and_learns_one_gamma_and_beta_per_channel():
    generator = Generator(32, 0, base_channels=8, mlp_hidden=16)
    assert generator.mlp is None
    assert not any(name.startswith("mlp") for name, _ in generator.named_parameters())
    assert generator.affine.shape == (2 * sum(generator.adain_channels),)
    L, _ = _inputs(2, 32, 0)
    generator(L, None).square().mean().backward()
    assert generator.affine.grad.abs().sum() > 0


# --- dropout ----------------------------------------------------------------------------------------------


def test_dropout_makes_training_outputs_random_and_eval_outputs_deterministic():
    generator = Generator(64, COND_DIM, base_channels=8, mlp_hidden=16)
    L, cond = _inputs(2, 64, COND_DIM)
    assert not torch.equal(generator(L, cond), generator(L, cond))
    generator.eval()
    assert torch.equal(generator(L, cond), generator(L, cond))
    no_dropout = Generator(64, COND_DIM, base_channels=8, mlp_hidden=16, dropout=0.0)
    assert torch.equal(no_dropout(L, cond), no_dropout(L, cond))


# --- size and checkpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "cond_dim"), [(64, COND_DIM), (256, COND_DIM), (64, 0), (256, 30)])
def test_generator_with_default_widths_has_at_most_20_million_parameters(size: int, cond_dim: int):
    count = _parameter_count(Generator(size, cond_dim))
    print(f"Generator(image_size={size}, cond_dim={cond_dim}): {count:,} parameters")
    assert count <= 20_000_000


def test_generator_config_is_plain_values_that_rebuild_the_same_network():
    generator = Generator(32, 30, base_channels=8, mlp_hidden=16, dropout=0.25)
    config = generator.config()
    assert json.loads(json.dumps(config)) == {
        "image_size": 32,
        "cond_dim": 30,
        "base_channels": 8,
        "mlp_hidden": 16,
        "dropout": 0.25,
        "norm": "adain",
        "head": "ab",
        "cond_norm": False,
        "lightness": False,
    }
    _train_one_step(generator, 32)
    rebuilt = Generator(**config)
    rebuilt.load_state_dict(generator.state_dict())
    L, cond = _inputs(2, 32, 30)
    torch.testing.assert_close(rebuilt.eval()(L, cond), generator.eval()(L, cond))


# --- discriminator ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "patches"), [(32, 2), (64, 6), (128, 14)])
def test_discriminator_gives_one_logit_per_patch(size: int, patches: int):
    discriminator = Discriminator(size, COND_DIM, base_channels=8)
    L, cond = _inputs(2, size, COND_DIM)
    logits = discriminator(L, torch.rand(2, 2, size, size) * 2 - 1, cond)
    assert logits.shape == (2, 1, patches, patches)


def test_discriminator_output_depends_on_the_color_feature():
    discriminator = Discriminator(32, COND_DIM, base_channels=8)
    L, _ = _inputs(1, 32, COND_DIM)
    ab = torch.rand(1, 2, 32, 32) * 2 - 1
    first = discriminator(L, ab, torch.rand(1, COND_DIM))
    second = discriminator(L, ab, torch.rand(1, COND_DIM))
    assert (first - second).abs().max() > 1e-4


def test_discriminator_sees_the_feature_as_16_tiled_channels_not_313():
    discriminator = Discriminator(32, COND_DIM, base_channels=8)
    assert discriminator.cond_embed.out_features == 16
    assert discriminator.body[0].in_channels == 1 + 2 + 16


def test_unconditioned_discriminator_has_no_embedding():
    discriminator = Discriminator(32, 0, base_channels=8)
    assert discriminator.cond_embed is None
    assert discriminator.body[0].in_channels == 3
    L, ab = torch.rand(2, 1, 32, 32), torch.rand(2, 2, 32, 32)
    assert discriminator(L, ab, None).shape == (2, 1, 2, 2)


def test_discriminator_config_is_plain_values_that_rebuild_the_same_network():
    discriminator = Discriminator(64, 30, base_channels=8)
    config = discriminator.config()
    assert json.loads(json.dumps(config)) == {"image_size": 64, "cond_dim": 30, "base_channels": 8}
    rebuilt = Discriminator(**config)
    rebuilt.load_state_dict(discriminator.state_dict())
    L, cond = _inputs(2, 64, 30)
    ab = torch.rand(2, 2, 64, 64)
    torch.testing.assert_close(rebuilt(L, ab, cond), discriminator(L, ab, cond))


# --- losses (eqs. 10 to 12) -------------------------------------------------------------------------------


def test_smooth_l1_is_eq_10_on_hand_numbers():
    pred = torch.tensor([0.5, 3.0, -1.5, 1.0])
    target = torch.zeros(4)
    # delta 1: 0.5 * 0.5^2 = 0.125; 1 * 3 - 0.5 = 2.5; 1.5 - 0.5 = 1.0; |d| = delta: 0.5 -> mean 4.125 / 4
    assert smooth_l1(pred, target, delta=1.0).item() == pytest.approx(1.03125)
    # delta 2: 0.125; 2 * 3 - 2 = 4.0; 0.5 * 1.5^2 = 1.125; 0.5 -> mean 5.75 / 4
    assert smooth_l1(pred, target, delta=2.0).item() == pytest.approx(1.4375)


def test_smooth_l1_matches_eq_10_written_out_for_random_values():
    pred, target = torch.randn(4, 2, 8, 8) * 2, torch.randn(4, 2, 8, 8)
    delta = 0.3
    d = (pred - target).abs()
    expected = torch.where(d <= delta, 0.5 * d**2, delta * d - 0.5 * delta**2).mean()
    torch.testing.assert_close(smooth_l1(pred, target, delta), expected)


def test_smooth_l1_refuses_mismatched_shapes_and_non_positive_delta():
    with pytest.raises(ValueError, match="differ"):
        smooth_l1(torch.zeros(2, 3), torch.zeros(3, 2), 1.0)
    with pytest.raises(ValueError, match="delta must be > 0"):
        smooth_l1(torch.zeros(2), torch.zeros(2), 0.0)


def test_discriminator_loss_is_2_log_2_for_undecided_logits_and_near_0_for_confident_right_ones():
    zeros = torch.zeros(2, 1, 6, 6)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    # real -> 1 and fake -> 0: log(1 + e^-20) twice, about 4.1e-9
    assert discriminator_loss(zeros + 20, zeros - 20).item() == pytest.approx(0.0, abs=1e-8)
    # confidently wrong: -log(sigmoid(-100)) = 100 for each term, finite where log(sigmoid) would underflow
    assert discriminator_loss(zeros - 100, zeros + 100).item() == pytest.approx(200.0)


def test_generator_loss_is_weighted_non_saturating_bce_plus_smooth_l1():
    fake_logits = torch.full((2, 1, 6, 6), math.log(3))  # D(fake) = 0.75
    real_ab = torch.zeros(2, 2, 8, 8)
    fake_ab = real_ab + 0.5  # smooth L1 with delta 1: 0.125 per element
    total, parts = generator_loss(
        fake_logits, fake_ab, real_ab, adversarial_weight=2.0, l1_weight=10.0, delta=1.0
    )
    assert parts["g_adv"] == pytest.approx(-math.log(0.75))  # 0.287682
    assert parts["g_l1"] == pytest.approx(0.125)
    assert total.item() == pytest.approx(2 * -math.log(0.75) + 10 * 0.125)  # 1.825364
    assert all(type(value) is float for value in parts.values())


def test_generator_loss_is_log_2_plus_l1_for_undecided_logits():
    total, parts = generator_loss(
        torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 4, 4), torch.full((1, 2, 4, 4), 3.0), 1.0, 1.0, 1.0
    )
    assert parts == pytest.approx({"g_adv": math.log(2), "g_l1": 2.5})
    assert total.item() == pytest.approx(math.log(2) + 2.5)


def test_generator_loss_refuses_negative_weights():
    with pytest.raises(ValueError, match="weights must be >= 0"):
        generator_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), -1.0, 1.0, 1.0)


# --- together ---------------------------------------------------------------------------------------------


def test_one_gan_step_trains_both_networks_with_finite_losses():
    size = 32
    generator = Generator(size, COND_DIM, base_channels=8, mlp_hidden=16)
    discriminator = Discriminator(size, COND_DIM, base_channels=8)
    L, cond = _inputs(2, size, COND_DIM)
    real_ab = torch.rand(2, 2, size, size) * 2 - 1

    fake_ab = generator(L, cond)
    d_loss = discriminator_loss(discriminator(L, real_ab, cond), discriminator(L, fake_ab.detach(), cond))
    d_loss.backward()
    assert all(p.grad is None for p in generator.parameters())
    assert discriminator.cond_embed.weight.grad.abs().sum() > 0

    discriminator.zero_grad()
    g_loss, parts = generator_loss(discriminator(L, fake_ab, cond), fake_ab, real_ab, 1.0, 1.0, 1.0)
    g_loss.backward()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and math.isfinite(parts["g_adv"])
    assert generator.encoder[0].weight.grad.abs().sum() > 0
    assert generator.mlp[-1].weight.grad.abs().sum() > 0


def test_a_centred_condition_has_mean_zero_and_unit_variance_over_the_training_features():
    generator = Generator(32, 30, base_channels=8, mlp_hidden=16, cond_norm=True)
    features = 0.5 + 0.01 * torch.randn(40, 30, generator=torch.Generator().manual_seed(0))  # much in common
    generator.fit_condition(features)
    centred = (features - generator.cond_mean) * generator.cond_scale
    torch.testing.assert_close(centred.mean(0), torch.zeros(30), atol=1e-5, rtol=0)
    assert centred.var(0, correction=0).mean().item() == pytest.approx(1.0, rel=1e-4)


def test_the_centred_condition_reaches_the_mlp_and_travels_with_the_weights():
    generator = Generator(32, 30, base_channels=8, mlp_hidden=16, cond_norm=True)
    features = torch.rand(10, 30, generator=torch.Generator().manual_seed(1))
    generator.fit_condition(features)
    _train_one_step(generator, 32)
    mlp_input = []
    generator.mlp.register_forward_hook(lambda _, args, __: mlp_input.append(args[0]))
    L, cond = _inputs(2, 32, 30)
    out = generator.eval()(L, cond)
    torch.testing.assert_close(mlp_input[0], (cond - features.mean(0)) * generator.cond_scale)
    rebuilt = Generator(**generator.config())
    rebuilt.load_state_dict(generator.state_dict())  # cond_mean and cond_scale are buffers of the state
    torch.testing.assert_close(rebuilt.eval()(L, cond), out)


def test_a_generator_description_without_cond_norm_builds_the_plain_condition():
    described = Generator(32, 30, base_channels=8, mlp_hidden=16).config()
    del described["cond_norm"]  # as checkpoints written before the option
    generator = Generator(**described)
    assert not generator.cond_norm and "cond_mean" not in generator.state_dict()

"""The colorization generator (section 3.2, eq. 13): a pix2pix U-Net with AdaIN driven by the color feature.

Input L/100 in [0, 1], output tanh = ab/110 in [-1, 1]. The encoder halves the image until the bottleneck is
2x2, so instance statistics are never taken over a single pixel. One MLP maps the color feature to the gamma
and beta of every AdaIN layer at once; with cond_dim 0 (the paper's Res-cGAN ablation) those are learned
constants.

Two baselines reuse the same U-Net: norm "batch" puts BatchNorm where AdaIN is (the pix2pix generator,
unconditioned), and head "bins" ends in 313 logits over the ab bins instead of 2 tanh channels (the
classification colorizer of Zhang, Isola & Efros 2016, decoded by networks.classification.annealed_mean).

For line-art input (`lightness=True`, head "bins" only) the input carries no shading, so one more output
channel predicts the lightness too: `split` separates it, as L / 100 through a sigmoid.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from memopainter.color.bins import NUM_BINS

MIN_IMAGE_SIZE = 16
BOTTLENECK_SIZE = 2
DROPOUT_BLOCKS = 3  # pix2pix: dropout in the first three decoder blocks
CHANNEL_CAP = 8  # channels stop doubling at 8 x base_channels, as in pix2pix
LEAKY_SLOPE = 0.2
NORMS = ("adain", "batch")
HEADS = ("ab", "bins")
HEAD_CHANNELS = {"ab": 2, "bins": NUM_BINS}  # output channels of the last decoder layer per head


class AdaIN(nn.Module):
    """Adaptive instance norm (eq. 13): gamma * (z - mu(z)) / sigma(z) + beta, per sample and channel."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Normalise z (B, C, H, W) over space, then scale by gamma (B, C) and shift by beta (B, C).

        z needs at least 2 pixels for its statistics to mean anything; the Generator's 2x2 bottleneck
        ensures that.
        """
        # Biased variance, as instance norm: sigma is the spread of this very map, not an estimate.
        var, mu = torch.var_mean(z, dim=(2, 3), keepdim=True, correction=0)  # (B, C, 1, 1)
        normalised = (z - mu) * torch.rsqrt(var + self.eps)
        return gamma[:, :, None, None] * normalised + beta[:, :, None, None]


class Generator(nn.Module):
    """U-Net generator G(x, C): L/100 (B, 1, H, W) and color feature (B, cond_dim) -> ab/110 (B, 2, H, W).

    With head "bins" the output is instead raw logits (B, 313, H, W) over the ab bins.
    """

    def __init__(
        self,
        image_size: int,
        cond_dim: int,
        base_channels: int = 32,
        mlp_hidden: int = 256,
        dropout: float = 0.5,
        norm: str = "adain",
        head: str = "ab",
        cond_norm: bool = False,
        lightness: bool = False,
    ) -> None:
        super().__init__()
        # Checked once, by RunConfig.validate; these only catch a programming error.
        assert image_size >= MIN_IMAGE_SIZE and image_size & (image_size - 1) == 0, image_size
        assert norm in NORMS and head in HEADS, (norm, head)
        assert norm == "adain" or cond_dim == 0, "norm 'batch' is unconditioned"
        assert head == "bins" or not lightness, "only head 'bins' predicts lightness"
        self.image_size = image_size
        self.cond_dim = cond_dim
        self.base_channels = base_channels
        self.mlp_hidden = mlp_hidden
        self.dropout_p = float(dropout)
        self.norm = norm
        self.head = head
        self.cond_norm = bool(cond_norm) and cond_dim > 0
        self.lightness = bool(lightness)

        # Modules are created in this order (encoder, decoder, then the norms' parameters) so that a seeded
        # generator draws the same initial weights as every earlier version.
        depth = (image_size // BOTTLENECK_SIZE).bit_length() - 1  # = log2(image_size) - 1
        channels = [base_channels * min(2**i, CHANNEL_CAP) for i in range(depth)]  # encoder outputs
        decoder_out = channels[-2::-1] + [HEAD_CHANNELS[head] + self.lightness]
        self.encoder = _encoder(channels)
        self.decoder = _decoder(channels, decoder_out)
        self.dropout = nn.Dropout(self.dropout_p)
        # One norm per encoder block but the first and per decoder block but the last, in forward order.
        self.norm_channels: list[int] = channels[1:] + decoder_out[:-1]
        self.adain: AdaIN | None = None
        self.batch_norms: nn.ModuleList | None = None
        self.mlp: nn.Sequential | None = None
        self.register_parameter("affine", None)
        if norm == "batch":
            # pix2pix: affine BatchNorm with running statistics; no MLP, no learned AdaIN constants.
            self.adain_channels: list[int] = []
            self.batch_norms = nn.ModuleList(nn.BatchNorm2d(c) for c in self.norm_channels)
        else:
            self._build_adain(cond_dim, mlp_hidden)

    def _build_adain(self, cond_dim: int, mlp_hidden: int) -> None:
        """AdaIN at every norm layer, (gamma - 1, beta) from an MLP of the condition or learned constants."""
        self.adain = AdaIN()
        self.adain_channels = list(self.norm_channels)
        style_dim = 2 * sum(self.adain_channels)
        if cond_dim == 0:
            # Res-cGAN: the same (gamma - 1, beta) layout, learned once for all images.
            self.affine = nn.Parameter(torch.zeros(style_dim))
            return
        self.mlp = nn.Sequential(
            nn.Linear(cond_dim, mlp_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(mlp_hidden, mlp_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(mlp_hidden, style_dim),
        )
        # The MLP predicts (gamma - 1, beta); a zero last layer starts every AdaIN as plain instance norm.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        if self.cond_norm:
            # Set from the training features by fit_condition; saved with the weights.
            self.register_buffer("cond_mean", torch.zeros(cond_dim))
            self.register_buffer("cond_scale", torch.ones(()))

    @property
    def depth(self) -> int:
        """Number of stride-2 down blocks: log2(image_size) - 1, leaving a 2x2 bottleneck."""
        return len(self.encoder)

    def config(self) -> dict[str, int | float | str]:
        """Constructor arguments as plain values: `Generator(**g.config())` rebuilds the architecture."""
        return {
            "image_size": self.image_size,
            "cond_dim": self.cond_dim,
            "base_channels": self.base_channels,
            "mlp_hidden": self.mlp_hidden,
            "dropout": self.dropout_p,
            "norm": self.norm,
            "head": self.head,
            "cond_norm": self.cond_norm,
            "lightness": self.lightness,
        }

    @torch.no_grad()
    def fit_condition(self, features: torch.Tensor) -> None:
        """Centre and scale the MLP's input on training color features (N, cond_dim): mean 0, variance 1.

        The features of one data set share much (outlines, skin, a team color), so what tells two characters
        apart is a small part of each feature; centred and scaled, that part reaches the MLP at full strength.
        One scale for all dimensions: a per-bin scale would blow up bins that training never filled.
        """
        assert self.cond_norm, "fit_condition needs a generator built with cond_norm=True"
        assert features.dim() == 2 and features.shape[0] >= 1 and features.shape[1] == self.cond_dim
        features = features.to(self.cond_mean)
        self.cond_mean.copy_(features.mean(0))
        spread = features.var(0, correction=0).mean() if features.shape[0] > 1 else torch.zeros(())
        self.cond_scale.copy_(torch.rsqrt(spread + 1e-12) if spread > 0 else torch.ones(()))

    def _styles(self, batch: int, cond: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(gamma, beta), each (B, C), for every AdaIN layer in forward order."""
        if self.mlp is not None:
            assert cond is not None and cond.shape == (batch, self.cond_dim)
            if self.cond_norm:
                cond = (cond - self.cond_mean) * self.cond_scale  # (B, cond_dim), see fit_condition
            style = self.mlp(cond)  # (B, style_dim)
        else:
            assert cond is None, "a generator with cond_dim 0 takes cond=None"
            style = self.affine.expand(batch, -1)  # (B, style_dim)
        chunks = style.split([2 * c for c in self.adain_channels], dim=1)
        pairs = zip(chunks, self.adain_channels, strict=True)
        return [(1.0 + chunk[:, :c], chunk[:, c:]) for chunk, c in pairs]

    def _norms(self, batch: int, cond: torch.Tensor | None) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Every norm layer in forward order, as a map (B, C, h, w) -> (B, C, h, w): AdaIN or BatchNorm."""
        if self.batch_norms is not None:
            assert cond is None, "a generator with cond_dim 0 takes cond=None"
            return list(self.batch_norms)
        return [partial(self.adain, gamma=gamma, beta=beta) for gamma, beta in self._styles(batch, cond)]

    def forward(self, L: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """L/100 (B, 1, S, S) and color feature (B, cond_dim) or None -> ab/110 (B, 2, S, S) in [-1, 1].

        With head "bins": raw logits (B, 313, S, S) instead, no tanh; with `lightness`, one more channel
        (B, 314, S, S), which `split` separates.
        """
        assert L.shape[1:] == (1, self.image_size, self.image_size), tuple(L.shape)
        norms = iter(self._norms(L.shape[0], cond))
        skips = []
        x = L
        for i, conv in enumerate(self.encoder):
            if i > 0:
                x = F.leaky_relu(x, LEAKY_SLOPE)
            x = conv(x)
            if i > 0:
                x = next(norms)(x)
            skips.append(x)
        # x: bottleneck (B, 8 x base, 2, 2); pix2pix concatenates pre-activation features, as here.
        for j, deconv in enumerate(self.decoder):
            if j > 0:
                x = torch.cat([x, skips[self.depth - 1 - j]], dim=1)
            x = deconv(F.relu(x))
            if j < self.depth - 1:
                x = next(norms)(x)
                if j < DROPOUT_BLOCKS:
                    x = self.dropout(x)
        if self.head == "bins":
            return x  # (B, 313, S, S) logits, or (B, 314, S, S) with the lightness channel last
        return torch.tanh(x)  # (B, 2, S, S)

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """forward's output -> the head's output and the predicted L / 100 (B, 1, S, S) in [0, 1], or None."""
        return split_lightness(out) if self.lightness else (out, None)


def split_lightness(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A lightness generator's output (B, C + 1, S, S) -> the head's (B, C, S, S) and L / 100 (B, 1, S, S).

    A function as well as Generator.split: a distributed run's step holds the generator wrapped in DDP.
    """
    return out[:, :-1], torch.sigmoid(out[:, -1:])


def _encoder(channels: list[int]) -> nn.ModuleList:
    """Stride-2 4x4 convs from the 1-channel L down to channels[-1] at the 2x2 bottleneck."""
    encoder = nn.ModuleList()
    for i, out_ch in enumerate(channels):
        in_ch = 1 if i == 0 else channels[i - 1]
        # A bias before a norm would be removed by its mean subtraction; the first block has no norm.
        encoder.append(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=i == 0))
    return encoder


def _decoder(channels: list[int], decoder_out: list[int]) -> nn.ModuleList:
    """Stride-2 4x4 transposed convs back up to the image size, ending in the head's channels."""
    # Decoder block j undoes encoder block depth-1-j; after the first, it also takes that level's skip.
    depth = len(channels)
    decoder = nn.ModuleList()
    for j, out_ch in enumerate(decoder_out):
        in_ch = channels[-1] if j == 0 else 2 * channels[depth - 1 - j]
        last = j == depth - 1
        decoder.append(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=last))
    return decoder

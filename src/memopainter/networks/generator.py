"""The colorization generator (section 3.2, eq. 13): a pix2pix U-Net with AdaIN driven by the color feature.

Input L/100 in [0, 1], output tanh = ab/110 in [-1, 1]. The encoder halves the image until the bottleneck is
2x2, so instance statistics are never taken over a single pixel. One MLP maps the color feature to the gamma
and beta of every AdaIN layer at once; with cond_dim 0 (the paper's Res-cGAN ablation) those are learned
constants.

Two baselines reuse the same U-Net: norm "batch" puts BatchNorm where AdaIN is (the pix2pix generator,
unconditioned), and head "bins" ends in 313 logits over the ab bins instead of 2 tanh channels (the
classification colorizer of Zhang, Isola & Efros 2016, decoded by networks.classification.annealed_mean).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from memopainter.color.bins import NUM_BINS
from memopainter.networks.validation import check_int

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
        """Normalise z (B, C, H, W) over space, then scale by gamma (B, C) and shift by beta (B, C)."""
        if z.dim() != 4 or z.shape[2] * z.shape[3] < 2:
            raise ValueError(f"AdaIN: z must be (B, C, H, W) with at least 2 pixels, got {tuple(z.shape)}")
        if gamma.shape != z.shape[:2] or beta.shape != z.shape[:2]:
            raise ValueError(
                f"AdaIN: gamma {tuple(gamma.shape)} and beta {tuple(beta.shape)} must be {tuple(z.shape[:2])}"
            )
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
    ) -> None:
        super().__init__()
        check_int("Generator", "image_size", image_size, MIN_IMAGE_SIZE)
        if image_size & (image_size - 1):
            raise ValueError(
                f"Generator: image_size must be a power of two >= {MIN_IMAGE_SIZE}, got {image_size}"
            )
        check_int("Generator", "cond_dim", cond_dim, 0)
        check_int("Generator", "base_channels", base_channels, 1)
        check_int("Generator", "mlp_hidden", mlp_hidden, 1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"Generator: dropout must be a probability in [0, 1), got {dropout!r}")
        if norm not in NORMS:
            raise ValueError(f"Generator: norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if head not in HEADS:
            raise ValueError(f"Generator: head must be one of {', '.join(HEADS)}, got {head!r}")
        if norm == "batch" and cond_dim != 0:
            raise ValueError(f"Generator: norm 'batch' is unconditioned and needs cond_dim 0, got {cond_dim}")
        self.image_size = image_size
        self.cond_dim = cond_dim
        self.base_channels = base_channels
        self.mlp_hidden = mlp_hidden
        self.dropout_p = float(dropout)
        self.norm = norm
        self.head = head
        self.cond_norm = bool(cond_norm) and cond_dim > 0

        depth = (image_size // BOTTLENECK_SIZE).bit_length() - 1  # = log2(image_size) - 1
        channels = [base_channels * min(2**i, CHANNEL_CAP) for i in range(depth)]  # encoder outputs
        self.encoder = nn.ModuleList()
        for i, out_ch in enumerate(channels):
            in_ch = 1 if i == 0 else channels[i - 1]
            # A bias before a norm would be removed by its mean subtraction; the first block has no norm.
            self.encoder.append(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=i == 0))
        # Decoder block j undoes encoder block depth-1-j; after the first, it also takes that level's skip.
        decoder_out = channels[-2::-1] + [HEAD_CHANNELS[head]]
        self.decoder = nn.ModuleList()
        for j, out_ch in enumerate(decoder_out):
            in_ch = channels[-1] if j == 0 else 2 * channels[depth - 1 - j]
            last = j == depth - 1
            self.decoder.append(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=last))
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
            return
        self.adain = AdaIN()
        self.adain_channels = list(self.norm_channels)
        style_dim = 2 * sum(self.adain_channels)
        if cond_dim > 0:
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
        else:
            # Res-cGAN: the same (gamma - 1, beta) layout, learned once for all images.
            self.affine = nn.Parameter(torch.zeros(style_dim))

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
        }

    @torch.no_grad()
    def fit_condition(self, features: torch.Tensor) -> None:
        """Centre and scale the MLP's input on training color features (N, cond_dim): mean 0, variance 1.

        The features of one data set share much (outlines, skin, a team color), so what tells two characters
        apart is a small part of each feature; centred and scaled, that part reaches the MLP at full strength.
        One scale for all dimensions: a per-bin scale would blow up bins that training never filled.
        """
        if not self.cond_norm:
            raise ValueError("Generator.fit_condition: this generator was built with cond_norm=False")
        if features.dim() != 2 or features.shape[1] != self.cond_dim or features.shape[0] < 1:
            raise ValueError(
                f"Generator.fit_condition: features must be (N, {self.cond_dim}), got {tuple(features.shape)}"
            )
        features = features.to(self.cond_mean)
        self.cond_mean.copy_(features.mean(0))
        spread = features.var(0, correction=0).mean() if features.shape[0] > 1 else torch.zeros(())
        self.cond_scale.copy_(torch.rsqrt(spread + 1e-12) if spread > 0 else torch.ones(()))

    def _styles(self, batch: int, cond: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(gamma, beta), each (B, C), for every AdaIN layer in forward order."""
        if self.mlp is not None:
            if cond is None:
                raise ValueError(f"Generator.forward: cond (B, {self.cond_dim}) is required, got None")
            if cond.dim() != 2 or cond.shape != (batch, self.cond_dim):
                raise ValueError(
                    f"Generator.forward: cond must be ({batch}, {self.cond_dim}), got {tuple(cond.shape)}"
                )
            if self.cond_norm:
                cond = (cond - self.cond_mean) * self.cond_scale  # (B, cond_dim), see fit_condition
            style = self.mlp(cond)  # (B, style_dim)
        else:
            if cond is not None:
                raise ValueError("Generator.forward: this generator has cond_dim 0 and takes cond=None")
            style = self.affine.expand(batch, -1)  # (B, style_dim)
        chunks = style.split([2 * c for c in self.adain_channels], dim=1)
        pairs = zip(chunks, self.adain_channels, strict=True)
        return [(1.0 + chunk[:, :c], chunk[:, c:]) for chunk, c in pairs]

    def _norms(self, batch: int, cond: torch.Tensor | None) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """Every norm layer in forward order, as a map (B, C, h, w) -> (B, C, h, w): AdaIN or BatchNorm."""
        if self.batch_norms is not None:
            if cond is not None:
                raise ValueError("Generator.forward: this generator has cond_dim 0 and takes cond=None")
            return list(self.batch_norms)
        return [partial(self.adain, gamma=gamma, beta=beta) for gamma, beta in self._styles(batch, cond)]

    def forward(self, L: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """L/100 (B, 1, S, S) and color feature (B, cond_dim) or None -> ab/110 (B, 2, S, S) in [-1, 1].

        With head "bins": raw logits (B, 313, S, S) instead, no tanh.
        """
        size = self.image_size
        if L.dim() != 4 or L.shape[1:] != (1, size, size):
            raise ValueError(f"Generator.forward: L must be (B, 1, {size}, {size}), got {tuple(L.shape)}")
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
            return x  # (B, 313, S, S) logits
        return torch.tanh(x)  # (B, 2, S, S)

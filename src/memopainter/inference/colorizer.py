"""The inference pipeline (paper Figs. 4 and 5): a trained MemoPainter and its query backbone, called.

    from memopainter.inference import Colorizer

    colorizer = Colorizer.from_pretrained("runs/first")  # a run folder or a checkpoint file
    top1, second, third = colorizer("frame.png", top_k=3)  # PIL images, the input's size and alpha

The top-k results are the colorings from the k best-matching memory slots (Fig. 5), best first; a palette
replaces the retrieved condition with colors the user picks. `colorize_each` is the one batch path that the
CLI, evaluation, the experiments and the web page all colorize through.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import islice, pairwise
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from memopainter.color.features import palette_condition
from memopainter.core.checkpoint import CheckpointError
from memopainter.core.model import MemoPainter, load_memopainter, predict_color, resolve_model_path
from memopainter.data.descriptors import lightness_histogram, parse_descriptors, query_features
from memopainter.data.lineart import lineart_input
from memopainter.inference import sequence
from memopainter.inference.fullres import PreparedImage, prepare_image
from memopainter.inference.inputs import ImageLike, PaletteLike, image_tensors, parse_palette
from memopainter.inference.results import IMAGE_ERRORS, INPUT_ERRORS, Colored, Failed, Prediction
from memopainter.inference.upsample import DEFAULT_UPSAMPLE, UPSAMPLERS
from memopainter.networks.backbones import Backbone, WeightsError, load_backbone


class Colorizer:
    """A trained MemoPainter ready for inference, with the frozen query backbone its memory keys came from."""

    def __init__(
        self, model: MemoPainter, backbone: Backbone | None, path: Path, device: torch.device
    ) -> None:
        self.model = model
        self.backbone = backbone  # None for a --no-memory model, which retrieves nothing
        self.path = path  # the checkpoint file it was loaded from
        self.device = device

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        weights: str | os.PathLike | None = None,
    ) -> Colorizer:
        """Load a run folder or checkpoint file, and the backbone it was trained with (by name, hash-checked).

        `weights` names the backbone weights file when it is not in the weights folders. A backbone whose
        installed weights differ from the ones recorded in the checkpoint is refused: the memory's keys only
        mean something in the feature space they were learned in.
        """
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device; use device='cpu'")
        file = resolve_model_path(path)
        model = load_memopainter(file, device=device)
        model.generator.eval()
        backbone = None
        if model.memory is not None:
            backbone = _recorded_backbone(model, file, weights, device)
        return cls(model, backbone, file, device)

    def with_model(self, model: MemoPainter, path: Path) -> Colorizer:
        """A colorizer of another bundle trained with the same backbone (e.g. a taught copy), sharing it."""
        return Colorizer(model, self.backbone, path, self.device)

    @property
    def image_size(self) -> int:
        """The square side the generator runs at."""
        return self.model.generator.image_size

    @property
    def feature(self) -> str:
        """The color feature of the memory and of palettes: "dist" or "rgb"."""
        return self.model.config.data.feature

    @property
    def has_memory(self) -> bool:
        """False for the no-memory ablation, which colorizes unconditioned."""
        return self.model.memory is not None

    def __call__(
        self,
        image: ImageLike,
        top_k: int = 1,
        palette: PaletteLike | None = None,
        upsample: str = DEFAULT_UPSAMPLE,
    ) -> list[Image.Image]:
        """Colorize one image: its colorings from the top-k memory slots (best first), or one from `palette`.

        `image` is a PIL image (EXIF orientation applied), a numpy array (H, W), (H, W, 3) or (H, W, 4) of
        uint8, uint16 or floats in [0, 1], a tensor (1, H, W), (3, H, W) or (4, H, W) in [0, 1], an image
        file path, or an (rgb (3, H, W), alpha (H, W) or None) pair as `load_image` returns.
        Only its lightness is used. Each result has the input's size and, when it has one, its alpha channel.
        `upsample` (one of inference.upsample.UPSAMPLERS) brings the colors to full resolution.
        """
        palette = self.check_request(top_k, palette, upsample)
        prepared = self.prepare(*image_tensors(image))
        return self.predict([prepared], int(top_k), palette).images(0, prepared, upsample)

    def colorize_each(
        self,
        images: Iterable[ImageLike],
        top_k: int = 1,
        palette: PaletteLike | None = None,
        *,
        batch_size: int = 8,
        upsample: str = DEFAULT_UPSAMPLE,
        keep_input: bool = False,
        check: Callable[[torch.Tensor, torch.Tensor | None], None] | None = None,
        condition: Callable[[object, torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None,
    ) -> Iterator[Colored | Failed]:
        """Colorize many images in batches (backbone and generator batched, full-size work per image).

        Yields, in input order, a `Colored` per image or a `Failed` for one that could not be read or
        colorized: one bad image never stops the others. `keep_input` keeps each full-size input in its
        result; `check(rgb, alpha)` may refuse an input by raising ValueError; `condition(source, rgb,
        alpha)` conditions each image on a color feature of its own (top-1 only) instead of a memory slot.
        """
        palette = self.check_request(top_k, palette, upsample)  # now, not at the first next()
        batch_size = _positive_int("batch_size", batch_size)
        if isinstance(images, (str, os.PathLike)):
            raise TypeError(f"colorize_each takes an iterable of images, got the one path {images!r}")
        request = (int(top_k), palette, upsample)
        return self._colorize_batches(iter(images), request, batch_size, keep_input, check, condition)

    def _colorize_batches(self, items, request, batch_size, keep_input, check, condition):
        """colorize_each's generator, over a checked request."""
        while batch := list(islice(items, batch_size)):
            loaded: list[Colored] = []
            conditions: list[torch.Tensor] = []
            failed: dict[int, Failed] = {}  # position in the batch -> why that input could not be loaded
            for position, source in enumerate(batch):
                try:
                    rgb, alpha = image_tensors(source)
                    if check is not None:
                        check(rgb, alpha)
                    own = condition(source, rgb, alpha) if condition is not None else None  # (V,)
                    # Full-size inputs are dropped unless asked for: memory grows with one image, not a batch.
                    kept = (rgb, alpha) if keep_input else (None, None)
                    loaded.append(Colored(source, self.prepare(rgb, alpha), [], None, None, *kept))
                    if own is not None:  # only once prepared: conditions stay aligned with `loaded`
                        conditions.append(own)
                except INPUT_ERRORS as error:
                    failed[position] = Failed(source, error)
            stacked = torch.stack(conditions) if conditions else None  # (B, V)
            finished = self._finish(loaded, request, stacked) if loaded else iter(())
            # The failures take their own places among the batch's results: everything in input order.
            for position in range(len(batch)):
                yield failed[position] if position in failed else next(finished)

    def _finish(
        self, loaded: list[Colored], request: tuple, conditions: torch.Tensor | None
    ) -> Iterator[Colored | Failed]:
        """Predict one loaded batch, then recombine it at full size image by image."""
        top_k, palette, upsample = request
        prediction = self.predict([c.prepared for c in loaded], top_k, palette, conditions)
        for i, colored in enumerate(loaded):
            try:
                colored.images = prediction.images(i, colored.prepared, upsample)
            except IMAGE_ERRORS as error:
                yield Failed(colored.source, error)
                continue
            if prediction.slots is not None:
                colored.slots, colored.scores = prediction.slots[i].tolist(), prediction.scores[i].tolist()
            yield colored

    def colorize_sequence(
        self,
        frames: Sequence[ImageLike],
        top_k: int = 1,
        palette: PaletteLike | None = None,
        *,
        upsample: str = DEFAULT_UPSAMPLE,
        smooth: bool = True,
        hold: bool = True,
        batch_size: int = 8,
    ) -> list[Colored]:
        """Colorize the frames of one sequence in order, all or nothing: one `Colored` per frame.

        With `smooth` and a model with memory, the sequence is colorized as a whole (see inference.sequence):
        the frames of a shot share their memory slot where that is right (with a palette every frame has
        the palette's colors already), and with `hold` too, within a shot, a pixel whose gray input holds
        still from frame to frame keeps its color, the k-th coloring's from the k-th coloring of the frame
        before, with a palette as without one. With smooth=False, or a model without memory (it has no query
        keys to find cuts with), each frame is colorized on its own exactly as colorize_each does. A frame
        that cannot be read or colorized raises ValueError("frame i: ...") with i counted from 0, and
        nothing is returned.
        """
        batch_size = _positive_int("batch_size", batch_size)
        palette = self.check_request(top_k, palette, upsample)
        top_k, frames = int(top_k), list(frames)
        if not smooth or not self.has_memory or (palette is not None and not hold):
            each = self.colorize_each(frames, top_k, palette, batch_size=batch_size, upsample=upsample)
            return sequence.all_or_nothing(each)
        return sequence.colorize_smoothed(self, frames, top_k, palette, upsample, batch_size, hold)

    @property
    def lineart(self) -> bool:
        """True for a model trained on line art (data.input "lineart")."""
        return self.model.config.data.input == "lineart"

    def prepare(self, rgb: torch.Tensor, alpha: torch.Tensor | None) -> PreparedImage:
        """An image (rgb (3, H, W), alpha (H, W) or None) reduced to the model's network inputs and its L.

        A line-art model takes line art as it is and any other image by its extracted lines
        (`PreparedImage.extracted`), which keep the image's alpha. Drawn line art is colored on white
        paper, opaque: its alpha, if any, is the ink's, and the outlines of drawings are too often open
        for the figure's to be found from it (filling what they enclose matched OpenMoji's silhouettes
        with a median IoU of 0.69); so the paper around it, and whatever its open outlines let into it,
        keeps the network's colors rather than one mean over all of it (`PreparedImage.open_paper`).
        """
        backbone_size = self.backbone.input_size if self.backbone is not None else None
        if not self.lineart:
            return prepare_image(rgb, alpha, self.image_size, backbone_size)
        lines, extracted = lineart_input(rgb, alpha)
        # A frame with nothing opaque (a blank frame of an animation, a faint sprite) has no ink whose alpha
        # this could be: it keeps its own, as any other input does.
        blank = alpha is not None and not bool((alpha >= 0.5).any())
        prepared = prepare_image(lines, alpha if extracted or blank else None, self.image_size, backbone_size)
        return replace(prepared, extracted=extracted, open_paper=not extracted)

    @torch.no_grad()
    def query_keys(self, prepared: list[PreparedImage]) -> torch.Tensor:
        """Unit query keys (B, key_dim) of prepared images: backbone then query head (paper eq. 2)."""
        if self.backbone is None:
            raise ValueError(f"{self.path}: trained without memory (--no-memory); it has no query network")
        batch = torch.stack([p.backbone_rgb for p in prepared]).to(self.device)  # (B, 3, s, s)
        batch = batch.contiguous(memory_format=torch.channels_last)  # as the weights, see _speed_up
        pooled = self.backbone(batch)  # (B, F)
        memory = self.model.config.memory
        histograms = torch.stack(
            [_lightness_histogram(p, memory.lightness_bins) for p in prepared]
        )  # (B, bins)
        descriptors = parse_descriptors(memory.descriptors)
        return self.model.query_head(query_features(pooled, histograms.to(pooled.device), descriptors))

    @torch.no_grad()
    def predict(
        self,
        prepared: list[PreparedImage],
        top_k: int = 1,
        palette: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
    ) -> Prediction:
        """Generator ab (B, k, 2, S, S) for prepared images, conditioned on their top-k slots or a palette.

        `palette` (n, 3) in [0, 1] as `check_request` returns it. `conditions` (B, value_dim) conditions
        each image on a color feature given outright (top-1 only), e.g. its own true feature, to measure
        what a perfect retrieval would give. `slots` (B, k) are memory slots chosen already (e.g. across a
        sequence): used instead of retrieving, so the backbone does not run and `scores` is None.
        """
        gray = torch.stack([p.net_gray for p in prepared]).to(self.device)  # (B, 1, S, S)
        batch = gray.shape[0]
        memory = self.model.memory
        scores = cond = None
        if conditions is not None:
            cond = conditions.to(self.device)
        elif palette is not None:
            cond = palette_condition(palette.to(self.device), self.feature).expand(batch, -1)  # (B, V)
        elif memory is not None:
            if slots is None:
                scores, slots = memory.retrieve(self.query_keys(prepared), top_k)  # (B, k)
            slots = slots.to(memory.values.device)
            cond = memory.values[slots].flatten(0, 1)  # (B * k, V)
            gray = gray.repeat_interleave(slots.shape[1], dim=0)  # (B * k, 1, S, S), image-major like cond
        ab, lightness = predict_color(self.model, gray, cond)  # (B * k, 2, S, S), (B * k, 1, S, S)
        if lightness is not None:
            lightness = lightness.view(batch, -1, *lightness.shape[1:])
        return Prediction(ab.view(batch, -1, *ab.shape[1:]), slots, scores, lightness)

    def check_request(
        self, top_k: int, palette: PaletteLike | None, upsample: str = DEFAULT_UPSAMPLE
    ) -> torch.Tensor | None:
        """Refuse what the model cannot do (top-k past its written slots, palettes or top-k without memory);
        returns the palette as colors (n, 3) in [0, 1], or None."""
        top_k = _positive_int("top_k", top_k)
        if upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLERS)}, got {upsample!r}")
        if not self.has_memory:
            if top_k > 1:
                raise ValueError(f"{self.path}: trained without memory (--no-memory); top_k must be 1")
            if palette is not None:
                raise ValueError(f"{self.path}: trained without memory (--no-memory); it takes no palette")
            return None
        if palette is not None and top_k > 1:
            raise ValueError("a palette gives one coloring; top_k must be 1 with a palette")
        filled = self.model.memory.num_filled
        if palette is None and top_k > filled:
            raise ValueError(f"{self.path}: top_k {top_k} is more than the {filled} written memory slots")
        if palette is None:
            return None
        if isinstance(palette, torch.Tensor):
            if palette.dim() != 2 or palette.shape[1] != 3 or not palette.is_floating_point():
                got = f"{palette.dtype} {tuple(palette.shape)}"
                raise ValueError(f"a palette tensor holds colors (n, 3) as floats, got {got}")
            return palette.to(torch.float32)
        return parse_palette(palette)


def _positive_int(name: str, value: object) -> int:
    """`value` as an int when it is an integer >= 1 (numpy's too); else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _recorded_backbone(
    memopainter: MemoPainter, file: Path, weights: str | os.PathLike | None, device: torch.device
) -> Backbone:
    """The query backbone named in the checkpoint, refused unless its weights hash to the recorded one."""
    name, expected = memopainter.backbone.get("name"), memopainter.backbone.get("sha256")
    if not name:
        raise CheckpointError(f"{file}: the model has a memory but no backbone name in its metadata")
    backbone = load_backbone(name, weights=weights, device=device)
    if backbone.weights_sha256 != expected:
        raise WeightsError(
            f"{file}: trained with {name} weights of sha256 {_short(expected)}, but the weights found "
            f"have {_short(backbone.weights_sha256)}; the memory's keys only fit the weights they were "
            "learned with (pass weights=/--weights with the original file)"
        )
    _speed_up(backbone)
    return backbone


def _speed_up(backbone: Backbone) -> None:
    """Fold every frozen BatchNorm into the convolution before it and keep the weights channels-last.

    Inference only (the backbone never trains): mobilenet_v2 at batch 8 on CPU runs about 2x faster, and its
    features move by about 1e-6 relative, far below what separates two memory keys.
    """
    for module in list(backbone.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        for (conv_name, conv), (norm_name, norm) in pairwise(list(module.named_children())):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(module, norm_name, nn.Identity())
    backbone.to(memory_format=torch.channels_last)


def _lightness_histogram(prepared: PreparedImage, bins: int) -> torch.Tensor:
    """The query's lightness histogram of a prepared image: its full-size L over its opaque pixels."""
    alpha = None if prepared.alpha is None else torch.from_numpy(prepared.alpha).float() / 255.0  # (H, W)
    return lightness_histogram(prepared.lightness, alpha, bins)


def _short(digest: str | None) -> str:
    """The first 16 hex digits of a digest, or 'none' for a backbone without a weights file."""
    return "none" if digest is None else f"{digest[:16]}..."

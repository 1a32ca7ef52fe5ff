"""What an evaluation measures: each test image's scores against its ground truth, and their averages.

Per image, over its opaque pixels (alpha >= 0.5) at full resolution:
- `delta_e2000` of the top-1 coloring (the primary metric, lower is better), `delta_e2000_per_k` of every
  top-k alternative and `delta_e2000_best_of_k`, their minimum (with top_k = 1 it equals `delta_e2000`);
- `psnr` of the RGB values, capped at PSNR_CAP dB so that identical images (infinite PSNR, which JSON
  cannot hold) still average to a number; `ssim`, null where no SSIM window fits (a side under 11 px, or no
  opaque pixel 5 px from the border); `colorfulness` of the output and `colorfulness_gt` of the truth;
- `lpips` of the top-1 coloring, only where LPIPS's weights exist. LPIPS cannot mask pixels, so both images
  are composited onto white first, and an image with a side under 31 px is bilinearly upscaled (both images
  alike) until its shorter side is 31 px, AlexNet's smallest input;
- `retrieved_class`: the class of the training image that wrote the top-1 memory slot.

`retrieval_top1_accuracy` (paper 4.1.3) is the share of test images whose top-1 slot was written by an image
of their own class, counted over the test images whose class folder names one of the model's classes; it
is null for a model without memory, a model trained without classes, or test images with no such class.
Averages are taken over the images where a metric is defined, and are null where it is nowhere defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from memopainter.data.images import composite_on_white
from memopainter.evaluation.flicker import mean_defined
from memopainter.evaluation.lpips import LPIPS, MIN_SIDE, lpips_distance
from memopainter.evaluation.metrics import colorfulness, delta_e2000, psnr, ssim

# dB, what identical images score instead of infinity. Colorings are far below it: even a single 8-bit level
# off in one channel of one pixel only reaches it in images of about 51,000 pixels or more.
PSNR_CAP = 100.0
AVERAGED = (
    "delta_e2000",
    "delta_e2000_best_of_k",
    "psnr",
    "ssim",
    "colorfulness",
    "colorfulness_gt",
    "lpips",
)


@dataclass(frozen=True)
class ImageMetrics:
    """The scores of one image's colorings against its ground truth."""

    delta_e2000_per_k: list[float]  # top-1 first
    psnr: float  # capped at PSNR_CAP
    ssim: float | None  # None where no SSIM window fits
    colorfulness: float
    colorfulness_gt: float
    lpips: float | None  # None without LPIPS weights

    @property
    def delta_e2000(self) -> float:
        """Mean CIEDE2000 of the top-1 coloring."""
        return self.delta_e2000_per_k[0]

    @property
    def delta_e2000_best_of_k(self) -> float:
        """Mean CIEDE2000 of the best of the top-k colorings."""
        return min(self.delta_e2000_per_k)


@dataclass(frozen=True)
class ImageScore:
    """One evaluated test image: where it is, its class, its metrics and what the memory retrieved for it."""

    path: str  # relative to the test folder, with '/' separators
    class_name: str | None  # its top-level sub-folder; None at the top level
    metrics: ImageMetrics
    slots: list[int] | None  # the top-k memory slots, best first; None without memory
    retrieved_class: str | None  # class of the image that wrote the top-1 slot, None if it had none
    retrieved_source: str | None  # that image's path relative to the training folder

    def to_json(self) -> dict:
        """The per_image entry of the JSON result."""
        m = self.metrics
        return {
            "path": self.path,
            "class": self.class_name,
            "delta_e2000": m.delta_e2000,
            "delta_e2000_best_of_k": m.delta_e2000_best_of_k,
            "delta_e2000_per_k": list(m.delta_e2000_per_k),
            "psnr": m.psnr,
            "ssim": m.ssim,
            "colorfulness": m.colorfulness,
            "colorfulness_gt": m.colorfulness_gt,
            "lpips": m.lpips,
            "retrieved_class": self.retrieved_class,
            "retrieved_source": self.retrieved_source,
            "slots": self.slots,
        }


@dataclass(frozen=True)
class Failure:
    """A test image that could not be evaluated, and why (one line)."""

    path: str  # relative to the test folder
    error: str


@dataclass(frozen=True)
class EvaluatedImages:
    """What a report shows of one test image, each at the image's own size."""

    gray: Image.Image  # the lightness the model was given
    colorings: list[Image.Image]  # top-1 first
    truth: Image.Image


@dataclass(frozen=True)
class SequenceScore:
    """One test animation colorized as a sequence: its scored frames, the flicker of each step, switches."""

    paths: list[str]  # relative to the test folder, in frame order
    flicker: list[float | None]  # per step between consecutive frames; None where no pixel is still
    switches: int  # steps whose top-1 slot differs from the previous frame's

    def to_json(self) -> dict:
        """The per_sequence entry of the JSON result."""
        return {"frames": self.paths, "flicker": mean_defined(self.flicker), "switches": self.switches}


@dataclass
class Evaluation:
    """The result of evaluating a model on a test folder."""

    model: str  # the checkpoint file
    test_dir: str
    top_k: int
    per_image: list[ImageScore]
    failures: list[Failure]
    model_classes: list[str]  # classes retrieval can be checked against; empty when it cannot
    lpips_unavailable: str | None  # why LPIPS did not run, None when it did
    sequences: list[SequenceScore] | None = None  # the animations, when evaluated as sequences

    def retrieval_scored(self) -> list[ImageScore]:
        """The images that count towards retrieval accuracy: those of a class the model knows."""
        known = set(self.model_classes)
        return [s for s in self.per_image if s.class_name is not None and s.class_name in known]

    def retrieval_top1_accuracy(self) -> float | None:
        """Share of scored images whose top-1 slot was written by an image of their class; None if none."""
        scored = self.retrieval_scored()
        if not scored:
            return None
        return sum(s.retrieved_class == s.class_name for s in scored) / len(scored)

    def average(self, name: str) -> float | None:
        """Mean of a per-image metric over the images where it is defined; None where it is nowhere."""
        values = [getattr(s.metrics, name) for s in self.per_image]
        values = [v for v in values if v is not None]
        return math.fsum(values) / len(values) if values else None

    def summary(self) -> dict:
        """Every field of the JSON result except per_image."""
        out: dict = {"images": len(self.per_image), "failed": len(self.failures)}
        out.update({name: self.average(name) for name in AVERAGED})
        out["lpips_unavailable"] = self.lpips_unavailable
        out["retrieval_top1_accuracy"] = self.retrieval_top1_accuracy()
        out["retrieval_images"] = len(self.retrieval_scored())
        if self.sequences is not None:
            out.update(self.sequence_summary())
        out["top_k"] = self.top_k
        out["psnr_cap"] = PSNR_CAP
        out["model"] = self.model
        out["test_dir"] = self.test_dir
        out["failures"] = [{"path": f.path, "error": f.error} for f in self.failures]
        return out

    def sequence_summary(self) -> dict:
        """Animations, their frames, mean flicker over every step, top-1 slot switches per 100 steps."""
        sequences = self.sequences or []
        steps = sum(max(len(s.paths) - 1, 0) for s in sequences)
        return {
            "sequences": len(sequences),
            "sequence_frames": sum(len(s.paths) for s in sequences),
            "flicker": mean_defined([value for s in sequences for value in s.flicker]),
            "switches_per_100_frames": 100.0 * sum(s.switches for s in sequences) / steps if steps else None,
        }

    def to_json(self) -> dict:
        """The whole JSON result: the summary, per_image and, for sequences, per_sequence."""
        out = {**self.summary(), "per_image": [s.to_json() for s in self.per_image]}
        if self.sequences is not None:
            out["per_sequence"] = [s.to_json() for s in self.sequences]
        return out


def measure(
    truth: torch.Tensor, alpha: torch.Tensor | None, colorings: list[torch.Tensor], lpips_model: LPIPS | None
) -> ImageMetrics:
    """Score colorings (each (3, H, W) in [0, 1], top-1 first) against the truth over alpha >= 0.5."""
    if not colorings:
        raise ValueError("measure: no colorings given")
    top1 = colorings[0]
    per_k = [delta_e2000(c, truth, alpha) for c in colorings]
    try:
        structural = ssim(top1, truth, alpha)
    except ValueError:  # too small, or no opaque window centre: SSIM is undefined, not an error
        structural = None
    lpips = None
    if lpips_model is not None:
        lpips = lpips_distance(lpips_model, *lpips_inputs(top1, truth, alpha))
    return ImageMetrics(
        per_k,
        min(psnr(top1, truth, alpha), PSNR_CAP),
        structural,
        colorfulness(top1, alpha),
        colorfulness(truth, alpha),
        lpips,
    )


def lpips_inputs(
    pred: torch.Tensor, truth: torch.Tensor, alpha: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both (3, H, W) images composited onto white, upscaled alike when a side is under MIN_SIDE px."""
    pred, truth = composite_on_white(pred, alpha), composite_on_white(truth, alpha)
    height, width = truth.shape[1:]
    if min(height, width) >= MIN_SIDE:
        return pred, truth
    scale = MIN_SIDE / min(height, width)
    size = (max(MIN_SIDE, math.ceil(height * scale)), max(MIN_SIDE, math.ceil(width * scale)))
    both = F.interpolate(torch.stack((pred, truth)), size=size, mode="bilinear", align_corners=False)
    return both[0].clamp(0.0, 1.0), both[1].clamp(0.0, 1.0)  # (3, h, w) each

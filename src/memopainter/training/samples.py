"""A fixed-input sample grid during training (GAN losses say little): gray | top-1 | top-2 | top-3 | truth."""

from __future__ import annotations

from pathlib import Path

import torch

from memopainter.core.model import MemoPainter, predict_color, retrieve_conditions
from memopainter.data.dataset import TrainingData
from memopainter.data.images import save_image
from memopainter.data.preprocess import AB_SCALE, lab_image
from memopainter.files import remove_leftovers

TOP_K = 3
SAMPLE_IMAGES = 8  # fixed training images shown in every sample grid


@torch.no_grad()
def sample_grid(
    model: MemoPainter, data: TrainingData, indices: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """One row per image: the input (gray or line art), the colorings from the top-1..3 memory slots, the
    ground truth."""
    gray = data.gray[indices].to(device)  # (N, 1, S, S)
    truth_lightness = gray if data.lightness is None else data.lightness[indices].to(device)

    def colored(cond: torch.Tensor | None) -> torch.Tensor:
        ab, lightness = predict_color(model, gray, cond)
        return lab_image(gray if lightness is None else lightness, ab)

    columns = [lab_image(gray, torch.zeros_like(gray).repeat(1, 2, 1, 1))]
    if model.memory is None:
        columns.append(colored(None))
    else:
        conds, _ = retrieve_conditions(model, data.query_features[indices].to(device), TOP_K)  # (N, k, V)
        columns += [colored(conds[:, j]) for j in range(conds.shape[1])]
    columns.append(lab_image(truth_lightness, data.ab[indices].to(device) * AB_SCALE))
    rows = torch.stack(columns, dim=1)  # (N, columns, 3, S, S)
    n, c, _, s, _ = rows.shape
    return rows.permute(2, 0, 3, 1, 4).reshape(3, n * s, c * s).cpu()


def save_sample_grid(model: MemoPainter, data: TrainingData, path: Path, device: torch.device) -> Path:
    """Write the grid of SAMPLE_IMAGES training images spread over the data (so over its classes) as a PNG."""
    indices = torch.linspace(0, len(data) - 1, min(SAMPLE_IMAGES, len(data))).round().long()
    remove_leftovers(path)  # the temp file of an earlier save of this grid that a kill cut short
    save_image(path, sample_grid(model, data, indices, device))
    return path

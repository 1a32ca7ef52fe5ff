"""Battle for Wesnoth's team color: the magenta pixels of unit sprites, recolored to one fixed team.

The game recolors, at run time, exactly the pixels whose RGB is one of the 19 colors of its "magenta" palette
(data/core/team-colors.cfg, [color_palette] magenta=...), whatever their alpha, and nothing else. Each palette
color goes to a color of the team's range by the game's recolor_range rule: the palette's first color is the
reference; a color at most as bright (mean of R, G, B) as the reference is blended from the range's min color
towards its mid color in proportion to its brightness, a brighter one from mid towards max. We apply the same
rule, with the same float32 arithmetic and truncation, for the game's default first team, "red" (mid FF0000,
max FFFFFF, min 000000), so every unit's team color is the same red ramp with the original shading.
"""

from __future__ import annotations

import numpy as np
import torch

# data/core/team-colors.cfg of Wesnoth 1.16, [color_palette] magenta; the first entry is the reference color.
MAGENTA_PALETTE = (
    0xF49AC1, 0x3F0016, 0x55002A, 0x690039, 0x7B0045, 0x8C0051, 0x9E005D, 0xB10069, 0xC30074, 0xD6007F,
    0xEC008C, 0xEE3D96, 0xEF5BA1, 0xF172AC, 0xF287B6, 0xF6ADCD, 0xF8C1D9, 0xFAD5E5, 0xFDE9F1,
)  # fmt: skip

# data/core/team-colors.cfg, [color_range] id=red: rgb=mid,max,min,minimap.
RED_RANGE = (0xFF0000, 0xFFFFFF, 0x000000)


def _channels(color: int) -> np.ndarray:
    return np.array([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=np.int64)


def recolor_map(
    palette: tuple[int, ...] = MAGENTA_PALETTE, color_range: tuple[int, int, int] = RED_RANGE
) -> dict[int, int]:
    """Wesnoth's recolor_range: each 0xRRGGBB of `palette` -> its color in `color_range` (mid, max, min)."""
    mid, high, low = (_channels(c).astype(np.float32) for c in color_range)
    reference = int(_channels(palette[0]).sum()) // 3
    mapping = {}
    for color in palette:
        brightness = int(_channels(color).sum()) // 3
        if reference and brightness <= reference:
            ratio = np.float32(brightness) / np.float32(reference)
            new = ratio * mid + (np.float32(1) - ratio) * low
        else:
            ratio = np.float32(255 - brightness) / np.float32(255 - reference)
            new = ratio * mid + (np.float32(1) - ratio) * high
        r, g, b = np.minimum(new.astype(np.int64), 255)  # truncation, as the game's integer cast
        mapping[color] = int(r) << 16 | int(g) << 8 | int(b)
    return mapping


def recolor_team_color(rgb: torch.Tensor, mapping: dict[int, int] | None = None) -> tuple[torch.Tensor, int]:
    """Recolor the team-color pixels of rgb (3, H, W) in [0, 1]; return the new rgb and the pixels changed."""
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be shaped (3, H, W), got {tuple(rgb.shape)}")
    mapping = recolor_map() if mapping is None else mapping
    keys = np.array(sorted(mapping), dtype=np.int64)
    values = np.array([mapping[k] for k in keys.tolist()], dtype=np.int64)
    pixels = (
        rgb.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.int64).numpy()
    )  # (3, H, W)
    packed = pixels[0] << 16 | pixels[1] << 8 | pixels[2]  # (H, W)
    slot = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    hit = keys[slot] == packed  # (H, W)
    if not hit.any():
        return rgb, 0
    new = values[slot[hit]]
    out = pixels.copy()
    out[0][hit], out[1][hit], out[2][hit] = (new >> 16) & 0xFF, (new >> 8) & 0xFF, new & 0xFF
    return torch.from_numpy(out.astype(np.float32) / np.float32(255.0)), int(hit.sum())

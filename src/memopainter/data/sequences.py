"""Image sequences: frames in their natural order, and the animations inside a folder of sprites.

Frame folders sort naturally (frame2 before frame10). Sprite sets name an animation's frames by a common
stem and a frame number (`thunderer-ne-bob3.png`, `malePerson_walk5.png`): `group_animations` gathers them
back into ordered sequences, one per animation of one class folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_NUMBERS = re.compile(r"(\d+)")
_FRAME_NUMBER = re.compile(r"^(?P<stem>.*?)[-_ ]?(?P<number>\d+)$")


def natural_key(name: str) -> tuple:
    """Sort key of a file name with its digit runs compared as numbers: frame2 before frame10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _NUMBERS.split(name))


def natural_sorted(paths: Iterable[Path]) -> list[Path]:
    """Paths in natural order of their names (then of their full path, for equal names)."""
    return sorted(paths, key=lambda p: (natural_key(p.name), natural_key(str(p))))


def animation_name(path: Path) -> tuple[str, int] | None:
    """(animation stem, frame number) of a numbered frame file, or None for a file without a frame number."""
    match = _FRAME_NUMBER.match(path.stem)
    if match is None or not match.group("stem"):
        return None
    return match.group("stem"), int(match.group("number"))


def group_animations(paths: Iterable[Path], min_frames: int = 3) -> list[list[Path]]:
    """The animations among `paths`: numbered frames of one stem in one folder, in frame order.

    Animations with fewer than `min_frames` frames, and files without a frame number, are left out. The
    result is sorted by folder, then stem, so that sequences of one class follow each other.
    """
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for path in paths:
        named = animation_name(path)
        if named is not None:
            groups.setdefault((str(path.parent), named[0]), []).append((named[1], path))
    return [
        [path for _, path in sorted(frames)]
        for _, frames in sorted(groups.items(), key=lambda item: (item[0][0], natural_key(item[0][1])))
        if len(frames) >= min_frames
    ]

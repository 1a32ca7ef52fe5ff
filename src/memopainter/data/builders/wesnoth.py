"""Battle for Wesnoth's unit sprites (Debian's wesnoth-1.16-data, GPL-2+), one class per unit.

The sprites come from an installed or extracted copy of the package, a .deb file, or `apt-get download` +
`dpkg -x` into cache_root()/downloads (only the unit images, the team-color definitions and the license
are kept there). Team-color pixels are recolored to one fixed red (see team_color.py) so that every class
keeps stable colors.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from memopainter.data.builders.common import (
    BuildError,
    Log,
    Manifest,
    atomic_dest,
    check_separate,
    class_counts,
    downloads_dir,
    manifest,
    one_torch_thread,
    quiet,
    write_manifest,
    write_png,
)
from memopainter.data.builders.team_color import RED_RANGE, recolor_map, recolor_team_color
from memopainter.data.images import ImageLoadError, list_images, load_image
from memopainter.files import atomic_folder

PACKAGE = "wesnoth-1.16-data"
UNITS = Path("usr/share/games/wesnoth/1.16/data/core/images/units")
TEAM_COLORS = Path("usr/share/games/wesnoth/1.16/data/core/team-colors.cfg")
DOC = Path("usr/share/doc/wesnoth-1.16-data")
KEPT = (UNITS, TEAM_COLORS, DOC / "copyright", DOC / "changelog.Debian.gz")

# Tokens of a sprite's file name that start its pose or frame suffix ("spearman-ne-attack-2" -> "spearman").
# Every word here ends some unit's name in wesnoth-1.16-data; any token holding a digit is a frame number too.
DIRECTIONS = frozenset({"n", "ne", "e", "se", "s", "sw", "w", "nw"})
POSE_WORDS = frozenset(
    {
        # animations
        "attack", "defend", "die", "dying", "death", "idle", "stand", "standing", "bob", "moving", "run",
        "fly", "flying", "takeoff", "hover", "rise", "dive", "float", "teleport", "taunt", "laugh",
        "victory", "recover", "lead", "leading", "throw", "kick", "blink",
        # weapons and attacks
        "bow", "crossbow", "sword", "blade", "spear", "javelin", "jarid", "mace", "staff", "dagger", "lance",
        "shield", "fist", "bite", "horn", "pincer", "stinger", "tail", "hand", "ftouch", "lightning", "wind",
        "fire", "magic", "melee", "ranged", "range", "impact", "pierce", "slash",
        # overlays and variants of one sprite
        "alone", "glow", "halo", "low", "mask", "shadow", "top", "torch", "water", "no",
    }
)  # fmt: skip

LICENSE = "GPL-2.0-or-later"


def unit_name(stem: str) -> str:
    """The unit of a sprite file stem: its name up to the first pose or frame token ("-"-separated)."""
    tokens = stem.split("-")
    end = 1  # the first token always names the unit: "fire" is the Fire Drake in drakes/fire.png
    while end < len(tokens) and not _is_pose(tokens[end]):
        end += 1
    return "-".join(tokens[:end])


def _is_pose(token: str) -> bool:
    return token in DIRECTIONS or token in POSE_WORDS or any(c.isdigit() for c in token)


def group_units(units_dir: Path) -> dict[str, list[Path]]:
    """Sprites by class "<faction>__<unit>", the faction being the top folder under `units_dir`."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for image in list_images(units_dir):
        relative = image.relative_to(units_dir)
        if len(relative.parts) < 2 or image.suffix.lower() != ".png":
            continue  # files beside the faction folders ("unknown-unit.png") belong to no unit
        groups[f"{relative.parts[0]}__{unit_name(image.stem)}"].append(image)
    return dict(sorted(groups.items()))


def _find_units(source: Path) -> tuple[Path, Path | None]:
    """(units folder, package root or None) of a --source: a package root or its units folder itself."""
    if (source / UNITS).is_dir():
        return source / UNITS, source
    if not source.is_dir():
        raise BuildError(f"{source}: --source is neither a folder nor a .deb file")
    # Only a shallow look: a wrong folder such as / must not be walked in full.
    if not any(sub.is_dir() and any(sub.glob("*.png")) for sub in source.iterdir()):
        raise BuildError(
            f"{source}: --source is neither a {PACKAGE} root (holding {UNITS}) nor its units folder "
            "(<faction>/<unit>.png)"
        )
    return source, None


def _package_version(root: Path | None) -> str:
    """The Debian version from the package's changelog.Debian.gz first line, or "unknown"."""
    if root is None:
        return "unknown"
    try:
        with gzip.open(root / DOC / "changelog.Debian.gz", "rt", encoding="utf-8") as changelog:
            first = changelog.readline()
    except (OSError, EOFError, UnicodeDecodeError):
        return "unknown"
    found = re.search(r"\(([^)]+)\)", first)
    return found.group(1) if found else "unknown"


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"`{' '.join(cmd)}` failed: {last}")


def _apt_download(folder: Path) -> Path:
    """`apt-get download wesnoth-1.16-data` into `folder`; returns the .deb file."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise BuildError(
            f"apt-get and dpkg are needed to fetch {PACKAGE}; on another system get its .deb from a Debian "
            "mirror and pass --source FILE.deb (or --source with an extracted copy)"
        )
    try:
        _run(["apt-get", "download", PACKAGE], cwd=folder)
    except BuildError as err:
        raise BuildError(f"{err}; if apt does not know the package, run `apt-get update` first") from err
    debs = sorted(folder.glob(f"{PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise BuildError(f"`apt-get download {PACKAGE}` gave {len(debs)} .deb files, expected 1")
    return debs[0]


def _dpkg_extract(deb: Path, folder: Path) -> None:
    """`dpkg -x DEB FOLDER`: unpack a package's files without installing it."""
    if shutil.which("dpkg") is None:
        raise BuildError(f"{deb}: dpkg is needed to unpack a .deb; pass --source with an extracted copy")
    _run(["dpkg", "-x", str(deb), str(folder)])


def _keep_subset(unpacked: Path, root: Path) -> None:
    """Move the parts of an unpacked package the builder reads (KEPT) from `unpacked` into `root`."""
    if not (unpacked / UNITS).is_dir():
        raise BuildError(f"the unpacked package has no {UNITS}; not {PACKAGE}?")
    for part in KEPT:
        if (unpacked / part).exists():
            (root / part).parent.mkdir(parents=True, exist_ok=True)
            os.rename(unpacked / part, root / part)


def wesnoth_package(log: Log = quiet) -> Path:
    """The cached unpacked subset of wesnoth-1.16-data, fetched by apt-get download + dpkg -x on first use."""
    cached = downloads_dir() / PACKAGE
    if (cached / UNITS).is_dir():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {PACKAGE} with apt-get download (about 146 MB, once) into {cached.parent}")
    # Scratch space beside the cache, so that moving the kept parts out of it stays on one file system.
    with (
        tempfile.TemporaryDirectory(dir=cached.parent, prefix=f".{PACKAGE}-") as scratch,
        atomic_folder(cached) as subset,
    ):
        deb = _apt_download(Path(scratch))
        _dpkg_extract(deb, Path(scratch) / "unpacked")
        _keep_subset(Path(scratch) / "unpacked", subset)
    return cached


def _resolve_source(source: Path | None, dest: Path, temp: Path, log: Log) -> tuple[Path, Path | None]:
    if source is None:
        root = wesnoth_package(log)
        return root / UNITS, root
    if source.is_file() and source.suffix == ".deb":
        _dpkg_extract(source, temp)
        if not (temp / UNITS).is_dir():
            raise BuildError(f"{source}: holds no {UNITS}; not {PACKAGE}?")
        return temp / UNITS, temp
    if not source.exists():
        raise BuildError(f"{source}: --source does not exist")
    units_dir, root = _find_units(source)
    check_separate(units_dir, dest, "the units folder of --source")
    return units_dir, root


def build_wesnoth(
    dest: Path,
    source: Path | None = None,
    min_frames: int = 8,
    max_units: int | None = None,
    seed: int = 0,
    force: bool = False,
    log: Log = quiet,
    progress: bool = False,
) -> Manifest:
    """Write one folder of sprites per unit (team color made red) plus dataset.json; return its body.

    Units with fewer than `min_frames` sprites are left out; `max_units` keeps that many of the rest, drawn
    at random with `seed`.
    """
    if min_frames < 1:
        raise BuildError(f"--min-frames must be at least 1, got {min_frames}")
    if max_units is not None and max_units < 1:
        raise BuildError(f"--max-units must be at least 1, got {max_units}")
    dest = Path(dest)
    options = {
        "source": str(source) if source is not None else None,
        "min_frames": min_frames,
        "max_units": max_units,
        "seed": seed,
    }
    with tempfile.TemporaryDirectory(prefix="memopainter-deb-") as unpack:
        units_dir, root = _resolve_source(
            Path(source) if source is not None else None, dest, Path(unpack), log
        )
        groups = group_units(units_dir)
        eligible, chosen = _choose_units(units_dir, groups, min_frames, max_units, seed)
        with atomic_dest(dest, force) as temp, one_torch_thread():
            written = _write_units(temp, {name: groups[name] for name in chosen}, units_dir, progress)
            body = manifest(
                "wesnoth",
                options,
                class_counts(temp),
                **_manifest_fields(root, written),
                units_found=len(groups),
                units_eligible=len(eligible),
                unreadable=written.unreadable,
            )
            write_manifest(temp, body)
    return body


def _choose_units(
    units_dir: Path, groups: dict[str, list[Path]], min_frames: int, max_units: int | None, seed: int
) -> tuple[list[str], list[str]]:
    """(units with `min_frames` sprites or more, the units kept among them)."""
    if not groups:
        raise BuildError(f"{units_dir}: no unit sprites (<faction>/<unit>[-pose].png) in it")
    eligible = [name for name, files in groups.items() if len(files) >= min_frames]
    if not eligible:
        raise BuildError(f"{units_dir}: no unit has --min-frames {min_frames} sprites or more")
    if max_units is not None and max_units < len(eligible):
        return eligible, sorted(random.Random(seed).sample(eligible, max_units))
    return eligible, eligible


@dataclass
class _Written:
    """What writing the sprites found: the team-color mapping used, what it changed, what was unreadable."""

    mapping: dict[int, int]
    unreadable: list[dict[str, str]] = field(default_factory=list)
    recolored_pixels: int = 0
    recolored_images: int = 0


def _write_units(folder: Path, units: dict[str, list[Path]], units_dir: Path, progress: bool) -> _Written:
    """Write folder/<unit>/<sprite>.png for each unit, its team color made red."""
    written = _Written(recolor_map())
    for name in _progress(list(units), progress):
        for file in units[name]:
            try:
                rgb, alpha = load_image(file)
            except ImageLoadError as err:
                written.unreadable.append(
                    {"path": file.relative_to(units_dir).as_posix(), "problem": err.problem}
                )
                continue
            rgb, changed = recolor_team_color(rgb, written.mapping)
            written.recolored_pixels += changed
            written.recolored_images += changed > 0
            target = folder / name / file.name
            if target.exists():
                raise BuildError(f"{file}: a second sprite named {file.name} in unit {name}")
            write_png(target, rgb, alpha)
    return written


def _manifest_fields(root: Path | None, written: _Written) -> dict[str, Any]:
    """The fields of dataset.json that say where the sprites come from, their license, and the recoloring."""
    return {
        "source": f"Battle for Wesnoth unit sprites, Debian package {PACKAGE}, {UNITS}",
        "version": _package_version(root),
        "license": LICENSE,
        "license_note": "Battle for Wesnoth's art is GPL-2+; see the package's copyright file "
        f"({DOC / 'copyright'}). Datasets built from it stay under the GPL.",
        "how": "one class <faction>__<unit> per unit: its sprites anywhere under units/<faction>/, "
        "the unit being the file name up to its first pose or frame token (memopainter.data."
        "builders.wesnoth.unit_name); team color recolored; every image re-saved as an 8-bit PNG",
        "team_color": {
            "rule": "pixels whose RGB is exactly one of the 19 colors of the game's magenta "
            "team-color palette (data/core/team-colors.cfg) are mapped by the game's own "
            "recolor_range onto the 'red' team range; alpha and all other pixels untouched",
            "range": "mid {:06X}, max {:06X}, min {:06X}".format(*RED_RANGE),
            "mapping": {f"{k:06X}": f"{v:06X}" for k, v in written.mapping.items()},
            "recolored_images": written.recolored_images,
            "recolored_pixels": written.recolored_pixels,
        },
    }


def _progress(items: list[str], enabled: bool) -> Iterable[str]:
    if not enabled:
        return items
    return tqdm(items, unit="unit", dynamic_ncols=True, leave=False)

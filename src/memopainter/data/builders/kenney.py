"""Kenney's CC0 sprites from inside the arcade 3.3.3 wheel, grouped into classes whose images share colors.

The wheel is fetched from PyPI with `pip download` (never installed), cached under cache_root()/downloads,
and read straight from the zip; `source` may name that wheel or an extracted copy instead.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from memopainter.data.builders.common import (
    BuildError,
    Download,
    Log,
    Manifest,
    atomic_dest,
    check_separate,
    class_counts,
    fetch_once,
    manifest,
    one_torch_thread,
    quiet,
    write_manifest,
    write_png,
)
from memopainter.data.images import pil_to_tensors
from memopainter.downloads import DownloadError, pip_download_wheel

ARCADE_REQUIREMENT = "arcade==3.3.3"
ARCADE_WHEEL = "arcade-3.3.3-py3-none-any.whl"
ARCADE_SHA256 = "25f4e0e5b8bcbe7a7d087c0a23b19e9f423b0c70ec00945c8712c9a3e541ebd2"
IMAGES = PurePosixPath("arcade/resources/assets/images")
LICENSE_FILE = "License.txt"
VERSION_FILE = PurePosixPath("arcade/VERSION")


@dataclass(frozen=True)
class KenneyClass:
    """One class: the PNGs directly in `folder` (under the images root) whose stem fully matches `pattern`."""

    folder: str
    pattern: str

    def matches(self, relative: PurePosixPath) -> bool:
        """Whether an image path relative to the images root belongs to this class."""
        return (
            str(relative.parent) == self.folder
            and relative.suffix == ".png"
            and re.fullmatch(self.pattern, relative.stem) is not None
        )


def _character(folder: str, prefix: str) -> KenneyClass:
    return KenneyClass(f"animated_characters/{folder}", rf"{prefix}_\w+")


def _terrain(family: str) -> KenneyClass:
    # "grassHalf_left" and "grassCenter" are the family; "grass_sprout" and "snow_pile" are props.
    return KenneyClass("tiles", rf"{family}([A-Z]\w*)?")


def _tank(color: str) -> KenneyClass:
    # Barrels, body (plain and outlined) and the assembled tank of one color.
    return KenneyClass(
        "topdown_tanks", rf"tank{color.title()}_barrel\d(_outline)?|tankBody_{color}(_outline)?|tank_{color}"
    )


# Checked against arcade 3.3.3's images: 28 classes, 344 images. Left out, as their images share no palette:
# enemies and items other than gold coins (one sprite per color), tankBody_bigRed and tankBody_huge (gray
# bodies), the grass-to-sand and road-to-dirt transition tiles, the joker, backgrounds and sprite sheets.
KENNEY_CLASSES: dict[str, KenneyClass] = {
    "char_female_adventurer": _character("female_adventurer", "femaleAdventurer"),
    "char_female_person": _character("female_person", "femalePerson"),
    "char_male_adventurer": _character("male_adventurer", "maleAdventurer"),
    "char_male_person": _character("male_person", "malePerson"),
    "char_robot": _character("robot", "robot"),
    "char_zombie": _character("zombie", "zombie"),
    "terrain_dirt": _terrain("dirt"),
    "terrain_grass": _terrain("grass"),
    "terrain_planet": _terrain("planet"),
    "terrain_sand": _terrain("sand"),
    "terrain_snow": _terrain("snow"),
    "terrain_stone": _terrain("stone"),
    "tank_blue": _tank("blue"),
    "tank_dark": KenneyClass(
        "topdown_tanks", r"tankDark_barrel\d(_outline)?|tankBody_dark(Large)?(_outline)?|tank_dark"
    ),
    "tank_green": _tank("green"),
    "tank_red": _tank("red"),
    "tank_sand": _tank("sand"),
    "card_clubs": KenneyClass("cards", r"cardClubs([2-9]|10|[AJQK])"),
    "card_diamonds": KenneyClass("cards", r"cardDiamonds([2-9]|10|[AJQK])"),
    "card_hearts": KenneyClass("cards", r"cardHearts([2-9]|10|[AJQK])"),
    "card_spades": KenneyClass("cards", r"cardSpades([2-9]|10|[AJQK])"),
    "cardback_blue": KenneyClass("cards", r"cardBack_blue\d"),
    "cardback_green": KenneyClass("cards", r"cardBack_green\d"),
    "cardback_red": KenneyClass("cards", r"cardBack_red\d"),
    "alien_blue": KenneyClass("alien", r"alienBlue_\w+"),
    "topdown_grass_road": KenneyClass(
        "topdown_tanks",
        r"tileGrass[12]|tileGrass_road(Corner(LL|LR|UL|UR)|Crossing(Round)?|East|North|Split[ENSW])",
    ),
    "topdown_sand_road": KenneyClass(
        "topdown_tanks",
        r"tileSand[12]|tileSand_road(Corner(LL|LR|UL|UR)|Crossing(Round)?|East|North|Split[ENSW])",
    ),
    "coin_gold": KenneyClass("items", r"coinGold(_(ll|lr|ul|ur))?|gold_[1-4]"),
}


class _Source:
    """Kenney's images in the arcade wheel (zip) or an extracted copy, by path relative to the images root."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self.images_dir: Path | None = None  # set for an extracted copy
        self._folder = path
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as err:
                raise BuildError(f"{path}: not a wheel (zip) file ({err})") from err
            prefix = f"{IMAGES}/"
            self._names = {n[len(prefix) :] for n in self._zip.namelist() if n.startswith(prefix)}
            self._version = (
                self._zip.read(str(VERSION_FILE)) if str(VERSION_FILE) in self._zip.namelist() else None
            )
        elif path.is_dir():
            # The wheel's extracted root, or its images folder itself.
            images = path / IMAGES if (path / IMAGES).is_dir() else path
            self.images_dir = self._folder = images
            if not (images / "animated_characters").is_dir():
                raise BuildError(f"{path}: neither an extracted arcade wheel nor its {IMAGES} folder")
            self._names = {f.relative_to(images).as_posix() for f in images.rglob("*") if f.is_file()}
            version = images.parent.parent.parent / "VERSION"  # images -> assets -> resources -> arcade
            self._version = version.read_bytes() if version.is_file() else None
        else:
            raise BuildError(f"{path}: --source does not exist")

    def images(self) -> list[PurePosixPath]:
        """Paths of the PNGs under the images root, relative to it, sorted."""
        return sorted(PurePosixPath(n) for n in self._names if n.endswith(".png"))

    def read(self, name: PurePosixPath) -> bytes | None:
        """The bytes of one file under the images root, or None when absent."""
        if str(name) not in self._names:
            return None
        if self._zip is None:
            return (self._folder / name).read_bytes()
        try:
            return self._zip.read(f"{IMAGES}/{name}")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise BuildError(
                f"{self.path}: {IMAGES / name} is damaged in the wheel ({err}); delete the wheel to download "
                "it again, or pass another --source"
            ) from err

    def version(self) -> str:
        """arcade's version from its VERSION file, or "unknown" when the source has none."""
        return self._version.decode("utf-8", "replace").strip() if self._version is not None else "unknown"

    def close(self) -> None:
        """Close the wheel, if one is open."""
        if self._zip is not None:
            self._zip.close()


def _pip_download(requirement: str, folder: Path) -> None:
    """Download one wheel from the package index into `folder`; errors say how to work offline."""
    try:
        pip_download_wheel(requirement, folder)
    except DownloadError as error:
        raise BuildError(f"{error}; pass --source WHEEL_OR_DIR to work offline") from error


def arcade_wheel(log: Log = quiet) -> Path:
    """The cached arcade 3.3.3 wheel, downloaded with pip (and its SHA-256 checked) on first use."""
    download = Download("arcade", ARCADE_WHEEL, ARCADE_SHA256, "pip download", ARCADE_REQUIREMENT, "43 MB")
    return fetch_once(download, lambda folder: _pip_download(ARCADE_REQUIREMENT, folder), log)


def group_images(images: list[PurePosixPath]) -> dict[str, list[PurePosixPath]]:
    """Each class of KENNEY_CLASSES with its images (relative to the images root), in sorted order."""
    groups: dict[str, list[PurePosixPath]] = {name: [] for name in KENNEY_CLASSES}
    for image in images:
        owners = [name for name, rule in KENNEY_CLASSES.items() if rule.matches(image)]
        if len(owners) > 1:
            raise BuildError(f"{image}: claimed by more than one Kenney class ({', '.join(owners)})")
        if owners:
            groups[owners[0]].append(image)
    return groups


def build_kenney(dest: Path, source: Path | None = None, force: bool = False, log: Log = quiet) -> Manifest:
    """Write Kenney's sprites as DEST/<class>/<name>.png plus dataset.json; return the dataset.json body."""
    dest = Path(dest)
    source = Path(source) if source is not None else None
    package = _Source(source if source is not None else arcade_wheel(log))
    try:
        if package.images_dir is not None:
            check_separate(package.images_dir, dest, "the images folder of --source")
        groups = group_images(package.images())
        empty = [name for name, files in groups.items() if not files]
        if empty:
            raise BuildError(
                f"{package.path}: no images for class {empty[0]!r} ({len(empty)} classes empty); "
                f"not the assets of {ARCADE_REQUIREMENT}?"
            )
        license_text = package.read(PurePosixPath(LICENSE_FILE))
        if license_text is None:
            raise BuildError(
                f"{package.path}: no {IMAGES / LICENSE_FILE}; not the assets of {ARCADE_REQUIREMENT}?"
            )
        with atomic_dest(dest, force) as temp, one_torch_thread():
            for name, files in groups.items():
                for file in files:
                    _copy_png(package, file, temp / name / file.name)
            body = manifest(
                "kenney",
                {"source": str(source) if source is not None else None},
                class_counts(temp),
                source=f"Kenney sprites in the {ARCADE_REQUIREMENT} wheel from PyPI, {IMAGES}/",
                version=package.version(),
                license="CC0-1.0",
                license_text=license_text.decode("utf-8", "replace").strip(),
                how="one class per animated character and per sprite group sharing one palette "
                "(memopainter.data.builders.kenney.KENNEY_CLASSES); every image re-saved as an 8-bit PNG",
                files={name: [str(f) for f in files] for name, files in groups.items()},
            )
            write_manifest(temp, body)
    finally:
        package.close()
    return body


def _copy_png(package: _Source, name: PurePosixPath, path: Path) -> None:
    try:
        with Image.open(io.BytesIO(package.read(name) or b""), formats=["PNG"]) as image:
            image.load()
            rgb, alpha = pil_to_tensors(image)
    except (OSError, ValueError, SyntaxError, zipfile.BadZipFile) as err:
        raise BuildError(f"{package.path}: {IMAGES / name} is not a readable PNG ({err})") from err
    write_png(path, rgb, alpha)

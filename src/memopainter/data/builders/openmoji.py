"""OpenMoji's skin-tone emoji rendered from SVG at high resolution (npm's openmoji 17.0.0, CC BY-SA 4.0).

Class rule: one class per emoji that OpenMoji draws in the five single skin tones, holding its six versions:
the default (yellow) one and the light, medium-light, medium, medium-dark and dark ones. These are the entries
of data/openmoji.json with skintone_combination "single", grouped by skintone_base_hexcode: one character in
its color variants, the line art the same in all six. Emoji without tones (no color variants) and the
two-person emoji in two different tones (skintone_combination "multiple", e.g. 20 mixes of a handshake) are
left out, so every class holds the same six variants. The class folder is the base emoji's annotation made
file-safe (emoji.file_stem: "waving_hand"), each image its OpenMoji hexcode ("1F44B-1F3FD.png").

Layout: DEST/color/<class>/<hexcode>.png from color/svg/ and DEST/lineart/<class>/<hexcode>.png from the
black line-art black/svg/ under the same names, each folder with a dataset.json of its own, so that
`memopainter train DEST/color` and `memopainter data split DEST/color ...` take it as any class-folder data
set; DEST/dataset.json describes the whole build and DEST/LICENSE.txt is the package's CC BY-SA 4.0 text.
Every SVG is rendered by resvg (PyPI's resvg-py, the optional extra `svg`) to a SIZE x SIZE 8-bit RGBA PNG,
its transparent background kept, scaled to fit and centred. The tarball is fetched with `npm pack` (never
installed), cached under cache_root()/downloads with its SHA-256 pinned, and read straight from the .tgz;
`source` may name that tarball or an extracted copy instead.
"""

from __future__ import annotations

import importlib
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from PIL import Image
from tqdm import tqdm

from memopainter.data.builders.common import (
    BuildError,
    Log,
    Manifest,
    atomic_dest,
    class_counts,
    manifest,
    quiet,
    write_manifest,
)
from memopainter.data.builders.emoji import file_stem
from memopainter.data.builders.npm import NpmPackage, PackageSource, open_package

OPENMOJI_SHA256 = "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68"
# Paths relative to the package root, which is package/ inside the tarball.
COLOR_SVG = PurePosixPath("color/svg")
BLACK_SVG = PurePosixPath("black/svg")
METADATA = "data/openmoji.json"
LICENSE_FILE = "LICENSE.txt"
# Of the tarball's files only the SVGs of the two trees are read (42 MB), besides the metadata and license.
NPM = NpmPackage(
    "openmoji",
    "17.0.0",
    size="4 MB",
    metadata=METADATA,
    kind="emoji",
    folders=(COLOR_SVG, BLACK_SVG),
    files=(LICENSE_FILE,),
    suffix=".svg",
)
LICENSE = "CC BY-SA 4.0"
LICENSE_URL = "https://creativecommons.org/licenses/by-sa/4.0/"
ATTRIBUTION = "OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"
ATTRIBUTION_URL = "https://openmoji.org"
SVG_EXTRA = "pip install 'memopainter[svg]'"

DEFAULT_SIZE = 512
SIZES = range(8, 4097)  # below 8 px nothing is recognisable; above 4096 a build fills tens of GB
MAX_ASPECT = 16  # OpenMoji's drawings are square; a long thin one is no emoji, and would render huge
COLOR, LINEART = "color", "lineart"  # DEST's two trees, same classes and file names
# Class member -> openmoji.json's "skintone" of that version ("" for the default, yellow one).
TONES: dict[str, str] = {
    "default": "",
    "light": "1",
    "medium-light": "2",
    "medium": "3",
    "medium-dark": "4",
    "dark": "5",
}

_HEXCODE = re.compile(r"[0-9A-F]{2,6}(-[0-9A-F]{2,6})*")  # also keeps a hexcode from naming another path


@dataclass(frozen=True)
class Character:
    """One emoji drawn in all six tones: its class folder, base annotation and hexcode, and each tone's."""

    name: str
    annotation: str
    hexcode: str
    images: dict[str, str]  # tone -> hexcode, the file stem of its SVGs and of its PNGs


def _tone_groups(entries: list[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """openmoji.json's single-tone entries: base hexcode -> tone -> entry, bases in the file's order."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    tone_of = {str(value): tone for tone, value in TONES.items()}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("skintone_combination") != "single":
            continue
        base, hexcode = str(entry.get("skintone_base_hexcode") or ""), str(entry.get("hexcode") or "")
        tone = tone_of.get(str(entry.get("skintone")))
        if tone is None or not _HEXCODE.fullmatch(base) or not _HEXCODE.fullmatch(hexcode):
            continue
        if (tone == "default") != (hexcode == base):  # the default version is the base emoji itself
            continue
        groups.setdefault(base, {}).setdefault(tone, entry)
    return groups


def skin_tone_classes(entries: list[Any]) -> list[Character]:
    """The emoji of openmoji.json drawn in all six tones, in its order, each with a unique safe class name."""
    chosen: list[Character] = []
    used: set[str] = set()
    for base, tones in _tone_groups(entries).items():
        if set(tones) != set(TONES):
            continue
        annotation = str(tones["default"].get("annotation") or "")
        stem = file_stem(annotation) or file_stem(base)
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}_{n}"
        used.add(name)
        images = {tone: str(tones[tone]["hexcode"]) for tone in TONES}
        chosen.append(Character(name, annotation, base, images))
    return chosen


def choose_classes(characters: list[Character], max_classes: int | None) -> list[Character]:
    """`max_classes` of the characters evenly spaced over OpenMoji's order (hands, people, roles, sports,
    couples), so that a small set still spans them; all when None or not fewer."""
    if max_classes is None or max_classes >= len(characters):
        return characters
    return [characters[i * len(characters) // max_classes] for i in range(max_classes)]


def load_resvg() -> ModuleType:
    """The resvg_py module, or a BuildError saying how to install the optional extra that brings it."""
    try:
        return importlib.import_module("resvg_py")
    except ImportError as err:
        raise BuildError(f"rendering SVGs needs the optional rasterizer resvg-py: {SVG_EXTRA}") from err


def render_svg(resvg: ModuleType, svg: bytes, size: int) -> bytes:
    """`svg` as a size x size RGBA PNG: scaled to fit, centred, transparent around it; ValueError if it will
    not render. OpenMoji's square SVGs come back as resvg wrote them."""
    # System fonts are skipped: OpenMoji draws no text, and fonts that differ between machines would make
    # the same build give different pixels.
    text = svg.decode("utf-8")
    width, height = _view_box(text)
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ValueError(f"its viewBox is {width:g} x {height:g}: not a drawing of an emoji's proportions")
    fit = {"width": size} if width >= height else {"height": size}  # the longer side fits: no huge render
    png = resvg.svg_to_bytes(svg_string=text, skip_system_fonts=True, **fit)
    with Image.open(io.BytesIO(png)) as image:
        if image.size == (size, size) and image.mode == "RGBA":
            return png
        canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        canvas.paste(image.convert("RGBA"), ((size - image.width) // 2, (size - image.height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def _view_box(text: str) -> tuple[float, float]:
    """The width and height of the root element's viewBox (ValueError without a usable one)."""
    root = re.search(r"<svg\b[^>]*>", text)
    box = re.search(r"""\bviewBox\s*=\s*["']([^"']*)["']""", root.group(0)) if root else None
    if box is None:
        raise ValueError("no viewBox on its <svg> element")
    numbers = box.group(1).replace(",", " ").split()
    width, height = (float(n) for n in numbers[2:4]) if len(numbers) == 4 else (0.0, 0.0)
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise ValueError(f"its viewBox {box.group(1)!r} has no positive width and height")
    return width, height


def _check_options(size: int, max_classes: int | None) -> None:
    if size not in SIZES:
        raise BuildError(f"--size must be from {SIZES.start} to {SIZES.stop - 1} px, got {size}")
    if max_classes is not None and max_classes < 1:
        raise BuildError(f"--max-classes must be at least 1, got {max_classes}")


def build_openmoji(
    dest: Path,
    source: Path | None = None,
    size: int = DEFAULT_SIZE,
    force: bool = False,
    max_classes: int | None = None,
    log: Log = quiet,
    progress: bool = False,
) -> Manifest:
    """Write DEST/color/<class>/<hexcode>.png, DEST/lineart/... and the dataset.json files; DEST's body.

    A character one of whose twelve SVGs is missing or does not render is left out of both trees (listed in
    dataset.json), so that every class holds its six tones in color and in line art.
    """
    _check_options(size, max_classes)
    resvg = load_resvg()  # before any download: a missing extra is said at once
    dest = Path(dest)
    source = Path(source) if source is not None else None
    package = open_package(NPM, OPENMOJI_SHA256, source, dest, log)
    entries, characters = package.select(skin_tone_classes, "has all six skin tones")
    chosen = choose_classes(characters, max_classes)
    log(f"rendering {len(chosen)} emoji x 6 skin tones at {size} px, in color and line art")
    options = {
        "source": str(source) if source is not None else None,
        "size": size,
        "max_classes": max_classes,
    }
    with atomic_dest(dest, force) as temp:
        found = _render_all(package, chosen, resvg, size, temp, progress)
        if not found.kept:
            raise BuildError(
                f"{package.path}: none of the {len(chosen)} emoji with six skin tones has all its SVGs "
                f"under package/{COLOR_SVG}/ and package/{BLACK_SVG}/ renderable"
            )
        fields = _manifest_fields(package, resvg, size)
        counts = {"emoji_in_metadata": len(entries), "emoji_with_six_tones": len(characters)}
        body = _write_manifests(temp, options, fields, counts, found)
        license_text = package.read(LICENSE_FILE)
        if license_text:
            (temp / LICENSE_FILE).write_bytes(license_text)
    return body


def _write_manifests(
    folder: Path, options: dict[str, Any], fields: dict[str, Any], counts: dict[str, int], found: _Rendered
) -> Manifest:
    """Write the dataset.json of each tree and DEST's own, which lists every character; DEST's body."""
    for part, pair in ((COLOR, LINEART), (LINEART, COLOR)):
        classes = class_counts(folder / part)
        write_manifest(folder / part, manifest("openmoji", options, classes, **fields, part=part, pair=pair))
    body = manifest(
        "openmoji",
        options,
        class_counts(folder / COLOR),
        **fields,
        lineart_images=sum(class_counts(folder / LINEART).values()),
        **counts,
        missing_svgs=found.missing,
        unreadable=found.unreadable,
        characters={
            c.name: {"annotation": c.annotation, "hexcode": c.hexcode, "images": c.images} for c in found.kept
        },
    )
    write_manifest(folder, body)
    return body


@dataclass
class _Rendered:
    """The characters written to both trees, and why the others were left out."""

    kept: list[Character] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)


def _render_all(
    package: PackageSource,
    characters: list[Character],
    resvg: ModuleType,
    size: int,
    folder: Path,
    progress: bool,
) -> _Rendered:
    """Render and write each character's six tones in color and line art; a character with a missing or
    unrenderable SVG is written to neither tree."""
    done = _Rendered()
    for character in _progress(characters, progress):
        svgs = {
            (tree, tone): (svg_dir / f"{hexcode}.svg")
            for tree, svg_dir in ((COLOR, COLOR_SVG), (LINEART, BLACK_SVG))
            for tone, hexcode in character.images.items()
        }
        data = {key: package.read(str(path)) for key, path in svgs.items()}
        absent = [str(svgs[key]) for key, svg in data.items() if svg is None]
        if absent:
            done.missing.append({"class": character.name, "svgs": absent})
            continue
        pngs, problems = _render_character(resvg, data, size)
        if problems:
            done.unreadable.extend({"path": str(svgs[key]), "problem": p} for key, p in problems.items())
            continue
        for (tree, tone), png in pngs.items():
            target = folder / tree / character.name / f"{character.images[tone]}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png)
        done.kept.append(character)
    return done


def _render_character(
    resvg: ModuleType, svgs: dict[tuple[str, str], bytes | None], size: int
) -> tuple[dict[tuple[str, str], bytes], dict[tuple[str, str], str]]:
    """(PNG by (tree, tone), problem by (tree, tone)) of one character's twelve SVGs."""
    pngs: dict[tuple[str, str], bytes] = {}
    problems: dict[tuple[str, str], str] = {}
    by_content: dict[bytes, bytes] = {}  # the six line-art SVGs are mostly one drawing: rendered once
    for key, svg in svgs.items():
        if svg is None:
            continue
        if svg in by_content:
            pngs[key] = by_content[svg]
            continue
        try:
            pngs[key] = by_content[svg] = render_svg(resvg, svg, size)
        except (ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
            problems[key] = f"does not render as SVG ({' '.join(str(err).split())})"
    return pngs, problems


def _progress(items: list[Character], enabled: bool) -> Iterable[Character]:
    return tqdm(items, unit="emoji", dynamic_ncols=True, leave=False) if enabled else items


def _manifest_fields(package: PackageSource, resvg: ModuleType, size: int) -> dict[str, Any]:
    """The fields of dataset.json on where the images come from, their license, and how they were made."""
    return {
        "source": f"OpenMoji in the npm package {NPM.spec} ({NPM.url}), package/{COLOR_SVG}/ "
        f"and package/{BLACK_SVG}/ with package/{METADATA}",
        "version": package.version(),
        "sha256": package.sha256,
        "license": LICENSE,
        "license_url": LICENSE_URL,
        "attribution": ATTRIBUTION,
        "attribution_url": ATTRIBUTION_URL,
        "license_note": "All emojis designed by OpenMoji (https://openmoji.org). Keep this attribution and "
        "the license with datasets or images made from them; ShareAlike: what you adapt from them is "
        f"shared under {LICENSE} too. Its full text: {LICENSE_URL}, and {LICENSE_FILE} at the top of the "
        "built data set.",
        "size": size,
        "rasterizer": f"resvg-py {getattr(resvg, '__version__', '?')} "
        f"(resvg {getattr(resvg, '__resvg_version__', '?')}), system fonts skipped",
        "tones": dict(TONES),
        "how": "one class per emoji drawn in the five single skin tones (openmoji.json entries with "
        "skintone_combination 'single', grouped by skintone_base_hexcode): its default (yellow) version "
        "and the five tones (`tones`: each one's openmoji.json skintone); emoji without tones and two-tone "
        "couples left out; the class folder is the "
        "base annotation made file-safe (memopainter.data.builders.emoji.file_stem), each image "
        f"<hexcode>.png; each SVG rendered to a {size}x{size} 8-bit RGBA PNG (transparent background), "
        "scaled to fit and centred",
        "layout": f"{COLOR}/<class>/<hexcode>.png from {COLOR_SVG}/, {LINEART}/<class>/<hexcode>.png from "
        f"{BLACK_SVG}/ (the same names); each tree has its own dataset.json and is a class-folder data set",
    }

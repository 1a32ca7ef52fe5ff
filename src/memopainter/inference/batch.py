"""Folders in, folders out: planning a batch of colorize outputs, refusing clobbering before any work, and
writing them (the library half of `memopainter colorize`; benchmarks drive it directly).

Still images go through the Colorizer's batch path one by one. An animation, and a folder of frames given as a
sequence, are colorized as one sequence each (`Colorizer.colorize_sequence`), so a character keeps its colors
from frame to frame, and are written whole or not at all.
"""

from __future__ import annotations

import glob
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from memopainter.data.images import IMAGE_EXTENSIONS, ImageLoadError, list_images, save_pngs
from memopainter.data.sequences import (
    ANIMATION_FORMATS,
    animation_format,
    load_animation,
    natural_key,
    save_animations,
)
from memopainter.inference.colorizer import Colorizer
from memopainter.inference.results import IMAGE_ERRORS, Failed
from memopainter.inference.upsample import DEFAULT_UPSAMPLE

_SHOWN = 3  # example paths quoted in an error about many files
# Extensions whose files may be animated; only these are opened to find out before any work.
_ANIMATED_SUFFIXES = (".gif", ".webp", ".png")


@dataclass(frozen=True)
class Job:
    """One input file and where its results go, relative to OUT_DIR."""

    source: Path
    relative: Path  # the input's path relative to its folder or glob root (a file: its name)
    animation: str | None = None  # "GIF", "WEBP" or "PNG" for an animated file: colorized and written whole
    sequence: Path | None = None  # with --sequence, the folder whose frames are colorized as one sequence

    def outputs(self, out_dir: Path, top_k: int) -> list[Path]:
        """OUT_DIR/<relative>.png for the top-1 result, then .k2.png ... .kK.png for the alternatives.

        An animation's outputs have its own format's extension: .gif, .webp, or .png for an APNG.
        """
        suffix = ANIMATION_FORMATS[self.animation] if self.animation else ".png"
        stem = out_dir / self.relative.with_suffix("")
        return [Path(f"{stem}{suffix}")] + [Path(f"{stem}.k{k}{suffix}") for k in range(2, top_k + 1)]


@dataclass(frozen=True)
class Root:
    """A folder that inputs were listed from, and whether its sub-folders were searched."""

    path: Path
    recursive: bool


def collect_jobs(
    inputs: list[str], recursive: bool, sequence: bool = False
) -> tuple[list[Job], list[Root], list[str]]:
    """Expand files, folders and globs into jobs (sorted within each input, duplicates dropped).

    Animated files are marked as such. With `sequence`, the still frames of each folder input (of each of
    its folders, when recursive) make one sequence, in natural order. Returns the jobs, the folders they
    were listed from, and one message per input that named nothing.
    """
    jobs: dict[Path, Job] = {}
    roots: list[Root] = []
    problems: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            roots.append(Root(path, recursive))
            found = [_job(p, p.relative_to(path), sequence) for p in list_images(path, recursive=recursive)]
            if sequence:
                found.sort(
                    key=lambda job: (natural_key(str(job.relative.parent)), natural_key(job.source.name))
                )
        elif path.is_file():
            found = [_job(path, Path(path.name))]
        elif glob.has_magic(text):
            root = _glob_root(text)
            roots.append(Root(root, "**" in text))
            matches = sorted(Path(p) for p in glob.glob(_any_case_extension(text), recursive=True))
            found = [
                _job(p, p.relative_to(root))
                for p in matches
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            ]
            if not found:
                problems.append(f"{text}: the pattern matches no image files")
        else:
            broken = path.is_symlink()  # exists() is false for a dangling link and for a loop
            problems.append(
                f"{text}: " + ("a broken symbolic link or a loop" if broken else "no such file or folder")
            )
            continue
        for job in found:
            jobs.setdefault(job.source.resolve(), job)
    return list(jobs.values()), roots, problems


def _job(source: Path, relative: Path, in_sequence: bool = False) -> Job:
    """The job of one input file: an animation if its header says so, else a still or a sequence frame."""
    kind = animation_format(source) if source.suffix.lower() in _ANIMATED_SUFFIXES else None
    folder = source.parent if in_sequence and kind is None else None
    return Job(source, relative, kind, folder)


def unfinished(jobs: list[Job], out_dir: Path, top_k: int) -> list[Job]:
    """The jobs whose outputs do not all exist yet; a sequence goes whole unless every frame is done."""
    done = {job.source for job in jobs if all(p.exists() for p in job.outputs(out_dir, top_k))}
    pending = {job.sequence for job in jobs if job.sequence is not None and job.source not in done}
    return [job for job in jobs if job.source not in done or job.sequence in pending]


def check_outputs(
    jobs: list[Job], roots: list[Root], out_dir: Path, top_k: int, existing_allowed: bool
) -> str | None:
    """Why the planned outputs must not be written (one line), or None when they may.

    OUT_DIR may not be an input folder, nor lie inside one that is searched recursively (a later run
    would take the outputs for inputs); no output may be an input file or be planned twice; outputs that
    exist already need --overwrite or --skip-existing.
    """
    out = out_dir.resolve()
    if out.exists() and not out.is_dir():
        return f"-o {out_dir}: exists and is not a folder"
    for root in roots:
        folder = root.path.resolve()
        if out == folder or (root.recursive and out.is_relative_to(folder)):
            where = "is" if out == folder else "is inside"
            return f"-o {out_dir}: {where} the input folder {root.path}; choose a folder outside it"
    sources = {job.source.resolve(): job for job in jobs}
    planned: dict[Path, Job] = {}
    existing = []
    for job in jobs:
        for path in job.outputs(out_dir, top_k):
            key = path.resolve()
            if key in sources:
                return f"{path}: is an input file; refusing to overwrite inputs (choose another -o)"
            if key in planned:
                return f"{planned[key].source} and {job.source} would both be written to {path}"
            planned[key] = job
            if path.exists():
                existing.append(path)
    if existing and not existing_allowed:
        shown = ", ".join(str(p) for p in existing[:_SHOWN])
        more = f" and {len(existing) - _SHOWN} more" if len(existing) > _SHOWN else ""
        return f"{len(existing)} outputs exist already ({shown}{more}); pass --overwrite or --skip-existing"
    return _unwritable(out_dir)


def _unwritable(out_dir: Path) -> str | None:
    """Why nothing can be written under OUT_DIR (tried, not guessed from permission bits), or None."""
    folder = out_dir.resolve()
    while not folder.exists():
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"-o {out_dir}: cannot write in {folder} ({error.strerror or error})"
    return None


def colorize_jobs(
    colorizer: Colorizer,
    jobs: list[Job],
    out_dir: Path,
    top_k: int,
    palette: torch.Tensor | None,
    batch_size: int,
    upsample: str = DEFAULT_UPSAMPLE,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    advance: Callable[[int], None] = lambda files: None,
) -> tuple[int, int]:
    """Colorize jobs and write their outputs: (done, failed), counted in input files.

    Still images go through the library's batch path; each animation and each sequence is colorized as
    one sequence and written whole, or not at all when any of its frames fails. `say` gets one line per
    failed input ("error: ...") and per input a line-art model colored from extracted lines ("note: ...");
    `advance` the number of input files finished, as they finish.
    """
    request = (top_k, palette, batch_size, upsample)
    stills = [job for job in jobs if job.animation is None and job.sequence is None]
    done, failed = _colorize_stills(colorizer, stills, out_dir, request, say, advance)
    for group in _wholes(jobs):
        source = group[0].sequence or group[0].source
        try:
            if _colorize_whole(colorizer, group, out_dir, request):
                say(_extracted_note(source))
            done += len(group)
        except IMAGE_ERRORS as error:
            say(f"error: {_one_line(source, error)}")
            failed += len(group)
        advance(len(group))
    return done, failed


def _colorize_stills(
    colorizer: Colorizer,
    jobs: list[Job],
    out_dir: Path,
    request: tuple,
    say: Callable[[str], None],
    advance: Callable[[int], None],
) -> tuple[int, int]:
    """Colorize still images through the library's batch path, one at a time: (done, failed)."""
    top_k, palette, batch_size, upsample = request
    done = failed = 0
    by_source = {job.source: job for job in jobs}
    results = colorizer.colorize_each(by_source, top_k, palette, batch_size=batch_size, upsample=upsample)
    for result in results:
        job = by_source[result.source]
        try:
            if isinstance(result, Failed):
                raise result.error
            save_pngs(job.outputs(out_dir, top_k), result.images)  # all of an image's set, or none
            done += 1
            if result.prepared.extracted:
                say(_extracted_note(job.source))
        except IMAGE_ERRORS as error:
            say(f"error: {_one_line(job.source, error)}")
            failed += 1
        advance(1)
    return done, failed


def _wholes(jobs: list[Job]) -> list[list[Job]]:
    """The jobs colorized as one sequence each: every animation alone, every sequence's frames in order."""
    groups: dict[Path, list[Job]] = {}
    for job in jobs:
        if job.animation is not None:
            groups[job.source] = [job]
        elif job.sequence is not None:
            groups.setdefault(job.sequence, []).append(job)
    return list(groups.values())


def _colorize_whole(colorizer: Colorizer, group: list[Job], out_dir: Path, request: tuple) -> bool:
    """Colorize an animation, or a sequence's frames, as one sequence; write all its outputs as a unit.
    True when a line-art model colored any of its frames from extracted lines."""
    top_k, palette, batch_size, upsample = request
    first = group[0]
    animation = load_animation(first.source) if first.animation is not None else None
    frames = animation.frames if animation is not None else [job.source for job in group]
    colored = colorizer.colorize_sequence(frames, top_k, palette, upsample=upsample, batch_size=batch_size)
    if animation is None:
        outputs = [path for job in group for path in job.outputs(out_dir, top_k)]
        save_pngs(outputs, [image for frame in colored for image in frame.images])
    else:
        # One animation per rank: the top-1 colorings of every frame, then the 2nd slot's, ...
        takes = [[frame.images[rank] for frame in colored] for rank in range(len(colored[0].images))]
        save_animations(first.outputs(out_dir, top_k), takes, animation)
    return any(frame.prepared.extracted for frame in colored)


def _extracted_note(path: Path) -> str:
    return f"note: {path}: not line art; colored from its extracted lines"


def _one_line(path: Path, error: BaseException) -> str:
    """'<path>: <problem>' on one line; ImageLoadError messages already name the file."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, ImageLoadError) else f"{path}: {text}"


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: outputs are relative to it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _any_case_extension(pattern: str) -> str:
    """'frames/*.png' -> 'frames/*.[pP][nN][gG]': extensions match in any case, as folder listing does."""
    match = re.search(r"\.([A-Za-z0-9]+)$", pattern)
    if match is None:
        return pattern
    letters = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in match.group(1))
    return f"{pattern[: match.start()]}.{letters}"
